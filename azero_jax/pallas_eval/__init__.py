"""Batched evaluation as ONE Pallas kernel per batch (first step of issue 16).

Mapping. `pallas_call` with grid = (programs,): kernel instance p evaluates
program p on ALL the batch's tasks (one task group: shared F and train /
valid sizes, as `jax_eval.TaskArrays` lays them out; tasks padded to a power
of two), or, past Triton's tensor cap, on a block of them ("Task blocks"). Why one program (and not one (program, task) pair) per instance:
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

Task blocks. Where one instance holding all the tasks would hold a tensor
over Triton's 2**20-element cap (`largest_triton_tensor`: the baseline's
matrix bank is 2 x 16 tasks x 256 x 256 = 2**21 at F = 256), the tasks are
split over instances: grid = (programs, task blocks), instance (p, j)
evaluates program p on tasks [j * Tb, (j + 1) * Tb), Tb =
`KernelConfig.task_block`, the largest power of two (<= the padded tasks,
<= `max_task_block` if set) whose tensors fit, down to 1. Whenever all
tasks fit, grid = (programs,) as before. Nothing in the kernel combines
tasks (early stops, validation, budgets, random keys are per task; the
only cross-task reduction skips a component when no task of the instance
is active), so results are bit-identical whatever the split (float64
interpret test). The rule is the same in interpret mode, which so runs the
CUDA layout. Sizes that run where: docs/performance.md ("GPU roofline").

Per instance the memory (S scalars, V vectors of F, M matrices of F x F, each
per task, laid out address-major: (S, T), (V, T, F), (M, T, F, F)) lives in
the instance's blocks of output refs for the whole evaluation: Setup, then
per epoch the train loop (v0 = x, s0 = 0, Predict, sigmoid on classification
tasks, early stop on a NaN error or one > max_abs_error, v0 = x, s0 = y,
Learn) and the validation pass; on multiclass tasks (a task group is all
multiclass with one C, or none) v1 = 0 / the one-hot label, the padded
softmax of v2's C logits before Learn and the argmax in validation: the
shared rules of `azero_jax.multiclass` run on per-class loads
(`example_rules`: Triton has no slice rule). Each component runs a
`fori_loop` up to the program's TRUE length (not the batch's longest), and is skipped when no task
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
banks into on-chip scratch (Mosaic GPU) is a later step of issue 16.

Status: float64 in interpret mode (CPU) matches the NumPy reference to 1e-12
(tests/test_pallas_backend.py); float32 interpret runs (a demo sample agreed
with the xla backend to 1.7e-8; no float32 test yet). Every one of the 65
ops, and the whole table in one kernel, lowers for CUDA to exactly one
`__gpu$xla.gpu.triton` custom call via `jax.export(platforms=["cuda"])` on a
CPU-only machine, float32 and float64; it has not yet been compiled or run
on a GPU. Multiclass tasks: float64 interpret mode gives the xla backend's
fitness, steps and predicted classes bit for bit (train errors up to the
ops' last-ulp differences) and lowers for CUDA at F = 16, C = 10
(tests/test_pallas_backend.py); the NaN-propagating max Triton's `maxnumf`
would lose is explicit (`example_rules`). Shape rules for Triton: F must be a
power of two (vector/matrix values are Triton tensors); tasks, epochs,
memory banks and detail arrays are padded to powers of two here. The
lowering checks neither that nor, in general, size: Triton's Python
frontend enforces its 2**20-element tensor cap, but Pallas emits the IR
directly, and only some ops (a `tt.reduce`) are verified. The task split
keeps every tensor under the cap (the F = 256 baseline: 8 tasks per
instance, one Triton call); what does not fit even at one task per instance
(the matrix product's F**3 at F >= 128, the baseline's 2 x F x F matrix bank
at F >= 1024) `triton_problem` refuses off interpret mode, naming
`--backend=xla`.

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
from azero_jax.multiclass import check_vectors
from azero_jax.pallas_eval.kernel import (
    OUTPUT_NAMES,
    TRITON_MAX_TENSOR_NUMEL,
    KernelArgs,
    KernelConfig,
    build_call,
    input_shapes,
    make_call,
    normalize_subsets,
    pow2,
    prepare,
    trace_count,
    triton_tensors,
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


def largest_triton_tensor(cfg: KernelConfig, block: int | None = None) -> tuple[int, str]:
    """(elements, what) of the largest value one kernel instance holds as
    one Triton tensor (`kernel.triton_tensors`), at `block` tasks per
    instance (None: the config's own `task_block`)."""
    return max(triton_tensors(cfg, cfg.task_block if block is None else block))


def triton_problem(cfg: KernelConfig) -> str | None:
    """Why `cfg` cannot run on the Triton lowering (CUDA), or None. Neither
    problem is caught by the lowering (`export_cuda` succeeds for an
    unsplit F = 256 baseline, tests/test_pallas_backend.py); they surface
    only when a GPU compiles it, if at all. Tensor size: the kernel splits
    the tasks over instances (`KernelConfig.task_block`) down to one task
    per instance; refused only when a tensor of ONE task is over the cap
    (e.g. the matrix product's F**3 at F >= 128)."""
    if cfg.features != pow2(cfg.features):
        return (f"the pallas backend on GPU (Triton) needs F a power of two, got F={cfg.features}; "
                "use --backend=xla")
    tb = cfg.task_block
    n, what = largest_triton_tensor(cfg, tb)
    if n > TRITON_MAX_TENSOR_NUMEL:
        split = "even at 1 task per kernel instance" if tb == 1 else f"at {tb} tasks per kernel instance"
        return (f"the pallas backend on GPU (Triton) would hold {what} as one tensor of {n} elements {split}, "
                f"over Triton's cap of {TRITON_MAX_TENSOR_NUMEL} (F={cfg.features}, {cfg.num_tasks} padded tasks); "
                "use --backend=xla")
    return None


def kernel_config(batch: CompiledBatch, arrays: TaskArrays, memory: MemoryShape, *, op_subsets=None,
                  dtype: str = "float64", max_abs_error: float = fitness_lib.MAX_ABS_ERROR,
                  return_details: bool = False, interpret: bool | None = None, backend: str | None = None,
                  num_warps: int | None = None, max_task_block: int | None = None) -> KernelConfig:
    """The kernel's static configuration for a packed batch on a task group
    (`max_task_block`: at most that many tasks per kernel instance, rounded
    down to a power of two; None: as many as fit, `KernelConfig.task_block`)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if arrays.num_classes:
        check_vectors(memory.vectors)
    interpret = default_interpret() if interpret is None else bool(interpret)
    if backend is None and not interpret:
        backend = "triton"  # Pallas's default GPU lowering (Mosaic GPU) refuses the row reductions
    cfg = KernelConfig(
        scalars=memory.scalars, vectors=memory.vectors, matrices=memory.matrices, features=arrays.features,
        dtype=dtype, op_subsets=normalize_subsets(op_subsets), num_epochs=arrays.num_epochs,
        num_train=arrays.num_train, num_valid=arrays.num_valid, num_tasks=pow2(len(arrays.tasks)),
        lengths=batch.length_buckets, batch=batch.batch, max_abs_error=float(max_abs_error),
        details=bool(return_details), interpret=interpret, backend=backend, num_warps=num_warps,
        max_task_block=None if max_task_block is None else int(max_task_block), num_classes=arrays.num_classes)
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
                                            arrays.scored_by_accuracy[None, :, None],
                                            lanes["validated"] & ~lanes["vstop"])
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
                   interpret: bool | None = None, min_lengths: dict[str, int] | None = None,
                   max_task_block: int | None = None) -> PendingEvaluation:
    """Starts `evaluate_batch` without waiting (`min_lengths`: per component,
    a minimum length bucket, as `compile_programs` takes it: pins the
    kernel's shapes across calls; `max_task_block`: caps the tasks per
    kernel instance, see `kernel_config`)."""
    arrays = tasks if isinstance(tasks, TaskArrays) else TaskArrays(tasks)  # refuses mixing multiclass and not
    memory = memory.with_features(arrays.features)
    batch = compile_programs(programs, memory, op_subsets=op_subsets, batch_size=batch_size, min_lengths=min_lengths)
    cfg = kernel_config(batch, arrays, memory, op_subsets=op_subsets, dtype=dtype, max_abs_error=max_abs_error,
                        return_details=return_details, interpret=interpret, max_task_block=max_task_block)
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
                   min_lengths: dict[str, int] | None = None, max_task_block: int | None = None):
    """Fitness (n_programs, n_tasks) of every program on every task, or
    (fitness, `jax_eval.Details`) with return_details: the same arguments
    and results as `jax_eval.evaluate_batch` (no devices / gate), on the
    Pallas kernel."""
    return dispatch_batch(programs, tasks, memory, op_subsets=op_subsets, dtype=dtype, seed=seed,
                          max_abs_error=max_abs_error, num_train_examples=num_train_examples,
                          return_details=return_details, batch_size=batch_size, interpret=interpret,
                          min_lengths=min_lengths, max_task_block=max_task_block).result()
