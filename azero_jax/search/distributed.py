"""Island evolution across processes: every process owns a disjoint set of
islands and migrants travel through a process all-gather (first step of
multi-process / multi-host search on `jax.distributed`).

Placement rule: with N processes and G global islands, **global island g
lives on process g mod N** (`owner`), so process p holds islands p, p+N,
p+2N, ... (`local_islands`), in that order. N may exceed G (a process then
owns no island and only takes part in the exchanges).

One searcher per island. Each global island g is its own single-island
`RegularizedEvolution` with its own NumPy generator seeded from
(seed, g, "evolution") and its own evaluator (FEC cache, counters, random
streams, hurdles) seeded from (seed, g, "evaluator") -- see `island_seed`.
So an island's trajectory depends only on (seed, g, config) and on the
migrants it receives, never on which process runs it or on which other
islands share that process.

Migration (`DistributedIslands.migrate`): every `migration_every` steps (all
islands step in lockstep), each process takes each local island's best (first
index of the max fitness) as a padded program-array row plus its fitness;
all processes first agree on a common array capacity (the all-gathered
maximum), then all-gather the rows; global island g's best then replaces the
oldest slot of global island (g+1) mod G, like `evolution.migrate` in one
process. When islands search different tasks (`island_tasks`), the migrant
is re-evaluated on its destination island's tasks by the destination's
evaluator; otherwise it keeps its fitness. Floats and fitnesses travel as
their raw bits (int32 views), so a migrant arrives bit-identical and JAX's
x64 mode does not matter.

Determinism claim (tested in tests/test_distributed.py): for the same seed,
config, global island count G and step count, the islands' final
populations, fitnesses and best programs are IDENTICAL whatever the process
count N (1 process x 2 islands and 2 processes x 1 island give the same
islands and the same best program), and two runs with the same N are
identical in everything they write. What does differ with N: the per-process
individual counts (a process counts its own islands). NOT claimed: equality
with `RegularizedEvolution(num_islands=G)` in one process, which draws all
islands from one generator, evaluates them with one evaluator (one FEC cache,
hurdles over all islands) and so follows other random streams.

Checkpoints (`DistributedIslands.to_state` / `load_state`, the file rules
below): a process's checkpoint holds its islands' states (program arrays
bit for bit, padding included, and the generators' states), its evaluators'
states (counters, FEC caches), the step and the migrations done. The file of
process P at step S is `checkpoint_process_P_step_S.json`
(`checkpoint_path`); a checkpoint at step S is written by every process, then
all processes meet (a barrier) and only then drop their older files, so at
any kill every process still holds the newest step that all of them saved
(`common_step` picks it; a resume from it replays the same steps exactly).

The exchange itself is injected (`allgather(x) -> stacked (N, *x.shape)`):
`jax_allgather` is `jax.experimental.multihost_utils.process_allgather` (JAX
is imported only there), and with one process the identity `local_allgather`
runs the same code without JAX.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from azero_jax import program_arrays as pa
from azero_jax import serialization
from azero_jax.program import Algorithm
from azero_jax.search import evolution_state
from azero_jax.search.evolution import EvolutionState, RegularizedEvolution, best_index

Allgather = Callable[[np.ndarray], np.ndarray]

_COMPONENTS = 3  # setup, predict, learn
_FIELDS = 4  # per instruction: (op, in1, in2, out) ints, 4 floats


def owner(island: int, num_processes: int) -> int:
    """The process that holds global island `island`: island mod N."""
    return int(island) % int(num_processes)


def local_islands(process_index: int, num_processes: int, num_islands: int) -> list[int]:
    """The global islands process `process_index` holds, ascending."""
    if not 0 <= process_index < num_processes:
        raise ValueError(f"process index {process_index} is not in [0, {num_processes})")
    return list(range(process_index, num_islands, num_processes))


def _tag(purpose: str) -> int:
    """A stream name as a 32-bit SeedSequence entry (stable across processes)."""
    return int.from_bytes(hashlib.sha256(purpose.encode()).digest()[:4], "little")


def island_seed(seed: int, island: int, purpose: str) -> int:
    """A 63-bit seed for global island `island`'s stream `purpose`
    ("evolution", "evaluator"): independent of the process layout."""
    state = np.random.SeedSequence([int(seed), int(island), _tag(purpose)]).generate_state(1, np.uint64)
    return int(state[0] >> np.uint64(1))


def phase_seed(seed: int, purpose: str) -> int:
    """A 31-bit seed for a run-wide stream `purpose` ("select", "final",
    "select_tasks"), from --seed alone (no island, no process layout)."""
    return int(np.random.SeedSequence([int(seed), _tag(purpose)]).generate_state(1, np.uint32)[0] >> np.uint32(1))


# The island chosen among the islands' bests: the highest fitness, NaN never
# wins, ties go to the lowest index -- `evolution.best_index`'s rule.
choose_best = best_index


def agree_to_stop(out_of_time: bool, allgather: Allgather) -> bool:
    """The stop decision of every process: True on all of them as soon as
    any process's own clock says its budget is spent (one int32 all-gather,
    so every process takes the same decision at the same step)."""
    return bool(np.asarray(allgather(np.asarray([int(out_of_time)], np.int32))).any())


def program_digest(program: Algorithm) -> str:
    """A short content hash of a program (logs and results: which program went where)."""
    text = json.dumps(serialization.algorithm_to_dict(program), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class CollectiveError(RuntimeError):
    """A collective failed or did not finish in time: another process died,
    hangs, or the network between the processes failed."""


def guarded_allgather(allgather: Allgather, *, timeout: float,
                      on_timeout: Callable[[], None]) -> Allgather:
    """`allgather` with bounds: an exception inside it becomes a
    `CollectiveError` (gloo reports a dead peer as "connection reset" right
    away), and a call that has not returned after `timeout` seconds runs
    `on_timeout` from a watchdog thread (a peer that hangs, or that died
    without the transport noticing: the blocked call cannot be interrupted,
    so the script's `on_timeout` prints its error line and ends the process)."""
    def run(x: np.ndarray) -> np.ndarray:
        watchdog = threading.Timer(timeout, on_timeout)
        watchdog.daemon = True
        watchdog.start()
        try:
            return allgather(x)
        except Exception as e:  # any failure of the transport means the same to the caller
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise CollectiveError(first) from e
        finally:
            watchdog.cancel()
    return run


def gather_float_rows(rows: np.ndarray, allgather: Allgather) -> np.ndarray:
    """Every process's float64 `rows` (k_p, c) stacked in process order,
    bit-exact (two all-gathers: the row counts, then the rows padded to the
    largest count, as int32 views)."""
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    counts = allgather(np.asarray([rows.shape[0]], np.int32)).reshape(-1)
    width = rows.shape[1]
    padded = np.zeros((int(counts.max()), width), np.float64)
    padded[:rows.shape[0]] = rows
    gathered = allgather(padded.view(np.int32))
    out = [np.ascontiguousarray(g).view(np.float64).reshape(-1, width)[:int(k)]
           for g, k in zip(gathered, counts, strict=True)]
    return np.concatenate(out) if out else np.zeros((0, width))


def local_allgather(x: np.ndarray) -> np.ndarray:
    """The all-gather of a single process."""
    return np.asarray(x)[None]


def jax_allgather(x: np.ndarray) -> np.ndarray:
    """`process_allgather` over the processes of `jax.distributed` (int32 only here)."""
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(np.asarray(x, dtype=np.int32), tiled=False))


# ------------------------------------------------------------ wire form --

def _row_size(caps: Sequence[int]) -> int:
    # per component: ints C*4, floats C*4 float64 = C*8 int32, length 1; then fitness (2) and valid (1)
    return sum(c * _FIELDS * 3 + 1 for c in caps) + 3


def encode_rows(programs: pa.ProgramArrays | None, fitnesses: np.ndarray, slots: int,
                caps: Sequence[int]) -> np.ndarray:
    """`slots` rows of int32 (program padded to `caps`, fitness bits, valid
    flag); rows past `programs.batch` are invalid padding."""
    out = np.zeros((slots, _row_size(caps)), np.int32)
    if programs is None or programs.batch == 0:
        return out
    b = programs.batch
    programs = pa.with_capacity(programs, caps)
    parts = []
    for code in programs:
        parts += [code.ints.astype(np.int32).reshape(b, -1),
                  np.ascontiguousarray(code.floats, dtype=np.float64).view(np.int32).reshape(b, -1),
                  code.lengths.astype(np.int32).reshape(b, 1)]
    parts += [np.ascontiguousarray(fitnesses, dtype=np.float64).view(np.int32).reshape(b, 2),
              np.ones((b, 1), np.int32)]
    out[:b] = np.concatenate(parts, axis=1)
    return out


def decode_rows(rows: np.ndarray, caps: Sequence[int]) -> tuple[pa.ProgramArrays, np.ndarray, np.ndarray]:
    """(programs, fitnesses, valid) of `encode_rows`' rows (bit-exact)."""
    rows = np.ascontiguousarray(rows, dtype=np.int32)
    b, at, codes = rows.shape[0], 0, []
    for c in caps:
        n = c * _FIELDS
        ints = rows[:, at:at + n].reshape(b, c, _FIELDS).copy()
        at += n
        floats = rows[:, at:at + 2 * n].copy().view(np.float64).reshape(b, c, _FIELDS)
        at += 2 * n
        lengths = rows[:, at].copy()
        at += 1
        codes.append(pa.ComponentCode(ints, floats, lengths))
    fitnesses = rows[:, at:at + 2].copy().view(np.float64).reshape(b)
    valid = rows[:, at + 2].astype(bool)
    return pa.ProgramArrays(*codes), fitnesses, valid


# ------------------------------------------------------------ checkpoint files --

_CHECKPOINT_RE = re.compile(r"checkpoint_process_(\d+)_step_(\d+)\.json")


def checkpoint_path(output_dir: str, process_index: int, step: int) -> str:
    """Process `process_index`'s checkpoint at `step`."""
    return os.path.join(output_dir, f"checkpoint_process_{int(process_index)}_step_{int(step)}.json")


def list_checkpoints(output_dir: str) -> dict[int, list[int]]:
    """{process: ascending steps} of the checkpoint files in `output_dir`."""
    found: dict[int, list[int]] = {}
    try:
        names = os.listdir(output_dir)
    except FileNotFoundError:
        return found
    for name in names:
        m = _CHECKPOINT_RE.fullmatch(name)
        if m:
            found.setdefault(int(m.group(1)), []).append(int(m.group(2)))
    return {p: sorted(steps) for p, steps in sorted(found.items())}


def common_step(held: Sequence[Sequence[int]]) -> int | None:
    """The largest step every process holds a checkpoint of (None: start afresh)."""
    if not held:
        return None
    common = set(held[0])
    for steps in held[1:]:
        common &= set(steps)
    return max(common) if common else None


# ------------------------------------------------------------ search --

@dataclasses.dataclass
class MigrationRecord:
    """One arrival: global island `source`'s best went into global island
    `destination` (held by this process) at `slot`."""

    step: int
    source: int
    destination: int
    slot: int
    fitness: float
    digest: str


class DistributedIslands:
    """Regularized evolution on this process's islands, with cross-process
    ring migration (see the module docstring for the rules).

    searchers: one single-island `RegularizedEvolution` per local island, in
      `local_islands(process_index, num_processes, num_islands)` order.
    allgather: the exchange (`jax_allgather` across processes, default
      `local_allgather`, which needs num_processes == 1).
    log: progress lines (the caller prefixes the process index).
    """

    def __init__(self, searchers: Sequence[RegularizedEvolution], *, process_index: int, num_processes: int,
                 num_islands: int, migration_every: int, allgather: Allgather = local_allgather,
                 log: Callable[[str], None] | None = None):
        self.islands = local_islands(process_index, num_processes, num_islands)
        if len(searchers) != len(self.islands):
            raise ValueError(f"process {process_index} of {num_processes} holds islands {self.islands}: "
                             f"needs {len(self.islands)} searchers, got {len(searchers)}")
        for s in searchers:
            if s.config.num_islands != 1:
                raise ValueError("each searcher runs one island (EvolutionConfig.num_islands = 1)")
        self.searchers = list(searchers)
        self.process_index, self.num_processes, self.num_islands = process_index, num_processes, num_islands
        self.migration_every = int(migration_every)
        self.allgather = allgather
        self.log = log or (lambda _line: None)
        self.slots = -(-num_islands // num_processes)  # the most islands any process holds
        self.migrations = 0  # migration rounds done
        self.arrivals: list[MigrationRecord] = []

    def init(self, seed: int) -> list[EvolutionState]:
        return [s.init(island_seed(seed, g, "evolution")) for s, g in zip(self.searchers, self.islands, strict=True)]

    def step(self, states: Sequence[EvolutionState]) -> list[EvolutionState]:
        states = [s.step(st) for s, st in zip(self.searchers, states, strict=True)]
        steps = self._num_steps(states)
        if self.num_islands > 1 and self.migration_every and steps % self.migration_every == 0:
            self.migrate(states)
        return states

    def run(self, states: Sequence[EvolutionState], steps: int) -> list[EvolutionState]:
        states = list(states)
        for _ in range(steps):
            states = self.step(states)
        return states

    def _num_steps(self, states: Sequence[EvolutionState]) -> int:
        # Every process steps in lockstep, so a process without islands counts its own steps.
        if states:
            return states[0].num_steps
        self._empty_steps = getattr(self, "_empty_steps", 0) + 1
        return self._empty_steps

    def to_state(self, states: Sequence[EvolutionState]) -> dict[str, Any]:
        """This process's part of a checkpoint (JSON-able): its islands'
        states, its evaluators' states, the migrations done."""
        return {"islands": list(self.islands), "migrations": self.migrations,
                "empty_steps": getattr(self, "_empty_steps", 0),
                "states": [evolution_state.state_to_dict(st) for st in states],
                "evaluators": [s.evaluator.to_state() for s in self.searchers]}

    def load_state(self, data: dict[str, Any]) -> list[EvolutionState]:
        """Restores `to_state()`'s snapshot into this object's evaluators;
        the islands' states to continue from."""
        if list(data["islands"]) != self.islands:
            raise ValueError(f"the checkpoint holds islands {data['islands']}, this process {self.islands}")
        for searcher, saved in zip(self.searchers, data["evaluators"], strict=True):
            searcher.evaluator.load_state(saved)
        self.migrations = int(data["migrations"])
        self._empty_steps = int(data["empty_steps"])
        return [evolution_state.state_from_dict(d) for d in data["states"]]

    def gather_bests(self, states: Sequence[EvolutionState]) -> tuple[pa.ProgramArrays, np.ndarray]:
        """Every global island's best (program batch in global island order,
        fitnesses): the same on every process."""
        local = [best_index(st.islands[0].fitnesses) for st in states]
        programs = [pa.take(st.islands[0].programs, [i]) for st, i in zip(states, local, strict=True)]
        fits = np.asarray([st.islands[0].fitnesses[i] for st, i in zip(states, local, strict=True)], np.float64)
        mine = np.zeros(_COMPONENTS, np.int32)
        for p in programs:
            mine = np.maximum(mine, np.asarray(p.capacities, np.int32))
        caps = tuple(int(c) for c in self.allgather(mine).max(axis=0))
        batch = pa.concatenate(programs) if programs else None
        gathered = self.allgather(encode_rows(batch, fits, self.slots, caps))  # (N, slots, row)
        if gathered.shape[0] != self.num_processes:
            raise RuntimeError(f"the all-gather returned {gathered.shape[0]} processes' rows, "
                               f"expected {self.num_processes}")
        rows = np.stack([gathered[owner(g, self.num_processes), g // self.num_processes]
                         for g in range(self.num_islands)])
        programs_all, fitnesses, valid = decode_rows(rows, caps)
        if not valid.all():
            raise RuntimeError(f"islands {np.flatnonzero(~valid).tolist()} sent no best: the processes disagree "
                               "on the island layout")
        return programs_all, fitnesses

    def migrate(self, states: Sequence[EvolutionState]) -> None:
        """Global ring migration in place (all bests taken before any insert)."""
        programs, fitnesses = self.gather_bests(states)
        g_count = self.num_islands
        for g in self.islands:
            self.log(f"migration {self.migrations + 1}: island {g} sends its best, fitness={fitnesses[g]:.6f}, "
                     f"program={program_digest(pa.to_algorithms(pa.take(programs, [g]))[0])}")
        for searcher, state, dst in zip(self.searchers, states, self.islands, strict=True):
            src = (dst - 1) % g_count
            migrant = pa.take(programs, [src])
            island = state.islands[0]
            slot = island.next_slot
            island.programs = pa.assign(island.programs, [slot], migrant)
            fit = float(fitnesses[src])
            if searcher.island_tasks is not None:  # different tasks: the destination's fitness
                fit = float(searcher._evaluate(migrant, [0])[0])
            island.fitnesses[slot] = fit
            island.next_slot = (slot + 1) % island.size
            record = MigrationRecord(step=state.num_steps, source=src, destination=dst, slot=slot, fitness=fit,
                                     digest=program_digest(pa.to_algorithms(migrant)[0]))
            self.arrivals.append(record)
            self.log(f"migration {self.migrations + 1} (step {record.step}): island {src} (process "
                     f"{owner(src, self.num_processes)}) -> island {dst} (process {self.process_index}) slot "
                     f"{slot}, fitness={fit:.6f}, program={record.digest}")
        self.migrations += 1
