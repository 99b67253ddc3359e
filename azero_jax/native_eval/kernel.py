"""The native interpreter: the NumPy oracle's evaluation compiled by Numba.

One lane = one (program, task) job, evaluated exactly as `azero_jax.reference`
does it (same loop, same per-example rules, same random stream), one
instruction at a time on a private S/V/M memory, as the authors' C++ does.
Jobs run in parallel over the CPU's cores (GIL-free threads, each on its own
block of jobs: `native_eval.run_jobs`). Float64 only.

Why a second interpreter on the CPU: the batched XLA interpreter runs about
78 XLA:CPU kernels per example step on the demo (one per instruction and op
group, each a pass over every lane's memory bank); at full batches it reaches
4.9 M train steps per CPU-second against the C++'s 23.5 M, and a search's
small batches run at a third of that (docs/performance.md). A scalar
interpreter compiled by LLVM does per instruction what the C++ does.

Bit-exactness with the oracle: arithmetic, sqrt and selections are IEEE and
are written in NumPy's evaluation order, including its sums: `np.sum` of n
values is 0.0 plus NumPy's pairwise sum (sequential below 8 values, eight
accumulators up to 128, halves above); reductions over a non-last axis (the
column norm, the matrix product) add rows sequentially from 0.0. Float32
constants are promoted as `Instruction` stores them; `FloatToIndex` is
computed in float32 as `ops._index`. Transcendentals (sin ... log, exp in the
sigmoid and softmax) come from LLVM's libm calls and may differ from NumPy's
SIMD versions by an ulp, as the XLA path's do.

Op semantics are the op table's (`azero_jax.ops`); this module restates them
as scalar loops because Numba cannot compile the table's array-namespace
kernels. `tests/test_native_backend.py` checks every op against the oracle.

Editing this file: `lanes.py` inlines `_execute`, and Numba's disk cache
keys `lanes.py`'s compiled functions to `lanes.py`'s own timestamp, so after
a change here alone the old machine code keeps running. Delete
`native_eval/__pycache__/*.nbi` and `*.nbc` (or touch `lanes.py`) before
measuring. A process that compiles the interpreter runs it slower than one
that loads it from the cache (383-397 against 251-308 ns per train step,
docs/performance.md), so `_compile.py` compiles in a child process and every
run loads the code; with AZERO_JAX_NATIVE_COMPILE_HERE=1, time the code in a
later process.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_JIT = dict(cache=True, error_model="numpy", fastmath=False)
# The interpreter's functions allocate nothing, so they are compiled without
# Numba's reference counting (`_nrt=False`): with it, every call or inlined
# call site increfs and decrefs each array argument with atomic operations,
# which cost more than the instructions themselves (demo: 140 ns per train step
# of an empty program with it, a few ns without).
_FAST = dict(_JIT, _nrt=False)

# ------------------------------------------------------------- random stream
# `azero_jax.rng` in uint64 arithmetic masked to 32 bits.
_M32 = np.uint64(0xFFFFFFFF)
_U16, _U15, _U5, _U6 = np.uint64(16), np.uint64(15), np.uint64(5), np.uint64(6)
_C1, _C2 = np.uint64(0x7FEB352D), np.uint64(0x846CA68B)
_GOLD, _FNV, _SHA = np.uint64(0x9E3779B9), np.uint64(0x01000193), np.uint64(0x6A09E667)
_STREAM, _LO = np.uint64(0x85EBCA6B), np.uint64(0x27D4EB2F)
_TWO, _ONE = np.uint64(2), np.uint64(1)


@njit(inline="always", **_FAST)
def _mix(x):
    x = x ^ (x >> _U16)
    x = (x * _C1) & _M32
    x = x ^ (x >> _U15)
    x = (x * _C2) & _M32
    return x ^ (x >> _U16)


@njit(**_FAST)
def instruction_key(seed, task, phase, example, component, position):
    h = _mix((np.uint64(seed) & _M32) ^ _GOLD)
    for word in (task, phase, example, component, position):
        h = _mix(h ^ (np.uint64(word) & _M32))
        h = (h * _FNV + _SHA) & _M32
    return h


@njit(inline="always", **_FAST)
def _uniform(key, element, stream):
    base = _mix(key ^ ((_STREAM * np.uint64(stream + 1)) & _M32))
    e = np.uint64(element)
    hi = _mix(base ^ ((e * _TWO + _ONE) & _M32))
    lo = _mix(hi ^ ((e * _TWO) & _M32) ^ _LO)
    k = np.float64(hi >> _U5) * 67108864.0 + np.float64(lo >> _U6)
    return (k + 0.5) / 9007199254740992.0


# ------------------------------------------------------------------- sums
@njit(inline="always", **_FAST)
def _pairwise_block(a, lo, n):
    """NumPy's `pairwise_sum` for n <= 128 (sequential below 8, else eight accumulators)."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - (n % 8):
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


STACK = 256  # scratch entries at the end of `tmp` that `_pairwise` uses as its stack


def scratch_size(features: int) -> int:
    """Length of the `tmp` scratch array the interpreter needs at F = features."""
    return 2 * features * (features + 1) + STACK


@njit(**_FAST)
def _pairwise(a, lo, n):
    """NumPy's pairwise sum of a[lo:lo + n]: above 128 values, the sum of the
    two halves (the first rounded down to a multiple of 8), recursively.
    Written without recursion or allocation (Numba's cache mishandles
    recursive functions; these functions run without its allocator): a
    post-order walk of the split tree, its stack in the last `STACK` entries
    of `a` (starts, sizes, whether the left half is done, the left sums)."""
    if n <= 128:
        return _pairwise_block(a, lo, n)
    base = a.shape[0] - STACK
    start, size, done, left = base, base + 64, base + 128, base + 192
    depth = 0
    a[start] = lo
    a[size] = n
    a[done] = 0.0
    while True:
        n_here = int(a[size + depth])
        if n_here > 128:  # descend into the left half
            half = n_here // 2
            half -= half % 8
            a[start + depth + 1] = a[start + depth]
            a[size + depth + 1] = half
            a[done + depth + 1] = 0.0
            depth += 1
            continue
        value = _pairwise_block(a, int(a[start + depth]), n_here)
        # deliver upward while the parent's right half is what just finished
        while True:
            depth -= 1
            if depth < 0:
                return value
            if a[done + depth] == 0.0:
                a[left + depth] = value
                a[done + depth] = 1.0
                break
            value = a[left + depth] + value
        # then descend into the parent's right half
        n_parent = int(a[size + depth])
        half = n_parent // 2
        half -= half % 8
        a[start + depth + 1] = a[start + depth] + half
        a[size + depth + 1] = n_parent - half
        a[done + depth + 1] = 0.0
        depth += 1


@njit(inline="always", **_FAST)
def _np_sum(a, lo, n):
    """`np.sum` of a[lo:lo + n]: 0.0 + the pairwise sum."""
    return 0.0 + _pairwise(a, lo, n)


@njit(inline="always", **_FAST)
def _index(fraction, features):
    """`ops._index` (`FloatToIndex` in float32, clamped)."""
    scaled = np.float32(fraction) * np.float32(features)
    if scaled != scaled:
        scaled = np.float32(0.0)
    if scaled < np.float32(0.0):
        scaled = np.float32(0.0)
    top = np.float32(features - 1.0)
    if scaled > top:
        scaled = top
    return int(scaled)


# ------------------------------------------------------------------- ops
@njit(inline="always", **_FAST)
def _execute(ints, floats, n, s, v, m, f, tmp, seed, task, phase, example, component):
    """Runs one component function (ints (L, 4), floats (L, 4), n real rows)
    on one lane's memory in place (the reference's `execute`)."""
    for pos in range(n):
        op = ints[pos, 0]
        if op == 0:
            continue
        a = ints[pos, 1]
        b = ints[pos, 2]
        o = ints[pos, 3]
        if op <= 15:  # scalar -> scalar
            x = s[a]
            if op == 1:
                s[o] = x + s[b]
            elif op == 2:
                s[o] = x - s[b]
            elif op == 3:
                s[o] = x * s[b]
            elif op == 4:
                s[o] = x / s[b]
            elif op == 5:
                s[o] = abs(x)
            elif op == 6:
                s[o] = 1.0 / x
            elif op == 7:
                s[o] = np.sin(x)
            elif op == 8:
                s[o] = np.cos(x)
            elif op == 9:
                s[o] = np.tan(x)
            elif op == 10:
                s[o] = np.arcsin(x)
            elif op == 11:
                s[o] = np.arccos(x)
            elif op == 12:
                s[o] = np.arctan(x)
            elif op == 13:
                s[o] = np.exp(x)
            elif op == 14:
                s[o] = np.log(x)
            else:
                s[o] = 1.0 if x >= 0.0 else 0.0
        elif op <= 27:
            if op == 16:
                for i in range(f):
                    v[o, i] = 1.0 if v[a, i] > 0.0 else 0.0
            elif op == 17:
                for i in range(f):
                    for j in range(f):
                        m[o, i, j] = 1.0 if m[a, i, j] > 0.0 else 0.0
            elif op == 18:
                x = s[a]
                for i in range(f):
                    v[o, i] = v[b, i] * x
            elif op == 19:
                x = s[a]
                for i in range(f):
                    v[o, i] = x * 1.0
            elif op == 20:
                for i in range(f):
                    v[o, i] = 1.0 / v[a, i]
            elif op == 21:
                for i in range(f):
                    tmp[i] = v[a, i] * v[a, i]
                s[o] = np.sqrt(_np_sum(tmp, 0, f))
            elif op == 22:
                for i in range(f):
                    v[o, i] = abs(v[a, i])
            elif op == 23:
                for i in range(f):
                    v[o, i] = v[a, i] + v[b, i]
            elif op == 24:
                for i in range(f):
                    v[o, i] = v[a, i] - v[b, i]
            elif op == 25:
                for i in range(f):
                    v[o, i] = v[a, i] * v[b, i]
            elif op == 26:
                for i in range(f):
                    v[o, i] = v[a, i] / v[b, i]
            else:  # 27 inner product
                for i in range(f):
                    tmp[i] = v[a, i] * v[b, i]
                s[o] = _np_sum(tmp, 0, f)
        elif op <= 43:
            _matrix_op(op, a, b, o, s, v, m, f, tmp)
        elif op <= 55:
            _minmax_stats(op, a, b, o, s, v, m, f, tmp)
        else:
            _set_op(op, o, floats[pos, 0], floats[pos, 1], floats[pos, 2], floats[pos, 3], s, v, m, f,
                    seed, task, phase, example, component, pos)


@njit(**_FAST)
def _matrix_op(op, a, b, o, s, v, m, f, tmp):
    """Ops 28-43."""
    if op == 28:
        for i in range(f):
            for j in range(f):
                m[o, i, j] = v[a, i] * v[b, j]
    elif op == 29:
        x = s[a]
        for i in range(f):
            for j in range(f):
                m[o, i, j] = m[b, i, j] * x
    elif op == 30:
        for i in range(f):
            for j in range(f):
                m[o, i, j] = 1.0 / m[a, i, j]
    elif op == 31:  # matrix-vector product (o may be b: through tmp)
        for i in range(f):
            for j in range(f):
                tmp[j] = m[a, i, j] * v[b, j]
            tmp[f + i] = _np_sum(tmp, 0, f)
        for i in range(f):
            v[o, i] = tmp[f + i]
    elif op == 32:
        for i in range(f):
            for j in range(f):
                m[o, i, j] = v[a, i] * 1.0
    elif op == 33:
        for i in range(f):
            for j in range(f):
                m[o, i, j] = 1.0 * v[a, j]
    elif op == 34:
        for i in range(f):
            for j in range(f):
                tmp[i * f + j] = m[a, i, j] * m[a, i, j]
        s[o] = np.sqrt(_np_sum(tmp, 0, f * f))
    elif op == 35:  # column norm: rows added sequentially (axis 0)
        for j in range(f):
            acc = 0.0
            for i in range(f):
                acc += m[a, i, j] * m[a, i, j]
            v[o, j] = np.sqrt(acc)
    elif op == 36:
        for i in range(f):
            for j in range(f):
                tmp[j] = m[a, i, j] * m[a, i, j]
            v[o, i] = np.sqrt(_np_sum(tmp, 0, f))
    elif op == 37:
        for i in range(f):
            for j in range(f):
                tmp[i * f + j] = m[a, j, i]
        for i in range(f):
            for j in range(f):
                m[o, i, j] = tmp[i * f + j]
    elif op == 38:
        for i in range(f):
            for j in range(f):
                m[o, i, j] = abs(m[a, i, j])
    elif op == 39:
        for i in range(f):
            for j in range(f):
                m[o, i, j] = m[a, i, j] + m[b, i, j]
    elif op == 40:
        for i in range(f):
            for j in range(f):
                m[o, i, j] = m[a, i, j] - m[b, i, j]
    elif op == 41:
        for i in range(f):
            for j in range(f):
                m[o, i, j] = m[a, i, j] * m[b, i, j]
    elif op == 42:
        for i in range(f):
            for j in range(f):
                m[o, i, j] = m[a, i, j] / m[b, i, j]
    else:  # 43 matrix product: sum over the middle axis, sequential from 0.0
        for i in range(f):
            for k in range(f):
                acc = 0.0
                for j in range(f):
                    acc += m[a, i, j] * m[b, j, k]
                tmp[i * f + k] = acc
        for i in range(f):
            for k in range(f):
                m[o, i, k] = tmp[i * f + k]


@njit(**_FAST)
def _minmax_stats(op, a, b, o, s, v, m, f, tmp):
    """Ops 44-55 (min/max with the C++ operand rules; means, standard deviations)."""
    if op == 44:
        x, y = s[a], s[b]
        s[o] = y if y < x else x
    elif op == 45:
        for i in range(f):
            x, y = v[a, i], v[b, i]
            v[o, i] = y if y < x else x
    elif op == 46:
        for i in range(f):
            for j in range(f):
                x, y = m[a, i, j], m[b, i, j]
                m[o, i, j] = x if x < y else y
    elif op == 47:
        x, y = s[a], s[b]
        s[o] = y if x < y else x
    elif op == 48:
        for i in range(f):
            x, y = v[a, i], v[b, i]
            v[o, i] = y if x < y else x
    elif op == 49:
        for i in range(f):
            for j in range(f):
                x, y = m[a, i, j], m[b, i, j]
                m[o, i, j] = x if x > y else y
    elif op == 50:
        for i in range(f):
            tmp[i] = v[a, i]
        s[o] = _np_sum(tmp, 0, f) / f
    elif op == 51:
        for i in range(f):
            for j in range(f):
                tmp[i * f + j] = m[a, i, j]
        s[o] = _np_sum(tmp, 0, f * f) / (f * f)
    elif op == 52:
        for i in range(f):
            for j in range(f):
                tmp[j] = m[a, i, j]
            tmp[f + i] = _np_sum(tmp, 0, f) / f
        for i in range(f):
            v[o, i] = tmp[f + i]
    elif op == 53:
        for i in range(f):
            for j in range(f):
                tmp[j] = m[a, i, j]
            mean = _np_sum(tmp, 0, f) / f
            for j in range(f):
                tmp[j] = m[a, i, j] * m[a, i, j]
            tmp[f + i] = np.sqrt(_np_sum(tmp, 0, f) / f - mean * mean)
        for i in range(f):
            v[o, i] = tmp[f + i]
    elif op == 54:
        for i in range(f):
            tmp[i] = v[a, i]
        mean = _np_sum(tmp, 0, f) / f
        for i in range(f):
            tmp[i] = v[a, i] * v[a, i]
        s[o] = np.sqrt(_np_sum(tmp, 0, f) / f - mean * mean)
    else:  # 55
        for i in range(f):
            for j in range(f):
                tmp[i * f + j] = m[a, i, j]
        mean = _np_sum(tmp, 0, f * f) / (f * f)
        for i in range(f):
            for j in range(f):
                tmp[i * f + j] = m[a, i, j] * m[a, i, j]
        s[o] = np.sqrt(_np_sum(tmp, 0, f * f) / (f * f) - mean * mean)


@njit(inline="always", **_FAST)
def _random_value(op, lo, hi, key, element):
    """One element of a uniform (59-61) or Gaussian (62-64) set."""
    u1 = _uniform(key, element, 0)
    if op <= 61:
        return lo + (hi - lo) * u1 if lo <= hi else lo
    u2 = _uniform(key, element, 1)
    z = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * 3.141592653589793 * u2)
    return lo + hi * z


@njit(**_FAST)
def _set_op(op, o, d, f0, f1, f2, s, v, m, f, seed, task, phase, example, component, pos):
    """Ops 56-64: constants and random draws."""
    if op == 56:
        s[o] = d
    elif op == 57:
        v[o, _index(f0, f)] = f1
    elif op == 58:
        m[o, _index(f0, f), _index(f1, f)] = f2
    else:
        key = instruction_key(seed, task, phase, example, component, pos)
        if op == 59 or op == 62:
            s[o] = _random_value(op, f0, f1, key, 0)
        elif op == 60 or op == 63:
            for i in range(f):
                v[o, i] = _random_value(op, f0, f1, key, i)
        else:
            for i in range(f):
                for j in range(f):
                    m[o, i, j] = _random_value(op, f0, f1, key, i * f + j)
