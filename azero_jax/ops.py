"""The op table: the single source of truth for all 65 AutoML-Zero ops.

Every other part of the package (printer, parser, mutator, NumPy reference
interpreter, JAX interpreter, cost model) reads `OPS`. Adding an op is one
`Op(...)` entry here.

Each op's `kernel` is written against an array namespace `xp` (``numpy`` or
``jax.numpy``) and a single memory lane: a scalar is a 0-d array, a vector has
shape ``(F,)``, a matrix ``(F, F)`` (row-major, as in the reference). Kernels
are pure: they return the new value of the output address and never mutate
their inputs, so aliasing of output and input (``m1 = matmul(m1, m1)``,
``m2 = transpose(m2)``) is safe by construction.

Semantics follow the authors' C++ (`executor.h`, 2021) exactly, including its
quirks; see README "Reference quirks".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

SCALAR, VECTOR, MATRIX = "s", "v", "m"
KINDS = (SCALAR, VECTOR, MATRIX)
KIND_NAMES = {SCALAR: "scalar", VECTOR: "vector", MATRIX: "matrix"}

# Lowest output address a *randomly generated or mutated* instruction may use:
# s0 (label) and v0 (features) are never written by random programs (spec §1).
RANDOM_OUT_ADDRESS_MIN = {SCALAR: 1, VECTOR: 1, MATRIX: 0}

LABEL_ADDRESS = 0  # s0
PREDICTION_ADDRESS = 1  # s1
FEATURES_ADDRESS = 0  # v0

# Constant fields of an instruction, in storage order. `d` is the double
# "activation data"; f0..f2 are float32 "float data" (reference §2).
CONST_FIELDS = ("d", "f0", "f1", "f2")


class OpArgs(NamedTuple):
    """Everything a kernel may read; unused fields are ignored by the kernel."""

    a: Any  # value at in1 (kind op.in1)
    b: Any  # value at in2 (kind op.in2)
    old: Any  # current value at out (read by the element-setting ops)
    d: Any  # activation data (float64)
    f0: Any  # float data 0 (float32 value, promoted)
    f1: Any
    f2: Any
    u1: Any  # uniform(0,1) draws of the output's shape (random ops only)
    u2: Any  # a second independent set of draws (Box-Muller)
    features: int  # F


Kernel = Callable[[Any, OpArgs], Any]


@dataclasses.dataclass(frozen=True)
class Op:
    """One row of the op table.

    Attributes:
      id: the reference's enum value (0-64).
      name: the reference's enum name, e.g. ``SCALAR_SUM_OP``.
      in1, in2, out: operand kinds (``"s"``, ``"v"``, ``"m"``) or None.
      consts: which of ``d, f0, f1, f2`` the op uses.
      printed: printed form; ``{o}``, ``{a}``, ``{b}`` are addresses with their
        kind letter, ``{d}``, ``{f0}``.. are numbers in C++ ``%g`` form.
      cost: `ComputeCost` value used by the train budget (spec §3, §8).
      kernel: semantics; see module docstring.
      randomize: how SetOpAndRandomizeParams draws constants, as
        ``(field, low, high)`` uniform draws in order.
      alter: AlterData choices (uniform over the tuple); each choice is
        ``(field, rule)`` with rule one of ``"uniform01"``, ``"log_scale_or_flip"``,
        ``"log_scale"``.
      sort_after_alter: the uniform-set rule: store (min, max) of f0, f1.
      random: the op draws from the random stream when executed.
      reads_out: the op writes only part of its output (one element) and keeps
        the rest, so it reads the output's old value (dataflow analyses and the
        batched interpreter need to know).
      index_consts: how many leading entries of `consts` are element indices
        rather than values: fractions in [0, 1] that select element
        ``int(F * fraction)`` (clamped to F - 1; the reference's
        `FloatToIndex`). 1 for VECTOR_CONST_SET (f0), 2 for MATRIX_CONST_SET
        (f0 row, f1 column), else 0. Validation requires them in [0, 1];
        random constant generators must keep them there.
      transcendental: the kernel evaluates an elementary transcendental
        function (sin, cos, tan, arcsin, arccos, arctan, exp, log; for the
        Gaussian sampler the log and cos of Box-Muller). NumPy takes these
        from libm, XLA from its own approximations, so float64 results may
        differ by an ulp between the reference and the JAX interpreter (every
        other op is exact IEEE arithmetic, sqrt or selection); they are also
        several times dearer than arithmetic (the interpreter groups them apart).
      cubic: the op's work is O(F^3) (the matrix-matrix product); every other
        op is linear in the size of its operands and output.
      family: ``"noop"``, ``"compute"``, ``"set"`` (const/random set).
    """

    id: int
    name: str
    in1: str | None
    in2: str | None
    out: str | None
    consts: tuple[str, ...]
    printed: str
    cost: int
    kernel: Kernel
    randomize: tuple[tuple[str, float, float], ...] = ()
    alter: tuple[tuple[str, str], ...] = ()
    sort_after_alter: bool = False
    random: bool = False
    reads_out: bool = False
    index_consts: int = 0
    transcendental: bool = False
    cubic: bool = False

    @property
    def family(self) -> str:
        if self.out is None:
            return "noop"
        if self.in1 is None:
            return "set"
        return "compute"

    @property
    def num_inputs(self) -> int:
        return (self.in1 is not None) + (self.in2 is not None)


# ---------------------------------------------------------------- kernels --
# Min/max follow the C++ operand rules exactly (spec §3, ops 44-49):
#   std::min(a, b) = b < a ? b : a     std::max(a, b) = a < b ? b : a
#   matrix min: a < b ? a : b          matrix max: a > b ? a : b


def _std_min(xp, a, b):
    return xp.where(b < a, b, a)


def _std_max(xp, a, b):
    return xp.where(a < b, b, a)


def _mean(xp, x, axis=None):
    n = x.size if axis is None else x.shape[axis]
    return xp.sum(x, axis=axis) / n


def _rounded(xp, product):
    """`product` as it is; under XLA a select between it and the subtraction
    it feeds, so the compiler cannot contract `a - b * c` into an FMA (which
    skips the product's rounding: sqrt(E[x^2] - E[x]^2) of one element was a
    tiny nonzero or NaN instead of 0 in the pallas kernel's interpret mode).
    The same form as `pallas_eval.kernel._no_contract`; a no-op for NumPy."""
    if getattr(xp, "__name__", "") == "numpy":
        return product
    return xp.where(xp.isnan(product), xp.asarray(float("nan"), product.dtype), product)


def _st_dev(xp, x, axis=None):
    # sqrt(E[x^2] - E[x]^2) exactly as the reference (no clamping: a tiny
    # negative radicand gives NaN).
    n = x.size if axis is None else x.shape[axis]
    mean = xp.sum(x, axis=axis) / n
    return xp.sqrt(xp.sum(x * x, axis=axis) / n - _rounded(xp, mean * mean))


def _index(xp, f, features):
    """`FloatToIndex`: int(F * f) in float32, truncating; clamped into range
    (the reference would index out of bounds for f >= 1)."""
    scaled = xp.asarray(f, dtype=xp.float32) * xp.float32(features)
    # Clamp before the cast: float->int of NaN/huge values differs between NumPy and XLA.
    scaled = xp.clip(xp.where(scaled == scaled, scaled, 0.0), 0.0, features - 1.0)
    return scaled.astype(xp.int32)


def _vector_set(xp, x: OpArgs):
    i = _index(xp, x.f0, x.features)
    pos = xp.arange(x.features)
    return xp.where(pos == i, xp.asarray(x.f1, dtype=x.old.dtype), x.old)


def _matrix_set(xp, x: OpArgs):
    i = _index(xp, x.f0, x.features)
    j = _index(xp, x.f1, x.features)
    rows = xp.arange(x.features)[:, None]
    cols = xp.arange(x.features)[None, :]
    hit = (rows == i) & (cols == j)
    return xp.where(hit, xp.asarray(x.f2, dtype=x.old.dtype), x.old)


def _uniform_set(xp, x: OpArgs):
    """abseil `Uniform(IntervalOpen, lo, hi)`: lo > hi (or NaN) returns lo unchanged;
    lo == hi returns lo + 0 (so +0 for zero bounds); else lo + (hi - lo) * u."""
    lo = xp.asarray(x.f0, dtype=x.u1.dtype)
    hi = xp.asarray(x.f1, dtype=x.u1.dtype)
    drawn = lo + (hi - lo) * x.u1
    valid = lo <= hi  # False for lo > hi and for NaN bounds
    return xp.where(valid, drawn, lo)  # lo itself: keeps the sign of -0


def _gaussian_set(xp, x: OpArgs):
    """mean + sd * z with z from Box-Muller on the two uniform streams."""
    mean = xp.asarray(x.f0, dtype=x.u1.dtype)
    sd = xp.asarray(x.f1, dtype=x.u1.dtype)
    z = xp.sqrt(-2.0 * xp.log(x.u1)) * xp.cos(2.0 * 3.141592653589793 * x.u2)
    return mean + sd * z


def _k(fn: Callable[..., Any]) -> Kernel:
    """Adapts ``fn(xp, a, b)`` to the kernel signature."""
    return lambda xp, x: fn(xp, x.a, x.b)


_LOG_FLIP = "log_scale_or_flip"

_S, _V, _M = SCALAR, VECTOR, MATRIX
_TRANSC = dict(transcendental=True)  # libm elementary function (see Op.transcendental)

_TABLE = [
    # id, name, in1, in2, out, consts, printed, cost, kernel, extra
    (0, "NO_OP", None, None, None, (), "NoOp()", 3013921, lambda xp, x: None, {}),
    (1, "SCALAR_SUM_OP", _S, _S, _S, (), "{o} = {a} + {b}", 4703759, _k(lambda xp, a, b: a + b), {}),
    (2, "SCALAR_DIFF_OP", _S, _S, _S, (), "{o} = {a} - {b}", 5102027, _k(lambda xp, a, b: a - b), {}),
    (3, "SCALAR_PRODUCT_OP", _S, _S, _S, (), "{o} = {a} * {b}", 4418347, _k(lambda xp, a, b: a * b), {}),
    (4, "SCALAR_DIVISION_OP", _S, _S, _S, (), "{o} = {a} / {b}", 3963916, _k(lambda xp, a, b: a / b), {}),
    (5, "SCALAR_ABS_OP", _S, None, _S, (), "{o} = abs({a})", 3684352, _k(lambda xp, a, b: xp.abs(a)), {}),
    (6, "SCALAR_RECIPROCAL_OP", _S, None, _S, (), "{o} = 1 / {a}", 4212086, _k(lambda xp, a, b: 1.0 / a), {}),
    (7, "SCALAR_SIN_OP", _S, None, _S, (), "{o} = sin({a})", 7538523, _k(lambda xp, a, b: xp.sin(a)), _TRANSC),
    (8, "SCALAR_COS_OP", _S, None, _S, (), "{o} = cos({a})", 7452807, _k(lambda xp, a, b: xp.cos(a)), _TRANSC),
    (9, "SCALAR_TAN_OP", _S, None, _S, (), "{o} = tan({a})", 7583203, _k(lambda xp, a, b: xp.tan(a)), _TRANSC),
    (10, "SCALAR_ARCSIN_OP", _S, None, _S, (), "{o} = arcsin({a})", 9145616,
     _k(lambda xp, a, b: xp.arcsin(a)), _TRANSC),
    (11, "SCALAR_ARCCOS_OP", _S, None, _S, (), "{o} = arccos({a})", 7673039,
     _k(lambda xp, a, b: xp.arccos(a)), _TRANSC),
    (12, "SCALAR_ARCTAN_OP", _S, None, _S, (), "{o} = arctan({a})", 9273978,
     _k(lambda xp, a, b: xp.arctan(a)), _TRANSC),
    (13, "SCALAR_EXP_OP", _S, None, _S, (), "{o} = exp({a})", 11755929, _k(lambda xp, a, b: xp.exp(a)), _TRANSC),
    (14, "SCALAR_LOG_OP", _S, None, _S, (), "{o} = log({a})", 11627725, _k(lambda xp, a, b: xp.log(a)), _TRANSC),
    # Scalar heaviside is x >= 0; vector and matrix heaviside are x > 0.
    (15, "SCALAR_HEAVYSIDE_OP", _S, None, _S, (), "{o} = heaviside({a}, 1.0)", 4057075,
     _k(lambda xp, a, b: xp.where(a >= 0.0, 1.0, 0.0).astype(a.dtype)), {}),
    (16, "VECTOR_HEAVYSIDE_OP", _V, None, _V, (), "{o} = heaviside({a}, 1.0)", 3965743,
     _k(lambda xp, a, b: xp.where(a > 0.0, 1.0, 0.0).astype(a.dtype)), {}),
    (17, "MATRIX_HEAVYSIDE_OP", _M, None, _M, (), "{o} = heaviside({a}, 1.0)", 6728311,
     _k(lambda xp, a, b: xp.where(a > 0.0, 1.0, 0.0).astype(a.dtype)), {}),
    (18, "SCALAR_VECTOR_PRODUCT_OP", _S, _V, _V, (), "{o} = {a} * {b}", 3705015, _k(lambda xp, a, b: b * a), {}),
    (19, "SCALAR_BROADCAST_OP", _S, None, _V, (), "{o} = bcast({a})", 4165814,
     lambda xp, x: x.a * xp.ones((x.features,), dtype=x.a.dtype), {}),
    (20, "VECTOR_RECIPROCAL_OP", _V, None, _V, (), "{o} = 1 / {a}", 6311851, _k(lambda xp, a, b: 1.0 / a), {}),
    (21, "VECTOR_NORM_OP", _V, None, _S, (), "{o} = norm({a})", 4810562,
     _k(lambda xp, a, b: xp.sqrt(xp.sum(a * a))), {}),
    (22, "VECTOR_ABS_OP", _V, None, _V, (), "{o} = abs({a})", 3713533, _k(lambda xp, a, b: xp.abs(a)), {}),
    (23, "VECTOR_SUM_OP", _V, _V, _V, (), "{o} = {a} + {b}", 4701519, _k(lambda xp, a, b: a + b), {}),
    (24, "VECTOR_DIFF_OP", _V, _V, _V, (), "{o} = {a} - {b}", 4165747, _k(lambda xp, a, b: a - b), {}),
    (25, "VECTOR_PRODUCT_OP", _V, _V, _V, (), "{o} = {a} * {b}", 4504555, _k(lambda xp, a, b: a * b), {}),
    (26, "VECTOR_DIVISION_OP", _V, _V, _V, (), "{o} = {a} / {b}", 4556237, _k(lambda xp, a, b: a / b), {}),
    (27, "VECTOR_INNER_PRODUCT_OP", _V, _V, _S, (), "{o} = dot({a}, {b})", 4294617,
     _k(lambda xp, a, b: xp.sum(a * b)), {}),
    (28, "VECTOR_OUTER_PRODUCT_OP", _V, _V, _M, (), "{o} = outer({a}, {b})", 9833707,
     _k(lambda xp, a, b: a[:, None] * b[None, :]), {}),
    (29, "SCALAR_MATRIX_PRODUCT_OP", _S, _M, _M, (), "{o} = {a} * {b}", 5986302, _k(lambda xp, a, b: b * a), {}),
    (30, "MATRIX_RECIPROCAL_OP", _M, None, _M, (), "{o} = 1 / {a}", 24336141, _k(lambda xp, a, b: 1.0 / a), {}),
    (31, "MATRIX_VECTOR_PRODUCT_OP", _M, _V, _V, (), "{o} = dot({a}, {b})", 9310002,
     _k(lambda xp, a, b: xp.sum(a * b[None, :], axis=1)), {}),
    (32, "VECTOR_COLUMN_BROADCAST_OP", _V, None, _M, (), "{o} = bcast({a}, axis=0)", 10993088,
     lambda xp, x: x.a[:, None] * xp.ones((1, x.features), dtype=x.a.dtype), {}),
    (33, "VECTOR_ROW_BROADCAST_OP", _V, None, _M, (), "{o} = bcast({a}, axis=1)", 11087322,
     lambda xp, x: xp.ones((x.features, 1), dtype=x.a.dtype) * x.a[None, :], {}),
    (34, "MATRIX_NORM_OP", _M, None, _S, (), "{o} = norm({a})", 6422746,
     _k(lambda xp, a, b: xp.sqrt(xp.sum(a * a))), {}),
    (35, "MATRIX_COLUMN_NORM_OP", _M, None, _V, (), "{o} = norm({a}, axis=0)", 6682187,
     _k(lambda xp, a, b: xp.sqrt(xp.sum(a * a, axis=0))), {}),
    (36, "MATRIX_ROW_NORM_OP", _M, None, _V, (), "{o} = norm({a}, axis=1)", 13351123,
     _k(lambda xp, a, b: xp.sqrt(xp.sum(a * a, axis=1))), {}),
    (37, "MATRIX_TRANSPOSE_OP", _M, None, _M, (), "{o} = transpose({a})", 9394756,
     _k(lambda xp, a, b: xp.transpose(a)), {}),
    (38, "MATRIX_ABS_OP", _M, None, _M, (), "{o} = abs({a})", 4630926, _k(lambda xp, a, b: xp.abs(a)), {}),
    (39, "MATRIX_SUM_OP", _M, _M, _M, (), "{o} = {a} + {b}", 5579381, _k(lambda xp, a, b: a + b), {}),
    (40, "MATRIX_DIFF_OP", _M, _M, _M, (), "{o} = {a} - {b}", 5429452, _k(lambda xp, a, b: a - b), {}),
    (41, "MATRIX_PRODUCT_OP", _M, _M, _M, (), "{o} = {a} * {b}", 5475227, _k(lambda xp, a, b: a * b), {}),
    (42, "MATRIX_DIVISION_OP", _M, _M, _M, (), "{o} = {a} / {b}", 18234378, _k(lambda xp, a, b: a / b), {}),
    (43, "MATRIX_MATRIX_PRODUCT_OP", _M, _M, _M, (), "{o} = matmul({a}, {b})", 14516296,
     _k(lambda xp, a, b: xp.sum(a[:, :, None] * b[None, :, :], axis=1)), dict(cubic=True)),
    (44, "SCALAR_MIN_OP", _S, _S, _S, (), "{o} = minimum({a}, {b})", 3677265, _k(_std_min), {}),
    (45, "VECTOR_MIN_OP", _V, _V, _V, (), "{o} = minimum({a}, {b})", 3989956, _k(_std_min), {}),
    (46, "MATRIX_MIN_OP", _M, _M, _M, (), "{o} = minimum({a}, {b})", 5457728,
     _k(lambda xp, a, b: xp.where(a < b, a, b)), {}),
    (47, "SCALAR_MAX_OP", _S, _S, _S, (), "{o} = maximum({a}, {b})", 4573695, _k(_std_max), {}),
    (48, "VECTOR_MAX_OP", _V, _V, _V, (), "{o} = maximum({a}, {b})", 3974229, _k(_std_max), {}),
    (49, "MATRIX_MAX_OP", _M, _M, _M, (), "{o} = maximum({a}, {b})", 5840952,
     _k(lambda xp, a, b: xp.where(a > b, a, b)), {}),
    (50, "VECTOR_MEAN_OP", _V, None, _S, (), "{o} = mean({a})", 4280443, _k(lambda xp, a, b: _mean(xp, a)), {}),
    (51, "MATRIX_MEAN_OP", _M, None, _S, (), "{o} = mean({a})", 4595196, _k(lambda xp, a, b: _mean(xp, a)), {}),
    (52, "MATRIX_ROW_MEAN_OP", _M, None, _V, (), "{o} = mean({a}, axis=1)", 9763956,
     _k(lambda xp, a, b: _mean(xp, a, axis=1)), {}),
    (53, "MATRIX_ROW_ST_DEV_OP", _M, None, _V, (), "{o} = std({a}, axis=1)", 16766477,
     _k(lambda xp, a, b: _st_dev(xp, a, axis=1)), {}),
    (54, "VECTOR_ST_DEV_OP", _V, None, _S, (), "{o} = std({a})", 5585730, _k(lambda xp, a, b: _st_dev(xp, a)), {}),
    (55, "MATRIX_ST_DEV_OP", _M, None, _S, (), "{o} = std({a})", 10640216, _k(lambda xp, a, b: _st_dev(xp, a)), {}),
    (56, "SCALAR_CONST_SET_OP", None, None, _S, ("d",), "{o} = {d}", 3691108,
     lambda xp, x: xp.asarray(x.d, dtype=x.old.dtype),
     dict(randomize=(("d", -1.0, 1.0),), alter=(("d", _LOG_FLIP),))),
    (57, "VECTOR_CONST_SET_OP", None, None, _V, ("f0", "f1"), "{o}[{f0}] = {f1}", 3991421, _vector_set,
     dict(randomize=(("f0", 0.0, 1.0), ("f1", -1.0, 1.0)), alter=(("f0", "uniform01"), ("f1", _LOG_FLIP)),
          reads_out=True, index_consts=1)),
    (58, "MATRIX_CONST_SET_OP", None, None, _M, ("f0", "f1", "f2"), "{o}[{f0}, {f1}] = {f2}", 3693035, _matrix_set,
     dict(randomize=(("f0", 0.0, 1.0), ("f1", 0.0, 1.0), ("f2", -1.0, 1.0)),
          alter=(("f0", "uniform01"), ("f1", "uniform01"), ("f2", _LOG_FLIP)), reads_out=True,
          index_consts=2)),
    (59, "SCALAR_UNIFORM_SET_OP", None, None, _S, ("f0", "f1"), "{o} = uniform({f0}, {f1})", 26610704, _uniform_set,
     dict(randomize=(("f0", -1.0, 1.0), ("f1", -1.0, 1.0)), alter=(("f0", _LOG_FLIP), ("f1", _LOG_FLIP)),
          sort_after_alter=True, random=True)),
    (60, "VECTOR_UNIFORM_SET_OP", None, None, _V, ("f0", "f1"), "{o} = uniform({f0}, {f1}, n_features)", 57817372,
     _uniform_set,
     dict(randomize=(("f0", -1.0, 1.0), ("f1", -1.0, 1.0)), alter=(("f0", _LOG_FLIP), ("f1", _LOG_FLIP)),
          sort_after_alter=True, random=True)),
    (61, "MATRIX_UNIFORM_SET_OP", None, None, _M, ("f0", "f1"),
     "{o} = uniform({f0}, {f1}, (n_features, n_features))", 208339446, _uniform_set,
     dict(randomize=(("f0", -1.0, 1.0), ("f1", -1.0, 1.0)), alter=(("f0", _LOG_FLIP), ("f1", _LOG_FLIP)),
          sort_after_alter=True, random=True)),
    (62, "SCALAR_GAUSSIAN_SET_OP", None, None, _S, ("f0", "f1"), "{o} = gaussian({f0}, {f1})", 20775635, _gaussian_set,
     dict(randomize=(("f0", -1.0, 1.0), ("f1", 0.0, 1.0)), alter=(("f0", _LOG_FLIP), ("f1", "log_scale")),
          random=True, transcendental=True)),
    (63, "VECTOR_GAUSSIAN_SET_OP", None, None, _V, ("f0", "f1"), "{o} = gaussian({f0}, {f1}, n_features)", 77483018,
     _gaussian_set,
     dict(randomize=(("f0", -1.0, 1.0), ("f1", 0.0, 1.0)), alter=(("f0", _LOG_FLIP), ("f1", "log_scale")),
          random=True, transcendental=True)),
    (64, "MATRIX_GAUSSIAN_SET_OP", None, None, _M, ("f0", "f1"),
     "{o} = gaussian({f0}, {f1}, (n_features, n_features))", 277690384, _gaussian_set,
     dict(randomize=(("f0", -1.0, 1.0), ("f1", 0.0, 1.0)), alter=(("f0", _LOG_FLIP), ("f1", "log_scale")),
          random=True, transcendental=True)),
]

OPS: tuple[Op, ...] = tuple(
    Op(id=i, name=n, in1=a, in2=b, out=o, consts=c, printed=p, cost=cost, kernel=k, **extra)
    for (i, n, a, b, o, c, p, cost, k, extra) in _TABLE
)
NUM_OPS = len(OPS)
OPS_BY_NAME: dict[str, Op] = {op.name: op for op in OPS}
NO_OP_ID = 0

assert all(op.id == i for i, op in enumerate(OPS)), "op ids must be 0..N-1 in order"


def get_op(key: int | str) -> Op:
    """Looks an op up by id or reference name (``"SCALAR_SUM_OP"`` or
    ``"SCALAR_SUM"``); raises ValueError naming the valid range otherwise."""
    if isinstance(key, str):
        name = key.strip().upper()
        op = OPS_BY_NAME.get(name) or OPS_BY_NAME.get(name + "_OP")
        if op is None:
            raise ValueError(f"unknown op name {key!r}; see azero_jax.ops.OPS for the {NUM_OPS} op names")
        return op
    if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key < NUM_OPS:
        raise ValueError(f"unknown op id {key!r}; op ids are integers 0..{NUM_OPS - 1}")
    return OPS[key]


def resolve_op_ids(keys) -> tuple[int, ...]:
    """Op ids from a list of ids and/or names (configs accept either)."""
    return tuple(get_op(k).id for k in keys)


# Op sets of the reference's shipped configs (spec §16-§18).
DEMO_OPS = resolve_op_ids(
    ["SCALAR_CONST_SET", "VECTOR_INNER_PRODUCT", "SCALAR_DIFF", "SCALAR_PRODUCT", "SCALAR_VECTOR_PRODUCT", "VECTOR_SUM"]
)
BASELINE_SETUP_OPS = resolve_op_ids(
    ["SCALAR_CONST_SET", "SCALAR_GAUSSIAN_SET", "SCALAR_UNIFORM_SET", "VECTOR_GAUSSIAN_SET",
     "VECTOR_UNIFORM_SET", "MATRIX_GAUSSIAN_SET", "MATRIX_UNIFORM_SET"]
)
BASELINE_PREDICT_OPS = resolve_op_ids(
    ["SCALAR_SUM", "MATRIX_VECTOR_PRODUCT", "VECTOR_MAX", "VECTOR_INNER_PRODUCT", "VECTOR_SUM"]
)
BASELINE_LEARN_OPS = resolve_op_ids(
    ["SCALAR_SUM", "SCALAR_DIFF", "SCALAR_PRODUCT", "SCALAR_VECTOR_PRODUCT", "VECTOR_SUM",
     "VECTOR_HEAVYSIDE", "VECTOR_PRODUCT", "VECTOR_OUTER_PRODUCT", "MATRIX_SUM"]
)
ALL_OPS = tuple(range(NUM_OPS))
