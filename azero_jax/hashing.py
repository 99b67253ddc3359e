"""64-bit hashing on NumPy uint64 arrays (deterministic across processes,
unlike Python's `hash`): the FEC keys and the live-code keys use it."""

from __future__ import annotations

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer (bijective 64-bit avalanche), on uint64 arrays."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hash_combine(h: np.ndarray, value: np.ndarray) -> np.ndarray:
    """HashCombine(h, value): order-sensitive 64-bit mix (wraps mod 2^64)."""
    return mix64(h ^ (mix64(value) + GOLDEN + (h << np.uint64(6)) + (h >> np.uint64(2))))
