"""What users do with a found algorithm: read it, ablate it, re-tune its
constants, export it as standalone code and plot a run (host-side NumPy; the
batched evaluations go through `azero_jax.evaluation`).

  result = ablate(program, tasks, memory, backend="xla")      # one batched call
  print(format_ablation(result))
  tuned = retune_constants(program, select_tasks, memory, trials=20, final_tasks=final_tasks)
  write_export(program, memory, "numpy", "out/")               # out/evolved_numpy.py
  plot_progress("run/progress.csv", "run/fitness.png")         # None (one note) without matplotlib

`tools/analyze_program.py` is the command line over these.
"""

from azero_jax.analysis.ablation import (
    AblationResult,
    AblationRow,
    RetuneResult,
    Variant,
    ablate,
    ablation_variants,
    format_ablation,
    format_retune,
    retune_constants,
    tasks_are_multiclass,
    tunable_constants,
)
from azero_jax.analysis.export import OP_EXPRESSIONS, TARGETS, export_source, instruction_line, write_export
from azero_jax.analysis.plots import plot_ablation, plot_progress

__all__ = [
    "OP_EXPRESSIONS", "TARGETS", "AblationResult", "AblationRow", "RetuneResult", "Variant", "ablate",
    "ablation_variants", "export_source", "format_ablation", "format_retune", "instruction_line", "plot_ablation",
    "plot_progress", "retune_constants", "tasks_are_multiclass", "tunable_constants", "write_export",
]
