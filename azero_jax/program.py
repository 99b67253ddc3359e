"""Program model: instructions, component functions, algorithms, memory shape.

Plain host-side values (frozen dataclasses of tuples) so that programs hash,
compare, print and serialize cheaply; the JAX side only ever sees the padded
arrays produced by `azero_jax.jax_eval.compile`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from azero_jax import ops as ops_lib

COMPONENTS = ("setup", "predict", "learn")
COMPONENT_TITLES = {"setup": "Setup", "predict": "Predict", "learn": "Learn"}


class ProgramError(ValueError):
    """A program (or a piece of one) is malformed; the message names where."""


def to_float32(x: float) -> float:
    """The reference stores float data as float32; keep the value exactly."""
    if abs(x) >= _FLOAT32_OVERFLOW:  # explicit, so the hot path needs no np.errstate
        return math.copysign(math.inf, x)
    return float(np.float32(x))


# Half an ulp above the largest float32: from here on, rounding to float32 gives inf.
_FLOAT32_OVERFLOW = 3.4028235677973366e38


@dataclasses.dataclass(frozen=True)
class MemoryShape:
    """Numbers of scalar/vector/matrix addresses and the feature size F.

    The reference fixes S, V, M at compile time (20/20/20 by default, 4/3/1 for
    the demo, 5/9/2 for the baseline) and F to {2, 4, 8, 16, 32}; here all four
    are run-time values and any F >= 1 works.
    """

    scalars: int = 20
    vectors: int = 20
    matrices: int = 20
    features: int = 4

    def __post_init__(self):
        for name, low in (("scalars", 2), ("vectors", 1), ("matrices", 0), ("features", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ProgramError(f"MemoryShape.{name} must be an integer >= {low}, got {value!r}")
            object.__setattr__(self, name, int(value))

    def size(self, kind: str) -> int:
        if kind == ops_lib.SCALAR:
            return self.scalars
        if kind == ops_lib.VECTOR:
            return self.vectors
        if kind == ops_lib.MATRIX:
            return self.matrices
        raise KeyError(kind)

    def with_features(self, features: int) -> MemoryShape:
        return dataclasses.replace(self, features=features)


# Per op id: the kind code of in1, in2 and out (0: the operand is unused; 1,
# 2, 3: scalar, vector, matrix), so packed programs are checked against a
# memory shape in a few array operations (`addresses_out_of_range`).
_KIND_CODE = {None: 0, ops_lib.SCALAR: 1, ops_lib.VECTOR: 2, ops_lib.MATRIX: 3}
OPERAND_KIND_CODES = np.array([[_KIND_CODE[o.in1], _KIND_CODE[o.in2], _KIND_CODE[o.out]] for o in ops_lib.OPS],
                              dtype=np.int64)


def addresses_out_of_range(op_ids: np.ndarray, addresses: np.ndarray, memory: MemoryShape) -> np.ndarray:
    """Bool mask (shape of `op_ids`) of packed instructions that address
    memory beyond `memory`: `addresses[..., :]` are (in1, in2, out); operands
    an op does not use are ignored."""
    limits = np.array([np.iinfo(np.int64).max, memory.scalars, memory.vectors, memory.matrices], dtype=np.int64)
    return (np.asarray(addresses) >= limits[OPERAND_KIND_CODES[op_ids]]).any(axis=-1)


@dataclasses.dataclass(frozen=True)
class Instruction:
    """One instruction: op id, addresses and constants (reference §2).

    Unused fields are 0. `d` is the double "activation data" (scalar const-set);
    `f0`, `f1`, `f2` are float32 "float data" (indices as fractions in [0, 1),
    set values, distribution parameters).
    """

    op: int
    in1: int = 0
    in2: int = 0
    out: int = 0
    d: float = 0.0
    f0: float = 0.0
    f1: float = 0.0
    f2: float = 0.0

    def __post_init__(self):
        op = int(self.op) if isinstance(self.op, np.integer) else self.op
        try:
            object.__setattr__(self, "op", ops_lib.get_op(op).id)
        except ValueError as e:
            raise ProgramError(f"field op: {e}") from None
        for field in ("in1", "in2", "out"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ProgramError(f"field {field} must be a non-negative integer address, got {value!r}")
            object.__setattr__(self, field, int(value))
        for field in ops_lib.CONST_FIELDS:
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise ProgramError(f"field {field} must be a number, got {value!r}")
            try:
                value = float(value)
            except OverflowError:
                raise ProgramError(f"field {field}={value!r} does not fit a double") from None
            if field != "d":
                stored = to_float32(value)
                if math.isinf(stored) and math.isfinite(value):
                    raise ProgramError(f"field {field}={value!r} does not fit a float32 (|x| <= 3.4028235e38)")
                value = stored
            object.__setattr__(self, field, value)

    @property
    def spec(self) -> ops_lib.Op:
        return ops_lib.OPS[self.op]

    def constants(self) -> dict[str, float]:
        return {f: getattr(self, f) for f in self.spec.consts}

    def same_as(self, other: Instruction, tol: float = 1e-5) -> bool:
        """The reference's instruction equality (constants within 1e-5)."""
        if (self.op, self.in1, self.in2, self.out) != (other.op, other.in1, other.in2, other.out):
            return False
        return all(
            abs(getattr(self, f) - getattr(other, f)) < tol
            or (math.isnan(getattr(self, f)) and math.isnan(getattr(other, f)))
            for f in ops_lib.CONST_FIELDS
        )


NO_OP = Instruction(ops_lib.NO_OP_ID)


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """Three component functions: Setup, Predict, Learn (tuples of instructions)."""

    setup: tuple[Instruction, ...] = ()
    predict: tuple[Instruction, ...] = ()
    learn: tuple[Instruction, ...] = ()

    def __post_init__(self):
        for name in COMPONENTS:
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)):
                raise ProgramError(f"{COMPONENT_TITLES[name]} must be a list of instructions, got {type(value).__name__}")
            for i, instr in enumerate(value):
                if not isinstance(instr, Instruction):
                    raise ProgramError(f"{COMPONENT_TITLES[name]} instruction {i}: not an Instruction ({instr!r})")
            object.__setattr__(self, name, tuple(value))

    def component(self, name: str) -> tuple[Instruction, ...]:
        return getattr(self, name)

    def replace(self, **components) -> Algorithm:
        return dataclasses.replace(self, **components)

    @property
    def sizes(self) -> tuple[int, int, int]:
        return (len(self.setup), len(self.predict), len(self.learn))

    def ops_used(self) -> set[int]:
        return {instr.op for name in COMPONENTS for instr in self.component(name)}


def validate_instruction(instr: Instruction, memory: MemoryShape, where: str = "instruction") -> None:
    """Raises ProgramError naming `where` and the bad field if an address is out
    of range for `memory` or a constant is out of its domain."""
    spec = instr.spec
    for field, kind in (("in1", spec.in1), ("in2", spec.in2), ("out", spec.out)):
        address = getattr(instr, field)
        if kind is None:
            if address != 0:
                raise ProgramError(f"{where}: field {field}={address} is not used by {spec.name} and must be 0")
            continue
        size = memory.size(kind)
        if address >= size:
            raise ProgramError(
                f"{where}: field {field}={kind}{address} is out of range for {spec.name}: "
                f"memory has {size} {ops_lib.KIND_NAMES[kind]} addresses ({kind}0..{kind}{size - 1})"
            )
    for field in ops_lib.CONST_FIELDS:
        value = getattr(instr, field)
        if field not in spec.consts:
            if value != 0.0:
                raise ProgramError(f"{where}: constant {field}={value!r} is not used by {spec.name} and must be 0")
            continue
    for field in spec.consts[:spec.index_consts]:
        value = getattr(instr, field)
        # [0, 1]: a fraction just below 1 prints as "1" in the reference's 6-digit form.
        if not 0.0 <= value <= 1.0:
            raise ProgramError(
                f"{where}: element index {field}={value!r} of {spec.name} must be a fraction in [0, 1] "
                "(the element is int(F * fraction), at most F - 1)"
            )


def validate_algorithm(algorithm: Algorithm, memory: MemoryShape) -> Algorithm:
    """Validates every instruction against `memory`; returns the algorithm."""
    for name in COMPONENTS:
        for i, instr in enumerate(algorithm.component(name)):
            validate_instruction(instr, memory, where=f"{COMPONENT_TITLES[name]} instruction {i}")
    return algorithm


def make_instruction(op: int | str, *, in1: int = 0, in2: int = 0, out: int = 0, **consts) -> Instruction:
    """Convenience constructor that names the op by id or reference name."""
    return Instruction(ops_lib.get_op(op).id, in1=in1, in2=in2, out=out, **consts)


def required_memory(algorithm: Algorithm) -> MemoryShape:
    """The smallest memory shape (with F=1) in which `algorithm` is valid."""
    need = {ops_lib.SCALAR: 2, ops_lib.VECTOR: 1, ops_lib.MATRIX: 0}
    for name in COMPONENTS:
        for instr in algorithm.component(name):
            spec = instr.spec
            for field, kind in (("in1", spec.in1), ("in2", spec.in2), ("out", spec.out)):
                if kind is not None:
                    need[kind] = max(need[kind], getattr(instr, field) + 1)
    return MemoryShape(need["s"], need["v"], need["m"], 1)
