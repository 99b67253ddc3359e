"""Evaluate one program (JSON or the reference's printed text) with the NumPy
reference interpreter (default) or the batched XLA backend (--backend=xla).

  python tools/evaluate_program.py PROGRAM_FILE --tasks=demo_search
  python tools/evaluate_program.py prog.txt --data=data.npz --eval_type=rms --json
  python tools/evaluate_program.py linear --tasks=demo_select   # a shipped program

PROGRAM_FILE may also name a shipped hand-written program (noop, linear,
neural_net, damaged_neural_net; on multiclass tasks linear and neural_net
name their multiclass versions). The last line printed is `fitness=<value>`, or
with --json one JSON object with the fitness, train steps and the raw
validation predictions (s1) of each task. The xla backend reports fitness
and train steps per task; its JSON has null predictions (the interpreter's
predictions are checked against the C++ cases by tools/check_cpp_cases_jax.py).

A JSON program's own `memory` block gives the memory it runs in; --memory
(S,V,M) is needed only for text programs or to state it (a conflict is an
error). Bad input is one `error:` line and exit status 2.
"""

from __future__ import annotations

from absl import flags

from azero_jax import cpu_devices

cpu_devices.use_cpu_cores_or_exit()  # one XLA host device per core; before anything imports JAX


from azero_jax import cli, evaluation, reference, serialization, tasks  # noqa: E402
from azero_jax import fitness as fitness_lib  # noqa: E402
from azero_jax import multiclass as mc  # noqa: E402
from azero_jax.program import MemoryShape  # noqa: E402
from azero_jax.scripts import program_input as inputs  # noqa: E402 -- the shared flags: --tasks, --data, ...

DEFAULT_MEMORY = inputs.DEFAULT_MEMORY
MAX_STREAM_SEED = inputs.MAX_STREAM_SEED

_QUIET = flags.DEFINE_bool("quiet", False, "do not print the program and per-task lines")


UsageError = cli.UsageError  # a bad flag or input: one `error:` line, exit status 2


def run(argv: list[str]) -> int:
    if len(argv) != 2:
        raise UsageError("usage: evaluate_program.py PROGRAM_FILE (--tasks=PRESET | --data=FILE.npz) [--json]")
    inputs.check_numbers()  # a bad --seed, --memory, ... before any data is read
    task_list = inputs.flag_tasks()
    multiclass = mc.tasks_are_multiclass(task_list)
    algorithm, memory = inputs.load_program(argv[1], task_list[0].features, multiclass=multiclass)
    backend, _ = inputs.backend_and_dtype()
    if backend != "reference":
        return _run_batched(backend, algorithm, task_list, memory)
    result = reference.evaluate(algorithm, task_list, memory, seed=inputs.SEED.value,
                                combination=inputs.COMBINATION.value, max_abs_error=inputs.MAX_ABS_ERROR.value)
    if not _QUIET.value:
        print(serialization.format_algorithm(algorithm), end="")
        for task, r in zip(task_list, result.tasks, strict=True):
            print(f"task {task.name or task.index}: fitness={r.fitness:.6f} train_steps={r.train_steps}"
                  + (" (stopped early)" if r.stopped_early else ""))
    if inputs.JSON.value:
        payload = {
            "fitness": result.fitness,
            "task_fitness": [r.fitness for r in result.tasks],
            "train_steps": sum(r.train_steps for r in result.tasks),
            "valid_predictions": (
                None if result.tasks[0].valid_predictions is None
                else [float(p) for p in result.tasks[0].valid_predictions]
            ),
            "task_valid_predictions": [
                None if r.valid_predictions is None else [float(p) for p in r.valid_predictions]
                for r in result.tasks
            ],
        }
        # Python's json writes NaN/Infinity tokens, which the C++ cases' checker reads.
        print(inputs.json_line(payload))
    else:
        print(f"fitness={result.fitness!r}")
    return 0


def _run_batched(backend: str, algorithm, task_list: list[tasks.Task], memory: MemoryShape) -> int:
    """Per-task fitness and train steps from a batched backend (all epochs,
    the random-op stream --seed on every task, as the reference path)."""
    result = evaluation.task_results([algorithm], task_list, memory, seed=inputs.SEED.value, backend=backend,
                                     dtype=inputs.DTYPE.value, max_abs_error=inputs.MAX_ABS_ERROR.value)
    fitness, steps = result.fitness[0], result.train_steps[0]
    n = len(task_list)
    combined = fitness_lib.combine(fitness.tolist(), inputs.COMBINATION.value)
    if not _QUIET.value:
        print(serialization.format_algorithm(algorithm), end="")
        for task, f, k in zip(task_list, fitness.tolist(), steps.tolist(), strict=True):
            print(f"task {task.name or task.index}: fitness={f:.6f} train_steps={k}")
    if inputs.JSON.value:
        payload = {"fitness": combined, "task_fitness": fitness.tolist(), "train_steps": int(steps.sum()),
                   "valid_predictions": None, "task_valid_predictions": [None] * n, "backend": backend,
                   "dtype": inputs.DTYPE.value}
        print(inputs.json_line(payload))
    else:
        print(f"fitness={combined!r}")
    return 0


def main(argv: list[str]) -> int:
    # Errors are the boundary's (cli.run_app): one `error:` line, exit status 2.
    return run(argv)


def cli_main() -> None:
    """The `azero-evaluate` console script (and tools/evaluate_program.py)."""
    inputs.show_in_help()
    cli.run_app(main, __name__)


if __name__ == "__main__":
    cli_main()
