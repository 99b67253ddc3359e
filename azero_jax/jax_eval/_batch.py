"""The batched evaluation entry points (re-exported by `azero_jax.jax_eval`):
task layout, per-lane arguments, dispatch, and the host-side fitness.

Everything here runs on the host around one jitted evaluator per static
configuration (`interpreter.build_evaluator`); see the package docstring for
the batching rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from azero_jax import fitness as fitness_lib
from azero_jax import ops as ops_lib
from azero_jax.jax_eval.compile import CompiledBatch, compile_programs
from azero_jax.jax_eval.interpreter import Static, build_evaluator
from azero_jax.multiclass import check_vectors
from azero_jax.program import COMPONENTS, Algorithm, MemoryShape
from azero_jax.program_arrays import ProgramArrays
from azero_jax.tasks import Task

DTYPES = ("float64", "float32")


def enable_x64(enabled: bool = True) -> None:
    """Switches JAX's global 64-bit mode (call before creating arrays)."""
    jax.config.update("jax_enable_x64", bool(enabled))


class x64_scope:
    """Context manager: JAX's 64-bit mode for `dtype` "float64" when it is
    off globally (float32 and an already global x64 change nothing)."""

    def __init__(self, dtype: str):
        self._ctx = None
        if dtype == "float64" and not jax.config.jax_enable_x64:
            self._ctx = jax.enable_x64(True) if hasattr(jax, "enable_x64") else _experimental_x64()

    def __enter__(self):
        if self._ctx is not None:
            self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        if self._ctx is not None:
            return self._ctx.__exit__(*exc)
        return False


def _experimental_x64():
    from jax.experimental import enable_x64 as ctx  # older JAX

    return ctx()


class TaskArrays:
    """Task data laid out for the interpreter (examples major, tasks last)."""

    def __init__(self, tasks: Sequence[Task]):
        if not tasks:
            raise ValueError("evaluate_batch needs at least one task")
        first = tasks[0]
        for t in tasks:
            if (t.features, t.num_train, t.num_valid) != (first.features, first.num_train, first.num_valid):
                raise ValueError(
                    "tasks of one batch must share F and train/valid sizes; got "
                    f"(F={t.features}, train={t.num_train}, valid={t.num_valid}) vs (F={first.features}, "
                    f"train={first.num_train}, valid={first.num_valid}); group tasks by shape")
        kinds = {(t.eval_type == fitness_lib.MULTICLASS, t.num_classes) for t in tasks}
        if len(kinds) > 1:
            raise ValueError("tasks of one batch must all be multiclass tasks with the same num_classes, or all "
                             f"not multiclass; got (multiclass, num_classes) {sorted(kinds)}; group tasks by eval type")
        self.tasks = tuple(tasks)
        # C of multiclass tasks (the interpreter's vector-output layout, `azero_jax.multiclass`), else 0.
        self.num_classes = first.num_classes if first.eval_type == fitness_lib.MULTICLASS else 0
        self.features = first.features
        self.num_train = first.num_train
        self.num_valid = first.num_valid
        self.num_epochs = max(t.num_train_epochs for t in tasks)
        n_all = self.num_epochs * self.num_train
        xs, ys = [], []
        for t in tasks:
            order = t.epoch_order()
            order = np.concatenate([order, np.zeros(n_all - len(order), dtype=order.dtype)])  # masked tail
            xs.append(t.x_train[order])
            ys.append(t.y_train[order])
        x = np.stack(xs, axis=1)  # (E*N, T, F)
        y = np.stack(ys, axis=-1)  # (E*N, T)
        self.x_steps = x.reshape(self.num_epochs, self.num_train, len(tasks), self.features)
        self.y_steps = y.reshape(self.num_epochs, self.num_train, len(tasks))
        self.x_valid = np.stack([t.x_valid for t in tasks], axis=1)
        self.y_valid = np.stack([t.y_valid for t in tasks], axis=-1)
        self.task_index = np.array([t.index & 0xFFFFFFFF for t in tasks], dtype=np.uint32)
        self.classification = np.array([t.eval_type == fitness_lib.ACCURACY for t in tasks])  # sigmoid on s1
        self.scored_by_accuracy = np.array([fitness_lib.scored_by_accuracy(t.eval_type) for t in tasks])
        self.max_train = np.array([t.num_train * t.num_train_epochs for t in tasks], dtype=np.int64)
        self._on_devices: dict[tuple, tuple] = {}

    def device_args(self, dtype: str, devices: tuple[Any, ...]) -> tuple:
        """(x_steps, y_steps, x_valid, y_valid, task_index, classification)
        replicated on `devices` once per (dtype, devices) and reused: passed
        as NumPy they were transferred again on every call (~40 us per array
        and call, ~2 % of a demo search)."""
        key = (dtype, devices)
        if key not in self._on_devices:
            host = (self.x_steps, self.y_steps, self.x_valid, self.y_valid, self.task_index, self.classification)
            if len(devices) > 1:
                from jax.sharding import Mesh, NamedSharding
                from jax.sharding import PartitionSpec as P

                target = NamedSharding(Mesh(np.array(devices), ("p",)), P())
            else:
                target = devices[0]
            with x64_scope(dtype):
                self._on_devices[key] = tuple(jax.device_put(a, target) for a in host)
        return self._on_devices[key]


def _lane_train_counts(num_train_examples, arrays: TaskArrays, batch: int, n: int) -> np.ndarray:
    """(T, P) int32 train examples per lane (min with the task's maximum)."""
    t = len(arrays.tasks)
    if num_train_examples is None:
        req = np.broadcast_to(arrays.max_train[:, None], (t, batch))
    else:
        req = np.asarray(num_train_examples, dtype=np.int64)
        if req.ndim == 0:
            req = np.broadcast_to(req, (t, batch))
        elif req.shape == (t,):
            req = np.broadcast_to(req[:, None], (t, batch))
        elif req.shape == (n, t):
            full = np.zeros((t, batch), np.int64)
            full[:, :n] = req.T
            req = full
        else:
            raise ValueError(f"num_train_examples must be an int, shape ({t},) or ({n}, {t}); got {req.shape}")
    return np.minimum(req, arrays.max_train[:, None]).clip(0, None).astype(np.int32)


def _lane_seeds(seed: Any, batch: int, n: int) -> np.ndarray:
    """(P,) uint32 random stream seed per program lane."""
    if isinstance(seed, (int, np.integer)):
        return np.full(batch, int(seed) & 0xFFFFFFFF, dtype=np.uint32)
    seeds = np.asarray(seed)
    if seeds.shape != (n,) or not np.issubdtype(seeds.dtype, np.integer):
        raise ValueError(f"seed must be an int or one integer per program ({n},); got {seeds.dtype} {seeds.shape}")
    out = np.zeros(batch, dtype=np.uint32)
    out[:n] = (seeds.astype(np.int64) & 0xFFFFFFFF).astype(np.uint32)
    return out


def _fitness(out: dict[str, np.ndarray], arrays: TaskArrays) -> np.ndarray:
    """(T, P) fitness from per-epoch validation losses (host, float64): the
    shared rule `fitness.fitness_from_loss`, then the best epoch."""
    with np.errstate(all="ignore"):
        fit = fitness_lib.fitness_from_loss(np, out["loss"].astype(np.float64), arrays.num_valid,
                                            arrays.scored_by_accuracy[None, :, None], out["validated"] & ~out["vstop"])
    return np.maximum(fit.max(axis=0), fitness_lib.MIN_FITNESS)


class Details(NamedTuple):
    """Per program and task, what a batch did besides its fitness (arrays;
    P = programs, T = tasks, E = epochs, N = train examples per epoch, NV =
    validation examples)."""

    train_steps: np.ndarray  # (P, T) train examples run (early stops end it)
    stopped_early: np.ndarray  # (P, T) bool: a train error stopped it
    train_errors: np.ndarray  # (P, T, E*N) |y - s1| (multiclass: 1 - p_true) per train step (up to train_steps)
    valid_predictions: np.ndarray  # (P, T, E, NV) raw s1 after Predict (multiclass: the predicted class, NaN if none)
    validated: np.ndarray  # (P, T, E) bool: the epoch was validated
    valid_stopped: np.ndarray  # (P, T, E) bool: its validation stopped early (NaN / too large)


class PendingEvaluation:
    """An evaluation dispatched to the devices and still running (JAX
    dispatch is asynchronous): `result()` waits and returns what
    `evaluate_compiled` returns: fitness (P, T), or (fitness, `Details`)
    with return_details. Lets the host pack the next batch meanwhile."""

    def __init__(self, out: Any, arrays: TaskArrays, num_programs: int, return_details: bool):
        self._out = out
        self._arrays = arrays
        self._n = num_programs
        self._details = return_details

    def result(self):
        out = jax.tree_util.tree_map(np.asarray, self._out)
        arrays, n = self._arrays, self._n
        fitness = _fitness(out, arrays)[:, :n].T
        if not self._details:
            return fitness
        details = Details(
            train_steps=out["steps"][:, :n].T,
            stopped_early=out["stopped"][:, :n].T,
            train_errors=np.moveaxis(out["train_errors"][..., :n], (3, 2), (0, 1)).reshape(n, len(arrays.tasks), -1),
            valid_predictions=np.moveaxis(out["valid_predictions"][..., :n], (3, 2), (0, 1)),
            validated=out["validated"][..., :n].transpose(2, 1, 0),
            valid_stopped=out["vstop"][..., :n].transpose(2, 1, 0),
        )
        return fitness, details


def _prepare(batch: CompiledBatch, tasks: Sequence[Task] | TaskArrays, memory: MemoryShape, *,
             op_subsets: dict[str, Sequence[int]] | None, dtype: str, seed: Any, max_abs_error: float,
             num_train_examples: Any, return_details: bool, devices: Sequence[Any] | None,
             gate: str) -> tuple[Static, tuple, tuple, TaskArrays]:
    """The evaluator's static configuration, devices, call arguments and task arrays."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    arrays = tasks if isinstance(tasks, TaskArrays) else TaskArrays(tasks)
    devices = tuple(jax.local_devices() if devices is None else devices)
    if batch.batch % len(devices):
        raise ValueError(f"batch of {batch.batch} is not a multiple of the {len(devices)} devices")
    subsets = tuple(
        tuple(sorted(set(ops_lib.ALL_OPS if op_subsets is None else (int(o) for o in op_subsets[c]))))
        for c in COMPONENTS)
    st = Static(memory.scalars, memory.vectors, memory.matrices, arrays.features, dtype, subsets,
                arrays.num_epochs, arrays.num_train, arrays.num_valid, gate, bool(return_details),
                num_classes=arrays.num_classes)
    if arrays.num_classes:
        check_vectors(memory.vectors)
    n_lane = _lane_train_counts(num_train_examples, arrays, batch.batch, batch.num_programs)
    lane_seed = _lane_seeds(seed, batch.batch, batch.num_programs)
    args = (tuple(batch.setup), tuple(batch.predict), tuple(batch.learn), *arrays.device_args(dtype, devices),
            n_lane, lane_seed, np.float64(max_abs_error))
    return st, devices, args, arrays


def dispatch_compiled(batch: CompiledBatch, tasks: Sequence[Task] | TaskArrays, memory: MemoryShape, *,
                      op_subsets: dict[str, Sequence[int]] | None = None, dtype: str = "float64", seed: Any = 0,
                      max_abs_error: float = fitness_lib.MAX_ABS_ERROR, num_train_examples: Any = None,
                      return_details: bool = False, devices: Sequence[Any] | None = None,
                      gate: str = "auto") -> PendingEvaluation:
    """Starts `evaluate_compiled` without waiting for it (see PendingEvaluation)."""
    st, devices, args, arrays = _prepare(batch, tasks, memory, op_subsets=op_subsets, dtype=dtype, seed=seed,
                                         max_abs_error=max_abs_error, num_train_examples=num_train_examples,
                                         return_details=return_details, devices=devices, gate=gate)
    with x64_scope(dtype):
        out = build_evaluator(st, devices)(*args)
    return PendingEvaluation(out, arrays, batch.num_programs, bool(return_details))


def evaluate_compiled(batch: CompiledBatch, tasks: Sequence[Task] | TaskArrays, memory: MemoryShape, *,
                      op_subsets: dict[str, Sequence[int]] | None = None, dtype: str = "float64", seed: Any = 0,
                      max_abs_error: float = fitness_lib.MAX_ABS_ERROR, num_train_examples: Any = None,
                      return_details: bool = False, devices: Sequence[Any] | None = None, gate: str = "auto"):
    """Like `evaluate_batch` for an already compiled batch (same keyword
    arguments except `batch_size`)."""
    return dispatch_compiled(batch, tasks, memory, op_subsets=op_subsets, dtype=dtype, seed=seed,
                             max_abs_error=max_abs_error, num_train_examples=num_train_examples,
                             return_details=return_details, devices=devices, gate=gate).result()


def compiled_executable(batch: CompiledBatch, tasks: Sequence[Task] | TaskArrays, memory: MemoryShape, *,
                        op_subsets: dict[str, Sequence[int]] | None = None, dtype: str = "float64",
                        return_details: bool = False, devices: Sequence[Any] | None = None, gate: str = "auto"):
    """The XLA executable `evaluate_compiled` runs for this configuration
    (`jax.stages.Compiled`: `.as_text()` gives its HLO, `.memory_analysis()`
    its buffers), for benchmarks and kernel counts."""
    st, devices, args, _ = _prepare(batch, tasks, memory, op_subsets=op_subsets, dtype=dtype, seed=0,
                                    max_abs_error=fitness_lib.MAX_ABS_ERROR, num_train_examples=None,
                                    return_details=return_details, devices=devices, gate=gate)
    with x64_scope(dtype):
        return build_evaluator(st, devices).lower(*args).compile()


def evaluate_batch(programs: Sequence[Algorithm] | ProgramArrays, tasks: Sequence[Task] | TaskArrays, memory: MemoryShape, *,
                   op_subsets: dict[str, Sequence[int]] | None = None, dtype: str = "float64", seed: Any = 0,
                   max_abs_error: float = fitness_lib.MAX_ABS_ERROR, num_train_examples: Any = None,
                   return_details: bool = False, devices: Sequence[Any] | None = None,
                   batch_size: int | None = None, gate: str = "auto"):
    """Fitness of every program on every task: array (n_programs, n_tasks),
    or (fitness, `Details`) with return_details.

    Args:
      programs: algorithms to evaluate (a list, or a `ProgramArrays` batch).
      tasks: tasks sharing F and train/valid sizes (see the package docstring).
      memory: S/V/M counts; F is taken from the tasks.
      op_subsets: {"setup": ids, "predict": ids, "learn": ids}: the ops the
        interpreter is specialized on (the experiment's allowed ops; much
        faster than the default full 65-op table).
      dtype: "float64" (bit-faithful to the reference up to libm ulps) or
        "float32" (fast; agrees to tolerance on well-conditioned programs).
      seed: random-op stream seed (same stream as `azero_jax.reference`): an
        int, or one per program (n_programs,).
      max_abs_error: early-stop threshold on |y - prediction|.
      num_train_examples: None (all epochs), an int, per task (T,), or per
        program and task (n_programs, T), e.g. from the train budget.
      return_details: also return a `Details` per program/task.
      devices: devices to shard the program axis over (default: all local).
      batch_size: force the padded batch size (else a bucket).
      gate: op-group gating policy, see `interpreter.make_groups`.
    """
    return dispatch_batch(programs, tasks, memory, op_subsets=op_subsets, dtype=dtype, seed=seed,
                          max_abs_error=max_abs_error, num_train_examples=num_train_examples,
                          return_details=return_details, devices=devices, batch_size=batch_size, gate=gate).result()


def dispatch_batch(programs: Sequence[Algorithm] | ProgramArrays, tasks: Sequence[Task] | TaskArrays, memory: MemoryShape, *,
                   op_subsets: dict[str, Sequence[int]] | None = None, dtype: str = "float64", seed: Any = 0,
                   max_abs_error: float = fitness_lib.MAX_ABS_ERROR, num_train_examples: Any = None,
                   return_details: bool = False, devices: Sequence[Any] | None = None,
                   batch_size: int | None = None, gate: str = "auto") -> PendingEvaluation:
    """`evaluate_batch` without waiting: packs the programs and starts the
    evaluation; returns a `PendingEvaluation`."""
    n_dev = len(jax.local_devices()) if devices is None else len(devices)
    if not isinstance(tasks, TaskArrays):
        tasks = TaskArrays(tasks)
    memory = memory.with_features(tasks.features)
    batch = compile_programs(programs, memory, op_subsets=op_subsets, batch_multiple=n_dev, batch_size=batch_size)
    return dispatch_compiled(batch, tasks, memory, op_subsets=op_subsets, dtype=dtype, seed=seed,
                             max_abs_error=max_abs_error, num_train_examples=num_train_examples,
                             return_details=return_details, devices=devices, gate=gate)
