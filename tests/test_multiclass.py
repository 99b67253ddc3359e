"""Multiclass tasks (`azero_jax.multiclass`): the oracle's rules on
hand-computed cases, the task checks, the xla backend against the oracle,
the hand-written softmax-regression / 2-layer-net programs on the built-in
10-class digits (the pallas kernel's parity: tests/test_pallas_backend.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from azero_jax import liveness, programs, reference
from azero_jax import multiclass as mc
from azero_jax import tasks as tasks_lib
from azero_jax.program import Algorithm, MemoryShape
from azero_jax.program import make_instruction as ins

MEMORY = MemoryShape(4, 6, 2, 4)


def _task(x_train, y_train, x_valid=None, y_valid=None, **kw) -> tasks_lib.Task:
    x_valid = x_train if x_valid is None else x_valid
    y_valid = y_train if y_valid is None else y_valid
    return tasks_lib.Task(np.asarray(x_train, float), np.asarray(y_train, float), np.asarray(x_valid, float),
                          np.asarray(y_valid, float), eval_type="multiclass", **kw)


def _softmax(z):
    e = [math.exp(v - max(z)) for v in z]
    return [v / sum(e) for v in e]


COPY_FEATURES = Algorithm(predict=(ins("VECTOR_SUM", in1=0, in2=5, out=2),))  # v2 = v0 (+ v5 = 0)


# ------------------------------------------------------------------ oracle --

def test_oracle_argmax_accuracy_and_train_errors_by_hand():
    x_train = [[0.0, 1.0, 2.0, 9.0], [3.0, 1.0, 0.0, 9.0]]
    y_train = [2, 1]
    x_valid = [[1.0, 0.0, 0.0, 5.0], [0.0, 2.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]]
    y_valid = [0, 1, 0, 1]  # argmax of the first 3 entries: 0, 1, 2 (wrong), 0 on the tie (wrong)
    task = _task(x_train, y_train, x_valid, y_valid, num_classes=3)
    r = reference.evaluate_task(COPY_FEATURES, task, MEMORY)
    assert r.fitness == 0.5
    assert r.valid_predictions.tolist() == [0.0, 1.0, 2.0, 0.0]
    assert r.valid_errors == [0.0, 0.0, 1.0, 1.0]
    expected = [1.0 - _softmax(x[:3])[y] for x, y in zip(x_train, y_train, strict=True)]
    np.testing.assert_allclose(r.train_errors, expected, rtol=1e-15)
    assert r.train_steps == 2 and not r.stopped_early


def test_label_in_v1_only_during_learn_and_learn_sees_padded_softmax():
    x = np.array([[0.5, -1.0, 2.0, 7.0], [1.0, 0.0, -1.0, -7.0], [0.0, 3.0, 1.0, 1.0]])
    y = [2, 0, 1]
    task = _task(x, y, num_classes=3)
    # Learn copies v1 into v3; Predict outputs v3 + v1: so the logits are the previous example's one-hot
    # (v1 is zero during Predict).
    echo_label = Algorithm(predict=(ins("VECTOR_SUM", in1=3, in2=1, out=2),),
                           learn=(ins("VECTOR_SUM", in1=1, in2=5, out=3),))
    r = reference.evaluate_task(echo_label, task, MEMORY)
    hot, cold = math.e / (math.e + 2), 1 / (math.e + 2)
    np.testing.assert_allclose(r.train_errors, [1 - 1 / 3, 1 - cold, 1 - cold], rtol=1e-15)
    assert r.valid_predictions.tolist() == [1.0] * 3  # the last label learned, argmax of its one-hot
    assert hot > cold
    # Learn copies v2 (the padded softmax) into v3; Predict outputs v0 + v3.
    echo_probs = Algorithm(predict=(ins("VECTOR_SUM", in1=0, in2=3, out=2),),
                           learn=(ins("VECTOR_SUM", in1=2, in2=5, out=3),))
    r = reference.evaluate_task(echo_probs, task, MEMORY)
    previous = [0.0] * 4
    expected = []
    for xi, yi in zip(x, y, strict=True):
        logits = [a + b for a, b in zip(xi, previous, strict=True)]
        p = _softmax(logits[:3])
        expected.append(1 - p[yi])
        previous = p + [0.0]  # entries past C are written as 0
    np.testing.assert_allclose(r.train_errors, expected, rtol=1e-14)


def test_undefined_softmax_stops():
    task = _task([[np.nan, 0.0, 0.0, 0.0]], [1], [[0.0, 1.0, 0.0, 0.0]], [1], num_classes=3)
    r = reference.evaluate_task(COPY_FEATURES, task, MEMORY)
    assert r.stopped_early and r.fitness == 0.0 and math.isnan(r.train_errors[0])
    # validation: a +inf logit leaves the softmax undefined: error inf, that epoch scores 0
    task = _task([[0.0, 1.0, 0.0, 0.0]], [1], [[0.0, np.inf, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]], [1, 1],
                 num_classes=3)
    r = reference.evaluate_task(COPY_FEATURES, task, MEMORY)
    assert r.fitness == 0.0 and r.valid_stop_index == 0 and r.valid_errors == [math.inf]
    assert math.isnan(r.valid_predictions[0]) and r.valid_predictions[1] == 1.0
    assert math.isnan(mc.predicted_class(np, np.array([-np.inf, -np.inf, 0.0]), 2))  # all C logits -inf
    assert mc.predicted_class(np, np.array([-np.inf, 0.0, 5.0]), 2) == 1.0  # entries past C are ignored


def test_memory_needs_three_vectors():
    task = _task([[0.0, 1.0]], [1])
    with pytest.raises(ValueError, match="at least 3 vector addresses"):
        reference.evaluate_task(Algorithm(), task, MemoryShape(2, 2, 1))


# ------------------------------------------------------------ task checks --

@pytest.mark.parametrize("labels, match", [
    ([0, 3], r"integer class labels 0\.\.2 \(num_classes=3\); 1 label\(s\) are not \(e\.g\. 3\.0\)"),
    ([0, 1.5], "integer class labels"), ([-1, 0], "integer class labels"), ([np.nan, 0], "integer class labels"),
])
def test_bad_labels_are_one_line_errors(labels, match):
    with pytest.raises(ValueError, match=match) as e:
        _task([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], labels, num_classes=3)
    assert "\n" not in str(e.value)


def test_class_count_checks():
    x = [[0.0, 0.0], [1.0, 1.0]]
    with pytest.raises(ValueError, match=r"num_classes \(3\) exceeds its feature size F=2"):
        _task(x, [0, 1], num_classes=3)
    with pytest.raises(ValueError, match="integer >= 2"):
        _task(x, [0, 0], num_classes=1)
    with pytest.raises(ValueError, match="only used by multiclass"):
        tasks_lib.Task(np.zeros((2, 2)), np.zeros(2), np.zeros((2, 2)), np.zeros(2), eval_type="accuracy",
                       num_classes=2)
    assert _task([[0.0, 0.0, 0.0]] * 2, [0, 2], y_valid=[1, 1]).num_classes == 3  # inferred: 1 + max label
    with pytest.raises(ValueError, match="only used by multiclass"):
        tasks_lib.TaskSpec(tasks_lib.EXPLICIT, path="x.npz", num_classes=3)


def test_npz_multiclass_tasks(tmp_path):
    rng = np.random.default_rng(0)
    path = str(tmp_path / "mc.npz")
    np.savez(path, x_train=rng.normal(size=(2, 6, 5)), y_train=np.array([[0, 1, 2, 0, 1, 2], [0, 1, 0, 1, 0, 1]]),
             x_valid=rng.normal(size=(2, 3, 5)), y_valid=np.array([[0, 1, 2], [1, 1, 0]]))
    found = tasks_lib.make_tasks(tasks_lib.TaskSpec(tasks_lib.EXPLICIT, path=path, eval_type="multiclass",
                                                    num_tasks=2))
    assert [t.num_classes for t in found] == [3, 3]  # one C for the whole file
    found = tasks_lib.make_tasks(tasks_lib.TaskSpec(tasks_lib.EXPLICIT, path=path, eval_type="multiclass",
                                                    num_tasks=2, num_classes=5))
    assert found[1].num_classes == 5
    with pytest.raises(ValueError, match=r"mc\.npz' task 0: y_train of a multiclass task must hold integer class"):
        tasks_lib.make_tasks(tasks_lib.TaskSpec(tasks_lib.EXPLICIT, path=path, eval_type="multiclass",
                                                num_tasks=2, num_classes=2))


def test_liveness_follows_the_multiclass_layout():
    program = Algorithm(predict=(ins("VECTOR_SUM", in1=0, in2=5, out=2), ins("SCALAR_CONST_SET", out=1, d=1.0)),
                        learn=(ins("VECTOR_SUM", in1=1, in2=5, out=3),))
    assert liveness.live_instructions(program, multiclass=True) == ((), (True, False), (False,))
    assert liveness.live_instructions(program) == ((), (False, True), (False,))


# --------------------------------------------------------- batched backends --

def _random_multiclass_tasks(rng, features=4, num_classes=3):
    out = []
    for i, scale in enumerate((1.0, 30.0, 1e3, 1.0)):
        x = rng.normal(size=(12, features)) * scale
        y = rng.integers(0, num_classes, size=12)
        out.append(_task(x[:8], y[:8], x[8:], y[8:], num_classes=num_classes, num_train_epochs=1 + i % 2,
                         data_seed=7 + i, index=i))
    return out


def test_xla_equals_the_oracle_on_random_programs():
    from azero_jax.jax_eval import parity

    tasks = _random_multiclass_tasks(np.random.default_rng(3))
    res = parity.run_parity(256, 4, seed=5, tasks=tasks, chunk=256)
    assert res.ok(), res.examples[:2]
    assert res.nonzero_fitness > 50 and res.early_stops > 5


def test_fec_probe_errors_equal_across_backends():
    from azero_jax.evaluation import Jobs, make_backend
    from azero_jax.jax_eval import parity

    rng = np.random.default_rng(11)
    tasks = _random_multiclass_tasks(rng)
    memory = MemoryShape(4, 3, 1, 4)
    progs = parity.random_programs(rng, memory, 40, special=False) + [COPY_FEATURES.replace(predict=(
        ins("VECTOR_SUM", in1=0, in2=2, out=2),))]
    jobs = Jobs(np.repeat(np.arange(len(progs)), 4), np.tile(np.arange(4), len(progs)),
                np.full(4 * len(progs), 8), np.zeros(4 * len(progs), np.int64))
    ref = make_backend("reference", tasks, memory).probe(progs, jobs, num_train=5, num_valid=3, seed=9)
    xla = make_backend("xla", tasks, memory).probe(progs, jobs, num_train=5, num_valid=3, seed=9)
    np.testing.assert_array_equal(ref.lengths, xla.lengths)
    np.testing.assert_array_equal(ref.train_steps, xla.train_steps)
    for j, n in enumerate(ref.lengths):
        np.testing.assert_allclose(ref.errors[j, :n], xla.errors[j, :n], rtol=1e-12, atol=0, equal_nan=True)


def test_tasks_of_one_batch_share_the_layout():
    from azero_jax import jax_eval

    binary = tasks_lib.Task(np.zeros((2, 4)), np.array([0.0, 1.0]), np.zeros((2, 4)), np.array([0.0, 1.0]),
                            eval_type="accuracy")
    with pytest.raises(ValueError, match="all be multiclass tasks with the same num_classes"):
        jax_eval.TaskArrays([binary, _task(np.zeros((2, 4)), [0, 1])])


def test_pallas_backend_takes_multiclass_tasks():
    from azero_jax.evaluation import make_backend

    task = _task(np.zeros((2, 4)), [0, 1])
    backend = make_backend("pallas", [task], MEMORY, interpret=True)
    assert backend.groups[0].num_classes == 2  # its parity with xla and the oracle: tests/test_pallas_backend.py


# ---------------------------------------------- baselines on 10-class digits --

def test_hand_written_multiclass_programs_learn_digits():
    from azero_jax.datasets import load_digits, multiclass_tasks
    from azero_jax.evaluation import task_results

    tasks, projected, sizes = multiclass_tasks(load_digits(), 2, features=16)
    assert (sizes.train, sizes.valid, sizes.test) == (1392, 174, 174)
    assert tasks[0].num_classes == 10 and set(np.unique(tasks[0].y_valid)) == set(range(10))
    assert projected[0].x_test.shape == (174, 16)
    linear = programs.multiclass_linear_algorithm(learning_rate=0.03)
    net = programs.multiclass_neural_net_algorithm(learning_rate=0.03, first_init_scale=0.3, second_init_scale=0.3)
    memory = programs.MULTICLASS_NEURAL_NET_MEMORY
    results = task_results([linear, net], tasks, memory, backend="xla")
    assert results.fitness.min() > 0.7, results.fitness  # chance is 0.1
    oracle = reference.evaluate_task(linear, tasks[0], memory)
    assert abs(oracle.fitness - results.fitness[0, 0]) < 1e-9
    assert programs.MULTICLASS_HAND_WRITTEN["neural_net"] is programs.multiclass_neural_net_algorithm


def test_tuned_multiclass_baselines():
    from azero_jax import baselines
    from azero_jax.datasets import load_digits, multiclass_tasks

    tasks, _, _ = multiclass_tasks(load_digits(), 2, features=16)  # the shapes above: no new compile
    for name in ("linear", "neural_net"):
        result = baselines.tune_multiclass_hand_written(name, tasks, tasks, trials=2, backend="xla")
        assert result.trials == 2 and min(result.select_fitness, result.final_fitness) > 0.25, result  # chance: 0.1
    with pytest.raises(ValueError, match="tunable multiclass programs"):
        baselines.multiclass_hand_written_candidates("mlp", 2, np.random.default_rng(0))


# ------------------------------------------------------- experiment config --

def test_search_on_multiclass_npz_tasks(tmp_path):
    from azero_jax import experiment
    from azero_jax.datasets import SplitSizes, load_digits, multiclass_tasks
    from azero_jax.datasets.multiclass import save_multiclass_npz
    from azero_jax.experiment.config import ConfigError

    digits = load_digits()
    _, search, _ = multiclass_tasks(digits, 2, features=12, sizes=SplitSizes(40, 20, 20))
    _, held, _ = multiclass_tasks(digits, 2, features=12, sizes=SplitSizes(40, 20, 20), data_seeds=[5, 6])
    entry = {"kind": "explicit", "eval_type": "multiclass", "num_classes": 10}
    search_tasks = [dict(entry, path=save_multiclass_npz(str(tmp_path / "search.npz"), search), num_tasks=2)]
    final_tasks = [dict(entry, path=save_multiclass_npz(str(tmp_path / "final.npz"), held), num_tasks=2)]
    config = experiment.get_preset("tiny").replace(
        search_tasks=search_tasks, select_tasks=search_tasks, final_tasks=final_tasks, max_train_steps=1500,
        max_experiments=1, checkpoint_every_seconds=0.0)
    result = experiment.run_experiments(config, output_dir=str(tmp_path / "run"), log=None)
    assert 0.0 <= result.final_fitness <= 1.0 and result.num_experiments == 1
    assert config.multiclass() and result.multiclass
    from azero_jax import liveness, serialization
    assert result.to_dict()["best_program_live_text"] == serialization.format_algorithm(
        liveness.strip_dead_code(result.best_program, keep_positions=False, multiclass=True))
    with pytest.raises(ConfigError, match="at least 3 vector addresses"):
        experiment.run_experiments(config.replace(memory=[4, 2, 1]), output_dir=str(tmp_path / "bad"), log=None)



def test_multiclass_collections_are_cached_and_checked(tmp_path):
    from azero_jax import datasets

    calls = []

    def loader():
        calls.append(1)
        return datasets.load_digits()

    cache = datasets.ProjectedTaskCache("digits", loader, str(tmp_path))
    sizes = datasets.SplitSizes(40, 20, 20)
    search_seeds = datasets.default_data_seeds(3)
    final_seeds = datasets.held_out_data_seeds(2, search_seeds)
    assert min(final_seeds) > max(search_seeds)
    assert not set(datasets.projection_seeds(final_seeds)) & set(datasets.projection_seeds(search_seeds))
    built = datasets.build_multiclass_collection(cache, final_seeds, 12, sizes, "final")
    again = datasets.build_multiclass_collection(cache, final_seeds, 12, sizes, "final")
    assert built == again and len(calls) == 1 and (cache.misses, cache.hits) == (1, 1)
    tasks = built.tasks()
    assert [t.num_classes for t in tasks] == [10, 10] and tasks[0].x_train.shape == (40, 12)
    assert built.arrays()["x_test"].shape == (2, 20, 12)
    _, projected, _ = datasets.multiclass_tasks(datasets.load_digits(), 2, features=12, sizes=sizes,
                                                data_seeds=final_seeds, cap=False)
    np.testing.assert_array_equal(built.arrays()["x_train"][1], projected[1].x_train)
    with open(built.path, "r+b") as f:  # a corrupt file is rebuilt
        f.seek(100)
        f.write(b"garbage")
    datasets.build_multiclass_collection(cache, final_seeds, 12, sizes, "final")
    assert cache.rebuilt == 1 and datasets.load_checked_npz(built.path) is not None
