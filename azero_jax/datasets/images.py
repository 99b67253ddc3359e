"""Image datasets read from local files, as labelled uint8 splits (spec §11).

Loaders read local files only (no network at run time):

* CIFAR-10 from the official python-pickle archive (`cifar-10-python.tar.gz`
  or its extracted `data_batch_1..5` / `test_batch`);
* MNIST and Fashion-MNIST from their IDX files (gzip or not); Fashion-MNIST
  is also found where the Debian package `dataset-fashion-mnist` installs it;
* `digits`, the UCI optical-recognition 8x8 handwritten digits (1,797 images,
  CC BY 4.0), shipped in `azero_jax/data/` so everything runs on a fresh
  machine (see `azero_jax/data/README.md`).
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import pickle
import struct
import tarfile
from collections.abc import Sequence
from typing import Any

import numpy as np

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
    """`filename` under the package's `azero_jax/data/` folder."""
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(package_dir, "data", filename)


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

