"""Task generation: seed rules, generators, .npz loading, presets (spec §10)."""

from __future__ import annotations

import numpy as np
import pytest

from azero_jax import fitness as fitness_lib
from azero_jax import tasks as tasks_lib
from azero_jax.tasks import TaskSpec


def linear(num_tasks: int = 1, **kw) -> TaskSpec:
    return TaskSpec("scalar_linear_regression", features=kw.pop("features", 4), num_train=kw.pop("num_train", 20),
                    num_valid=kw.pop("num_valid", 10), num_tasks=num_tasks, **kw)


def nn(num_tasks: int = 1, **kw) -> TaskSpec:
    return TaskSpec("scalar_2layer_nn_regression", features=kw.pop("features", 4), num_train=kw.pop("num_train", 20),
                    num_valid=kw.pop("num_valid", 10), num_tasks=num_tasks, **kw)


# ------------------------------------------------------------------ seeds --


def test_default_seeds_then_continue_plus_one():
    seeds = tasks_lib.task_seeds(linear(11))
    assert [d for d, _ in seeds] == [11001, 11012, 11010, 11000, 11006, 11008, 11007, 11003, 11004, 11005, 11006]
    assert [p for _, p in seeds] == [1001, 1012, 1010, 1000, 1006, 1008, 1007, 1003, 1004, 1005, 1006]


def test_given_seeds_continue_from_last_given():
    spec = linear(5, data_seeds=(1000000,), param_seeds=(7, 3, 50))
    assert tasks_lib.task_seeds(spec) == [(1000000, 7), (1000001, 3), (1000002, 50), (1000003, 51), (1000004, 52)]


def test_data_and_param_defaults_apply_independently():
    spec = linear(2, data_seeds=(5,))
    assert tasks_lib.task_seeds(spec) == [(5, 1001), (6, 1012)]


def test_seed_validation():
    with pytest.raises(ValueError, match="data_seeds has 2 seeds but num_tasks is 1"):
        linear(1, data_seeds=(1, 2))
    with pytest.raises(ValueError, match=r"param_seeds\[0\]"):
        linear(1, param_seeds=(-1,))
    assert linear(1, data_seeds=[3]).data_seeds == (3,)


def test_randomize_task_seeds_range_and_determinism():
    spec = linear(500)
    a = tasks_lib.randomize_task_seeds(spec, np.random.default_rng(0))
    b = tasks_lib.randomize_task_seeds(spec, np.random.default_rng(0))
    c = tasks_lib.randomize_task_seeds(spec, np.random.default_rng(1))
    assert a == b and a != c
    for seeds in (a.data_seeds, a.param_seeds):
        assert len(seeds) == 500
        assert all(1 < s < 2**32 - 1 for s in seeds)
        assert all(isinstance(s, int) for s in seeds)
    assert a.data_seeds != a.param_seeds
    assert (a.kind, a.features, a.num_train, a.num_valid, a.num_tasks) == (
        spec.kind, spec.features, spec.num_train, spec.num_valid, spec.num_tasks)
    assert tasks_lib.task_seeds(a) == list(zip(a.data_seeds, a.param_seeds, strict=True))


def test_make_tasks_with_rng_randomizes_seeds():
    t1 = tasks_lib.make_tasks(linear(3), rng=np.random.default_rng(4))
    t2 = tasks_lib.make_tasks(linear(3), rng=np.random.default_rng(4))
    assert [t.data_seed for t in t1] == [t.data_seed for t in t2]
    assert t1[0].data_seed not in tasks_lib.DEFAULT_DATA_SEEDS
    np.testing.assert_array_equal(t1[2].x_train, t2[2].x_train)


# ------------------------------------------------------------- generators --


def test_linear_task_shapes_labels_and_metadata():
    (task,) = tasks_lib.make_tasks(linear(1, features=8, num_train=30, num_valid=7, data_seeds=(42,),
                                          param_seeds=(43,), num_train_epochs=2))
    assert task.x_train.shape == (30, 8) and task.y_train.shape == (30,)
    assert task.x_valid.shape == (7, 8) and task.y_valid.shape == (7,)
    assert task.eval_type == fitness_lib.RMS_ERROR and task.num_train_epochs == 2
    assert (task.data_seed, task.param_seed, task.index, task.name) == (42, 43, 0, "linear[0]")
    # Recompute independently: data rng -> train then valid features; param rng -> w.
    data_rng = np.random.default_rng(42 + 939723201)
    x = data_rng.standard_normal((37, 8))
    w = np.random.default_rng(43 + 997958712).standard_normal(8)
    np.testing.assert_array_equal(task.x_train, x[:30])
    np.testing.assert_array_equal(task.x_valid, x[30:])
    np.testing.assert_allclose(task.y_train, x[:30] @ w, rtol=1e-13)
    np.testing.assert_allclose(task.y_valid, x[30:] @ w, rtol=1e-13)


def test_same_seeds_same_task_other_seeds_other_task():
    a = tasks_lib.make_tasks(linear(1, data_seeds=(9,), param_seeds=(9,)))[0]
    b = tasks_lib.make_tasks(linear(1, data_seeds=(9,), param_seeds=(9,)))[0]
    c = tasks_lib.make_tasks(linear(1, data_seeds=(9,), param_seeds=(10,)))[0]
    d = tasks_lib.make_tasks(linear(1, data_seeds=(10,), param_seeds=(9,)))[0]
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_valid, b.y_valid)
    np.testing.assert_array_equal(a.x_train, c.x_train)  # param seed only moves the weights
    assert not np.array_equal(a.y_train, c.y_train)
    assert not np.array_equal(a.x_train, d.x_train)


def test_nn_teacher_task_labels_and_zeroed_units():
    (task,) = tasks_lib.make_tasks(nn(1, features=5, num_train=40, num_valid=9, data_seeds=(3,), param_seeds=(4,)))
    assert task.name == "nn[0]" and (task.data_seed, task.param_seed) == (3, 4)
    w1, w2 = tasks_lib.nn_teacher_weights(4, 5)
    assert np.all(w1[[0, 2], :] == 0) and np.all(w1[[1, 3, 4], :] != 0)
    assert w2[0] == 0 and w2[2] == 0 and np.all(w2[[1, 3, 4]] != 0)
    # Independent recomputation: W1 then w2 from the param rng.
    prng = np.random.default_rng(4 + 174299604)
    w1_ref = prng.standard_normal((5, 5))
    w1_ref[0] = 0
    w1_ref[2] = 0
    w2_ref = prng.standard_normal(5)
    w2_ref[[0, 2]] = 0
    x = np.random.default_rng(3 + 865546086).standard_normal((49, 5))
    y = np.array([sum(w2_ref[j] * max(0.0, float(w1_ref[j] @ row)) for j in range(5)) for row in x])
    np.testing.assert_array_equal(task.x_train, x[:40])
    np.testing.assert_array_equal(task.x_valid, x[40:])
    np.testing.assert_allclose(task.y_train, y[:40], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(task.y_valid, y[40:], rtol=1e-12, atol=1e-14)
    assert np.any(task.y_train != 0)


def test_nn_teacher_needs_three_features():
    with pytest.raises(ValueError, match="features >= 3"):
        nn(1, features=2)
    nn(1, features=3)


def test_make_tasks_flattens_collection_with_global_index():
    tasks = tasks_lib.make_tasks([linear(3), nn(2)])
    assert [t.index for t in tasks] == [0, 1, 2, 3, 4]
    assert [t.name for t in tasks] == ["linear[0]", "linear[1]", "linear[2]", "nn[3]", "nn[4]"]
    # each spec restarts its own seed sequence
    assert [t.data_seed for t in tasks] == [11001, 11012, 11010, 11001, 11012]


def test_task_spec_validation():
    with pytest.raises(ValueError, match="unknown task kind"):
        TaskSpec("cifar", features=4, num_train=1, num_valid=1)
    with pytest.raises(ValueError, match="features is required"):
        TaskSpec("linear", num_train=1, num_valid=1)
    with pytest.raises(ValueError, match="num_train must be an integer >= 1"):
        linear(1, num_train=0)
    with pytest.raises(ValueError, match="num_tasks"):
        linear(0)
    with pytest.raises(ValueError, match="eval_type must be rms"):
        linear(1, eval_type="accuracy")
    with pytest.raises(ValueError, match="need TaskSpec.path"):
        TaskSpec("explicit")
    with pytest.raises(ValueError, match="only used by explicit"):
        linear(1, path="x.npz")
    with pytest.raises(ValueError, match="not a TaskSpec"):
        tasks_lib.make_tasks([linear(1), "demo_search"])
    assert TaskSpec("linear", features=2, num_train=1, num_valid=1).kind == tasks_lib.LINEAR
    assert TaskSpec("scalar_2layer_nn_regression_task", features=4, num_train=1, num_valid=1).kind == tasks_lib.NN_2LAYER


# -------------------------------------------------------------------- npz --


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def test_explicit_npz_one_task(tmp_path):
    rng = np.random.default_rng(0)
    arrays = dict(x_train=rng.normal(size=(12, 3)), y_train=(rng.normal(size=12) > 0).astype(np.float64),
                  x_valid=rng.normal(size=(5, 3)), y_valid=(rng.normal(size=5) > 0).astype(np.float32))
    path = _write_npz(tmp_path / "mydata.npz", **arrays)
    (task,) = tasks_lib.make_tasks(TaskSpec("npz", path=path, eval_type="accuracy", data_seeds=(77,)))
    assert task.name == "mydata[0]" and task.eval_type == fitness_lib.ACCURACY and task.data_seed == 77
    for key, value in arrays.items():
        np.testing.assert_array_equal(getattr(task, key), value.astype(np.float64))
    # first rows when sizes are given; features must match
    (small,) = tasks_lib.make_tasks(TaskSpec("explicit", path=path, features=3, num_train=10, num_valid=4))
    np.testing.assert_array_equal(small.x_train, arrays["x_train"][:10])
    assert small.num_valid == 4
    with pytest.raises(ValueError, match="has 3 features, but TaskSpec.features is 4"):
        tasks_lib.make_tasks(TaskSpec("explicit", path=path, features=4))
    with pytest.raises(ValueError, match="fewer than the requested 13 / 5"):
        tasks_lib.make_tasks(TaskSpec("explicit", path=path, num_train=13))


def test_explicit_npz_stacked_tasks(tmp_path):
    rng = np.random.default_rng(1)
    path = _write_npz(tmp_path / "stack.npz", x_train=rng.normal(size=(3, 8, 2)), y_train=rng.normal(size=(3, 8)),
                      x_valid=rng.normal(size=(3, 4, 2)), y_valid=rng.normal(size=(3, 4)))
    tasks = tasks_lib.make_tasks([linear(1), TaskSpec("explicit", path=path, num_tasks=2)])
    assert [t.index for t in tasks] == [0, 1, 2] and tasks[2].name == "stack[2]"
    assert tasks[2].x_train.shape == (8, 2)
    with pytest.raises(ValueError, match="holds 3 task"):
        tasks_lib.make_tasks(TaskSpec("explicit", path=path, num_tasks=4))


def test_explicit_npz_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tasks_lib.make_tasks(TaskSpec("explicit", path=str(tmp_path / "nope.npz")))
    x, y = np.zeros((4, 2)), np.zeros(4)
    missing = _write_npz(tmp_path / "missing.npz", x_train=x, y_train=y, x_valid=x)
    with pytest.raises(ValueError, match=r"missing\.npz.*missing key\(s\) y_valid"):
        tasks_lib.make_tasks(TaskSpec("explicit", path=missing))
    bad_y = _write_npz(tmp_path / "bady.npz", x_train=x, y_train=np.zeros(3), x_valid=x, y_valid=y)
    with pytest.raises(ValueError, match=r"bady\.npz.*y_train has shape \(3,\), expected \(4,\)"):
        tasks_lib.make_tasks(TaskSpec("explicit", path=bad_y))
    bad_f = _write_npz(tmp_path / "badf.npz", x_train=x, y_train=y, x_valid=np.zeros((4, 3)), y_valid=y)
    with pytest.raises(ValueError, match=r"badf\.npz.*x_valid has shape \(4, 3\), expected \(n, 2\)"):
        tasks_lib.make_tasks(TaskSpec("explicit", path=bad_f))
    bad_x = _write_npz(tmp_path / "badx.npz", x_train=np.zeros(4), y_train=y, x_valid=x, y_valid=y)
    with pytest.raises(ValueError, match=r"badx\.npz.*x_train must have shape"):
        tasks_lib.make_tasks(TaskSpec("explicit", path=bad_x))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match=r"garbage\.npz.*not a readable \.npz"):
        tasks_lib.make_tasks(TaskSpec("explicit", path=str(garbage)))
    single = tmp_path / "single.npy"
    np.save(single, x)
    with pytest.raises(ValueError, match="not an .npz archive"):
        tasks_lib.make_tasks(TaskSpec("explicit", path=str(single)))


# ---------------------------------------------------------------- presets --


def test_presets_match_reference_configs():
    s = tasks_lib.get_preset("demo_search")
    assert (s.kind, s.features, s.num_train, s.num_valid, s.num_tasks, s.eval_type) == (
        tasks_lib.LINEAR, 4, 100, 100, 10, fitness_lib.RMS_ERROR)
    sel = tasks_lib.get_preset("demo_select")
    assert (sel.num_train, sel.num_valid, sel.num_tasks, sel.data_seeds) == (1000, 100, 100, ())
    final = tasks_lib.get_preset("demo_final")
    assert tasks_lib.task_seeds(final)[:2] == [(1000000, 2000000), (1000001, 2000001)]
    assert tasks_lib.task_seeds(final)[-1] == (1000099, 2000099)
    t = tasks_lib.get_preset("nn_teacher")
    assert (t.kind, t.features, t.num_train, t.num_valid, t.num_tasks) == (tasks_lib.NN_2LAYER, 4, 1000, 100, 1)
    assert tasks_lib.task_seeds(tasks_lib.get_preset("nn_teacher_heldout")) == [(19000, 9000)]
    integ = tasks_lib.get_preset("integration_linear_select")
    assert (integ.num_train, integ.num_valid, integ.num_tasks) == (10000, 100, 100)


def test_preset_overrides_and_unknown_names():
    spec = tasks_lib.get_preset("demo_select", num_tasks=3, num_train=50)
    assert (spec.num_tasks, spec.num_train, spec.num_valid) == (3, 50, 100)
    assert tasks_lib.get_preset("demo_select").num_tasks == 100  # preset untouched
    with pytest.raises(ValueError, match="valid presets: .*demo_final.*demo_search"):
        tasks_lib.get_preset("demo")
    with pytest.raises(ValueError, match="unknown TaskSpec field"):
        tasks_lib.get_preset("demo_search", featurs=8)
    with pytest.raises(ValueError, match="features >= 3"):
        tasks_lib.get_preset("nn_teacher", features=2)


def test_make_tasks_from_preset_name():
    tasks = tasks_lib.make_tasks("demo_search")
    assert len(tasks) == 10 and tasks[9].name == "linear[9]"
    assert (tasks[8].data_seed, tasks[8].param_seed) == (11004, 1004)
    assert tasks[0].x_train.shape == (100, 4) and tasks[0].x_valid.shape == (100, 4)


def test_accuracy_labels_must_be_0_or_1_in_both_splits(tmp_path):
    rng = np.random.default_rng(2)
    good = dict(x_train=rng.normal(size=(12, 3)), y_train=np.ones(12), x_valid=rng.normal(size=(5, 3)),
                y_valid=np.zeros(5))
    for split in ("y_train", "y_valid"):
        bad = dict(good, **{split: np.full(good[split].shape, 0.5)})
        path = _write_npz(tmp_path / f"bad_{split}.npz", **bad)
        with pytest.raises(ValueError, match=f"{split} of an accuracy task must hold labels 0 and 1 only"):
            tasks_lib.make_tasks(TaskSpec("npz", path=path, eval_type="accuracy"))
        (rms,) = tasks_lib.make_tasks(TaskSpec("npz", path=path, eval_type="rms"))  # any real labels for rms
        assert rms.eval_type == fitness_lib.RMS_ERROR
