"""The native interpreter is compiled in a child process and loaded from
Numba's disk cache (`azero_jax.native_eval._compile`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("numba")

from azero_jax.native_eval import _compile  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One run of the linear program on a linear task through run_jobs, in a process of its own (Numba
# reads NUMBA_CACHE_DIR at import); prints how this process got the interpreter's code.
_RUN = r"""
import json
import numpy as np
from azero_jax import native_eval, program_arrays, programs
from azero_jax.native_eval.lanes import evaluate_jobs
from azero_jax.tasks import Task
rng = np.random.default_rng(0)
x = rng.normal(size=(60, 4))
y = x @ rng.normal(size=4)
task = Task(x[:50], y[:50], x[50:], y[50:])
arrays = program_arrays.from_algorithms([programs.linear_algorithm(learning_rate=0.1)])
one = np.zeros(1, np.int64)
out = native_eval.run_jobs(arrays, native_eval.TaskData.from_tasks([task]), programs.LINEAR_MEMORY.with_features(4),
                           program=one, task=one, num_train=one + 50, num_valid=one + 10, seed=one)
stats = evaluate_jobs.stats
print(json.dumps({"hits": sum(stats.cache_hits.values()), "misses": sum(stats.cache_misses.values()),
                  "fitness": float(out.fitness[0])}))
"""


def _run(cache_dir, **env) -> dict:
    done = subprocess.run([sys.executable, "-c", _RUN], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "NUMBA_CACHE_DIR": str(cache_dir), "PYTHONPATH": ROOT, **env})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_missing_version_is_compiled_in_a_child_and_loaded_from_the_cache(tmp_path):
    """With an empty cache the process loads the code a child compiled (a
    cache hit, no miss); a second process loads it too; the fitness is the
    same either way and that of a trained linear program."""
    first = _run(tmp_path)
    assert (first["hits"], first["misses"]) == (1, 0)
    assert list(tmp_path.glob("**/lanes.evaluate_jobs-*.nbi"))
    second = _run(tmp_path)
    assert (second["hits"], second["misses"]) == (1, 0)
    assert first["fitness"] == second["fitness"] > 0.9


class _FakeDispatcher:
    """What `_compile` reads of a Numba dispatcher, with a chosen cache index."""

    def __init__(self, index=None, overloads=()):
        self.overloads = dict.fromkeys(overloads)
        self._index = index
        outer = self

        class _File:
            def _load_index(self):
                if outer._index is None:
                    raise AttributeError("moved")
                return outer._index

        class _Cache:
            _cache_file = _File()

        class _Codegen:
            def magic_tuple(self):
                return ("cpu",)

        class _Context:
            def codegen(self):
                return _Codegen()

        self._cache = _Cache()
        self.targetctx = _Context()

    def typeof_pyval(self, value):
        return type(value).__name__


@pytest.mark.parametrize("index, overloads, expected", [
    ({}, (), "nowhere"),
    ({(("int", "tuple"), ("cpu",), "code"): "file.1.nbc"}, (), "disk"),
    ({(("int", "tuple"), ("other cpu",), "code"): "file.1.nbc"}, (), "nowhere"),
    ({}, [("int", "tuple")], "process"),
    (None, (), "unknown"),  # Numba's internals moved: compile in this process as before
])
def test_where_the_code_is(index, overloads, expected):
    assert _compile._where(_FakeDispatcher(index, overloads), (3, (0, 0))) == expected


def test_a_child_runs_only_when_the_code_is_nowhere_and_once_per_version(monkeypatch):
    calls = []
    monkeypatch.setattr(_compile, "_compile_in_child", lambda features, hint: calls.append((features, hint)))
    monkeypatch.setattr(_compile, "checked", set())
    monkeypatch.delenv(_compile.ENV_COMPILE_HERE, raising=False)
    missing, present = _FakeDispatcher({}), _FakeDispatcher({(("int", "tuple", "int"), ("cpu",), "c"): "f"})
    _compile.ensure_cached(missing, (1, (0,) * 16, 2), 16, 16)
    _compile.ensure_cached(missing, (1, (0,) * 16, 2), 16, 16)  # checked once per process
    _compile.ensure_cached(present, (1, (), 2), 0, 7)  # on disk: loaded by the call itself
    assert calls == [(16, 16)]
    monkeypatch.setattr(_compile, "checked", set())
    monkeypatch.setenv(_compile.ENV_COMPILE_HERE, "1")
    _compile.ensure_cached(missing, (1, (0,) * 4, 2), 4, 4)
    assert calls == [(16, 16)]
