"""A batch of programs held as padded NumPy arrays: the search's hot-path form.

One job: hold B programs per component function as ``ints`` (B, L_c, 4) int32
(op, in1, in2, out; NO_OP = all-zero padding), ``floats`` (B, L_c, 4) float64
(d, f0, f1, f2; f0-f2 hold the float32-representable values exactly as
`Instruction` stores them) and ``lengths`` (B,) int32, and convert at the
edges: `from_algorithms` / `to_algorithms` (exact round trip, NaN, inf and -0
included), `take` / `concatenate` / `assign` (selection, merging, population
slots). `jax_eval.compile_programs` packs a batch for the interpreter (a
transpose); `Programs` is what evaluators accept: a list of `Algorithm`s or a
`ProgramArrays` (`as_algorithms`, `select`, `count` work on both).

Why (tools/benchmark_mutation.py, 2-core CPU): building children as
`Instruction` / `Algorithm` objects costs ~22 us per random instruction, and
packing them for the interpreter (`compile_programs`) 15-25 us per child
(demo 17.4 at 250 children per step, baseline 14.7 / 24 at 100 / 10); from
arrays, `compile_programs` gives the same `CompiledBatch` at 0.3 us per child
(demo; a transpose into the padded buffer, ~25 us per call), and selection is
one fancy index.

L_c is a capacity: `from_algorithms` uses max(capacity, longest program);
`ArrayMutator` keeps it and grows it only when a child needs more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from azero_jax import ops as ops_lib
from azero_jax.program import COMPONENTS, Algorithm, Instruction, MemoryShape, ProgramError, addresses_out_of_range

_INT32_MAX = int(np.iinfo(np.int32).max)


class ComponentCode(NamedTuple):
    """One component function of B programs."""

    ints: np.ndarray  # (B, L, 4) int32: op, in1, in2, out
    floats: np.ndarray  # (B, L, 4) float64: d, f0, f1, f2
    lengths: np.ndarray  # (B,) int32 true lengths

    @property
    def capacity(self) -> int:
        return int(self.ints.shape[1])


class ProgramArrays(NamedTuple):
    """B programs: one `ComponentCode` per component (setup, predict, learn)."""

    setup: ComponentCode
    predict: ComponentCode
    learn: ComponentCode

    @property
    def batch(self) -> int:
        return int(self.setup.lengths.shape[0])

    def component(self, name: str) -> ComponentCode:
        return getattr(self, name)

    @property
    def capacities(self) -> tuple[int, int, int]:
        return tuple(c.capacity for c in self)  # type: ignore[return-value]

    @property
    def sizes(self) -> np.ndarray:
        """(B, 3) int: every program's component sizes."""
        return np.stack([c.lengths for c in self], axis=1)


# ------------------------------------------------------------ edges --

def _capacities(capacity: int | Sequence[int] | None) -> tuple[int, int, int]:
    if capacity is None:
        return (0, 0, 0)
    if isinstance(capacity, (int, np.integer)):
        return (int(capacity),) * 3  # type: ignore[return-value]
    values = tuple(int(c or 0) for c in capacity)
    if len(values) != 3:
        raise ValueError(f"capacity needs one value per component (setup, predict, learn), got {capacity!r}")
    return values  # type: ignore[return-value]


def empty(batch: int, capacity: int | Sequence[int] | None = None) -> ProgramArrays:
    """B empty programs (all lengths 0)."""
    caps = _capacities(capacity)
    return ProgramArrays(*(ComponentCode(np.zeros((batch, cap, 4), np.int32), np.zeros((batch, cap, 4), np.float64),
                                         np.zeros((batch,), np.int32)) for cap in caps))


def from_algorithms(programs: Sequence[Algorithm], capacity: int | Sequence[int] | None = None) -> ProgramArrays:
    """Packs `programs`; each component's L is max(capacity, longest program)."""
    n = len(programs)
    caps = _capacities(capacity)
    comps = []
    for comp, cap in zip(COMPONENTS, caps, strict=True):
        codes = [a.component(comp) for a in programs]
        lengths = np.array([len(code) for code in codes], dtype=np.int64).reshape(n)
        cap = max(cap, int(lengths.max(initial=0)))
        ints = np.zeros((n, cap, 4), np.int32)
        floats = np.zeros((n, cap, 4), np.float64)
        instrs = [instr for code in codes for instr in code]
        if instrs:
            table = np.array([(i.op, i.in1, i.in2, i.out) for i in instrs], dtype=np.int64)
            if table.max() > _INT32_MAX:
                raise ProgramError(f"{comp}: an address exceeds the int32 range of the packed arrays")
            row = np.repeat(np.arange(n), lengths)
            pos = np.arange(len(instrs)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            ints[row, pos] = table
            floats[row, pos] = np.array([(i.d, i.f0, i.f1, i.f2) for i in instrs], dtype=np.float64)
        comps.append(ComponentCode(ints, floats, lengths.astype(np.int32)))
    return ProgramArrays(*comps)


def _instruction(op: int, in1: int, in2: int, out: int, d: float, f0: float, f1: float, f2: float) -> Instruction:
    """An Instruction from canonical values (Python int / float), unchecked."""
    instr = object.__new__(Instruction)
    instr.__dict__.update(op=op, in1=in1, in2=in2, out=out, d=d, f0=f0, f1=f1, f2=f2)
    return instr


def _algorithm(setup: tuple, predict: tuple, learn: tuple) -> Algorithm:
    algorithm = object.__new__(Algorithm)
    object.__setattr__(algorithm, "setup", setup)
    object.__setattr__(algorithm, "predict", predict)
    object.__setattr__(algorithm, "learn", learn)
    return algorithm


def to_algorithms(arrays: ProgramArrays) -> list[Algorithm]:
    """The `Algorithm`s of the batch (exactly the packed values). Raises
    ProgramError for an unknown op id or a negative address."""
    parts = []
    for comp in COMPONENTS:
        code = arrays.component(comp)
        real = np.arange(code.capacity)[None, :] < code.lengths[:, None]
        ints, floats = code.ints[real], code.floats[real]
        if ints.size and (ints[:, 0].min() < 0 or ints[:, 0].max() >= ops_lib.NUM_OPS or ints[:, 1:].min() < 0):
            raise ProgramError(f"{comp}: packed arrays hold an unknown op id or a negative address")
        instrs = [_instruction(*i, *f) for i, f in zip(ints.tolist(), floats.tolist(), strict=True)]
        ends = np.cumsum(code.lengths).tolist()
        parts.append([tuple(instrs[e - n:e]) for e, n in zip(ends, code.lengths.tolist(), strict=True)])
    return [_algorithm(*p) for p in zip(*parts, strict=True)]


# ------------------------------------------------------- selection --

def take(arrays: ProgramArrays, index) -> ProgramArrays:
    """The programs at `index` (an int array; repeats allowed), copied."""
    index = np.asarray(index, dtype=np.intp)
    return ProgramArrays(*(ComponentCode(c.ints[index], c.floats[index], c.lengths[index]) for c in arrays))


def with_capacity(arrays: ProgramArrays, capacity: int | Sequence[int]) -> ProgramArrays:
    """The same programs, each component padded to at least `capacity`."""
    caps = _capacities(capacity)
    comps = []
    for code, cap in zip(arrays, caps, strict=True):
        if cap <= code.capacity:
            comps.append(code)
            continue
        pad = ((0, 0), (0, cap - code.capacity), (0, 0))
        comps.append(ComponentCode(np.pad(code.ints, pad), np.pad(code.floats, pad), code.lengths))
    return ProgramArrays(*comps)


def concatenate(batches: Sequence[ProgramArrays]) -> ProgramArrays:
    """One batch from several (capacities padded to the largest)."""
    if not batches:
        raise ValueError("concatenate needs at least one batch")
    caps = tuple(max(b.capacities[i] for b in batches) for i in range(3))
    padded = [with_capacity(b, caps) for b in batches]
    return ProgramArrays(*(ComponentCode(*(np.concatenate([getattr(p, c)[f] for p in padded]) for f in range(3)))
                           for c in COMPONENTS))


def assign(dst: ProgramArrays, slots, src: ProgramArrays) -> ProgramArrays:
    """`dst` with rows `slots` replaced by `src`'s programs (in place when
    `dst`'s capacities hold them; else a grown copy). Returns the result."""
    if any(s > d for s, d in zip(src.capacities, dst.capacities, strict=True)):
        dst = with_capacity(dst, tuple(max(s, d) for s, d in zip(src.capacities, dst.capacities, strict=True)))
    slots = np.asarray(slots, dtype=np.intp)
    for d, s in zip(dst, src, strict=True):
        cap = s.capacity
        d.ints[slots, :cap], d.ints[slots, cap:] = s.ints, 0
        d.floats[slots, :cap], d.floats[slots, cap:] = s.floats, 0.0
        d.lengths[slots] = s.lengths
    return dst


def copy(arrays: ProgramArrays) -> ProgramArrays:
    return ProgramArrays(*(ComponentCode(c.ints.copy(), c.floats.copy(), c.lengths.copy()) for c in arrays))


# ------------------------------------------- either form (evaluators) --

Programs = Sequence[Algorithm] | ProgramArrays


def count(programs: Programs) -> int:
    return programs.batch if isinstance(programs, ProgramArrays) else len(programs)


def as_algorithms(programs: Programs) -> list[Algorithm]:
    return to_algorithms(programs) if isinstance(programs, ProgramArrays) else list(programs)


def select(programs: Programs, index) -> Programs:
    """The programs at `index` (int array), in the same form."""
    if isinstance(programs, ProgramArrays):
        return take(programs, index)
    return [programs[i] for i in np.asarray(index, dtype=np.intp).tolist()]


def check_memory(arrays: ProgramArrays, memory: MemoryShape) -> None:
    """Raises ProgramError if a real instruction addresses memory out of range."""
    for comp in COMPONENTS:
        code = arrays.component(comp)
        real = np.arange(code.capacity)[None, :] < code.lengths[:, None]
        ints = code.ints[real]
        bad = addresses_out_of_range(ints[:, 0], ints[:, 1:], memory)
        if bad.any():
            row = int(np.argwhere(bad)[0, 0])
            raise ProgramError(f"{comp}: instruction {ints[row].tolist()} addresses memory out of range for {memory}")
