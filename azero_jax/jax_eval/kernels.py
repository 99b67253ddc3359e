"""The op table's kernels as the XLA interpreter runs them: the `xp`
namespace it hands them (`jax.numpy` with size-independent overrides) and
each op's single-lane kernel vmapped over the (task, program) lane axes.

The overrides exist because XLA's own versions make results depend on array
sizes (and so on the per-device batch size) or cost more: a libm-faithful
`arctan`, and float32 sums spelled out in NumPy's summation order.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from azero_jax import ops as ops_lib

_ATAN_P = (-8.750608600031904122785e-1, -1.615753718733365076637e1, -7.500855792314704667340e1,
           -1.228866684490136173410e2, -6.485021904942025371773e1)
_ATAN_Q = (2.485846490142306297962e1, 1.650270098316988542046e2, 4.328810604912902668951e2,
           4.853903996359136964868e2, 1.945506571482613964425e2)


def _atan(x):
    """Cephes `atan` in plain arithmetic. XLA's CPU atan takes a different
    code path for small arrays (measured: 1480/4096 values differ by an ulp
    between 16- and 64-element arrays), which would make results depend on
    the per-device batch size; this one is size-independent (<= 1 ulp from
    libm, like XLA's)."""
    ax = jnp.abs(x)
    big = ax > 2.414213562373095
    mid = (ax > 0.66) & ~big
    safe = jnp.where(big, ax, 1.0)
    t = jnp.where(big, -1.0 / safe, jnp.where(mid, (ax - 1.0) / (ax + 1.0), ax))
    base = jnp.where(big, np.pi / 2, jnp.where(mid, np.pi / 4, 0.0))
    z = t * t
    num = functools.reduce(lambda acc, c: acc * z + c, _ATAN_P[1:], jnp.full_like(z, _ATAN_P[0]))
    den = functools.reduce(lambda acc, c: acc * z + c, _ATAN_Q[1:], z + _ATAN_Q[0])
    r = t * (z * num / den) + t
    r = r + jnp.where(big, 6.123233995736765886130e-17, jnp.where(mid, 0.5 * 6.123233995736765886130e-17, 0.0))
    return jnp.copysign((base + r).astype(x.dtype), x)


# ------------------------------------------- float32: unrolled reductions --
# Small reductions spelled out as elementwise adds (in NumPy's order:
# 0.0 + pairwise_sum, sequential for n < 8, eight accumulators up to 128,
# halves above; non-innermost axes add slices sequentially) fuse with their
# operands' reads instead of being a separate reduce kernel: measured -25% CPU
# time per demo evaluation. float32 only: XLA:CPU contracts the resulting
# a*b + c*d into FMAs, which changes float64 rounding vs the NumPy reference
# (measured: 13 instead of 3 fitness mismatches in 10k parity programs), so
# float64 keeps XLA's reduce (no contraction across the kernel boundary).
_UNROLL_SUM_MAX = 64  # larger reductions use XLA's reduce


def _plus_zero(x):
    """0.0 + x exactly (XLA simplifies a literal x + 0 away: -0.0 -> +0.0)."""
    return jnp.where(x == 0, jnp.zeros((), x.dtype), x)


def _pairwise(items):
    n = len(items)
    if n < 8:
        return functools.reduce(lambda a, b: a + b, items)
    if n > 128:
        half = n // 2
        half -= half % 8
        return _pairwise(items[:half]) + _pairwise(items[half:])
    r = list(items[:8])
    i = 8
    while i < n - (n % 8):
        r = [r[j] + items[i + j] for j in range(8)]
        i += 8
    res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    for k in range(i, n):
        res = res + items[k]
    return res


def _np_sum(x, axis=None):
    """`np.sum` of a single-lane value (all axes are element axes)."""
    if x.dtype != jnp.float32:
        return jnp.sum(x, axis=axis)
    if axis is None:
        if x.size > _UNROLL_SUM_MAX or x.size == 0:
            return jnp.sum(x)
        flat = x.reshape(-1)
        return _plus_zero(_pairwise([flat[i] for i in range(flat.shape[0])]))
    axis = axis % x.ndim
    if x.shape[axis] > _UNROLL_SUM_MAX or x.shape[axis] == 0:
        return jnp.sum(x, axis=axis)
    parts = [lax.index_in_dim(x, i, axis, keepdims=False) for i in range(x.shape[axis])]
    if axis == x.ndim - 1:
        return _plus_zero(_pairwise(parts))
    return _plus_zero(functools.reduce(lambda a, b: a + b, parts))


class _Namespace:
    """`jax.numpy` as seen by the op kernels, with size-independent overrides."""

    arctan = staticmethod(_atan)
    sum = staticmethod(_np_sum)

    def __getattr__(self, name):
        return getattr(jnp, name)


XP = _Namespace()


@functools.cache
def lane_kernel(op_id: int, features: int):
    """The op's single-lane kernel vmapped over the leading (T, P) lane axes."""
    op = ops_lib.OPS[op_id]

    def single(a, b, old, d, f0, f1, f2, u1, u2):
        return op.kernel(XP, ops_lib.OpArgs(a, b, old, d, f0, f1, f2, u1, u2, features))

    return jax.vmap(jax.vmap(single))
