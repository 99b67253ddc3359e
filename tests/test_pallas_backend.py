"""The `pallas` backend (issue 16, first step): the one-kernel-per-batch
evaluator in Pallas interpret mode against the NumPy reference (float64),
and its lowering for CUDA through Pallas's Triton backend on a CPU-only
machine (one Triton custom call per batch).

Parity samples are random programs from `jax_eval.parity` (NaN/inf/huge
constants, regression and classification tasks with overflow-provoking
inputs, 1-2 epochs, early stops), every (program, task) pair checked against
`reference.evaluate_task`: fitness within 1e-12, train steps and stop flags
exact. The all-ops sample contains transcendental ops, where XLA and libm
may differ by an ulp (see tests/test_jax_parity.py); this fixed sample has
no such case.
"""

from __future__ import annotations

import numpy as np
import pytest

from azero_jax import evaluation, pallas_eval, reference, tasks
from azero_jax import ops as ops_lib
from azero_jax.evaluation.pallas_backend import PallasBackend
from azero_jax.evaluation.reference_backend import ReferenceBackend
from azero_jax.jax_eval import parity
from azero_jax.program import COMPONENTS, MemoryShape

TOL = 1e-12


def _check_against_reference(programs, task_list, memory, seed, op_ids, **kw):
    subsets = {c: tuple(op_ids) for c in COMPONENTS}
    fit, det = pallas_eval.evaluate_batch(programs, task_list, memory, op_subsets=subsets, dtype="float64",
                                          seed=seed, return_details=True, interpret=True, **kw)
    bad = []
    for i, prog in enumerate(programs):
        for t, task in enumerate(task_list):
            r = reference.evaluate_task(prog, task, memory, seed=seed)
            if not (abs(fit[i, t] - r.fitness) <= TOL and det.train_steps[i, t] == r.train_steps
                    and bool(det.stopped_early[i, t]) == r.stopped_early):
                bad.append((i, t, float(fit[i, t]), r.fitness, int(det.train_steps[i, t]), r.train_steps))
    assert not bad, bad[:5]
    return fit, det


def test_parity_demo_ops():
    rng = np.random.default_rng(11)
    memory = MemoryShape(4, 3, 1, 4)
    task_list = parity.random_tasks(rng, 4, num_tasks=6, num_train=8, num_valid=4)
    assert {t.num_train_epochs for t in task_list} == {1, 2}
    assert {t.eval_type for t in task_list} == {"rms", "accuracy"}
    programs = parity.random_programs(rng, memory, 24, max_size=10, op_ids=ops_lib.DEMO_OPS)
    fit, det = _check_against_reference(programs, task_list, memory, 5, ops_lib.DEMO_OPS)
    assert (fit > 0).sum() > 20 and det.stopped_early.sum() > 10


def test_parity_all_ops_with_budgets():
    """All 65 ops (random-set ops draw the counter-based stream), F = 2,
    per-(program, task) train budgets that end some evaluations mid-epoch."""
    rng = np.random.default_rng(5)
    memory = MemoryShape(4, 3, 2, 2)
    task_list = parity.random_tasks(rng, 2, num_tasks=6, num_train=6, num_valid=3)
    programs = parity.random_programs(rng, memory, 48, max_size=10)
    # One batch size and length buckets for both calls: one kernel compile (~12 s in interpret mode).
    fit, det = _check_against_reference(programs, task_list, memory, 3, ops_lib.ALL_OPS, batch_size=48)
    assert (fit > 0).sum() > 50 and det.stopped_early.sum() > 50
    assert any(op.random for p in programs for c in COMPONENTS for op in (i.spec for i in p.component(c)))
    # Train budgets (the evaluator's num_train_examples), checked on a few programs.
    budget = rng.integers(0, 13, size=(8, len(task_list)))
    sub = {c: ops_lib.ALL_OPS for c in COMPONENTS}
    fit_b, det_b = pallas_eval.evaluate_batch(programs[:8], task_list, memory, op_subsets=sub, seed=3,
                                              num_train_examples=budget, return_details=True, interpret=True,
                                              batch_size=48)
    for i in range(8):
        for t, task in enumerate(task_list):
            r = reference.evaluate_task(programs[i], task, memory, seed=3, num_train_examples=int(budget[i, t]))
            assert abs(fit_b[i, t] - r.fitness) <= TOL and det_b.train_steps[i, t] == r.train_steps, (i, t)


MEM = MemoryShape(4, 3, 1, 4)
OP_SUBSETS = {c: tuple(ops_lib.DEMO_OPS) + (ops_lib.NO_OP_ID,) for c in COMPONENTS}


def _demo_tasks():
    spec_a = tasks.TaskSpec("linear", features=4, num_train=12, num_valid=5, num_tasks=3)
    spec_b = tasks.TaskSpec("linear", features=4, num_train=7, num_valid=5, num_tasks=2, num_train_epochs=2,
                            data_seeds=(50,), param_seeds=(60,))
    return tasks.make_tasks([spec_a, spec_b])  # two shape groups


def test_backend_full_and_probe_match_the_reference():
    task_list = _demo_tasks()
    rng = np.random.default_rng(2)
    programs = parity.random_programs(rng, MEM, 10, max_size=8, op_ids=ops_lib.DEMO_OPS)
    pallas = evaluation.make_backend("pallas", task_list, MEM, dtype="float64", op_subsets=OP_SUBSETS, chunk=8)
    assert isinstance(pallas, PallasBackend) and pallas.interpret and isinstance(pallas, evaluation.Backend)
    ref = ReferenceBackend(task_list, MEM, max_abs_error=100.0, dtype="float64")
    n_p, n_t = len(programs), len(task_list)
    counts = rng.integers(1, 15, size=n_p * n_t)
    jobs = evaluation.Jobs(np.repeat(np.arange(n_p), n_t), np.tile(np.arange(n_t), n_p), counts,
                           np.repeat(rng.integers(0, 2**32, size=n_p), n_t))
    got, want = pallas.full(programs, jobs), ref.full(programs, jobs)
    np.testing.assert_allclose(got.fitness, want.fitness, rtol=0, atol=TOL)
    np.testing.assert_array_equal(got.train_steps, want.train_steps)
    pg, pw = (b.probe(programs, jobs, num_train=5, num_valid=3, seed=9) for b in (pallas, ref))
    np.testing.assert_array_equal(pg.lengths, pw.lengths)
    np.testing.assert_array_equal(pg.train_steps, pw.train_steps)
    mask = np.arange(pg.errors.shape[1])[None, :] < pg.lengths[:, None]
    np.testing.assert_allclose(np.where(mask, pg.errors, 0), np.where(mask, pw.errors, 0), rtol=0, atol=TOL)


def test_registry_keeps_xla_as_the_batched_default():
    from azero_jax.cli.config_flags import batched_backend

    assert "pallas" in evaluation.BACKENDS and evaluation.resolve_backend("Pallas") == "pallas"
    assert batched_backend() == "xla"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cuda_lowering_is_one_triton_kernel_demo(dtype):
    """The demo config (10 tasks, F = 4, 100 / 100 examples, demo ops,
    memory 4/3/1) lowers for CUDA on this CPU-only machine to exactly one
    Triton custom call: the whole batch's evaluation is one kernel launch."""
    demo = tasks.make_tasks(tasks.get_preset("demo_search"))
    backend = PallasBackend(demo, MEM, dtype=dtype, op_subsets=OP_SUBSETS)
    cfg = backend.kernel_config(batch=128, interpret=False)
    assert cfg.backend == "triton" and cfg.num_tasks == 16
    text = pallas_eval.export_cuda(cfg).mlir_module()
    assert text.count(pallas_eval.TRITON_CALL) == 1


def test_cuda_lowering_all_ops_float32():
    """Every one of the 65 ops in one kernel (branches of one `lax.switch`)
    lowers through Triton: one custom call."""
    task_list = parity.random_tasks(np.random.default_rng(0), 4, num_tasks=4)
    backend = PallasBackend(task_list, MemoryShape(4, 3, 2, 4), dtype="float32")
    text = pallas_eval.export_cuda(backend.kernel_config(batch=32, interpret=False)).mlir_module()
    assert text.count(pallas_eval.TRITON_CALL) == 1
