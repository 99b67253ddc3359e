"""FEC hash and LRU cache (spec §9) and the train budget (§8)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from azero_jax import generators
from azero_jax import ops as ops_lib
from azero_jax import program_arrays as pa
from azero_jax import programs as programs_lib
from azero_jax.program import COMPONENTS, MemoryShape, make_instruction
from azero_jax.search.fec import FECCache, FECSpec, fec_hash
from azero_jax.search.train_budget import TrainBudget, component_cost

TRAIN = [0.5, 1.25, 3.0]
VALID = [0.1, 0.2]


def test_hash_equal_for_equal_errors():
    assert fec_hash(TRAIN, VALID, 3, 100) == fec_hash(list(TRAIN), np.array(VALID), 3, 100)
    assert fec_hash([0.0], [], 0, 10) == fec_hash([-0.0], [], 0, 10)


def test_hash_differs():
    base = fec_hash(TRAIN, VALID, 3, 100)
    assert fec_hash(TRAIN, VALID, 4, 100) != base  # task index
    assert fec_hash(TRAIN, VALID, 3, 0) != base  # budget-truncated run
    nudged = [TRAIN[0], np.nextafter(TRAIN[1], 2.0), TRAIN[2]]  # one ulp: raw bits, no rounding
    assert fec_hash(nudged, VALID, 3, 100) != base
    assert fec_hash(TRAIN, VALID[:1], 3, 100) != base
    assert fec_hash([np.nan], [], 0, 10) == fec_hash([np.nan], [], 0, 10)


def test_spec_validation():
    with pytest.raises(ValueError, match="forget_every"):
        FECSpec(forget_every=1)
    with pytest.raises(ValueError, match="cache_size"):
        FECSpec(cache_size=1)
    assert FECSpec().cache_size == 100000 and FECSpec().forget_every == 100


def test_lru_eviction_and_lookup_moves_to_front():
    cache = FECCache(FECSpec(cache_size=2, forget_every=0))
    cache.insert(1, 0.1)
    cache.insert(2, 0.2)
    assert cache.find(1) == 0.1  # 1 becomes most recent
    cache.insert(3, 0.3)  # evicts 2, the least recently used
    assert 2 not in cache and 1 in cache and 3 in cache
    assert cache.find(2) is None
    assert (cache.hits, cache.misses) == (1, 1)


def test_forget_every_counts_insert_as_one():
    cache = FECCache(FECSpec(cache_size=10, forget_every=3))
    cache.insert(7, 0.5)
    assert cache.find(7) == 0.5  # count 2
    assert cache.find(7) == 0.5  # count 3 -> erased after returning
    assert 7 not in cache and cache.find(7) is None


def test_state_roundtrip_keeps_lru_order():
    cache = FECCache(FECSpec(cache_size=3, forget_every=5))
    for k in (10, 2**63 + 5, 30):
        cache.insert(k, k / 1e20)
    cache.find(10)
    restored = FECCache.from_state(json.loads(json.dumps(cache.to_state())))
    assert restored.to_state() == cache.to_state()
    restored.insert(40, 0.4)
    assert 2**63 + 5 not in restored  # same eviction victim as the original would pick


def _sequential(cache: FECCache, keys: list[int], fitness) -> list[float]:
    """One key at a time (find, insert a placeholder on a miss, fill it after
    the batch): the semantics `lookup_batch` + `fill_batch` must replay."""
    slots, pending = [], []
    for key in keys:
        found = cache.find(key)
        if found is None:
            marker = [len(pending)]
            cache.insert(key, marker)
            pending.append((key, marker))
            slots.append(marker)
        else:
            slots.append(found)
    values = [fitness(key) for key, _ in pending]
    for key, marker in pending:
        entry = cache._entries.get(key)
        if entry is not None and entry[0] is marker:
            entry[0] = values[marker[0]]
    return [values[s[0]] if isinstance(s, list) else s for s in slots]


@pytest.mark.parametrize("size,forget", [(4, 0), (3, 3), (50, 2), (7, 5)])
def test_lookup_batch_replays_find_and_insert(size, forget):
    rng = np.random.default_rng(size * 10 + forget)
    fast, slow = FECCache(FECSpec(cache_size=size, forget_every=forget)), FECCache(FECSpec(cache_size=size,
                                                                                       forget_every=forget))
    for _ in range(30):
        keys = rng.integers(0, 12, size=int(rng.integers(1, 40))).tolist()
        want = _sequential(slow, keys, lambda k: k / 8)
        slots, misses = fast.lookup_batch(keys)
        fast.fill_batch([keys[j] for j in misses], [keys[j] / 8 for j in misses])
        got = [s if isinstance(s, float) else keys[misses[s]] / 8 for s in slots]
        assert got == want
        assert fast.to_state() == slow.to_state()  # LRU order, counts, hits, misses


# ------------------------------------------------------ train budget --

def test_costs_from_op_table():
    nn = programs_lib.neural_net_algorithm()
    assert component_cost(nn.setup) == 77483018 + 277690384 + 3691108
    budget = TrainBudget.neural_net()
    assert budget.baseline_train_cost == component_cost(nn.predict) + component_cost(nn.learn)
    padded = TrainBudget.neural_net((10, 10, 20))
    assert padded.baseline_train_cost > budget.baseline_train_cost  # NO_OP padding costs too


def test_train_budget_decision():
    budget = TrainBudget.neural_net((1, 1, 1))
    nn = programs_lib.neural_net_algorithm((1, 1, 1))
    assert budget.train_examples(nn, 8000) == 8000
    cheap = programs_lib.linear_algorithm()
    assert budget.train_examples(cheap, 100) == 100
    heavy_op = make_instruction("MATRIX_GAUSSIAN_SET", out=0, f0=0.0, f1=1.0)
    heavy = cheap.replace(predict=cheap.predict + (heavy_op,) * 20)
    assert budget.train_examples(heavy, 100) == 0
    # Exactly at the threshold still trains (<=): baseline k/2 no-ops per example, factor 2.
    n, k, c = 50, 6, float(ops_lib.OPS[0].cost)
    exact = TrainBudget(0.0, k * c / 2.0, 2.0)
    assert exact.train_examples(programs_lib.noop_algorithm((0, k, 0)), n) == n
    assert exact.train_examples(programs_lib.noop_algorithm((0, k + 1, 0)), n) == 0


def test_train_examples_batch_equals_per_program():
    """The vectorized budget (packed programs, the search's form) decides
    exactly as `train_examples` per program, with padding not costed."""
    rng = np.random.default_rng(5)
    memory = MemoryShape(4, 4, 2, 2)
    every = {c: list(range(ops_lib.NUM_OPS)) for c in COMPONENTS}
    programs = [generators.random_algorithm(rng, memory, every, dict(zip(COMPONENTS, rng.integers(0, 12, 3).tolist(),
                                                                        strict=True)))
                for _ in range(300)] + [programs_lib.noop_algorithm((0, 3, 0)), programs_lib.neural_net_algorithm()]
    arrays = pa.from_algorithms(programs, 16)  # capacity 16: padding beyond every length
    budgets = np.array([0, 1, 50, 100, 8000])
    for budget in (TrainBudget.neural_net((1, 1, 1)), TrainBudget(0.0, 3 * float(ops_lib.OPS[0].cost) / 2.0, 2.0)):
        want = [[budget.train_examples(p, int(n)) for n in budgets] for p in programs]
        got = budget.train_examples_batch(arrays, budgets)
        assert got.dtype == np.int64 and got.tolist() == want
        assert 0 < (got[:, -1] > 0).mean() < 1  # both decisions occur


def test_state_is_compact_and_reads_the_older_entries_form():
    cache = FECCache(FECSpec(cache_size=5, forget_every=9))
    for k, v in ((3, 0.25), (2**64 - 1, -0.0), (17, 1.0 / 3.0)):
        cache.insert(k, v)
    cache.find(3)
    state = json.loads(json.dumps(cache.to_state()))
    assert "entries" not in state and {"keys", "fitness", "counts"} <= set(state)
    back = FECCache.from_state(state)
    assert list(back._entries) == [2**64 - 1, 17, 3]  # LRU order kept, the largest uint64 key too
    assert [np.float64(v[0]).tobytes() for v in back._entries.values()] == [
        np.float64(v).tobytes() for v in (-0.0, 1.0 / 3.0, 0.25)]  # bit for bit (the sign of zero too)
    assert [v[1] for v in back._entries.values()] == [1, 1, 2]
    older = {"spec": state["spec"], "hits": 1, "misses": 0,
             "entries": [[str(k), v[0], v[1]] for k, v in back._entries.items()]}  # checkpoints of earlier versions
    assert FECCache.from_state(older).to_state() == cache.to_state()
