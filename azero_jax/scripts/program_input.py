"""What the program tools (tools/evaluate_program.py, tools/analyze_program.py)
read from the command line, in one place: the program (a JSON or printed
file, or a shipped program's name), the tasks (--tasks preset or --data
.npz), the memory it runs in, the random-op seed, the backend and dtype.

The flags are defined here, once: absl flags are process-global, so two
entry points defining `--tasks` would collide as soon as both are imported
(a test calling both mains). Each tool's `cli_main` calls `show_in_help()`
so its --help lists these flags beside its own. Every bad value is a
`cli.UsageError` (one `error:` line, exit status 2, at the error boundary).
"""

from __future__ import annotations

import json
import math
import os
import sys

from absl import flags

from azero_jax import cli, evaluation, programs, serialization, tasks
from azero_jax import fitness as fitness_lib
from azero_jax.experiment.validators import MAX_ADDRESSES
from azero_jax.program import Algorithm, MemoryShape, validate_algorithm

DEFAULT_MEMORY = (20, 20, 20)
MAX_STREAM_SEED = 2**32 - 1  # the random-op stream's seeds are 32-bit

UsageError = cli.UsageError

TASKS = flags.DEFINE_string("tasks", None, f"task preset: one of {', '.join(sorted(tasks.PRESETS))}")
DATA = flags.DEFINE_string("data", None, "an .npz file with x_train, y_train, x_valid, y_valid")
EVAL_TYPE = flags.DEFINE_string("eval_type", "rms", "with --data: rms, accuracy or multiclass (integer class labels "
                                "0..C-1, C = 1 + the largest label; the one-hot label in v1, the logits in v2)")
MEMORY = flags.DEFINE_string("memory", None, "S,V,M: numbers of scalar, vector and matrix addresses (each at most "
                             f"{MAX_ADDRESSES}); default: the program file's own memory block, else "
                             f"{','.join(map(str, DEFAULT_MEMORY))}; given together with a file's block, they must "
                             "agree")
SEED = flags.DEFINE_integer("seed", 0, f"seed of the random-op stream, in [0, 2**32 - 1] (= {MAX_STREAM_SEED})")
MAX_ABS_ERROR = flags.DEFINE_float("max_abs_error", fitness_lib.MAX_ABS_ERROR, "early-stopping threshold: a "
                                   "finite number > 0")
COMBINATION = flags.DEFINE_enum("combination", "mean", ["mean", "median"], "how task fitnesses combine")
JSON = flags.DEFINE_bool("json", False, "print one JSON object as the last line")
BACKEND = flags.DEFINE_string("backend", "reference", "reference (the NumPy oracle) or xla (the batched JAX "
                              "interpreter; 'jax' is its old name)")
DTYPE = flags.DEFINE_enum("dtype", "float64", list(evaluation.DTYPES), "compute dtype of the xla backend")


def show_in_help() -> None:
    """Lists this module's flags in the running tool's --help (absl shows
    the key flags of the main module; `cli.run_app` registers the tool
    module's own)."""
    for flag in flags.FLAGS.get_flags_for_module(__name__):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def parse_memory(text: str) -> tuple[int, int, int]:
    try:
        s, v, m = (int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--memory must be three integers S,V,M (e.g. 20,20,20), got {text!r}") from None
    if s < 2 or v < 1 or m < 0:
        raise UsageError(f"--memory needs S >= 2 (s0 label, s1 prediction), V >= 1 (v0 features), M >= 0; got {text}")
    if max(s, v, m) > MAX_ADDRESSES:
        raise UsageError(f"--memory={text}: each count must be <= {MAX_ADDRESSES} (the documented cap)")
    return s, v, m


def check_numbers() -> None:
    """--max_abs_error, --seed and --memory, before any data is read."""
    if not math.isfinite(MAX_ABS_ERROR.value) or MAX_ABS_ERROR.value <= 0:
        raise UsageError(f"--max_abs_error must be a finite number > 0, got {MAX_ABS_ERROR.value!r}")
    if not 0 <= SEED.value <= MAX_STREAM_SEED:
        raise UsageError(f"--seed must be in [0, {MAX_STREAM_SEED}] (the random-op stream's seeds are 32-bit), "
                         f"got {SEED.value}")
    if MEMORY.value is not None:
        parse_memory(MEMORY.value)


def load_tasks(preset: str | None, data: str | None, eval_type: str, *,
               names: tuple[str, str] = ("--tasks", "--data")) -> list[tasks.Task]:
    """The tasks of exactly one of a preset and an .npz file (`names`: the
    two flags, for the message); non-finite data is a warning on stderr."""
    if (preset is None) == (data is None):
        raise UsageError(f"give exactly one of {names[0]}=PRESET or {names[1]}=FILE.npz")
    try:
        if data is not None:
            spec = tasks.TaskSpec(tasks.EXPLICIT, path=data, eval_type=fitness_lib.parse_eval_type(eval_type))
            loaded = tasks.make_tasks(spec)
            for t in loaded:
                problem = t.nonfinite()
                if problem is not None:  # allowed (the C++ cases test them), but never silently
                    print(f"warning: task data file {data!r}: {problem}; the fitness follows the "
                          "reference's rules for them", file=sys.stderr)
                    break
            return loaded
        return tasks.make_tasks(tasks.get_preset(preset))
    except (ValueError, OSError) as e:
        raise UsageError(str(e).splitlines()[0]) from None


def flag_tasks() -> list[tasks.Task]:
    """The tasks of --tasks / --data / --eval_type."""
    return load_tasks(TASKS.value, DATA.value, EVAL_TYPE.value)


def load_program(path: str, features: int, *, multiclass: bool = False) -> tuple[Algorithm, MemoryShape]:
    """The program and the memory to run it in: the file's own memory block
    unless --memory is given (then the two must agree), else the default;
    validated against that memory (an address beyond it is an error naming
    the instruction). A shipped program's name gives its multiclass version
    on multiclass tasks (`programs.MULTICLASS_HAND_WRITTEN`) where it has one."""
    if not os.path.exists(path) and multiclass and path in programs.MULTICLASS_HAND_WRITTEN:
        algorithm, file_memory = programs.MULTICLASS_HAND_WRITTEN[path](), None
    elif not os.path.exists(path) and path in programs.HAND_WRITTEN:
        algorithm, file_memory = programs.hand_written(path), None
    else:
        algorithm, file_memory = serialization.load_algorithm_and_memory(path)
    given = None if MEMORY.value is None else parse_memory(MEMORY.value)
    if file_memory is not None:
        own = (file_memory.scalars, file_memory.vectors, file_memory.matrices)
        if given is not None and given != own:
            raise UsageError(f"--memory={MEMORY.value} contradicts the memory block of {path} "
                             f"(scalars {own[0]}, vectors {own[1]}, matrices {own[2]}): drop --memory or make "
                             "them agree")
        if max(own) > MAX_ADDRESSES:
            raise UsageError(f"{path}: its memory block asks for more than {MAX_ADDRESSES} addresses (the "
                             "documented cap)")
        given = own
    s, v, m = given if given is not None else DEFAULT_MEMORY
    memory = MemoryShape(s, v, m, features)
    validate_algorithm(algorithm, memory)
    return algorithm, memory


def backend_and_dtype() -> tuple[str, str]:
    """The canonical --backend and its --dtype (the reference backend
    computes in float64 only)."""
    try:
        backend = evaluation.resolve_backend(BACKEND.value)
    except ValueError as e:
        raise UsageError(f"--backend: {e}") from None
    if backend == "reference" and DTYPE.value != "float64":
        raise UsageError(f"the reference backend computes in float64; --dtype={DTYPE.value} needs --backend=xla")
    return backend, DTYPE.value


def json_number(x: float):
    """`json.dumps(default=...)` for non-finite floats: the NaN / Infinity
    strings (the C++ cases' checker reads them)."""
    return x if math.isfinite(x) else ("NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity"))


def json_line(payload) -> str:
    """One JSON object on one line (NaN / Infinity as Python's json writes them)."""
    return json.dumps(payload, default=json_number)
