"""Batched evaluation as ONE Pallas kernel per batch (first step of issue 16).

Mapping. `pallas_call` with grid = (programs,): kernel instance p evaluates
program p on ALL the batch's tasks (one task group: shared F and train /
valid sizes, as `jax_eval.TaskArrays` lays them out; tasks padded to a power
of two). Why one program (and not one (program, task) pair) per instance:
the instruction stream is then uniform inside the instance, so each
instruction is one real branch, `lax.switch` on the op read from the packed
program, and its operands/out address are scalars shared by the tasks; the
tasks are the vector lanes of that one branch (the op table's single-lane
kernel vmapped over the task axis), and the example data (x_steps, ...) is
one array every instance reads. One (program, task) per instance would make
the instances smaller still but give each task a separate copy of the
instruction dispatch; the task axis inside the instance is the cheaper first
step and keeps Jobs semantics identical to the xla backend (one random
stream seed per program).

Per instance the memory (S scalars, V vectors of F, M matrices of F x F, each
per task, laid out address-major: (S, T), (V, T, F), (M, T, F, F)) lives in
the instance's blocks of output refs for the whole evaluation: Setup, then
per epoch the train loop (v0 = x, s0 = 0, Predict, sigmoid on classification
tasks, early stop on a NaN error or one > max_abs_error, v0 = x, s0 = y,
Learn) and the validation pass. Each component runs a `fori_loop` up to the
program's TRUE length (not the batch's longest), and is skipped when no task
of the instance is active. Random-set ops draw the counter-based stream
(`azero_jax.rng`) keyed exactly as the XLA interpreter and the reference key
them, so draws are bit-identical. Only per (program, task): per-epoch loss,
validated and validation-stopped flags, train steps and the stop flag (and,
for FEC probes, the per-step train errors and validation predictions) leave
the kernel; the host computes fitness with `fitness.fitness_from_loss`
through `jax_eval._batch._fitness`, exactly as the xla backend does.

Where the memory lives. With the Triton backend (CUDA) output refs are
global-memory pointers: the banks are touched only where an instruction
reads or writes (a few operands per instruction, served by L1/L2), not
rewritten per instruction as in the XLA interpreter; they are not yet
pinned in shared memory (Pallas Triton has no scratch refs). Moving the
banks into on-chip scratch (Mosaic GPU) and splitting large-F / many-task
instances are later steps of issue 16.

Status: float64 in interpret mode (CPU) matches the NumPy reference to 1e-12
(tests/test_pallas_backend.py); float32 interpret runs (a demo sample agreed
with the xla backend to 1.7e-8; no float32 test yet). Every one of the 65
ops, and the whole table in one kernel, lowers for CUDA to exactly one
`__gpu$xla.gpu.triton` custom call via `jax.export(platforms=["cuda"])` on a
CPU-only machine, float32 and float64; it has not yet been compiled or run
on a GPU. Shape rules for Triton: F must be a
power of two (vector/matrix values are Triton tensors); tasks, epochs,
memory banks and detail arrays are padded to powers of two here. The
lowering checks neither that nor size: an F = 256 baseline (memory 5/9/2)
exports to one Triton call although the kernel zeroes its matrix bank as one
2 x 16 x 256 x 256 = 2**21-element tensor, twice Triton's own 2**20 cap
(which Triton's Python frontend enforces; Pallas emits the IR directly), so
`triton_problem` refuses such configs off interpret mode, naming
`--backend=xla` (F = 4 / 16 / 32 pass).

All 300 C++ reference cases match in float64 interpret mode (fitness,
train steps, stop flag, predictions), run as ragged task groups
(`RaggedTaskArrays`: one compile per F for tasks of different sizes). They
found one bug, fixed here: XLA:CPU contracted the fused `sum(a * b)` into
FMAs, turning inf + -inf products into +-inf instead of NaN (see
`kernel._no_contract`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from azero_jax import fitness as fitness_lib
from azero_jax import ops as ops_lib
from azero_jax.jax_eval._batch import (
    DTYPES,
    Details,
    TaskArrays,
    _fitness,
    _lane_seeds,
    _lane_train_counts,
    x64_scope,
)
from azero_jax.jax_eval.compile import CompiledBatch, compile_programs
from azero_jax.pallas_eval.kernel import (
    OUTPUT_NAMES,
    KernelArgs,
    KernelConfig,
    build_call,
    input_shapes,
    make_call,
    normalize_subsets,
    pow2,
    prepare,
    trace_count,
)
from azero_jax.program import Algorithm, MemoryShape
from azero_jax.program_arrays import ProgramArrays
from azero_jax.tasks import Task

__all__ = ["TRITON_CALL", "TRITON_MAX_TENSOR_NUMEL", "KernelArgs", "KernelConfig", "RaggedTaskArrays",
           "default_interpret", "dispatch_batch", "evaluate_batch", "export_cuda", "input_shapes", "kernel_config",
           "largest_triton_tensor", "make_call", "trace_count", "triton_problem"]


def default_interpret() -> bool:
    """Interpret mode unless the default JAX backend is a GPU."""
    return jax.default_backend() != "gpu"


TRITON_MAX_TENSOR_NUMEL = 2**20  # triton.language's cap on one tensor's elements (its frontend checks it;
# Pallas emits Triton IR directly and does not, so the lowering itself accepts larger tensors)


def largest_triton_tensor(cfg: KernelConfig) -> tuple[int, str]:
    """(elements, what) of the largest value the kernel holds as one Triton
    tensor, from its shapes: the zero-initialised banks and detail outputs,
    one op's (tasks, F, F) matrix value, (tasks, F, F, F) for a cubic op."""
    tp, f = cfg.num_tasks, cfg.features
    sizes = [(pow2(cfg.scalars) * tp, "the scalar bank"), (pow2(cfg.vectors) * tp * f, "the vector bank"),
             (pow2(max(cfg.matrices, 1)) * tp * f * f, f"the matrix bank ({pow2(max(cfg.matrices, 1))} x {tp} "
                                                        f"tasks x {f} x {f})")]
    ops = {o for subset in cfg.op_subsets for o in subset}
    if cfg.matrices and any(ops_lib.MATRIX in (op.in1, op.in2, op.out) for op in (ops_lib.OPS[o] for o in ops)):
        sizes.append((tp * f * f, f"a matrix op's value ({tp} tasks x {f} x {f})"))
    if cfg.matrices and any(ops_lib.OPS[o].cubic for o in ops):
        sizes.append((tp * f ** 3, f"the matrix product's ({tp} tasks x {f} x {f} x {f})"))
    if cfg.details:
        sizes += [(pow2(cfg.num_epochs * cfg.num_train) * tp, "the per-step train errors"),
                  (cfg.epochs_padded * pow2(cfg.num_valid) * tp, "the validation predictions")]
    return max(sizes)


def triton_problem(cfg: KernelConfig) -> str | None:
    """Why `cfg` cannot run on the Triton lowering (CUDA), or None. Neither
    problem is caught by the lowering (`export_cuda` succeeds for an F = 256
    baseline, tests/test_pallas_backend.py); they surface only when a GPU
    compiles it, if at all."""
    if cfg.features != pow2(cfg.features):
        return (f"the pallas backend on GPU (Triton) needs F a power of two, got F={cfg.features}; "
                "use --backend=xla")
    n, what = largest_triton_tensor(cfg)
    if n > TRITON_MAX_TENSOR_NUMEL:
        return (f"the pallas backend on GPU (Triton) would hold {what} as one tensor of {n} elements, over "
                f"Triton's cap of {TRITON_MAX_TENSOR_NUMEL} (F={cfg.features}, {cfg.num_tasks} padded tasks); "
                "use --backend=xla")
    return None


def kernel_config(batch: CompiledBatch, arrays: TaskArrays, memory: MemoryShape, *, op_subsets=None,
                  dtype: str = "float64", max_abs_error: float = fitness_lib.MAX_ABS_ERROR,
                  return_details: bool = False, interpret: bool | None = None, backend: str | None = None,
                  num_warps: int | None = None) -> KernelConfig:
    """The kernel's static configuration for a packed batch on a task group."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    interpret = default_interpret() if interpret is None else bool(interpret)
    if backend is None and not interpret:
        backend = "triton"  # Pallas's default GPU lowering (Mosaic GPU) refuses the row reductions
    cfg = KernelConfig(
        scalars=memory.scalars, vectors=memory.vectors, matrices=memory.matrices, features=arrays.features,
        dtype=dtype, op_subsets=normalize_subsets(op_subsets), num_epochs=arrays.num_epochs,
        num_train=arrays.num_train, num_valid=arrays.num_valid, num_tasks=pow2(len(arrays.tasks)),
        lengths=batch.length_buckets, batch=batch.batch, max_abs_error=float(max_abs_error),
        details=bool(return_details), interpret=interpret, backend=backend, num_warps=num_warps)
    problem = None if interpret else triton_problem(cfg)
    if problem:
        raise ValueError(problem)
    return cfg


TRITON_CALL = "__gpu$xla.gpu.triton"


def export_cuda(cfg: KernelConfig, *, check: bool = True):
    """`jax.export` of the kernel for `cfg` lowered for CUDA through Pallas's
    Triton backend (works on a CPU-only machine): a `jax.export.Exported`;
    `.mlir_module()` is its StableHLO text, one `TRITON_CALL` custom call per
    kernel launch. `check`: first refuse a config `triton_problem` names
    (ValueError); without it, lowers whatever the lowering accepts."""
    from jax import export

    cfg = dataclasses.replace(cfg, interpret=False, backend="triton")
    problem = triton_problem(cfg) if check else None
    if problem:
        raise ValueError(problem)
    with x64_scope(cfg.dtype):
        return export.export(jax.jit(make_call(cfg)), platforms=["cuda"],
                             disabled_checks=[export.DisabledSafetyCheck.custom_call(TRITON_CALL)])(
                                 *input_shapes(cfg))


class RaggedTaskArrays(TaskArrays):
    """Single-epoch tasks sharing F but not their train / valid sizes, as one
    task group (`jax_eval.TaskArrays` wants equal sizes): each task's data is
    zero-padded to the largest sizes, its train budget (`max_train`) stays
    its own num_train, and the kernel's validation loop stops at its own
    `valid_counts` (a kernel input; fitness divides by it). For batching
    many small differently sized tasks into one compile (the C++ reference
    cases, tests/test_pallas_backend.py). `Details` hold meaningless values
    past a task's own sizes. Several epochs are refused: a padded epoch would
    reorder the steps."""

    def __init__(self, tasks: Sequence[Task], *, num_train: int | None = None, num_valid: int | None = None):
        """Pads to the tasks' largest sizes, or to `num_train` / `num_valid`
        (>= every task's; several calls then share one kernel compile)."""
        if not tasks:
            raise ValueError("RaggedTaskArrays needs at least one task")
        f = tasks[0].features
        for t in tasks:
            if t.features != f:
                raise ValueError(f"a ragged task group must share F; got F={t.features} and F={f}")
            if t.num_train_epochs != 1:
                raise ValueError(f"a ragged task group needs single-epoch tasks; task {t.name or t.index!r} has "
                                 f"{t.num_train_epochs} epochs")
        n = max(t.num_train for t in tasks) if num_train is None else int(num_train)
        nv = max(t.num_valid for t in tasks) if num_valid is None else int(num_valid)
        if n < max(t.num_train for t in tasks) or nv < max(t.num_valid for t in tasks):
            raise ValueError(f"num_train={n} / num_valid={nv} must be >= every task's "
                             f"({max(t.num_train for t in tasks)} / {max(t.num_valid for t in tasks)})")

        def pad(a, size):
            return np.concatenate([a, np.zeros((size - len(a),) + a.shape[1:], a.dtype)])

        padded = [dataclasses.replace(t, x_train=pad(t.x_train, n), y_train=pad(t.y_train, n),
                                      x_valid=pad(t.x_valid, nv), y_valid=pad(t.y_valid, nv)) for t in tasks]
        super().__init__(padded)
        self.tasks = tuple(tasks)
        self.max_train = np.array([t.num_train for t in tasks], dtype=np.int64)
        self.valid_counts = np.array([t.num_valid for t in tasks], dtype=np.int32)


def _host_fitness(lanes: dict[str, np.ndarray], arrays: TaskArrays) -> np.ndarray:
    """(T, P) fitness: `jax_eval._batch._fitness` (the xla backend's host
    rule), with per-task validation counts for a `RaggedTaskArrays`."""
    counts = getattr(arrays, "valid_counts", None)
    if counts is None:
        return _fitness(lanes, arrays)
    with np.errstate(all="ignore"):
        fit = fitness_lib.fitness_from_loss(np, lanes["loss"].astype(np.float64),
                                            counts[None, :, None].astype(np.float64),
                                            arrays.classification[None, :, None], lanes["validated"] & ~lanes["vstop"])
    return np.maximum(fit.max(axis=0), fitness_lib.MIN_FITNESS)


class PendingEvaluation:
    """A dispatched kernel; `result()` gives fitness (P, T) or (fitness, Details)."""

    def __init__(self, out, arrays: TaskArrays, cfg: KernelConfig, num_programs: int, details: bool):
        self._out, self._arrays, self._cfg, self._n, self._details = out, arrays, cfg, num_programs, details

    def result(self):
        if not self._details:
            return self.result_with_steps()[0]
        return self.result_with_steps()

    def result_with_steps(self) -> tuple[np.ndarray, Details]:
        """(fitness, Details) whatever `return_details` was: without it the
        kernel wrote no per-step details, and `train_errors` and
        `valid_predictions` are None (train steps and flags are always there)."""
        out = dict(zip(OUTPUT_NAMES, (np.asarray(o) for o in self._out), strict=False))
        n, t, cfg = self._n, len(self._arrays.tasks), self._cfg
        e = cfg.num_epochs
        # Per program (B, E, T) -> the xla layout (E, T, B) for the shared host fitness.
        lanes = {k: np.moveaxis(out[k][:, :e, :t], 0, -1) for k in ("loss", "validated", "vstop")}
        lanes["validated"] = lanes["validated"] != 0
        lanes["vstop"] = lanes["vstop"] != 0
        fitness = _host_fitness(lanes, self._arrays)[:, :n].T
        with_details = "train_errors" in out
        details = Details(
            train_steps=out["steps"][:n, :t],
            stopped_early=out["stopped"][:n, :t] != 0,
            train_errors=np.moveaxis(out["train_errors"][:n, :e * cfg.num_train, :t], 2, 1) if with_details else None,
            valid_predictions=(np.moveaxis(out["valid_predictions"][:n, :e, :cfg.num_valid, :t], 3, 1)
                               if with_details else None),
            validated=np.moveaxis(lanes["validated"][..., :n], (2, 1, 0), (0, 1, 2)),
            valid_stopped=np.moveaxis(lanes["vstop"][..., :n], (2, 1, 0), (0, 1, 2)),
        )
        return fitness, details


def dispatch_batch(programs: Sequence[Algorithm] | ProgramArrays, tasks: Sequence[Task] | TaskArrays, memory: MemoryShape, *,
                   op_subsets: dict[str, Sequence[int]] | None = None, dtype: str = "float64", seed: Any = 0,
                   max_abs_error: float = fitness_lib.MAX_ABS_ERROR, num_train_examples: Any = None,
                   return_details: bool = False, batch_size: int | None = None,
                   interpret: bool | None = None, min_lengths: dict[str, int] | None = None) -> PendingEvaluation:
    """Starts `evaluate_batch` without waiting (`min_lengths`: per component,
    a minimum length bucket, as `compile_programs` takes it: pins the
    kernel's shapes across calls)."""
    arrays = tasks if isinstance(tasks, TaskArrays) else TaskArrays(tasks)
    memory = memory.with_features(arrays.features)
    batch = compile_programs(programs, memory, op_subsets=op_subsets, batch_size=batch_size, min_lengths=min_lengths)
    cfg = kernel_config(batch, arrays, memory, op_subsets=op_subsets, dtype=dtype, max_abs_error=max_abs_error,
                        return_details=return_details, interpret=interpret)
    n_lane = _lane_train_counts(num_train_examples, arrays, batch.batch, batch.num_programs)
    seeds = _lane_seeds(seed, batch.batch, batch.num_programs)
    args = prepare(batch, arrays, n_lane, seeds, cfg.op_subsets, dtype)
    with x64_scope(dtype):
        out = build_call(cfg)(*args.ints, *args.floats, *args[2:])
    return PendingEvaluation(out, arrays, cfg, batch.num_programs, return_details)


def evaluate_batch(programs: Sequence[Algorithm] | ProgramArrays, tasks: Sequence[Task] | TaskArrays, memory: MemoryShape, *,
                   op_subsets: dict[str, Sequence[int]] | None = None, dtype: str = "float64", seed: Any = 0,
                   max_abs_error: float = fitness_lib.MAX_ABS_ERROR, num_train_examples: Any = None,
                   return_details: bool = False, batch_size: int | None = None, interpret: bool | None = None,
                   min_lengths: dict[str, int] | None = None):
    """Fitness (n_programs, n_tasks) of every program on every task, or
    (fitness, `jax_eval.Details`) with return_details: the same arguments
    and results as `jax_eval.evaluate_batch` (no devices / gate), on the
    Pallas kernel."""
    return dispatch_batch(programs, tasks, memory, op_subsets=op_subsets, dtype=dtype, seed=seed,
                          max_abs_error=max_abs_error, num_train_examples=num_train_examples,
                          return_details=return_details, batch_size=batch_size, interpret=interpret,
                          min_lengths=min_lengths).result()
