"""Parity vs the reference across feature sizes and memory shapes (float64)."""

from __future__ import annotations

import pytest

from azero_jax.jax_eval.parity import run_parity
from azero_jax.program import MemoryShape


@pytest.mark.parametrize("features,memory", [
    (1, MemoryShape(3, 2, 1, 1)),
    (2, MemoryShape(5, 9, 2, 2)),
    (16, MemoryShape(4, 3, 2, 16)),
    (32, MemoryShape(2, 2, 1, 32)),
])
def test_parity_shapes(features, memory):
    res = run_parity(256, features=features, memory=memory, seed=features, chunk=256, max_size=8)
    assert res.ok(), res
    assert res.nonzero_fitness > 0
