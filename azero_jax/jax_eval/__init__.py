"""Batched JAX evaluation of many programs on many tasks.

Public face (everything else in this package is internal):

* `evaluate_batch(programs, tasks, memory, ...)` -> fitness (P, T), or
  (fitness, `Details`); `dispatch_batch` starts the same without waiting
  (a `PendingEvaluation`);
* `compile_programs` / `CompiledBatch` and `evaluate_compiled` /
  `dispatch_compiled` for programs packed once and evaluated several times;
* `TaskArrays`: tasks laid out once for many calls;
* `compiled_executable`: the XLA executable of a configuration (HLO, buffers);
* `enable_x64`, `x64_scope`, `DTYPES`, `trace_count` (how often the
  interpreter was traced: a search must not retrace after warm-up).

Inside: `compile.py` turns programs into padded arrays (length/batch
buckets); `interpreter.py` runs them: lanes = (task, program), a `fori_loop`
over instruction positions, the op table's kernels grouped by operand kinds,
each group gated by `lax.cond` on whether any lane uses it there;
`_batch.py` holds the entry points above.

Batching rules: the tasks of one call must share the feature size F and the
train / valid set sizes (group tasks by shape and call once per group);
epochs may differ per task. float64 needs JAX's x64 mode: the entry points
enable it *only for the duration of the call* (a scoped
``jax.enable_x64(True)``) unless `enable_x64()` has switched it on globally;
nothing is changed at import.
"""

from __future__ import annotations

from azero_jax.jax_eval._batch import (
    DTYPES,
    Details,
    PendingEvaluation,
    TaskArrays,
    compiled_executable,
    dispatch_batch,
    dispatch_compiled,
    enable_x64,
    evaluate_batch,
    evaluate_compiled,
    x64_scope,
)
from azero_jax.jax_eval.compile import CompiledBatch, compile_programs
from azero_jax.jax_eval.interpreter import trace_count

__all__ = [
    "DTYPES", "CompiledBatch", "Details", "PendingEvaluation", "TaskArrays", "compile_programs",
    "compiled_executable", "dispatch_batch", "dispatch_compiled", "enable_x64", "evaluate_batch",
    "evaluate_compiled", "trace_count", "x64_scope",
]
