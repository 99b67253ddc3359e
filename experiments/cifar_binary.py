"""Search on projected binary image tasks: the reference's `baseline` config
(spec §11, §17) on real data, with baselines on the same tasks.

  python experiments/cifar_binary.py --output_dir=runs/digits            # built-in data, runs anywhere
  python experiments/cifar_binary.py --dataset=fashion_mnist --max_minutes=30 --output_dir=runs/fm
  python experiments/cifar_binary.py --dataset=cifar10 --data_dir=~/data/cifar10 --output_dir=runs/c10
  python experiments/cifar_binary.py ... --resume                        # continue an interrupted run

Defaults are the reference baseline: F=16, 8000 train / 1000 valid per task
(the built-in `digits` hold 174-183 images per class, so there the sizes are
capped to 278 / 35, test 35, keeping the 8:1:1 proportions), 10 search tasks
from the 36 search pairs (T_select = T_search, as shipped), 100 final tasks
from the 9 held-out pairs, population 100, tournament 10, no-op init, max
sizes 7/11/23, the baseline op sets, train budget 2x the neural-net program,
no FEC, random seed 1000060.

Writes into --output_dir: progress.csv, fitness.png (needs matplotlib, the
`plot` extra; skipped with a note otherwise), best_program.json/.txt,
results.json (search/select/final fitness, throughput, baselines, data),
baselines.json and checkpoint.json.

--mix_dataset (e.g. mnist) gives the paper's mixed setting: with the default
--mix_mode=islands, half the islands (--islands >= 2) search on
--num_search_tasks tasks of --dataset and the other half on as many tasks of
--mix_dataset (migrants are re-evaluated on their new island's tasks);
--mix_mode=tasks instead gives every island half of its search tasks from
each dataset. Select uses all search tasks; final tasks come from --dataset.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from absl import app, flags

# Runnable from a checkout without installing.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from azero_jax import cpu_devices  # noqa: E402

cpu_devices.use_cpu_cores()  # one XLA host device per core; before anything imports JAX

from azero_jax import baselines as baselines_lib  # noqa: E402
from azero_jax import cli, datasets, experiment  # noqa: E402
from azero_jax import tasks as tasks_lib  # noqa: E402
from azero_jax.checkpoint import CheckpointError  # noqa: E402
from azero_jax.program import ProgramError  # noqa: E402

_DATASET = flags.DEFINE_enum("dataset", datasets.BUILTIN_DATASET, list(datasets.DATASETS),
                             "image dataset; digits is built in, the others are read from --data_dir")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "folder with the dataset files (CIFAR-10 python archive or "
                                "extracted batches; MNIST / Fashion-MNIST IDX files)")
_CACHE_DIR = flags.DEFINE_string("cache_dir", None, "cache of projected tasks (default $AZERO_JAX_CACHE or "
                                 "~/.cache/azero_jax)")
_FEATURES = flags.DEFINE_integer("features", datasets.DEFAULT_FEATURES, "projected dimension F")
_NUM_TRAIN = flags.DEFINE_integer("num_train", datasets.DEFAULT_NUM_TRAIN, "train examples per task")
_NUM_VALID = flags.DEFINE_integer("num_valid", datasets.DEFAULT_NUM_VALID, "valid examples per task")
_NUM_TEST = flags.DEFINE_integer("num_test", datasets.DEFAULT_NUM_TEST, "test examples per task")
_SEARCH_TASKS = flags.DEFINE_integer("num_search_tasks", 10, "search (= select) tasks")
_FINAL_TASKS = flags.DEFINE_integer("num_final_tasks", 100, "final tasks, from the held-out pairs")
_MAX_TRAIN_STEPS = flags.DEFINE_float("max_train_steps", None, "train-step budget (default: the preset's 1e11)")
_MAX_MINUTES = flags.DEFINE_float("max_minutes", None, "wall-clock budget of the search in minutes")
_ISLANDS = flags.DEFINE_integer("islands", 1, "number of islands")
_POPULATION = flags.DEFINE_integer("population_size", 100, "population size per island")
_TOURNAMENT = flags.DEFINE_integer("tournament_size", 10, "tournament size")
_CHILDREN = flags.DEFINE_integer("children_per_step", 1, "children evaluated per step and island (batching)")
_SEED = flags.DEFINE_integer("seed", 1000060, "random seed (0 = time-based)")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "directory for all outputs (required)")
_RESUME = flags.DEFINE_bool("resume", False, "continue the run in --output_dir from its checkpoint")
_BACKEND = flags.DEFINE_enum("backend", "reference", ["reference", "jax"], "program evaluator")
_DTYPE = flags.DEFINE_enum("dtype", "float64", ["float64", "float32"], "compute dtype of the jax backend")
_PROGRESS_EVERY = flags.DEFINE_integer("progress_every", 1000, "individuals between progress lines")
_CHECKPOINT_EVERY = flags.DEFINE_float("checkpoint_every_seconds", 300.0, "seconds between checkpoints")
_MIX_DATASET = flags.DEFINE_enum("mix_dataset", None, list(datasets.DATASETS),
                                 "second dataset for half the search tasks (mixed setting, see the docstring)")
_MIX_DATA_DIR = flags.DEFINE_string("mix_data_dir", None, "data folder of --mix_dataset")
_MIX_MODE = flags.DEFINE_enum("mix_mode", "islands", ["islands", "tasks"],
                              "with --mix_dataset: half the islands per dataset (the paper), or both datasets' "
                              "tasks on every island")
_BASELINES = flags.DEFINE_bool("baselines", True, "tune and report the baselines")
_BASELINE_TRIALS = flags.DEFINE_integer("baseline_trials", 20, "random-search trials per tuned program")
_OPTAX_EPOCHS = flags.DEFINE_integer("optax_epochs", 20, "epochs of the optax logistic regression / MLP")
_TEST_SPLIT = flags.DEFINE_bool("test_split", True, "also score every method on the final tasks' test splits")


@dataclasses.dataclass
class Options:
    """Everything the run needs (the flags, or set directly by tests)."""

    output_dir: str
    dataset: str = datasets.BUILTIN_DATASET
    data_dir: str | None = None
    cache_dir: str | None = None
    features: int = datasets.DEFAULT_FEATURES
    num_train: int = datasets.DEFAULT_NUM_TRAIN
    num_valid: int = datasets.DEFAULT_NUM_VALID
    num_test: int = datasets.DEFAULT_NUM_TEST
    num_search_tasks: int = 10
    num_final_tasks: int = 100
    max_train_steps: int | None = None
    max_minutes: float | None = None
    islands: int = 1
    population_size: int = 100
    tournament_size: int = 10
    children_per_step: int = 1
    seed: int = 1000060
    resume: bool = False
    backend: str = "reference"
    dtype: str = "float64"
    progress_every: int = 1000
    checkpoint_every_seconds: float | None = 300.0
    mix_dataset: str | None = None
    mix_data_dir: str | None = None
    mix_mode: str = "islands"
    baselines: bool = True
    baseline_trials: int = 20
    optax_epochs: int = 20
    test_split: bool = True


def build_config(opts: Options, log: Callable[[str], None] = print) -> tuple[experiment.ExperimentConfig, dict]:
    """The `baseline` preset with task specs pointing at the cached projected
    collections; returns it and a description of the data."""
    sizes = datasets.SplitSizes(opts.num_train, opts.num_valid, opts.num_test)
    t0 = time.monotonic()
    if opts.mix_mode not in ("islands", "tasks"):
        raise experiment.ConfigError(f"mix_mode must be 'islands' or 'tasks', got {opts.mix_mode!r}")
    by_island = bool(opts.mix_dataset) and opts.mix_mode == "islands"
    if by_island and opts.islands < 2:
        raise experiment.ConfigError(f"--mix_dataset with --mix_mode=islands needs --islands >= 2 (got "
                                     f"{opts.islands}): half the islands search each dataset; or use --mix_mode=tasks")
    num_main = opts.num_search_tasks - (opts.num_search_tasks // 2 if opts.mix_dataset and not by_island else 0)
    search, final, used = datasets.projected_collections(
        opts.dataset, opts.data_dir, features=opts.features, sizes=sizes, num_search_tasks=num_main,
        num_final_tasks=opts.num_final_tasks, cache_dir=opts.cache_dir, log=log)
    search_entries = [search.task_dict()]
    data: dict[str, Any] = {
        "dataset": opts.dataset, "features": opts.features, "sizes": dataclasses.asdict(used),
        "requested_sizes": dataclasses.asdict(sizes), "search_collection": search.path,
        "final_collection": final.path,
        "search_tasks": [dataclasses.asdict(c) for c in search.choices],
        "final_pairs": sorted({(c.positive, c.negative) for c in final.choices}),
    }
    if used != sizes:
        log(f"{opts.dataset}: sizes capped to the dataset: {used.train} train / {used.valid} valid / "
            f"{used.test} test per task (requested {sizes.train}/{sizes.valid}/{sizes.test})")
    if opts.mix_dataset:
        cache = datasets.ProjectedTaskCache(opts.mix_dataset,
                                            lambda: datasets.load_dataset(opts.mix_dataset, opts.mix_data_dir),
                                            opts.cache_dir, log)
        seeds = datasets.default_data_seeds(opts.num_search_tasks)[0 if by_island else num_main:]
        mix = datasets.build_collection(cache, datasets.choose_tasks(len(seeds), datasets.search_pairs(), seeds),
                                        opts.features, used, "search")
        search_entries.append(mix.task_dict())
        data.update(mix_dataset=opts.mix_dataset, mix_mode=opts.mix_mode, mix_collection=mix.path,
                    mix_search_tasks=[dataclasses.asdict(c) for c in mix.choices])
    log(f"data ready in {time.monotonic() - t0:.1f}s: {opts.dataset}, F={opts.features}, "
        f"{used.train}/{used.valid} train/valid, {opts.num_search_tasks} search + {opts.num_final_tasks} final tasks")
    changes: dict[str, Any] = dict(
        search_tasks=search_entries, select_tasks=search_entries, final_tasks=[final.task_dict()],
        random_seed=opts.seed, num_islands=opts.islands, population_size=opts.population_size,
        tournament_size=opts.tournament_size, backend=opts.backend, progress_every=opts.progress_every,
        checkpoint_every_seconds=opts.checkpoint_every_seconds)
    if by_island:
        changes["island_task_groups"] = [0, 1]
    if opts.max_train_steps is not None:
        changes["max_train_steps"] = int(opts.max_train_steps)
    if opts.max_minutes is not None:
        changes["max_seconds"] = 60.0 * opts.max_minutes
    optional = {"children_per_step": opts.children_per_step, "dtype": opts.dtype}
    fields = experiment.ExperimentConfig.field_names()
    changes.update({k: v for k, v in optional.items() if k in fields})
    return experiment.get_preset("baseline").replace(**changes), data


def plot_progress(csv_path: str, png_path: str) -> str | None:
    """fitness.png from progress.csv; returns a note instead when matplotlib
    is missing or there is nothing to plot."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'azero-jax[plot]'); fitness.png skipped"
    with open(csv_path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return "progress.csv has no rows; fitness.png skipped"
    x = [int(r["indivs"]) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(x, [float(r["best_fit"]) for r in rows], label="best")
    ax.plot(x, [float(r["mean"]) for r in rows], label="population mean")
    ax.set_xlabel("individuals")
    ax.set_ylabel("search fitness (accuracy)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return None


def run_baselines(config: experiment.ExperimentConfig, best_program, opts: Options,
                  log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Tuned hand-written programs, the re-tuned evolved program and the optax
    models on the run's own select/final tasks."""
    select_specs, final_specs = config.task_specs("select"), config.task_specs("final")
    select_tasks, final_tasks = tasks_lib.make_tasks(select_specs), tasks_lib.make_tasks(final_specs)
    memory = config.memory_shape(select_tasks[0].features)
    final_arrays = datasets.load_checked_npz(final_specs[0].path)
    if final_arrays is None:
        raise datasets.DatasetError(f"final task file {final_specs[0].path} is missing or corrupt")
    test_tasks = None
    if opts.test_split:
        test_tasks = baselines_lib.with_test_as_valid(final_tasks, final_arrays["x_test"], final_arrays["y_test"])
    kw = dict(trials=opts.baseline_trials, seed=opts.seed, backend=config.backend, test_tasks=test_tasks)
    rows = []
    t0 = time.monotonic()
    evolved = baselines_lib.retune_program(best_program, select_tasks, final_tasks, memory, **{**kw, "trials": 1},
                                           name="evolved")
    rows.append(evolved.to_dict())
    for name in ("linear", "neural_net"):
        rows.append(baselines_lib.tune_hand_written(name, select_tasks, final_tasks, memory, **kw).to_dict())
    rows.append(baselines_lib.retune_program(best_program, select_tasks, final_tasks, memory, **kw).to_dict())
    select_arrays = [datasets.load_checked_npz(s.path) for s in select_specs]
    if any(a is None for a in select_arrays):
        raise datasets.DatasetError("a select task file is missing or corrupt")
    stacked = {k: np.concatenate([a[k] for a in select_arrays]) for k in ("x_train", "y_train", "x_valid", "y_valid")}
    final_opt = {k: v for k, v in final_arrays.items() if opts.test_split or not k.endswith("_test")}
    for r in baselines_lib.optax_baselines(stacked, final_opt, epochs=opts.optax_epochs, seed=opts.seed):
        rows.append(r.to_dict())
    log(f"baselines done in {time.monotonic() - t0:.1f}s")
    return rows


def _write_json(path: str, data: Any) -> None:
    tmp = path + ".part"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def run(opts: Options, *, log: Callable[[str], None] = print,
        step_hook: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """The whole job; returns the results dict also written to results.json."""
    config, data = build_config(opts, log)
    result = experiment.run_experiments(config, output_dir=opts.output_dir, resume=opts.resume, log=log,
                                        step_hook=step_hook)
    results_path = os.path.join(opts.output_dir, "results.json")
    with open(results_path, encoding="utf-8") as f:
        results = json.load(f)
    results["data"] = data
    log(f"throughput: {results['individuals_per_second']:.2f} individuals/s, "
        f"{results['train_steps_per_second']:.0f} train steps/s ({config.backend} backend)")
    notes = []
    note = plot_progress(os.path.join(opts.output_dir, "progress.csv"), os.path.join(opts.output_dir, "fitness.png"))
    if note:
        notes.append(note)
        log(note)
    if opts.baselines:
        rows = run_baselines(config, result.best_program, opts, log)
        results["baselines"] = rows
        _write_json(os.path.join(opts.output_dir, "baselines.json"), rows)
        log("accuracy (mean over tasks; fitness = valid accuracy):\n" + baselines_lib.format_table(
            [{"name": "evolved (driver)", "select_fitness": result.select_fitness,
              "final_fitness": result.final_fitness, "final_test_accuracy": None}] + rows))
    results["notes"] = notes
    _write_json(results_path, results)
    log(f"outputs in {opts.output_dir}: " + ", ".join(sorted(os.listdir(opts.output_dir))))
    return results


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    if not _OUTPUT_DIR.value:
        cli.fail("--output_dir is required")
    opts = Options(
        output_dir=_OUTPUT_DIR.value, dataset=_DATASET.value, data_dir=_DATA_DIR.value, cache_dir=_CACHE_DIR.value,
        features=_FEATURES.value, num_train=_NUM_TRAIN.value, num_valid=_NUM_VALID.value, num_test=_NUM_TEST.value,
        num_search_tasks=_SEARCH_TASKS.value, num_final_tasks=_FINAL_TASKS.value,
        max_train_steps=None if _MAX_TRAIN_STEPS.value is None else int(_MAX_TRAIN_STEPS.value),
        max_minutes=_MAX_MINUTES.value, islands=_ISLANDS.value, population_size=_POPULATION.value,
        tournament_size=_TOURNAMENT.value, children_per_step=_CHILDREN.value, seed=_SEED.value,
        resume=_RESUME.value, backend=_BACKEND.value, dtype=_DTYPE.value, progress_every=_PROGRESS_EVERY.value,
        checkpoint_every_seconds=_CHECKPOINT_EVERY.value, mix_dataset=_MIX_DATASET.value,
        mix_data_dir=_MIX_DATA_DIR.value, mix_mode=_MIX_MODE.value, baselines=_BASELINES.value, baseline_trials=_BASELINE_TRIALS.value,
        optax_epochs=_OPTAX_EPOCHS.value, test_split=_TEST_SPLIT.value)
    try:
        run(opts)
    except (experiment.ConfigError, CheckpointError, ProgramError, datasets.DatasetError, FileNotFoundError,
            ValueError) as e:
        cli.fail(str(e))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
