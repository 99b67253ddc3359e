"""FEC hash and LRU cache (spec §9) and the train budget (§8)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from azero_jax import ops as ops_lib
from azero_jax import programs as programs_lib
from azero_jax.program import make_instruction
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


def test_fill_placeholder():
    cache = FECCache(FECSpec(cache_size=4))
    marker = object()
    cache.insert(1, marker)
    assert cache.find(1) is marker
    cache.fill(1, marker, 0.75)
    assert cache.find(1) == 0.75


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
