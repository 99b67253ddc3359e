"""Projected binary tasks of the reference (spec §11): which class pairs and
seeds, the stratified split, and the random projection of one pair.

This re-implements the reference's `generate_datasets.py` without
scikit-learn or TF-Datasets: class pair (i < j, i -> label 1), raw pixel
values, a stratified train/valid/test split with scikit-learn's
`train_test_split(stratify=y, random_state=seed)` algorithm (reproduced on
NumPy's legacy `RandomState`, index for index), `np.random.seed(seed);
randn(d, F)` projection after the split, standardization fitted on train,
float32 storage.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np

from azero_jax import tasks as tasks_lib
from azero_jax.datasets.images import NUM_CLASSES, DatasetError, ImageDataset

# Reference (task.proto comment): pairs held out of search for meta-validation/test.
HELD_OUT_PAIRS = ((4, 6), (3, 5), (8, 9), (3, 8), (0, 9), (2, 9), (1, 8), (3, 6), (0, 5))

# Reference generate_datasets.py defaults.
DEFAULT_NUM_TRAIN = 8000
DEFAULT_NUM_VALID = 1000
DEFAULT_NUM_TEST = 1000
DEFAULT_FEATURES = 16
MIN_DATA_SEED = 0
MAX_DATA_SEED = 100  # the shipped configs' max_supported_data_seed
PAIR_SEED_SALT = 856572777  # the reference's HashMix salt of the pair/seed choice


# ---------------------------------------------------------------- pairs --

def all_pairs(num_classes: int = NUM_CLASSES) -> list[tuple[int, int]]:
    """The 45 (i, j), i < j, in the reference's loop order."""
    return list(itertools.combinations(range(num_classes), 2))


def _normalize(pairs: Sequence[Sequence[int]]) -> set[tuple[int, int]]:
    return {(min(p), max(p)) for p in pairs}


def search_pairs() -> list[tuple[int, int]]:
    """The 36 pairs the recommended split searches on."""
    held = _normalize(HELD_OUT_PAIRS)
    return [p for p in all_pairs() if p not in held]


def held_out_pairs() -> list[tuple[int, int]]:
    """The 9 held-out pairs (final evaluation), in loop order."""
    held = _normalize(HELD_OUT_PAIRS)
    return [p for p in all_pairs() if p in held]


def default_data_seeds(num_tasks: int) -> list[int]:
    """Reference default data seeds (11001, 11012, ..., then +1 per task)."""
    seeds = tasks_lib.DEFAULT_DATA_SEEDS
    return [seeds[i] if i < len(seeds) else seeds[-1] + i - (len(seeds) - 1) for i in range(num_tasks)]


@dataclasses.dataclass(frozen=True)
class TaskChoice:
    """One projected task: which pair, which file seed, and the task's data seed."""

    positive: int
    negative: int
    seed: int
    data_seed: int


def choose_tasks(num_tasks: int, pairs: Sequence[tuple[int, int]], data_seeds: Sequence[int] | None = None,
                 min_seed: int = MIN_DATA_SEED, max_seed: int = MAX_DATA_SEED) -> list[TaskChoice]:
    """Per task, as the reference loader: an RNG keyed by (salt, data seed)
    picks a pair uniformly from `pairs`, then a file seed uniformly in
    [min_seed, max_seed). NumPy's generator stands in for mt19937."""
    if not pairs:
        raise ValueError("choose_tasks needs at least one class pair")
    if max_seed <= min_seed:
        raise ValueError(f"max_seed ({max_seed}) must exceed min_seed ({min_seed})")
    seeds = list(data_seeds) if data_seeds is not None else default_data_seeds(num_tasks)
    if len(seeds) != num_tasks:
        raise ValueError(f"{len(seeds)} data seeds for {num_tasks} tasks")
    out = []
    for d in seeds:
        rng = np.random.default_rng([PAIR_SEED_SALT, int(d)])
        pos, neg = pairs[int(rng.integers(len(pairs)))]
        out.append(TaskChoice(min(pos, neg), max(pos, neg), int(rng.integers(min_seed, max_seed)), int(d)))
    return out


# ---------------------------------------------------- stratified splits --

def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """scikit-learn's `_approximate_mode`: per-class draw counts that sum to
    n_draws, remainders broken by descending size with random tie-breaks."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need = int(n_draws - floored.sum())
    if need > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need)
            inds = rng.choice(inds, size=add_now, replace=False)
            floored[inds] += 1
            need -= add_now
            if need == 0:
                break
    return floored.astype(int)


def stratified_split(labels: np.ndarray, train_size: int, test_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) as scikit-learn's `train_test_split(...,
    train_size=, test_size=, random_state=seed, stratify=labels)` (one
    `StratifiedShuffleSplit` draw) computes them. Integer sizes only."""
    labels = np.asarray(labels)
    n = labels.shape[0]
    if train_size < 1 or test_size < 1 or train_size + test_size > n:
        raise ValueError(f"cannot split {n} examples into {train_size} + {test_size}")
    classes, y_indices = np.unique(labels, return_inverse=True)
    class_counts = np.bincount(y_indices)
    if class_counts.min() < 2:
        raise ValueError("every class needs at least 2 examples for a stratified split")
    if train_size < len(classes) or test_size < len(classes):
        raise ValueError(f"train ({train_size}) and test ({test_size}) sizes must be >= the number of classes "
                         f"({len(classes)})")
    class_indices = np.split(np.argsort(y_indices, kind="mergesort"), np.cumsum(class_counts)[:-1])
    rng = np.random.RandomState(seed)
    n_i = _approximate_mode(class_counts, train_size, rng)
    t_i = _approximate_mode(class_counts - n_i, test_size, rng)
    train: list[int] = []
    test: list[int] = []
    for i in range(len(classes)):
        perm = class_indices[i].take(rng.permutation(class_counts[i]), mode="clip")
        train.extend(perm[: n_i[i]])
        test.extend(perm[n_i[i]: n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(test)


@dataclasses.dataclass(frozen=True)
class SplitSizes:
    """Examples per split of one projected task."""

    train: int = DEFAULT_NUM_TRAIN
    valid: int = DEFAULT_NUM_VALID
    test: int = DEFAULT_NUM_TEST

    def __post_init__(self):
        for name in ("train", "valid", "test"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2:
                raise ValueError(f"SplitSizes.{name} must be an integer >= 2, got {value!r}")

    @property
    def total(self) -> int:
        return self.train + self.valid + self.test

    @property
    def per_class(self) -> int:
        """Images taken from each class (the reference's int(total / 2))."""
        return self.total // 2


def capped_sizes(requested: SplitSizes, dataset: ImageDataset) -> SplitSizes:
    """`requested` if every class has enough images, else the largest sizes in
    the same proportions that every pair supports (the smallest class sets the
    limit); e.g. the built-in digits turn 8000/1000/1000 into 278/35/35."""
    smallest = int(dataset.class_counts().min())
    if requested.per_class <= smallest:
        return requested
    total = 2 * smallest
    valid = max(2, round(total * requested.valid / requested.total))
    test = max(2, round(total * requested.test / requested.total))
    return SplitSizes(total - valid - test, valid, test)


# ----------------------------------------------------------- projection --

@dataclasses.dataclass(frozen=True, eq=False)
class ProjectedTask:
    """One projected binary task; float32 like the reference's proto files."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    ARRAYS = ("x_train", "y_train", "x_valid", "y_valid", "x_test", "y_test")

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in self.ARRAYS}

    def to_task(self, index: int = 0, data_seed: int = 0, name: str = "") -> tasks_lib.Task:
        return tasks_lib.Task(x_train=self.x_train, y_train=self.y_train, x_valid=self.x_valid,
                              y_valid=self.y_valid, eval_type="accuracy", data_seed=data_seed, index=index, name=name)


def pair_examples(dataset: ImageDataset, positive: int, negative: int, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `per_class` images of each class (positive first), as float64
    raw pixels (no /255), labels positive -> 1, negative -> 0."""
    if not (0 <= positive < NUM_CLASSES and 0 <= negative < NUM_CLASSES) or positive == negative:
        raise ValueError(f"a class pair needs two different classes in 0..9, got ({positive}, {negative})")
    pos = dataset.images[dataset.labels == positive][:per_class]
    neg = dataset.images[dataset.labels == negative][:per_class]
    x = np.concatenate([pos, neg]).astype(np.float64)
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    return x, y


def project_pair(dataset: ImageDataset, positive: int, negative: int, features: int, seed: int,
                 sizes: SplitSizes) -> ProjectedTask:
    """The reference's `create_projected_binary_dataset` for one pair/seed."""
    x, y = pair_examples(dataset, positive, negative, sizes.per_class)
    if x.shape[0] < sizes.total:
        raise DatasetError(f"{dataset.name}: classes {positive}/{negative} have {x.shape[0]} images, fewer than "
                           f"the {sizes.total} needed for {sizes.train}/{sizes.valid}/{sizes.test} examples")
    return project_examples(x, y, features, seed, sizes)


def project_examples(x: np.ndarray, y: np.ndarray, features: int, seed: int, sizes: SplitSizes) -> ProjectedTask:
    """The pipeline after the choice of images, for binary and multiclass
    tasks alike: stratified train+valid / test split, then train / valid
    (scikit-learn's algorithm, seeded by `seed`), the Gaussian projection
    `np.random.seed(seed); randn(d, F)`, standardization fitted on train,
    float32 storage."""
    rest, test = stratified_split(y, sizes.train + sizes.valid, sizes.test, seed)
    x_rest, y_rest, x_test, y_test = x[rest], y[rest], x[test], y[test]
    train, valid = stratified_split(y_rest, sizes.train, sizes.valid, seed)
    x_train, y_train, x_valid, y_valid = x_rest[train], y_rest[train], x_rest[valid], y_rest[valid]
    np_state = np.random.get_state()
    try:
        np.random.seed(seed)
        projection = np.random.randn(x.shape[1], features)
    finally:
        np.random.set_state(np_state)
    x_train, x_valid, x_test = x_train @ projection, x_valid @ projection, x_test @ projection
    mean = x_train.mean(axis=0)
    scale = x_train.std(axis=0)
    scale[scale == 0.0] = 1.0  # StandardScaler leaves constant features unscaled
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    return ProjectedTask(f32((x_train - mean) / scale), f32(y_train), f32((x_valid - mean) / scale), f32(y_valid),
                         f32((x_test - mean) / scale), f32(y_test))
