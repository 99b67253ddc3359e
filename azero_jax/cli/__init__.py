"""Shared behaviour of the absl entry points: one error boundary (`run_app`),
and the config flags, generated from `ExperimentConfig` so that a run's
settings have one schema.

  errors        the error boundary: `run_app` / `guarded` (user and OS errors
                one `error:` line and exit 2, a bug its traceback and exit 1),
                `fail`, `UsageError`, `parse_flags`, quiet JAX logging
  config_flags  one flag per config field, `--set`, the aliases
                (`define_config_flags`, `flag_overrides`, `config_from_flags`)

The entry points use this package's names (`cli.run_app`, `cli.fail`, ...).
"""

from azero_jax.cli.config_flags import (
    FIELD_HELP,
    SET_FLAG,
    FieldParser,
    batched_backend,
    config_flag_names,
    config_from_flags,
    define_alias,
    define_config_flags,
    defines_config_flags,
    document_defaults,
    experiment_error,
    field_kind,
    flag_overrides,
)
from azero_jax.cli.errors import (
    BUG_EXIT,
    BUG_REPORT,
    TRACEBACK_ENV,
    USAGE_EXIT,
    UsageError,
    describe_os_error,
    fail,
    guarded,
    handle_exception,
    parse_flags,
    quiet_jax_logging,
    run_app,
)

__all__ = [
    "BUG_EXIT",
    "BUG_REPORT",
    "FIELD_HELP",
    "SET_FLAG",
    "TRACEBACK_ENV",
    "USAGE_EXIT",
    "FieldParser",
    "UsageError",
    "batched_backend",
    "config_flag_names",
    "config_from_flags",
    "define_alias",
    "define_config_flags",
    "defines_config_flags",
    "describe_os_error",
    "document_defaults",
    "experiment_error",
    "fail",
    "field_kind",
    "flag_overrides",
    "guarded",
    "handle_exception",
    "parse_flags",
    "quiet_jax_logging",
    "run_app",
]
