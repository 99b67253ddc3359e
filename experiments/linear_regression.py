"""The README's main job: rediscover linear regression from scratch.

The reference's 5-minute demo (`run_demo.sh`, spec §16): 10 linear tasks
(F=4, 100 train / 100 valid), the demo ops (const-set, dot, -, *, scalar x
vector, vector +), program sizes 10 / 2 / 8 from random programs, FEC on,
population 1000, tournament 10; each search's best is checked on 100 fresh
tasks x 1000 examples (select), and searches repeat with new task seeds until
select fitness > 0.9999; the winner is then scored on 100 unseen tasks (final).

Differences from the reference script, all flags:
  --seed 1 (fixed, so the command is reproducible; 0 = time-based like the
    reference),
  --backend jax with --children_per_step 250 (batched evaluation, float64),
  --early_stop: whenever a search's best search fitness rises past
    --early_stop_fitness (0.999), that program takes the select test, and the
    search ends if it passes, instead of always spending its 2e8 train steps
    (the 100-example search tasks cap the fitness of a good learner a little
    below what it reaches on the 1000-example select tasks),
  --max_experiments 20 (the reference: unlimited) and --max_minutes 30.

  python experiments/linear_regression.py                      # ~minutes on a laptop CPU
  python experiments/linear_regression.py --seed=2 --output_dir=runs/lr2
  python experiments/linear_regression.py --backend=reference --children_per_step=1   # the sequential reference (slow)

Writes progress.csv, checkpoint.json, best_program.json/.txt, results.json in
--output_dir; a rerun with the same flags resumes (or just reprints a finished
run).
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

# Runnable from a checkout without installing.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from azero_jax import cpu_devices  # noqa: E402

cpu_devices.use_cpu_cores()  # one XLA host device per core; before anything imports JAX

from azero_jax import experiment, liveness, serialization  # noqa: E402
from azero_jax.checkpoint import CheckpointError  # noqa: E402

_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/linear_regression", "where progress and results go")
_SEED = flags.DEFINE_integer("seed", 1, "random seed (0 = time-based, like the reference demo)")
_BACKEND = flags.DEFINE_enum("backend", "jax", ["jax", "reference"], "evaluator backend")
_DTYPE = flags.DEFINE_enum("dtype", "float64", ["float64", "float32"], "JAX compute dtype")
_CHILDREN = flags.DEFINE_integer("children_per_step", 250, "children evaluated per batched call (1 = reference order)")
_EARLY_STOP = flags.DEFINE_bool("early_stop", True, "end a search once its best program passes the select test "
                                "(checked when its search fitness exceeds --early_stop_fitness; the reference "
                                "always spends max_train_steps)")
_EARLY_STOP_FITNESS = flags.DEFINE_float("early_stop_fitness", 0.999, "search fitness that triggers a select check")
_SUFFICIENT = flags.DEFINE_float("sufficient_fitness", 0.9999, "stop once the select fitness exceeds this")
_MAX_EXPERIMENTS = flags.DEFINE_integer("max_experiments", 20, "searches to try at most (0 = unlimited)")
_MAX_MINUTES = flags.DEFINE_float("max_minutes", 30.0, "wall-clock budget of the whole run (0 = none)")
_MAX_TRAIN_STEPS = flags.DEFINE_float("max_train_steps", 2e8, "train-step budget per search (reference 2e8)")
_PROGRESS_EVERY = flags.DEFINE_integer("progress_every", 10000, "individuals between progress lines")
_RESUME = flags.DEFINE_enum("resume", "auto", ["auto", "yes", "no"],
                            "continue from --output_dir's checkpoint: auto = if there is one")


def config() -> experiment.ExperimentConfig:
    """The demo preset with this script's flags applied."""
    return experiment.get_preset("demo").replace(
        random_seed=_SEED.value, backend=_BACKEND.value, dtype=_DTYPE.value, children_per_step=_CHILDREN.value,
        sufficient_fitness=_SUFFICIENT.value, max_experiments=_MAX_EXPERIMENTS.value,
        max_train_steps=int(_MAX_TRAIN_STEPS.value), progress_every=_PROGRESS_EVERY.value,
        search_sufficient_fitness=_EARLY_STOP_FITNESS.value if _EARLY_STOP.value else None,
        max_seconds=_MAX_MINUTES.value * 60.0 if _MAX_MINUTES.value > 0 else None,
        checkpoint_every_seconds=60.0)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        _fail(f"unexpected arguments: {' '.join(argv[1:])}")
    out = _OUTPUT_DIR.value
    resume = {"yes": True, "no": False}.get(_RESUME.value,
                                            os.path.exists(os.path.join(out, "checkpoint.json")))
    try:
        cfg = config()
        print(f"Searching for a linear-regression learner: {cfg.backend} backend ({cfg.dtype}), "
              f"population {cfg.population_size}, {cfg.children_per_step} children per step, seed {cfg.random_seed}; "
              f"output in {out}", flush=True)
        result = experiment.run_experiments(cfg, output_dir=out, resume=resume,
                                            log=lambda line: print(line, flush=True))
    except (experiment.ConfigError, CheckpointError) as e:
        _fail(str(e))
        return
    found = result.select_fitness > cfg.sufficient_fitness and result.final_fitness >= cfg.sufficient_fitness
    secs = result.elapsed_seconds
    print(f"\nBest program (from search {result.best_experiment} of {result.num_experiments}):")
    print(serialization.format_algorithm(result.best_program), end="")
    print("The same program without its dead code (instructions that cannot affect a prediction):")
    print(serialization.format_algorithm(liveness.strip_dead_code(result.best_program, keep_positions=False)), end="")
    print(f"search fitness={result.search_fitness:.6f}  select fitness={result.select_fitness:.6f}  "
          f"final fitness (unseen tasks)={result.final_fitness:.6f}")
    print(f"{result.counters['individuals']} individuals in {secs:.0f} s "
          f"({result.counters['individuals'] / max(secs, 1e-9):.0f} individuals/s)")
    if found:
        print("Linear regression discovered (select > 0.9999, final >= 0.9999).")
    else:
        stop = ("max_experiments" if cfg.max_experiments and result.num_experiments >= cfg.max_experiments
                else "the time budget")
        print(f"Not discovered within {stop}; rerun with a larger --max_experiments / --max_minutes "
              "(the same --output_dir continues), or another --seed.")


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    app.run(main)
