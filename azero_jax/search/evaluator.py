"""Multi-task evaluation with train budget and FEC (spec §8-§9), batched.

`CachedEvaluator` owns everything that is not "run a program on a task":
train-budget example counts, FEC probes -> hash -> LRU lookup, combination of
per-task fitnesses, and the counters. Subclasses supply two batched hooks,
`probe` and `full`, so the NumPy reference (`ReferenceEvaluator`, here) and a
batched JAX evaluator share the exact same cache semantics.

Batching vs the reference's sequential order: lookups are replayed in
(program, task) order and a miss inserts a placeholder at once, so a later
identical candidate in the same batch is a hit exactly as it would be
sequentially (and an entry forgotten mid-batch triggers a second full
evaluation, as sequentially). Full evaluations are deterministic (counter-based
random stream), so filling the placeholders afterwards gives the same fitness
values, cache contents and train-step counts as one-at-a-time evaluation.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from azero_jax import fitness as fitness_lib
from azero_jax import reference
from azero_jax import rng as rng_lib
from azero_jax.program import Algorithm, MemoryShape
from azero_jax.search.fec import FEC_RANDOM_SEED, FECCache, FECSpec, fec_hash
from azero_jax.search.train_budget import TrainBudget
from azero_jax.tasks import Task

# The reference requires every task to allow at least this many train examples.
MIN_TRAIN_EXAMPLES = 10


class Job(NamedTuple):
    """One (program, task) evaluation: indices into the batch and the task
    list, the number of train examples (all epochs) to use, and the random
    stream seed of a full evaluation (None: the evaluator's `seed`). (A
    NamedTuple: a search builds ~10 per child, and frozen dataclasses are slow
    to make.)"""

    program: int
    task: int
    num_train_examples: int
    seed: int | None = None


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """Per-example errors of an FEC probe and the train steps it took."""

    train_errors: Sequence[float]
    valid_errors: Sequence[float]
    train_steps: int


@dataclasses.dataclass(frozen=True)
class FullResult:
    fitness: float
    train_steps: int


class _Pending:
    """Cache placeholder for a full evaluation still to run in this batch."""

    __slots__ = ("job",)

    def __init__(self, job: int):
        self.job = job


class CachedEvaluator:
    """Front end: `__call__(programs) -> fitnesses` over all tasks.

    Subclasses implement `probe(programs, jobs)` and `full(programs, jobs)`
    (or, to hash a whole batch in a few array operations, `probe_keys`).

    Random-set ops: every individual's full evaluations draw from a stream of
    their own, keyed by (`seed`, its number among this evaluator's
    individuals), as the reference's shared stream gives every evaluation new
    draws; FEC probes use the reference's fixed probe seed.

    Hurdles (the paper's; off by default, as in the reference): with
    `hurdle_tasks = k`, once `set_population` has given the population's
    fitnesses, every candidate is first evaluated on the first k tasks only;
    one whose combined fitness there is below the `hurdle_percentile`
    percentile of the population's unique fitnesses gets that partial fitness
    and is not evaluated on the remaining tasks (saving their cost).
    """

    def __init__(self, tasks: Sequence[Task], *, fec_spec: FECSpec | None = None,
                 train_budget: TrainBudget | None = None, combination: str = fitness_lib.MEAN,
                 hurdle_tasks: int = 0, hurdle_percentile: float = 75.0, seed: int = 0):
        self.tasks = list(tasks)
        if not self.tasks:
            raise ValueError("an evaluator needs at least one task")
        for t in self.tasks:
            max_train = t.num_train * t.num_train_epochs
            if max_train < MIN_TRAIN_EXAMPLES:
                raise ValueError(f"task {t.name or t.index} has {max_train} train examples; at least "
                                 f"{MIN_TRAIN_EXAMPLES} are needed (as in the reference)")
            if fec_spec is not None and (fec_spec.num_train_examples > max_train
                                         or fec_spec.num_valid_examples > t.num_valid):
                raise ValueError(
                    f"FEC probe of {fec_spec.num_train_examples} train / {fec_spec.num_valid_examples} valid "
                    f"examples exceeds task {t.name or t.index} ({max_train} train / {t.num_valid} valid)")
        fitness_lib.combine([0.0], combination)  # validates the mode
        if not 0 <= int(hurdle_tasks) < len(self.tasks) and hurdle_tasks:
            raise ValueError(f"hurdle_tasks must be in [1, {len(self.tasks) - 1}] (or 0 = off), got {hurdle_tasks}")
        if not 0.0 <= float(hurdle_percentile) <= 100.0:
            raise ValueError(f"hurdle_percentile must lie in [0, 100], got {hurdle_percentile}")
        self.combination = combination
        self.seed = int(seed)
        self.fec_spec = fec_spec
        self.cache = FECCache(fec_spec) if fec_spec is not None else None
        self.train_budget = train_budget
        self.hurdle_tasks = int(hurdle_tasks)
        self.hurdle_percentile = float(hurdle_percentile)
        self.hurdle_threshold: float | None = None
        self.num_individuals = 0
        self.num_train_steps = 0
        self.num_full_evaluations = 0
        self.num_hurdle_stops = 0
        # Wall seconds per phase (profiling only; never affects results).
        self.timers: dict[str, float] = collections.defaultdict(float)

    # -- hooks --
    def probe(self, programs: Sequence[Algorithm], jobs: Sequence[Job]) -> list[ProbeResult]:
        raise NotImplementedError

    def full(self, programs: Sequence[Algorithm], jobs: Sequence[Job]) -> list[FullResult]:
        raise NotImplementedError

    def probe_keys(self, programs: Sequence[Algorithm], jobs: Sequence[Job]) -> tuple[list[int], list[int]]:
        """FEC keys and probe train steps per job (default: `probe` + hash)."""
        start = time.perf_counter()
        probes = self.probe(programs, jobs)
        self.timers["probe"] += time.perf_counter() - start
        keys = [fec_hash(pr.train_errors, pr.valid_errors, self.tasks[job.task].index, job.num_train_examples)
                for job, pr in zip(jobs, probes, strict=True)]
        return keys, [int(pr.train_steps) for pr in probes]

    def job_seed(self, job: Job) -> int:
        """The random stream seed of `job`'s full evaluation."""
        return self.seed if job.seed is None else job.seed

    # -- counters --
    @property
    def fec_hits(self) -> int:
        return self.cache.hits if self.cache is not None else 0

    @property
    def fec_misses(self) -> int:
        return self.cache.misses if self.cache is not None else 0

    def counters(self) -> dict[str, int]:
        return {"individuals": self.num_individuals, "train_steps": self.num_train_steps,
                "full_evaluations": self.num_full_evaluations, "fec_hits": self.fec_hits,
                "fec_misses": self.fec_misses}

    # -- hurdles --
    def set_population(self, fitnesses: np.ndarray) -> None:
        """Updates the hurdle from the current population (the evolution loop
        calls this before each batch): the percentile of its unique finite
        fitnesses. No-op when hurdles are off."""
        if not self.hurdle_tasks:
            return
        values = np.unique(np.asarray(fitnesses, dtype=np.float64))
        values = values[np.isfinite(values)]
        self.hurdle_threshold = float(np.percentile(values, self.hurdle_percentile)) if values.size else None

    # -- evaluation --
    def _num_train(self, program: Algorithm, task: Task) -> int:
        max_train = task.num_train * task.num_train_epochs
        if self.train_budget is None:
            return max_train
        return self.train_budget.train_examples(program, max_train)

    def _evaluate_jobs(self, programs: list[Algorithm], jobs: list[Job]) -> list[float]:
        """Per-job fitness: FEC probe + lookup (if on), then one batched full
        evaluation of the misses; counts train steps."""
        # values[i]: a float, or the index of the full job that will produce it.
        values: list[float | int] = []
        full_jobs: list[Job] = []
        pending: list[tuple[int, _Pending]] = []
        if self.cache is None:
            values = list(range(len(jobs)))
            full_jobs = jobs
        else:
            keys, steps = self.probe_keys(programs, jobs)
            start = time.perf_counter()
            self.num_train_steps += int(sum(steps))
            cache = self.cache
            for job, key in zip(jobs, keys, strict=True):
                found = cache.find(key)
                if found is None:
                    marker = _Pending(len(full_jobs))
                    full_jobs.append(job)
                    cache.insert(key, marker)  # filled in below
                    pending.append((key, marker))
                    values.append(marker.job)
                elif isinstance(found, _Pending):
                    values.append(found.job)
                else:
                    values.append(float(found))
            self.timers["cache"] += time.perf_counter() - start
        start = time.perf_counter()
        results = self.full(programs, full_jobs) if full_jobs else []
        self.timers["full"] += time.perf_counter() - start
        self.num_full_evaluations += len(full_jobs)
        for r in results:
            self.num_train_steps += int(r.train_steps)
        if self.cache is not None:
            for key, marker in pending:
                self.cache.fill(key, marker, results[marker.job].fitness)
        return [v if isinstance(v, float) else float(results[v].fitness) for v in values]

    def __call__(self, programs: Sequence[Algorithm],
                 tasks: Sequence[Sequence[int]] | None = None) -> list[float]:
        """Combined fitness of each program over all tasks, or over
        `tasks[i]` (indices into this evaluator's task list) for program i:
        islands that search different task collections share one evaluator
        (one batched call, one FEC cache: keys include the task index)."""
        programs = list(programs)
        n = len(self.tasks)
        if tasks is None:
            task_lists: list[Sequence[int]] = [tuple(range(n))] * len(programs)
        else:
            if len(tasks) != len(programs):
                raise ValueError(f"tasks: one task list per program expected ({len(programs)}), got {len(tasks)}")
            task_lists = [tuple(int(t) for t in ts) for ts in tasks]
            for ts in task_lists:
                if not ts or min(ts) < 0 or max(ts) >= n:
                    raise ValueError(f"tasks: each program needs a non-empty list of task indices in [0, {n}), "
                                     f"got {list(ts)}")
        if self.train_budget is None:  # the common case, without a per-program Python loop
            row = [t.num_train * t.num_train_epochs for t in self.tasks]
            budgets = [row] * len(programs)
        else:
            budgets = [[self._num_train(program, task) for task in self.tasks] for program in programs]
        # Each individual's full evaluations draw from their own stream, keyed
        # by its number (see `rng.evaluation_seeds`).
        seeds = rng_lib.evaluation_seeds(self.seed, self.num_individuals, len(programs)).tolist()
        self.num_individuals += len(programs)

        def evaluate_on(which: Sequence[int], lists: Sequence[Sequence[int]]) -> list[list[float]]:
            """Per-task fitnesses of programs `which` on their task `lists`."""
            jobs = [Job(p, t, budgets[p][t], seeds[p]) for p, ts in zip(which, lists, strict=True) for t in ts]
            values = self._evaluate_jobs(programs, jobs)
            out, i = [], 0
            for ts in lists:
                out.append(values[i:i + len(ts)])
                i += len(ts)
            return out

        everyone = range(len(programs))
        if not self.hurdle_tasks or self.hurdle_threshold is None:
            return [fitness_lib.combine(v, self.combination) for v in evaluate_on(everyone, task_lists)]
        k = self.hurdle_tasks
        first = evaluate_on(everyone, [ts[:k] for ts in task_lists])
        out = [fitness_lib.combine(f, self.combination) for f in first]
        remaining = [i for i in everyone if len(task_lists[i]) > k]
        passed = [i for i in remaining if not out[i] < self.hurdle_threshold]
        self.num_hurdle_stops += len(remaining) - len(passed)
        if passed:
            rest = evaluate_on(passed, [task_lists[i][k:] for i in passed])
            for i, values in zip(passed, rest, strict=True):
                out[i] = fitness_lib.combine(first[i] + values, self.combination)
        return out


class ReferenceEvaluator(CachedEvaluator):
    """Evaluates with the NumPy reference interpreter, one (program, task) at
    a time."""

    def __init__(self, tasks: Sequence[Task], memory: MemoryShape, *, fec_spec: FECSpec | None = None,
                 train_budget: TrainBudget | None = None, combination: str = fitness_lib.MEAN,
                 max_abs_error: float = fitness_lib.MAX_ABS_ERROR, seed: int = 0, hurdle_tasks: int = 0,
                 hurdle_percentile: float = 75.0):
        super().__init__(tasks, fec_spec=fec_spec, train_budget=train_budget, combination=combination,
                         hurdle_tasks=hurdle_tasks, hurdle_percentile=hurdle_percentile, seed=seed)
        self.memory = memory
        self.max_abs_error = float(max_abs_error)

    def probe(self, programs: Sequence[Algorithm], jobs: Sequence[Job]) -> list[ProbeResult]:
        assert self.fec_spec is not None
        out = []
        for job in jobs:
            r = reference.evaluate_task(
                programs[job.program], self.tasks[job.task], self.memory, seed=FEC_RANDOM_SEED,
                max_abs_error=self.max_abs_error, num_train_examples=self.fec_spec.num_train_examples,
                num_valid_examples=self.fec_spec.num_valid_examples)
            out.append(ProbeResult(r.train_errors, r.valid_errors, r.train_steps))
        return out

    def full(self, programs: Sequence[Algorithm], jobs: Sequence[Job]) -> list[FullResult]:
        out = []
        for job in jobs:
            r = reference.evaluate_task(
                programs[job.program], self.tasks[job.task], self.memory, seed=self.job_seed(job),
                max_abs_error=self.max_abs_error, num_train_examples=job.num_train_examples)
            out.append(FullResult(float(r.fitness), int(r.train_steps)))
        return out
