"""Checks before a run does any work, so that a run that cannot finish fails
at once with a ConfigError naming the field or file and what to do, not
after hours of search: the config and its task data are runnable
(`check_runnable`) and the output directory is usable (`check_output_dir`).
"""

from __future__ import annotations

import os

from azero_jax import fitness as fitness_lib
from azero_jax import multiclass
from azero_jax import tasks as tasks_lib
from azero_jax.evaluation.base import check_search_task_size
from azero_jax.experiment.config import ConfigError, ExperimentConfig
from azero_jax.experiment.presets import missing_data_note


def check_runnable(config: ExperimentConfig) -> None:
    """Everything about the config and its data that can fail, checked before
    any work: the backend's dtype, every explicit task file (readable,
    real, sizes, labels: `tasks.make_tasks` checks them; finite), and the
    search tasks against the FEC probe and the minimum train examples (the
    hurdle count is the config's own check)."""
    if config.backend in ("reference", "native") and config.dtype not in ("auto", "float64"):
        raise ConfigError(f"the {config.backend} backend computes in float64; dtype {config.dtype!r} needs backend "
                          "'xla'")
    for which in ("search", "select", "final"):
        sizes = []  # (name, train examples over all epochs, valid examples) per task
        for i, spec in enumerate(config.task_specs(which)):
            where = f"{which}_tasks[{i}]"
            if spec.eval_type == fitness_lib.MULTICLASS and config.memory[1] < multiclass.MIN_VECTORS:
                raise ConfigError(f"{where}: multiclass tasks need memory with at least {multiclass.MIN_VECTORS} "
                                  f"vector addresses (v0 features, v1 label, v2 prediction), got {config.memory[1]}")
            if spec.kind == tasks_lib.EXPLICIT:
                if not os.path.exists(spec.path):
                    raise ConfigError(f"{which} task data file {spec.path!r} does not exist"
                                      f"{missing_data_note(which, spec.path)}")
                try:
                    loaded = tasks_lib.make_tasks(spec)
                    tasks_lib.check_finite(loaded, spec.path)
                except OSError as e:
                    raise ConfigError(f"{where}: cannot read task data file {spec.path!r}: {e.strerror or e}") from None
                except ValueError as e:
                    raise ConfigError(f"{where}: {e}") from None
                sizes += [(f"{where} ({spec.path}) task {t.index}", t.num_train * t.num_train_epochs, t.num_valid)
                          for t in loaded]
            else:
                sizes += [(f"{where} task {k}", spec.num_train * spec.num_train_epochs, spec.num_valid)
                          for k in range(spec.num_tasks)]
        if which != "search":
            continue
        for name, train, valid in sizes:  # the evaluator's own rule, before any work
            try:
                check_search_task_size(name, train, valid, config.fec)
            except ValueError as e:
                raise ConfigError(str(e)) from None


def check_output_dir(output_dir: str) -> None:
    """ConfigError unless `output_dir` is a directory or can be made one."""
    if not isinstance(output_dir, str) or not output_dir.strip():
        raise ConfigError("the output directory is empty: give --output_dir=DIR")
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ConfigError(f"output directory {output_dir!r} exists and is not a directory: choose another "
                          "--output_dir")
    parent = os.path.dirname(os.path.abspath(output_dir))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent) if os.path.dirname(parent) != parent else ""
    if parent and not os.path.isdir(parent):
        raise ConfigError(f"output directory {output_dir!r}: {parent!r} is a file, not a directory: choose another "
                          "--output_dir")
