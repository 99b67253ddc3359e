"""The authors' C++ `run_search_experiment` as `tools/compare_reference.py`
drives it: its configs written as text protos (from the facts of the
authors' run_demo.sh / run_baseline.sh; no code of theirs), its progress
output parsed, and measured subprocess runs (wall and CPU seconds).

The binary itself is built by the user outside this repository.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import resource
import signal
import subprocess
import time
from collections.abc import Sequence
from typing import Any

SUFFICIENT_FITNESS = 0.9999  # run_demo.sh's --sufficient_fitness; "discovered" for both sides
BASELINE_SEED = 1000060  # run_baseline.sh's --random_seed (and experiments/cifar_binary.py's)
STOP_GRACE_SECONDS = 10.0  # SIGTERM -> SIGKILL
# ------------------------------------------------------------- specs --
# The configs of the authors' run_demo.sh / run_baseline.sh as data; this
# tool writes the text protos from them (`text_proto`).

DEMO_OPS = ("SCALAR_CONST_SET_OP", "VECTOR_INNER_PRODUCT_OP", "SCALAR_DIFF_OP", "SCALAR_PRODUCT_OP",
            "SCALAR_VECTOR_PRODUCT_OP", "VECTOR_SUM_OP")
BASELINE_SETUP_OPS = ("SCALAR_CONST_SET_OP", "SCALAR_GAUSSIAN_SET_OP", "SCALAR_UNIFORM_SET_OP",
                      "VECTOR_GAUSSIAN_SET_OP", "VECTOR_UNIFORM_SET_OP", "MATRIX_GAUSSIAN_SET_OP",
                      "MATRIX_UNIFORM_SET_OP")
BASELINE_PREDICT_OPS = ("SCALAR_SUM_OP", "MATRIX_VECTOR_PRODUCT_OP", "VECTOR_MAX_OP", "VECTOR_INNER_PRODUCT_OP",
                        "VECTOR_SUM_OP")
BASELINE_LEARN_OPS = ("SCALAR_SUM_OP", "SCALAR_DIFF_OP", "SCALAR_PRODUCT_OP", "SCALAR_VECTOR_PRODUCT_OP",
                      "VECTOR_SUM_OP", "VECTOR_HEAVYSIDE_OP", "VECTOR_PRODUCT_OP", "VECTOR_OUTER_PRODUCT_OP",
                      "MATRIX_SUM_OP")

# What each binary must be built with (compile-time memory sizes), for the error lines.
BUILD_HINT = {
    "demo": ("the authors' run_search_experiment (google-research automl_zero) compiled with "
             "-DMAX_SCALAR_ADDRESSES=4 -DMAX_VECTOR_ADDRESSES=3 -DMAX_MATRIX_ADDRESSES=1 (as in their run_demo.sh)"),
    "baseline": ("the authors' run_search_experiment (google-research automl_zero) compiled with "
                 "-DMAX_SCALAR_ADDRESSES=5 -DMAX_VECTOR_ADDRESSES=9 -DMAX_MATRIX_ADDRESSES=2 "
                 "(as in their run_baseline.sh)"),
}


class RawProto(str):
    """Text-proto body given as text (a user's task snippet)."""


_ENUM_VALUE = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    return text if _ENUM_VALUE.match(text) else json.dumps(text)


def indent_body(text: str, depth: int) -> str:
    """A message body given as text, one line per line, re-indented (nested
    braces followed); blank lines dropped."""
    lines = []
    for raw in text.strip().splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("}"):
            depth -= 1
        lines.append("  " * max(depth, 0) + line)
        depth += line.count("{") - line.count("}") + (1 if line.startswith("}") else 0)
    return "\n".join(lines)


def text_proto(fields: dict[str, Any], depth: int = 0) -> str:
    """A text-format protobuf message from a dict: dict values are
    sub-messages, lists are repeated fields, UPPER_CASE strings are enum
    values, other strings are quoted, RawProto is pasted as a message body."""
    pad = "  " * depth
    lines = []
    for key, value in fields.items():
        if isinstance(value, RawProto):
            lines += [f"{pad}{key} {{", indent_body(value, depth + 1), f"{pad}}}"]
        elif isinstance(value, dict):
            lines += [f"{pad}{key} {{}}"] if not value else [f"{pad}{key} {{", text_proto(value, depth + 1),
                                                            f"{pad}}}"]
        elif isinstance(value, (list, tuple)):
            lines.append(f"{pad}{key}: [{', '.join(_scalar(v) for v in value)}]")
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")
    return "\n".join(lines)


def _linear_tasks(features: int, train: int, valid: int, num: int, **seeds: Any) -> dict[str, Any]:
    return {"scalar_linear_regression_task": {}, "features_size": features, "num_train_examples": train,
            "num_valid_examples": valid, "num_tasks": num, "eval_type": "RMS_ERROR", **seeds}


def demo_args(seed: int, progress_every: int) -> list[str]:
    """run_search_experiment's flags for the demo (run_demo.sh's settings)."""
    spec = {
        "search_tasks": {"tasks": _linear_tasks(4, 100, 100, 10)},
        "setup_ops": DEMO_OPS, "predict_ops": DEMO_OPS, "learn_ops": DEMO_OPS,
        "setup_size_init": 10, "predict_size_init": 2, "learn_size_init": 8,
        "fec": {"num_train_examples": 10, "num_valid_examples": 10},
        "fitness_combination_mode": "MEAN_FITNESS_COMBINATION",
        "population_size": 1000, "tournament_size": 10, "initial_population": "RANDOM_ALGORITHM",
        "max_train_steps": 200_000_000,
        "allowed_mutation_types": {"mutation_types": ("ALTER_PARAM_MUTATION_TYPE",
                                                      "RANDOMIZE_INSTRUCTION_MUTATION_TYPE",
                                                      "RANDOMIZE_COMPONENT_FUNCTION_MUTATION_TYPE")},
        "mutate_prob": 0.9, "progress_every": progress_every,
    }
    select = {"tasks": _linear_tasks(4, 1000, 100, 100)}
    final = {"tasks": _linear_tasks(4, 1000, 100, 100, data_seeds=[1000000], param_seeds=[2000000])}
    return [f"--search_experiment_spec={text_proto(spec)}", f"--select_tasks={text_proto(select)}",
            f"--final_tasks={text_proto(final)}", "--max_experiments=0", "--randomize_task_seeds",
            f"--sufficient_fitness={SUFFICIENT_FITNESS}", f"--random_seed={seed}"]


SYNTHETIC_BASELINE_TASKS = text_proto({"tasks": {**_linear_tasks(16, 8000, 1000, 10), "num_train_epochs": 1}})


def baseline_args(tasks: str, progress_every: int) -> list[str]:
    """run_search_experiment's flags for the baseline config (run_baseline.sh's
    settings) on the task collection body `tasks`, for a time-capped run."""
    spec = {
        "search_tasks": RawProto(tasks),
        "setup_ops": BASELINE_SETUP_OPS, "predict_ops": BASELINE_PREDICT_OPS, "learn_ops": BASELINE_LEARN_OPS,
        "setup_size_init": 1, "mutate_setup_size_min": 1, "mutate_setup_size_max": 7,
        "predict_size_init": 1, "mutate_predict_size_min": 1, "mutate_predict_size_max": 11,
        "learn_size_init": 1, "mutate_learn_size_min": 1, "mutate_learn_size_max": 23,
        "train_budget": {"train_budget_baseline": "NEURAL_NET_ALGORITHM"},
        "fitness_combination_mode": "MEAN_FITNESS_COMBINATION",
        "population_size": 100, "tournament_size": 10, "initial_population": "NO_OP_ALGORITHM",
        "max_train_steps": 100_000_000_000,
        "allowed_mutation_types": {"mutation_types": ("ALTER_PARAM_MUTATION_TYPE",
                                                      "RANDOMIZE_COMPONENT_FUNCTION_MUTATION_TYPE",
                                                      "INSERT_INSTRUCTION_MUTATION_TYPE",
                                                      "REMOVE_INSTRUCTION_MUTATION_TYPE")},
        "mutate_prob": 0.9, "progress_every": progress_every,
    }
    body = indent_body(tasks, 0)
    return [f"--search_experiment_spec={text_proto(spec)}", f"--select_tasks={body}", f"--final_tasks={body}",
            "--max_experiments=1", f"--random_seed={BASELINE_SEED}"]


def task_train_steps(tasks: str) -> int | None:
    """Train steps one individual costs on a task collection body: the sum
    over its `tasks { ... }` blocks of num_tasks x num_train_examples x
    num_train_epochs (default 1); None when the text does not say."""
    blocks = re.split(r"\btasks\s*\{", tasks)[1:]
    total = 0
    for block in blocks:
        num = re.search(r"\bnum_tasks\s*:\s*(\d+)", block)
        train = re.search(r"\bnum_train_examples\s*:\s*(\d+)", block)
        epochs = re.search(r"\bnum_train_epochs\s*:\s*(\d+)", block)
        if not (num and train):
            return None
        total += int(num.group(1)) * int(train.group(1)) * (int(epochs.group(1)) if epochs else 1)
    return total or None


# ----------------------------------------------------------- parsing --

_PROGRESS = re.compile(r"^indivs=(\d+), elapsed_secs=(\d+(?:\.\d*)?), mean=([^,\s]+), stdev=([^,\s]+), "
                       r"best fit=([^,\s]+),(.*)$")
_EXTRA = re.compile(r"([\w/]+)=([^,\s]+),")
_FLOAT_AFTER = {"search": re.compile(r"^Search fitness for candidate algorithm = (\S+)"),
                "select": re.compile(r"^Select fitness for candidate algorithm = (\S+)"),
                "final": re.compile(r"^Final evaluation fitness \(on unseen data\) = (\S+)")}
_NEW_EXPERIMENT = re.compile(r"^Running evolution experiment")


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


@dataclasses.dataclass
class RunLog:
    """What a run_search_experiment-style log says: progress lines (grouped
    per search experiment), and the search / select / final fitness lines."""

    experiments: list[list[dict[str, Any]]]  # progress lines per experiment
    search: list[float]
    select: list[float]
    final: float | None
    last_line: str

    @property
    def progress(self) -> list[dict[str, Any]]:
        return [p for exp in self.experiments for p in exp]

    @property
    def individuals(self) -> int:
        """Individuals over all experiments (each experiment's counter starts at 0)."""
        return sum(max(p["indivs"] for p in exp) for exp in self.experiments if exp)

    @property
    def num_experiments(self) -> int:
        return max(len([e for e in self.experiments if e]), len(self.select))

    @property
    def best_select(self) -> float | None:
        return max(self.select) if self.select else None


def parse_log(text: str) -> RunLog:
    """Parses the reference's output (azero-jax's progress lines have the
    same fields, with throughput after them, which land in each line's dict
    under their own names: `indivs/s`, `train_steps/s`, `fec_hit_rate`)."""
    experiments: list[list[dict[str, Any]]] = [[]]
    fits: dict[str, list[float]] = {"search": [], "select": [], "final": []}
    last = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        last = line
        if _NEW_EXPERIMENT.match(line):
            if experiments[-1]:
                experiments.append([])
            continue
        m = _PROGRESS.match(line)
        if m:
            row: dict[str, Any] = {"indivs": int(m.group(1)), "elapsed_secs": float(m.group(2)),
                                   "mean": _float(m.group(3)), "stdev": _float(m.group(4)),
                                   "best_fit": _float(m.group(5))}
            row.update({k: _float(v) for k, v in _EXTRA.findall(m.group(6))})
            if experiments[-1] and row["indivs"] < experiments[-1][-1]["indivs"]:
                experiments.append([])  # the counter restarted: a new experiment
            experiments[-1].append(row)
            continue
        for key, pattern in _FLOAT_AFTER.items():
            m = pattern.match(line)
            if m:
                fits[key].append(_float(m.group(1)))
    experiments = [e for e in experiments if e] or [[]]
    return RunLog(experiments=experiments, search=fits["search"], select=fits["select"],
                  final=fits["final"][-1] if fits["final"] else None, last_line=last)


# ---------------------------------------------------------- running --

class ToolError(Exception):
    """Ends the tool with one `error:` line and exit status 2."""


@dataclasses.dataclass
class Proc:
    rc: int | None
    wall_s: float
    cpu_s: float
    timed_out: bool
    log_path: str

    def text(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the child's process group (it was started in its own
    session), then SIGKILL if it is still there after a grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=STOP_GRACE_SECONDS)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


def run_measured(cmd: Sequence[str], log_path: str, timeout_s: float, cwd: str) -> Proc:
    """Runs `cmd` with its output in `log_path`, stopped after `timeout_s`;
    wall time, and CPU time (user + system) of the reaped child."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # a stopped Python child keeps its last lines
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    timed_out = False
    with open(log_path, "w", encoding="utf-8") as log:
        try:
            proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=cwd, env=env, start_new_session=True)
        except OSError as e:
            raise ToolError(f"cannot run {cmd[0]}: {e.strerror or e}") from None
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _stop(proc)
        except BaseException:
            _stop(proc)
            raise
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Proc(rc=None if timed_out else proc.returncode, wall_s=wall, cpu_s=cpu, timed_out=timed_out,
                log_path=log_path)


def check_binary(flag: str, path: str | None, kind: str) -> str | None:
    """The binary's absolute path, None when not given; ToolError when it is
    not an executable file."""
    if not path:
        return None
    full = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(full):
        raise ToolError(f"--{flag}={path}: no such file; build {BUILD_HINT[kind]} outside this repository and "
                        "pass its path")
    if not os.access(full, os.X_OK):
        raise ToolError(f"--{flag}={path} is not executable; it must be {BUILD_HINT[kind]}")
    return full


def require_progress(log: RunLog, binary: str, kind: str, proc: Proc) -> None:
    if log.progress:
        return
    how = (f"stopped after {proc.wall_s:.0f} s" if proc.timed_out else f"exit status {proc.rc}")
    hint = " (or it was still loading data: give it more --throughput_seconds)" if kind == "baseline" else ""
    last = log.last_line[:200] or "(no output)"
    raise ToolError(f"{binary} printed no run_search_experiment progress line ('indivs=N, elapsed_secs=S, "
                    f"mean=..., stdev=..., best fit=...,') ({how}; last output line: {last}); it must be "
                    f"{BUILD_HINT[kind]}{hint}")
