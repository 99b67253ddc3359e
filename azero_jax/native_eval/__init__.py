"""The native CPU interpreter (Numba): jobs evaluated as the oracle does, in
parallel over the cores. See `kernel.py` for the why and the exactness rules.

Numba is an optional dependency (`pip install 'azero-jax[cpu]'`):
`available()` says whether it imports, `missing_reason()` what to install.

    data = TaskData.from_tasks(tasks)
    out = run_jobs(programs, data, memory, program=..., task=..., num_train=..., num_valid=..., seed=...,
                   record_errors=False)
"""

from __future__ import annotations

import concurrent.futures
import functools
import glob
import importlib.util
import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from azero_jax import fitness as fitness_lib
from azero_jax.native_eval import _compile
from azero_jax.program import OPERAND_KIND_CODES, MemoryShape, ProgramError
from azero_jax.program_arrays import ProgramArrays
from azero_jax.tasks import Task

_RULES = {fitness_lib.RMS_ERROR: 0, fitness_lib.ACCURACY: 1, fitness_lib.MULTICLASS: 2}
# Threads only for batches of at least this many jobs per thread (long jobs: one); each thread takes
# several blocks, so threads that draw cheap jobs take more of them.
MIN_JOBS_PER_THREAD = 8
BLOCKS_PER_THREAD = 4
# Batches whose jobs average at least this many examples (train + validation: an upper bound, early
# stops cut it) run one job per block: the last block of a call then leaves the other threads idle
# for at most one job, not a quarter of a thread's share.
LONG_JOB_EXAMPLES = 2000
# F values compiled in as constants (see `lanes.evaluate_jobs`); tasks of other F, or of several
# F in one batch, run the generic code.
FIXED_FEATURES = (4, 8, 16, 32)


def available() -> bool:
    """Whether Numba can be imported (the native backend needs it)."""
    return importlib.util.find_spec("numba") is not None


def threads() -> int:
    """Worker threads for a batch: AZERO_JAX_NATIVE_THREADS, else the CPUs this process may use."""
    value = os.environ.get("AZERO_JAX_NATIVE_THREADS")
    if value:
        return max(int(value), 1)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@functools.lru_cache(maxsize=8)
def _pool(workers: int) -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="azero-native")


def compiled_on_disk() -> bool:
    """Whether Numba's on-disk cache already holds the compiled interpreter
    (else the first batch compiles it: about 30 s on a 2-core CPU; a task F
    of FIXED_FEATURES not run before compiles its own version). Numba
    caches next to the source, or, where that is not writable, in its
    user-wide folder; NUMBA_CACHE_DIR overrides both."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        folders = [os.environ["NUMBA_CACHE_DIR"]]
    else:
        folders = [os.path.join(os.path.dirname(__file__), "__pycache__"),
                   os.path.join(os.path.expanduser("~"), ".cache", "numba")]
    return any(glob.glob(os.path.join(folder, "**", "lanes.evaluate_jobs-*.nbi"), recursive=True)
               for folder in folders)


def fixed_features(data: TaskData) -> int:
    """The F compiled in for `data`'s tasks: their F when they all share one
    of FIXED_FEATURES, else 0 (generic)."""
    values = np.unique(data.features)
    return int(values[0]) if values.size == 1 and int(values[0]) in FIXED_FEATURES else 0


def missing_reason() -> str:
    return ("the native backend needs Numba: pip install 'azero-jax[cpu]' (or pip install numba), "
            "or use --backend=xla")


class TaskData(NamedTuple):
    """Tasks as padded arrays (T tasks; N, NV, F the largest sizes)."""

    x_train: np.ndarray  # (T, N, F) float64
    y_train: np.ndarray  # (T, N)
    order: np.ndarray  # (T, E * N) int64: `Task.epoch_order`
    per_epoch: np.ndarray  # (T,) train examples per epoch
    x_valid: np.ndarray  # (T, NV, F)
    y_valid: np.ndarray  # (T, NV)
    valid_size: np.ndarray  # (T,) validation examples
    rule: np.ndarray  # (T,) 0 rms, 1 accuracy, 2 multiclass
    classes: np.ndarray  # (T,) C of multiclass tasks, else 0
    features: np.ndarray  # (T,)
    task_index: np.ndarray  # (T,) `Task.index` (keys the random stream)
    train_total: np.ndarray  # (T,) train examples over all epochs

    @classmethod
    def from_tasks(cls, tasks: Sequence[Task]) -> TaskData:
        t = len(tasks)
        n = max(task.num_train for task in tasks)
        nv = max(task.num_valid for task in tasks)
        f = max(task.features for task in tasks)
        total = max(task.num_train * task.num_train_epochs for task in tasks)
        x_train = np.zeros((t, n, f))
        y_train = np.zeros((t, n))
        order = np.zeros((t, total), dtype=np.int64)
        x_valid = np.zeros((t, nv, f))
        y_valid = np.zeros((t, nv))
        for i, task in enumerate(tasks):
            x_train[i, :task.num_train, :task.features] = task.x_train
            y_train[i, :task.num_train] = task.y_train
            epochs = task.epoch_order()
            order[i, :epochs.size] = epochs
            x_valid[i, :task.num_valid, :task.features] = task.x_valid
            y_valid[i, :task.num_valid] = task.y_valid

        def ints(values):
            return np.array(list(values), dtype=np.int64)

        return cls(x_train, y_train, order, ints(task.num_train for task in tasks), x_valid, y_valid,
                   ints(task.num_valid for task in tasks), ints(_RULES[task.eval_type] for task in tasks),
                   ints(task.num_classes if task.eval_type == fitness_lib.MULTICLASS else 0 for task in tasks),
                   ints(task.features for task in tasks), ints(task.index for task in tasks),
                   ints(task.num_train * task.num_train_epochs for task in tasks))


class JobResults(NamedTuple):
    fitness: np.ndarray  # (J,) float64
    train_steps: np.ndarray  # (J,) int64
    lengths: np.ndarray  # (J,) errors recorded per job
    errors: np.ndarray  # (J, max train + valid) float64, or (J, 0) when not recorded


def run_jobs(programs: ProgramArrays, data: TaskData, memory: MemoryShape, *, program: np.ndarray,
             task: np.ndarray, num_train: np.ndarray, num_valid: np.ndarray, seed: np.ndarray,
             max_abs_error: float = fitness_lib.MAX_ABS_ERROR, record_errors: bool = False) -> JobResults:
    """Evaluates job j = (programs[program[j]], task[j]) on min(num_train[j],
    the task's train examples over all epochs) train and min(num_valid[j],
    its validation examples) validation examples with random stream
    `seed[j]`, as `reference.evaluate_task` does."""
    from azero_jax.native_eval.lanes import evaluate_jobs

    program = np.ascontiguousarray(program, dtype=np.int64)
    task = np.ascontiguousarray(task, dtype=np.int64)
    jobs = program.shape[0]
    num_train = np.minimum(np.asarray(num_train, dtype=np.int64).reshape(-1), data.train_total[task])
    num_valid = np.minimum(np.asarray(num_valid, dtype=np.int64).reshape(-1), data.valid_size[task])
    seed = np.asarray(seed, dtype=np.int64).reshape(-1) & 0xFFFFFFFF
    width = int(num_train.max(initial=0) + num_valid.max(initial=0)) if record_errors else 0
    fitness = np.zeros(jobs)
    steps = np.zeros(jobs, dtype=np.int64)
    lengths = np.zeros(jobs, dtype=np.int64)
    errors = np.zeros((jobs, width))
    if jobs:
        f_hint = (0,) * fixed_features(data)
        code = []
        for comp in programs:
            code += [np.ascontiguousarray(comp.ints, dtype=np.int32), np.ascontiguousarray(comp.floats),
                     np.ascontiguousarray(comp.lengths, dtype=np.int64)]
        args = (*code, data.x_train, data.y_train, data.order, data.per_epoch, data.x_valid, data.y_valid,
                data.valid_size, data.rule, data.classes, data.features, data.task_index,
                program, task, num_train, num_valid, seed, float(max_abs_error),
                int(memory.scalars), int(memory.vectors), int(max(memory.matrices, 0)), OPERAND_KIND_CODES,
                fitness, steps, lengths, errors, f_hint)
        if len(f_hint) not in _compile.checked:  # the first run of this version in this process
            _compile.ensure_cached(evaluate_jobs, (*args, program[:1]), len(f_hint), int(data.features.max()))
        long_jobs = bool(num_train.sum() + num_valid.sum() >= LONG_JOB_EXAMPLES * jobs)
        workers = min(threads(), jobs if long_jobs else max(jobs // MIN_JOBS_PER_THREAD, 1))
        if workers == 1:
            evaluate_jobs(*args, np.arange(jobs))
        else:
            # Contiguous blocks, several per thread (interleaved jobs made the threads write
            # neighbouring output entries: false sharing cost 2 threads a third of their speed).
            bounds = np.linspace(0, jobs, (jobs if long_jobs else workers * BLOCKS_PER_THREAD) + 1).astype(np.int64)
            blocks = iter([np.arange(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo])

            def drain():  # threads take the next block from one shared iterator (next() holds the GIL)
                for which in blocks:
                    evaluate_jobs(*args, which)

            # The calling thread is one of the workers: one pool wake-up fewer per call, and no
            # core left to a thread that only waits.
            pool = _pool(workers - 1)
            helpers = [pool.submit(drain) for _ in range(workers - 1)]
            try:
                drain()
            finally:
                for helper in helpers:
                    helper.result()
        if lengths.min() < 0:
            j = int(np.argmax(lengths < 0))
            raise ProgramError(f"program {int(program[j])} has an op id outside 0..{OPERAND_KIND_CODES.shape[0] - 1} "
                               f"or an address outside memory {memory}")
    return JobResults(fitness, steps, lengths, errors)
