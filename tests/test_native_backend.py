"""The `native` backend (`azero_jax.native_eval`, Numba) against the NumPy
oracle `reference.evaluate_task`.

Exactness contract (see `native_eval/kernel.py`): every result equals the
oracle's bit for bit, except where a transcendental (sin, cos, tan, arcsin,
arccos, arctan, exp, log: the ops flagged `Op.transcendental`, the sigmoid's
exp on classification tasks, the softmax's exp on multiclass tasks, the
Gaussian ops' log and cos) rounds an ulp apart: Numba calls libm, NumPy its
own SIMD versions (on this machine they differ on ~9% of arcsin/arccos
inputs, ~5% of exp inputs, 0.5% of tan inputs; sin and cos agree).

So per job (program, task):
* train steps and the length of the recorded FEC error sequence (train
  errors, then the last validated epoch's valid errors) are always equal;
* fitness and the error sequence are bit-identical (NaN == NaN) for programs
  with no transcendental op on regression tasks ("exact jobs");
* on every job, fitness is within 1e-9 and the error sequence "close" (NaN
  and inf at the same places, finite values within 1e-9 relative) but for a
  tiny count of jobs (bounds below). Measured on this machine over ~80 000
  random jobs at F = 1, 4, 13, 16: no fitness beyond 1e-9 (3 not bit-equal),
  and no error sequence beyond "close" (transcendental ones differ by <= 32
  ulps) once the error-layout bug of `test_error_sequence_when_a_later_epoch_stops`
  is fixed; with it, ~0.15% of the jobs (a stop in a later epoch) record
  a wrong sequence.

Random programs come from `jax_eval.parity` (all 65 ops, NaN / inf / huge
constants, regression and classification tasks with overflow-provoking
inputs, 1-2 epochs). The first call compiles the interpreter (~30 s, then
cached on disk in `azero_jax/native_eval/__pycache__`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from azero_jax import evaluation, native_eval, reference
from azero_jax import ops as ops_lib
from azero_jax import rng as rng_lib
from azero_jax import tasks as tasks_lib
from azero_jax.evaluation.native_backend import NativeBackend
from azero_jax.evaluation.reference_backend import ReferenceBackend
from azero_jax.jax_eval import parity
from azero_jax.program import COMPONENTS, Algorithm, MemoryShape, ProgramError
from azero_jax.program import make_instruction as ins
from azero_jax.program_arrays import from_algorithms
from azero_jax.search.fec import FECSpec
from azero_jax.search.train_budget import TrainBudget
from tests import cpp_cases

pytestmark = pytest.mark.skipif(not native_eval.available(), reason="needs Numba")

FIT_TOL = 1e-9  # fitness, any job
ERR_RTOL = 1e-9  # error sequences, any job ("close")
# Allowed jobs beyond those tolerances, as a fraction of the jobs checked.
# Measured on this machine: 0 (fitness) and 0 (errors, with the layout fix)
# in ~60 000 jobs; the bound leaves room for a stray ulp that another
# NumPy / libm pair amplifies, not for a systematic difference.
FIT_FAR_FRACTION = 1e-3
ERR_FAR_FRACTION = 5e-4
SEED = 7


# ------------------------------------------------------------------ helpers --

def _transcendental(program: Algorithm) -> bool:
    return any(ops_lib.OPS[i.op].transcendental for c in COMPONENTS for i in program.component(c))


def _same_bits(a, b) -> bool:
    """Bit-identical float64 arrays (NaN payloads aside; -0.0 != 0.0)."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.all((a.view(np.int64) == b.view(np.int64)) | (np.isnan(a) & np.isnan(b))))


def _close(got, want, rtol: float = ERR_RTOL) -> bool:
    """Same length, NaN and inf at the same places, finite values within rtol (absolute below 1)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape or not np.array_equal(np.isnan(got), np.isnan(want)):
        return False
    inf = np.isinf(got) | np.isinf(want)
    if not np.array_equal(got[inf], want[inf]):
        return False
    fin = ~inf & ~np.isnan(got)
    return bool(np.all(np.abs(got[fin] - want[fin]) <= rtol * np.maximum(1.0, np.abs(want[fin]))))


@dataclasses.dataclass
class Report:
    """Native vs reference over a batch of jobs: indices of each kind of departure."""

    jobs: int
    exact_jobs: int
    steps_bad: list
    length_bad: list
    exact_fit_bad: list
    exact_err_bad: list
    fit_far: list  # |fitness diff| > FIT_TOL (NaN-aware)
    err_far: list  # error sequence not `_close`
    fit_ulp: int  # fitness not bit-identical (informational)
    err_ulp: int  # error sequence not bit-identical (informational)
    nonzero: int
    stops: int
    details: list

    def summary(self) -> str:
        return (f"jobs={self.jobs} exact_jobs={self.exact_jobs} steps_bad={len(self.steps_bad)} "
                f"length_bad={len(self.length_bad)} exact_fit_bad={len(self.exact_fit_bad)} "
                f"exact_err_bad={len(self.exact_err_bad)} fit_far={len(self.fit_far)} err_far={len(self.err_far)} "
                f"fit_not_bitwise={self.fit_ulp} err_not_bitwise={self.err_ulp} nonzero={self.nonzero} "
                f"stops={self.stops}")

    def check(self, fit_far_fraction: float = FIT_FAR_FRACTION, err_far_fraction: float = ERR_FAR_FRACTION,
              exact: bool = True) -> None:
        print(self.summary())
        problems = [("train steps differ", self.steps_bad, 0), ("error sequence lengths differ", self.length_bad, 0)]
        if exact:
            problems += [("fitness of exact jobs not bit-identical", self.exact_fit_bad, 0),
                         ("errors of exact jobs not bit-identical", self.exact_err_bad, 0)]
        problems += [(f"fitness beyond {FIT_TOL}", self.fit_far, int(fit_far_fraction * self.jobs)),
                     (f"error sequences not close ({ERR_RTOL})", self.err_far, int(err_far_fraction * self.jobs))]
        for what, jobs, allowed in problems:
            if len(jobs) > allowed:
                raise AssertionError(f"{what}: {len(jobs)} jobs (allowed {allowed}); {self.summary()}; first: "
                                     + "; ".join(str(d) for d in self.details_of(jobs)))

    def details_of(self, jobs: list) -> list:
        return [self.details[j] for j in jobs[:3]]


def _run_native(programs, task_list, memory, program_index, task_index, *, num_train=None, num_valid=None,
                seeds=None, record_errors=True, max_abs_error=100.0):
    program_index = np.asarray(program_index, dtype=np.int64)
    task_index = np.asarray(task_index, dtype=np.int64)
    if num_train is None:
        num_train = np.array([task_list[t].num_train * task_list[t].num_train_epochs for t in task_index])
    if num_valid is None:
        num_valid = np.array([task_list[t].num_valid for t in task_index])
    if seeds is None:
        seeds = np.full(task_index.size, SEED)
    return native_eval.run_jobs(from_algorithms(list(programs)), native_eval.TaskData.from_tasks(task_list), memory,
                                program=program_index, task=task_index, num_train=num_train, num_valid=num_valid,
                                seed=seeds, max_abs_error=max_abs_error, record_errors=record_errors)


def _compare(programs, task_list, memory, program_index, task_index, *, num_train=None, num_valid=None,
             seeds=None, max_abs_error=100.0) -> Report:
    """Runs the jobs natively (with error recording) and through the oracle."""
    out = _run_native(programs, task_list, memory, program_index, task_index, num_train=num_train,
                      num_valid=num_valid, seeds=seeds, max_abs_error=max_abs_error)
    rep = Report(len(program_index), 0, [], [], [], [], [], [], 0, 0, 0, 0, [])
    transc = {}
    for j, (p, t) in enumerate(zip(np.asarray(program_index).tolist(), np.asarray(task_index).tolist(), strict=True)):
        task = task_list[t]
        kw = {}
        if num_train is not None:
            kw["num_train_examples"] = int(num_train[j])
        if num_valid is not None:
            kw["num_valid_examples"] = int(num_valid[j])
        seed = SEED if seeds is None else int(seeds[j])
        r = reference.evaluate_task(programs[p], task, memory.with_features(task.features), seed=seed,
                                    max_abs_error=max_abs_error, **kw)
        want = np.array(r.train_errors + r.valid_errors, dtype=np.float64)
        got = out.errors[j, :out.lengths[j]]
        fit = float(out.fitness[j])
        if p not in transc:
            transc[p] = _transcendental(programs[p])
        exact = not transc[p] and task.eval_type == "rms"
        rep.exact_jobs += exact
        rep.details.append(dict(job=j, program=p, task=t, native_fitness=fit, reference_fitness=r.fitness,
                                native_steps=int(out.train_steps[j]), reference_steps=r.train_steps,
                                native_errors=got.tolist(), reference_errors=want.tolist()))
        if out.train_steps[j] != r.train_steps:
            rep.steps_bad.append(j)
        if out.lengths[j] != want.size:
            rep.length_bad.append(j)
        fit_bitwise = _same_bits(fit, r.fitness)
        err_bitwise = _same_bits(got, want)
        if exact and not fit_bitwise:
            rep.exact_fit_bad.append(j)
        if exact and not err_bitwise:
            rep.exact_err_bad.append(j)
        if not (abs(fit - r.fitness) <= FIT_TOL or (math.isnan(fit) and math.isnan(r.fitness))):
            rep.fit_far.append(j)
        if not _close(got, want):
            rep.err_far.append(j)
        rep.fit_ulp += not fit_bitwise
        rep.err_ulp += not err_bitwise
        rep.nonzero += r.fitness > 0
        rep.stops += r.stopped_early
    return rep


def _all_pairs(num_programs: int, num_tasks: int):
    return np.repeat(np.arange(num_programs), num_tasks), np.tile(np.arange(num_tasks), num_programs)


# ---------------------------------------------------------- differential --

NON_TRANSCENDENTAL = tuple(op.id for op in ops_lib.OPS if not op.transcendental)


def _programs(rng, memory, count: int, **kw) -> list[Algorithm]:
    """`count` random programs with special constants: half over all 65 ops,
    half over the 54 without a transcendental (a program of ~20 instructions
    over all ops almost always holds one, and only the others are checked
    bit for bit), shuffled."""
    every = parity.random_programs(rng, memory, count - count // 2, special=True, **kw)
    plain = parity.random_programs(rng, memory, count // 2, special=True, op_ids=NON_TRANSCENDENTAL, **kw)
    both = every + plain
    return [both[i] for i in rng.permutation(count)]


@pytest.mark.slow  # ~12 s warm; the first native test of a fresh checkout also compiles (~30 s)
def test_all_ops_f4_random_programs():
    """All 65 ops at F = 4 (memory 4/3/1): 8000 programs, each on one task
    (program i on task i mod 6), and 500 more on all 6 tasks: 11000 jobs."""
    rng = np.random.default_rng(SEED)
    memory = MemoryShape(4, 3, 1, 4)
    task_list = parity.random_tasks(rng, 4)
    assert {t.eval_type for t in task_list} == {"rms", "accuracy"} and {t.num_train_epochs for t in task_list} == {1, 2}
    programs = _programs(rng, memory, 8500)
    one = np.arange(8000)
    p_all, t_all = _all_pairs(500, len(task_list))
    rep = _compare(programs, task_list, memory, np.concatenate([one, 8000 + p_all]),
                   np.concatenate([one % len(task_list), t_all]))
    rep.check()
    assert rep.exact_jobs > 2500 and rep.nonzero > 4000 and rep.stops > 3000
    # Every op occurs; transcendental jobs are a real part of the sample.
    assert set().union(*(p.ops_used() for p in programs)) == set(ops_lib.ALL_OPS)
    assert rep.jobs - rep.exact_jobs > 6000


@pytest.mark.parametrize("features,memory,num_programs,num_tasks", [
    (1, MemoryShape(4, 3, 1), 400, 6),
    (16, MemoryShape(4, 3, 1), 300, 6),
    (16, MemoryShape(5, 9, 2), 300, 6),  # the baseline memory; 256-value sums (> 128: pairwise halves)
    (13, MemoryShape(4, 3, 2), 150, 4),  # 169 values: the pairwise split with a remainder
])
def test_all_ops_other_feature_sizes(features, memory, num_programs, num_tasks):
    rng = np.random.default_rng(features * 100 + memory.vectors)
    memory = memory.with_features(features)
    task_list = parity.random_tasks(rng, features, num_tasks=num_tasks)
    programs = _programs(rng, memory, num_programs)
    rep = _compare(programs, task_list, memory, *_all_pairs(num_programs, num_tasks))
    rep.check()
    assert rep.exact_jobs > num_programs * num_tasks // 6 and rep.nonzero > num_programs


def test_mixed_tasks_budgets_and_partial_validation():
    """One batch over tasks of different F (1, 3, 16), sizes and epochs
    (padded `TaskData`), each job with its own train budget (0 .. beyond the
    total, ending mid-epoch or in a later epoch), validation count (a probe's
    prefix) and random-stream seed; two early-stop thresholds."""
    rng = np.random.default_rng(21)
    memory = MemoryShape(4, 3, 2, 4)
    task_list = []
    for features, num_train, num_valid in ((3, 5, 3), (1, 9, 6), (16, 4, 5), (3, 7, 2)):
        for t in parity.random_tasks(rng, features, num_tasks=3, num_train=num_train, num_valid=num_valid):
            task_list.append(dataclasses.replace(t, index=len(task_list), num_train_epochs=1 + len(task_list) % 3))
    programs = _programs(rng, memory, 200)
    p, t = _all_pairs(len(programs), len(task_list))
    total = np.array([task_list[i].num_train * task_list[i].num_train_epochs for i in t])
    nv = np.array([task_list[i].num_valid for i in t])
    num_train = rng.integers(0, total + 3)
    num_valid = rng.integers(1, nv + 2)
    seeds = rng.integers(0, 2**32, size=t.size)
    for max_abs_error in (100.0, 3.0):  # the early-stop threshold reaches the interpreter
        rep = _compare(programs, task_list, memory, p, t, num_train=num_train, num_valid=num_valid, seeds=seeds,
                       max_abs_error=max_abs_error)
        rep.check()
        assert rep.exact_jobs > 500 and rep.nonzero > 300


def test_error_sequence_when_a_later_epoch_stops():
    """The FEC error sequence is all train errors, then the LAST VALIDATED
    epoch's valid errors (`ReferenceBackend.probe`). Here epoch 1 trains and
    validates (3 valid errors of 64), then epoch 2 stops at its second
    example (error 125 > 100): the reference records
    [0, 1, 8, 27, 64, 125] + [64, 64, 64]."""
    memory = MemoryShape(4, 3, 1, 2)
    task = tasks_lib.Task(np.ones((4, 2)), np.zeros(4), np.ones((3, 2)), np.zeros(3), num_train_epochs=2)
    cube_counter = Algorithm(
        setup=(ins("SCALAR_CONST_SET", out=3, d=1.0),),
        predict=(ins("SCALAR_PRODUCT", in1=2, in2=2, out=1), ins("SCALAR_PRODUCT", in1=1, in2=2, out=1)),
        learn=(ins("SCALAR_SUM", in1=2, in2=3, out=2),))  # s2 counts the Learn calls; s1 = s2^3
    r = reference.evaluate_task(cube_counter, task, memory)
    assert r.train_errors == [0.0, 1.0, 8.0, 27.0, 64.0, 125.0] and r.valid_errors == [64.0] * 3
    assert r.stopped_early and r.train_steps == 6
    out = _run_native([cube_counter], [task], memory, [0], [0], seeds=[0])
    assert (out.train_steps[0], out.lengths[0]) == (6, 9)
    assert out.fitness[0] == r.fitness == 1.0 - (2.0 / math.pi) * math.atan(64.0)
    assert out.errors[0, :9].tolist() == r.train_errors + r.valid_errors
    # The same through the backends' FEC probe (10 train examples: into epoch 2).
    jobs = evaluation.Jobs(np.zeros(1, np.int64), np.zeros(1, np.int64), np.full(1, 8), np.zeros(1, np.int64))
    got = NativeBackend([task], memory).probe([cube_counter], jobs, num_train=10, num_valid=3, seed=0)
    want = ReferenceBackend([task], memory).probe([cube_counter], jobs, num_train=10, num_valid=3, seed=0)
    assert got.lengths.tolist() == want.lengths.tolist() == [9]
    assert got.errors[0, :9].tolist() == want.errors[0, :9].tolist()


# ------------------------------------------------------------ multiclass --

def _multiclass_tasks(rng, features: int, num_classes: int, num_tasks: int = 4):
    """Like tests/test_multiclass.py's, with overflow-provoking scales."""
    out = []
    scales = (1.0, 30.0, 1e3, 1e20, 1e-3, 1.0)
    for i in range(num_tasks):
        x = rng.normal(size=(12, features)) * scales[i % len(scales)]
        y = rng.integers(0, num_classes, size=12).astype(np.float64)
        out.append(tasks_lib.Task(x[:8], y[:8], x[8:], y[8:], eval_type="multiclass", num_classes=num_classes,
                                  num_train_epochs=1 + i % 2, data_seed=7 + i, index=i))
    return out


@pytest.mark.parametrize("features,num_classes,memory,num_programs,min_nonzero", [
    (4, 3, MemoryShape(4, 3, 1), 300, 300),
    (16, 10, MemoryShape(5, 9, 2), 100, 60),
])
def test_multiclass_random_programs(features, num_classes, memory, num_programs, min_nonzero):
    """Multiclass tasks (one-hot label in v1, softmax of v2, argmax
    accuracy): fitness within 1e-9 and steps exact (the softmax's exp may
    round an ulp apart, so no job is "exact")."""
    rng = np.random.default_rng(features + num_classes)
    memory = memory.with_features(features)
    task_list = _multiclass_tasks(rng, features, num_classes)
    programs = parity.random_programs(rng, memory, num_programs, special=True)
    # A program that passes the features through as logits, and one whose logits are +-inf / NaN.
    programs += [Algorithm(predict=(ins("VECTOR_SUM", in1=0, in2=1, out=2),)),
                 Algorithm(setup=(ins("SCALAR_CONST_SET", out=2, d=float("inf")),),
                           predict=(ins("SCALAR_VECTOR_PRODUCT", in1=2, in2=0, out=2),))]
    rep = _compare(programs, task_list, memory, *_all_pairs(len(programs), len(task_list)))
    rep.check(exact=False)
    assert rep.nonzero > min_nonzero and rep.stops > 50


def test_multiclass_needs_three_vectors():
    task = _multiclass_tasks(np.random.default_rng(0), 4, 3, num_tasks=1)
    with pytest.raises(ValueError, match="at least 3 vector addresses"):
        evaluation.make_backend("native", task, MemoryShape(4, 2, 1, 4))


# --------------------------------------------------------- random-set ops --

RANDOM_UNIFORM = (59, 60, 61)
RANDOM_GAUSSIAN = (62, 63, 64)
ARITHMETIC = tuple(ops_lib.resolve_op_ids([
    "SCALAR_SUM", "SCALAR_DIFF", "SCALAR_PRODUCT", "SCALAR_DIVISION", "SCALAR_VECTOR_PRODUCT", "VECTOR_SUM",
    "VECTOR_PRODUCT", "VECTOR_INNER_PRODUCT", "MATRIX_VECTOR_PRODUCT", "VECTOR_MEAN", "MATRIX_MEAN", "MATRIX_SUM"]))


def _random_op_programs(ids) -> list[Algorithm]:
    """Hand-written programs whose prediction is a draw of each op in `ids`
    (scalar, vector, matrix), drawn in Setup, Predict and Learn."""
    s_op, v_op, m_op = ids
    progs = []
    for lo, hi in ((-1.0, 1.0), (0.5, 0.25), (0.0, 3.0)):
        progs.append(Algorithm(predict=(ins(s_op, out=1, f0=lo, f1=hi),)))
        progs.append(Algorithm(predict=(ins(v_op, out=1, f0=lo, f1=hi), ins("VECTOR_MEAN", in1=1, out=1))))
        progs.append(Algorithm(predict=(ins(m_op, out=0, f0=lo, f1=hi), ins("MATRIX_VECTOR_PRODUCT", in1=0, in2=0, out=1),
                                        ins("VECTOR_INNER_PRODUCT", in1=1, in2=1, out=1))))
        progs.append(Algorithm(setup=(ins(s_op, out=2, f0=lo, f1=hi),), predict=(ins("SCALAR_SUM", in1=2, in2=3, out=1),),
                               learn=(ins(s_op, out=3, f0=lo, f1=hi),)))
    return progs


@pytest.mark.parametrize("ids,tol", [(RANDOM_UNIFORM, 0.0), (RANDOM_GAUSSIAN, 1e-12)])
def test_random_set_ops(ids, tol):
    """Programs of random-set ops plus arithmetic on regression tasks, each
    job on its own random-stream seed: the uniform draws (59-61, no
    transcendental) are bit-identical, so are fitness and errors; Gaussian
    draws (62-64: Box-Muller's log and cos) within 1e-12."""
    rng = np.random.default_rng(59)
    memory = MemoryShape(4, 3, 1, 4)
    task_list = [t for t in parity.random_tasks(rng, 4, num_tasks=6) if t.eval_type == "rms"]
    programs = _random_op_programs(ids) + parity.random_programs(rng, memory, 200, special=True,
                                                                 op_ids=ids + ARITHMETIC)
    p, t = _all_pairs(len(programs), len(task_list))
    seeds = rng.integers(0, 2**32, size=p.size)
    rep = _compare(programs, task_list, memory, p, t, seeds=seeds)
    print(rep.summary())
    assert not rep.steps_bad and not rep.length_bad, rep.details_of(rep.steps_bad + rep.length_bad)
    far = [d for d in rep.details if not (_close(d["native_fitness"], d["reference_fitness"], tol)
                                          and _close(d["native_errors"], d["reference_errors"], tol))]
    assert not far, far[:3]
    if tol == 0.0:
        assert rep.exact_jobs == rep.jobs and not rep.exact_fit_bad and not rep.exact_err_bad
    assert rep.nonzero > 100
    # The seeds reach the draws: the hand-written programs' errors change with the seed.
    other = _run_native(programs[:12], task_list, memory, *_all_pairs(12, len(task_list)),
                        seeds=seeds[:12 * len(task_list)] + 1)
    first = _run_native(programs[:12], task_list, memory, *_all_pairs(12, len(task_list)),
                        seeds=seeds[:12 * len(task_list)])
    assert not np.array_equal(first.errors, other.errors)


def test_random_stream_and_float_to_index_primitives():
    """The kernel's stream (instruction key, 53-bit uniforms) equals
    `azero_jax.rng` bit for bit on arbitrary coordinates, its Box-Muller
    within 1e-12; its FloatToIndex equals `ops._index` (float32) for every
    fraction near the element boundaries at F = 1..40."""
    from azero_jax.native_eval import kernel

    rng = np.random.default_rng(3)
    for _ in range(300):
        seed, task, example = (int(v) for v in rng.integers(0, 2**32, size=3))
        phase, component, position = int(rng.integers(0, 3)), int(rng.integers(0, 3)), int(rng.integers(0, 40))
        key = rng_lib.instruction_key(np, seed, task, phase, example, component, position)
        assert int(kernel.instruction_key(seed, task, phase, example, component, position)) == int(key)
        size = int(rng.integers(1, 70))
        u = [rng_lib.uniforms(np, key, (size,), np.float64, stream=s) for s in (0, 1)]
        for stream in (0, 1):
            got = np.array([kernel._uniform(np.uint64(int(key)), e, stream) for e in range(size)])
            assert _same_bits(got, u[stream])
        lo, hi = float(np.float32(rng.normal())), float(np.float32(abs(rng.normal())))
        want = ops_lib._gaussian_set(np, ops_lib.OpArgs(a=None, b=None, old=np.zeros(size), d=0.0, f0=lo, f1=hi,
                                                        f2=0.0, u1=u[0], u2=u[1], features=size))
        got = np.array([kernel._random_value(62, lo, hi, np.uint64(int(key)), e) for e in range(size)])
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)
        want_u = ops_lib._uniform_set(np, ops_lib.OpArgs(a=None, b=None, old=np.zeros(size), d=0.0, f0=lo, f1=hi,
                                                         f2=0.0, u1=u[0], u2=u[1], features=size))
        got_u = np.array([kernel._random_value(59, lo, hi, np.uint64(int(key)), e) for e in range(size)])
        assert _same_bits(got_u, want_u)
    for features in range(1, 41):
        edges = np.arange(features + 1, dtype=np.float32) / np.float32(features)
        fractions = np.concatenate([edges, np.nextafter(edges, np.float32(0)), np.nextafter(edges, np.float32(2)),
                                    np.float32([0.0, 1.0, 0.99999994, 1e-30])])
        fractions = fractions[(fractions >= 0) & (fractions <= 1)]
        want = [int(ops_lib._index(np, f, features)) for f in fractions]
        got = [int(kernel._index(float(f), features)) for f in fractions]
        assert got == want, features


def test_pairwise_sums_equal_numpy():
    """`np.sum` (NumPy's pairwise summation: sequential below 8 values, 8
    accumulators up to 128, halves above) restated by the kernel, bit for
    bit, for every length up to 1100 (F = 33 matrices), on values whose
    order of addition shows (wide magnitudes, cancellation, inf, NaN)."""
    from azero_jax.native_eval import kernel

    rng = np.random.default_rng(5)
    for n in range(0, 1101):
        buf = np.zeros(n + kernel.STACK)
        values = rng.normal(size=n) * 10.0 ** rng.integers(-20, 21, size=n)
        if n and n % 97 == 0:
            values[rng.integers(n)] = [np.inf, -np.inf, np.nan][n % 3]
        buf[:n] = values
        got = kernel._np_sum(buf, 0, n)
        assert _same_bits(got, np.sum(values)), n
        assert _same_bits(buf[:n], values)  # the stack lives past the data


# --------------------------------------------------------- the contract --

CONTRACT_MEM = MemoryShape(4, 3, 1, 4)


def _contract_tasks():
    # Few train examples per epoch and several epochs: FEC probes (10 train examples) run into epoch 2.
    spec_a = tasks_lib.TaskSpec("linear", features=4, num_train=6, num_valid=10, num_tasks=3, num_train_epochs=3)
    spec_b = tasks_lib.TaskSpec("linear", features=4, num_train=12, num_valid=10, num_tasks=2, data_seeds=(50,),
                                param_seeds=(60,))
    return tasks_lib.make_tasks([spec_a, spec_b])


def test_backend_through_the_evaluation_contract():
    """make_evaluator(backend="native") against backend="reference" on the
    demo ops (no transcendental, regression tasks): fitness within 1e-12
    (in fact equal) and identical counters with FEC, a train budget and a
    hurdle on; as program lists and as `ProgramArrays`."""
    task_list = _contract_tasks()
    rng = np.random.default_rng(12)
    programs = parity.random_programs(rng, CONTRACT_MEM, 60, max_size=8, op_ids=ops_lib.DEMO_OPS)
    programs = programs + programs[:20]  # FEC hits
    kw = dict(fec_spec=FECSpec(10, 10), train_budget=TrainBudget.neural_net((3, 1, 4), threshold_factor=0.5),
              seed=4, hurdle_tasks=2)
    native = evaluation.make_evaluator(task_list, CONTRACT_MEM, backend="native", **kw)
    ref = evaluation.make_evaluator(task_list, CONTRACT_MEM, backend="reference", **kw)
    assert isinstance(native.backend, NativeBackend) and isinstance(native.backend, evaluation.Backend)
    for batch in (programs[:30], from_algorithms(programs[30:])):
        got, want = native.evaluate(batch), ref.evaluate(batch)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
        assert list(got) == list(want)
        assert native.counters() == ref.counters()
    c = native.counters()
    assert c.fec_hits >= 20 and c.full_evaluations > 0 and c.train_steps > 0
    assert native.backend.interpreter_seconds > 0
    # Without FEC, select-style: every program on every task (task_results).
    got = evaluation.task_results(programs[:20], task_list, CONTRACT_MEM, backend="native", seed=3)
    want = evaluation.task_results(programs[:20], task_list, CONTRACT_MEM, backend="reference", seed=3)
    np.testing.assert_array_equal(got.fitness, want.fitness)
    np.testing.assert_array_equal(got.train_steps, want.train_steps)


def test_backend_probe_and_full_equal_the_reference():
    """The backend's `probe` (FEC error sequences; 10 train examples run into
    a second epoch of 6) and `full` (per-job budgets and seeds) against
    `ReferenceBackend`, bit for bit on the demo ops."""
    task_list = _contract_tasks()
    rng = np.random.default_rng(2)
    programs = parity.random_programs(rng, CONTRACT_MEM, 60, max_size=8, op_ids=ops_lib.DEMO_OPS)
    native, ref = NativeBackend(task_list, CONTRACT_MEM), ReferenceBackend(task_list, CONTRACT_MEM)
    p, t = _all_pairs(len(programs), len(task_list))
    jobs = evaluation.Jobs(p, t, rng.integers(1, 40, size=p.size), rng.integers(0, 2**32, size=p.size))
    none = native.full(programs, jobs.take(np.zeros(0, np.int64)))
    assert none.fitness.shape == none.train_steps.shape == (0,)
    got, want = native.full(programs, jobs), ref.full(programs, jobs)
    np.testing.assert_array_equal(got.fitness, want.fitness)
    np.testing.assert_array_equal(got.train_steps, want.train_steps)
    for num_train, num_valid in ((10, 10), (5, 3), (20, 4)):
        pg = native.probe(programs, jobs, num_train=num_train, num_valid=num_valid, seed=9)
        pw = ref.probe(programs, jobs, num_train=num_train, num_valid=num_valid, seed=9)
        np.testing.assert_array_equal(pg.lengths, pw.lengths)
        np.testing.assert_array_equal(pg.train_steps, pw.train_steps)
        bad = [j for j, n in enumerate(pw.lengths) if not _same_bits(pg.errors[j, :n], pw.errors[j, :n])]
        assert not bad, (num_train, len(bad), [(pg.errors[j, :pw.lengths[j]].tolist(),
                                                pw.errors[j, :pw.lengths[j]].tolist()) for j in bad[:2]])


# ------------------------------------------------------------- bad input --

BAD_PROGRAM = r"out of range|outside memory|op id outside"


def test_bad_input_is_a_one_line_error():
    task_list = parity.random_tasks(np.random.default_rng(0), 4, num_tasks=2, num_train=12)
    memory = MemoryShape(4, 3, 1, 4)
    backend = evaluation.make_backend("native", task_list, memory)
    jobs = evaluation.Jobs(np.zeros(2, np.int64), np.arange(2), np.full(2, 8), np.zeros(2, np.int64))
    out_of_range = Algorithm(predict=(ins("SCALAR_SUM", in1=0, in2=1, out=7),))  # s7 of 4 scalars
    for bad in (out_of_range, Algorithm(learn=(ins("MATRIX_SUM", in1=0, in2=1, out=0),))):  # m1 of 1 matrix
        with pytest.raises(ProgramError, match=BAD_PROGRAM) as e:
            backend.full([bad], jobs)
        assert "\n" not in str(e.value)
        with pytest.raises(ProgramError, match=BAD_PROGRAM):
            backend.probe([bad], jobs, num_train=4, num_valid=2, seed=0)
    with pytest.raises(ProgramError, match=BAD_PROGRAM):
        evaluation.make_evaluator(task_list, memory, backend="native").evaluate([out_of_range])
    # Packed programs with a negative address or an op id past the table.
    for field, value in ((1, -1), (0, ops_lib.NUM_OPS)):
        arrays = from_algorithms([Algorithm(predict=(ins("SCALAR_SUM", in1=0, in2=1, out=1),))])
        arrays.predict.ints[0, 0, field] = value
        with pytest.raises(ProgramError, match=BAD_PROGRAM):
            backend.full(arrays, jobs)
    with pytest.raises(ValueError, match="xla"):
        evaluation.make_evaluator(task_list, memory, backend="native", dtype="float32")
    with pytest.raises(ValueError, match="at least one task"):
        NativeBackend([], memory)


def test_missing_numba_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(native_eval, "available", lambda: False)
    task_list = parity.random_tasks(np.random.default_rng(0), 4, num_tasks=1)
    with pytest.raises(ValueError, match="Numba") as e:
        evaluation.make_backend("native", task_list, MemoryShape(4, 3, 1, 4))
    assert "\n" not in str(e.value) and "xla" in str(e.value)


# ------------------------------------------------------ C++ reference cases --

def _cpp_valid_errors(case: dict, task) -> np.ndarray:
    """The validation errors the C++ predictions imply (up to the stop)."""
    preds = np.asarray(case["valid_predictions"], dtype=np.float64)
    stop = case["valid_stop_index"]
    n = stop + 1 if stop >= 0 else preds.size
    y = task.y_valid[:n]
    with np.errstate(all="ignore"):
        if task.eval_type == "accuracy":
            p = 1.0 / (1.0 + np.exp(-preds[:n]))
            return np.where((p < 0) | (p > 1), np.inf, np.where((y > 0.5) == (p > 0.5), 0.0, 1.0))
        return np.abs(y - preds[:n])


def test_every_cpp_case_matches_through_the_native_backend():
    """The 300 C++-evaluated cases (tests/data/cpp_reference_cases.tar.xz)
    through `NativeBackend.full`, F group by F group (program i on task i,
    tasks of different sizes padded into one batch), with the tolerances of
    tests/test_cpp_reference_cases.py (`cpp_cases.mismatches`): fitness,
    train steps, the stop flag (a job that stopped training records no
    validation error) and the validation predictions, compared through the
    validation errors they imply (the native interpreter records errors, not
    predictions)."""
    manifest = cpp_cases.load_manifest()
    groups: dict[int, list[dict]] = {}
    for case in manifest["cases"]:
        groups.setdefault(case["features_size"], []).append(case)
    assert set(groups) == {2, 4, 8, 16, 32}
    checked, bad = 0, []
    for features, cases in sorted(groups.items()):
        memory, algs, task_list = cpp_cases.case_group(manifest, cases)
        n = len(cases)
        backend = evaluation.make_backend("native", task_list, memory, max_abs_error=manifest["max_abs_error"])
        budgets = np.array([t.num_train for t in task_list])
        full = backend.full(algs, evaluation.Jobs(np.arange(n), np.arange(n), budgets, np.zeros(n, np.int64)))
        rec = _run_native(algs, task_list, memory, np.arange(n), np.arange(n), seeds=np.zeros(n, np.int64),
                          max_abs_error=manifest["max_abs_error"])
        np.testing.assert_array_equal(rec.fitness, full.fitness)
        np.testing.assert_array_equal(rec.train_steps, full.train_steps)
        for i, case in enumerate(cases):
            steps, length = int(full.train_steps[i]), int(rec.lengths[i])
            stopped = length == steps  # one epoch: a stop returns before validation
            problems = cpp_cases.mismatches(dict(case, valid_predictions=None), float(full.fitness[i]), None,
                                            steps, stopped)
            if case["valid_predictions"] is not None and not stopped:
                want = _cpp_valid_errors(case, task_list[i])
                got = rec.errors[i, steps:length]
                scale = np.maximum(np.abs(task_list[i].y_valid[:want.size]),
                                   np.abs(np.asarray(case["valid_predictions"][:want.size], dtype=np.float64)))
                if got.size != want.size:
                    problems.append(f"{got.size} validation errors, C++ predictions imply {want.size}")
                elif not (np.array_equal(np.isnan(got), np.isnan(want)) and np.all(
                        (got == want) | (np.abs(got - want) <= 1e-9 * scale + 1e-12) | np.isnan(want))):
                    problems.append(f"validation errors {got.tolist()} != C++ implied {want.tolist()}")
            checked += 1
            if problems:
                bad.append(f"{case['id']} ({case['family']}, F={features}): " + "; ".join(problems))
    assert not bad, bad[:10]
    assert checked == manifest["n"] == 300


# -------------------------------------------------------------- threads --

def test_threads_do_not_change_results(monkeypatch):
    """AZERO_JAX_NATIVE_THREADS=1, 2 and 3 (more threads than this
    machine's cores; uneven blocks, each thread reusing its memory from job
    to job) and the jobs in a shuffled order: bit-identical fitness, steps,
    lengths and error rows on 1200 jobs over tasks of F = 4 and F = 2;
    recording errors changes nothing else."""
    rng = np.random.default_rng(8)
    memory = MemoryShape(4, 3, 1, 4)
    task_list = parity.random_tasks(rng, 4) + [dataclasses.replace(t, index=6 + i) for i, t in
                                               enumerate(parity.random_tasks(rng, 2, num_tasks=2))]
    programs = _programs(rng, memory, 150)
    p, t = _all_pairs(len(programs), len(task_list))
    seeds = rng.integers(0, 2**32, size=p.size)
    pools = []
    real_pool = native_eval._pool
    monkeypatch.setattr(native_eval, "_pool", lambda workers: pools.append(workers) or real_pool(workers))
    results = {}
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("AZERO_JAX_NATIVE_THREADS", threads)
        assert native_eval.threads() == int(threads)
        results[threads] = _run_native(programs, task_list, memory, p, t, seeds=seeds)
    assert pools == [1, 2]  # helper threads: the calling thread is the last worker
    order = rng.permutation(p.size)
    shuffled = _run_native(programs, task_list, memory, p[order], t[order], seeds=seeds[order])
    back = np.argsort(order)
    results["shuffled"] = native_eval.JobResults(shuffled.fitness[back], shuffled.train_steps[back],
                                                 shuffled.lengths[back], shuffled.errors[back])
    quiet = _run_native(programs, task_list, memory, p, t, seeds=seeds, record_errors=False)
    base = results["1"]
    assert (base.fitness > 0).sum() > 300
    for threads, out in results.items():
        assert _same_bits(out.fitness, base.fitness), threads
        np.testing.assert_array_equal(out.train_steps, base.train_steps)
        np.testing.assert_array_equal(out.lengths, base.lengths)
        assert _same_bits(out.errors, base.errors), threads
    assert _same_bits(quiet.fitness, base.fitness) and quiet.errors.shape == (p.size, 0)
    np.testing.assert_array_equal(quiet.train_steps, base.train_steps)


def test_long_jobs_run_one_per_block(monkeypatch):
    """Batches of long jobs (LONG_JOB_EXAMPLES lowered to force the path)
    run one job per block on every thread, even a batch of 3 jobs: results
    bit-identical to one thread's."""
    rng = np.random.default_rng(9)
    memory = MemoryShape(4, 3, 1, 4)
    task_list = parity.random_tasks(rng, 4)
    programs = _programs(rng, memory, 40)
    p, t = _all_pairs(len(programs), len(task_list))
    monkeypatch.setenv("AZERO_JAX_NATIVE_THREADS", "1")
    base = _run_native(programs, task_list, memory, p, t)
    small = _run_native(programs, task_list, memory, p[:3], t[:3])
    monkeypatch.setenv("AZERO_JAX_NATIVE_THREADS", "2")
    monkeypatch.setattr(native_eval, "LONG_JOB_EXAMPLES", 1)
    from azero_jax.native_eval import lanes

    calls = []
    real_jobs = lanes.evaluate_jobs
    monkeypatch.setattr(lanes, "evaluate_jobs", lambda *a: calls.append(len(a[-1])) or real_jobs(*a))
    for cut, want in ((p.size, base), (3, small)):
        calls.clear()
        out = _run_native(programs, task_list, memory, p[:cut], t[:cut])
        assert calls == [1] * cut  # one job per block
        assert _same_bits(out.fitness, want.fitness) and _same_bits(out.errors, want.errors)
        np.testing.assert_array_equal(out.train_steps, want.train_steps)


@pytest.mark.parametrize("features,memory", [(4, MemoryShape(4, 3, 1)), (16, MemoryShape(5, 9, 2))])
def test_fixed_features_equal_the_generic_code(monkeypatch, features, memory):
    """F compiled in as a constant (the demo's 4, the baseline's 16) and the
    generic code: bit-identical fitness, steps, lengths and error rows on
    random programs over all ops with special constants; a batch of tasks of
    several F runs the generic code."""
    rng = np.random.default_rng(features)
    memory = memory.with_features(features)
    task_list = parity.random_tasks(rng, features, num_tasks=4)
    programs = _programs(rng, memory, 300)
    p, t = _all_pairs(len(programs), len(task_list))
    assert native_eval.fixed_features(native_eval.TaskData.from_tasks(task_list)) == features
    fixed = _run_native(programs, task_list, memory, p, t)
    monkeypatch.setattr(native_eval, "FIXED_FEATURES", ())
    assert native_eval.fixed_features(native_eval.TaskData.from_tasks(task_list)) == 0
    generic = _run_native(programs, task_list, memory, p, t)
    assert (generic.fitness > 0).sum() > 100
    assert _same_bits(fixed.fitness, generic.fitness) and _same_bits(fixed.errors, generic.errors)
    np.testing.assert_array_equal(fixed.train_steps, generic.train_steps)
    np.testing.assert_array_equal(fixed.lengths, generic.lengths)
    monkeypatch.undo()
    mixed = task_list + [dataclasses.replace(t, index=9) for t in parity.random_tasks(rng, 2, num_tasks=1)]
    assert native_eval.fixed_features(native_eval.TaskData.from_tasks(mixed)) == 0


def test_backend_note_says_when_the_interpreter_compiles_or_numba_is_missing(monkeypatch):
    """A run logs one line before it starts: the native interpreter's first
    compilation, or that "auto" runs xla on this CPU because Numba is missing."""
    monkeypatch.setattr(native_eval, "compiled_on_disk", lambda: False)
    assert "compiling the interpreter once" in evaluation.backend_note("auto", "float64")
    monkeypatch.setattr(native_eval, "compiled_on_disk", lambda: True)
    assert evaluation.backend_note("auto", "float64") is None
    assert evaluation.backend_note("xla", "float64") is None
    monkeypatch.setattr(native_eval, "available", lambda: False)
    assert evaluation.resolve_backend("auto", 4, "float64") == "xla"
    note = evaluation.backend_note("auto", "float64")
    assert "Numba is not installed" in note and "azero-jax[cpu]" in note
    assert evaluation.backend_note("auto", "float32") is None  # float32 is xla's anyway
