"""The `native` backend: the oracle's evaluation compiled for the CPU by Numba
(`azero_jax.native_eval`), jobs spread over the cores.

The CPU's fast path (docs/performance.md, "Native CPU interpreter"): one
(program, task) job at a time per core, like the authors' C++, instead of the
XLA interpreter's lock-step lanes, whose ~78 kernels per example step on the
demo bound it at a fraction of the C++'s speed. float64 only. Results equal the
reference backend's except where a transcendental (sin ... log, the sigmoid's
exp) rounds an ulp apart: Numba calls the C library as the authors' C++
does, NumPy uses its own SIMD versions (`tests/test_native_backend.py`).
Needs Numba (`pip install 'azero-jax[cpu]'`); without it, a one-line error.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from azero_jax import fitness as fitness_lib
from azero_jax import multiclass as mc
from azero_jax import native_eval
from azero_jax.evaluation.base import FullResults, Jobs, ProbeErrors
from azero_jax.program import MemoryShape
from azero_jax.program_arrays import ProgramArrays, Programs, from_algorithms
from azero_jax.tasks import Task


class NativeBackend:
    """`Backend` on the Numba interpreter (see the module docstring)."""

    name = "native"
    # The FEC probe memo (`CachedEvaluator.probe_keys`) computes a live-code key per program to skip
    # a quarter of the probes; on this backend a probe costs less than its key.
    probe_memo = False

    def __init__(self, tasks: Sequence[Task], memory: MemoryShape, *,
                 max_abs_error: float = fitness_lib.MAX_ABS_ERROR, dtype: str = "float64"):
        if dtype != "float64":
            raise ValueError(f"the native backend computes in float64; dtype {dtype!r} needs backend 'xla'")
        if not native_eval.available():
            raise ValueError(native_eval.missing_reason())
        self.tasks = tuple(tasks)
        if not self.tasks:
            raise ValueError("the native backend needs at least one task")
        if any(t.eval_type == fitness_lib.MULTICLASS for t in self.tasks):
            mc.check_vectors(memory.vectors)
        self.memory = memory
        self.max_abs_error = float(max_abs_error)
        self.data = native_eval.TaskData.from_tasks(self.tasks)
        # Wall seconds inside the interpreter (the search's profile subtracts them, as for xla).
        self.interpreter_seconds = 0.0

    @staticmethod
    def _arrays(programs: Programs) -> ProgramArrays:
        """Programs as arrays (the interpreter checks op ids and addresses itself)."""
        return programs if isinstance(programs, ProgramArrays) else from_algorithms(list(programs))

    def _run(self, programs: Programs, jobs: Jobs, num_train, num_valid, seed, record: bool):
        start = time.perf_counter()
        out = native_eval.run_jobs(self._arrays(programs), self.data, self.memory, program=jobs.program,
                                   task=jobs.task, num_train=num_train, num_valid=num_valid, seed=seed,
                                   max_abs_error=self.max_abs_error, record_errors=record)
        self.interpreter_seconds += time.perf_counter() - start
        return out

    def probe(self, programs: Programs, jobs: Jobs, *, num_train: int, num_valid: int,
              seed: int) -> ProbeErrors:
        n = len(jobs)
        out = self._run(programs, jobs, np.full(n, num_train), np.full(n, num_valid), np.full(n, seed), True)
        return ProbeErrors(out.errors, out.lengths, out.train_steps)

    def full(self, programs: Programs, jobs: Jobs) -> FullResults:
        out = self._run(programs, jobs, jobs.num_train_examples, self.data.valid_size[jobs.task], jobs.seed, False)
        return FullResults(out.fitness, out.train_steps)
