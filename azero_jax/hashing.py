"""64-bit hashing on NumPy uint64 arrays (deterministic across processes,
unlike Python's `hash`): the FEC keys and the live-code keys use it."""

from __future__ import annotations

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S2, _S6, _S27, _S30, _S31 = (np.uint64(k) for k in (2, 6, 27, 30, 31))


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer (bijective 64-bit avalanche), on uint64 arrays."""
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


def hash_combine(h: np.ndarray, value: np.ndarray) -> np.ndarray:
    """HashCombine(h, value): order-sensitive 64-bit mix (wraps mod 2^64)."""
    return mix64(h ^ (mix64(value) + GOLDEN + (h << _S6) + (h >> _S2)))


def combine_mixed_into(h: np.ndarray, term: np.ndarray, scratch: np.ndarray) -> None:
    """`h = hash_combine(h, value)` in place, given `term = mix64(value) +
    GOLDEN` (computed beforehand for many values at once); `scratch`: a
    uint64 array of h's size. No temporaries: the FEC digest runs this once
    per probe column over a whole batch."""
    np.left_shift(h, _S6, out=scratch)
    scratch += term
    scratch += h >> _S2
    h ^= scratch
    np.right_shift(h, _S30, out=scratch)
    h ^= scratch
    h *= _M1
    np.right_shift(h, _S27, out=scratch)
    h ^= scratch
    h *= _M2
    np.right_shift(h, _S31, out=scratch)
    h ^= scratch
