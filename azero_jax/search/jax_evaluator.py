"""`CachedEvaluator` on the batched JAX interpreter (`azero_jax.jax_eval`).

One search step becomes (at most) two `evaluate_batch` calls per task shape:
the FEC probe of every child on every task, then one full evaluation of the
FEC misses. Everything else (cache, counters, budget, hurdles) is the shared
`CachedEvaluator` logic, so results equal the reference evaluator's whenever
the interpreters agree (float64 on ops without transcendentals: bit-exact).

FEC probe: the first `fec.num_train_examples` train and `fec.num_valid_examples`
valid examples of each task, run as separate small tasks (built once), with
the reference's fixed probe seed. Per-example train errors come from the
interpreter's details, valid errors are recomputed on the host from the raw
predictions exactly as `reference._validate` does. The errors are hashed with
`fec_hash_batch` (the same hash as the reference backend's `fec_hash`).

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
device count.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import jax
import numpy as np

from azero_jax import fitness as fitness_lib
from azero_jax import ops as ops_lib
from azero_jax.jax_eval import TaskArrays, dispatch_batch
from azero_jax.program import COMPONENTS, Algorithm, MemoryShape
from azero_jax.search.evaluator import CachedEvaluator, FullResult, Job
from azero_jax.search.fec import FEC_RANDOM_SEED, FECSpec, fec_hash_batch
from azero_jax.search.train_budget import TrainBudget
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
    """Tasks sharing (F, num_train, num_valid): one evaluate_batch call."""

    def __init__(self, indices: list[int], tasks: Sequence[Task], fec_spec: FECSpec | None):
        self.indices = indices  # positions in the evaluator's task list
        self.local = {t: i for i, t in enumerate(indices)}
        members = [tasks[i] for i in indices]
        self.arrays = TaskArrays(members)
        self.probe_arrays: TaskArrays | None = None
        self.probe_train = self.probe_valid = 0
        if fec_spec is not None:
            self.probe_train, self.probe_valid = fec_spec.num_train_examples, fec_spec.num_valid_examples
            if self.probe_train <= members[0].num_train:
                # The probe trains on the first examples of epoch 0 (natural order):
                # a truncated single-epoch copy of each task is the same computation.
                self.probe_arrays = TaskArrays([
                    Task(t.x_train[:self.probe_train], t.y_train[:self.probe_train], t.x_valid[:self.probe_valid],
                         t.y_valid[:self.probe_valid], eval_type=t.eval_type, num_train_epochs=1,
                         data_seed=t.data_seed, param_seed=t.param_seed, index=t.index, name=t.name)
                    for t in members])
            # else: the probe spans several epochs; run it on the full arrays.
        self.y_valid = np.stack([t.y_valid for t in members])  # (T, NV)
        self.classification = np.array([t.eval_type == fitness_lib.ACCURACY for t in members])
        self.task_index = np.array([t.index for t in members], dtype=np.int64)


class JaxEvaluator(CachedEvaluator):
    """Batched JAX evaluator for the search (see the module docstring).

    `op_subsets` are the ops the interpreter is compiled for (see
    `op_subsets_for`); `seed` keys the random-set ops of full evaluations
    (see `CachedEvaluator`);
    `task_groups` (one id per task) keeps islands' task collections in
    separate batched calls.
    """

    def __init__(self, tasks: Sequence[Task], memory: MemoryShape, *, fec_spec: FECSpec | None = None,
                 train_budget: TrainBudget | None = None, combination: str = fitness_lib.MEAN,
                 max_abs_error: float = fitness_lib.MAX_ABS_ERROR, seed: int = 0, dtype: str = "float64",
                 op_subsets: dict[str, Sequence[int]] | None = None, hurdle_tasks: int = 0,
                 hurdle_percentile: float = 75.0, chunk: int = DEFAULT_CHUNK,
                 task_groups: Sequence[int] | None = None):
        super().__init__(tasks, fec_spec=fec_spec, train_budget=train_budget, combination=combination,
                         hurdle_tasks=hurdle_tasks, hurdle_percentile=hurdle_percentile, seed=seed)
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
        # One batched call per task shape (and per island task group: a group's
        # programs are never run on the other groups' tasks).
        if task_groups is not None and len(task_groups) != len(self.tasks):
            raise ValueError(f"task_groups needs one group id per task ({len(self.tasks)}), got {len(task_groups)}")
        shapes: dict[tuple[int, int, int, int], list[int]] = {}
        for i, t in enumerate(self.tasks):
            group = 0 if task_groups is None else int(task_groups[i])
            shapes.setdefault((t.features, t.num_train, t.num_valid, group), []).append(i)
        self.groups = [_Group(idx, self.tasks, fec_spec) for idx in shapes.values()]
        self._group_of = {t: g for g in self.groups for t in g.indices}

    def _round(self, size: int) -> int:
        return -(-size // self.num_devices) * self.num_devices

    def _run(self, programs: Sequence[Algorithm], arrays: TaskArrays, *, seed: int | np.ndarray,
             num_train_examples: int | np.ndarray | None,
             fixed_size: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """evaluate_batch in chunks; fitness and the details used here,
        concatenated over chunks (num_train_examples: int, or per program
        and task). fixed_size pads every chunk to `chunk` programs: XLA's
        reductions (dot) may round differently at other batch sizes, and FEC
        probes must give a program the same bits wherever it is evaluated.
        seed: one for all, or one per program."""
        per_program = isinstance(num_train_examples, np.ndarray) and num_train_examples.ndim == 2

        # Every chunk is dispatched before any result is read: JAX runs them
        # asynchronously, so packing chunk k+1 on the host overlaps with the
        # devices evaluating chunk k.
        pending = []
        for lo in range(0, len(programs), self.chunk):
            part = list(programs[lo:lo + self.chunk])
            counts = num_train_examples[lo:lo + self.chunk] if per_program else num_train_examples
            part_seed = seed[lo:lo + self.chunk] if isinstance(seed, np.ndarray) else seed
            size = self.chunk if fixed_size else self._round(batch_size_for(len(part), min(MIN_BATCH, self.chunk)))
            pending.append(dispatch_batch(part, arrays, self.memory, op_subsets=self.op_subsets, dtype=self.dtype,
                                          seed=part_seed, max_abs_error=self.max_abs_error, num_train_examples=counts,
                                          return_details=True, batch_size=size))
        results = [p.result() for p in pending]
        fits = [r[0] for r in results]
        details = [r[1] for r in results]
        if len(fits) == 1:
            return fits[0], details[0]
        keys = ("train_steps", "train_errors", "validated", "valid_predictions")
        return np.concatenate(fits), {k: np.concatenate([d[k] for d in details]) for k in keys}

    @staticmethod
    def _split(jobs: Sequence[Job], group: _Group) -> tuple[list[int], list[int], np.ndarray, np.ndarray]:
        """Jobs of this group: their positions, the distinct programs, and
        each job's row (program) and column (task) in the batch."""
        positions = [j for j, job in enumerate(jobs) if job.task in group.local]
        programs = sorted({jobs[j].program for j in positions})
        row = {p: r for r, p in enumerate(programs)}
        rows = np.array([row[jobs[j].program] for j in positions], dtype=np.int64)
        cols = np.array([group.local[jobs[j].task] for j in positions], dtype=np.int64)
        return positions, programs, rows, cols

    def probe_keys(self, programs: Sequence[Algorithm], jobs: Sequence[Job]) -> tuple[list[int], list[int]]:
        assert self.fec_spec is not None
        keys = [0] * len(jobs)
        steps = [0] * len(jobs)
        for group in self.groups:
            positions, prog_ids, rows, cols = self._split(jobs, group)
            if not positions:
                continue
            start = time.perf_counter()
            arrays = group.probe_arrays if group.probe_arrays is not None else group.arrays
            _, d = self._run([programs[p] for p in prog_ids], arrays, seed=FEC_RANDOM_SEED,
                             num_train_examples=group.probe_train, fixed_size=True)
            self.timers["probe"] += time.perf_counter() - start
            start = time.perf_counter()
            job_keys, job_steps = self._probe_hashes(group, d, rows, cols, jobs, positions)
            for j, key, s in zip(positions, job_keys.tolist(), job_steps.tolist(), strict=True):
                keys[j] = key
                steps[j] = s
            self.timers["hash"] += time.perf_counter() - start
        return keys, steps

    def _probe_hashes(self, group: _Group, d: dict, rows: np.ndarray, cols: np.ndarray, jobs: Sequence[Job],
                      positions: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Train errors up to train_steps, then the valid errors of the last
        validated epoch up to and including the first one that stops
        validation (as `reference._validate` records them), hashed."""
        n_train = group.probe_train
        train_steps = d["train_steps"][rows, cols].astype(np.int64)
        train = d["train_errors"][rows, cols, :n_train].astype(np.float64)
        train_len = np.minimum(train_steps, n_train)
        validated = d["validated"][rows, cols]  # (J, E)
        any_valid = validated.any(axis=1)
        last_epoch = validated.shape[1] - 1 - np.argmax(validated[:, ::-1], axis=1)
        nv = group.probe_valid
        pred = d["valid_predictions"][rows, cols, last_epoch, :nv].astype(np.float64)  # (J, NV)
        label = group.y_valid[cols, :nv]
        with np.errstate(all="ignore"):
            err = np.abs(label - pred)
            if group.classification.any():
                p = np.asarray(fitness_lib.sigmoid(pred), dtype=np.float64)
                cls_err = np.where((p < 0.0) | (p > 1.0), np.inf, np.where((label > 0.5) == (p > 0.5), 0.0, 1.0))
                err = np.where(group.classification[cols][:, None], cls_err, err)
            stop = np.isnan(err) | (err > self.max_abs_error)
        valid_len = np.where(stop.any(axis=1), np.argmax(stop, axis=1) + 1, nv)
        valid_len = np.where(any_valid, valid_len, 0)
        both = np.concatenate([train, err], axis=1)
        k = np.arange(both.shape[1])
        mask = np.concatenate([k[None, :n_train] < train_len[:, None],
                               k[None, :nv] < valid_len[:, None]], axis=1)
        if not mask.all():  # pack each row's sequence to the front
            order = np.argsort(~mask, axis=1, kind="stable")
            both = np.take_along_axis(both, order, axis=1)
        num_train = np.array([jobs[j].num_train_examples for j in positions], dtype=np.int64)
        keys = fec_hash_batch(both, train_len + valid_len, group.task_index[cols], num_train)
        return keys, train_steps

    def full(self, programs: Sequence[Algorithm], jobs: Sequence[Job]) -> list[FullResult]:
        # Over the train budget: not trained, minimum fitness (as the reference).
        out = [FullResult(fitness_lib.MIN_FITNESS, 0)] * len(jobs)
        live = [j for j, job in enumerate(jobs) if job.num_train_examples > 0]
        live_jobs = [jobs[j] for j in live]
        for group in self.groups:
            positions, prog_ids, rows, cols = self._split(live_jobs, group)
            if not positions:
                continue
            # Lanes nobody asked for train on 0 examples (their results are dropped).
            counts = np.zeros((len(prog_ids), len(group.indices)), dtype=np.int64)
            counts[rows, cols] = [live_jobs[j].num_train_examples for j in positions]
            job_seeds = np.array([self.job_seed(live_jobs[j]) for j in positions], dtype=np.int64)
            seeds = np.zeros(len(prog_ids), dtype=np.int64)  # made uint32 by dispatch_compiled
            seeds[rows] = job_seeds
            if not np.array_equal(seeds[rows], job_seeds):
                raise ValueError("the jobs of one program must share one random stream seed (one lane per program)")
            fit, d = self._run([programs[p] for p in prog_ids], group.arrays, seed=seeds,
                               num_train_examples=counts)
            fits = fit[rows, cols].tolist()
            steps = d["train_steps"][rows, cols].tolist()
            for i, j in enumerate(positions):
                out[live[j]] = FullResult(float(fits[i]), int(steps[i]))
        return out
