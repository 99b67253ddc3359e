"""Checked on-disk `.npz` caches of projected tasks and stacked task
collections.

Projected tasks are cached as `.npz` files keyed by dataset, pair, F, seed
and sizes; a file that fails its checksum is rebuilt. A collection stacks
chosen tasks into one (T, n, F) file that `TaskSpec(kind="explicit")` reads.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from azero_jax import fileio
from azero_jax import tasks as tasks_lib
from azero_jax.datasets.images import DIGITS, DatasetError, ImageDataset, load_dataset
from azero_jax.datasets.pairs import (
    DEFAULT_FEATURES,
    MAX_DATA_SEED,
    ProjectedTask,
    SplitSizes,
    TaskChoice,
    capped_sizes,
    choose_tasks,
    held_out_pairs,
    project_pair,
    search_pairs,
)

CACHE_VERSION = 1


# ---------------------------------------------------------------- cache --

def default_cache_dir() -> str:
    """$AZERO_JAX_CACHE, else $XDG_CACHE_HOME/azero_jax, else ~/.cache/azero_jax."""
    if os.environ.get("AZERO_JAX_CACHE"):
        return os.environ["AZERO_JAX_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "azero_jax")


def _checksum(arrays: dict[str, np.ndarray], meta: str) -> str:
    h = hashlib.sha256(meta.encode())
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(k.encode() + str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_checked_npz(path: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Writes arrays + JSON meta + a checksum of both, atomically."""
    meta_text = json.dumps(meta, sort_keys=True)
    with fileio.atomic_open(path, "wb") as f:
        np.savez(f, meta=np.array(meta_text), checksum=np.array(_checksum(arrays, meta_text)), **arrays)


def load_checked_npz(path: str, meta: dict[str, Any] | None = None) -> dict[str, np.ndarray] | None:
    """The arrays of a file written by `save_checked_npz`, or None when it is
    missing, unreadable, fails its checksum or has other meta than `meta`."""
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k not in ("meta", "checksum")}
            meta_text = str(data["meta"])
            checksum = str(data["checksum"])
    except Exception:  # truncated zip, bad CRC, missing keys, ...
        return None
    if checksum != _checksum(arrays, meta_text):
        return None
    if meta is not None and json.loads(meta_text) != json.loads(json.dumps(meta, sort_keys=True)):
        return None
    return arrays


def task_file_name(dataset: str, choice: TaskChoice | tuple[int, int, int], features: int, sizes: SplitSizes) -> str:
    """Cache file name; the reference's name plus the split sizes."""
    pos, neg, seed = (choice.positive, choice.negative, choice.seed) if isinstance(choice, TaskChoice) else choice
    return (f"binary_{dataset}-pos_{pos}-neg_{neg}-dim_{features}-seed_{seed}"
            f"-n_{sizes.train}_{sizes.valid}_{sizes.test}.npz")


class ProjectedTaskCache:
    """Projected tasks on disk; the raw dataset is loaded only on a miss.

    `loader()` returns the ImageDataset (called at most once). `hits`,
    `misses` and `rebuilt` (corrupt files replaced) count lookups.
    """

    def __init__(self, dataset: str, loader: Callable[[], ImageDataset], cache_dir: str | None = None,
                 log: Callable[[str], None] | None = None):
        self.dataset = dataset
        self.cache_dir = os.path.join(cache_dir or default_cache_dir(), "projected")
        self._loader = loader
        self._log = log or (lambda _line: None)
        self.hits = self.misses = self.rebuilt = 0

    @functools.cached_property
    def data(self) -> ImageDataset:
        return self._loader()

    def path(self, choice: TaskChoice | tuple[int, int, int], features: int, sizes: SplitSizes) -> str:
        return os.path.join(self.cache_dir, task_file_name(self.dataset, choice, features, sizes))

    def get(self, positive: int, negative: int, features: int, seed: int, sizes: SplitSizes) -> ProjectedTask:
        path = self.path((positive, negative, seed), features, sizes)
        meta = {"version": CACHE_VERSION, "dataset": self.dataset, "pair": [positive, negative],
                "features": features, "seed": seed, "sizes": dataclasses.astuple(sizes)}
        arrays = load_checked_npz(path, meta)
        if arrays is not None and set(arrays) == set(ProjectedTask.ARRAYS):
            self.hits += 1
            return ProjectedTask(**arrays)
        if os.path.exists(path):
            self.rebuilt += 1
            self._log(f"cache file {path} is corrupt or stale; rebuilding it")
        self.misses += 1
        task = project_pair(self.data, positive, negative, features, seed, sizes)
        save_checked_npz(path, task.arrays(), meta)
        return task


# ----------------------------------------------------------- collections --

@dataclasses.dataclass(frozen=True)
class Collection:
    """A stacked task collection file and what is in it."""

    path: str
    choices: tuple[TaskChoice, ...]
    features: int
    sizes: SplitSizes
    dataset: str

    def task_spec(self, num_tasks: int | None = None) -> tasks_lib.TaskSpec:
        """An explicit TaskSpec over the file (accuracy; data seeds = the
        tasks' data seeds, which key epoch shuffles and nothing else here)."""
        n = len(self.choices) if num_tasks is None else num_tasks
        return tasks_lib.TaskSpec(kind="explicit", path=self.path, features=self.features, num_train=self.sizes.train,
                                  num_valid=self.sizes.valid, num_tasks=n, eval_type="accuracy",
                                  data_seeds=tuple(c.data_seed for c in self.choices[:n]))

    def task_dict(self) -> dict[str, Any]:
        """The TaskSpec as an ExperimentConfig task entry."""
        spec = self.task_spec()
        return {"kind": "explicit", "path": spec.path, "features": spec.features, "num_train": spec.num_train,
                "num_valid": spec.num_valid, "num_tasks": spec.num_tasks, "eval_type": "accuracy",
                "data_seeds": list(spec.data_seeds)}

    def tasks(self) -> list[tasks_lib.Task]:
        return tasks_lib.make_tasks(self.task_spec())

    def arrays(self) -> dict[str, np.ndarray]:
        """Stacked float32 arrays incl. x_test / y_test."""
        arrays = load_checked_npz(self.path)
        if arrays is None:
            raise DatasetError(f"collection file {self.path} is missing or corrupt; rebuild it with build_collection")
        return arrays


def build_collection(cache: ProjectedTaskCache, choices: Sequence[TaskChoice], features: int,
                     sizes: SplitSizes, name: str = "tasks") -> Collection:
    """Stacks the chosen tasks into one .npz (T, n, F) that `TaskSpec(kind=
    "explicit")` reads; reused when a valid file with the same content exists."""
    choices = tuple(choices)
    meta = {"version": CACHE_VERSION, "dataset": cache.dataset, "features": features,
            "sizes": dataclasses.astuple(sizes), "tasks": [dataclasses.astuple(c) for c in choices]}
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:12]
    path = os.path.join(cache.cache_dir, f"{cache.dataset}-dim_{features}-{name}-{len(choices)}tasks-{digest}.npz")
    collection = Collection(path, choices, features, sizes, cache.dataset)
    existing = load_checked_npz(path, meta)
    if existing is not None and set(existing) == set(ProjectedTask.ARRAYS):
        return collection
    if os.path.exists(path):
        cache.rebuilt += 1
        cache._log(f"collection file {path} is corrupt or stale; rebuilding it")
    per_task: dict[tuple[int, int, int], ProjectedTask] = {}
    for c in choices:
        key = (c.positive, c.negative, c.seed)
        if key not in per_task:
            per_task[key] = cache.get(c.positive, c.negative, features, c.seed, sizes)
    stacked = {k: np.stack([getattr(per_task[(c.positive, c.negative, c.seed)], k) for c in choices])
               for k in ProjectedTask.ARRAYS}
    save_checked_npz(path, stacked, meta)
    return collection


def projected_collections(dataset: str, data_dir: str | None = None, *, features: int = DEFAULT_FEATURES,
                          sizes: SplitSizes = SplitSizes(), num_search_tasks: int = 10, num_final_tasks: int = 100,  # noqa: B008 (frozen)
                          cache_dir: str | None = None, max_seed: int = MAX_DATA_SEED,
                          log: Callable[[str], None] | None = None) -> tuple[Collection, Collection, SplitSizes]:
    """The baseline's search (= select, as shipped) and final collections:
    search tasks from the 36 search pairs, final tasks from the 9 held-out
    pairs, default data seeds. Sizes are capped to what the dataset holds
    (only the built-in digits need that); returns the sizes used."""
    cache = ProjectedTaskCache(dataset, lambda: load_dataset(dataset, data_dir), cache_dir, log)
    if dataset == DIGITS:
        sizes = capped_sizes(sizes, cache.data)
    search = build_collection(cache, choose_tasks(num_search_tasks, search_pairs(), max_seed=max_seed),
                              features, sizes, "search")
    final = build_collection(cache, choose_tasks(num_final_tasks, held_out_pairs(), max_seed=max_seed),
                             features, sizes, "final")
    return search, final, sizes
