"""Access to the authors' C++ reference cases, kept in the repository as
tests/data/cpp_reference_cases.tar.xz (see tests/data/README.md).

cases_dir() extracts the archive (standard library only) into a fresh temporary
folder outside the repository on first use and removes it at exit; nothing is
written into the checkout. AZERO_CPP_CASES=<folder> uses an already extracted
copy (a folder holding manifest.json) instead.
"""

from __future__ import annotations

import atexit
import functools
import json
import math
import os
import pathlib
import shutil
import tarfile
import tempfile

import numpy as np

from azero_jax import serialization
from azero_jax.program import COMPONENTS, MemoryShape
from azero_jax.tasks import Task

ARCHIVE = pathlib.Path(__file__).resolve().parent / "data" / "cpp_reference_cases.tar.xz"


@functools.cache
def cases_dir() -> pathlib.Path:
    """The folder holding manifest.json, case_0000/, ... (extracted once per process)."""
    override = os.environ.get("AZERO_CPP_CASES")
    if override:
        return pathlib.Path(override)
    if not ARCHIVE.is_file():
        raise FileNotFoundError(f"C++ reference cases not found: {ARCHIVE} is missing")
    root = pathlib.Path(tempfile.mkdtemp(prefix="azero_jax_cpp_cases_"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    with tarfile.open(ARCHIVE, "r:xz") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(root, filter="data")
        else:  # Python without extraction filters; the archive is the repository's own
            tar.extractall(root)
    return root / "cpp_reference_cases"


def load_manifest() -> dict:
    path = cases_dir() / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"C++ reference cases not found: no {path} (AZERO_CPP_CASES overrides the folder)")
    return json.loads(path.read_text())


def read_program(case: dict) -> str:
    return (cases_dir() / case["program"]).read_text()


def case_task(case: dict) -> Task:
    data = np.load(cases_dir() / case["data"])
    return Task(data["x_train"], data["y_train"], data["x_valid"], data["y_valid"], eval_type=case["eval_type"],
                name=case["id"])


def case_memory(manifest: dict, case: dict) -> MemoryShape:
    m = manifest["memory"]
    return MemoryShape(m["scalar"], m["vector"], m["matrix"], case["features_size"])


def case_group(manifest: dict, cases: list[dict]) -> tuple[MemoryShape, list, list[Task]]:
    """Cases of one feature size as (memory, parsed programs, tasks), one program and task per case."""
    memory = case_memory(manifest, cases[0])
    algorithms = [serialization.parse_algorithm(read_program(c), source=c["program"], memory=memory) for c in cases]
    return memory, algorithms, [case_task(c) for c in cases]


def close(a, b, rtol: float = 1e-9, atol: float = 1e-12) -> bool:
    """The cases' tolerance: NaN matches NaN, infinities exactly, zero sign ignored."""
    a = math.nan if a is None else float(a)
    b = math.nan if b is None else float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= max(atol, rtol * max(abs(a), abs(b)))


def mismatches(case: dict, fitness: float, predictions, train_steps: int | None = None,
               stopped_early: bool | None = None) -> list[str]:
    """Every disagreement between an evaluation and the C++ output, as text."""
    tol = dict(rtol=1e-9, atol=1e-12)
    problems = []
    if not close(fitness, case["fitness"], **tol):
        problems.append(f"fitness {fitness!r} != C++ {case['fitness']!r}")
    if train_steps is not None and train_steps != case["train_steps"]:
        problems.append(f"train_steps {train_steps} != C++ {case['train_steps']}")
    if stopped_early is not None and stopped_early != case["train_stopped_early"]:
        problems.append(f"stopped_early {stopped_early} != C++ {case['train_stopped_early']}")
    reference = case["valid_predictions"]
    if reference is not None:
        stop = case["valid_stop_index"]
        n = stop + 1 if stop >= 0 else len(reference)
        if predictions is None or len(predictions) < n:
            problems.append(f"expected at least {n} validation predictions")
        else:
            for i in range(n):
                if not close(predictions[i], reference[i], **tol):
                    problems.append(f"prediction[{i}] {predictions[i]!r} != C++ {reference[i]!r}")
                    break
    return problems


def jax_mismatches(manifest: dict, case: dict) -> list[str]:
    """Evaluates one case with the JAX evaluator in float64 and compares."""
    from azero_jax import jax_eval  # JAX only where needed

    memory = case_memory(manifest, case)
    algorithm = serialization.parse_algorithm(read_program(case), source=case["program"], memory=memory)
    used = sorted(algorithm.ops_used() | {0})
    fitness, details = jax_eval.evaluate_batch(
        [algorithm], [case_task(case)], memory, dtype="float64", return_details=True,
        op_subsets={c: used for c in COMPONENTS}, max_abs_error=manifest["max_abs_error"])
    predictions = details.valid_predictions[0, 0, 0] if bool(details.validated[0, 0]) else None
    return mismatches(case, float(fitness[0, 0]), predictions, int(details.train_steps[0, 0]),
                      bool(details.stopped_early[0, 0]))
