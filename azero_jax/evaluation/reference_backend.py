"""The `reference` backend: the NumPy oracle (`azero_jax.reference`), one
(program, task) job at a time, in float64.

Slow (tens of thousands of train steps per second) but the definition of
correct: the other backends are tested against it, and it against the
C++-evaluated cases.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from azero_jax import fitness as fitness_lib
from azero_jax import reference
from azero_jax.evaluation.base import FullResults, Jobs, ProbeErrors
from azero_jax.program import MemoryShape
from azero_jax.program_arrays import Programs, as_algorithms
from azero_jax.tasks import Task


class ReferenceBackend:
    """`Backend` on `reference.evaluate_task` (float64 only)."""

    name = "reference"

    def __init__(self, tasks: Sequence[Task], memory: MemoryShape, *,
                 max_abs_error: float = fitness_lib.MAX_ABS_ERROR, dtype: str = "float64"):
        if dtype != "float64":
            raise ValueError(f"the reference backend computes in float64; dtype {dtype!r} needs backend 'xla'")
        self.tasks = tuple(tasks)
        self.memory = memory
        self.max_abs_error = float(max_abs_error)

    def probe(self, programs: Programs, jobs: Jobs, *, num_train: int, num_valid: int,
              seed: int) -> ProbeErrors:
        programs = as_algorithms(programs)
        rows, steps = [], np.zeros(len(jobs), dtype=np.int64)
        for j, (p, t) in enumerate(zip(jobs.program.tolist(), jobs.task.tolist(), strict=True)):
            r = reference.evaluate_task(programs[p], self.tasks[t], self.memory, seed=seed,
                                        max_abs_error=self.max_abs_error, num_train_examples=num_train,
                                        num_valid_examples=num_valid)
            rows.append(np.concatenate([np.asarray(r.train_errors, dtype=np.float64).ravel(),
                                        np.asarray(r.valid_errors, dtype=np.float64).ravel()]))
            steps[j] = r.train_steps
        lengths = np.array([row.size for row in rows], dtype=np.int64)
        errors = np.zeros((len(rows), int(lengths.max(initial=0))), dtype=np.float64)
        for j, row in enumerate(rows):
            errors[j, :row.size] = row
        return ProbeErrors(errors, lengths, steps)

    def full(self, programs: Programs, jobs: Jobs) -> FullResults:
        programs = as_algorithms(programs)
        fitness = np.zeros(len(jobs), dtype=np.float64)
        steps = np.zeros(len(jobs), dtype=np.int64)
        for j, (p, t, n, s) in enumerate(zip(jobs.program.tolist(), jobs.task.tolist(),
                                             jobs.num_train_examples.tolist(), jobs.seed.tolist(), strict=True)):
            r = reference.evaluate_task(programs[p], self.tasks[t], self.memory, seed=s,
                                        max_abs_error=self.max_abs_error, num_train_examples=n)
            fitness[j], steps[j] = float(r.fitness), int(r.train_steps)
        return FullResults(fitness, steps)
