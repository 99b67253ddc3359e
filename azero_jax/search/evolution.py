"""Regularized (aging) evolution, islands and random search (spec §14).

The search state is an explicit value (`EvolutionState`: populations,
fitnesses, next-slot cursors, counters and the NumPy generator's state), and
`RegularizedEvolution.step` maps one state to the next. That makes a run
reproducible from its seed, checkpointable at any step, and testable. The
state's types and checkpoint (de)serialization live in `evolution_state`
(re-exported here).

Batching: each step draws `children_per_step` parents per island by
independent tournaments on the population as it is before the step, mutates
them, evaluates all children of all islands in ONE `Evaluator.evaluate` call,
and writes them over the oldest slots in sweep order. `children_per_step = 1`
is the reference's sequential algorithm (each tournament sees the previous
child); larger values trade that for device-sized batches.

Populations are held as arrays (`program_arrays.ProgramArrays`, one per
island) and children go to the evaluator as one array batch: `Algorithm`
objects appear only at the edges (the init model, printing, checkpoints).
Two mutators fit: `ArrayMutator` (the search's: all tournaments of all
islands, then one vectorized mutation of the whole step's parents; ~2 us of
host time per child instead of ~37 with objects, tools/benchmark_mutation.py)
and the object `Mutator` (the reference's per-child draw order, island by
island: tournaments, then mutations; its children are packed into arrays).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import time
from collections.abc import Callable, Sequence

import numpy as np

from azero_jax import program_arrays as pa
from azero_jax.evaluation.base import Evaluator, as_evaluator
from azero_jax.program import Algorithm
from azero_jax.search.array_mutator import ArrayMutator
from azero_jax.search.evolution_state import (  # noqa: F401 (re-exported: the driver and tests use them here)
    EvolutionState,
    Island,
    copy_rng_state,
    jsonable,
    make_rng,
    state_from_dict,
    state_to_dict,
)
from azero_jax.search.mutator import Mutator

# A plain fitness function is accepted where an Evaluator is expected (tests, toy problems).
EvaluateFn = Callable[[list[Algorithm]], Sequence[float]]
# The init model (e.g. an `InitialPopulation`): a fresh program per call.
ProgramSource = Callable[[np.random.Generator], Algorithm]


@dataclasses.dataclass(frozen=True)
class EvolutionConfig:
    """Search loop settings (reference `population_size`, `tournament_size`,
    `progress_every`; the rest are this package's extensions).

    migration_every: steps between migrations (0 = never): each island's best
      is copied over the oldest individual of the next island (ring).
    random_search: children are fresh programs from the initial-population
      generator instead of mutated tournament winners.
    """

    population_size: int = 1000
    tournament_size: int = 10
    children_per_step: int = 1
    num_islands: int = 1
    migration_every: int = 0
    random_search: bool = False
    progress_every: int = 10000

    def __post_init__(self):
        for name, low in (("population_size", 1), ("tournament_size", 1), ("children_per_step", 1),
                          ("num_islands", 1), ("migration_every", 0), ("progress_every", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"EvolutionConfig.{name} must be an integer >= {low}, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.children_per_step > self.population_size:
            raise ValueError(f"children_per_step ({self.children_per_step}) cannot exceed population_size "
                             f"({self.population_size})")


# ------------------------------------------------------------ pieces --

def tournament(rng: np.random.Generator, fitnesses: np.ndarray, tournament_size: int) -> int:
    """Reference `BestFitnessTournament`: T indices uniform WITH replacement;
    the strictly best fitness wins, ties keep the earliest drawn; NaN never wins
    over a number."""
    drawn = rng.integers(0, len(fitnesses), size=tournament_size)
    values = np.asarray(fitnesses, dtype=np.float64)[drawn]
    values = np.where(np.isnan(values), -np.inf, values)
    return int(drawn[int(np.argmax(values))])  # argmax: first occurrence of the max


def tournaments(rng: np.random.Generator, fitnesses: np.ndarray, tournament_size: int, count: int) -> np.ndarray:
    """`count` independent `tournament`s in one draw of count x T indices
    (row k = tournament k; for count = 1 the same draws as `tournament`).
    Vectorized because per-call NumPy overhead was ~15 us per child."""
    drawn = rng.integers(0, len(fitnesses), size=(count, tournament_size))
    values = np.asarray(fitnesses, dtype=np.float64)[drawn]
    values = np.where(np.isnan(values), -np.inf, values)
    return drawn[np.arange(count), np.argmax(values, axis=1)]


def best_index(fitnesses: np.ndarray) -> int:
    """First index of the maximum (reference `GetBest`)."""
    values = np.asarray(fitnesses, dtype=np.float64)
    return int(np.argmax(np.where(np.isnan(values), -np.inf, values)))


def population_stats(fitnesses: np.ndarray) -> tuple[float, float, float]:
    """(mean, stdev, best) as the reference computes them: stdev =
    sqrt(max(0, E[f^2] - E[f]^2))."""
    f = np.asarray(fitnesses, dtype=np.float64)
    mean = float(np.sum(f) / f.size)
    var = float(np.sum(f * f) / f.size) - mean * mean
    return mean, math.sqrt(max(var, 0.0)), float(f[best_index(f)])


def progress_line(num_individuals: int, elapsed_secs: float, fitnesses: np.ndarray, *,
                  indivs_per_sec: float | None = None, train_steps_per_sec: float | None = None,
                  fec_hit_rate: float | None = None) -> str:
    """The reference's progress line (`MaybePrintProgress`), followed by
    whichever of the throughput and FEC hit rate are given."""
    mean, stdev, best = population_stats(fitnesses)
    line = (f"indivs={num_individuals}, elapsed_secs={int(elapsed_secs)}, mean={mean:.6f}, "
            f"stdev={stdev:.6f}, best fit={best:.6f},")
    if indivs_per_sec is not None:
        line += f" indivs/s={indivs_per_sec:.1f},"
    if train_steps_per_sec is not None:
        line += f" train_steps/s={train_steps_per_sec:.0f},"
    if fec_hit_rate is not None:
        line += f" fec_hit_rate={fec_hit_rate:.4f},"
    return line


# ------------------------------------------------------------ search --

class RegularizedEvolution:
    """Regularized evolution over one or more islands.

    `generator(rng)` gives the init model (and random search's children);
    `evaluator` (an `azero_jax.evaluation.Evaluator`, or a plain
    `fn(programs) -> fitnesses`) evaluates once per `init` and once per
    `step` every new program of that call (batched); before each step it is
    given the population's fitnesses (`set_population`, for hurdles).

    `island_tasks` (optional, one entry per island): the task indices each
    island searches on (the paper's mixed setting: some islands on one
    dataset's tasks, the others on another's). The evaluator is then called
    as `evaluate(programs, tasks=per_program_task_lists)`, and a migrant is re-evaluated on its new
    island's tasks, since fitnesses on different tasks do not compare.
    """

    def __init__(self, config: EvolutionConfig, mutator: Mutator | ArrayMutator, generator: ProgramSource,
                 evaluator: Evaluator | EvaluateFn, *, log: Callable[[str], None] | None = print,
                 island_tasks: Sequence[Sequence[int]] | None = None):
        self.config = config
        self.mutator = mutator
        self.generator = generator
        self.evaluator = as_evaluator(evaluator)
        self.log = log
        if island_tasks is not None:
            island_tasks = tuple(tuple(int(t) for t in ts) for ts in island_tasks)
            if len(island_tasks) != config.num_islands or not all(island_tasks):
                raise ValueError(f"island_tasks needs one non-empty task list per island ({config.num_islands}), "
                                 f"got {len(island_tasks)}")
        self.island_tasks = island_tasks
        self.start_time = time.monotonic()
        # Wall seconds per phase (profiling only).
        self.timers: dict[str, float] = collections.defaultdict(float)

    @property
    def capacity(self) -> tuple[int, int, int] | None:
        """Array capacities of packed programs (the array mutator's size limits)."""
        return self.mutator.capacity if isinstance(self.mutator, ArrayMutator) else None

    def _pack(self, programs: list[Algorithm]) -> pa.ProgramArrays:
        return pa.from_algorithms(programs, self.capacity)

    def _evaluate(self, programs: pa.ProgramArrays, islands: Sequence[int] | None = None) -> np.ndarray:
        """Fitnesses of `programs`; `islands[i]` is program i's island (only
        read when islands search on different tasks)."""
        if self.island_tasks is None:
            values = np.asarray(list(self.evaluator.evaluate(programs)), dtype=np.float64)
        else:
            assert islands is not None
            tasks = [self.island_tasks[k] for k in islands]
            values = np.asarray(list(self.evaluator.evaluate(programs, tasks=tasks)), dtype=np.float64)
        if values.shape != (programs.batch,):
            raise ValueError(f"the evaluator returned {values.shape[0] if values.ndim else 0} fitnesses "
                             f"for {programs.batch} programs")
        return values

    @staticmethod
    def _track_best(state: EvolutionState, programs: pa.ProgramArrays, values: np.ndarray) -> None:
        if not len(values):
            return
        i = best_index(values)
        if state.best_program is None or values[i] > state.best_fitness:
            state.best_program, state.best_fitness = pa.to_algorithms(pa.take(programs, [i]))[0], float(values[i])

    def init(self, rng: np.random.Generator | int) -> EvolutionState:
        """Reference `Init`: every slot gets the init model followed by
        `Mutate(0, .)` (one probability draw, no mutation); all are evaluated."""
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        cfg = self.config
        programs = []
        for _ in range(cfg.num_islands * cfg.population_size):
            program = self.generator(rng)
            if not isinstance(self.mutator, ArrayMutator):
                program = self.mutator.mutate(rng, program, num_mutations=0)
            programs.append(program)
        packed = self._pack(programs)
        p = cfg.population_size
        values = self._evaluate(packed, [i // p for i in range(len(programs))])
        islands = [Island(pa.take(packed, np.arange(k * p, (k + 1) * p)), values[k * p:(k + 1) * p].copy(), 0)
                   for k in range(cfg.num_islands)]
        state = EvolutionState(islands=islands, rng_state=copy_rng_state(rng.bit_generator.state),
                               num_individuals=len(programs))
        self._track_best(state, packed, values)
        self.maybe_log_progress(state)
        return state

    def step(self, state: EvolutionState) -> EvolutionState:
        """One step: `children_per_step` children per island, one evaluation
        call, oldest slots overwritten, then migration if due. Returns a new
        state (the input is not modified)."""
        cfg = self.config
        start = time.perf_counter()
        state = state.copy()
        rng = make_rng(state.rng_state)
        children = self._children(rng, state)
        self.timers["select_mutate"] += time.perf_counter() - start
        self.evaluator.set_population(all_fitnesses(state))  # hurdles: the threshold follows the population
        start = time.perf_counter()
        k = cfg.children_per_step
        values = self._evaluate(children, np.repeat(np.arange(cfg.num_islands), k).tolist())
        self.timers["evaluate"] += time.perf_counter() - start
        for n, island in enumerate(state.islands):
            slots = (island.next_slot + np.arange(k)) % cfg.population_size
            island.programs = pa.assign(island.programs, slots, pa.take(children, np.arange(n * k, (n + 1) * k)))
            island.fitnesses[slots] = values[n * k:(n + 1) * k]
            island.next_slot = int(slots[-1] + 1) % cfg.population_size
        state.num_individuals += children.batch
        state.num_steps += 1
        self._track_best(state, children, values)
        if cfg.num_islands > 1 and cfg.migration_every and state.num_steps % cfg.migration_every == 0:
            reevaluate = None
            if self.island_tasks is not None:
                def reevaluate(program: pa.ProgramArrays, island: int) -> float:
                    return float(self._evaluate(program, [island])[0])
            migrate(state, reevaluate)
        state.rng_state = copy_rng_state(rng.bit_generator.state)
        return state

    def _children(self, rng: np.random.Generator, state: EvolutionState) -> pa.ProgramArrays:
        """The step's children of all islands, island by island (see the module docstring)."""
        cfg = self.config
        k = cfg.children_per_step
        if cfg.random_search:
            return self._pack([self.generator(rng) for _ in range(k * cfg.num_islands)])
        if isinstance(self.mutator, ArrayMutator):  # every tournament first, then one mutation call
            winners = [tournaments(rng, island.fitnesses, cfg.tournament_size, k) for island in state.islands]
            parents = pa.concatenate([pa.take(isl.programs, w) for isl, w in zip(state.islands, winners, strict=True)])
            return self.mutator.mutate(rng, parents)
        children: list[Algorithm] = []
        for island in state.islands:
            if k == 1:  # the reference's draw order
                winners = [tournament(rng, island.fitnesses, cfg.tournament_size)]
            else:  # all tournaments of the island first (same distribution), then the mutations
                winners = tournaments(rng, island.fitnesses, cfg.tournament_size, k).tolist()
            children.extend(self.mutator.mutate(rng, parent, num_mutations=1)
                            for parent in pa.to_algorithms(pa.take(island.programs, winners)))
        return self._pack(children)

    def completed_sweep(self, state: EvolutionState) -> bool:
        """True right after a step that finished a sweep of P children per
        island (the reference checks its stop test only then)."""
        k, p = self.config.children_per_step, self.config.population_size
        return (state.num_steps * k) // p > ((state.num_steps - 1) * k) // p

    def maybe_log_progress(self, state: EvolutionState, *, log: Callable[[str], None] | None = None,
                           elapsed_secs: float | None = None,
                           counters: dict[str, int] | None = None) -> dict[str, float] | None:
        """The progress printer: at most once per `progress_every`
        individuals (tracked in `state.last_progress`), logs `progress_line`.

        log: where to (default: this instance's `log`; with neither, nothing
          happens and the throttle is left as it is).
        elapsed_secs: the time to show (default: since this instance was made).
        counters: {"individuals", "train_steps"} totals to show per second of
          `elapsed_secs`, and {"fec_hits", "fec_misses"} for the FEC hit
          rate; the line then carries those after the reference's fields.
        Returns what was printed (indivs, elapsed_secs, mean, stdev, best_fit,
        and with counters indivs_per_sec, train_steps_per_sec,
        fec_hit_rate), or None when no line was due.
        """
        log = self.log if log is None else log
        if log is None:
            return None
        every = self.config.progress_every
        if state.last_progress is not None and state.num_individuals < state.last_progress + every:
            return None
        state.last_progress = state.num_individuals
        if elapsed_secs is None:
            elapsed_secs = time.monotonic() - self.start_time
        fits = all_fitnesses(state)
        mean, stdev, best = population_stats(fits)
        shown: dict[str, float] = {"indivs": state.num_individuals, "elapsed_secs": elapsed_secs, "mean": mean,
                                   "stdev": stdev, "best_fit": best}
        rates: dict[str, float] = {}
        if counters is not None:
            secs = max(elapsed_secs, 1e-9)
            lookups = counters["fec_hits"] + counters["fec_misses"]
            rates = {"indivs_per_sec": counters["individuals"] / secs,
                     "train_steps_per_sec": counters["train_steps"] / secs,
                     "fec_hit_rate": counters["fec_hits"] / lookups if lookups else 0.0}
            shown.update(rates)
        log(progress_line(state.num_individuals, elapsed_secs, fits, **rates))
        return shown

    def run(self, state: EvolutionState, *, max_individuals: int | None = None, max_steps: int | None = None,
            max_seconds: float | None = None, max_train_steps: int | None = None,
            train_steps_fn: Callable[[], int] | None = None,
            should_stop: Callable[[EvolutionState], bool] | None = None,
            on_step: Callable[[EvolutionState], None] | None = None,
            on_sweep: Callable[[EvolutionState], None] | None = None,
            interrupt: Callable[[], bool] | None = None) -> EvolutionState:
        """The search loop (reference `Run`): steps until a completed sweep,
        then reports, until done. Budgets other than time and
        `should_stop(state)` are tested only between sweeps (before the first
        step too), like the reference (so a run may overshoot by < one sweep,
        and a train-step budget gives the same result however the run is
        timed). `max_train_steps` counts from the start of this call, read
        from `train_steps_fn` (e.g. the evaluator's counter).

        Wall-clock stops are tested after every step as well, and may cut a
        sweep short: `max_seconds` (from the start of this call) and
        `interrupt()` (e.g. the driver's whole-run budget), so a search stops
        within about one step of its time budget.

        on_step(state): after every step (e.g. a test's kill hook).
        on_sweep(state): after every completed sweep, after this instance's
          own progress line (`maybe_log_progress`): the caller's progress
          and checkpoints.
        """
        start = time.monotonic()
        start_individuals = state.num_individuals
        start_steps = state.num_steps
        start_train = train_steps_fn() if train_steps_fn is not None else 0

        def out_of_time() -> bool:
            if max_seconds is not None and time.monotonic() - start >= max_seconds:
                return True
            return interrupt is not None and interrupt()

        def done() -> bool:
            if max_individuals is not None and state.num_individuals - start_individuals >= max_individuals:
                return True
            if max_steps is not None and state.num_steps - start_steps >= max_steps:
                return True
            if out_of_time():
                return True
            if max_train_steps is not None and train_steps_fn is not None \
                    and train_steps_fn() - start_train >= max_train_steps:
                return True
            return should_stop is not None and should_stop(state)

        while not done():
            while True:
                state = self.step(state)
                if on_step is not None:
                    on_step(state)
                if self.completed_sweep(state):
                    break
                if out_of_time():  # a wall-clock stop may cut the sweep short
                    return state
            self.maybe_log_progress(state)
            if on_sweep is not None:
                on_sweep(state)
        return state


def migrate(state: EvolutionState,
            reevaluate: Callable[[pa.ProgramArrays, int], float] | None = None) -> None:
    """Ring migration (in place): a copy of island i's best replaces the
    oldest individual of island i+1 (all bests taken before any insert).
    `reevaluate(program, island)`, if given, gives the migrant's (a batch of
    one) fitness on its new island (islands searching different tasks)."""
    bests = []
    for island in state.islands:
        i = best_index(island.fitnesses)
        bests.append((pa.take(island.programs, [i]), float(island.fitnesses[i])))
    n = len(state.islands)
    for src, (program, fit) in enumerate(bests):
        dst = state.islands[(src + 1) % n]
        slot = dst.next_slot
        dst.programs = pa.assign(dst.programs, [slot], program)
        dst.fitnesses[slot] = fit if reevaluate is None else reevaluate(program, (src + 1) % n)
        dst.next_slot = (slot + 1) % dst.size


def all_fitnesses(state: EvolutionState) -> np.ndarray:
    return np.concatenate([island.fitnesses for island in state.islands])


def best_of_population(state: EvolutionState) -> tuple[Algorithm, float]:
    """The experiment result (reference): the fittest individual of the final
    population(s), first island / first index on ties."""
    fits = all_fitnesses(state)
    i = best_index(fits)
    p = state.islands[0].size
    return state.islands[i // p].program(i % p), float(fits[i])


def result(state: EvolutionState, config: EvolutionConfig) -> tuple[Algorithm, float]:
    """Evolution: best of the final population. Random search: best ever."""
    if config.random_search and state.best_program is not None:
        return state.best_program, state.best_fitness
    return best_of_population(state)
