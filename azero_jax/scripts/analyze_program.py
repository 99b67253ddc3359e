"""Analyze one program: what it does and what each part of it is worth.

  python tools/analyze_program.py runs/linear_regression/best_program.json --tasks=demo_select
  python tools/analyze_program.py linear --tasks=demo_select --memory=4,3,1 --retune_trials=20
  python tools/analyze_program.py prog.txt --data=task.npz --backend=xla --output_dir=out --json

Prints the program, its live code (dead instructions removed: they cannot
change any result), and the ablation table: for every live instruction the
fitness with it replaced by a NO_OP, and with each constant it uses set to 0
and to 1, sorted by impact (|base - variant|), all variants evaluated in one
batched call on --backend (`azero_jax.analysis.ablation.ablate`). With
--retune_trials=N > 0 also the paper's constant re-tuning: N random log-scale
factor draws of the program's constants (trial 0 = as given), picked on the
tasks above and, with --final_tasks / --final_data, scored on those. With
--output_dir it writes ablation.json (the table and the re-tuning, as --json
prints them), analysis.txt (the printed report), retuned_program.json (when
re-tuning changed the program), ablation.png (the table as a bar chart, with
matplotlib) and, with --export=numpy,jax, the program as standalone modules
evolved_numpy.py / evolved_jax.py (`azero_jax.analysis.export`).

PROGRAM, the tasks, --memory, --seed, --backend, --dtype, --combination and
--max_abs_error read as in tools/evaluate_program.py (PROGRAM may name a
shipped program: noop, linear, neural_net, damaged_neural_net). On multiclass
tasks (--data=FILE.npz --eval_type=multiclass: the one-hot label in v1, the
logits in v2; `azero_jax.multiclass`) the live code, the ablation and the
--export modules follow that layout (prediction v2, not s1). Bad input (an
unknown program file, a program needing more memory than given, an
unwritable --output_dir, ...) is one `error:` line and exit status 2, before
any evaluation.
"""

from __future__ import annotations

import os
import tempfile

from azero_jax import cpu_devices

cpu_devices.use_cpu_cores_or_exit()  # one XLA host device per core; before anything imports JAX

from absl import flags  # noqa: E402

from azero_jax import cli, fileio, liveness, serialization, tasks  # noqa: E402
from azero_jax.analysis import ablation, export, plots  # noqa: E402
from azero_jax.multiclass import MIN_VECTORS  # noqa: E402
from azero_jax.program import Algorithm, MemoryShape  # noqa: E402
from azero_jax.scripts import program_input as inputs  # noqa: E402 -- the shared flags: --tasks, --data, ...

ABLATION_FILE = "ablation.json"
REPORT_FILE = "analysis.txt"
CHART_FILE = "ablation.png"
MAX_CHART_ROWS = 40  # a taller bar chart is no longer readable; the table has them all
MAX_RETUNE_TRIALS = 100_000

_RETUNE_TRIALS = flags.DEFINE_integer("retune_trials", 0, "constant re-tuning: number of random trials (trial 0 = "
                                      "the program as given); 0 = off")
_FINAL_TASKS = flags.DEFINE_string("final_tasks", None, "with --retune_trials: a task preset the re-tuned program "
                                   "is also scored on (the paper's final evaluation)")
_FINAL_DATA = flags.DEFINE_string("final_data", None, "with --retune_trials: an .npz file, as --final_tasks")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, f"write {ABLATION_FILE}, {REPORT_FILE}, {CHART_FILE} (with "
                                  "matplotlib), retuned_program.json (when re-tuning changed the program) and the "
                                  "--export modules here (created if missing)")
_EXPORT = flags.DEFINE_list("export", [], f"with --output_dir: also write the program as a standalone module "
                            f"evolved_<target>.py, for each target given ({' or '.join(export.TARGETS)}; e.g. "
                            "--export=numpy,jax)")

UsageError = cli.UsageError  # a bad flag or input: one `error:` line, exit status 2


def _check_flags() -> None:
    inputs.check_numbers()
    if not 0 <= _RETUNE_TRIALS.value <= MAX_RETUNE_TRIALS:
        raise UsageError(f"--retune_trials must be in [0, {MAX_RETUNE_TRIALS}] (0 = no re-tuning), got "
                         f"{_RETUNE_TRIALS.value}")
    final_given = _FINAL_TASKS.value is not None or _FINAL_DATA.value is not None
    if final_given and _RETUNE_TRIALS.value == 0:
        raise UsageError("--final_tasks / --final_data score the re-tuned program: give --retune_trials > 0 too")
    unknown = [t for t in _EXPORT.value if t not in export.TARGETS]
    if unknown:
        raise UsageError(f"--export: unknown target {unknown[0]!r}; use {' or '.join(export.TARGETS)}")
    if _EXPORT.value and _OUTPUT_DIR.value is None:
        raise UsageError("--export writes files: give --output_dir too")


def _check_output_dir(path: str) -> None:
    """Creates `path` and proves a file can be written there, so that an
    unwritable output is one error line before any evaluation, not after."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(20, "Not a directory", path)  # ENOTDIR: the hint names the fix
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path, prefix=".tmp-probe-"):
            pass
    except OSError as e:
        raise fileio.with_path(e, path) from None


def _task_label(preset: str | None, data: str | None, task_list: list[tasks.Task]) -> str:
    return f"{preset if preset is not None else data} ({len(task_list)} task{'s' * (len(task_list) != 1)})"


def _memory_text(memory: MemoryShape) -> str:
    return f"S={memory.scalars} V={memory.vectors} M={memory.matrices} F={memory.features}"


def report_text(name: str, program: Algorithm, memory: MemoryShape, task_label: str,
                result: ablation.AblationResult, retune: ablation.RetuneResult | None, *,
                multiclass: bool = False) -> str:
    """The printed report (also analysis.txt); `multiclass`: live code by the multiclass layout."""
    live = liveness.strip_dead_code(program, keep_positions=False, multiclass=multiclass)
    n_live, n_all = sum(live.sizes), sum(program.sizes)
    layout = "; multiclass layout: prediction v2, label v1" if multiclass else ""
    parts = [f"program {name} (memory {_memory_text(memory)}):", serialization.format_algorithm(program).rstrip(),
             f"live code ({n_live} of {n_all} instructions; dead ones cannot change any result{layout}):",
             serialization.format_algorithm(live).rstrip(),
             f"ablation on {task_label}: {len(result.rows)} variants (NoOp per live instruction; each constant "
             "it uses set to 0 and to 1), sorted by impact:",
             ablation.format_ablation(result)]
    if retune is not None:
        parts.append(ablation.format_retune(retune))
    return "\n".join(parts) + "\n"


def payload(name: str, program: Algorithm, memory: MemoryShape, task_label: str, result: ablation.AblationResult,
            retune: ablation.RetuneResult | None, *, multiclass: bool = False) -> dict:
    """What --json prints and ablation.json holds."""
    live = liveness.strip_dead_code(program, keep_positions=False, multiclass=multiclass)
    return {"program": name, "memory": {"scalars": memory.scalars, "vectors": memory.vectors,
                                        "matrices": memory.matrices, "features": memory.features},
            "tasks": task_label, "multiclass": multiclass, "program_text": serialization.format_algorithm(program),
            "live_code_text": serialization.format_algorithm(live),
            "base_fitness": result.base_fitness, "ablation": result.to_dict(),
            "retune": None if retune is None else retune.to_dict()}


def _write_outputs(out_dir: str, data: dict, text: str, program: Algorithm, memory: MemoryShape,
                   result: ablation.AblationResult, retune: ablation.RetuneResult | None,
                   multiclass: bool = False) -> list[str]:
    """ablation.json, analysis.txt, the re-tuned program (when re-tuning
    changed it), the --export modules (of the program as given) and the
    ablation chart; returns what was written."""
    written = [os.path.join(out_dir, ABLATION_FILE), os.path.join(out_dir, REPORT_FILE)]
    fileio.atomic_write_json(written[0], data)
    fileio.atomic_write_text(written[1], text)
    if retune is not None and retune.best_trial:
        path = os.path.join(out_dir, "retuned_program.json")
        fileio.atomic_write_text(path, serialization.dumps_algorithm(retune.program, memory))
        written.append(path)
    for target in dict.fromkeys(_EXPORT.value):
        written.append(str(export.write_export(program, memory, target, out_dir, multiclass=multiclass)))
    if result.rows:  # the chart of the table's most telling rows (matplotlib optional: else one note)
        rows = [(f"{r.label}: {r.instruction}", r.delta) for r in result.rows[:MAX_CHART_ROWS]]
        notes: list[str] = []
        chart = plots.plot_ablation(rows, os.path.join(out_dir, CHART_FILE), log=notes.append,
                                    title=f"ablation (base fitness {result.base_fitness:.6f})",
                                    ylabel="fitness change (variant - base)")
        written.append(str(chart) if chart is not None else f"no {CHART_FILE}: matplotlib is not installed "
                       "(pip install 'azero-jax[plot]')")
    return written


def run(argv: list[str]) -> int:
    if len(argv) != 2:
        raise UsageError("usage: analyze_program.py PROGRAM (--tasks=PRESET | --data=FILE.npz) [--retune_trials=N] "
                         "[--output_dir=DIR] [--json]")
    _check_flags()
    task_list = inputs.flag_tasks()
    final_tasks = None
    if _FINAL_TASKS.value is not None or _FINAL_DATA.value is not None:
        final_tasks = inputs.load_tasks(_FINAL_TASKS.value, _FINAL_DATA.value, inputs.EVAL_TYPE.value,
                                        names=("--final_tasks", "--final_data"))
        if final_tasks[0].features != task_list[0].features:
            raise UsageError(f"the final tasks have {final_tasks[0].features} features, the tasks "
                             f"{task_list[0].features}: a program runs on one feature size")
    multiclass = ablation.tasks_are_multiclass(task_list + (final_tasks or []))
    program, memory = inputs.load_program(argv[1], task_list[0].features, multiclass=multiclass)
    if multiclass and memory.vectors < MIN_VECTORS:
        raise UsageError(f"multiclass tasks need at least {MIN_VECTORS} vector addresses (v0 features, v1 label, "
                         f"v2 prediction); the program runs with V={memory.vectors}: give --memory with V >= "
                         f"{MIN_VECTORS}")
    backend, dtype = inputs.backend_and_dtype()
    if _OUTPUT_DIR.value is not None:
        _check_output_dir(_OUTPUT_DIR.value)
    common = dict(backend=backend, dtype=dtype, seed=inputs.SEED.value, combination=inputs.COMBINATION.value,
                  max_abs_error=inputs.MAX_ABS_ERROR.value)
    result = ablation.ablate(program, task_list, memory, **common)
    retune = None
    if _RETUNE_TRIALS.value > 0:
        retune = ablation.retune_constants(program, task_list, memory, trials=_RETUNE_TRIALS.value,
                                           final_tasks=final_tasks, **common)
    label = _task_label(inputs.TASKS.value, inputs.DATA.value, task_list)
    text = report_text(argv[1], program, memory, label, result, retune, multiclass=multiclass)
    data = payload(argv[1], program, memory, label, result, retune, multiclass=multiclass)
    written = []
    if _OUTPUT_DIR.value is not None:
        written = _write_outputs(_OUTPUT_DIR.value, data, text, program, memory, result, retune, multiclass)
    print(text, end="")
    for path in written:
        print(path if path.startswith("no ") else f"wrote {path}")
    if inputs.JSON.value:
        print(inputs.json_line(data))
    return 0


def main(argv: list[str]) -> int:
    # Errors are the boundary's (cli.run_app): one `error:` line, exit status 2.
    return run(argv)


def cli_main() -> None:
    """The `azero-analyze-program` console script (and tools/analyze_program.py)."""
    inputs.show_in_help()
    cli.run_app(main, __name__)


if __name__ == "__main__":
    cli_main()
