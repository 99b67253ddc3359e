"""The `xla` backend: the batched JAX interpreter (`azero_jax.jax_eval`).

One call evaluates all its jobs in (at most) one `dispatch_batch` per task
group: tasks sharing (F, num_train, num_valid, multiclass C or 0) and, with per-island task
collections, the island group (a group's programs never run on the other
groups' tasks). Lanes nobody asked for run on 0 train examples and are
dropped.

FEC probe: each program of the group on the first `num_train` train and
`num_valid` valid examples of every task, with the probe seed. Per-example
train errors come from the interpreter's details; valid errors are
recomputed on the host from the raw predictions with the shared rule
(`fitness.example_errors`, as `reference._validate` records them; on
multiclass tasks from the predicted classes, `multiclass.class_error`).

dtype: float64 errors are bit-identical to the reference's, so both backends
hash alike. float32 errors hash differently (other bits): FEC hits, and so
search trajectories, are consistent within the float32 backend only.

Batching: each call's programs are split into chunks of at most `chunk`
(default 128) and each chunk is padded to a power-of-two size >= MIN_BATCH, so
a run compiles a few shapes once, not one per FEC-miss count. On CPU small
chunks are also faster per program than big ones (measured on the demo, 2-core
CPU: full evaluation 270 us/program at 64 vs 450 at 1000; the working set
stays in cache), and per-call overhead is small next to that. All chunks of
a call are dispatched before any result is read (JAX runs them
asynchronously), so the host packs the next chunk while the devices run the
previous one; with one host device per CPU core (`azero_jax.cpu_devices`)
every chunk is also sharded over the cores. Sizes are multiples of the
device count. FEC probes pad every chunk to `chunk` programs: XLA's
reductions (dot) may round differently at other batch sizes, and a probe must
give a program the same bits wherever it is evaluated.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import jax
import numpy as np

from azero_jax import fitness as fitness_lib
from azero_jax import jax_eval
from azero_jax import multiclass as mc
from azero_jax import ops as ops_lib
from azero_jax.evaluation.base import FullResults, Jobs, ProbeErrors
from azero_jax.program import COMPONENTS, Algorithm, MemoryShape
from azero_jax.program_arrays import Programs, count, select
from azero_jax.tasks import Task

# Smallest padded batch: fewer buckets (compiles) at little cost on CPU.
MIN_BATCH = 32
DEFAULT_CHUNK = 128


def batch_size_for(n: int, minimum: int = MIN_BATCH) -> int:
    """Next power of two >= max(n, minimum)."""
    b = max(int(minimum), 1)
    while b < n:
        b *= 2
    return b


def op_subsets_for(allowed: dict[str, Sequence[int]], *extra: Algorithm) -> dict[str, list[int]]:
    """Per component, the allowed ops plus the ops of fixed programs (a
    hand-written initial population may use others), plus NO_OP: the
    interpreter is compiled for exactly these."""
    out = {}
    for c in COMPONENTS:
        ops = {int(o) for o in ops_lib.resolve_op_ids(allowed.get(c, ()))} | {ops_lib.NO_OP_ID}
        for program in extra:
            ops.update(int(instr.op) for instr in program.component(c))
        out[c] = sorted(ops)
    return out


class _Group:
    """Tasks sharing (F, num_train, num_valid, island group): one batched call."""

    def __init__(self, indices: list[int], tasks: Sequence[Task], num_tasks: int):
        self.indices = np.asarray(indices, dtype=np.int64)  # positions in the backend's task list
        self.local = np.full(num_tasks, -1, dtype=np.int64)  # task position -> column in this group
        self.local[self.indices] = np.arange(len(indices))
        self.members = [tasks[i] for i in indices]
        self.arrays = jax_eval.TaskArrays(self.members)
        self.y_valid = np.stack([t.y_valid for t in self.members])  # (T, NV)
        self.classification = np.array([t.eval_type == fitness_lib.ACCURACY for t in self.members])
        self.num_classes = self.arrays.num_classes  # > 0: a multiclass group
        self._probe_arrays: dict[tuple[int, int], jax_eval.TaskArrays] = {}

    def probe_arrays(self, num_train: int, num_valid: int) -> jax_eval.TaskArrays:
        """The probe trains on the first examples of epoch 0 (natural order):
        a truncated single-epoch copy of each task is the same computation.
        A probe spanning several epochs runs on the full arrays."""
        if num_train > self.members[0].num_train:
            return self.arrays
        key = (num_train, num_valid)
        if key not in self._probe_arrays:
            self._probe_arrays[key] = jax_eval.TaskArrays([
                Task(t.x_train[:num_train], t.y_train[:num_train], t.x_valid[:num_valid], t.y_valid[:num_valid],
                     eval_type=t.eval_type, num_train_epochs=1, data_seed=t.data_seed, param_seed=t.param_seed,
                     index=t.index, name=t.name, num_classes=t.num_classes)
                for t in self.members])
        return self._probe_arrays[key]

    def split(self, jobs: Jobs) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Jobs of this group: their positions, the distinct programs (sorted),
        and each job's row (program) and column (task) in the batch."""
        cols_all = self.local[jobs.task]
        positions = np.flatnonzero(cols_all >= 0)
        programs = np.unique(jobs.program[positions])
        rows = np.searchsorted(programs, jobs.program[positions])
        return positions, programs, rows, cols_all[positions]


class XlaBackend:
    """`Backend` on the batched XLA interpreter (see the module docstring).

    `op_subsets` are the ops the interpreter is compiled for (see
    `op_subsets_for`; None = the full table); `task_groups` (one id per
    task) keeps islands' task collections in separate batched calls.
    """

    name = "xla"

    def __init__(self, tasks: Sequence[Task], memory: MemoryShape, *,
                 max_abs_error: float = fitness_lib.MAX_ABS_ERROR, dtype: str = "float64",
                 op_subsets: dict[str, Sequence[int]] | None = None, chunk: int = DEFAULT_CHUNK,
                 task_groups: Sequence[int] | None = None):
        self.tasks = tuple(tasks)
        if not self.tasks:
            raise ValueError("the xla backend needs at least one task")
        if dtype not in jax_eval.DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(jax_eval.DTYPES)}, got {dtype!r}")
        self.memory = memory.with_features(self.tasks[0].features)
        self.max_abs_error = float(max_abs_error)
        self.dtype = dtype
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        # Batches are sharded over all local devices (e.g. one host device per
        # CPU core, see `azero_jax.cpu_devices`): sizes are multiples of their count.
        self.num_devices = len(jax.local_devices())
        self.chunk = self._round(int(chunk))
        self.op_subsets = None if op_subsets is None else {c: list(op_subsets[c]) for c in COMPONENTS}
        if task_groups is not None and len(task_groups) != len(self.tasks):
            raise ValueError(f"task_groups needs one group id per task ({len(self.tasks)}), got {len(task_groups)}")
        shapes: dict[tuple[int, int, int, int, int], list[int]] = {}
        for i, t in enumerate(self.tasks):
            group = 0 if task_groups is None else int(task_groups[i])
            classes = t.num_classes if t.eval_type == fitness_lib.MULTICLASS else 0  # multiclass tasks apart
            shapes.setdefault((t.features, t.num_train, t.num_valid, group, classes), []).append(i)
        self.groups = [_Group(idx, self.tasks, len(self.tasks)) for idx in shapes.values()]
        # Wall seconds inside the interpreter calls (packing, dispatch, waiting for results): the
        # search's time profile subtracts them to get its host time per child.
        self.interpreter_seconds = 0.0

    def _round(self, size: int) -> int:
        return -(-size // self.num_devices) * self.num_devices

    def _dispatch(self, programs: Programs, arrays: jax_eval.TaskArrays, *, seed: int | np.ndarray,
                  num_train_examples: int | np.ndarray, batch_size: int, probe: bool):
        """Starts one chunk (a subclass may run another kernel); `_result` waits for it."""
        return jax_eval.dispatch_batch(programs, arrays, self.memory, op_subsets=self.op_subsets, dtype=self.dtype,
                                       seed=seed, max_abs_error=self.max_abs_error,
                                       num_train_examples=num_train_examples, return_details=True,
                                       batch_size=batch_size)

    @staticmethod
    def _result(pending) -> tuple[np.ndarray, jax_eval.Details]:
        return pending.result()

    def _run(self, programs: Programs, arrays: jax_eval.TaskArrays, *, seed: int | np.ndarray,
             num_train_examples: int | np.ndarray, fixed_size: bool = False) -> tuple[np.ndarray, jax_eval.Details]:
        """The batch in chunks; fitness and details concatenated over chunks
        (num_train_examples: int, or per program and task; seed: one for all,
        or one per program). fixed_size (the FEC probe) pads every chunk to
        `chunk` programs. Details a kernel did not write stay None."""
        per_program = isinstance(num_train_examples, np.ndarray) and num_train_examples.ndim == 2
        pending = []
        n = count(programs)
        for lo in range(0, n, self.chunk):
            part = programs if n <= self.chunk else select(programs, np.arange(lo, min(lo + self.chunk, n)))
            counts = num_train_examples[lo:lo + self.chunk] if per_program else num_train_examples
            part_seed = seed[lo:lo + self.chunk] if isinstance(seed, np.ndarray) else seed
            size = self.chunk if fixed_size else self._round(batch_size_for(count(part), min(MIN_BATCH, self.chunk)))
            start = time.perf_counter()
            pending.append(self._dispatch(part, arrays, seed=part_seed, num_train_examples=counts, batch_size=size,
                                          probe=fixed_size))
            self.interpreter_seconds += time.perf_counter() - start
        start = time.perf_counter()
        results = [self._result(p) for p in pending]
        self.interpreter_seconds += time.perf_counter() - start
        if len(results) == 1:
            return results[0]
        return (np.concatenate([r[0] for r in results]),
                jax_eval.Details(*(None if parts[0] is None else np.concatenate(parts)
                                   for parts in zip(*(r[1] for r in results), strict=True))))

    def _split(self, jobs: Jobs):
        """(group, positions, programs, rows, cols) for every group with jobs (see `_Group.split`)."""
        for group in self.groups:
            positions, programs, rows, cols = group.split(jobs)
            if positions.size:
                yield group, positions, programs, rows, cols

    def probe(self, programs: Programs, jobs: Jobs, *, num_train: int, num_valid: int,
              seed: int) -> ProbeErrors:
        errors = np.zeros((len(jobs), num_train + num_valid), dtype=np.float64)
        lengths = np.zeros(len(jobs), dtype=np.int64)
        steps = np.zeros(len(jobs), dtype=np.int64)
        for group, positions, prog_ids, rows, cols in self._split(jobs):
            _, d = self._run(select(programs, prog_ids), group.probe_arrays(num_train, num_valid),
                             seed=seed, num_train_examples=num_train, fixed_size=True)
            errors[positions], lengths[positions], steps[positions] = self._probe_errors(
                group, d, rows, cols, num_train, num_valid)
        return ProbeErrors(errors, lengths, steps)

    def _probe_errors(self, group: _Group, d: jax_eval.Details, rows: np.ndarray, cols: np.ndarray, n_train: int,
                      nv: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Train errors up to train_steps, then the valid errors of the last
        validated epoch up to and including the first one that stops
        validation (as `reference._validate` records them), packed to the
        front of each row."""
        train_steps = d.train_steps[rows, cols].astype(np.int64)
        train = d.train_errors[rows, cols, :n_train].astype(np.float64)
        train_len = np.minimum(train_steps, n_train)
        validated = d.validated[rows, cols]  # (J, E)
        any_valid = validated.any(axis=1)
        last_epoch = validated.shape[1] - 1 - np.argmax(validated[:, ::-1], axis=1)
        pred = d.valid_predictions[rows, cols, last_epoch, :nv].astype(np.float64)  # (J, NV)
        label = group.y_valid[cols, :nv]
        with np.errstate(all="ignore"):  # the shared rule; False: no classification task, no sigmoid
            if group.num_classes:  # predictions are the predicted classes (NaN: undefined softmax)
                err = mc.class_error(np, label, pred)
                stop = fitness_lib.early_stop(np, err, self.max_abs_error)
            else:
                classification = group.classification[cols][:, None] if group.classification.any() else False
                err, stop = fitness_lib.valid_error(np, label, pred, classification, self.max_abs_error)
        valid_len = np.where(stop.any(axis=1), np.argmax(stop, axis=1) + 1, nv)
        valid_len = np.where(any_valid, valid_len, 0)
        both = np.concatenate([train, err], axis=1)
        k = np.arange(both.shape[1])
        mask = np.concatenate([k[None, :n_train] < train_len[:, None],
                               k[None, :nv] < valid_len[:, None]], axis=1)
        if not mask.all():  # pack each row's sequence to the front
            order = np.argsort(~mask, axis=1, kind="stable")
            both = np.take_along_axis(both, order, axis=1)
        return both, train_len + valid_len, train_steps

    def full(self, programs: Programs, jobs: Jobs) -> FullResults:
        fitness = np.zeros(len(jobs), dtype=np.float64)
        steps = np.zeros(len(jobs), dtype=np.int64)
        for group, positions, prog_ids, rows, cols in self._split(jobs):
            # Lanes nobody asked for train on 0 examples (their results are dropped).
            counts = np.zeros((len(prog_ids), len(group.indices)), dtype=np.int64)
            counts[rows, cols] = jobs.num_train_examples[positions]
            seeds = np.zeros(len(prog_ids), dtype=np.int64)  # made uint32 by dispatch_compiled
            seeds[rows] = jobs.seed[positions]
            if not np.array_equal(seeds[rows], jobs.seed[positions]):
                raise ValueError("the jobs of one program must share one random stream seed (one lane per program)")
            fit, d = self._run(select(programs, prog_ids), group.arrays, seed=seeds,
                               num_train_examples=counts)
            fitness[positions] = fit[rows, cols]
            steps[positions] = d.train_steps[rows, cols]
        return FullResults(fitness, steps)
