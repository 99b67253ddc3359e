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

import dataclasses
from collections.abc import Sequence

from azero_jax import fitness as fitness_lib
from azero_jax import reference
from azero_jax.program import Algorithm, MemoryShape
from azero_jax.search.fec import FEC_RANDOM_SEED, FECCache, FECSpec, fec_hash
from azero_jax.search.train_budget import TrainBudget
from azero_jax.tasks import Task

# The reference requires every task to allow at least this many train examples.
MIN_TRAIN_EXAMPLES = 10


@dataclasses.dataclass(frozen=True)
class Job:
    """One (program, task) evaluation: indices into the batch and the task
    list, and the number of train examples (all epochs) to use."""

    program: int
    task: int
    num_train_examples: int


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

    Subclasses implement `probe(programs, jobs)` and `full(programs, jobs)`.
    """

    def __init__(self, tasks: Sequence[Task], *, fec_spec: FECSpec | None = None,
                 train_budget: TrainBudget | None = None, combination: str = fitness_lib.MEAN):
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
        self.combination = combination
        self.fec_spec = fec_spec
        self.cache = FECCache(fec_spec) if fec_spec is not None else None
        self.train_budget = train_budget
        self.num_individuals = 0
        self.num_train_steps = 0
        self.num_full_evaluations = 0

    # -- hooks --
    def probe(self, programs: Sequence[Algorithm], jobs: Sequence[Job]) -> list[ProbeResult]:
        raise NotImplementedError

    def full(self, programs: Sequence[Algorithm], jobs: Sequence[Job]) -> list[FullResult]:
        raise NotImplementedError

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

    # -- evaluation --
    def _num_train(self, program: Algorithm, task: Task) -> int:
        max_train = task.num_train * task.num_train_epochs
        if self.train_budget is None:
            return max_train
        return self.train_budget.train_examples(program, max_train)

    def __call__(self, programs: Sequence[Algorithm]) -> list[float]:
        programs = list(programs)
        jobs = [Job(p, t, self._num_train(program, task))
                for p, program in enumerate(programs) for t, task in enumerate(self.tasks)]
        # values[i]: a float, or the index of the full job that will produce it.
        values: list[float | int] = []
        full_jobs: list[Job] = []
        if self.cache is None:
            values = list(range(len(jobs)))
            full_jobs = jobs
        else:
            probes = self.probe(programs, jobs)
            pending: list[tuple[int, _Pending]] = []
            for job, pr in zip(jobs, probes, strict=True):
                self.num_train_steps += int(pr.train_steps)
                key = fec_hash(pr.train_errors, pr.valid_errors, self.tasks[job.task].index, job.num_train_examples)
                found = self.cache.find(key)
                if found is None:
                    marker = _Pending(len(full_jobs))
                    full_jobs.append(job)
                    self.cache.insert(key, marker)  # filled in below
                    pending.append((key, marker))
                    values.append(marker.job)
                elif isinstance(found, _Pending):
                    values.append(found.job)
                else:
                    values.append(float(found))
        results = self.full(programs, full_jobs) if full_jobs else []
        self.num_full_evaluations += len(full_jobs)
        for r in results:
            self.num_train_steps += int(r.train_steps)
        if self.cache is not None:
            for key, marker in pending:
                self.cache.fill(key, marker, results[marker.job].fitness)
        per_task = [v if isinstance(v, float) else float(results[v].fitness) for v in values]
        n = len(self.tasks)
        self.num_individuals += len(programs)
        return [fitness_lib.combine(per_task[i * n:(i + 1) * n], self.combination) for i in range(len(programs))]


class ReferenceEvaluator(CachedEvaluator):
    """Evaluates with the NumPy reference interpreter, one (program, task) at
    a time. `seed` keys the random-set ops of full evaluations; probes use
    the reference's fixed FEC seed."""

    def __init__(self, tasks: Sequence[Task], memory: MemoryShape, *, fec_spec: FECSpec | None = None,
                 train_budget: TrainBudget | None = None, combination: str = fitness_lib.MEAN,
                 max_abs_error: float = fitness_lib.MAX_ABS_ERROR, seed: int = 0):
        super().__init__(tasks, fec_spec=fec_spec, train_budget=train_budget, combination=combination)
        self.memory = memory
        self.max_abs_error = float(max_abs_error)
        self.seed = int(seed)

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
                programs[job.program], self.tasks[job.task], self.memory, seed=self.seed,
                max_abs_error=self.max_abs_error, num_train_examples=job.num_train_examples)
            out.append(FullResult(float(r.fitness), int(r.train_steps)))
        return out
