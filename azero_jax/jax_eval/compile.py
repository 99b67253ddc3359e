"""Host-side compiler: programs -> fixed-shape padded arrays (NumPy only).

The JAX interpreter never sees Python objects. Each component function of a
batch of programs becomes integer fields ``(op, in1, in2, out)`` and float
fields ``(d, f0, f1, f2)`` of shape ``(length_bucket, 4, batch_bucket)``
(instruction-major, program axis last so that one instruction of every
program is one contiguous row). Lengths and batch sizes are rounded up to a
few buckets so that a whole search triggers only a handful of XLA
compilations; the true lengths travel with the arrays so the interpreter only
loops over the longest *real* component in the batch, and padding costs
(almost) nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from azero_jax import ops as ops_lib
from azero_jax.program import COMPONENTS, Algorithm, Instruction, MemoryShape, ProgramError, addresses_out_of_range
from azero_jax.program_arrays import ProgramArrays, take, to_algorithms

MIN_LENGTH_BUCKET = 8
MIN_BATCH_BUCKET = 8


class ComponentArrays(NamedTuple):
    """One component function of every program in the batch."""

    ints: np.ndarray  # (length_bucket, 4, batch) int32: op, in1, in2, out
    floats: np.ndarray  # (length_bucket, 4, batch) float64: d, f0, f1, f2
    lengths: np.ndarray  # (batch,) int32 true lengths (0 for padding programs)


class CompiledBatch(NamedTuple):
    """A padded batch of programs; `num_programs` of the `batch` rows are real."""

    setup: ComponentArrays
    predict: ComponentArrays
    learn: ComponentArrays
    num_programs: int

    @property
    def batch(self) -> int:
        return int(self.predict.lengths.shape[0])

    @property
    def length_buckets(self) -> tuple[int, int, int]:
        return tuple(int(getattr(self, c).ints.shape[0]) for c in COMPONENTS)  # type: ignore[return-value]


def length_bucket(n: int, minimum: int = MIN_LENGTH_BUCKET) -> int:
    """Next power of two >= max(n, minimum): 8, 16, 32, 64, ..."""
    b = max(int(minimum), 1)
    while b < n:
        b *= 2
    return b


def batch_bucket(n: int, multiple: int = 1, minimum: int = MIN_BATCH_BUCKET) -> int:
    """Smallest of {2^k, 3 * 2^(k-1)} >= n (<= 33% padding), rounded up to a
    multiple of `multiple` (the device count)."""
    b = max(int(minimum), 1)
    while True:
        if b >= n:
            break
        if b * 3 // 2 >= n and (b * 3) % 2 == 0:
            b = b * 3 // 2
            break
        b *= 2
    return -(-b // multiple) * multiple


def padded_batch_size(n: int, batch_multiple: int = 1, batch_size: int | None = None) -> int:
    """The padded batch of `n` programs: `batch_size` if given (checked: >= n,
    a multiple of `batch_multiple`), else `batch_bucket(n, batch_multiple)`."""
    if batch_size is None:
        return batch_bucket(n, batch_multiple)
    if batch_size < n or batch_size % batch_multiple:
        raise ValueError(f"batch_size={batch_size} must be >= {n} programs and a multiple of {batch_multiple}")
    return int(batch_size)


def _packed(instr: Instruction) -> tuple:
    """(op, in1, in2, out, d, f0, f1, f2), cached on the immutable instruction
    (children share most instruction objects with their parents)."""
    row = instr.__dict__.get("_packed_row")
    if row is None:
        row = (instr.op, instr.in1, instr.in2, instr.out, instr.d, instr.f0, instr.f1, instr.f2)
        object.__setattr__(instr, "_packed_row", row)
    return row


def _program_at(programs: Sequence[Algorithm] | ProgramArrays, index: int) -> Algorithm:
    if isinstance(programs, ProgramArrays):
        return to_algorithms(take(programs, [index]))[0]
    return programs[index]


def _check_component(programs: Sequence[Algorithm] | ProgramArrays, n: int, comp: str, ints: np.ndarray,
                     lengths: np.ndarray, allowed: frozenset[int] | None, memory: MemoryShape) -> None:
    """Raises ProgramError naming the first instruction with a disallowed op
    or an out-of-range address (ints: (L, 4, B) packed fields)."""
    real = np.arange(ints.shape[0])[:, None] < lengths[None, :n]  # (L, n)
    op = ints[:, 0, :n]
    bad = np.zeros(op.shape, dtype=bool)
    if allowed is not None:
        ok = np.zeros(ops_lib.NUM_OPS, dtype=bool)
        ok[list(allowed | {ops_lib.NO_OP_ID})] = True
        bad |= ~ok[op]
    bad |= addresses_out_of_range(op, np.moveaxis(ints[:, 1:4, :n], 1, 2), memory)  # addresses (L, n, 3)
    bad &= real
    if not bad.any():
        return
    index, pos = (int(v) for v in np.argwhere(bad.T)[0])  # first program, then its first position
    instr = _program_at(programs, index).component(comp)[pos]
    if allowed is not None and instr.op != ops_lib.NO_OP_ID and instr.op not in allowed:
        raise ProgramError(
            f"program {index}, {comp} instruction {pos}: op {ops_lib.OPS[instr.op].name} is not in "
            f"the {comp} op subset this batch was compiled for")
    spec = instr.spec
    for field, kind in (("in1", spec.in1), ("in2", spec.in2), ("out", spec.out)):
        if kind is not None and getattr(instr, field) >= memory.size(kind):
            raise ProgramError(
                f"program {index}, {comp} instruction {pos}: {field}={kind}{getattr(instr, field)} is out "
                f"of range (memory has {memory.size(kind)} {ops_lib.KIND_NAMES[kind]} addresses)")


def compile_programs(
    programs: Sequence[Algorithm] | ProgramArrays,
    memory: MemoryShape,
    *,
    op_subsets: dict[str, Sequence[int]] | None = None,
    batch_multiple: int = 1,
    batch_size: int | None = None,
    min_lengths: dict[str, int] | None = None,
) -> CompiledBatch:
    """Pads `programs` into a `CompiledBatch`.

    Args:
      programs: the algorithms (any lengths), or a `ProgramArrays` batch (the
        search's form: a transpose into the padded buffer, ~0.3 us per program
        on the demo against 15-25 us from `Algorithm` objects).
      memory: the memory shape; addresses are checked against it.
      op_subsets: per component, the op ids the interpreter is compiled with;
        a program using another op raises ProgramError.
      batch_multiple: the padded batch is a multiple of this (device count).
      batch_size: force this padded batch size (>= len(programs)).
      min_lengths: per component, a minimum length bucket (to pin buckets).
    """
    arrays = programs if isinstance(programs, ProgramArrays) else None
    n = arrays.batch if arrays is not None else len(programs)
    allowed = None if op_subsets is None else {c: frozenset(int(o) for o in op_subsets[c]) for c in COMPONENTS}
    batch = padded_batch_size(n, batch_multiple, batch_size)
    comps = {}
    for comp in COMPONENTS:
        min_length = (min_lengths or {}).get(comp, MIN_LENGTH_BUCKET)
        if arrays is not None:
            ints, floats, lengths = _pack_arrays(arrays.component(comp), n, batch, min_length)
        else:
            ints, floats, lengths = _pack_algorithms([a.component(comp) for a in programs], n, batch, min_length)
        _check_component(programs, n, comp, ints, lengths, allowed.get(comp) if allowed else None, memory)
        comps[comp] = ComponentArrays(ints, floats, lengths)
    return CompiledBatch(comps["setup"], comps["predict"], comps["learn"], n)


def _pack_arrays(code, n: int, batch: int, min_length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One packed component (`program_arrays.ComponentCode`, (n, L, 4)) in
    the (bucket, 4, batch) layout: a transpose into a zeroed buffer."""
    bucket = length_bucket(int(code.lengths.max(initial=0)), min_length)
    keep = min(bucket, code.capacity)
    ints = np.zeros((bucket, 4, batch), np.int32)
    floats = np.zeros((bucket, 4, batch), np.float64)
    ints[:keep, :, :n] = code.ints[:, :keep].transpose(1, 2, 0)
    floats[:keep, :, :n] = code.floats[:, :keep].transpose(1, 2, 0)
    lengths = np.zeros((batch,), np.int32)
    lengths[:n] = code.lengths
    return ints, floats, lengths


def _pack_algorithms(codes: Sequence[tuple[Instruction, ...]], n: int, batch: int,
                     min_length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One component of `Algorithm`s (its instruction tuples) in the same layout."""
    lengths = np.zeros((batch,), np.int32)
    lengths[:n] = [len(code) for code in codes]
    bucket = length_bucket(int(lengths.max(initial=0)), min_length)
    ints = np.zeros((bucket, 4, batch), np.int32)  # op 0 == NO_OP
    floats = np.zeros((bucket, 4, batch), np.float64)
    rows = [_packed(instr) for code in codes for instr in code]
    if rows:
        # One conversion for the whole component; ints are exact in float64.
        table = np.array(rows, dtype=np.float64)  # (N, 8)
        program = np.repeat(np.arange(n), lengths[:n])
        position = np.arange(len(rows)) - np.repeat(np.cumsum(lengths[:n]) - lengths[:n], lengths[:n])
        # Huge addresses saturate (still out of range for the check in compile_programs).
        ints[position, :, program] = np.minimum(table[:, :4], np.iinfo(np.int32).max).astype(np.int32)
        floats[position, :, program] = table[:, 4:]
    return ints, floats, lengths
