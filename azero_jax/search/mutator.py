"""The reference Mutator (spec §4, §12) and the initial-population generator (§13).

Host-side, plain Python: a mutation touches one instruction or one component
function, so there is nothing to vectorize. Every random draw comes from the
`np.random.Generator` passed in, so a search is reproducible from its seed
(the numbers differ from the C++ mt19937/abseil streams; the rules do not).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np

from azero_jax import generators
from azero_jax import ops as ops_lib
from azero_jax import programs as programs_lib
from azero_jax.generators import uniform_float, uniform_int
from azero_jax.program import COMPONENTS, NO_OP, Algorithm, Instruction, MemoryShape

# Mutation types, in the reference's enum order (`mutator.proto`): the list
# index is the reference id.
ALTER_PARAM = "ALTER_PARAM"
RANDOMIZE_INSTRUCTION = "RANDOMIZE_INSTRUCTION"
RANDOMIZE_COMPONENT_FUNCTION = "RANDOMIZE_COMPONENT_FUNCTION"
IDENTITY = "IDENTITY"
INSERT_INSTRUCTION = "INSERT_INSTRUCTION"
REMOVE_INSTRUCTION = "REMOVE_INSTRUCTION"
TRADE_INSTRUCTION = "TRADE_INSTRUCTION"
RANDOMIZE_ALGORITHM = "RANDOMIZE_ALGORITHM"
MUTATION_TYPES = (
    ALTER_PARAM, RANDOMIZE_INSTRUCTION, RANDOMIZE_COMPONENT_FUNCTION, IDENTITY,
    INSERT_INSTRUCTION, REMOVE_INSTRUCTION, TRADE_INSTRUCTION, RANDOMIZE_ALGORITHM,
)

# The reference's `kSignFlipProb`.
SIGN_FLIP_PROB = 0.1

# The demo's mutation types (spec §16).
DEMO_MUTATION_TYPES = (ALTER_PARAM, RANDOMIZE_INSTRUCTION, RANDOMIZE_COMPONENT_FUNCTION)

# Initial-population kinds (reference `HardcodedAlgorithmID`, spec §13).
INITIAL_KINDS = ("noop", "random", "linear", "neural_net", "damaged_neural_net")
_INITIAL_ALIASES = {
    "NO_OP_ALGORITHM": "noop", "RANDOM_ALGORITHM": "random", "LINEAR_ALGORITHM": "linear",
    "NEURAL_NET_ALGORITHM": "neural_net", "INTEGRATION_TEST_DAMAGED_NEURAL_NET_ALGORITHM": "damaged_neural_net",
    "no_op": "noop", "nn": "neural_net",
}


def parse_mutation_type(value: str | int) -> str:
    """Canonical mutation-type name from a name (with or without the
    reference's ``_MUTATION_TYPE`` suffix, any case) or a reference id 0-7."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if not 0 <= value < len(MUTATION_TYPES):
            raise ValueError(f"unknown mutation type id {value!r}; ids are 0..{len(MUTATION_TYPES) - 1}")
        return MUTATION_TYPES[int(value)]
    key = str(value).strip().upper()
    key = key.removesuffix("_MUTATION_TYPE")
    if key not in MUTATION_TYPES:
        raise ValueError(f"unknown mutation type {value!r}; use one of: {', '.join(MUTATION_TYPES)}")
    return key


def parse_initial_kind(value: str) -> str:
    """Canonical initial-population kind from a short or reference enum name."""
    key = str(value).strip()
    key = _INITIAL_ALIASES.get(key.upper(), _INITIAL_ALIASES.get(key.lower(), key.lower()))
    if key not in INITIAL_KINDS:
        raise ValueError(f"unknown initial population {value!r}; use one of: {', '.join(INITIAL_KINDS)}")
    return key


def _three_ints(name: str, values: Sequence[int | None], allow_none: bool) -> tuple:
    values = tuple(values)
    if len(values) != 3:
        raise ValueError(f"MutatorConfig.{name} needs three values (setup, predict, learn), got {values!r}")
    out = []
    for v in values:
        if v is None and allow_none:
            out.append(None)
            continue
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"MutatorConfig.{name} values must be non-negative integers, got {values!r}")
        out.append(int(v))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class MutatorConfig:
    """What the Mutator may do (reference `SearchExperimentSpec` fields).

    `size_max` follows the reference rule "insert only if size < max - 1"; a
    max of None (or 0, the proto default, which the C++ unsigned comparison
    turns into "no limit") means unbounded. An empty op list freezes that
    component (it is never chosen for mutation).
    """

    memory: MemoryShape
    setup_ops: tuple[int, ...] = ()
    predict_ops: tuple[int, ...] = ()
    learn_ops: tuple[int, ...] = ()
    mutation_types: tuple[str, ...] = DEMO_MUTATION_TYPES
    mutate_prob: float = 0.9
    size_min: tuple[int, int, int] = (0, 0, 0)
    size_max: tuple[int | None, int | None, int | None] = (None, None, None)

    def __post_init__(self):
        if not isinstance(self.memory, MemoryShape):
            raise ValueError(f"MutatorConfig.memory must be a MemoryShape, got {self.memory!r}")
        for c in COMPONENTS:
            object.__setattr__(self, f"{c}_ops", ops_lib.resolve_op_ids(getattr(self, f"{c}_ops")))
        types = tuple(parse_mutation_type(t) for t in self.mutation_types)
        if not types:
            raise ValueError("MutatorConfig.mutation_types must not be empty")
        object.__setattr__(self, "mutation_types", types)
        p = float(self.mutate_prob)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"MutatorConfig.mutate_prob must lie in [0, 1], got {self.mutate_prob!r}")
        object.__setattr__(self, "mutate_prob", p)
        object.__setattr__(self, "size_min", _three_ints("size_min", self.size_min, False))
        object.__setattr__(self, "size_max", _three_ints("size_max", self.size_max, True))
        if not any(self.ops(c) for c in COMPONENTS):
            raise ValueError("MutatorConfig needs a non-empty op list for at least one component")
        # Fail early if some allowed op has no writable output address in `memory`.
        for c in COMPONENTS:
            for op in self.ops(c):
                spec = ops_lib.OPS[op]
                if spec.out is not None and self.memory.size(spec.out) <= ops_lib.RANDOM_OUT_ADDRESS_MIN[spec.out]:
                    raise ValueError(f"{spec.name} (allowed in {c}) has no writable output address in {self.memory}")

    def ops(self, component: str) -> tuple[int, ...]:
        return getattr(self, f"{component}_ops")

    @functools.cached_property
    def mutable_components(self) -> tuple[str, ...]:
        """Components with a non-empty allowed-op list, in reference order."""
        return tuple(c for c in COMPONENTS if self.ops(c))


# ------------------------------------------------------- fast paths --
# A search builds ~20 instructions per child; the validating constructors
# (Instruction.__post_init__, dataclasses.replace) cost ~20 us each, which
# made mutation the largest host-side cost. Everything built here is valid by
# construction (addresses drawn in range, constants already float32-rounded),
# so these skip the checks; the random draws are exactly those of
# `generators.random_instruction`, so the programs are identical.

_INSTRUCTION_FIELDS = ("op", "in1", "in2", "out", "d", "f0", "f1", "f2")


def _instruction(op: int, in1: int = 0, in2: int = 0, out: int = 0, d: float = 0.0, f0: float = 0.0,
                 f1: float = 0.0, f2: float = 0.0) -> Instruction:
    """An Instruction from already valid, canonical field values."""
    instr = object.__new__(Instruction)
    instr.__dict__.update(op=op, in1=in1, in2=in2, out=out, d=d, f0=f0, f1=f1, f2=f2)
    return instr


def _replace_instruction(instr: Instruction, **changes: float | int) -> Instruction:
    fields = {name: getattr(instr, name) for name in _INSTRUCTION_FIELDS}
    fields.update(changes)
    return _instruction(**fields)  # type: ignore[arg-type]


def _algorithm(setup: tuple[Instruction, ...], predict: tuple[Instruction, ...],
               learn: tuple[Instruction, ...]) -> Algorithm:
    algorithm = object.__new__(Algorithm)
    object.__setattr__(algorithm, "setup", setup)
    object.__setattr__(algorithm, "predict", predict)
    object.__setattr__(algorithm, "learn", learn)
    return algorithm


def _with_component(algorithm: Algorithm, component: str, code: tuple[Instruction, ...]) -> Algorithm:
    parts = {c: algorithm.component(c) for c in COMPONENTS}
    parts[component] = code
    return _algorithm(parts["setup"], parts["predict"], parts["learn"])


def random_instruction(rng: np.random.Generator, op: int, memory: MemoryShape) -> Instruction:
    """`generators.random_instruction` (same draws, same result), fast."""
    spec = ops_lib.OPS[op]
    fields: dict[str, float | int] = {}
    for name, kind, output in (("in1", spec.in1, False), ("in2", spec.in2, False), ("out", spec.out, True)):
        if kind is not None:
            low = ops_lib.RANDOM_OUT_ADDRESS_MIN[kind] if output else 0
            size = memory.size(kind)
            if size <= low:
                raise ValueError(f"memory has no {ops_lib.KIND_NAMES[kind]} address a random instruction may write")
            fields[name] = uniform_int(rng, low, size)
    for name, low, high in spec.randomize:
        value = uniform_float(rng, low, high)
        fields[name] = value if name == "d" else _stored(name, value)
    return _instruction(spec.id, **fields)  # type: ignore[arg-type]


# ----------------------------------------------------- one instruction --

def _log_scale(rng: np.random.Generator, value: float) -> float:
    """sign(x) * exp(log|x| + N(0, 1)); the "negative" branch also takes 0
    (giving -0) and NaN, as the reference's `value > 0` test does."""
    z = float(rng.standard_normal())
    with np.errstate(all="ignore"):
        if value > 0.0:
            return float(np.exp(np.log(value) + z))
        return float(-np.exp(np.log(-value) + z))


def alter_value(rng: np.random.Generator, value: float, rule: str) -> float:
    """One AlterData rule of the op table on one constant (spec §4)."""
    if rule == "uniform01":
        return rng.random()  # = rng.uniform(0, 1)
    if rule == "log_scale":
        return _log_scale(rng, value)
    if rule == "log_scale_or_flip":
        if rng.random() < SIGN_FLIP_PROB:
            return -value
        return _log_scale(rng, value)
    raise ValueError(f"unknown alter rule {rule!r}")


def _stored(field: str, value: float) -> float:
    """Float data is float32 in the reference; an overflow becomes inf there
    (and here) instead of an error."""
    if field == "d":
        return value
    with np.errstate(over="ignore"):
        return float(np.float32(value))


def alter_data(rng: np.random.Generator, instr: Instruction) -> Instruction:
    """`AlterData`: one constant of a set op changed by the op table's rule
    (uniform choice among the op's `alter` entries); the uniform-set ops then
    store (min, max) of f0, f1."""
    spec = instr.spec
    if not spec.alter:
        return instr
    choice = 0 if len(spec.alter) == 1 else uniform_int(rng, 0, len(spec.alter))
    field, rule = spec.alter[choice]
    fields = {f: getattr(instr, f) for f in ops_lib.CONST_FIELDS}
    fields[field] = _stored(field, alter_value(rng, fields[field], rule))
    if spec.sort_after_alter:
        a, b = fields["f0"], fields["f1"]
        # std::min / std::max operand rules (a NaN pair keeps `a` in both).
        fields["f0"], fields["f1"] = (b if b < a else a), (b if a < b else a)
    return _replace_instruction(instr, **fields)


def alter_param(rng: np.random.Generator, instr: Instruction, memory: MemoryShape) -> Instruction:
    """`AlterParam` of one instruction (never changes the op): set ops re-draw
    `out` or alter data (1/2 each); 1-input ops re-draw in1 or out (1/2 each);
    2-input ops re-draw in1, in2 or out (1/3 each); NO_OP is unchanged."""
    spec = instr.spec
    if spec.out is None:
        return instr
    if spec.family == "set":
        if rng.random() < 0.5:
            return _replace_instruction(instr, out=generators.random_address(rng, spec.out, memory, output=True))
        return alter_data(rng, instr)
    choices = [("in1", spec.in1), ("in2", spec.in2)][: spec.num_inputs] + [("out", spec.out)]
    field, kind = choices[uniform_int(rng, 0, len(choices))]
    address = generators.random_address(rng, kind, memory, output=field == "out")
    return _replace_instruction(instr, **{field: address})


# ----------------------------------------------------------- Mutator --

class Mutator:
    """The reference Mutator: with probability `mutate_prob` one mutation of a
    type drawn uniformly from `mutation_types`, else an exact copy."""

    def __init__(self, config: MutatorConfig):
        self.config = config
        self.memory = config.memory

    # -- helpers --
    def _component(self, rng: np.random.Generator) -> str:
        comps = self.config.mutable_components
        return comps[uniform_int(rng, 0, len(comps))]

    def _random_instruction(self, rng: np.random.Generator, component: str) -> Instruction:
        ops = self.config.ops(component)
        op = ops[uniform_int(rng, 0, len(ops))]
        return random_instruction(rng, op, self.memory)

    def _randomize_component(self, rng: np.random.Generator, algorithm: Algorithm, component: str) -> Algorithm:
        size = len(algorithm.component(component))
        return _with_component(algorithm, component, tuple(self._random_instruction(rng, component)
                                                           for _ in range(size)))

    def _size_bounds(self, component: str) -> tuple[int, int | None]:
        i = COMPONENTS.index(component)
        return self.config.size_min[i], self.config.size_max[i]

    # -- public --
    def mutate(self, rng: np.random.Generator, algorithm: Algorithm, num_mutations: int = 1) -> Algorithm:
        """Reference `Mutate(num_mutations, algo)`: one `u < mutate_prob` draw
        (skipped when mutate_prob >= 1); on success apply `num_mutations`
        mutations, else return the parent unchanged. `num_mutations=0` (the
        reference's population init) just consumes the probability draw."""
        p = self.config.mutate_prob
        if p >= 1.0 or rng.random() < p:
            for _ in range(num_mutations):
                t = self.config.mutation_types[uniform_int(rng, 0, len(self.config.mutation_types))]
                algorithm = self.apply(rng, algorithm, t)
        return algorithm

    def apply(self, rng: np.random.Generator, algorithm: Algorithm, mutation_type: str) -> Algorithm:
        """Applies one mutation of the given type (spec §12 table)."""
        t = parse_mutation_type(mutation_type)
        if t == IDENTITY:
            return algorithm
        if t == RANDOMIZE_ALGORITHM:
            for c in self.config.mutable_components:
                algorithm = self._randomize_component(rng, algorithm, c)
            return algorithm
        component = self._component(rng)
        code = list(algorithm.component(component))
        if t == ALTER_PARAM:
            if code:
                i = uniform_int(rng, 0, len(code))
                code[i] = alter_param(rng, code[i], self.memory)
        elif t == RANDOMIZE_INSTRUCTION:
            if code:
                i = uniform_int(rng, 0, len(code))
                code[i] = self._random_instruction(rng, component)
        elif t == RANDOMIZE_COMPONENT_FUNCTION:
            return self._randomize_component(rng, algorithm, component)
        elif t == INSERT_INSTRUCTION:
            _, size_max = self._size_bounds(component)
            if size_max is not None and size_max > 0 and len(code) >= size_max - 1:
                return algorithm
            self._insert(rng, code, component)
        elif t == REMOVE_INSTRUCTION:
            size_min, _ = self._size_bounds(component)
            if len(code) <= size_min:
                return algorithm
            del code[uniform_int(rng, 0, len(code))]
        elif t == TRADE_INSTRUCTION:
            self._insert(rng, code, component)
            del code[uniform_int(rng, 0, len(code))]
        return _with_component(algorithm, component, tuple(code))

    def _insert(self, rng: np.random.Generator, code: list[Instruction], component: str) -> None:
        """Reference order: op, then position in [0, size], then parameters."""
        ops = self.config.ops(component)
        op = ops[uniform_int(rng, 0, len(ops))]
        position = uniform_int(rng, 0, len(code) + 1)
        code.insert(position, random_instruction(rng, op, self.memory))


# ------------------------------------------------- initial population --

class InitialPopulation:
    """Reference `Generator::TheInitModel`: the hand-written programs padded
    to the init sizes, or (``random``) a fresh random program per call."""

    def __init__(self, kind: str, sizes: Sequence[int], memory: MemoryShape,
                 ops: dict[str, Sequence[int]] | None = None):
        self.kind = parse_initial_kind(kind)
        self.sizes = tuple(int(s) for s in sizes)
        self.memory = memory
        self.ops = {c: ops_lib.resolve_op_ids((ops or {}).get(c, ())) for c in COMPONENTS}
        if self.kind == "random":
            for c, size in zip(COMPONENTS, self.sizes, strict=True):
                if size and not self.ops[c]:
                    raise ValueError(f"random initial programs need allowed {c} ops for {c} size {size}: give "
                                     f"{c}_ops or set {c}_size_init to 0")
            self._fixed = None
        else:
            self._fixed = programs_lib.hand_written(self.kind, self.sizes)

    @classmethod
    def from_config(cls, kind: str, sizes: Sequence[int], config: MutatorConfig) -> InitialPopulation:
        return cls(kind, sizes, config.memory, {c: config.ops(c) for c in COMPONENTS})

    def __call__(self, rng: np.random.Generator) -> Algorithm:
        if self._fixed is not None:
            return self._fixed
        # Components with an empty op list keep no-ops (their size must be 0 then).
        return Algorithm(**{
            c: generators.random_component(rng, self.ops[c], size, self.memory) if self.ops[c] else (NO_OP,) * size
            for c, size in zip(COMPONENTS, self.sizes, strict=True)
        })
