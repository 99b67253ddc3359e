"""The FEC cache's uint64 key -> slot index (`azero_jax.search._key_index`)
against a dict, through insertions, removals and tombstone rebuilds."""

from __future__ import annotations

import numpy as np
import pytest

from azero_jax.search._key_index import KeyIndex


@pytest.mark.parametrize("capacity,spread", [(5, False), (64, False), (64, True), (1000, True)])
def test_index_equals_a_dict(capacity, spread):
    """Consecutive integers (which cluster unless mixed) or keys over the
    whole uint64 range; every batch checks hits and misses against a dict."""
    rng = np.random.default_rng(capacity)
    index, model = KeyIndex(capacity), {}
    free = list(range(capacity))
    universe = 3 * capacity
    scale = np.uint64(0x9E3779B97F4A7C15) if spread else np.uint64(1)  # odd: distinct keys stay distinct
    rebuilds = 0
    for _ in range(300):
        drop = [s for s in model.values() if rng.random() < 0.3]
        index.remove(np.array(drop, dtype=np.int64))
        model = {k: s for k, s in model.items() if s not in set(drop)}
        free += drop
        candidates = (rng.permutation(universe).astype(np.uint64) * scale).tolist()
        new = [k for k in candidates if k not in model][:int(rng.integers(0, len(free) + 1))]
        keys = np.array(new, dtype=np.uint64)
        slots = np.array([free.pop() for _ in new], dtype=np.int64)
        used = index._used
        index.insert(keys, slots)
        rebuilds += index._used < used
        model.update(zip(keys.tolist(), slots.tolist(), strict=True))
        probe = rng.integers(0, universe, 50).astype(np.uint64) * scale
        assert index.get(probe).tolist() == [model.get(k, -1) for k in probe.tolist()]
        assert len(index) == len(model)
    assert rebuilds > 0  # tombstones were cleared on the way
