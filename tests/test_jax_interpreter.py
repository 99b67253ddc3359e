"""JAX interpreter: hand-written programs, buckets/padding, no retrace, float32, details."""

from __future__ import annotations

import numpy as np
import pytest

from azero_jax import jax_eval, ops, programs, reference
from azero_jax import tasks as tasks_lib
from azero_jax.jax_eval import interpreter
from azero_jax.jax_eval.compile import batch_bucket, length_bucket
from azero_jax.jax_eval.parity import random_programs, random_tasks
from azero_jax.program import NO_OP, Algorithm, MemoryShape

DEMO = {c: ops.DEMO_OPS for c in ("setup", "predict", "learn")}
BASELINE = {"setup": ops.BASELINE_SETUP_OPS, "predict": ops.BASELINE_PREDICT_OPS, "learn": ops.BASELINE_LEARN_OPS}


@pytest.fixture(scope="module")
def demo_tasks():
    spec = tasks_lib.get_preset("demo_search", num_tasks=4, num_train=40, num_valid=20)
    return tasks_lib.make_tasks(spec)


def _reference(progs, tasks, memory, **kw):
    return np.array([[reference.evaluate_task(p, t, memory, **kw).fitness for t in tasks] for p in progs])


def test_linear_and_perturbed_linear_match_reference(demo_tasks):
    memory = MemoryShape(4, 3, 1, 4)
    lin = programs.linear_algorithm((10, 2, 8))
    fast = programs.linear_algorithm((10, 2, 8), learning_rate=0.5)
    progs = [lin, fast]
    fit = jax_eval.evaluate_batch(progs, demo_tasks, memory, op_subsets=DEMO)
    np.testing.assert_allclose(fit, _reference(progs, demo_tasks, memory), rtol=0, atol=1e-12)
    assert fit[0].min() > 0.3  # lr 0.01 on 40 examples: partly trained


def test_neural_net_matches_reference_with_random_setup():
    rng = np.random.default_rng(3)
    memory = MemoryShape(5, 9, 2, 4)
    tasks = random_tasks(rng, 4, num_tasks=4, num_train=30, num_valid=10)
    nn = programs.neural_net_algorithm((6, 10, 22), learning_rate=0.05)
    fit = jax_eval.evaluate_batch([nn], tasks, memory, op_subsets=BASELINE, seed=7)
    np.testing.assert_allclose(fit, _reference([nn], tasks, memory, seed=7), rtol=0, atol=1e-9)
    assert fit.max() > 0


def test_no_retrace_after_warmup_and_padding_invariance(demo_tasks):
    rng = np.random.default_rng(0)
    memory = MemoryShape(4, 3, 1, 4)
    arrays = jax_eval.TaskArrays(demo_tasks)
    progs = random_programs(rng, memory, 20, max_size=6, op_ids=ops.DEMO_OPS, special=False)
    base = jax_eval.evaluate_batch(progs, arrays, memory, op_subsets=DEMO)  # warm-up
    count = interpreter.trace_count()
    for _ in range(3):  # new programs, same buckets: no new trace
        other = random_programs(rng, memory, 20, max_size=6, op_ids=ops.DEMO_OPS, special=False)
        jax_eval.evaluate_batch(other, arrays, memory, op_subsets=DEMO)
    assert interpreter.trace_count() == count
    # NO_OPs inserted in the middle and appended (bucket 8 -> 16) change nothing.
    padded = [Algorithm(setup=p.setup + (NO_OP,) * 11, predict=(NO_OP,) + p.predict + (NO_OP,) * 10,
                        learn=p.learn[:1] + (NO_OP, NO_OP) + p.learn[1:]) for p in progs]
    again = jax_eval.evaluate_batch(padded, arrays, memory, op_subsets=DEMO)
    np.testing.assert_array_equal(again, base)
    # A bigger batch bucket / the full op table give the same fitness, too.
    bigger = jax_eval.evaluate_batch(progs, arrays, memory, op_subsets=DEMO, batch_size=64)
    np.testing.assert_array_equal(bigger, base)


def test_full_table_equals_subset_and_gating_policies(demo_tasks):
    rng = np.random.default_rng(5)
    memory = MemoryShape(4, 3, 1, 4)
    progs = random_programs(rng, memory, 16, max_size=6, op_ids=ops.DEMO_OPS, special=False)
    sub = jax_eval.evaluate_batch(progs, demo_tasks, memory, op_subsets=DEMO, gate="none")
    full = jax_eval.evaluate_batch(progs, demo_tasks, memory, gate="all")
    np.testing.assert_array_equal(sub, full)
    auto = jax_eval.evaluate_batch(progs, demo_tasks, memory)  # full table, split and gated groups
    np.testing.assert_array_equal(sub, auto)


def test_group_policies():
    # An experiment's subset: cheap groups computed for every lane, matrix/random ones gated.
    groups = interpreter.make_groups(tuple(ops.BASELINE_LEARN_OPS))
    assert {(g.out, g.gated) for g in groups} == {("m", True), ("s", False), ("v", False)}
    # The 65-op table: every op in exactly one group, each group gated and of one operand signature.
    groups = interpreter.make_groups(tuple(ops.ALL_OPS))
    assert all(g.gated for g in groups)
    assert sorted(o.id for g in groups for o in g.ops) == [o for o in ops.ALL_OPS if ops.OPS[o].out is not None]
    for g in groups:
        assert len({(o.out, o.in1, o.in2) for o in g.ops}) == 1
    assert not any(g.gated for g in interpreter.make_groups(tuple(ops.ALL_OPS), "none"))


def test_bucket_helpers():
    assert [length_bucket(n) for n in (0, 1, 8, 9, 17, 33)] == [8, 8, 8, 16, 32, 64]
    assert [batch_bucket(n) for n in (1, 8, 9, 13, 17, 100)] == [8, 8, 12, 16, 24, 128]
    assert batch_bucket(9, multiple=4) == 12
    assert batch_bucket(13, multiple=4) == 16


def test_rejects_ops_outside_subset_and_mixed_task_shapes(demo_tasks):
    memory = MemoryShape(4, 3, 1, 4)
    nn = programs.neural_net_algorithm()
    with pytest.raises(ValueError, match="op subset"):
        jax_eval.evaluate_batch([nn], demo_tasks, MemoryShape(5, 9, 2, 4), op_subsets=DEMO)
    rng = np.random.default_rng(0)
    odd = random_tasks(rng, 4, num_tasks=1, num_train=5)
    with pytest.raises(ValueError, match="share F"):
        jax_eval.evaluate_batch([programs.linear_algorithm()], list(demo_tasks) + odd, memory)


def test_details_and_train_budget_match_reference():
    rng = np.random.default_rng(11)
    memory = MemoryShape(4, 3, 1, 4)
    tasks = random_tasks(rng, 4, num_tasks=3)
    progs = random_programs(rng, memory, 40, max_size=6, op_ids=ops.ALL_OPS)
    budget = np.array([[0, 5, 100][(i + t) % 3] for i in range(len(progs)) for t in range(3)]).reshape(-1, 3)
    fit, det = jax_eval.evaluate_batch(progs, tasks, memory, num_train_examples=budget, return_details=True)
    for i, p in enumerate(progs):
        for t, task in enumerate(tasks):
            r = reference.evaluate_task(p, task, memory, num_train_examples=int(budget[i, t]))
            assert abs(fit[i, t] - r.fitness) <= 1e-9
            assert det.train_steps[i, t] == r.train_steps
            assert det.stopped_early[i, t] == r.stopped_early
            n = r.train_steps
            np.testing.assert_allclose(det.train_errors[i, t, :n], r.train_errors, rtol=1e-12, atol=0)
            if r.valid_predictions is not None and not r.stopped_early:
                last = (n - 1) // task.num_train
                np.testing.assert_allclose(det.valid_predictions[i, t, last], r.valid_predictions,
                                           rtol=1e-12, atol=0)


def test_float32_agrees_on_well_conditioned_programs(demo_tasks):
    """float32 tolerance: well-conditioned = hand-written SGD programs on unit
    scale data; fitness within 1e-4 absolute (the RMS of a good fit is ~1e-3,
    float32 rounding moves it by ~1e-6 relative)."""
    memory = MemoryShape(4, 3, 1, 4)
    progs = [programs.linear_algorithm((10, 2, 8)), programs.linear_algorithm((10, 2, 8), learning_rate=0.1)]
    f64 = jax_eval.evaluate_batch(progs, demo_tasks, memory, op_subsets=DEMO, dtype="float64")
    f32 = jax_eval.evaluate_batch(progs, demo_tasks, memory, op_subsets=DEMO, dtype="float32")
    assert f32.dtype == np.float64
    np.testing.assert_allclose(f32, f64, rtol=0, atol=1e-4)
