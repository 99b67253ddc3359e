"""Functional equivalence checking, FEC (spec §9, reference `fec_cache.*`).

Two programs whose per-example errors on a short probe (first `num_train`
train and `num_valid` valid examples) are bit-identical almost surely compute
the same function, so the second one reuses the first one's per-task fitness.
This module holds only the hash and the cache; how the probe errors and the
full fitness are computed is the evaluator's business, so a batched JAX
evaluator can reuse it unchanged.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from azero_jax.checkpoint import array_from_json, array_to_json
from azero_jax.hashing import hash_combine

# The reference re-seeds its probe RNG to this before every probe
# (`kFunctionalCacheRandomSeed`); here it is the probe's random-stream seed.
FEC_RANDOM_SEED = 235732282


@dataclasses.dataclass(frozen=True)
class FECSpec:
    """Reference `FECSpec`: probe sizes, LRU capacity, forced forgetting
    (0 = never forget)."""

    num_train_examples: int = 10
    num_valid_examples: int = 10
    cache_size: int = 100000
    forget_every: int = 100

    def __post_init__(self):
        for name, low in (("num_train_examples", 1), ("num_valid_examples", 1), ("cache_size", 2),
                          ("forget_every", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"FECSpec.{name} must be an integer >= {low}, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.forget_every == 1:
            raise ValueError("FECSpec.forget_every must be 0 (never) or > 1, got 1")


_SEED = np.uint64(42)  # the reference's start value


def fec_hash_batch(errors: np.ndarray, lengths: np.ndarray, task_index: np.ndarray,
                   num_train_examples: np.ndarray) -> np.ndarray:
    """Vectorized `fec_hash` of J probes at once, as uint64 (J,).

    errors: (J, L) float; row j's first lengths[j] entries are its error
    sequence (train errors then valid errors; the rest is ignored).
    Hashing each probe separately costs several microseconds of Python per
    (program, task); a search hashes ~10 per individual, so the batched
    evaluator hashes a whole step's probes in a few array operations.
    The same as `fec_key(probe_digest(errors, lengths, task_index),
    num_train_examples)`: the digest depends on the probe only, so the
    evaluator may memoize it (see `CachedEvaluator`).
    """
    return fec_key(probe_digest(errors, lengths, task_index), num_train_examples)


def fec_key(digest: np.ndarray, num_train_examples: np.ndarray) -> np.ndarray:
    """The FEC key (uint64) of a probe digest and the train-example count of
    the full evaluation (so budget-truncated runs hash differently)."""
    with np.errstate(over="ignore"):
        return hash_combine(np.asarray(digest, dtype=np.uint64),
                            np.asarray(num_train_examples, dtype=np.int64).astype(np.uint64))


def probe_digest(errors: np.ndarray, lengths: np.ndarray, task_index: np.ndarray) -> np.ndarray:
    """The probe part of `fec_hash_batch`: the error sequences, then the task index."""
    errors = np.asarray(errors, dtype=np.float64)
    if errors.ndim != 2:
        raise ValueError(f"errors must have shape (J, L), got {errors.shape}")
    lengths = np.asarray(lengths, dtype=np.int64)
    with np.errstate(over="ignore"):
        bits = np.where(errors == 0.0, 0.0, errors).astype("<f8").view(np.uint64)  # -0.0 -> +0.0; NaN bits kept
        h = np.full(errors.shape[0], _SEED, dtype=np.uint64)
        for k in range(errors.shape[1]):
            h = np.where(k < lengths, hash_combine(h, bits[:, k]), h)
        return hash_combine(h, np.asarray(task_index, dtype=np.int64).astype(np.uint64))


def fec_hash(train_errors: Sequence[float], valid_errors: Sequence[float], task_index: int,
             num_train_examples: int) -> int:
    """64-bit hash of the probe errors (exact float64 bits, as the reference
    hashes raw doubles), then the task index, then the train-example count of
    the full evaluation (so budget-truncated runs hash differently).

    Like the reference's sequence of HashCombine calls, train and valid errors
    are hashed as one sequence. -0.0 hashes as +0.0 (std::hash<double> does
    the same). The mix is deterministic across processes (unlike Python's
    hash) and identical to `fec_hash_batch`, so the reference and the JAX
    backends share it; the values differ from the C++ ones (not needed:
    hashes only key this process's cache and its checkpoint).
    """
    errors = np.concatenate([np.asarray(train_errors, dtype=np.float64).ravel(),
                             np.asarray(valid_errors, dtype=np.float64).ravel()])
    return int(fec_hash_batch(errors[None, :], np.array([errors.size]), np.array([task_index]),
                              np.array([num_train_examples]))[0])


class _Reserved:
    """A cache entry whose full evaluation is still running in this batch."""

    __slots__ = ("job",)

    def __init__(self, job: int):
        self.job = job


class FECCache:
    """LRU cache hash -> (per-task fitness, count), reference semantics:
    `find` moves a hit to the front and increments its count (an insert starts
    at 1); the entry is erased once the count reaches `forget_every`, so a
    program family is re-evaluated regularly. Inserting beyond `cache_size`
    evicts the least recently used entry."""

    def __init__(self, spec: FECSpec | None = None):
        self.spec = spec or FECSpec()
        # Last item = most recently used.
        self._entries: collections.OrderedDict[int, list] = collections.OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: int) -> bool:
        return key in self._entries

    def find(self, key: int) -> Any:
        """Cached value (a fitness, or a batch evaluator's placeholder) or
        None; counts hits and misses."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        entry[1] += 1
        value = entry[0]
        if self.spec.forget_every and entry[1] >= self.spec.forget_every:
            del self._entries[key]
        return value

    def lookup_batch(self, keys: Sequence[int]) -> tuple[list[float | int], list[int]]:
        """`find` of every key in order, reserving each miss at once (so a
        later equal key in the batch hits it, as sequentially): returns, per
        key, the cached fitness (float) or the index (int) of the miss that
        will produce it, and the positions of the misses. `fill_batch` stores
        the misses' fitnesses. The same LRU moves, counts and evictions as
        `find` + `insert` one key at a time, in one loop (this runs ~10 times
        per child: per (program, task))."""
        entries, forget = self._entries, self.spec.forget_every
        move, capacity = entries.move_to_end, self.spec.cache_size
        slots: list[float | int] = []
        misses: list[int] = []
        hits = 0
        for j, key in enumerate(keys):
            entry = entries.get(key)
            if entry is None:
                marker = _Reserved(len(misses))
                misses.append(j)
                entries[key] = [marker, 1]
                if len(entries) > capacity:
                    entries.popitem(last=False)
                slots.append(marker.job)
                continue
            hits += 1
            move(key)
            entry[1] += 1
            value = entry[0]
            if forget and entry[1] >= forget:
                del entries[key]
            slots.append(value.job if type(value) is _Reserved else value)
        self.hits += hits
        self.misses += len(misses)
        return slots, misses

    def fill_batch(self, keys: Sequence[int], values: Sequence[float]) -> None:
        """Stores `values[m]` for the m-th reserved miss of the last
        `lookup_batch` (`keys`: the missed keys in order), where its entry is
        still cached (it may have been evicted or forgotten meanwhile)."""
        entries = self._entries
        for m, key in enumerate(keys):
            entry = entries.get(key)
            if entry is not None and type(entry[0]) is _Reserved and entry[0].job == m:
                entry[0] = float(values[m])

    def insert(self, key: int, value: Any) -> None:
        """Inserts a freshly evaluated fitness (or any marker). An existing
        entry of the same key is replaced (the reference only inserts after a
        miss)."""
        self._entries.pop(key, None)
        self._entries[key] = [value if not isinstance(value, (int, float)) else float(value), 1]
        while len(self._entries) > self.spec.cache_size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    # -- checkpoints --
    def to_state(self) -> dict[str, Any]:
        """JSON-friendly state: the entries in LRU order (oldest first) as
        three arrays (`checkpoint.array_to_json`: keys uint64, fitness float64
        bit for bit, counts int64). A list of 100,000 [key, fitness, count]
        triples took ~0.2 s to build and as long to encode per checkpoint,
        ~5 % of a demo run's first minutes under its checkpoint cadence."""
        n = len(self._entries)
        values = list(self._entries.values())
        if any(type(v[0]) is _Reserved for v in values):
            raise RuntimeError("FEC state taken while a batch's evaluations are pending")
        return {
            "spec": dataclasses.asdict(self.spec),
            "keys": array_to_json(np.fromiter(self._entries.keys(), dtype=np.uint64, count=n)),
            "fitness": array_to_json(np.fromiter((v[0] for v in values), dtype=np.float64, count=n)),
            "counts": array_to_json(np.fromiter((v[1] for v in values), dtype=np.int64, count=n)),
            "hits": self.hits,
            "misses": self.misses,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FECCache:
        """`to_state`'s snapshot; also the older form (an "entries" list of
        [key string, fitness, count]) of checkpoints written before."""
        cache = cls(FECSpec(**state["spec"]))
        if "entries" in state:
            for key, fitness, count in state["entries"]:
                cache._entries[int(key)] = [float(fitness), int(count)]
        else:
            keys, fitness, counts = (array_from_json(state[k]).tolist() for k in ("keys", "fitness", "counts"))
            if not len(keys) == len(fitness) == len(counts):
                raise ValueError("FEC state: keys, fitness and counts differ in length")
            cache._entries = collections.OrderedDict(zip(keys, map(list, zip(fitness, counts, strict=True)),
                                                         strict=True))
        cache.hits = int(state.get("hits", 0))
        cache.misses = int(state.get("misses", 0))
        return cache
