"""The native interpreter is compiled in a child process, then loaded from
Numba's disk cache.

Why: the process that compiles `lanes.evaluate_jobs` runs the compiled code
slower than every later process that loads the same code from the cache.
Measured on the 2-core development CPU (tenth session, docs/performance.md):
the 100 programs of a baseline search's population, F = 16, one thread,
362-374 ns per train step in the compiling process against 245-252 ns in
processes that loaded the code; a baseline search's first run 170
individuals/s after its compilation against 224 in the next run. A process
that compiles unrelated functions is not slowed, so the difference is in the
code, not in the process. Per op (F = 16, 20 copies of one op in Predict),
the compiling process runs the matrix ops at the generic code's speed
(matrix-vector product 123 ns, generic 113-118, loaded F = 16 code 40-44)
and the scalar and vector ops as the loaded code does. Our reading, not
proven: Numba links each callee the interpreter does not inline
(`kernel._matrix_op`, `_minmax_stats`, `_pairwise`) into the caller's module
as a weak copy, which LLVM specializes for the constant F; in the compiling
process the callee's own library, compiled for a run-time F, is already
loaded, and the JIT resolves the calls to it; a process that loads the
cached object has only the specialized copies. The demo (F = 4, no matrix
ops) shows no difference. So when this process needs a version (F compiled
in, or the generic one) that the cache lacks, a child process compiles it
and this process loads it: the same compilation time, once, and the fast
code from the first run on.

How: `ensure_cached` is called before this process first runs a version.
It computes the call's Numba signature and looks it up in the cache's index
(Numba internals: any failure there, or a child that fails, and this process
compiles as before: never worse than without it). The child runs
`python -m azero_jax.native_eval._compile F HINT`: one job of an empty
program on a task of F features, through `run_jobs`, so its argument types
are those of every real call. AZERO_JAX_NATIVE_COMPILE_HERE=1 turns the
child off.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading

import numpy as np

CHILD_TIMEOUT_SECONDS = 900
ENV_COMPILE_HERE = "AZERO_JAX_NATIVE_COMPILE_HERE"
checked: set[int] = set()  # f_hint lengths this process has checked
_lock = threading.Lock()


def _where(dispatcher, args: tuple) -> str:
    """Where `dispatcher`'s code for `args`' types is: "process" (compiled or
    loaded here), "disk" (Numba's cache), "nowhere", or "unknown"."""
    try:
        sig = tuple(dispatcher.typeof_pyval(a) for a in args)
        if sig in dispatcher.overloads:
            return "process"
        magic = dispatcher.targetctx.codegen().magic_tuple()
        index = dispatcher._cache._cache_file._load_index()
        return "disk" if any(key[0] == sig and key[1] == magic for key in index) else "nowhere"
    except Exception:  # Numba internals moved: compile in this process
        return "unknown"


def _compile_in_child(features: int, hint: int) -> None:
    """Runs the child; if it fails, the caller's first call compiles as before."""
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    env["AZERO_JAX_NATIVE_THREADS"] = "1"
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run([sys.executable, "-m", "azero_jax.native_eval._compile", str(features), str(hint)],
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=CHILD_TIMEOUT_SECONDS, check=False)


def ensure_cached(dispatcher, args: tuple, hint: int, features: int) -> None:
    """Before this process first runs version `hint` (the f_hint length: F
    compiled in, or 0 for generic) with `args`, the call's arguments
    (`features`: the F to compile it for): has a child compile it into the
    disk cache if the cache lacks it. Callers skip the call once `hint` is
    in `checked`."""
    with _lock:
        if hint in checked:
            return
        checked.add(hint)
        if not os.environ.get(ENV_COMPILE_HERE) and _where(dispatcher, args) == "nowhere":
            _compile_in_child(features, hint)


def _child(features: int, hint: int) -> None:
    """Compiles (or loads) the version for tasks of `features` features with
    F compiled in (`hint` = F) or generic (`hint` = 0)."""
    os.environ[ENV_COMPILE_HERE] = "1"
    from azero_jax import native_eval, program_arrays
    from azero_jax.program import MemoryShape
    from azero_jax.tasks import Task

    native_eval.FIXED_FEATURES = (features,) if hint else ()
    x = np.zeros((2, features))
    task = Task(x, np.zeros(2), x[:1], np.zeros(1))
    one = np.zeros(1, np.int64)
    native_eval.run_jobs(program_arrays.empty(1, 1), native_eval.TaskData.from_tasks([task]),
                         MemoryShape(2, 2, 1, features), program=one, task=one, num_train=one + 2, num_valid=one + 1,
                         seed=one)


if __name__ == "__main__":
    _child(int(sys.argv[1]), int(sys.argv[2]))
