"""Search experiments: config schema, presets, the search -> select -> final
driver, reporting and checkpoint/resume (spec §14-§18).

  config      `ExperimentConfig` (the one JSON-able schema of a run), its
              validation (`ConfigError`) and `load_config`
  presets     the named configs (`PRESETS`, `get_preset`)
  driver      `run_experiments` (the reference driver loop, checkpoints)
  resume      a run's checkpoint state, its checked restore, a finished
              run's results.json
  preflight   the checks before any work (task data, output directory)
  report      progress lines / progress.csv, results.json
              (`ExperimentResult`), best program
  evaluators  how the driver builds, checkpoints and restores evaluators
"""

from azero_jax.experiment.config import (
    BACKENDS,
    COMBINATIONS,
    DTYPES,
    RUN_CONTROL_FIELDS,
    ConfigError,
    ExperimentConfig,
    TaskEntry,
    load_config,
    task_spec,
)
from azero_jax.experiment.driver import run_experiments
from azero_jax.experiment.evaluators import evaluate_program, evaluator_state, make_evaluator, restore_evaluator
from azero_jax.experiment.presets import PRESET_NOTES, PRESETS, get_preset
from azero_jax.experiment.report import CSV_COLUMNS, ExperimentResult

__all__ = [
    "BACKENDS",
    "COMBINATIONS",
    "CSV_COLUMNS",
    "DTYPES",
    "PRESETS",
    "PRESET_NOTES",
    "RUN_CONTROL_FIELDS",
    "ConfigError",
    "ExperimentConfig",
    "ExperimentResult",
    "TaskEntry",
    "evaluate_program",
    "evaluator_state",
    "get_preset",
    "load_config",
    "make_evaluator",
    "restore_evaluator",
    "run_experiments",
    "task_spec",
]
