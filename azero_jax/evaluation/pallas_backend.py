"""The `pallas` backend: one Pallas kernel per batched call
(`azero_jax.pallas_eval`; first step of issue 16).

Same task grouping and `Jobs` semantics as the xla backend, whose host code
it reuses (it subclasses `XlaBackend` and replaces only how a chunk of
programs is run): tasks sharing (F, num_train, num_valid, island group,
multiclass C or 0) are one call (multiclass tasks: `pallas_eval.example_rules`;
the probe's valid errors come from the predicted classes, as on the xla
backend); a program's jobs share one random stream seed; lanes nobody asked
for train on 0 examples and are dropped.

`full`: the kernel writes per (program, task) the per-epoch validation loss
and flags, train steps and the stop flag; the host computes fitness with
`fitness.fitness_from_loss` (via `jax_eval._batch._fitness`), as the xla
backend does.

`probe` (FEC): runs the kernel itself with its detail outputs (per-step train
errors, raw validation predictions) and packs the error sequences with the
xla backend's host code (`XlaBackend._probe_errors`), so no delegation to the
xla backend is needed. Each program is one kernel instance whose arithmetic
does not depend on the batch size, so a probe gives a program the same bits
in any batch; chunks are still padded to a fixed size (fewer compiles).

`interpret` (None: True unless JAX's default backend is a GPU) runs the
kernel in Pallas interpret mode (any platform; slow to compile, used for
correctness); off interpret mode the kernel is lowered through Pallas's
Triton backend (CUDA). Where one program's memory on all the group's tasks
outgrows Triton's 2**20-element tensor cap (e.g. the baseline's matrix
bank at F = 256), the kernel splits the tasks over instances
(`KernelConfig.task_block`: 8 tasks per instance there; same results). A
task group the Triton kernel cannot hold even at one task per instance (F
not a power of two, or a single task's tensor over the cap: the matrix
product's F**3 at F >= 128, the baseline's matrix bank at F >= 1024) is
refused at construction with a ValueError naming `--backend=xla`
(`pallas_eval.triton_problem`; the lowering checks only some of this). float64 interpret results agree with the NumPy
reference to 1e-12 (tests/test_pallas_backend.py) and with the xla backend
up to last-ulp differences (measured: 2.2e-16 in fitness, some train errors
and predictions) -- so FEC probe hashes may differ between the two backends,
as they do between float32 and float64. float32 on the Triton lowering sums
with Triton's reductions (other rounding than the xla backend's unrolled
float32 sums).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from azero_jax import fitness as fitness_lib
from azero_jax import jax_eval, pallas_eval
from azero_jax.evaluation.xla_backend import DEFAULT_CHUNK, XlaBackend
from azero_jax.program import MemoryShape
from azero_jax.program_arrays import Programs
from azero_jax.tasks import Task


class PallasBackend(XlaBackend):
    """`Backend` on the Pallas kernel (see the module docstring). Options as
    the xla backend's (`op_subsets`, `chunk`, `task_groups`) plus
    `interpret` and `max_task_block` (at most that many tasks per kernel
    instance; None: as many as Triton's tensor cap allows,
    `pallas_eval.KernelConfig.task_block`; results do not depend on it)."""

    name = "pallas"

    def __init__(self, tasks: Sequence[Task], memory: MemoryShape, *,
                 max_abs_error: float = fitness_lib.MAX_ABS_ERROR, dtype: str = "float64",
                 op_subsets: dict[str, Sequence[int]] | None = None, chunk: int = DEFAULT_CHUNK,
                 task_groups: Sequence[int] | None = None, interpret: bool | None = None,
                 max_task_block: int | None = None):
        super().__init__(tasks, memory, max_abs_error=max_abs_error, dtype=dtype, op_subsets=op_subsets,
                         chunk=chunk, task_groups=task_groups)
        self.interpret = pallas_eval.default_interpret() if interpret is None else bool(interpret)
        self.max_task_block = max_task_block
        if not self.interpret:  # refuse up front what Triton cannot run (ValueError naming --backend=xla)
            for g in range(len(self.groups)):
                self.kernel_config(group=g, details=True)

    def kernel_config(self, *, batch: int = DEFAULT_CHUNK, group: int = 0, details: bool = False,
                      interpret: bool | None = None, backend: str | None = None) -> pallas_eval.KernelConfig:
        """The kernel configuration this backend runs for a batch of `batch`
        programs (shortest length buckets) on task group `group` (for
        lowering checks: `pallas_eval.export_cuda(backend.kernel_config())`)."""
        g = self.groups[group]
        packed = jax_eval.compile_programs([], self.memory, op_subsets=self.op_subsets, batch_size=batch)
        return pallas_eval.kernel_config(packed, g.arrays, self.memory, op_subsets=self.op_subsets, dtype=self.dtype,
                                         max_abs_error=self.max_abs_error, return_details=details,
                                         interpret=self.interpret if interpret is None else interpret,
                                         backend=backend, max_task_block=self.max_task_block)

    def _round(self, size: int) -> int:
        return size  # one kernel on one device: no sharding multiple

    def _dispatch(self, programs: Programs, arrays: jax_eval.TaskArrays, *, seed: int | np.ndarray,
                  num_train_examples: int | np.ndarray, batch_size: int, probe: bool):
        # The probe reads the per-step details; `full` reads only fitness and
        # train steps, so the kernel skips writing the details there.
        return pallas_eval.dispatch_batch(
            programs, arrays, self.memory, op_subsets=self.op_subsets, dtype=self.dtype, seed=seed,
            max_abs_error=self.max_abs_error, num_train_examples=num_train_examples, return_details=probe,
            batch_size=batch_size, interpret=self.interpret, max_task_block=self.max_task_block)

    @staticmethod
    def _result(pending) -> tuple[np.ndarray, jax_eval.Details]:
        return pending.result_with_steps()
