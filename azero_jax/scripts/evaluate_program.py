"""Evaluate one program (JSON or the reference's printed text) with the NumPy
reference interpreter (default) or the batched XLA backend (--backend=xla).

  python tools/evaluate_program.py PROGRAM_FILE --tasks=demo_search
  python tools/evaluate_program.py prog.txt --data=data.npz --eval_type=rms --json
  python tools/evaluate_program.py linear --tasks=demo_select   # a shipped program

PROGRAM_FILE may also name a shipped hand-written program (noop, linear,
neural_net, damaged_neural_net). The last line printed is `fitness=<value>`, or
with --json one JSON object with the fitness, train steps and the raw
validation predictions (s1) of each task. The xla backend reports fitness
and train steps per task; its JSON has null predictions (the interpreter's
predictions are checked against the C++ cases by tools/check_cpp_cases_jax.py).

A JSON program's own `memory` block gives the memory it runs in; --memory
(S,V,M) is needed only for text programs or to state it (a conflict is an
error). Bad input is one `error:` line and exit status 2.
"""

from __future__ import annotations

import json
import math
import os
import sys

from absl import flags

from azero_jax import cpu_devices

cpu_devices.use_cpu_cores_or_exit()  # one XLA host device per core; before anything imports JAX


from azero_jax import cli, evaluation, programs, reference, serialization, tasks  # noqa: E402
from azero_jax import fitness as fitness_lib  # noqa: E402
from azero_jax.experiment.validators import MAX_ADDRESSES  # noqa: E402
from azero_jax.program import MemoryShape, validate_algorithm  # noqa: E402

DEFAULT_MEMORY = (20, 20, 20)
MAX_STREAM_SEED = 2**32 - 1  # the random-op stream's seeds are 32-bit

_TASKS = flags.DEFINE_string("tasks", None, f"task preset: one of {', '.join(sorted(tasks.PRESETS))}")
_DATA = flags.DEFINE_string("data", None, "an .npz file with x_train, y_train, x_valid, y_valid")
_EVAL_TYPE = flags.DEFINE_string("eval_type", "rms", "with --data: rms or accuracy")
_MEMORY = flags.DEFINE_string("memory", None, "S,V,M: numbers of scalar, vector and matrix addresses (each at most "
                              f"{MAX_ADDRESSES}); default: the program file's own memory block, else "
                              f"{','.join(map(str, DEFAULT_MEMORY))}; given together with a file's block, they must "
                              "agree")
_SEED = flags.DEFINE_integer("seed", 0, f"seed of the random-op stream, in [0, 2**32 - 1] (= {MAX_STREAM_SEED})")
_MAX_ABS_ERROR = flags.DEFINE_float("max_abs_error", fitness_lib.MAX_ABS_ERROR, "early-stopping threshold: a "
                                    "finite number > 0")
_COMBINATION = flags.DEFINE_enum("combination", "mean", ["mean", "median"], "how task fitnesses combine")
_JSON = flags.DEFINE_bool("json", False, "print one JSON object as the last line")
_QUIET = flags.DEFINE_bool("quiet", False, "do not print the program and per-task lines")
_BACKEND = flags.DEFINE_string("backend", "reference", "reference (the NumPy oracle) or xla (the batched JAX "
                               "interpreter; 'jax' is its old name)")
_DTYPE = flags.DEFINE_enum("dtype", "float64", list(evaluation.DTYPES), "compute dtype of the xla backend")


UsageError = cli.UsageError  # a bad flag or input: one `error:` line, exit status 2


def _parse_memory(text: str) -> tuple[int, int, int]:
    try:
        s, v, m = (int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--memory must be three integers S,V,M (e.g. 20,20,20), got {text!r}") from None
    if s < 2 or v < 1 or m < 0:
        raise UsageError(f"--memory needs S >= 2 (s0 label, s1 prediction), V >= 1 (v0 features), M >= 0; got {text}")
    if max(s, v, m) > MAX_ADDRESSES:
        raise UsageError(f"--memory={text}: each count must be <= {MAX_ADDRESSES} (the documented cap)")
    return s, v, m


def _check_numbers() -> None:
    if not math.isfinite(_MAX_ABS_ERROR.value) or _MAX_ABS_ERROR.value <= 0:
        raise UsageError(f"--max_abs_error must be a finite number > 0, got {_MAX_ABS_ERROR.value!r}")
    if not 0 <= _SEED.value <= MAX_STREAM_SEED:
        raise UsageError(f"--seed must be in [0, {MAX_STREAM_SEED}] (the random-op stream's seeds are 32-bit), "
                         f"got {_SEED.value}")


def _load_tasks() -> list[tasks.Task]:
    if (_TASKS.value is None) == (_DATA.value is None):
        raise UsageError("give exactly one of --tasks=PRESET or --data=FILE.npz")
    try:
        if _DATA.value is not None:
            eval_type = fitness_lib.parse_eval_type(_EVAL_TYPE.value)
            spec = tasks.TaskSpec(tasks.EXPLICIT, path=_DATA.value, eval_type=eval_type)
            loaded = tasks.make_tasks(spec)
            for t in loaded:
                problem = t.nonfinite()
                if problem is not None:  # allowed (the C++ cases test them), but never silently
                    print(f"warning: task data file {_DATA.value!r}: {problem}; the fitness follows the "
                          "reference's rules for them", file=sys.stderr)
                    break
            return loaded
        return tasks.make_tasks(tasks.get_preset(_TASKS.value))
    except (ValueError, OSError) as e:
        raise UsageError(str(e).splitlines()[0]) from None


def _load_program(path: str, features: int):
    """The program and the memory to run it in: the file's own memory block
    unless --memory is given (then the two must agree), else the default."""
    if not os.path.exists(path) and path in programs.HAND_WRITTEN:
        algorithm, file_memory = programs.hand_written(path), None
    else:
        algorithm, file_memory = serialization.load_algorithm_and_memory(path)
    given = None if _MEMORY.value is None else _parse_memory(_MEMORY.value)
    if file_memory is not None:
        own = (file_memory.scalars, file_memory.vectors, file_memory.matrices)
        if given is not None and given != own:
            raise UsageError(f"--memory={_MEMORY.value} contradicts the memory block of {path} "
                             f"(scalars {own[0]}, vectors {own[1]}, matrices {own[2]}): drop --memory or make "
                             "them agree")
        if max(own) > MAX_ADDRESSES:
            raise UsageError(f"{path}: its memory block asks for more than {MAX_ADDRESSES} addresses (the "
                             "documented cap)")
        given = own
    s, v, m = given if given is not None else DEFAULT_MEMORY
    return algorithm, MemoryShape(s, v, m, features)


def _json_number(x: float):
    return x if math.isfinite(x) else ("NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity"))


def run(argv: list[str]) -> int:
    if len(argv) != 2:
        raise UsageError("usage: evaluate_program.py PROGRAM_FILE (--tasks=PRESET | --data=FILE.npz) [--json]")
    _check_numbers()
    if _MEMORY.value is not None:
        _parse_memory(_MEMORY.value)  # a bad --memory before any data is read
    task_list = _load_tasks()
    algorithm, memory = _load_program(argv[1], task_list[0].features)
    validate_algorithm(algorithm, memory)
    try:
        backend = evaluation.resolve_backend(_BACKEND.value)
    except ValueError as e:
        raise UsageError(f"--backend: {e}") from None
    if backend != "reference":
        return _run_batched(backend, algorithm, task_list, memory)
    if _DTYPE.value != "float64":
        raise UsageError(f"the reference backend computes in float64; --dtype={_DTYPE.value} needs --backend=xla")
    result = reference.evaluate(algorithm, task_list, memory, seed=_SEED.value, combination=_COMBINATION.value,
                                max_abs_error=_MAX_ABS_ERROR.value)
    if not _QUIET.value:
        print(serialization.format_algorithm(algorithm), end="")
        for task, r in zip(task_list, result.tasks, strict=True):
            print(f"task {task.name or task.index}: fitness={r.fitness:.6f} train_steps={r.train_steps}"
                  + (" (stopped early)" if r.stopped_early else ""))
    if _JSON.value:
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
        print(json.dumps(payload, default=_json_number))
    else:
        print(f"fitness={result.fitness!r}")
    return 0


def _run_batched(backend: str, algorithm, task_list: list[tasks.Task], memory: MemoryShape) -> int:
    """Per-task fitness and train steps from a batched backend (all epochs,
    the random-op stream --seed on every task, as the reference path)."""
    result = evaluation.task_results([algorithm], task_list, memory, seed=_SEED.value, backend=backend,
                                     dtype=_DTYPE.value, max_abs_error=_MAX_ABS_ERROR.value)
    fitness, steps = result.fitness[0], result.train_steps[0]
    n = len(task_list)
    combined = fitness_lib.combine(fitness.tolist(), _COMBINATION.value)
    if not _QUIET.value:
        print(serialization.format_algorithm(algorithm), end="")
        for task, f, k in zip(task_list, fitness.tolist(), steps.tolist(), strict=True):
            print(f"task {task.name or task.index}: fitness={f:.6f} train_steps={k}")
    if _JSON.value:
        payload = {"fitness": combined, "task_fitness": fitness.tolist(), "train_steps": int(steps.sum()),
                   "valid_predictions": None, "task_valid_predictions": [None] * n, "backend": backend,
                   "dtype": _DTYPE.value}
        print(json.dumps(payload, default=_json_number))
    else:
        print(f"fitness={combined!r}")
    return 0


def main(argv: list[str]) -> int:
    # Errors are the boundary's (cli.run_app): one `error:` line, exit status 2.
    return run(argv)


def cli_main() -> None:
    """The `azero-evaluate` console script (and tools/evaluate_program.py)."""
    cli.run_app(main, __name__)


if __name__ == "__main__":
    cli_main()
