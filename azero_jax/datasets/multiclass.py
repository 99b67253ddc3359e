"""Projected multiclass tasks: the paper's §4.3 "multiple classes" setting
(all 10 classes of CIFAR-10 / MNIST), built with the pipeline of the
projected binary tasks (`pairs.py`, the reference's `generate_datasets.py`):

  the first ceil(total / C) images of each class (raw pixels, no /255), label =
  the class's position in `classes` (0..C-1); a stratified train+valid / test
  split, then train / valid, with scikit-learn's algorithm seeded by the
  projection seed; `np.random.seed(seed); randn(d, F)` Gaussian projection
  after the split; standardization fitted on train; float32 storage.

Every task holds all C classes, so tasks differ only by their projection
seed (which also keys the splits): unlike the binary tasks there are no
held-out class pairs, and held-out tasks are other seeds (`multiclass_tasks`
draws one per data seed as `pairs.choose_tasks` does, without the pair).
The tasks are `eval_type="multiclass"` with C = len(classes) <= F
(`azero_jax.multiclass`: one-hot label in v1, prediction in v2).

`multiclass_collections` builds the search (default data seeds) and final
(`held_out_data_seeds`) task collections as checked, cached `.npz` files,
as `cache.projected_collections` does for the binary tasks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from azero_jax import fitness as fitness_lib
from azero_jax import tasks as tasks_lib
from azero_jax.datasets.cache import CACHE_VERSION, ProjectedTaskCache, load_checked_npz, save_checked_npz
from azero_jax.datasets.images import DIGITS, NUM_CLASSES, DatasetError, ImageDataset, load_dataset
from azero_jax.datasets.pairs import (
    DEFAULT_FEATURES,
    MAX_DATA_SEED,
    MIN_DATA_SEED,
    PAIR_SEED_SALT,
    ProjectedTask,
    SplitSizes,
    default_data_seeds,
    project_examples,
)

ALL_CLASSES = tuple(range(NUM_CLASSES))


def _check_classes(classes: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(c) for c in classes)
    if len(out) < 2 or len(set(out)) != len(out) or not all(0 <= c < NUM_CLASSES for c in out):
        raise ValueError(f"a multiclass task needs at least 2 different classes in 0..{NUM_CLASSES - 1}, got {classes!r}")
    return out


def class_examples(dataset: ImageDataset, classes: Sequence[int], per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `per_class` images of each class in `classes` order, as
    float64 raw pixels; labels 0..C-1 (the class's position in `classes`)."""
    classes = _check_classes(classes)
    xs, ys = [], []
    for k, c in enumerate(classes):
        images = dataset.images[dataset.labels == c][:per_class]
        xs.append(images)
        ys.append(np.full(len(images), float(k)))
    return np.concatenate(xs).astype(np.float64), np.concatenate(ys)


def capped_multiclass_sizes(requested: SplitSizes, dataset: ImageDataset, num_classes: int = NUM_CLASSES,
                            classes: Sequence[int] | None = None) -> SplitSizes:
    """`requested` if every class has ceil(total / C) images, else the largest
    sizes in the same proportions that the smallest class allows (the
    built-in digits: 8000/1000/1000 -> 1392/174/174 for 10 classes)."""
    classes = _check_classes(ALL_CLASSES[:num_classes] if classes is None else classes)
    counts = dataset.class_counts()
    smallest = int(min(counts[c] for c in classes))
    c = len(classes)
    if -(-requested.total // c) <= smallest:
        return requested
    total = c * smallest
    valid = max(c, round(total * requested.valid / requested.total))
    test = max(c, round(total * requested.test / requested.total))
    return SplitSizes(total - valid - test, valid, test)


def project_multiclass(dataset: ImageDataset, features: int, seed: int, sizes: SplitSizes,
                       classes: Sequence[int] = ALL_CLASSES) -> ProjectedTask:
    """One projected C-class task (see the module docstring)."""
    classes = _check_classes(classes)
    c = len(classes)
    if c > features:
        raise ValueError(f"{c} classes need F >= {c} features (the one-hot label and the logits are F-vectors), "
                         f"got F={features}")
    per_class = -(-sizes.total // c)  # ceil: the stratified split then always has enough images
    x, y = class_examples(dataset, classes, per_class)
    if x.shape[0] < sizes.total:
        raise DatasetError(f"{dataset.name}: classes {list(classes)} have {x.shape[0]} images, fewer than the "
                           f"{sizes.total} needed for {sizes.train}/{sizes.valid}/{sizes.test} examples "
                           "(capped_multiclass_sizes gives sizes that fit)")
    return project_examples(x, y, features, seed, sizes)


def to_multiclass_task(projected: ProjectedTask, num_classes: int, *, index: int = 0, data_seed: int = 0,
                       name: str = "", num_train_epochs: int = 1) -> tasks_lib.Task:
    """A projected multiclass task as a `Task` (eval type multiclass, C)."""
    return tasks_lib.Task(x_train=projected.x_train, y_train=projected.y_train, x_valid=projected.x_valid,
                          y_valid=projected.y_valid, eval_type=fitness_lib.MULTICLASS,
                          num_train_epochs=num_train_epochs, data_seed=data_seed, index=index, name=name,
                          num_classes=num_classes)


def projection_seeds(data_seeds: Sequence[int], min_seed: int = MIN_DATA_SEED,
                     max_seed: int = MAX_DATA_SEED) -> list[int]:
    """Per data seed, the projection seed, drawn as `pairs.choose_tasks`
    draws a binary task's file seed (after its pair draw, which a multiclass
    task does not need: so the same data seed gives another file seed)."""
    if max_seed <= min_seed:
        raise ValueError(f"max_seed ({max_seed}) must exceed min_seed ({min_seed})")
    return [int(np.random.default_rng([PAIR_SEED_SALT, int(d)]).integers(min_seed, max_seed)) for d in data_seeds]


def multiclass_tasks(dataset: ImageDataset, num_tasks: int, *, features: int = DEFAULT_FEATURES,
                     sizes: SplitSizes | None = None, classes: Sequence[int] = ALL_CLASSES,
                     data_seeds: Sequence[int] | None = None, start_index: int = 0,
                     cap: bool = True) -> tuple[list[tasks_lib.Task], list[ProjectedTask], SplitSizes]:
    """`num_tasks` projected C-class tasks of `dataset`: (tasks, the projected
    arrays with their test split, the sizes used: `sizes` capped to what the
    smallest class allows when `cap`)."""
    classes = _check_classes(classes)
    sizes = sizes or SplitSizes()
    if cap:
        sizes = capped_multiclass_sizes(sizes, dataset, classes=classes)
    seeds = list(data_seeds) if data_seeds is not None else default_data_seeds(num_tasks)
    if len(seeds) != num_tasks:
        raise ValueError(f"{len(seeds)} data seeds for {num_tasks} tasks")
    tasks, projected = [], []
    for i, (data_seed, seed) in enumerate(zip(seeds, projection_seeds(seeds), strict=True)):
        p = project_multiclass(dataset, features, seed, sizes, classes)
        index = start_index + i
        projected.append(p)
        tasks.append(to_multiclass_task(p, len(classes), index=index, data_seed=int(data_seed),
                                        name=f"{dataset.name}_{len(classes)}class_s{seed}[{index}]"))
    return tasks, projected, sizes


def save_multiclass_npz(path: str, projected: Sequence[ProjectedTask], meta: dict[str, Any] | None = None) -> str:
    """Writes projected tasks of equal sizes as one stacked explicit-task
    `.npz` (x_train (T, n, F), y_train (T, n), ... and the test split), the
    file a `TaskSpec(kind="explicit", path=path, eval_type="multiclass",
    num_classes=C)` (or a config's task entry of those fields) loads.
    Written atomically; with `meta`, as a checked cache file
    (`save_checked_npz`: the meta and a checksum beside the arrays, read back
    by `load_checked_npz`)."""
    from azero_jax import fileio

    if not projected:
        raise ValueError("save_multiclass_npz needs at least one projected task")
    arrays = {k: np.stack([getattr(p, k) for p in projected]) for k in ProjectedTask.ARRAYS}
    if meta is not None:
        save_checked_npz(path, arrays, meta)
        return path
    with fileio.atomic_open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


# ----------------------------------------------------------- collections --

def held_out_data_seeds(num_tasks: int, search_seeds: Sequence[int]) -> list[int]:
    """Data seeds of held-out (final) multiclass tasks: consecutive seeds
    after the largest search seed, skipping any whose projection seed a
    search task already uses, so no final task repeats a search task (all
    tasks hold the same classes and differ only by their projection seed)."""
    used = set(projection_seeds(search_seeds))
    out: list[int] = []
    d = max((int(s) for s in search_seeds), default=MIN_DATA_SEED - 1) + 1
    while len(out) < num_tasks:
        if projection_seeds([d])[0] not in used:
            out.append(d)
        d += 1
    return out


@dataclasses.dataclass(frozen=True)
class MulticlassCollection:
    """A stacked multiclass task collection file and what is in it (the
    multiclass analogue of `cache.Collection`)."""

    path: str
    data_seeds: tuple[int, ...]
    seeds: tuple[int, ...]  # projection seeds, one per task
    features: int
    sizes: SplitSizes
    dataset: str
    classes: tuple[int, ...] = ALL_CLASSES

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def task_spec(self) -> tasks_lib.TaskSpec:
        """An explicit multiclass TaskSpec over the file (C classes; data
        seeds = the tasks' data seeds, which key epoch shuffles)."""
        return tasks_lib.TaskSpec(kind="explicit", path=self.path, features=self.features, num_train=self.sizes.train,
                                  num_valid=self.sizes.valid, num_tasks=len(self.seeds), eval_type=fitness_lib.MULTICLASS,
                                  num_classes=self.num_classes, data_seeds=self.data_seeds)

    def task_dict(self) -> dict[str, Any]:
        """The TaskSpec as an ExperimentConfig task entry."""
        spec = self.task_spec()
        return {"kind": "explicit", "path": spec.path, "features": spec.features, "num_train": spec.num_train,
                "num_valid": spec.num_valid, "num_tasks": spec.num_tasks, "eval_type": fitness_lib.MULTICLASS,
                "num_classes": self.num_classes, "data_seeds": list(spec.data_seeds)}

    def tasks(self) -> list[tasks_lib.Task]:
        return tasks_lib.make_tasks(self.task_spec())

    def arrays(self) -> dict[str, np.ndarray]:
        """Stacked float32 arrays incl. x_test / y_test."""
        arrays = load_checked_npz(self.path)
        if arrays is None:
            raise DatasetError(f"collection file {self.path} is missing or corrupt; rebuild it with "
                               "build_multiclass_collection")
        return arrays


def build_multiclass_collection(cache: ProjectedTaskCache, data_seeds: Sequence[int], features: int,
                                sizes: SplitSizes, name: str = "tasks",
                                classes: Sequence[int] = ALL_CLASSES) -> MulticlassCollection:
    """`multiclass_tasks` of `cache`'s dataset for `data_seeds` (sizes as
    given, not capped), stacked into one checked `.npz` in the cache folder
    (`save_multiclass_npz` with meta); an existing valid file with the same
    content is reused without loading the dataset."""
    classes = _check_classes(classes)
    data_seeds = tuple(int(d) for d in data_seeds)
    seeds = tuple(projection_seeds(data_seeds))
    meta = {"version": CACHE_VERSION, "kind": "multiclass", "dataset": cache.dataset, "features": features,
            "sizes": dataclasses.astuple(sizes), "classes": list(classes), "data_seeds": list(data_seeds),
            "seeds": list(seeds)}
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:12]
    path = os.path.join(cache.cache_dir, f"{cache.dataset}-dim_{features}-{name}-{len(classes)}class-"
                                         f"{len(seeds)}tasks-{digest}.npz")
    collection = MulticlassCollection(path, data_seeds, seeds, features, sizes, cache.dataset, classes)
    existing = load_checked_npz(path, meta)
    if existing is not None and set(existing) == set(ProjectedTask.ARRAYS):
        cache.hits += 1
        return collection
    if os.path.exists(path):
        cache.rebuilt += 1
        cache._log(f"collection file {path} is corrupt or stale; rebuilding it")
    cache.misses += 1
    _, projected, _ = multiclass_tasks(cache.data, len(seeds), features=features, sizes=sizes, classes=classes,
                                       data_seeds=data_seeds, cap=False)
    save_multiclass_npz(path, projected, meta=meta)
    return collection


def multiclass_collections(dataset: str, data_dir: str | None = None, *, features: int = DEFAULT_FEATURES,
                           sizes: SplitSizes = SplitSizes(), num_search_tasks: int = 10,  # noqa: B008 (frozen)
                           num_final_tasks: int = 100, classes: Sequence[int] = ALL_CLASSES,
                           cache_dir: str | None = None, log: Callable[[str], None] | None = None,
                           ) -> tuple[MulticlassCollection, MulticlassCollection, SplitSizes]:
    """The multiclass analogue of `cache.projected_collections`: search (=
    select) tasks for the default data seeds, final tasks for the next
    seeds (`held_out_data_seeds`: other projections of the same classes),
    cached under `cache_dir`. Sizes are capped to what the smallest class
    holds on the built-in digits only (as for the binary tasks; elsewhere
    too large a request is a DatasetError); returns the sizes used."""
    classes = _check_classes(classes)
    cache = ProjectedTaskCache(dataset, lambda: load_dataset(dataset, data_dir), cache_dir, log)
    if dataset == DIGITS:
        sizes = capped_multiclass_sizes(sizes, cache.data, classes=classes)
    search_seeds = default_data_seeds(num_search_tasks)
    search = build_multiclass_collection(cache, search_seeds, features, sizes, "search", classes)
    final = build_multiclass_collection(cache, held_out_data_seeds(num_final_tasks, search_seeds), features, sizes,
                                        "final", classes)
    return search, final, sizes
