"""Image datasets and the projected binary tasks of the reference (spec §11).

Loaders read local files only (no network at run time):

* CIFAR-10 from the official python-pickle archive (`cifar-10-python.tar.gz`
  or its extracted `data_batch_1..5` / `test_batch`);
* MNIST and Fashion-MNIST from their IDX files (gzip or not); Fashion-MNIST
  is also found where the Debian package `dataset-fashion-mnist` installs it;
* `digits`, the UCI optical-recognition 8x8 handwritten digits (1,797 images,
  CC BY 4.0), shipped in `azero_jax/data/` so everything runs on a fresh
  machine (see `azero_jax/data/README.md`).

The projection pipeline re-implements the reference's `generate_datasets.py`
without scikit-learn or TF-Datasets: class pair (i < j, i -> label 1), raw
pixel values, a stratified train/valid/test split with scikit-learn's
`train_test_split(stratify=y, random_state=seed)` algorithm (reproduced on
NumPy's legacy `RandomState`, index for index), `np.random.seed(seed);
randn(d, F)` projection after the split, standardization fitted on train,
float32 storage. Projected tasks are cached as `.npz` files keyed by dataset,
pair, F, seed and sizes; a file that fails its checksum is rebuilt.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import io
import itertools
import json
import os
import pickle
import struct
import tarfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from azero_jax import fileio
from azero_jax import tasks as tasks_lib

# ------------------------------------------------------------ constants --

CIFAR10 = "cifar10"
MNIST = "mnist"
FASHION_MNIST = "fashion_mnist"
DIGITS = "digits"
DATASETS = (CIFAR10, FASHION_MNIST, MNIST, DIGITS)
BUILTIN_DATASET = DIGITS
NUM_CLASSES = 10

CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
MNIST_URL = "http://yann.lecun.com/exdb/mnist/ (mirrors: the `mnist` dataset of TF-Datasets / torchvision)"
FASHION_MNIST_URL = "https://github.com/zalandoresearch/fashion-mnist (Debian: apt-get install dataset-fashion-mnist)"
FASHION_MNIST_DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DIGITS_FILE = "digits.csv.gz"

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

CACHE_VERSION = 1


class DatasetError(ValueError):
    """Dataset files that are missing, truncated or malformed."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The expected dataset files are not where they were looked for."""


@dataclasses.dataclass(frozen=True, eq=False)
class ImageDataset:
    """A labelled image split: `images` (n, H*W*C) uint8, flattened in
    height-width-channel order like TF-Datasets (the order the reference's
    projection matrix rows refer to); `labels` (n,) int64 in [0, 10)."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    image_shape: tuple[int, int, int]
    source: str

    @property
    def num_examples(self) -> int:
        return int(self.labels.shape[0])

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=NUM_CLASSES)


# -------------------------------------------------------------- CIFAR-10 --

# Globals a CIFAR-10 pickle may name (NumPy array reconstruction); anything
# else is refused, so a hostile pickle cannot run code.
_PICKLE_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # protocol-2 pickles written by Python 3 store bytes through it
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only NumPy arrays are allowed)")
        if module.startswith("numpy.core") and hasattr(np, "_core"):
            module = "numpy._core" + module[len("numpy.core"):]
        return super().find_class(module, name)


def _cifar_missing(data_dir: str, detail: str = "") -> DatasetNotFoundError:
    files = ", ".join(CIFAR10_TRAIN_FILES)
    return DatasetNotFoundError(
        f"CIFAR-10 not found in --data_dir={data_dir!r}{': ' + detail if detail else ''}. Expected "
        f"{CIFAR10_ARCHIVE} (the python version), or its extracted {CIFAR10_DIR}/ folder, or the files "
        f"{files} and {CIFAR10_TEST_FILE} directly in that directory. The archive is published at {CIFAR10_URL} "
        f"(\"CIFAR-10 python version\", 163 MB).")


def _parse_cifar_batch(blob: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _SafeUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as e:  # truncated / not a pickle / refused global
        raise DatasetError(f"{where}: not a readable CIFAR-10 python batch ({type(e).__name__}: {e})") from None
    if not isinstance(batch, dict):
        raise DatasetError(f"{where}: expected a pickled dict with b'data' and b'labels', got {type(batch).__name__}")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    missing = [k for k in ("data", "labels") if k not in batch]
    if missing:
        raise DatasetError(f"{where}: CIFAR-10 batch has no {' / '.join(missing)} entry "
                           f"(has: {', '.join(map(str, batch)) or 'nothing'})")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"])
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetError(f"{where}: CIFAR-10 data must have shape (n, 3072), got {data.shape}")
    if labels.shape != (data.shape[0],):
        raise DatasetError(f"{where}: {labels.shape[0] if labels.ndim == 1 else labels.shape} labels "
                           f"for {data.shape[0]} images")
    if not np.issubdtype(labels.dtype, np.integer) or (labels.size and (labels.min() < 0 or labels.max() >= 10)):
        raise DatasetError(f"{where}: CIFAR-10 labels must be integers in 0..9")
    if data.dtype != np.uint8:
        if not np.issubdtype(data.dtype, np.integer) or (data.size and (data.min() < 0 or data.max() > 255)):
            raise DatasetError(f"{where}: CIFAR-10 pixels must be uint8, got {data.dtype}")
        data = data.astype(np.uint8)
    # Stored channel-major (1024 R, 1024 G, 1024 B); TF-Datasets' images are
    # height-width-channel, which is the row order of the reference's projection.
    hwc = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).reshape(-1, 3072)
    return np.ascontiguousarray(hwc), labels.astype(np.int64)


def _cifar_blobs(data_dir: str, names: Sequence[str]) -> list[tuple[str, bytes]]:
    """Raw bytes of the named batch files, from the archive or extracted files."""
    if not os.path.isdir(data_dir):
        raise _cifar_missing(data_dir, "no such directory")
    for folder in (data_dir, os.path.join(data_dir, CIFAR10_DIR)):
        if all(os.path.isfile(os.path.join(folder, n)) for n in names):
            out = []
            for n in names:
                with open(os.path.join(folder, n), "rb") as f:
                    out.append((os.path.join(folder, n), f.read()))
            return out
    archive = os.path.join(data_dir, CIFAR10_ARCHIVE)
    if not os.path.isfile(archive):
        present = [n for n in names if os.path.isfile(os.path.join(data_dir, n))
                   or os.path.isfile(os.path.join(data_dir, CIFAR10_DIR, n))]
        detail = f"only {', '.join(present)} present" if present else ""
        raise _cifar_missing(data_dir, detail)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = {os.path.basename(m.name): m for m in tar.getmembers() if m.isfile()}
            missing = [n for n in names if n not in members]
            if missing:
                raise DatasetError(f"{archive}: archive has no {', '.join(missing)}; is it the CIFAR-10 python "
                                   f"version ({CIFAR10_URL})?")
            out = []
            for n in names:
                f = tar.extractfile(members[n])
                assert f is not None
                out.append((f"{archive}:{members[n].name}", f.read()))
            return out
    except DatasetError:
        raise
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DatasetError(f"{archive}: truncated or not a tar.gz archive ({type(e).__name__}: {e}); "
                           f"download it again from {CIFAR10_URL}") from None


def load_cifar10(data_dir: str, split: str = "train") -> ImageDataset:
    """CIFAR-10 train (50,000, data_batch_1..5 in order) or test split."""
    names = CIFAR10_TRAIN_FILES if split == "train" else (CIFAR10_TEST_FILE,) if split == "test" else None
    if names is None:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    parts = [_parse_cifar_batch(blob, where) for where, blob in _cifar_blobs(data_dir, names)]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return ImageDataset(CIFAR10, images, labels, (32, 32, 3), os.path.abspath(data_dir))


# ------------------------------------------------------------ IDX files --

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str) -> np.ndarray:
    """An IDX array (the MNIST file format), gzip-compressed or not."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as e:
        raise DatasetError(f"{path}: cannot read ({type(e).__name__}: {e}); the file may be truncated") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DatasetError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DatasetError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DatasetError(f"{path}: IDX header says shape {shape} ({expected} bytes of data) but the file has "
                           f"{len(raw) - header}; the file is truncated or corrupt")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _find_idx(folder: str, stem: str) -> str | None:
    """`stem`, `stem.gz`, or the dotted variant (`train-images.idx3-ubyte`)."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


def _idx_dataset_dirs(name: str, data_dir: str | None) -> list[str]:
    if data_dir:
        return [data_dir, os.path.join(data_dir, name), os.path.join(data_dir, name.replace("_", "-"))]
    return [FASHION_MNIST_DEBIAN_DIR] if name == FASHION_MNIST else []


def load_idx_dataset(name: str, data_dir: str | None, split: str = "train") -> ImageDataset:
    """MNIST / Fashion-MNIST from IDX files in `data_dir` (or a `mnist/`,
    `fashion-mnist/` subfolder); without `data_dir`, Fashion-MNIST is looked
    for where Debian's `dataset-fashion-mnist` installs it."""
    if name not in (MNIST, FASHION_MNIST):
        raise ValueError(f"IDX datasets are {MNIST} and {FASHION_MNIST}, not {name!r}")
    if split not in IDX_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    image_stem, label_stem = IDX_FILES[split]
    dirs = _idx_dataset_dirs(name, data_dir)
    for folder in dirs:
        images_path, labels_path = _find_idx(folder, image_stem), _find_idx(folder, label_stem)
        if images_path and labels_path:
            break
        if images_path or labels_path:
            missing = label_stem if images_path else image_stem
            raise DatasetNotFoundError(f"{name}: {folder} has {os.path.basename(images_path or labels_path)} "
                                       f"but not {missing}[.gz]; both the images and the labels file are needed")
    else:
        url = FASHION_MNIST_URL if name == FASHION_MNIST else MNIST_URL
        where = (f"--data_dir={data_dir!r}" if data_dir else
                 f"{FASHION_MNIST_DEBIAN_DIR} (Debian package dataset-fashion-mnist)" if name == FASHION_MNIST
                 else "nowhere: pass --data_dir")
        raise DatasetNotFoundError(
            f"{name} not found in {where}. Expected the IDX files {image_stem}[.gz] and {label_stem}[.gz] "
            f"(train split: {', '.join(IDX_FILES['train'])}). They are published at {url}.")
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DatasetError(f"{images_path}: expected uint8 images of shape (n, rows, cols), "
                           f"got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DatasetError(f"{labels_path}: {labels.shape} labels for {images.shape[0]} images in {images_path}")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DatasetError(f"{labels_path}: labels must lie in 0..9")
    rows, cols = images.shape[1:]
    return ImageDataset(name, images.reshape(images.shape[0], -1), labels, (rows, cols, 1),
                        os.path.abspath(os.path.dirname(images_path)))


# --------------------------------------------------------- built-in data --

def builtin_data_path(filename: str = DIGITS_FILE) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", filename)


def load_digits() -> ImageDataset:
    """The UCI optical-recognition digits (8x8, pixels 0..16) shipped with the
    package; all 1,797 images (scikit-learn's `load_digits` copy)."""
    path = builtin_data_path()
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    except (OSError, EOFError, ValueError) as e:
        raise DatasetError(f"built-in digits data {path} is unreadable ({e}); reinstall the package") from None
    if table.ndim != 2 or table.shape[1] != 65:
        raise DatasetError(f"built-in digits data {path}: expected 65 columns, got {table.shape}")
    return ImageDataset(DIGITS, table[:, :64].astype(np.uint8), table[:, 64], (8, 8, 1), path)


def load_dataset(name: str, data_dir: str | None = None, split: str = "train") -> ImageDataset:
    """Any supported dataset by name (the reference uses the train split)."""
    key = str(name).strip().lower().replace("-", "_")
    if key in ("cifar", "cifar_10"):
        key = CIFAR10
    if key == CIFAR10:
        if not data_dir:
            raise _cifar_missing("", "no --data_dir given")
        return load_cifar10(data_dir, split)
    if key in (MNIST, FASHION_MNIST):
        return load_idx_dataset(key, data_dir, split)
    if key == DIGITS:
        if split != "train":
            raise ValueError("the built-in digits have a single split, 'train'")
        return load_digits()
    raise ValueError(f"unknown dataset {name!r}; use one of: {', '.join(DATASETS)}")


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
                          sizes: SplitSizes = SplitSizes(), num_search_tasks: int = 10, num_final_tasks: int = 100,
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
