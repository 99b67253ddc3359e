"""The reference interpreter's evaluation loop (spec §6-§7)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from azero_jax import fitness
from azero_jax.program import Algorithm, MemoryShape, make_instruction
from azero_jax.reference import evaluate, evaluate_task
from azero_jax.tasks import Task

MEM = MemoryShape(6, 4, 2, 3)


def mi(name, **kw):
    return make_instruction(name, **kw)


def linear_task(n_train=50, n_valid=20, features=3, seed=0, eval_type="rms", epochs=1):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=features)
    x, xv = rng.normal(size=(n_train, features)), rng.normal(size=(n_valid, features))
    y, yv = x @ w, xv @ w
    if eval_type == "accuracy":
        y, yv = (y > 0).astype(float), (yv > 0).astype(float)
    return Task(x, y, xv, yv, eval_type=eval_type, num_train_epochs=epochs, data_seed=seed)


def test_noop_program_scores_the_formula_for_predicting_zero():
    task = linear_task()
    result = evaluate_task(Algorithm(), task, MEM)
    rmse = math.sqrt(np.mean(task.y_valid**2))
    assert result.fitness == pytest.approx(1 - 2 / math.pi * math.atan(rmse), rel=1e-12)
    assert result.train_steps == task.num_train and not result.stopped_early
    np.testing.assert_array_equal(result.valid_predictions, 0.0)


def test_noop_program_on_classification_predicts_class_zero():
    task = linear_task(eval_type="accuracy")
    result = evaluate_task(Algorithm(), task, MEM)
    assert result.fitness == pytest.approx(1 - task.y_valid.mean())  # sigmoid(0) = 0.5 is not > 0.5


def test_nan_prediction_stops_training_early_with_fitness_zero():
    # s1 = 0 / 0 = NaN at the first step.
    algo = Algorithm(predict=(mi("SCALAR_DIVISION", in1=2, in2=2, out=1),))
    result = evaluate_task(algo, linear_task(), MEM)
    assert result.fitness == 0.0 and result.stopped_early and result.train_steps == 1


def test_huge_error_stops_training_at_the_counted_step():
    # s1 grows by 30 per step: |y - s1| first exceeds 100 at step 4 (s1 = 120 - ...).
    algo = Algorithm(setup=(mi("SCALAR_CONST_SET", out=2, d=30.0),),
                     predict=(mi("SCALAR_SUM", in1=3, in2=2, out=3), mi("SCALAR_SUM", in1=3, in2=4, out=1)))
    task = Task(np.zeros((10, 3)), np.zeros(10), np.zeros((5, 3)), np.zeros(5))
    result = evaluate_task(algo, task, MEM)
    assert result.stopped_early and result.train_steps == 4 and result.fitness == 0.0
    assert result.train_errors == [30.0, 60.0, 90.0, 120.0]


def test_error_of_exactly_max_abs_error_does_not_stop():
    algo = Algorithm(setup=(mi("SCALAR_CONST_SET", out=1, d=100.0),))
    task = Task(np.zeros((3, 3)), np.zeros(3), np.zeros((2, 3)), np.zeros(2))
    result = evaluate_task(algo, task, MEM)
    # Predict does not touch s1, so |0 - 100| = 100 every step: no stop; validation
    # error 100 is not > 100 either.
    assert not result.stopped_early and result.train_steps == 3
    assert result.fitness == pytest.approx(fitness.flip_and_squash(100.0))


def test_label_hidden_in_predict_and_features_restored_before_learn():
    # Predict: s3 = s0 (must see 0), v0 = v0 + v0 (overwrites features).
    # Learn: s4 = s4 + s3 (accumulates what Predict saw), v1 = v1 + v0 (accumulates x).
    algo = Algorithm(predict=(mi("SCALAR_SUM", in1=0, in2=0, out=3), mi("VECTOR_SUM", in1=0, in2=0, out=0)),
                     learn=(mi("SCALAR_SUM", in1=4, in2=3, out=4), mi("VECTOR_SUM", in1=1, in2=0, out=1),
                            mi("SCALAR_SUM", in1=5, in2=0, out=5)))
    task = linear_task(n_train=7)
    from azero_jax.reference import _Executor  # noqa: PLC0415 - white-box check of memory

    result = evaluate_task(algo, task, MEM)
    assert result.train_steps == 7
    executor = _Executor(algo, task, MEM, 0)
    executor.run("setup", 0, 0)
    for i in range(task.num_train):
        executor.memory.vector[0] = task.x_train[i]
        executor.memory.scalar[0] = 0.0
        executor.run("predict", 1, i)
        executor.memory.vector[0] = task.x_train[i]
        executor.memory.scalar[0] = task.y_train[i]
        executor.run("learn", 1, i)
    assert executor.memory.scalar[4] == 0.0
    np.testing.assert_allclose(executor.memory.vector[1], task.x_train.sum(axis=0))
    assert executor.memory.scalar[5] == pytest.approx(task.y_train.sum())


def test_learn_sees_sigmoid_of_prediction_for_classification():
    # Predict: s1 = s2 (= 3 after Setup). Learn: s4 = s1 (copy of what Learn saw).
    algo = Algorithm(setup=(mi("SCALAR_CONST_SET", out=2, d=3.0),),
                     predict=(mi("SCALAR_SUM", in1=2, in2=5, out=1),),
                     learn=(mi("SCALAR_SUM", in1=1, in2=5, out=4), mi("SCALAR_SUM", in1=4, in2=5, out=3)))
    task = linear_task(eval_type="accuracy", n_train=2)
    result = evaluate_task(algo, task, MEM)
    assert result.train_errors[0] == pytest.approx(abs(task.y_train[0] - 1 / (1 + math.exp(-3.0))))
    np.testing.assert_array_equal(result.valid_predictions, 3.0)  # raw s1 reported


def test_tiny_positive_prediction_counts_as_class_zero():
    algo = Algorithm(setup=(mi("SCALAR_CONST_SET", out=2, d=1e-17),), predict=(mi("SCALAR_SUM", in1=2, in2=5, out=1),))
    task = Task(np.zeros((2, 3)), np.ones(2), np.zeros((4, 3)), np.array([1.0, 1.0, 0.0, 0.0]), eval_type="accuracy")
    assert evaluate_task(algo, task, MEM).fitness == 0.5


def test_rms_divides_by_full_valid_size_and_validation_stops_on_huge_error():
    # s1 = x[0] in Predict; the second validation example has a 1000 error.
    algo = Algorithm(predict=(mi("VECTOR_MEAN", in1=0, out=1),))
    xv = np.array([[1.0, 1.0, 1.0], [1000.0, 1000.0, 1000.0], [2.0, 2.0, 2.0]])
    task = Task(np.zeros((2, 3)), np.zeros(2), xv, np.zeros(3))
    result = evaluate_task(algo, task, MEM)
    assert result.fitness == 0.0 and result.valid_stop_index == 1
    np.testing.assert_array_equal(result.valid_predictions, [1.0, 1000.0, 2.0])


def test_multi_epoch_takes_max_over_epochs_and_stops_keep_best():
    # A counter in Setup/Learn: s1 = s3 grows by 40 per Learn; with 2 train
    # examples per epoch the error passes 100 during the 2nd epoch.
    algo = Algorithm(setup=(mi("SCALAR_CONST_SET", out=2, d=40.0),),
                     predict=(mi("SCALAR_SUM", in1=3, in2=5, out=1),),
                     learn=(mi("SCALAR_SUM", in1=3, in2=2, out=3),))
    task = Task(np.zeros((2, 3)), np.zeros(2), np.zeros((1, 3)), np.zeros(1), num_train_epochs=3)
    result = evaluate_task(algo, task, MEM)
    # Epoch 0 valid: s1 = 80 -> fitness f(80). Epoch 1 stops at its 2nd step (s1 = 120).
    assert result.stopped_early and result.train_steps == 4
    assert result.fitness == pytest.approx(fitness.flip_and_squash(80.0))


def test_train_budget_of_zero_examples_gives_fitness_zero():
    result = evaluate_task(Algorithm(), linear_task(), MEM, num_train_examples=0)
    assert result.fitness == 0.0 and result.train_steps == 0 and result.valid_predictions is None


def test_evaluate_combines_tasks_by_mean_and_upper_median():
    tasks = [linear_task(seed=s) for s in range(4)]
    per_task = [evaluate_task(Algorithm(), t, MEM).fitness for t in tasks]
    assert evaluate(Algorithm(), tasks, MEM).fitness == pytest.approx(np.mean(per_task))
    assert evaluate(Algorithm(), tasks, MEM, combination="median").fitness == sorted(per_task)[2]


def test_epoch_order_first_epoch_natural_then_shuffled():
    task = linear_task(n_train=6, epochs=3, seed=5)
    order = task.epoch_order()
    assert order[:6].tolist() == list(range(6))
    assert sorted(order[6:12].tolist()) == list(range(6)) and sorted(order[12:].tolist()) == list(range(6))
    np.testing.assert_array_equal(order, linear_task(n_train=6, epochs=3, seed=5).epoch_order())


# The evaluation rules (`azero_jax.fitness`): the reference runs their scalar
# path (Python bool `classification`), the JAX interpreter and the host their
# array path; both must be the same rule.
_LABELS = [0.0, 1.0, 0.3, -2.0, 1e300]
_PREDICTIONS = [0.0, -0.0, 1e-300, -1e-300, 0.5, -3.0, 99.0, 150.0, -150.0, 800.0, -800.0, 1e300, math.inf,
                -math.inf, math.nan]


def _bits(x):
    return np.asarray(x, dtype=np.float64).tobytes()


@pytest.mark.parametrize("classification", [False, True])
def test_evaluation_rules_scalar_path_equals_array_path(classification):
    label, pred = np.meshgrid(np.array(_LABELS), np.array(_PREDICTIONS), indexing="ij")
    cls = np.full(label.shape, classification)
    with np.errstate(all="ignore"):
        err, stop = fitness.valid_error(np, label, pred, cls, 100.0)
        terr, tstop = fitness.train_error(np, label, fitness.train_prediction(np, pred, cls), 100.0)
        term = fitness.loss_term(np, err, cls)
        # A Python bool with arrays: one task type for all elements.
        uerr, ustop = fitness.valid_error(np, label, pred, classification, 100.0)
        assert _bits(uerr) == _bits(err) and (ustop == stop).all()
        assert _bits(fitness.loss_term(np, uerr, classification)) == _bits(term)
        uterr, _ = fitness.train_error(np, label, fitness.train_prediction(np, pred, classification), 100.0)
        assert _bits(uterr) == _bits(terr)
        for i, j in np.ndindex(label.shape):
            y, p = label[i, j], float(pred[i, j])
            e, s = fitness.valid_error(np, y, p, classification, 100.0)
            assert _bits(e) == _bits(err[i, j]) and bool(s) == stop[i, j], (y, p)
            assert _bits(fitness.loss_term(np, e, classification)) == _bits(term[i, j])
            te, ts = fitness.train_error(np, y, fitness.train_prediction(np, np.float64(p), classification), 100.0)
            assert _bits(te) == _bits(terr[i, j]) and bool(ts) == tstop[i, j], (y, p)
    if classification:  # 0/1 per example; inf only where the sigmoid leaves [0, 1] (never for a float64)
        assert set(np.unique(err)) <= {0.0, 1.0} and not stop.any()
    else:
        np.testing.assert_array_equal(stop, np.isnan(err) | (err > 100.0))


@pytest.mark.parametrize("classification", [False, True])
def test_fitness_from_loss_scalar_path_equals_array_path(classification):
    losses = np.array([0.0, 1e-300, 0.25, 3.0, 7.0, 1e10, 1e308, math.inf, math.nan])
    ok = np.array([True] * len(losses) + [False] * len(losses))
    losses = np.concatenate([losses, losses])
    with np.errstate(all="ignore"):
        arr = fitness.fitness_from_loss(np, losses, 8, np.full(losses.shape, classification), ok)
        assert _bits(fitness.fitness_from_loss(np, losses, 8, classification, ok)) == _bits(arr)
    for loss, good, a in zip(losses, ok, arr, strict=True):
        s = fitness.fitness_from_loss(np, float(loss), 8, classification, bool(good))
        # The array path's np.arctan may be a SIMD version an ulp from libm's atan.
        assert s == a or abs(s - a) <= 2.3e-16 or (math.isnan(s) and math.isnan(a)), (loss, good, s, a)
    assert arr[~ok].tolist() == [fitness.MIN_FITNESS] * len(losses[~ok])
    if not classification:
        assert arr[ok][-2:].tolist() == [fitness.MIN_FITNESS] * 2  # inf / NaN loss
