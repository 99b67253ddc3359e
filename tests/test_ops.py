"""Every op against a hand-computed expectation, through the reference
interpreter's `execute` (so memory reads/writes and aliasing are covered)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from azero_jax import ops
from azero_jax.program import Instruction, MemoryShape, make_instruction
from azero_jax.reference import Memory, execute

F = 4
NAN, INF = math.nan, math.inf


def fresh_memory(features: int = F) -> Memory:
    """s2..s5 = 2, -3, 0.5, -0; v1 = [1,2,3,4], v2 = [-1,0.5,0,2]; m0 = [[1..4],[5..8],..], m1 = I*2."""
    mem = Memory(MemoryShape(8, 6, 4, features))
    mem.scalar[2:6] = [2.0, -3.0, 0.5, -0.0]
    mem.vector[1] = np.arange(1, features + 1, dtype=float)
    mem.vector[2] = np.resize([-1.0, 0.5, 0.0, 2.0], features)
    mem.matrix[0] = np.arange(1, features * features + 1, dtype=float).reshape(features, features)
    mem.matrix[1] = 2.0 * np.eye(features)
    return mem


def run(instr: Instruction, mem: Memory | None = None) -> Memory:
    mem = mem or fresh_memory()
    execute([instr], mem)
    return mem


def op(name, **kw) -> Instruction:
    return make_instruction(name, **kw)


V1 = np.array([1.0, 2.0, 3.0, 4.0])
V2 = np.array([-1.0, 0.5, 0.0, 2.0])
M0 = np.arange(1, 17, dtype=float).reshape(4, 4)
M1 = 2.0 * np.eye(4)

SCALAR_CASES = [
    ("SCALAR_SUM", dict(in1=2, in2=3), -1.0),
    ("SCALAR_DIFF", dict(in1=2, in2=3), 5.0),
    ("SCALAR_PRODUCT", dict(in1=2, in2=3), -6.0),
    ("SCALAR_DIVISION", dict(in1=2, in2=3), -2.0 / 3.0),
    ("SCALAR_ABS", dict(in1=3), 3.0),
    ("SCALAR_RECIPROCAL", dict(in1=4), 2.0),
    ("SCALAR_SIN", dict(in1=4), math.sin(0.5)),
    ("SCALAR_COS", dict(in1=4), math.cos(0.5)),
    ("SCALAR_TAN", dict(in1=4), math.tan(0.5)),
    ("SCALAR_ARCSIN", dict(in1=4), math.asin(0.5)),
    ("SCALAR_ARCCOS", dict(in1=4), math.acos(0.5)),
    ("SCALAR_ARCTAN", dict(in1=3), math.atan(-3.0)),
    ("SCALAR_EXP", dict(in1=4), math.exp(0.5)),
    ("SCALAR_LOG", dict(in1=2), math.log(2.0)),
    ("SCALAR_HEAVYSIDE", dict(in1=3), 0.0),
    ("SCALAR_HEAVYSIDE", dict(in1=2), 1.0),
    ("VECTOR_NORM", dict(in1=1), math.sqrt(30.0)),
    ("VECTOR_INNER_PRODUCT", dict(in1=1, in2=2), -1.0 + 1.0 + 0.0 + 8.0),
    ("MATRIX_NORM", dict(in1=1), 4.0),
    ("SCALAR_MIN", dict(in1=2, in2=3), -3.0),
    ("SCALAR_MAX", dict(in1=2, in2=3), 2.0),
    ("VECTOR_MEAN", dict(in1=1), 2.5),
    ("MATRIX_MEAN", dict(in1=0), 8.5),
    ("VECTOR_ST_DEV", dict(in1=1), math.sqrt(30.0 / 4 - 2.5**2)),
    ("MATRIX_ST_DEV", dict(in1=1), math.sqrt(16.0 / 16 - 0.5**2)),
    ("SCALAR_CONST_SET", dict(d=-0.75), -0.75),
]


@pytest.mark.parametrize("name,kw,expected", SCALAR_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(SCALAR_CASES)])
def test_scalar_output_ops(name, kw, expected):
    mem = run(op(name, out=7, **kw))
    assert mem.scalar[7] == pytest.approx(expected, rel=1e-15, abs=0)


VECTOR_CASES = [
    ("VECTOR_HEAVYSIDE", dict(in1=2), [0.0, 1.0, 0.0, 1.0]),  # strict: 0 -> 0
    ("SCALAR_VECTOR_PRODUCT", dict(in1=3, in2=1), [-3.0, -6.0, -9.0, -12.0]),
    ("SCALAR_BROADCAST", dict(in1=4), [0.5] * 4),
    ("VECTOR_RECIPROCAL", dict(in1=1), [1.0, 0.5, 1 / 3, 0.25]),
    ("VECTOR_ABS", dict(in1=2), [1.0, 0.5, 0.0, 2.0]),
    ("VECTOR_SUM", dict(in1=1, in2=2), [0.0, 2.5, 3.0, 6.0]),
    ("VECTOR_DIFF", dict(in1=1, in2=2), [2.0, 1.5, 3.0, 2.0]),
    ("VECTOR_PRODUCT", dict(in1=1, in2=2), [-1.0, 1.0, 0.0, 8.0]),
    ("VECTOR_DIVISION", dict(in1=2, in2=1), [-1.0, 0.25, 0.0, 0.5]),
    ("MATRIX_VECTOR_PRODUCT", dict(in1=0, in2=1), list(M0 @ V1)),
    ("MATRIX_COLUMN_NORM", dict(in1=0), list(np.sqrt((M0**2).sum(axis=0)))),
    ("MATRIX_ROW_NORM", dict(in1=0), list(np.sqrt((M0**2).sum(axis=1)))),
    ("VECTOR_MIN", dict(in1=1, in2=2), [-1.0, 0.5, 0.0, 2.0]),
    ("VECTOR_MAX", dict(in1=1, in2=2), [1.0, 2.0, 3.0, 4.0]),
    ("MATRIX_ROW_MEAN", dict(in1=0), [2.5, 6.5, 10.5, 14.5]),
    ("MATRIX_ROW_ST_DEV", dict(in1=0), [math.sqrt(1.25)] * 4),
]


@pytest.mark.parametrize("name,kw,expected", VECTOR_CASES, ids=[c[0] for c in VECTOR_CASES])
def test_vector_output_ops(name, kw, expected):
    mem = run(op(name, out=5, **kw))
    np.testing.assert_allclose(mem.vector[5], expected, rtol=1e-15, atol=0)


MATRIX_CASES = [
    ("MATRIX_HEAVYSIDE", dict(in1=1), (M1 > 0).astype(float)),
    ("VECTOR_OUTER_PRODUCT", dict(in1=1, in2=2), np.outer(V1, V2)),
    ("SCALAR_MATRIX_PRODUCT", dict(in1=3, in2=0), -3.0 * M0),
    ("MATRIX_RECIPROCAL", dict(in1=0), 1.0 / M0),
    ("VECTOR_COLUMN_BROADCAST", dict(in1=1), np.tile(V1[:, None], (1, 4))),  # every column = v
    ("VECTOR_ROW_BROADCAST", dict(in1=1), np.tile(V1[None, :], (4, 1))),  # every row = v
    ("MATRIX_TRANSPOSE", dict(in1=0), M0.T),
    ("MATRIX_ABS", dict(in1=0), M0),
    ("MATRIX_SUM", dict(in1=0, in2=1), M0 + M1),
    ("MATRIX_DIFF", dict(in1=0, in2=1), M0 - M1),
    ("MATRIX_PRODUCT", dict(in1=0, in2=1), M0 * M1),
    ("MATRIX_DIVISION", dict(in1=1, in2=0), M1 / M0),
    ("MATRIX_MATRIX_PRODUCT", dict(in1=0, in2=0), M0 @ M0),
    ("MATRIX_MIN", dict(in1=0, in2=1), np.minimum(M0, M1)),
    ("MATRIX_MAX", dict(in1=0, in2=1), np.maximum(M0, M1)),
]


@pytest.mark.parametrize("name,kw,expected", MATRIX_CASES, ids=[c[0] for c in MATRIX_CASES])
def test_matrix_output_ops(name, kw, expected):
    mem = run(op(name, out=3, **kw))
    np.testing.assert_allclose(mem.matrix[3], expected, rtol=1e-15, atol=0)


def test_every_op_has_a_hand_computed_case_or_a_dedicated_test():
    covered = {ops.get_op(c[0]).id for c in SCALAR_CASES + VECTOR_CASES + MATRIX_CASES}
    # tested below: NoOp, the element-setting ops and the random ops
    dedicated = {o.id for o in ops.OPS if o.out is None or o.index_consts or o.random}
    assert covered | dedicated == set(range(ops.NUM_OPS))


def test_no_op_changes_nothing():
    mem = fresh_memory()
    before = (mem.scalar.copy(), mem.vector.copy(), mem.matrix.copy())
    run(Instruction(0), mem)
    for a, b in zip(before, (mem.scalar, mem.vector, mem.matrix), strict=True):
        np.testing.assert_array_equal(a, b)


def test_heaviside_asymmetry_at_zero_and_nan():
    mem = fresh_memory()
    mem.scalar[2], mem.scalar[3], mem.scalar[4] = 0.0, -0.0, NAN
    mem.vector[1] = [0.0, -0.0, NAN, 1e-300]
    execute([op("SCALAR_HEAVYSIDE", in1=2, out=5), op("SCALAR_HEAVYSIDE", in1=3, out=6),
             op("SCALAR_HEAVYSIDE", in1=4, out=7), op("VECTOR_HEAVYSIDE", in1=1, out=3)], mem)
    assert (mem.scalar[5], mem.scalar[6], mem.scalar[7]) == (1.0, 1.0, 0.0)  # scalar: x >= 0
    np.testing.assert_array_equal(mem.vector[3], [0.0, 0.0, 0.0, 1.0])  # vector: x > 0


def test_min_max_nan_and_signed_zero_rules():
    mem = fresh_memory()
    mem.scalar[2], mem.scalar[3] = NAN, 1.0
    mem.vector[1] = [NAN, 1.0, 0.0, -0.0]
    mem.vector[2] = [1.0, NAN, -0.0, 0.0]
    mem.matrix[0] = 0.0
    mem.matrix[0][0, :] = [NAN, 1.0, 0.0, -0.0]
    mem.matrix[1] = 0.0
    mem.matrix[1][0, :] = [1.0, NAN, -0.0, 0.0]
    execute([
        op("SCALAR_MIN", in1=2, in2=3, out=5), op("SCALAR_MIN", in1=3, in2=2, out=6),
        op("SCALAR_MAX", in1=2, in2=3, out=7),
        op("VECTOR_MIN", in1=1, in2=2, out=3), op("VECTOR_MAX", in1=1, in2=2, out=4),
        op("MATRIX_MIN", in1=0, in2=1, out=2), op("MATRIX_MAX", in1=0, in2=1, out=3),
    ], mem)
    # Scalars and vectors keep in1 on NaN or a +-0 tie (std::min / std::max) ...
    assert math.isnan(mem.scalar[5]) and mem.scalar[6] == 1.0 and math.isnan(mem.scalar[7])
    for row in (mem.vector[3], mem.vector[4]):
        assert math.isnan(row[0]) and row[1] == 1.0
        assert math.copysign(1, row[2]) == 1 and math.copysign(1, row[3]) == -1
    # ... matrices keep in2.
    for res in (mem.matrix[2][0], mem.matrix[3][0]):
        assert res[0] == 1.0 and math.isnan(res[1])
        assert math.copysign(1, res[2]) == -1 and math.copysign(1, res[3]) == 1


def test_ieee_without_guarding():
    mem = fresh_memory()
    mem.scalar[2], mem.scalar[3] = 0.0, -1.0
    execute([op("SCALAR_DIVISION", in1=4, in2=2, out=5), op("SCALAR_LOG", in1=3, out=6),
             op("SCALAR_LOG", in1=2, out=7), op("SCALAR_ARCSIN", in1=3, out=3)], mem)
    mem2 = fresh_memory()
    mem2.scalar[2] = 1000.0
    execute([op("SCALAR_EXP", in1=2, out=5), op("SCALAR_RECIPROCAL", in1=5, out=6)], mem2)
    assert mem.scalar[5] == INF and math.isnan(mem.scalar[6]) and mem.scalar[7] == -INF
    assert mem.scalar[3] == -math.pi / 2  # asin(-1)
    assert mem2.scalar[5] == INF and mem2.scalar[6] == 0.0


def test_norms_do_not_rescale():
    mem = fresh_memory()
    mem.vector[1] = [1e200, 0.0, 0.0, 0.0]
    mem.vector[2] = [1e-200, 0.0, 0.0, 0.0]
    execute([op("VECTOR_NORM", in1=1, out=5), op("VECTOR_NORM", in1=2, out=6)], mem)
    assert mem.scalar[5] == INF and mem.scalar[6] == 0.0  # plain sqrt(sum of squares)


def test_st_dev_negative_radicand_is_nan():
    mem = fresh_memory()
    mem.vector[1] = [0.1] * 4  # x.x/F - mean^2 rounds below zero for this value
    execute([op("VECTOR_ST_DEV", in1=1, out=5)], mem)
    radicand = np.dot(mem.vector[1], mem.vector[1]) / 4 - 0.1 * 0.1
    if radicand < 0:
        assert math.isnan(mem.scalar[5])
    else:
        assert mem.scalar[5] == math.sqrt(radicand)


@pytest.mark.parametrize("name,kind", [("MATRIX_TRANSPOSE", "m"), ("MATRIX_MATRIX_PRODUCT", "m")])
def test_aliasing_output_and_input_is_safe(name, kind):
    mem = fresh_memory()
    kw = dict(in1=0, out=0) if name == "MATRIX_TRANSPOSE" else dict(in1=0, in2=0, out=0)
    execute([op(name, **kw)], mem)
    np.testing.assert_array_equal(mem.matrix[0], M0.T if name == "MATRIX_TRANSPOSE" else M0 @ M0)


def test_aliasing_vector_ops():
    mem = fresh_memory()
    execute([op("MATRIX_VECTOR_PRODUCT", in1=0, in2=1, out=1), op("VECTOR_SUM", in1=2, in2=2, out=2)], mem)
    np.testing.assert_array_equal(mem.vector[1], M0 @ V1)
    np.testing.assert_array_equal(mem.vector[2], 2 * V2)


def test_const_set_writes_one_element_and_leaves_the_rest():
    mem = fresh_memory()
    execute([op("VECTOR_CONST_SET", out=1, f0=0.5, f1=-7.0), op("MATRIX_CONST_SET", out=0, f0=0.25, f1=0.9, f2=9.5)],
            mem)
    np.testing.assert_array_equal(mem.vector[1], [1.0, 2.0, -7.0, 4.0])  # int(4 * 0.5) = 2
    expected = M0.copy()
    expected[1, 3] = 9.5  # int(4 * 0.25) = 1, int(4 * 0.9) = 3
    np.testing.assert_array_equal(mem.matrix[0], expected)


@pytest.mark.parametrize("features,fraction,index", [(4, 0.2499, 0), (4, 0.25, 1), (16, 0.999, 15), (1, 0.7, 0),
                                                     (32, 0.03125, 1), (3, 0.6666667, 2)])
def test_element_index_is_int_of_f_times_fraction(features, fraction, index):
    mem = Memory(MemoryShape(2, 2, 1, features))
    execute([op("VECTOR_CONST_SET", out=1, f0=fraction, f1=1.0)], mem)
    assert list(np.nonzero(mem.vector[1])[0]) == [index]


def test_element_index_uses_float32_product():
    # f = 0.1f (float32) and F = 10: 10 * 0.1f rounds to exactly 1.0 in float32,
    # but to 1.0000000149... in float64; both truncate to 1.
    f = float(np.float32(0.1))
    mem = Memory(MemoryShape(2, 2, 1, 10))
    execute([op("VECTOR_CONST_SET", out=1, f0=f, f1=1.0)], mem)
    assert np.nonzero(mem.vector[1])[0].tolist() == [1]


def test_uniform_set_with_lo_ge_hi_returns_lo():
    mem = fresh_memory()
    execute([op("SCALAR_UNIFORM_SET", out=5, f0=0.5, f1=-0.25), op("VECTOR_UNIFORM_SET", out=3, f0=0.75, f1=0.75),
             op("MATRIX_UNIFORM_SET", out=2, f0=-0.0, f1=-0.0), op("SCALAR_UNIFORM_SET", out=6, f0=NAN, f1=1.0),
             op("SCALAR_UNIFORM_SET", out=7, f0=-0.0, f1=-0.5)], mem)
    assert mem.scalar[5] == 0.5
    assert mem.scalar[7] == 0.0 and math.copysign(1, mem.scalar[7]) == -1  # lo > hi: lo itself, sign kept
    np.testing.assert_array_equal(mem.vector[3], [0.75] * 4)
    assert np.all(mem.matrix[2] == 0.0) and np.all(np.copysign(1, mem.matrix[2]) == 1)  # -0 + 0 = +0
    assert math.isnan(mem.scalar[6])


def test_uniform_and_gaussian_set_draw_from_the_counter_stream():
    mem = fresh_memory()
    instrs = [op("VECTOR_UNIFORM_SET", out=3, f0=-0.5, f1=0.25), op("MATRIX_GAUSSIAN_SET", out=2, f0=1.0, f1=0.5),
              op("SCALAR_GAUSSIAN_SET", out=5, f0=-1.0, f1=0.0)]
    execute(instrs, mem, seed=3, example=7)
    assert np.all((mem.vector[3] > -0.5) & (mem.vector[3] < 0.25)) and len(set(mem.vector[3])) == 4
    assert mem.scalar[5] == -1.0  # sd 0
    again = fresh_memory()
    execute(instrs, again, seed=3, example=7)
    np.testing.assert_array_equal(mem.matrix[2], again.matrix[2])  # a pure function of the key
    other = fresh_memory()
    execute(instrs, other, seed=3, example=8)
    assert not np.array_equal(mem.matrix[2], other.matrix[2])


def test_gaussian_set_statistics():
    mem = Memory(MemoryShape(2, 2, 1, 64))
    samples = []
    for example in range(40):
        execute([op("MATRIX_GAUSSIAN_SET", out=0, f0=0.5, f1=2.0)], mem, example=example)
        samples.append(mem.matrix[0].ravel().copy())
    samples = np.concatenate(samples)
    assert abs(samples.mean() - 0.5) < 0.03 and abs(samples.std() - 2.0) < 0.03


def test_op_table_is_complete_and_consistent():
    assert ops.NUM_OPS == 65 and [o.id for o in ops.OPS] == list(range(65))
    assert len({o.name for o in ops.OPS}) == 65
    for o in ops.OPS:
        assert o.cost > 0
        assert ("{a}" in o.printed) == (o.in1 is not None) and ("{b}" in o.printed) == (o.in2 is not None)
        for field in o.consts:
            assert "{" + field + "}" in o.printed
        assert {r[0] for r in o.randomize} == set(o.consts)
        assert o.random == (59 <= o.id <= 64)
    assert ops.get_op("scalar_sum").id == 1 and ops.get_op("VECTOR_SUM_OP").id == 23
    with pytest.raises(ValueError, match="unknown op"):
        ops.get_op(65)
    with pytest.raises(ValueError, match="unknown op"):
        ops.get_op("FOO")


_ELEMENTARY = {"sin", "cos", "tan", "arcsin", "arccos", "arctan", "exp", "log"}


def _names_flagged(field):
    return {o.name.removesuffix("_OP") for o in ops.OPS if getattr(o, field)}


def test_op_metadata_flags_exactly_the_expected_ops():
    assert _names_flagged("transcendental") == {
        "SCALAR_SIN", "SCALAR_COS", "SCALAR_TAN", "SCALAR_ARCSIN", "SCALAR_ARCCOS", "SCALAR_ARCTAN",
        "SCALAR_EXP", "SCALAR_LOG", "SCALAR_GAUSSIAN_SET", "VECTOR_GAUSSIAN_SET", "MATRIX_GAUSSIAN_SET"}
    assert _names_flagged("cubic") == {"MATRIX_MATRIX_PRODUCT"}
    assert {o.name: o.index_consts for o in ops.OPS if o.index_consts} == {
        "VECTOR_CONST_SET_OP": 1, "MATRIX_CONST_SET_OP": 2}
    for o in ops.OPS:
        assert isinstance(o.index_consts, int) and isinstance(o.transcendental, bool) and isinstance(o.cubic, bool)


class _SpyXP:
    """`numpy` that records which functions a kernel looks up."""

    def __init__(self):
        self.used = set()

    def __getattr__(self, name):
        self.used.add(name)
        return getattr(np, name)


@pytest.mark.parametrize("o", ops.OPS, ids=[o.name for o in ops.OPS])
def test_transcendental_flag_matches_the_kernel(o):
    """`Op.transcendental` holds exactly when the kernel calls an elementary
    function (the libm-vs-XLA ulp source the parity tests steer around)."""
    value = {None: None, "s": np.float64(0.5), "v": np.full(F, 0.5), "m": np.full((F, F), 0.5)}
    shape = np.shape(value[o.out]) if o.out else ()
    u = np.full(shape, 0.25) if o.random else None
    spy = _SpyXP()
    with np.errstate(all="ignore"):
        o.kernel(spy, ops.OpArgs(a=value[o.in1], b=value[o.in2], old=value[o.out], d=0.5, f0=0.5, f1=0.5, f2=0.5,
                                 u1=u, u2=u, features=F))
    assert bool(spy.used & _ELEMENTARY) == o.transcendental, spy.used


@pytest.mark.parametrize("o", [o for o in ops.OPS if o.index_consts], ids=lambda o: o.name)
def test_element_index_constants_are_fractions_in_unit_interval(o):
    """The leading `index_consts` constants are element indices: drawn and
    altered in [0, 1], validated to lie there, and mapped to the integral
    element int(F * f) (clamped to F - 1) by the kernel; the last constant is
    the value and may be anything."""
    from azero_jax.program import ProgramError, validate_instruction

    index_fields = o.consts[:o.index_consts]
    assert 0 < o.index_consts < len(o.consts) and o.reads_out
    assert all((f, 0.0, 1.0) in o.randomize for f in index_fields)
    assert all((f, "uniform01") in o.alter for f in index_fields)
    memory = MemoryShape(2, 2, 2, F)
    for field in index_fields:
        for bad in (-0.25, 1.5, NAN):
            with pytest.raises(ProgramError, match="element index"):
                validate_instruction(op(o.name, out=1, **{field: bad}), memory)
    validate_instruction(op(o.name, out=1, **{o.consts[-1]: 1.5}), memory)
    for fraction in (0.0, 0.3, 0.999, 1.0):
        mem = Memory(memory)
        execute([op(o.name, out=1, **{f: fraction for f in index_fields}, **{o.consts[-1]: 1.0})], mem)
        bank = mem.vector[1] if o.out == ops.VECTOR else mem.matrix[1]
        element = min(int(F * fraction), F - 1)
        assert np.argwhere(bank).tolist() == [[element] * o.index_consts]
