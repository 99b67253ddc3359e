"""Counter-based random stream for the random-set ops (ids 59-64).

The reference draws these from a shared mt19937 stream (spec §3, §19), which
makes a result depend on evaluation order and cannot be batched. Here every
draw is a pure function of

    (seed, task index, phase, example index, component, instruction position,
     element index, stream)

hashed with 32-bit integer arithmetic only (xor, shift, wrapping multiply), so
the NumPy reference interpreter and the JAX interpreter produce bit-identical
uniforms on any backend. Written against an array namespace `xp` like the op
kernels.
"""

from __future__ import annotations

import numpy as np

PHASE_SETUP, PHASE_TRAIN, PHASE_VALID = 0, 1, 2
COMPONENT_INDEX = {"setup": 0, "predict": 1, "learn": 2}

_MASK32 = 0xFFFFFFFF
_TWO_POW_26 = 67108864.0
_TWO_POW_53 = 9007199254740992.0
_TWO_POW_24 = 16777216.0


def _mix(xp, x):
    """`lowbias32` (C. Wellons): a strong 32-bit integer finalizer."""
    x = x ^ (x >> 16)
    x = x * xp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * xp.uint32(0x846CA68B)
    x = x ^ (x >> 16)
    return x


def _u32(xp, value):
    """Any integer (array) to uint32 (wrapping); Python ints are masked first."""
    if isinstance(value, int):
        return xp.asarray(value & _MASK32, dtype=xp.uint32)
    return xp.asarray(value).astype(xp.uint32)


def instruction_key(xp, seed, task, phase, example, component, position):
    """Hash of one instruction execution's coordinates (uint32)."""
    with np.errstate(over="ignore"):  # uint32 wrap-around is intended
        h = _mix(xp, _u32(xp, seed) ^ xp.uint32(0x9E3779B9))
        for word in (task, phase, example, component, position):
            h = _mix(xp, h ^ _u32(xp, word))
            h = h * xp.uint32(0x01000193) + xp.uint32(0x6A09E667)
    return h


def uniforms(xp, key, shape, dtype, stream: int = 0):
    """Uniform draws in the open interval (0, 1), one per element of `shape`.

    float64 uses 53 random bits per draw; narrower dtypes use 24 (the JAX
    float32 path), so float32 results agree with float64 only to tolerance.
    """
    size = 1
    for n in shape:
        size *= n
    with np.errstate(over="ignore"):  # uint32 wrap-around is intended
        return _uniforms(xp, key, shape, size, dtype, stream)


def _uniforms(xp, key, shape, size, dtype, stream):
    element = xp.arange(size, dtype=xp.uint32).reshape(shape)
    base = _mix(xp, key ^ xp.uint32((0x85EBCA6B * (stream + 1)) & _MASK32))
    hi = _mix(xp, base ^ (element * xp.uint32(2) + xp.uint32(1)))
    if xp.dtype(dtype).itemsize >= 8:
        lo = _mix(xp, hi ^ (element * xp.uint32(2)) ^ xp.uint32(0x27D4EB2F))
        k = (hi >> 5).astype(dtype) * _TWO_POW_26 + (lo >> 6).astype(dtype)
        return ((k + 0.5) / _TWO_POW_53).astype(dtype)
    k = (hi >> 8).astype(dtype)
    return ((k + 0.5) / _TWO_POW_24).astype(dtype)


def evaluation_seeds(seed: int, first: int, count: int) -> np.ndarray:
    """Stream seeds (uint32) for evaluations `first .. first + count - 1`.

    The reference's shared mt19937 stream gives a program new random draws
    each time it is evaluated. A search numbers its evaluations (individuals)
    and keys each one's stream by `(seed, number)`: every copy of a program
    with random-set ops gets new draws, so evolution cannot keep re-selecting
    one lucky draw, and the search stays reproducible (and resumable: the
    number is checkpointed) on any backend.
    """
    number = np.arange(first, first + count, dtype=np.uint64)
    lo = (number & np.uint64(_MASK32)).astype(np.uint32)
    hi = (number >> np.uint64(32)).astype(np.uint32)
    with np.errstate(over="ignore"):
        h = _mix(np, np.uint32(seed & _MASK32) ^ np.uint32(0x5BD1E995))
        h = _mix(np, h ^ lo)
        h = _mix(np, (h * np.uint32(0x01000193)) ^ hi)
    return h.astype(np.uint32)
