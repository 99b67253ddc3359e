"""FEC hash and LRU cache (spec §9) and the train budget (§8)."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest

from azero_jax import generators
from azero_jax import ops as ops_lib
from azero_jax import program_arrays as pa
from azero_jax import programs as programs_lib
from azero_jax.checkpoint import array_from_json
from azero_jax.hashing import hash_combine
from azero_jax.program import COMPONENTS, MemoryShape, make_instruction
from azero_jax.search.fec import FECSpec, fec_hash, probe_digest
from azero_jax.search.fec_cache import FECCache
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


def test_batch_digest_is_the_sequence_of_combines():
    """`probe_digest` (in-place column passes over the rows still that long)
    equals `hash_combine` of each row's first lengths[j] error bits in turn,
    then the task index: ragged rows, NaN, inf, -0.0 (hashed as +0.0), huge
    and tiny values, empty rows and batches."""
    rng = np.random.default_rng(3)
    for trial in range(60):
        count, width = int(rng.integers(0, 40)), int(rng.integers(0, 23))
        errors = rng.standard_normal((count, width)) * 10.0 ** rng.integers(-300, 300, (count, width))
        for value, share in ((np.nan, 0.1), (-0.0, 0.1), (0.0, 0.05), (np.inf, 0.05)):
            errors[rng.random((count, width)) < share] = value
        lengths = rng.integers(0, width + 1, count) if trial % 3 else np.full(count, width)
        task = rng.integers(0, 50, count)
        want = []
        with np.errstate(over="ignore"):  # uint64 scalars wrap
            for row, n, t in zip(errors, lengths.tolist(), task.tolist(), strict=True):
                h = np.uint64(42)
                for x in row[:n]:
                    h = hash_combine(h, np.float64(0.0 if x == 0.0 else x).view(np.uint64))
                want.append(int(hash_combine(h, np.uint64(t))))
        got = probe_digest(errors, lengths, task)
        assert got.dtype == np.uint64 and got.tolist() == want


def test_spec_validation():
    with pytest.raises(ValueError, match="forget_every"):
        FECSpec(forget_every=1)
    with pytest.raises(ValueError, match="cache_size"):
        FECSpec(cache_size=1)
    assert FECSpec().cache_size == 100000 and FECSpec().forget_every == 100


class _SequentialLRU:
    """The reference's FEC cache, one key at a time (an `OrderedDict`, last
    item = most recently used): the semantics every `FECCache` batch must
    replay. A miss inserts a reservation at once; `fill` stores the
    fitnesses of the reservations still cached."""

    def __init__(self, spec: FECSpec):
        self.spec, self.entries, self.hits, self.misses = spec, collections.OrderedDict(), 0, 0

    def lookup(self, keys: list[int]) -> tuple[list, list[int]]:
        answers, missed = [], []
        for key in keys:
            entry = self.entries.get(key)
            if entry is None:
                self.misses += 1
                self.entries[key] = [("job", len(missed)), 1]
                if len(self.entries) > self.spec.cache_size:
                    self.entries.popitem(last=False)
                answers.append(("job", len(missed)))
                missed.append(key)
                continue
            self.hits += 1
            self.entries.move_to_end(key)
            entry[1] += 1
            answers.append(entry[0])
            if self.spec.forget_every and entry[1] >= self.spec.forget_every:
                del self.entries[key]
        return answers, missed

    def fill(self, fitness: list[float]) -> None:
        for entry in self.entries.values():
            if isinstance(entry[0], tuple):
                entry[0] = fitness[entry[0][1]]

    def state(self) -> list:
        return [(k, np.float64(v[0]).tobytes(), v[1]) for k, v in self.entries.items()]


def _entries(cache: FECCache) -> list:
    """(key, fitness bits, count) in LRU order, oldest first, from the state."""
    state = cache.to_state()
    keys, fitness, counts = (array_from_json(state[k]).tolist() for k in ("keys", "fitness", "counts"))
    return [(k, np.float64(f).tobytes(), c) for k, f, c in zip(keys, fitness, counts, strict=True)]


def _answers(found, fitness: np.ndarray) -> list[float]:
    return [fitness[j] if j >= 0 else v for v, j in zip(found.values.tolist(), found.jobs.tolist(), strict=True)]


def _run(cache: FECCache, keys: list[int], fitness) -> list[float]:
    found = cache.lookup_batch(np.array(keys, dtype=np.uint64))
    values = np.array([fitness(keys[m]) for m in found.misses.tolist()], dtype=np.float64)
    cache.fill_batch(values)
    return _answers(found, values)


def test_lru_eviction_and_lookup_moves_to_front():
    cache = FECCache(FECSpec(cache_size=2, forget_every=0))
    _run(cache, [1, 2], lambda k: k / 10)
    assert _run(cache, [1], lambda k: 9.0) == [0.1]  # a hit: 1 becomes most recent
    _run(cache, [3], lambda k: 0.3)  # evicts 2, the least recently used
    assert 2 not in cache and 1 in cache and 3 in cache and len(cache) == 2
    assert _run(cache, [2], lambda k: 0.25) == [0.25]  # a miss again
    assert (cache.hits, cache.misses) == (1, 4)


def test_forget_every_counts_insert_as_one():
    cache = FECCache(FECSpec(cache_size=10, forget_every=3))
    found = cache.lookup_batch(np.array([7, 7, 7, 7], dtype=np.uint64))
    # miss (count 1), hit (2), hit (3: erased after answering), miss again.
    assert found.misses.tolist() == [0, 3] and found.jobs.tolist() == [0, 0, 0, 1]
    cache.fill_batch([0.5, 0.75])
    assert 7 in cache and _entries(cache) == [(7, np.float64(0.75).tobytes(), 1)]


def test_state_roundtrip_keeps_lru_order():
    cache = FECCache(FECSpec(cache_size=3, forget_every=5))
    _run(cache, [10, 2**63 + 5, 30], lambda k: k / 1e20)
    _run(cache, [10], lambda k: 0.0)
    restored = FECCache.from_state(json.loads(json.dumps(cache.to_state())))
    assert restored.to_state() == cache.to_state()
    _run(restored, [40], lambda k: 0.4)
    assert 2**63 + 5 not in restored  # same eviction victim as the original would pick


@pytest.mark.parametrize("size,forget,universe", [(4, 0, 12), (3, 3, 12), (50, 2, 12), (7, 5, 12), (2, 0, 40),
                                                  (20, 100, 300), (200, 3, 40), (50, 0, 300)])
def test_lookup_batch_replays_find_and_insert(size, forget, universe):
    """Random batches (repeated keys, erasures, evictions of entries the
    same batch touches later: the split path) against the sequential model,
    answer for answer and state for state, through a checkpoint too."""
    rng = np.random.default_rng(size * 1000 + forget * 10 + universe)
    spec = FECSpec(cache_size=size, forget_every=forget)
    fast, slow = FECCache(spec), _SequentialLRU(spec)
    for step in range(60):
        keys = (rng.integers(0, universe, size=int(rng.integers(0, 70))).astype(np.uint64)
                * np.uint64(0x9E3779B97F4A7C15)).tolist()  # spread over the uint64 range
        want, missed = slow.lookup(keys)
        found = fast.lookup_batch(np.array(keys, dtype=np.uint64))
        assert [keys[m] for m in found.misses.tolist()] == missed
        fitness = rng.standard_normal(len(missed))
        slow.fill(fitness.tolist())
        fast.fill_batch(fitness)
        assert _answers(found, fitness) == [fitness[a[1]] if isinstance(a, tuple) else a for a in want]
        assert _entries(fast) == slow.state() and (fast.hits, fast.misses) == (slow.hits, slow.misses)
        if step % 20 == 19:
            fast = FECCache.from_state(json.loads(json.dumps(fast.to_state())))


def test_pending_batch_is_guarded_and_cancelled():
    cache = FECCache(FECSpec(cache_size=5, forget_every=0))
    _run(cache, [1], lambda k: 0.5)
    found = cache.lookup_batch(np.array([1, 2, 2], dtype=np.uint64))
    assert found.misses.tolist() == [1]
    with pytest.raises(RuntimeError, match="pending"):
        cache.to_state()
    with pytest.raises(RuntimeError, match="pending"):
        cache.lookup_batch(np.array([3], dtype=np.uint64))
    cache.cancel_batch()  # the evaluations failed: the reservation goes, the hit's move stays
    assert 2 not in cache and _entries(cache) == [(1, np.float64(0.5).tobytes(), 2)]
    assert _run(cache, [2], lambda k: 0.25) == [0.25]


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
    _run(cache, [3, 2**64 - 1, 17], {3: 0.25, 2**64 - 1: -0.0, 17: 1.0 / 3.0}.get)
    _run(cache, [3], lambda k: 0.0)
    state = json.loads(json.dumps(cache.to_state()))
    assert "entries" not in state and {"keys", "fitness", "counts"} <= set(state)
    back = FECCache.from_state(state)
    # LRU order kept, the largest uint64 key too, fitness bit for bit (the sign of zero too).
    assert _entries(back) == [(2**64 - 1, np.float64(-0.0).tobytes(), 1), (17, np.float64(1.0 / 3.0).tobytes(), 1),
                              (3, np.float64(0.25).tobytes(), 2)]
    older = {"spec": state["spec"], "hits": 1, "misses": 3,
             "entries": [[str(k), np.frombuffer(f)[0], c] for k, f, c in _entries(back)]}  # earlier checkpoints
    assert FECCache.from_state(older).to_state() == cache.to_state()
