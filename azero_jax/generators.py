"""Random instructions and programs (reference `SetOpAndRandomizeParams`, §4)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from azero_jax import ops as ops_lib
from azero_jax.program import COMPONENTS, Algorithm, Instruction, MemoryShape


def uniform_int(rng: np.random.Generator, low: int, high: int) -> int:
    """Uniform integer in [low, high) from one `rng.random()` draw: ~4x
    cheaper than `rng.integers` (a search makes dozens of draws per child),
    and just as reproducible from the generator's state."""
    return min(low + int((high - low) * rng.random()), high - 1)


def uniform_float(rng: np.random.Generator, low: float, high: float) -> float:
    """Exactly `rng.uniform(low, high)` (NumPy computes low + (high - low) *
    random()), without its per-call overhead."""
    return low + (high - low) * rng.random()


def random_address(rng: np.random.Generator, kind: str, memory: MemoryShape, *, output: bool) -> int:
    """Input addresses are uniform over [0, size); outputs over
    [RANDOM_OUT_ADDRESS_MIN, size) so random code never writes s0 or v0."""
    low = ops_lib.RANDOM_OUT_ADDRESS_MIN[kind] if output else 0
    size = memory.size(kind)
    if size <= low:
        raise ValueError(f"memory has no {ops_lib.KIND_NAMES[kind]} address a random instruction may write")
    return uniform_int(rng, low, size)


def random_constant(rng: np.random.Generator, low: float, high: float) -> float:
    return uniform_float(rng, low, high)


def random_instruction(rng: np.random.Generator, op: int, memory: MemoryShape) -> Instruction:
    """A fresh instruction of op `op` with random addresses and constants,
    drawn in the reference's order (in1, in2, out, then constants)."""
    spec = ops_lib.get_op(op)
    fields: dict[str, float | int] = {}
    if spec.in1 is not None:
        fields["in1"] = random_address(rng, spec.in1, memory, output=False)
    if spec.in2 is not None:
        fields["in2"] = random_address(rng, spec.in2, memory, output=False)
    if spec.out is not None:
        fields["out"] = random_address(rng, spec.out, memory, output=True)
    for name, low, high in spec.randomize:
        fields[name] = random_constant(rng, low, high)
    return Instruction(spec.id, **fields)


def random_component(rng: np.random.Generator, allowed_ops: Sequence[int], size: int,
                     memory: MemoryShape) -> tuple[Instruction, ...]:
    if size and not allowed_ops:
        raise ValueError("a non-empty component function needs at least one allowed op")
    return tuple(random_instruction(rng, int(allowed_ops[uniform_int(rng, 0, len(allowed_ops))]), memory)
                 for _ in range(size))


def random_algorithm(rng: np.random.Generator, memory: MemoryShape,
                     ops: dict[str, Sequence[int]], sizes: dict[str, int]) -> Algorithm:
    """Reference RANDOM_ALGORITHM: each component of the given size filled with
    random instructions over that component's allowed ops."""
    return Algorithm(**{c: random_component(rng, ops[c], sizes[c], memory) for c in COMPONENTS})
