"""The FEC cache: an LRU map key -> per-task fitness with the reference's
semantics (`fec_cache.*`), looked up a whole batch of keys at a time.

Sequential semantics (what every batch replays exactly): a key found in the
cache is a hit, moves to the most recently used end and has its count
incremented; once the count reaches `forget_every` the entry is erased, so a
program family is re-evaluated regularly. A key not found is a miss and is
inserted at once with count 1, holding a reservation (the index of the full
evaluation that will produce its fitness), so a later equal key in the same
batch hits it; inserting beyond `cache_size` evicts the least recently used
entry. `fill_batch` then stores the evaluated fitnesses in the reservations
still cached.

Why arrays: the search looks up ~10 keys per individual (one per task). One
key at a time in a Python `OrderedDict` cost ~1 µs, about 30 % of the demo
search on the native backend (docs/performance.md). Here the entries live in
NumPy arrays (slot per entry: key, fitness, count, last-use stamp,
reservation) with an index key -> slot (`_key_index`: a dict cost ~100 ns a
key), and a batch is replayed in closed form:
per distinct key, its occurrences alternate hits and misses with period
`forget_every`; the cache size is a walk clamped at the capacity (evictions
where it would exceed it); the evicted entries are the oldest entries that
the batch does not touch, read from a queue of (slot, stamp) records in use
order (records made stale by a later use are skipped). The one case the
closed form cannot replay, an eviction victim that the batch would touch
after its eviction (or a batch that evicts its own insertions), is detected
and the batch is split in halves (a single key never conflicts).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np

from azero_jax.checkpoint import array_from_json, array_to_json
from azero_jax.search._key_index import KeyIndex
from azero_jax.search.fec import FECSpec


class Lookup(NamedTuple):
    """A batch's answers, per key: `values` the cached fitness (NaN where
    the key awaits an evaluation of this batch), `jobs` the index of the
    miss whose evaluation produces it (-1 where cached); `misses` the
    positions of the missed keys (the full evaluations to run, in order)."""

    values: np.ndarray
    jobs: np.ndarray
    misses: np.ndarray


class _Conflict(Exception):
    """The batch cannot be replayed in closed form (see the module doc)."""


class FECCache:
    """LRU cache FEC key (uint64) -> fitness, counts and hit/miss counters."""

    def __init__(self, spec: FECSpec | None = None):
        self.spec = spec or FECSpec()
        self.hits = 0
        self.misses = 0
        self.clear()

    def clear(self) -> None:
        cap = self.spec.cache_size
        self._index = KeyIndex(cap)  # key -> slot
        self._keys = np.zeros(cap, np.uint64)
        self._fitness = np.zeros(cap, np.float64)
        self._count = np.zeros(cap, np.int64)
        self._stamp = np.zeros(cap, np.int64)  # last use (the clock's value then)
        self._job = np.full(cap, -1, np.int64)  # reserved: the miss that will fill it
        self._live = np.zeros(cap, bool)
        self._free = list(range(cap - 1, -1, -1))  # a stack: slot 0 first
        self._clock = 0
        # Use records (slot, stamp) in stamp order; a record is current while its slot
        # is live and still carries that stamp.
        self._qslot = np.zeros(4 * cap + 64, np.int64)
        self._qstamp = np.zeros(4 * cap + 64, np.int64)
        self._head = self._tail = 0
        self._reserved: list[np.ndarray] = []  # slots reserved by the pending batch

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: int) -> bool:
        return bool(self._index.get(np.array([key], dtype=np.uint64))[0] >= 0)

    # -- batches --
    def lookup_batch(self, keys: Any) -> Lookup:
        """Looks up `keys` (uint64, in order) as one key at a time would;
        `fill_batch` must follow with the misses' fitnesses."""
        if self._reserved:
            raise RuntimeError("FEC lookup while the last batch's evaluations are pending (fill_batch first)")
        keys = np.asarray(keys, dtype=np.uint64).ravel()
        values = np.full(keys.size, np.nan)
        jobs = np.full(keys.size, -1, np.int64)
        misses: list[np.ndarray] = []
        self._reserved.append(np.empty(0, np.int64))  # a fill is due even when nothing missed
        self._lookup_split(keys, 0, values, jobs, misses)
        return Lookup(values, jobs, np.concatenate(misses) if misses else np.empty(0, np.int64))

    def fill_batch(self, fitness: Any) -> None:
        """Stores `fitness[m]`, the m-th miss's evaluation of the last
        `lookup_batch`, where its reservation is still cached (it may have
        been evicted or forgotten meanwhile)."""
        fitness = np.asarray(fitness, dtype=np.float64)
        slots = np.concatenate(self._reserved)
        self._reserved = []
        slots = slots[self._job[slots] >= 0]
        self._fitness[slots] = fitness[self._job[slots]]
        self._job[slots] = -1

    def cancel_batch(self) -> None:
        """Erases the last `lookup_batch`'s reservations that are still cached
        (its evaluations failed: there is no fitness to fill in)."""
        slots = np.concatenate(self._reserved) if self._reserved else np.empty(0, np.int64)
        self._reserved = []
        self._drop(np.unique(slots[self._job[slots] >= 0]))

    def _lookup_split(self, keys: np.ndarray, offset: int, values: np.ndarray, jobs: np.ndarray,
                      misses: list[np.ndarray]) -> None:
        """`_lookup`, on halves where the closed form does not apply."""
        try:
            self._lookup(keys, offset, values, jobs, misses)
        except _Conflict:
            half = keys.size // 2
            self._lookup_split(keys[:half], offset, values, jobs, misses)
            self._lookup_split(keys[half:], offset + half, values, jobs, misses)

    def _lookup(self, keys: np.ndarray, offset: int, values: np.ndarray, jobs: np.ndarray,
                misses: list[np.ndarray]) -> None:
        """Replays `keys` (the batch's positions offset...) into values, jobs
        and misses, and updates the cache (_Conflict before any change)."""
        n, cap, forget = keys.size, self.spec.cache_size, self.spec.forget_every
        if n == 0:
            return
        job_base = sum(m.size for m in misses)
        # The distinct keys (uniq), each position's key (inverse) and occurrence number among its
        # key's occurrences (occ), from one stable sort: `order` lists each key's positions in turn.
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        head = np.empty(n, bool)
        head[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=head[1:])
        starts = np.flatnonzero(head)
        uniq = ordered[starts]
        counts = np.diff(starts, append=n)
        group_of = np.cumsum(head) - 1
        inverse = np.empty(n, np.int64)
        inverse[order] = group_of
        occ = np.empty(n, np.int64)
        occ[order] = np.arange(n) - starts[group_of]
        slot0 = self._index.get(uniq)
        present = slot0 >= 0
        c0 = np.where(present, self._count[slot0], 0)
        c0p = c0[inverse]
        if forget:
            fresh = occ - np.where(c0p > 0, forget - c0p, 0)  # < 0: hits on the entry cached before
            phase = fresh % forget
            miss = (fresh >= 0) & (phase == 0)
            erased = phase == forget - 1  # the hit that brings the count to forget_every
            count_after = np.where(fresh < 0, c0p + occ + 1, phase + 1)
        else:
            fresh = np.where(c0p > 0, -1, occ)
            miss = fresh == 0
            erased = np.zeros(n, bool)
            count_after = c0p + occ + 1
        # Size walk: +1 per miss, -1 per erasure, clamped at the capacity by evictions.
        walk = len(self._index) + np.cumsum(miss.astype(np.int64) - erased)
        excess = np.maximum.accumulate(np.maximum(walk - cap, 0))
        num_evict = int(excess[-1])
        victims = self._victims(num_evict, slot0[present]) if num_evict else np.empty(0, np.int64)

        # Answers. A miss reserves the next job number; a later hit in its key's fresh cycles gets
        # the latest miss's job; a hit on the entry cached before gets its fitness (or its
        # reservation, when an earlier part of a split batch made it).
        miss_jobs = job_base + np.cumsum(miss) - 1
        group = group_of * (job_base + n + 1)  # a running max within each key's occurrences
        latest = np.maximum.accumulate(group + np.where(miss[order], miss_jobs[order], -1)) - group
        answer_job = np.empty(n, np.int64)
        answer_job[order] = latest
        old = fresh < 0
        s_old = slot0[inverse[old]]
        old_job = self._job[s_old]
        answer_job[old] = old_job
        out = slice(offset, offset + n)
        jobs[out] = answer_job
        cached = np.flatnonzero(old)[old_job < 0]
        values[offset + cached] = self._fitness[slot0[inverse[cached]]]
        num_miss = int(miss.sum())
        self.misses += num_miss
        self.hits += n - num_miss
        misses.append(offset + np.flatnonzero(miss))

        # New state: the evicted entries go, then every key ends as its last occurrence left it.
        self._drop(victims)
        last = order[starts + counts - 1]
        alive = ~erased[last]
        self._drop(slot0[present & ~alive])
        new = ~present & alive
        slots = slot0.copy()
        if new.any():
            take = int(new.sum())
            slots[new] = self._free[-take:][::-1]
            del self._free[-take:]
            new_keys = uniq[new]
            self._index.insert(new_keys, slots[new])
            self._keys[slots[new]] = new_keys
            self._live[slots[new]] = True
        keep = np.flatnonzero(alive)
        s, lp = slots[keep], last[keep]
        self._count[s] = count_after[lp]
        refreshed = fresh[lp] >= 0  # holds a reservation of this batch
        self._job[s[refreshed]] = answer_job[lp[refreshed]]
        stamps = self._clock + lp
        self._stamp[s] = stamps
        self._clock += n
        by_use = np.argsort(lp)
        self._append(s[by_use], stamps[by_use])
        self._reserved.append(s[refreshed])

    def _victims(self, num: int, touched: np.ndarray) -> np.ndarray:
        """The `num` least recently used entries that the batch does not touch;
        _Conflict when a touched entry is older than one of them or there are
        not enough of them."""
        mark = np.zeros(self.spec.cache_size, bool)
        mark[touched] = True
        width = 2 * (num + touched.size) + 64
        while True:
            stop = min(self._tail, self._head + width)
            qs = self._qslot[self._head:stop]
            current = self._live[qs] & (self._stamp[qs] == self._qstamp[self._head:stop])
            lead = int(np.argmax(current)) if current.any() else current.size
            self._head += lead  # stale records before the first current one stay stale
            qs = qs[current]
            untouched = np.flatnonzero(~mark[qs])
            if untouched.size >= num:
                if mark[qs[:untouched[num - 1]]].any():
                    raise _Conflict
                return qs[untouched[:num]]
            if stop == self._tail:
                raise _Conflict
            width *= 2

    def _drop(self, slots: np.ndarray) -> None:
        if slots.size == 0:
            return
        self._index.remove(slots)
        self._live[slots] = False
        self._job[slots] = -1
        self._free.extend(slots.tolist())

    def _append(self, slots: np.ndarray, stamps: np.ndarray) -> None:
        """Appends use records, compacting the queue (or growing it) when full."""
        if self._tail + slots.size > self._qslot.size:
            qs, qt = self._qslot[self._head:self._tail], self._qstamp[self._head:self._tail]
            current = self._live[qs] & (self._stamp[qs] == qt)
            qs, qt = qs[current], qt[current]
            size = max(self._qslot.size, 2 * (qs.size + slots.size))
            self._qslot, self._qstamp = np.zeros(size, np.int64), np.zeros(size, np.int64)
            self._qslot[:qs.size], self._qstamp[:qs.size] = qs, qt
            self._head, self._tail = 0, qs.size
        self._qslot[self._tail:self._tail + slots.size] = slots
        self._qstamp[self._tail:self._tail + slots.size] = stamps
        self._tail += slots.size

    # -- checkpoints --
    def to_state(self) -> dict[str, Any]:
        """JSON-friendly state: the entries in LRU order (oldest first) as
        three arrays (`checkpoint.array_to_json`: keys uint64, fitness float64
        bit for bit, counts int64). A list of 100,000 [key, fitness, count]
        triples took ~0.2 s to build and as long to encode per checkpoint,
        ~5 % of a demo run's first minutes under its checkpoint cadence."""
        if self._reserved:
            raise RuntimeError("FEC state taken while a batch's evaluations are pending")
        slots = np.flatnonzero(self._live)
        slots = slots[np.argsort(self._stamp[slots], kind="stable")]
        return {
            "spec": dataclasses.asdict(self.spec),
            "keys": array_to_json(self._keys[slots]),
            "fitness": array_to_json(self._fitness[slots]),
            "counts": array_to_json(self._count[slots]),
            "hits": self.hits,
            "misses": self.misses,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FECCache:
        """`to_state`'s snapshot; also the older form (an "entries" list of
        [key string, fitness, count]) of checkpoints written before."""
        cache = cls(FECSpec(**state["spec"]))
        if "entries" in state:
            entries = state["entries"]
            keys = np.array([int(k) for k, _, _ in entries], dtype=np.uint64)
            fitness = np.array([float(f) for _, f, _ in entries], dtype=np.float64)
            counts = np.array([int(c) for _, _, c in entries], dtype=np.int64)
        else:
            keys, fitness, counts = (array_from_json(state[k]) for k in ("keys", "fitness", "counts"))
        n = keys.size
        if not n == fitness.size == counts.size:
            raise ValueError("FEC state: keys, fitness and counts differ in length")
        if n > cache.spec.cache_size or np.unique(keys).size != n:
            raise ValueError("FEC state: more entries than the cache size, or a key twice")
        cache._keys[:n], cache._fitness[:n], cache._count[:n] = keys, fitness, counts
        cache._stamp[:n] = np.arange(n)
        cache._live[:n] = True
        cache._index.insert(keys, np.arange(n))
        cache._free = list(range(cache.spec.cache_size - 1, n - 1, -1))
        cache._clock = n
        cache._append(np.arange(n), np.arange(n))
        cache.hits = int(state.get("hits", 0))
        cache.misses = int(state.get("misses", 0))
        return cache
