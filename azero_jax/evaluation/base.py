"""The two seams of evaluation, as explicit types.

search <-> evaluation: `Evaluator`. Evolution and the experiment driver hand
it programs (and, for islands searching different task collections, one task
list per program) and get one combined fitness per program back. It also takes
the population's fitnesses (hurdles), reports `Counters`, and saves/restores
everything that must survive a resume through `to_state` / `load_state`.
`azero_jax.evaluation.CachedEvaluator` is the implementation: FEC, train
budget, hurdles and counters, on top of a backend.

evaluation <-> interpreter: `Backend`. A backend runs (program, task) jobs,
given as arrays (`Jobs`), in two ways: an FEC probe (`probe`: the per-example
error sequence that FEC hashes) and a full evaluation (`full`: fitness and
train steps). Implementations: `reference` (the NumPy oracle, one job at a
time) and `xla` (the batched JAX interpreter). A new backend is one module
with a class satisfying `Backend`, plus one `register_backend` line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from azero_jax.program_arrays import Programs, as_algorithms
from azero_jax.search.fec import FECSpec
from azero_jax.tasks import Task

# The reference requires every task to allow at least this many train examples.
MIN_TRAIN_EXAMPLES = 10


def check_search_task_size(name: str, train: int, valid: int, fec_spec: FECSpec | None) -> None:
    """ValueError (naming the task and the fix) unless a task of `train`
    train examples (all epochs) and `valid` validation examples can be
    searched on: at least MIN_TRAIN_EXAMPLES train examples (as in the
    reference), and room for the FEC probe."""
    if train < MIN_TRAIN_EXAMPLES:
        raise ValueError(f"{name} has {train} train examples; a search task needs at least {MIN_TRAIN_EXAMPLES} "
                         "(as in the reference): use more train examples or epochs")
    if fec_spec is not None and (fec_spec.num_train_examples > train or fec_spec.num_valid_examples > valid):
        raise ValueError(f"{name} has {train} train / {valid} valid examples, fewer than the FEC probe's "
                         f"{fec_spec.num_train_examples} / {fec_spec.num_valid_examples}: set fec.num_train_examples / "
                         "fec.num_valid_examples no larger, use bigger tasks, or fec=null")


@dataclasses.dataclass(frozen=True)
class Jobs:
    """A batch of (program, task) evaluations as parallel int64 arrays (J,):
    `program` indexes the batch's program list, `task` the backend's task
    list, `num_train_examples` counts train examples over all epochs (0 only
    reaches a backend's probe: the evaluator scores untrained jobs itself), and
    `seed` is the random-set ops' stream seed of a full evaluation (a backend
    may require one seed per program: the xla backend runs one lane per
    program and task)."""

    program: np.ndarray
    task: np.ndarray
    num_train_examples: np.ndarray
    seed: np.ndarray

    def __post_init__(self):
        n = None
        for field in dataclasses.fields(self):
            value = np.asarray(getattr(self, field.name), dtype=np.int64).reshape(-1)
            if n is not None and value.shape[0] != n:
                raise ValueError(f"Jobs.{field.name} has {value.shape[0]} entries, expected {n}")
            n = value.shape[0]
            object.__setattr__(self, field.name, value)

    def __len__(self) -> int:
        return int(self.program.shape[0])

    def take(self, index: Any) -> Jobs:
        """The jobs at `index` (an index array or boolean mask)."""
        return Jobs(self.program[index], self.task[index], self.num_train_examples[index], self.seed[index])


class ProbeErrors(NamedTuple):
    """What an FEC probe gives per job: row j's first `lengths[j]` entries of
    `errors` (float64, (J, L)) are its train errors then its valid errors, in
    the order the reference records them (the rest is padding), and the train
    steps the probe took."""

    errors: np.ndarray
    lengths: np.ndarray
    train_steps: np.ndarray


class FullResults(NamedTuple):
    """Per job: the task fitness (float64 (J,)) and train steps (int64 (J,))."""

    fitness: np.ndarray
    train_steps: np.ndarray


class Counters(NamedTuple):
    """An evaluator's running totals (what progress lines and results report)."""

    individuals: int = 0
    train_steps: int = 0
    full_evaluations: int = 0
    fec_hits: int = 0
    fec_misses: int = 0
    hurdle_stops: int = 0


@runtime_checkable
class Backend(Protocol):
    """Runs jobs on the interpreter (see the module docstring).

    `tasks` is the task list that `Jobs.task` indexes. `probe` evaluates every
    job with the FEC probe's stream seed on its first `num_train` train and
    `num_valid` valid examples; `full` evaluates every job on its
    `num_train_examples` with its own seed, and returns the task fitness.
    Both are deterministic functions of (program, task, counts, seed).
    """

    tasks: Sequence[Task]

    def probe(self, programs: Programs, jobs: Jobs, *, num_train: int, num_valid: int,
              seed: int) -> ProbeErrors: ...

    def full(self, programs: Programs, jobs: Jobs) -> FullResults: ...


@runtime_checkable
class Evaluator(Protocol):
    """What the search needs from evaluation (see the module docstring).

    `evaluate(programs, tasks=None)`: combined fitness per program over all
    tasks, or over `tasks[i]` (indices into `self.tasks`) for program i.
    `set_population(fitnesses)`: the current population, before each batch
    (population-dependent hurdles; may do nothing).
    `to_state()` / `load_state(state)`: a JSON-able snapshot of everything
    that affects later results or counters, and its restoration.
    """

    tasks: Sequence[Task]

    def evaluate(self, programs: Programs,
                 tasks: Sequence[Sequence[int]] | None = None) -> list[float]: ...

    def set_population(self, fitnesses: np.ndarray) -> None: ...

    def counters(self) -> Counters: ...

    def to_state(self) -> dict[str, Any]: ...

    def load_state(self, state: dict[str, Any]) -> None: ...


class FunctionEvaluator:
    """An `Evaluator` around a plain `fn(programs) -> fitnesses` (tests,
    toy problems): no task lists, no hurdles, counts individuals only."""

    def __init__(self, fn, tasks: Sequence[Task] = ()):
        self.fn = fn
        self.tasks = tuple(tasks)
        self.num_individuals = 0

    def evaluate(self, programs: Programs,
                 tasks: Sequence[Sequence[int]] | None = None) -> list[float]:
        if tasks is not None:
            raise ValueError("a plain fitness function cannot evaluate per-program task lists; "
                             "use an azero_jax.evaluation evaluator for islands with their own tasks")
        values = list(self.fn(as_algorithms(programs)))
        self.num_individuals += len(values)
        return values

    __call__ = evaluate

    def set_population(self, fitnesses: np.ndarray) -> None:
        del fitnesses

    def counters(self) -> Counters:
        return Counters(individuals=self.num_individuals)

    def to_state(self) -> dict[str, Any]:
        return {"num_individuals": self.num_individuals}

    def load_state(self, state: dict[str, Any]) -> None:
        self.num_individuals = int(state["num_individuals"])


def as_evaluator(value: Any) -> Evaluator:
    """`value` if it is an `Evaluator`, else a `FunctionEvaluator` around a callable."""
    if isinstance(value, Evaluator):
        return value
    if callable(value):
        return FunctionEvaluator(value)
    raise TypeError(f"expected an Evaluator or a callable programs -> fitnesses, got {type(value).__name__}")
