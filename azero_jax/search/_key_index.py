"""A uint64 key -> slot index in NumPy arrays (open addressing, linear
probing), queried and updated a whole batch of keys at a time: the FEC
cache's key lookup (`fec_cache`).

Why not a dict: the FEC keys are 64-bit hashes, and a search looks up ~10 a
child in a cache of 100,000 entries. A Python dict of that size cost ~100 ns
a key in the demo search (each `get` a chain of dependent cache misses:
table, entry, int object), ~1.5 s of a 17 s search with its deletions and
insertions. Here a batch's probes are gathers over two arrays.

Deleted entries leave tombstones; the table is rebuilt (live keys
reinserted) once live + tombstones exceed half of it. Positions do not
affect any answer, only where keys sit.
"""

from __future__ import annotations

import numpy as np

from azero_jax.hashing import mix64

_EMPTY, _TOMB = -1, -2


class KeyIndex:
    """Distinct uint64 keys -> slots in [0, capacity)."""

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        size = 16
        while size < 4 * self.capacity:
            size *= 2
        self._mask = np.uint64(size - 1)
        self._keys = np.zeros(size, np.uint64)
        self._slots = np.full(size, _EMPTY, np.int64)
        self._where = np.zeros(self.capacity, np.int64)  # slot -> table position
        self._used = 0  # live + tombstones
        self._live = 0

    def __len__(self) -> int:
        return self._live

    def get(self, keys: np.ndarray) -> np.ndarray:
        """The slot of each key (uint64 array), -1 where absent."""
        out = np.full(keys.size, -1, np.int64)
        todo = np.arange(keys.size)
        pos = self._home(keys)
        want = keys
        while todo.size:
            slots = self._slots[pos]
            found = (slots >= 0) & (self._keys[pos] == want)
            out[todo[found]] = slots[found]
            go_on = (slots != _EMPTY) & ~found
            todo, pos, want = todo[go_on], pos[go_on] + 1, want[go_on]
            pos &= len(self._slots) - 1
        return out

    def insert(self, keys: np.ndarray, slots: np.ndarray) -> None:
        """Adds keys (absent and distinct) with their slots."""
        if self._used + keys.size > len(self._slots) // 2:
            self._rebuild(keys.size)
        self._place(keys, np.asarray(slots, dtype=np.int64))

    def remove(self, slots: np.ndarray) -> None:
        """Removes the keys held by these (live, distinct) slots."""
        self._slots[self._where[slots]] = _TOMB
        self._live -= slots.size

    def _home(self, keys: np.ndarray) -> np.ndarray:
        """First table position of each key: its mixed bits (keys that are not
        hashes, such as consecutive integers, would cluster)."""
        return (mix64(keys) & self._mask).astype(np.int64)

    def _place(self, keys: np.ndarray, slots: np.ndarray) -> None:
        todo = np.arange(keys.size)
        pos = self._home(keys)
        while todo.size:
            free = np.flatnonzero(self._slots[pos] < 0)
            # Several keys may reach the same free position: the first one takes it.
            taken, first = np.unique(pos[free], return_index=True)
            winners = todo[free[first]]
            self._used += int((self._slots[taken] == _EMPTY).sum())
            self._keys[taken] = keys[winners]
            self._slots[taken] = slots[winners]
            self._where[slots[winners]] = taken
            rest = np.ones(todo.size, bool)
            rest[free[first]] = False
            todo, pos = todo[rest], (pos[rest] + 1) & (len(self._slots) - 1)
        self._live += keys.size

    def _rebuild(self, extra: int) -> None:
        """Reinserts the live keys into a clean table (no tombstones)."""
        live = np.flatnonzero(self._slots >= 0)
        keys, slots = self._keys[live], self._slots[live]
        if keys.size + extra > len(self._slots) // 2:  # never with capacity-bounded use
            raise RuntimeError("FEC key index over capacity")
        self._slots.fill(_EMPTY)
        self._used = self._live = 0
        self._place(keys, slots)
