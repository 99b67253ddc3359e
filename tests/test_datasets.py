"""Dataset loaders (tiny CIFAR-10 pickle / IDX fixtures written here), the
projected binary pipeline, pair splits and the projected-task cache."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest

from azero_jax import datasets as D
from azero_jax import tasks as tasks_lib
from azero_jax.datasets import images as D_images

# ------------------------------------------------------------ fixtures --


def _cifar_batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"test", b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, n)]}


def _write_cifar(folder, n: int = 6) -> dict[str, dict]:
    os.makedirs(folder, exist_ok=True)
    batches = {name: _cifar_batch(n, i) for i, name in enumerate(D.CIFAR10_TRAIN_FILES + (D.CIFAR10_TEST_FILE,))}
    for name, batch in batches.items():
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(batch, f, protocol=2)
    return batches


def _idx_bytes(array: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + \
        array.astype(np.uint8).tobytes()


def _write_idx(folder, n: int = 20, split: str = "train", gz: bool = True, dotted: bool = False):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    paths = []
    for stem, arr in zip(D.IDX_FILES[split], (images, labels), strict=True):
        name = stem.replace("-idx", ".idx") if dotted else stem
        path = os.path.join(folder, name + (".gz" if gz else ""))
        data = _idx_bytes(arr)
        with open(path, "wb") as f:
            f.write(gzip.compress(data) if gz else data)
        paths.append(path)
    return images, labels, paths


# ------------------------------------------------------------- CIFAR-10 --

def test_cifar_extracted_files_and_hwc_order(tmp_path):
    batches = _write_cifar(tmp_path / D.CIFAR10_DIR)
    ds = D.load_cifar10(str(tmp_path))
    assert ds.images.shape == (30, 3072) and ds.images.dtype == np.uint8 and ds.image_shape == (32, 32, 3)
    first = batches["data_batch_1"][b"data"][0]
    # Stored as 1024 R, 1024 G, 1024 B; loaded height-width-channel like TF-Datasets.
    assert ds.images[0, :3].tolist() == [first[0], first[1024], first[2048]]
    assert ds.images[0, 3] == first[1]
    assert ds.labels.tolist() == sum((batches[n][b"labels"] for n in D.CIFAR10_TRAIN_FILES), [])
    test = D.load_dataset("cifar10", str(tmp_path / D.CIFAR10_DIR), split="test")  # files directly in data_dir
    assert test.num_examples == 6


def test_cifar_from_tar_gz(tmp_path):
    src = tmp_path / "src"
    _write_cifar(src / D.CIFAR10_DIR)
    with tarfile.open(tmp_path / D.CIFAR10_ARCHIVE, "w:gz") as tar:
        tar.add(src / D.CIFAR10_DIR, arcname=D.CIFAR10_DIR)
    ds = D.load_cifar10(str(tmp_path))
    assert ds.images.shape == (30, 3072)
    np.testing.assert_array_equal(ds.images, D.load_cifar10(str(src)).images)


def test_cifar_missing_dir_names_files_and_url(tmp_path):
    with pytest.raises(D.DatasetNotFoundError) as e:
        D.load_dataset("cifar10", str(tmp_path / "nope"))
    msg = str(e.value)
    assert D.CIFAR10_ARCHIVE in msg and "data_batch_1" in msg and "test_batch" in msg and D.CIFAR10_URL in msg
    with pytest.raises(D.DatasetNotFoundError, match="no --data_dir"):
        D.load_dataset("cifar10", None)
    os.makedirs(tmp_path / "part")
    (tmp_path / "part" / "data_batch_1").write_bytes(b"x")
    with pytest.raises(D.DatasetNotFoundError, match="only data_batch_1 present"):
        D.load_cifar10(str(tmp_path / "part"))


@pytest.mark.parametrize("mutate, message", [
    (lambda b: pickle.dumps(b, protocol=2)[:500], "not a readable CIFAR-10 python batch"),
    (lambda b: pickle.dumps({b"data": b[b"data"]}), "no labels entry"),
    (lambda b: pickle.dumps({b"data": b[b"data"][:, :100], b"labels": b[b"labels"]}), r"shape \(n, 3072\)"),
    (lambda b: pickle.dumps({b"data": b[b"data"], b"labels": b[b"labels"][:2]}), "2 labels for 6 images"),
    (lambda b: pickle.dumps({b"data": b[b"data"], b"labels": [12] * 6}), "labels must be integers in 0..9"),
    (lambda b: pickle.dumps(os.system), "refusing to load"),
])
def test_cifar_bad_batches(tmp_path, mutate, message):
    batches = _write_cifar(tmp_path)
    (tmp_path / "data_batch_3").write_bytes(mutate(batches["data_batch_3"]))
    with pytest.raises(D.DatasetError, match=message) as e:
        D.load_cifar10(str(tmp_path))
    assert "data_batch_3" in str(e.value)


def test_cifar_truncated_archive(tmp_path):
    src = tmp_path / "src"
    _write_cifar(src)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src, arcname=D.CIFAR10_DIR)
    (tmp_path / D.CIFAR10_ARCHIVE).write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(D.DatasetError, match="truncated or not a tar.gz"):
        D.load_cifar10(str(tmp_path))


# ------------------------------------------------------------------ IDX --

@pytest.mark.parametrize("gz, dotted", [(True, False), (False, False), (True, True)])
def test_idx_loader(tmp_path, gz, dotted):
    images, labels, _ = _write_idx(tmp_path / "mnist", gz=gz, dotted=dotted)
    ds = D.load_dataset("mnist", str(tmp_path))  # found in the mnist/ subfolder
    assert ds.images.shape == (20, 784) and ds.image_shape == (28, 28, 1)
    np.testing.assert_array_equal(ds.images, images.reshape(20, -1))
    np.testing.assert_array_equal(ds.labels, labels)


def test_idx_bad_files(tmp_path):
    _, _, (img_path, lbl_path) = _write_idx(tmp_path, gz=False)
    raw = open(img_path, "rb").read()
    open(img_path, "wb").write(raw[:-10])
    with pytest.raises(D.DatasetError, match="truncated or corrupt"):
        D.load_dataset("fashion_mnist", str(tmp_path))
    open(img_path, "wb").write(gzip.compress(raw)[:200])  # truncated gzip
    with pytest.raises(D.DatasetError, match="truncated"):
        D.read_idx(img_path)
    open(img_path, "wb").write(b"\x12\x34\x56\x78rest")
    with pytest.raises(D.DatasetError, match="not an IDX file"):
        D.read_idx(img_path)
    open(img_path, "wb").write(raw)
    open(lbl_path, "wb").write(_idx_bytes(np.zeros(7, np.uint8)))
    with pytest.raises(D.DatasetError, match=r"\(7,\) labels for 20 images"):
        D.load_dataset("mnist", str(tmp_path))
    os.remove(lbl_path)
    with pytest.raises(D.DatasetNotFoundError, match="train-labels-idx1-ubyte"):
        D.load_dataset("mnist", str(tmp_path))
    with pytest.raises(D.DatasetNotFoundError, match="train-images-idx3-ubyte.*published at"):
        D.load_dataset("mnist", str(tmp_path / "empty"))


def test_fashion_mnist_found_where_the_debian_package_installs_it(tmp_path, monkeypatch):
    """Without --data_dir, Fashion-MNIST is looked up in the Debian package's
    folder (redirected here to a tiny fixture, so no package is needed)."""
    _write_idx(tmp_path, n=20, split="test")
    monkeypatch.setattr(D_images, "FASHION_MNIST_DEBIAN_DIR", str(tmp_path))  # where load_idx_dataset reads it
    ds = D.load_dataset("fashion_mnist", split="test")
    assert ds.images.shape[0] == 20
    with pytest.raises(D.DatasetNotFoundError):
        D.load_dataset("mnist", split="test")  # MNIST has no default location


def test_builtin_digits():
    ds = D.load_dataset("digits")
    assert ds.images.shape == (1797, 64) and ds.images.max() == 16
    assert ds.class_counts().tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert D.capped_sizes(D.SplitSizes(), ds) == D.SplitSizes(278, 35, 35)
    assert D.capped_sizes(D.SplitSizes(100, 20, 20), ds) == D.SplitSizes(100, 20, 20)
    with pytest.raises(ValueError, match="unknown dataset"):
        D.load_dataset("imagenet")


# ------------------------------------------------------ pairs and splits --

def test_pair_split_36_9():
    search, held = D.search_pairs(), D.held_out_pairs()
    assert len(D.all_pairs()) == 45 and len(search) == 36 and len(held) == 9
    assert set(search).isdisjoint(held) and set(search) | set(held) == set(D.all_pairs())
    assert set(held) == {(0, 5), (0, 9), (1, 8), (2, 9), (3, 5), (3, 6), (3, 8), (4, 6), (8, 9)}
    assert all(i < j for i, j in search)
    choices = D.choose_tasks(100, held)
    assert choices == D.choose_tasks(100, held)
    assert all((c.positive, c.negative) in held and 0 <= c.seed < 100 for c in choices)
    assert len({(c.positive, c.negative) for c in choices}) == 9
    assert [c.data_seed for c in choices[:9]] == [11001, 11012, 11010, 11000, 11006, 11008, 11007, 11003, 11004]


def test_stratified_split_matches_sklearn_train_test_split():
    # Expected indices computed with scikit-learn 1.9.1's train_test_split
    # (train_size=12, test_size=5, random_state=3, stratify=y).
    y = np.array([0] * 7 + [1] * 5 + [0] * 3 + [1] * 5)
    train, test = D.stratified_split(y, 12, 5, 3)
    assert train.tolist() == [8, 5, 6, 18, 2, 11, 14, 9, 1, 10, 4, 19]
    assert test.tolist() == [16, 12, 7, 17, 0]
    with pytest.raises(ValueError, match="cannot split"):
        D.stratified_split(y, 18, 5, 0)


def test_projection_shapes_standardization_stratification_determinism():
    ds = D.load_digits()
    sizes = D.SplitSizes(200, 50, 50)
    t = D.project_pair(ds, 3, 8, 16, 7, sizes)
    assert t.x_train.shape == (200, 16) and t.x_valid.shape == (50, 16) and t.x_test.shape == (50, 16)
    assert t.x_train.dtype == np.float32
    np.testing.assert_allclose(t.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(t.x_train.std(axis=0), 1.0, atol=1e-4)
    assert abs(t.x_valid.mean()) < 0.5 and not np.allclose(t.x_valid.mean(axis=0), 0.0, atol=1e-5)
    # 150 images per class -> exactly half of every split is positive.
    assert (t.y_train.sum(), t.y_valid.sum(), t.y_test.sum()) == (100, 25, 25)
    again = D.project_pair(ds, 3, 8, 16, 7, sizes)
    for k, v in t.arrays().items():
        np.testing.assert_array_equal(v, getattr(again, k))
    other = D.project_pair(ds, 3, 8, 16, 8, sizes)
    assert not np.array_equal(t.x_train, other.x_train)
    assert D.project_pair(ds, 3, 8, 5, 7, sizes).x_train.shape == (200, 5)
    state = np.random.get_state()[1].copy()
    D.project_pair(ds, 0, 1, 4, 1, sizes)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # global NumPy RNG untouched
    # Positive = the smaller class id -> label 1 (the first per_class rows).
    x, y = D.pair_examples(ds, 3, 8, 150)
    np.testing.assert_array_equal(x[0], ds.images[ds.labels == 3][0])
    assert y[:150].all() and not y[150:].any()
    with pytest.raises(D.DatasetError, match="fewer than"):
        D.project_pair(ds, 3, 8, 16, 0, D.SplitSizes(8000, 1000, 1000))


def test_stratification_unbalanced():
    y = np.array([0] * 90 + [1] * 30)
    for seed in range(3):
        train, test = D.stratified_split(y, 80, 20, seed)
        assert len(set(train) | set(test)) == 100  # disjoint
        assert (y[train].sum(), y[test].sum()) == (20, 5)  # the 3:1 class ratio in both parts
    train2, _ = D.stratified_split(y, 80, 20, 0)
    assert not np.array_equal(train2, D.stratified_split(y, 80, 20, 1)[0])


# ------------------------------------------------------------------ cache --

def _cache(tmp_path, calls):
    def loader():
        calls.append(1)
        return D.load_digits()
    return D.ProjectedTaskCache("digits", loader, str(tmp_path))


def test_cache_hit_and_corrupt_rebuild(tmp_path):
    calls: list[int] = []
    sizes = D.SplitSizes(100, 20, 20)
    first = _cache(tmp_path, calls).get(0, 1, 8, 5, sizes)
    assert calls == [1]
    cache = _cache(tmp_path, calls)
    hit = cache.get(0, 1, 8, 5, sizes)
    assert calls == [1] and (cache.hits, cache.misses) == (1, 0)  # no dataset load on a hit
    np.testing.assert_array_equal(hit.x_train, first.x_train)
    path = cache.path((0, 1, 5), 8, sizes)
    assert os.path.basename(path) == "binary_digits-pos_0-neg_1-dim_8-seed_5-n_100_20_20.npz"
    for corrupt in (b"garbage", open(path, "rb").read()[:300]):
        open(path, "wb").write(corrupt)
        cache = _cache(tmp_path, calls)
        again = cache.get(0, 1, 8, 5, sizes)
        assert cache.rebuilt == 1 and cache.misses == 1
        np.testing.assert_array_equal(again.x_valid, first.x_valid)
    # A well-formed file whose data no longer matches its checksum.
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["x_train"] = arrays["x_train"] + 1.0
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    cache = _cache(tmp_path, calls)
    np.testing.assert_array_equal(cache.get(0, 1, 8, 5, sizes).x_train, first.x_train)
    assert cache.rebuilt == 1


def test_collections_feed_explicit_task_specs(tmp_path):
    search, final, sizes = D.projected_collections("digits", features=8, num_search_tasks=4, num_final_tasks=6,
                                                   cache_dir=str(tmp_path))
    assert sizes == D.SplitSizes(278, 35, 35)
    assert all((c.positive, c.negative) in D.search_pairs() for c in search.choices)
    assert all((c.positive, c.negative) in D.held_out_pairs() for c in final.choices)
    tasks = tasks_lib.make_tasks(tasks_lib.TaskSpec(**final.task_dict()))
    assert len(tasks) == 6 and tasks[0].x_train.shape == (278, 8) and tasks[0].eval_type == "accuracy"
    assert final.arrays()["x_test"].shape == (6, 35, 8)
    mtime = os.path.getmtime(final.path)
    again = D.projected_collections("digits", features=8, num_search_tasks=4, num_final_tasks=6,
                                    cache_dir=str(tmp_path))[1]
    assert again.path == final.path and os.path.getmtime(final.path) == mtime
    open(final.path, "wb").write(b"corrupt")
    rebuilt = D.projected_collections("digits", features=8, num_search_tasks=4, num_final_tasks=6,
                                      cache_dir=str(tmp_path))[1]
    assert len(rebuilt.tasks()) == 6
