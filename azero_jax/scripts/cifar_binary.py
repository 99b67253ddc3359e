"""Search on projected binary image tasks: the reference's `baseline` config
(spec §11, §17) on real data, with baselines on the same tasks.

  azero-cifar-binary --output_dir=runs/digits            # built-in data, runs anywhere
  azero-cifar-binary --dataset=fashion_mnist --max_minutes=30 --output_dir=runs/fm
  azero-cifar-binary --dataset=cifar10 --data_dir=~/data/cifar10 --output_dir=runs/c10
  azero-cifar-binary ... --resume                        # continue an interrupted run

(or `python experiments/cifar_binary.py ...` from a checkout). Defaults are
the reference baseline: F=16, 8000 train / 1000 valid per task (the built-in
`digits` hold 174-183 images per class, so there the sizes are capped to
278 / 35, test 35, keeping the 8:1:1 proportions), 10 search tasks from the
36 search pairs (T_select = T_search, as shipped), 100 final tasks from the
9 held-out pairs, population 100, tournament 10, no-op init, max sizes
7/11/23, the baseline op sets, train budget 2x the neural-net program, no
FEC, random seed 1000060.

The search settings are the `baseline` preset's with this script's defaults
(DEFAULTS: progress every 1000 individuals, checkpoints every 300 s, 1 child
per step, 1 island; and the batched backend, float32 on a GPU/TPU and
float64 on CPU), then the user's config flags: every ExperimentConfig field
is a flag of its own name and `--set KEY=VALUE` sets any (aliases --seed,
--islands, --max_minutes; see azero_jax.cli), except the task fields, which
this script builds from the data flags.

Writes into --output_dir: progress.csv, select_checks.csv, fitness.png (the
driver's; needs matplotlib, the `plot` extra; skipped with a note
otherwise), best_program.json/.txt,
results.json (search/select/final fitness, throughput, baselines, data),
baselines.json and checkpoint.json.

--mix_dataset (e.g. mnist) gives the paper's mixed setting: with the default
--mix_mode=islands, half the islands (--islands >= 2) search on
--num_search_tasks tasks of --dataset and the other half on as many tasks of
--mix_dataset (migrants are re-evaluated on their new island's tasks);
--mix_mode=tasks instead gives every island half of its search tasks from
each dataset. Select uses all search tasks; final tasks come from --dataset.

--multiclass (the paper's §4.3 "multiple classes") runs the same config on
10-class projected tasks of --dataset instead (`eval_type="multiclass"`,
`num_classes=10`: features in v0, one-hot label in v1 during Learn, logits
in v2; azero_jax/multiclass.py), built by the binary tasks' projection
pipeline from the first ceil(total/10) images of each class: search (=
select) tasks for the default data seeds, final tasks for the next data
seeds (other projections and splits of the same classes: there are no
held-out classes), cached like the binary collections (--cache_dir; the
built-in digits cap the sizes to 1392 / 174 / 174 per task). It needs
--features >= 10, runs on the same backends as binary tasks (the
default batched one; pallas has the multiclass branch too) and takes neither
--mix_dataset nor --preset=paper_full. Its baselines are the multiclass
hand-written programs (softmax regression, the 2-layer softmax net:
programs.MULTICLASS_HAND_WRITTEN) tuned the same way, the evolved program
re-tuned, and optax softmax regression / MLP (softmax cross-entropy,
accuracy by argmax).

--preset=paper_full starts from the paper's full method at scale instead of
the baseline preset (azero_jax/experiment/presets.py): 2000 islands of
population 100, one child per island and step (so each step's children go to
the evaluator in one batched call), half the islands on --dataset and half on
--mix_dataset (required), ring migration every 50 steps, hurdles on 2 tasks
at the 75th percentile; --islands etc. override it as usual.
"""

from __future__ import annotations

from azero_jax import cpu_devices

cpu_devices.use_cpu_cores_or_exit()  # one XLA host device per core; before anything imports JAX

import dataclasses  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from azero_jax import baselines as baselines_lib  # noqa: E402
from azero_jax import cli, datasets, evaluation, experiment, fileio  # noqa: E402
from azero_jax import tasks as tasks_lib  # noqa: E402
from azero_jax.analysis import plots  # noqa: E402

PRESET = "baseline"
# --preset: the config this script starts from. paper_full is the paper's
# full method at scale (thousands of islands, mixed datasets, hurdles): it
# keeps its own islands, migration and hurdles, and needs --mix_dataset.
PRESET_CHOICES = ("baseline", "paper_full")
# This script's config defaults on top of the preset (the user's
# flags come after them); `script_defaults` adds the backend and dtype.
DEFAULTS: dict[str, Any] = dict(population_size=100, tournament_size=10, children_per_step=1, num_islands=1,
                                random_seed=1000060, progress_every=1000, checkpoint_every_seconds=300.0)
# Built by this script from the data flags, not settable by config flags.
TASK_FIELDS = ("search_tasks", "select_tasks", "final_tasks", "island_task_groups")


@dataclasses.dataclass
class Options:
    """The data and output options (the flags, or set directly by tests) and
    the config fields to override (`config_overrides`: the config flags)."""

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
    multiclass: bool = False
    resume: bool = False
    overwrite: bool = False
    mix_dataset: str | None = None
    mix_data_dir: str | None = None
    mix_mode: str = "islands"
    baselines: bool = True
    baseline_trials: int = 20
    optax_epochs: int = 20
    test_split: bool = True
    preset: str = PRESET
    worker_rate: float | None = None  # individuals/s of one reference worker (C++) on this config
    config_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)


def default_dtype(backend: str) -> str:
    """float32 where JAX computes on a GPU/TPU, else float64 (also for the
    reference backend, which computes float64 anyway)."""
    return evaluation.resolve_dtype("auto", backend)


def script_defaults(overrides: dict[str, Any]) -> dict[str, Any]:
    """DEFAULTS plus the batched backend and the device's dtype (unless
    `overrides`, the user's config fields, give the dtype)."""
    changes = dict(DEFAULTS, backend=cli.batched_backend())
    if "dtype" not in overrides:
        changes["dtype"] = default_dtype(overrides.get("backend") or changes["backend"])
    return changes


def build_config(opts: Options, log: Callable[[str], None] = print) -> tuple[experiment.ExperimentConfig, dict]:
    """The `baseline` preset with this script's defaults and the overrides,
    and task specs pointing at the cached projected collections; returns it
    and a description of the data."""
    overrides = dict(opts.config_overrides)
    fixed = [k for k in TASK_FIELDS if k in overrides]
    if fixed:
        raise experiment.ConfigError(f"{', '.join('--' + k for k in fixed)}: this script builds the tasks from "
                                     "--dataset, --num_search_tasks, ...; use experiments/search.py with a JSON "
                                     "config for other tasks")
    if opts.preset not in PRESET_CHOICES:
        raise experiment.ConfigError(f"--preset must be one of {', '.join(PRESET_CHOICES)}, got {opts.preset!r}")
    if opts.multiclass:
        _check_multiclass(opts)
    defaults = script_defaults(overrides)
    if opts.preset == "paper_full":
        if not opts.mix_dataset or opts.mix_mode != "islands":
            raise experiment.ConfigError("--preset=paper_full puts half the islands on each of two datasets: give "
                                         "--mix_dataset (e.g. mnist, or digits for the built-in data) with "
                                         "--mix_mode=islands")
        for key in ("num_islands", "children_per_step"):  # the preset's own scale
            defaults.pop(key)
    config = experiment.get_preset(opts.preset).replace(**{**defaults, **overrides})
    sizes = datasets.SplitSizes(opts.num_train, opts.num_valid, opts.num_test)
    t0 = time.monotonic()
    if opts.multiclass:
        return multiclass_config(config, opts, sizes, log)
    if opts.mix_mode not in ("islands", "tasks"):
        raise experiment.ConfigError(f"mix_mode must be 'islands' or 'tasks', got {opts.mix_mode!r}")
    by_island = bool(opts.mix_dataset) and opts.mix_mode == "islands"
    if by_island and config.num_islands < 2:
        raise experiment.ConfigError(f"--mix_dataset with --mix_mode=islands needs --islands >= 2 (--num_islands; "
                                     f"got {config.num_islands}): half the islands search each dataset; or use "
                                     "--mix_mode=tasks")
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
    tasks: dict[str, Any] = dict(search_tasks=search_entries, select_tasks=search_entries,
                                 final_tasks=[final.task_dict()])
    if by_island:
        tasks["island_task_groups"] = [0, 1]
    return config.replace(**tasks), data


def _check_multiclass(opts: Options) -> None:
    """ConfigError for what --multiclass does not combine with."""
    if opts.preset != PRESET:
        raise experiment.ConfigError(f"--multiclass starts from --preset={PRESET}; --preset={opts.preset} mixes two "
                                     "datasets and is binary only")
    if opts.mix_dataset:
        raise experiment.ConfigError("--multiclass runs on the 10-class tasks of --dataset alone: drop --mix_dataset "
                                     "(the mixed setting is binary only)")
    if opts.features < datasets.NUM_CLASSES:
        raise experiment.ConfigError(f"--multiclass needs --features >= {datasets.NUM_CLASSES} (the one-hot label and "
                                     f"the {datasets.NUM_CLASSES} logits are F-vectors), got {opts.features}")


def multiclass_config(config: experiment.ExperimentConfig, opts: Options, sizes: datasets.SplitSizes,
                      log: Callable[[str], None] = print) -> tuple[experiment.ExperimentConfig, dict]:
    """`config` with search (= select) and final tasks that are 10-class
    projected tasks of --dataset (cached collections,
    `datasets.multiclass_collections`), and a description of the data."""
    t0 = time.monotonic()
    search, final, used = datasets.multiclass_collections(
        opts.dataset, opts.data_dir, features=opts.features, sizes=sizes, num_search_tasks=opts.num_search_tasks,
        num_final_tasks=opts.num_final_tasks, cache_dir=opts.cache_dir, log=log)
    seeds = lambda c: [{"data_seed": d, "seed": s} for d, s in zip(c.data_seeds, c.seeds, strict=True)]  # noqa: E731
    data: dict[str, Any] = {
        "dataset": opts.dataset, "task_type": "multiclass", "num_classes": search.num_classes,
        "classes": list(search.classes), "features": opts.features, "sizes": dataclasses.asdict(used),
        "requested_sizes": dataclasses.asdict(sizes), "search_collection": search.path,
        "final_collection": final.path, "search_tasks": seeds(search), "final_tasks": seeds(final),
    }
    if used != sizes:
        log(f"{opts.dataset}: sizes capped to the dataset: {used.train} train / {used.valid} valid / "
            f"{used.test} test per task (requested {sizes.train}/{sizes.valid}/{sizes.test})")
    log(f"data ready in {time.monotonic() - t0:.1f}s: {opts.dataset}, {search.num_classes} classes, "
        f"F={opts.features}, {used.train}/{used.valid} train/valid, {opts.num_search_tasks} search + "
        f"{opts.num_final_tasks} final tasks")
    entries = [search.task_dict()]
    return config.replace(search_tasks=entries, select_tasks=entries, final_tasks=[final.task_dict()]), data


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
    kw = dict(trials=opts.baseline_trials, seed=config.random_seed, backend=config.backend, test_tasks=test_tasks)
    rows = []
    t0 = time.monotonic()
    evolved = baselines_lib.retune_program(best_program, select_tasks, final_tasks, memory, **{**kw, "trials": 1},
                                           name="evolved")
    rows.append(evolved.to_dict())
    for name in ("linear", "neural_net"):
        if opts.multiclass:  # the softmax programs, in their own memory (programs.MULTICLASS_NEURAL_NET_MEMORY)
            rows.append(baselines_lib.tune_multiclass_hand_written(name, select_tasks, final_tasks, **kw).to_dict())
        else:
            rows.append(baselines_lib.tune_hand_written(name, select_tasks, final_tasks, memory, **kw).to_dict())
    rows.append(baselines_lib.retune_program(best_program, select_tasks, final_tasks, memory, **kw).to_dict())
    select_arrays = [datasets.load_checked_npz(s.path) for s in select_specs]
    if any(a is None for a in select_arrays):
        raise datasets.DatasetError("a select task file is missing or corrupt")
    stacked = {k: np.concatenate([a[k] for a in select_arrays]) for k in ("x_train", "y_train", "x_valid", "y_valid")}
    final_opt = {k: v for k, v in final_arrays.items() if opts.test_split or not k.endswith("_test")}
    num_classes = final_specs[0].num_classes if opts.multiclass else None
    for r in baselines_lib.optax_baselines(stacked, final_opt, epochs=opts.optax_epochs, seed=config.random_seed,
                                           num_classes=num_classes):
        rows.append(r.to_dict())
    log(f"baselines done in {time.monotonic() - t0:.1f}s")
    return rows


def run(opts: Options, *, log: Callable[[str], None] = print,
        step_hook: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """The whole job; returns the results dict also written to results.json."""
    start = time.monotonic()
    config, data = build_config(opts, log)
    # The data build counts against the wall-clock budget (a fresh run refuses
    # to start when it already spent the budget).
    result = experiment.run_experiments(config, output_dir=opts.output_dir, resume=opts.resume,
                                        overwrite=opts.overwrite, log=log, step_hook=step_hook,
                                        elapsed_offset=time.monotonic() - start)
    results_path = os.path.join(opts.output_dir, "results.json")
    with open(results_path, encoding="utf-8") as f:
        results = json.load(f)
    results["data"] = data
    log(f"throughput: {results['individuals_per_second']:.2f} individuals/s, "
        f"{results['train_steps_per_second']:.0f} train steps/s ({config.backend} backend)")
    if opts.worker_rate:
        # The paper ran its full method on 10,000 single-core workers: how many such workers this run's
        # device stands in for, at the rate the user measured for one (e.g. tools/compare_reference.py's
        # throughput round of the authors' C++ on this config's shape).
        results["worker_rate"] = opts.worker_rate
        results["workers_replaced"] = results["individuals_per_second"] / opts.worker_rate
        log(f"this device searched as fast as {results['workers_replaced']:.1f} workers of "
            f"{opts.worker_rate:g} individuals/s each (--worker_rate)")
    notes = []
    if not os.path.exists(os.path.join(opts.output_dir, "fitness.png")):  # the driver's plot (logged its note)
        notes.append(f"fitness.png skipped: {plots.MISSING_NOTE}")
    if opts.baselines:
        rows = run_baselines(config, result.best_program, opts, log)
        results["baselines"] = rows
        fileio.atomic_write_json(os.path.join(opts.output_dir, "baselines.json"), rows)
        log("accuracy (mean over tasks; fitness = valid accuracy):\n" + baselines_lib.format_table(
            [{"name": "evolved (driver)", "select_fitness": result.select_fitness,
              "final_fitness": result.final_fitness, "final_test_accuracy": None}] + rows))
    results["notes"] = notes
    fileio.atomic_write_json(results_path, results)
    log(f"outputs in {opts.output_dir}: " + ", ".join(sorted(os.listdir(opts.output_dir))))
    return results


# ---------------------------------------------------------------- flags --

_FLAGS: dict[str, flags.FlagHolder] = {}


def define_flags() -> None:
    """This script's data and output flags and the generated config flags
    (once), with this script's defaults in their help."""
    if _FLAGS:
        return
    d = {}
    d["dataset"] = flags.DEFINE_enum("dataset", datasets.BUILTIN_DATASET, list(datasets.DATASETS),
                                     "image dataset; digits is built in, the others are read from --data_dir")
    d["data_dir"] = flags.DEFINE_string("data_dir", None, "folder with the dataset files (CIFAR-10 python archive "
                                        "or extracted batches; MNIST / Fashion-MNIST IDX files)")
    d["cache_dir"] = flags.DEFINE_string("cache_dir", None, "cache of projected tasks (default $AZERO_JAX_CACHE or "
                                         "~/.cache/azero_jax)")
    d["features"] = flags.DEFINE_integer("features", datasets.DEFAULT_FEATURES, "projected dimension F")
    d["num_train"] = flags.DEFINE_integer("num_train", datasets.DEFAULT_NUM_TRAIN, "train examples per task")
    d["num_valid"] = flags.DEFINE_integer("num_valid", datasets.DEFAULT_NUM_VALID, "valid examples per task")
    d["num_test"] = flags.DEFINE_integer("num_test", datasets.DEFAULT_NUM_TEST, "test examples per task")
    d["num_search_tasks"] = flags.DEFINE_integer("num_search_tasks", 10, "search (= select) tasks")
    d["num_final_tasks"] = flags.DEFINE_integer("num_final_tasks", 100, "final tasks, from the held-out pairs")
    d["multiclass"] = flags.DEFINE_bool("multiclass", False, "10-class projected tasks of --dataset (the paper's "
                                        "§4.3) instead of binary class pairs, with multiclass hand-written and "
                                        "optax softmax baselines (see the docstring)")
    d["mix_dataset"] = flags.DEFINE_enum("mix_dataset", None, list(datasets.DATASETS),
                                         "second dataset for half the search tasks (mixed setting, see the "
                                         "docstring)")
    d["mix_data_dir"] = flags.DEFINE_string("mix_data_dir", None, "data folder of --mix_dataset")
    d["mix_mode"] = flags.DEFINE_enum("mix_mode", "islands", ["islands", "tasks"],
                                      "with --mix_dataset: half the islands per dataset (the paper), or both "
                                      "datasets' tasks on every island")
    d["preset"] = flags.DEFINE_enum("preset", PRESET, list(PRESET_CHOICES),
                                    "the config to start from: baseline (the reference's run_baseline.sh) or "
                                    "paper_full (the paper's full method at scale: 2000 islands of 100, half on "
                                    "--dataset, half on --mix_dataset, hurdles; lower --islands on a small device)")
    d["worker_rate"] = flags.DEFINE_float(
        "worker_rate", None, "individuals/s of one reference worker (the authors' C++ on one core) on this config, "
        "e.g. from tools/compare_reference.py's baseline throughput round: the run then reports how many such "
        "workers the device stands in for (results.json: workers_replaced)", lower_bound=0.0)
    d["baselines"] = flags.DEFINE_bool("baselines", True, "tune and report the baselines")
    d["baseline_trials"] = flags.DEFINE_integer("baseline_trials", 20, "random-search trials per tuned program")
    d["optax_epochs"] = flags.DEFINE_integer("optax_epochs", 20, "epochs of the optax logistic regression / MLP")
    d["test_split"] = flags.DEFINE_bool("test_split", True, "also score every method on the final tasks' test "
                                        "splits")
    d["output_dir"] = flags.DEFINE_string("output_dir", None, "directory for all outputs (required)")
    d["resume"] = flags.DEFINE_bool("resume", False, "continue the run in --output_dir from its checkpoint")
    d["overwrite"] = flags.DEFINE_bool("overwrite", False, "without --resume: start afresh even if --output_dir "
                                       "holds a run (its checkpoint and results are replaced)")
    cli.define_config_flags()
    cli.document_defaults({**DEFAULTS, "random_seed": "1000060 (--seed)", "num_islands": "1 (--islands)",
                           "backend": f"{cli.batched_backend()} (the batched evaluator)",
                           "dtype": "float32 on a GPU/TPU, else float64"})
    _FLAGS.update(d)


def options_from_flags() -> Options:
    """Options from the parsed flags (the config flags as config_overrides;
    experiment.ConfigError for bad --set / alias use)."""
    names = [f.name for f in dataclasses.fields(Options) if f.name != "config_overrides"]
    return Options(**{name: _FLAGS[name].value for name in names}, config_overrides=cli.flag_overrides())


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    if not _FLAGS["output_dir"].value:
        cli.fail("--output_dir is required")
    # Errors are the boundary's (cli.run_app): one `error:` line, exit status 2.
    run(options_from_flags())


def cli_main(argv: list[str] | None = None) -> None:
    """The `azero-cifar-binary` console script."""
    define_flags()
    cli.run_app(main, __name__, argv)


if __name__ == "__main__":
    cli_main()
