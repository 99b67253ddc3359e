"""Run a search experiment (the reference's run_search_experiment).

  python experiments/search.py --config=tiny --output_dir=/tmp/run
  python experiments/search.py --config=demo --output_dir=runs/demo --seed=7
  python experiments/search.py --config=my.json --output_dir=runs/x --resume

--config is a preset name (demo, baseline, integration_linear,
integration_nonlinear, tiny) or a JSON config file (see
azero_jax.experiment.ExperimentConfig). Flags override the config. Writes
progress.csv, checkpoint.json, best_program.json/.txt and results.json into
--output_dir; --resume continues from its checkpoint.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

# Runnable from a checkout without installing.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from azero_jax import cpu_devices  # noqa: E402

cpu_devices.use_cpu_cores()  # one XLA host device per core; before anything imports JAX

from azero_jax import cli, experiment  # noqa: E402
from azero_jax.checkpoint import CheckpointError  # noqa: E402
from azero_jax.program import ProgramError  # noqa: E402

_CONFIG = flags.DEFINE_string("config", "tiny", f"preset ({', '.join(experiment.PRESETS)}) or JSON config path")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "directory for progress, checkpoint and results")
_RESUME = flags.DEFINE_bool("resume", False, "continue from the checkpoint in --output_dir")
_SEED = flags.DEFINE_integer("seed", None, "random seed (0 = time-based); overrides the config")
_MAX_EXPERIMENTS = flags.DEFINE_integer("max_experiments", None, "experiments to run (0 = until sufficient fitness)")
_MAX_TRAIN_STEPS = flags.DEFINE_float("max_train_steps", None, "train-step budget per experiment")
_MAX_SECONDS = flags.DEFINE_float("max_seconds", None, "wall-clock budget of the whole run")
_CHILDREN = flags.DEFINE_integer("children_per_step", None, "children evaluated per step and island")
_ISLANDS = flags.DEFINE_integer("islands", None, "number of islands")
_PROGRESS_EVERY = flags.DEFINE_integer("progress_every", None, "individuals between progress lines")
_BACKEND = flags.DEFINE_enum("backend", None, ["reference", "jax"], "evaluator backend; overrides the config")
_DTYPE = flags.DEFINE_enum("dtype", None, ["float64", "float32"], "JAX compute dtype; overrides the config")


def _overrides() -> dict:
    pairs = {"random_seed": _SEED.value, "max_experiments": _MAX_EXPERIMENTS.value,
             "max_train_steps": _MAX_TRAIN_STEPS.value, "max_seconds": _MAX_SECONDS.value,
             "children_per_step": _CHILDREN.value, "num_islands": _ISLANDS.value,
             "progress_every": _PROGRESS_EVERY.value, "backend": _BACKEND.value, "dtype": _DTYPE.value}
    return {k: v for k, v in pairs.items() if v is not None}


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    if not _OUTPUT_DIR.value:
        cli.fail("--output_dir is required")
    try:
        config = experiment.load_config(_CONFIG.value).replace(**_overrides())
        experiment.run_experiments(config, output_dir=_OUTPUT_DIR.value, resume=_RESUME.value)
    except (experiment.ConfigError, CheckpointError, ProgramError, FileNotFoundError) as e:
        cli.fail(str(e))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
