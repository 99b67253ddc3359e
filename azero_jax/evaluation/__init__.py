"""Evaluation of programs on tasks: the contracts (`base`), the search's
evaluator (`cached.CachedEvaluator`: FEC, train budget, hurdles, counters)
and the interpreter backends behind it.

  evaluator = make_evaluator(tasks, memory, backend="xla", dtype="float32", fec_spec=FECSpec())
  fitnesses = evaluator.evaluate(programs)
  value = evaluate_program(program, tasks, memory, backend="reference", seed=7)

Backends: "reference" (the NumPy oracle), "xla" (the batched JAX
interpreter; "jax" is accepted as its old name), "pallas" (one Pallas kernel
per batch, GPUs), "native" (the oracle compiled by Numba, the CPU's fast
path), "auto" (`resolve_backend`). A new backend is a class
satisfying `base.Backend`, constructed as `cls(tasks, memory, *,
max_abs_error, dtype, <its own keyword options>)` (it receives the options it
names: op_subsets, task_groups, chunk), and one `register_backend` line below.
Backend modules are imported only when used, so the reference backend never
imports JAX.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

from azero_jax import fitness as fitness_lib
from azero_jax.evaluation.base import (
    MIN_TRAIN_EXAMPLES,
    Backend,
    Counters,
    Evaluator,
    FullResults,
    FunctionEvaluator,
    Jobs,
    ProbeErrors,
    as_evaluator,
)
from azero_jax.evaluation.cached import CachedEvaluator
from azero_jax.program import Algorithm, MemoryShape
from azero_jax.search.fec import FECSpec
from azero_jax.search.train_budget import TrainBudget
from azero_jax.tasks import Task

__all__ = [
    "Backend", "CachedEvaluator", "Counters", "Evaluator", "FullResults", "FunctionEvaluator", "Jobs",
    "MIN_TRAIN_EXAMPLES", "ProbeErrors", "as_evaluator", "BACKENDS", "BACKEND_ALIASES", "DTYPES",
    "backend_note", "register_backend", "resolve_backend", "resolve_dtype", "make_backend", "make_evaluator", "evaluate_program", "task_results",
]

DTYPES = ("float64", "float32")
# name -> "module:class" (imported on first use) or the class itself.
_REGISTRY: dict[str, Any] = {}
BACKEND_ALIASES = {"jax": "xla"}


def register_backend(name: str, factory: Any) -> None:
    """Makes `factory` (a Backend class, or "module:attribute" to import it
    lazily) available as `make_evaluator(backend=name)`."""
    _REGISTRY[name] = factory


register_backend("reference", "azero_jax.evaluation.reference_backend:ReferenceBackend")
register_backend("xla", "azero_jax.evaluation.xla_backend:XlaBackend")
register_backend("pallas", "azero_jax.evaluation.pallas_backend:PallasBackend")
register_backend("native", "azero_jax.evaluation.native_backend:NativeBackend")
BACKENDS = tuple(_REGISTRY)
AUTO = "auto"  # the backend that fits the machine (`resolve_backend`)
BACKEND_CHOICES = (AUTO, *BACKENDS)


def resolve_backend(name: str, features: int | None = None, dtype: str | None = None) -> str:
    """Canonical backend name (aliases resolved); ValueError naming the choices.

    "auto": on an NVIDIA GPU "pallas" (one kernel per batch) when F
    (`features`, when known) is a power of two, which the Triton lowering
    needs, else "xla"; on a TPU "xla" (until the kernel is ported to Mosaic
    TPU); on a CPU "native" (the Numba interpreter, several times faster than
    "xla" there: docs/performance.md) when Numba is installed and `dtype` is
    float64 or unset/"auto", else "xla". `make_backend` also falls back to
    "xla" where the pallas backend refuses the config
    (`pallas_eval.triton_problem`)."""
    key = BACKEND_ALIASES.get(str(name).strip().lower(), str(name).strip().lower())
    if key == AUTO:
        import jax  # only batched backends get here

        platform = jax.default_backend()
        if platform == "cpu":
            from azero_jax import native_eval

            return "native" if dtype in (None, AUTO, "float64") and native_eval.available() else "xla"
        on_gpu = platform == "gpu" and "cuda" in str(jax.devices()[0].client.platform_version).lower()
        return "pallas" if on_gpu and (features is None or features & (features - 1) == 0) else "xla"
    if key not in _REGISTRY:
        raise ValueError(f"unknown backend {name!r}; use one of: {', '.join(BACKEND_CHOICES)}")
    return key


def backend_note(name: str, dtype: str | None = None) -> str | None:
    """One line worth logging before a run on backend `name` (None: nothing to
    say): that the native interpreter compiles on first use, or that "auto"
    runs xla on a CPU because Numba is missing."""
    key = resolve_backend(name, None, dtype)
    from azero_jax import native_eval

    if key == "native" and not native_eval.compiled_on_disk():
        return ("native backend: compiling the interpreter once (about 30 s, and as long again for each new "
                "feature size F; cached on disk for later runs)")
    if key == "xla" and str(name).strip().lower() == AUTO and dtype in (None, AUTO, "float64"):
        import jax

        if jax.default_backend() == "cpu" and not native_eval.available():
            return ("note: Numba is not installed, so the CPU runs the slower xla backend: pip install "
                    "'azero-jax[cpu]' for the native one")
    return None


ACCELERATOR_PLATFORMS = ("gpu", "cuda", "rocm", "tpu")


def resolve_dtype(dtype: str, backend: str) -> str:
    """The dtype `backend` computes in for `dtype`: "auto" is float32 when
    JAX's default device is a GPU or TPU and float64 otherwise (and always
    on the reference and native backends); other values are returned as they are."""
    if dtype != "auto":
        return dtype
    if resolve_backend(backend) in ("reference", "native"):
        return "float64"
    import jax  # only batched backends get here

    return "float32" if jax.default_backend() in ACCELERATOR_PLATFORMS else "float64"


def make_backend(name: str, tasks: Sequence[Task], memory: MemoryShape, *,
                 max_abs_error: float = fitness_lib.MAX_ABS_ERROR, dtype: str = "float64",
                 **options: Any) -> Backend:
    """The backend `name` on `tasks`; `options` are backend-specific (xla:
    op_subsets, chunk, task_groups); each backend gets those its constructor
    names, so the reference backend ignores the xla ones."""
    key = resolve_backend(name, tasks[0].features if tasks else None, dtype)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if key == "pallas" and str(name).strip().lower() == AUTO:
        try:  # "auto" takes pallas only where it can run (e.g. not F = 256 on Triton), else xla
            return _construct("pallas", tasks, memory, max_abs_error, dtype, options)
        except ValueError:
            key = "xla"
    return _construct(key, tasks, memory, max_abs_error, dtype, options)


def _construct(key: str, tasks: Sequence[Task], memory: MemoryShape, max_abs_error: float, dtype: str,
               options: dict[str, Any]) -> Backend:
    factory = _REGISTRY[key]
    if isinstance(factory, str):
        module, attr = factory.split(":")
        factory = _REGISTRY[key] = getattr(importlib.import_module(module), attr)
    return factory(tasks, memory, max_abs_error=max_abs_error, dtype=dtype, **_accepted(factory, options))


def _accepted(factory: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The `options` that `factory` takes (all of them if it takes **kwargs):
    callers pass the options of every batched backend (op subsets, island
    task groups), and each backend takes what it understands."""
    params = inspect.signature(factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return options
    names = {p.name for p in params}
    return {k: v for k, v in options.items() if k in names}


def make_evaluator(tasks: Sequence[Task], memory: MemoryShape, *, backend: str = "reference",
                   dtype: str = "float64", seed: int = 0, fec_spec: FECSpec | None = None,
                   train_budget: TrainBudget | None = None, combination: str = fitness_lib.MEAN,
                   max_abs_error: float = fitness_lib.MAX_ABS_ERROR, hurdle_tasks: int = 0,
                   hurdle_percentile: float = 75.0, probe_memo: bool | None = None,
                   **backend_options: Any) -> CachedEvaluator:
    """A `CachedEvaluator` on the named backend: the one way the search,
    select/final evaluations, the baselines and the tools evaluate programs
    (`probe_memo`: see `CachedEvaluator.probe_keys`; None: the backend's choice)."""
    return CachedEvaluator(make_backend(backend, tasks, memory, max_abs_error=max_abs_error, dtype=dtype,
                                        **backend_options),
                           fec_spec=fec_spec, train_budget=train_budget, combination=combination,
                           hurdle_tasks=hurdle_tasks, hurdle_percentile=hurdle_percentile, seed=seed,
                           probe_memo=probe_memo)


def evaluate_program(program: Algorithm, tasks: Sequence[Task], memory: MemoryShape, *, seed: int = 0,
                     backend: str = "reference", dtype: str = "float64",
                     max_abs_error: float = fitness_lib.MAX_ABS_ERROR, **backend_options: Any) -> float:
    """Select/final evaluation of one program: mean fitness over `tasks`, no
    FEC, no train budget; its random-set ops draw the stream of the first
    individual of an evaluator seeded with `seed`."""
    evaluator = make_evaluator(tasks, memory, backend=backend, dtype=dtype, seed=seed,
                               max_abs_error=max_abs_error, **backend_options)
    return float(evaluator.evaluate([program])[0])


def task_results(programs: Sequence[Algorithm], tasks: Sequence[Task], memory: MemoryShape, *, seed: int = 0,
                 backend: str = "reference", dtype: str = "float64",
                 max_abs_error: float = fitness_lib.MAX_ABS_ERROR, **backend_options: Any) -> FullResults:
    """Fitness and train steps, each (programs, tasks), of every program on
    every task (all epochs, no FEC, no budget), every evaluation on the one
    random stream `seed`: what `reference.evaluate` computes per task
    (baselines, tuning, `tools/evaluate_program.py` on a batched backend)."""
    evaluator = make_evaluator(tasks, memory, backend=backend, dtype=dtype, seed=seed, max_abs_error=max_abs_error,
                               **backend_options)
    n_p, n_t = len(programs), len(evaluator.tasks)
    counts = [t.num_train * t.num_train_epochs for t in evaluator.tasks]
    jobs = Jobs(np.repeat(np.arange(n_p), n_t), np.tile(np.arange(n_t), n_p), np.tile(counts, n_p),
                np.full(n_p * n_t, seed))
    fitness, steps = evaluator.full(list(programs), jobs)
    return FullResults(fitness.reshape(n_p, n_t), steps.reshape(n_p, n_t))
