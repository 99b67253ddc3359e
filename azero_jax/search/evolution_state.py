"""The evolution search state as a value, and its checkpoint form.

The search state is an explicit value (`EvolutionState`: populations,
fitnesses, next-slot cursors, counters and the NumPy generator's state), and
`RegularizedEvolution.step` (evolution.py) maps one state to the next. That
makes a run reproducible from its seed, checkpointable at any step, and
testable. This module holds the state's types, the copy / resume of the
generator's state, and the state <-> JSON dict conversion of checkpoints.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from azero_jax import program_arrays as pa
from azero_jax import serialization
from azero_jax.checkpoint import array_from_json, array_to_json
from azero_jax.program import Algorithm


@dataclasses.dataclass
class Island:
    """One population as a circular buffer: `next_slot` holds the oldest.
    The programs are held as arrays (`ProgramArrays`, the search's hot-path
    form); `program(i)` / `algorithms()` give them as `Algorithm`s."""

    programs: pa.ProgramArrays
    fitnesses: np.ndarray
    next_slot: int = 0

    def __post_init__(self):
        if not isinstance(self.programs, pa.ProgramArrays):
            self.programs = pa.from_algorithms(list(self.programs))

    @property
    def size(self) -> int:
        return self.programs.batch

    def program(self, i: int) -> Algorithm:
        return pa.to_algorithms(pa.take(self.programs, [i]))[0]

    def algorithms(self) -> list[Algorithm]:
        return pa.to_algorithms(self.programs)

    def copy(self) -> Island:
        return Island(pa.copy(self.programs), self.fitnesses.copy(), self.next_slot)


@dataclasses.dataclass
class EvolutionState:
    islands: list[Island]
    rng_state: dict[str, Any]
    num_individuals: int = 0
    num_steps: int = 0
    best_program: Algorithm | None = None  # best ever evaluated (random search's result)
    best_fitness: float = -math.inf
    last_progress: int | None = None  # num_individuals at the last progress line

    def copy(self) -> EvolutionState:
        return dataclasses.replace(self, islands=[i.copy() for i in self.islands],
                                   rng_state=copy_rng_state(self.rng_state))


def copy_rng_state(state: dict[str, Any]) -> dict[str, Any]:
    """Deep copy of a `bit_generator.state` dict, so saved states never alias live ones."""
    return {k: (copy_rng_state(v) if isinstance(v, dict) else v) for k, v in state.items()}


def make_rng(state: dict[str, Any]) -> np.random.Generator:
    """A Generator resumed from `rng.bit_generator.state`."""
    bit_gen = getattr(np.random, state["bit_generator"])()
    bit_gen.state = state
    return np.random.Generator(bit_gen)


# ------------------------------------------------------- checkpoints --

def state_to_dict(state: EvolutionState) -> dict[str, Any]:
    """JSON-friendly checkpoint of the state: each island's program arrays
    and fitnesses bit for bit (`checkpoint.array_to_json`; capacities and
    padding included), the best program in the package's JSON program form.
    (Programs as JSON dicts, the older form that `state_from_dict` still
    reads, took ~0.27 s per checkpoint of a demo population of 1000.)"""
    return {
        "islands": [{"programs": [[array_to_json(a) for a in (c.ints, c.floats, c.lengths)] for c in isl.programs],
                     "fitnesses": array_to_json(isl.fitnesses), "next_slot": int(isl.next_slot)}
                    for isl in state.islands],
        "rng_state": jsonable(state.rng_state),
        "num_individuals": state.num_individuals,
        "num_steps": state.num_steps,
        "best_program": None if state.best_program is None else serialization.algorithm_to_dict(state.best_program),
        "best_fitness": state.best_fitness if math.isfinite(state.best_fitness) else None,
        "last_progress": state.last_progress,
    }


def _island_from_dict(data: dict[str, Any]) -> Island:
    programs, fitnesses = data["programs"], data["fitnesses"]
    if programs and isinstance(programs[0], list):  # arrays (this version)
        arrays = pa.ProgramArrays(*[pa.ComponentCode(*[array_from_json(a) for a in code]) for code in programs])
    else:  # JSON program dicts (checkpoints written before)
        arrays = [serialization.algorithm_from_dict(p) for p in programs]
    values = array_from_json(fitnesses) if isinstance(fitnesses, dict) else np.asarray(fitnesses, dtype=np.float64)
    return Island(arrays, values, int(data["next_slot"]))


def state_from_dict(data: dict[str, Any]) -> EvolutionState:
    return EvolutionState(
        islands=[_island_from_dict(isl) for isl in data["islands"]],
        rng_state=copy_rng_state(data["rng_state"]),
        num_individuals=int(data["num_individuals"]),
        num_steps=int(data["num_steps"]),
        best_program=None if data["best_program"] is None else serialization.algorithm_from_dict(data["best_program"]),
        best_fitness=-math.inf if data["best_fitness"] is None else float(data["best_fitness"]),
        last_progress=data.get("last_progress"),
    )


def jsonable(value: Any) -> Any:
    """NumPy scalars in nested dicts/lists to plain Python, for json.dump."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, np.integer):
        return int(value)
    return value
