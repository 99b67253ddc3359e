"""The authors' C++ AutoML-Zero next to azero-jax, on this machine, in one run.

    python tools/compare_reference.py \\
        --cpp_demo_binary=$HOME/automl_zero_demo/run_search_experiment \\
        --cpp_baseline_binary=$HOME/automl_zero_baseline/run_search_experiment \\
        --cpp_baseline_tasks=synthetic --seeds=1,2,3,4,5
    python tools/compare_reference.py --rounds=discovery --cpp_demo_binary=... --max_seconds_per_seed=900
    python tools/compare_reference.py --rounds=throughput --cpp_baseline_binary=... \\
        --cpp_baseline_tasks=@baseline_tasks.textproto --dataset=fashion_mnist --throughput_seconds=300

The C++ side is the `run_search_experiment` binary of the authors' public code
(google-research/google-research, folder `automl_zero/`). This repository
neither contains nor builds it: build it yourself from that code, twice,
because the memory sizes are compile-time constants there:

  --cpp_demo_binary      built with MAX_SCALAR_ADDRESSES=4, MAX_VECTOR_ADDRESSES=3,
                         MAX_MATRIX_ADDRESSES=1 (the settings of their run_demo.sh)
  --cpp_baseline_binary  built with 5 / 9 / 2 (the settings of their run_baseline.sh)

Either may be left out; that side's C++ runs are then skipped (the azero-jax
runs still happen). Everything runs here, one process at a time, so the two
implementations see the same machine.

Two rounds (--rounds):

discovery   The demo config of run_demo.sh: rediscover linear regression
            (F=4, 10 search tasks of 100/100 examples, the six demo ops,
            sizes 10/2/8, FEC on 10/10 examples, population 1000, tournament
            10, 2e8 train steps per search; each search's best is checked on
            100 select tasks of 1000 examples, with new task seeds per search,
            until select fitness > 0.9999; then 100 final tasks). For every
            --seeds value the C++ binary runs with --random_seed=SEED (this
            tool writes the spec text proto itself; it differs from the
            script only in `progress_every`, --cpp_progress_every, which
            prints more often so the individual count is exact and does not
            change the search), then `experiments/linear_regression.py
            --seed=SEED` with that script's defaults except
            --max_experiments=0 (unlimited, like the reference), each in its
            own subprocess, capped at --max_seconds_per_seed of wall time
            (the C++ run is stopped there; azero-jax gets it as its
            --max_minutes budget and finishes its final evaluation after it).
            Per run: experiments, individuals, wall and CPU seconds (user +
            system of the child, from getrusage(RUSAGE_CHILDREN) around it:
            start-up, JAX compilation and the select/final evaluations
            included, as a user sees them), individuals per wall second and
            per CPU second, train steps/s (azero-jax only: the C++ binary
            does not print its train-step count), select and final fitness,
            and "discovered" (select fitness > 0.9999, the reference's
            stopping rule, for both). The two implementations draw different
            random numbers, so seed N of one has nothing to do with seed N of
            the other: compare the medians (a seed stopped at the cap counts
            its capped time, so with timeouts the medians are lower bounds).

throughput  The baseline config of run_baseline.sh (F=16, population 100, the
            baseline op sets, max sizes 7/11/23, no-op init, the neural-net
            train budget, no FEC), for a fixed --throughput_seconds each. The
            C++ binary needs task data: --cpp_baseline_tasks is the body of
            a TaskCollection text proto (one or more `tasks { ... }`), or
            @FILE holding one, or `synthetic`: 10 of their synthetic
            linear-regression tasks (RMS error) of the baseline's shape, F=16,
            8000 train / 1000 valid examples, so that no data files are
            needed. For the paper's projected binary CIFAR-10 tasks, generate
            the data with their generate_datasets.py and give the
            `projected_binary_classification_task` block of their
            run_baseline.sh with your data path. azero-jax runs
            `experiments/cifar_binary.py --nobaselines --max_minutes=0` (its
            built-in digits data by default, capped at 278/35 examples per
            task; --dataset / --data_dir are passed through), or with
            --dataset=synthetic `experiments/search.py --config=baseline` on
            10 linear-regression tasks of the same kind and shape as the
            C++'s `synthetic` ones (float64): the like-for-like comparison,
            where both sides' programs meet the same early stops on the same
            kind of data. Both processes
            are stopped after --throughput_seconds; the figures come from
            each one's last progress line: individuals per second of its own
            clock, individuals per CPU second of the whole process, and
            train steps/s (azero-jax: printed; C++: an upper-bound estimate,
            individuals/s x tasks x train examples x epochs read from the
            task proto, as programs the train budget rejects train for no
            steps). Individuals/s only compare like with like when both
            sides train on tasks of the same size (--dataset=fashion_mnist
            gives azero-jax the baseline's 8000/1000); train steps/s do not
            depend on it.

Output: one status line per run, a markdown table per round, and last one
line of key=value pairs (ratios are azero-jax / C++, so > 1 means azero-jax
is faster; `na` where a figure is missing). --output_json writes every raw
figure; the logs of all runs stay in --work_dir.

A missing or non-executable binary, or one that does not print the
reference's progress lines (`indivs=N, elapsed_secs=S, mean=..., stdev=...,
best fit=...,`), is one `error:` line saying what to build, and exit status 2.

This tool never imports JAX: both azero-jax sides are subprocesses of the
experiment scripts, which set up the CPU devices themselves
(azero_jax.cpu_devices) and are measured like the C++ binary.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # runnable from a checkout without installing

from azero_jax import cli  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cpp_reference import (  # noqa: E402  (tools/ is on sys.path: this script's folder)
    SUFFICIENT_FITNESS,
    SYNTHETIC_BASELINE_TASKS,
    Proc,
    RunLog,
    ToolError,
    baseline_args,
    check_binary,
    demo_args,
    parse_log,
    require_progress,
    run_measured,
    task_train_steps,
)

LINEAR_REGRESSION = os.path.join(ROOT, "experiments", "linear_regression.py")
CIFAR_BINARY = os.path.join(ROOT, "experiments", "cifar_binary.py")
SEARCH = os.path.join(ROOT, "experiments", "search.py")
# --dataset=synthetic: the C++'s synthetic baseline tasks' kind and shape (10 linear-regression
# tasks, F=16, 8000/1000 examples, RMS error) for azero-jax's search of the baseline config.
SYNTHETIC = "synthetic"
SYNTHETIC_SPEC = {"kind": "linear", "features": 16, "num_train": 8000, "num_valid": 1000, "num_tasks": 10}
SYNTHETIC_TASKS = json.dumps([SYNTHETIC_SPEC], separators=(",", ":"))
ROUNDS = ("discovery", "throughput")
AZERO_GRACE_SECONDS = 120.0  # azero-jax's final evaluation after its --max_minutes budget
NA = "na"

def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0 or not math.isfinite(a) or not math.isfinite(b):
        return None
    return a / b


def _per(n: float | None, secs: float | None) -> float | None:
    return None if n is None or not secs or secs <= 0 else n / secs


def median(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(vals) if vals else None


def _fresh_dir(path: str) -> str:
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)
    return path


# ----------------------------------------------------- discovery round --

def cpp_discovery(binary: str, seed: int, work: str) -> dict[str, Any]:
    run_dir = _fresh_dir(os.path.join(work, f"cpp_seed_{seed}"))
    proc = run_measured([binary, *demo_args(seed, FLAGS.cpp_progress_every)], os.path.join(run_dir, "log.txt"),
                        FLAGS.max_seconds_per_seed, run_dir)
    log = parse_log(proc.text())
    require_progress(log, binary, "demo", proc)
    n = log.individuals
    select = log.best_select
    status = "timeout" if proc.timed_out else ("ok" if proc.rc == 0 else f"rc {proc.rc}")
    return dict(side="cpp", seed=seed, status=status, discovered=select is not None and select > SUFFICIENT_FITNESS,
                experiments=log.num_experiments, individuals=n, wall_s=proc.wall_s, cpu_s=proc.cpu_s,
                indivs_per_s=_per(n, proc.wall_s), indivs_per_cpu_s=_per(n, proc.cpu_s), train_steps_per_s=None,
                select=select, final=log.final, log=proc.log_path)


def _azero_command(flag_value: str, script: str) -> list[str]:
    return shlex.split(flag_value) if flag_value else [sys.executable, script]


def azero_discovery(seed: int, work: str) -> dict[str, Any]:
    out = _fresh_dir(os.path.join(work, f"azero_seed_{seed}"))
    cmd = [*_azero_command(FLAGS.azero_discovery_command, LINEAR_REGRESSION), f"--seed={seed}",
           f"--output_dir={out}", "--resume=no", f"--max_minutes={FLAGS.max_seconds_per_seed / 60.0!r}",
           "--max_experiments=0", *FLAGS.azero_extra]
    proc = run_measured(cmd, os.path.join(work, f"azero_seed_{seed}.log"),
                        FLAGS.max_seconds_per_seed + AZERO_GRACE_SECONDS, ROOT)
    row: dict[str, Any] = dict(side="azero", seed=seed, wall_s=proc.wall_s, cpu_s=proc.cpu_s, log=proc.log_path,
                               discovered=False, experiments=None, individuals=None, indivs_per_s=None,
                               indivs_per_cpu_s=None, train_steps_per_s=None, select=None, final=None)
    path = os.path.join(out, "results.json")
    if proc.rc != 0 or not os.path.exists(path):
        row["status"] = "timeout" if proc.timed_out else f"rc {proc.rc}"
        last = parse_log(proc.text()).last_line[:200]
        print(f"warning: azero-jax seed {seed} failed ({row['status']}): {last} (log: {proc.log_path})",
              file=sys.stderr, flush=True)
        return row
    with open(path, encoding="utf-8") as f:
        res = json.load(f)
    n = int(res["counters"]["individuals"])
    steps = res["counters"].get("train_steps")
    select = float(res["select_fitness"])
    row.update(status="ok", discovered=select > SUFFICIENT_FITNESS, experiments=int(res["num_experiments"]),
               individuals=n, indivs_per_s=_per(n, proc.wall_s), indivs_per_cpu_s=_per(n, proc.cpu_s),
               train_steps_per_s=_per(steps, res.get("elapsed_seconds")), select=select,
               final=float(res["final_fitness"]), run_seconds=res.get("elapsed_seconds"))
    return row


SIDES = (("cpp", "C++"), ("azero", "azero-jax"))
DISCOVERY_METRICS = ("wall_s", "cpu_s", "individuals", "indivs_per_s", "indivs_per_cpu_s", "train_steps_per_s")


def discovery_medians(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per side: runs, discovered count and the medians over the runs that
    produced figures (a timed-out C++ run counts, at its cap)."""
    out: dict[str, dict[str, Any]] = {}
    for side, _ in SIDES:
        mine = [r for r in rows if r["side"] == side]
        if not mine:
            continue
        done = [r for r in mine if r["individuals"] is not None]
        med = {m: median([r[m] for r in done]) for m in DISCOVERY_METRICS}
        med.update(runs=len(mine), discovered=sum(bool(r["discovered"]) for r in mine),
                   experiments=median([r["experiments"] for r in done]))
        out[side] = med
    return out


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NA
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def discovery_table(rows: list[dict[str, Any]], medians: dict[str, dict[str, Any]]) -> str:
    head = ("side", "seed", "status", "discovered", "experiments", "individuals", "wall s", "CPU s", "indivs/s",
            "indivs/CPU-s", "train steps/s", "select", "final")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for side, label in SIDES:
        for r in (r for r in rows if r["side"] == side):
            cells = (label, r["seed"], r["status"], _fmt(r["discovered"]), _fmt(r["experiments"]),
                     _fmt(r["individuals"]), _fmt(r["wall_s"], 1), _fmt(r["cpu_s"], 1), _fmt(r["indivs_per_s"]),
                     _fmt(r["indivs_per_cpu_s"]), _fmt(r["train_steps_per_s"]), _fmt(r["select"], 6),
                     _fmt(r["final"], 6))
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    for side, label in SIDES:
        if side not in medians:
            continue
        m = medians[side]
        cells = (f"{label} median", "", "", f"{m['discovered']}/{m['runs']}", _fmt(m["experiments"], 1),
                 _fmt(m["individuals"]), _fmt(m["wall_s"], 1), _fmt(m["cpu_s"], 1), _fmt(m["indivs_per_s"]),
                 _fmt(m["indivs_per_cpu_s"]), _fmt(m["train_steps_per_s"]), "", "")
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def discovery_round(work: str, summary: dict[str, Any], report: dict[str, Any]) -> None:
    binary = FLAGS.cpp_demo_binary
    work = os.path.join(work, "discovery")
    os.makedirs(work, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for seed in FLAGS.seeds:
        seed = int(seed)
        runs = ([cpp_discovery(binary, seed, work)] if binary else []) + [azero_discovery(seed, work)]
        for r in runs:
            rows.append(r)
            print(f"[discovery] {dict(SIDES)[r['side']]} seed {seed}: {r['status']}, "
                  f"discovered={_fmt(r['discovered'])}, experiments={_fmt(r['experiments'])}, "
                  f"individuals={_fmt(r['individuals'])}, wall={r['wall_s']:.1f}s, CPU={r['cpu_s']:.1f}s, "
                  f"log {r['log']}", flush=True)
    medians = discovery_medians(rows)
    print("\n## Discovery round: run_demo.sh config (rediscover linear regression), per seed\n")
    print("Seeds are not comparable across the two implementations (different random number streams): compare "
          "the medians. Times are whole processes (start-up, compilation, select/final evaluations included); "
          f"discovered = select fitness > {SUFFICIENT_FITNESS}; a run stopped at --max_seconds_per_seed="
          f"{FLAGS.max_seconds_per_seed:g} counts at its cap.\n")
    print(discovery_table(rows, medians))
    for side, _ in SIDES:
        if side in medians:
            m = medians[side]
            summary[f"{side}_discovery_runs"] = m["runs"]
            summary[f"{side}_discovered"] = m["discovered"]
            summary[f"{side}_discovery_median_wall_s"] = m["wall_s"]
            summary[f"{side}_discovery_median_cpu_s"] = m["cpu_s"]
            summary[f"{side}_demo_median_individuals"] = m["individuals"]
            summary[f"{side}_demo_median_indivs_per_s"] = m["indivs_per_s"]
            summary[f"{side}_demo_median_indivs_per_cpu_s"] = m["indivs_per_cpu_s"]
    summary["azero_demo_median_train_steps_per_s"] = medians.get("azero", {}).get("train_steps_per_s")
    cpp, az = medians.get("cpp", {}), medians.get("azero", {})
    summary["demo_indivs_per_s_ratio"] = _ratio(az.get("indivs_per_s"), cpp.get("indivs_per_s"))
    summary["demo_indivs_per_cpu_s_ratio"] = _ratio(az.get("indivs_per_cpu_s"), cpp.get("indivs_per_cpu_s"))
    summary["discovery_wall_s_ratio"] = _ratio(az.get("wall_s"), cpp.get("wall_s"))
    report["discovery"] = dict(rows=rows, medians=medians)


# ---------------------------------------------------- throughput round --

def baseline_tasks_text() -> str:
    value = (FLAGS.cpp_baseline_tasks or "").strip()
    if not value:
        raise ToolError("--cpp_baseline_tasks is required for the C++ throughput round: `synthetic` (10 synthetic "
                        "linear-regression tasks, F=16, 8000/1000 examples), a TaskCollection text-proto body "
                        "('tasks { ... }', e.g. the projected_binary_classification_task block of the authors' "
                        "run_baseline.sh with your data path), or @FILE holding one")
    if value == "synthetic":
        return SYNTHETIC_BASELINE_TASKS
    if value.startswith("@"):
        try:
            with open(os.path.expanduser(value[1:]), encoding="utf-8") as f:
                value = f.read().strip()
        except OSError as e:
            raise ToolError(f"--cpp_baseline_tasks={FLAGS.cpp_baseline_tasks}: {e.strerror or e}") from None
    if not re.search(r"\btasks\s*\{", value) or value.count("{") != value.count("}"):
        raise ToolError("--cpp_baseline_tasks must be the body of a TaskCollection text proto: one or more "
                        "'tasks { ... }' blocks with balanced braces (or `synthetic`, or @FILE)")
    return value


def _throughput_row(side: str, proc: Proc, log: RunLog, steps_per_indiv: int | None) -> dict[str, Any]:
    last = log.progress[-1] if log.progress else None
    row: dict[str, Any] = dict(side=side, status="stopped" if proc.timed_out else f"exited (rc {proc.rc})",
                               wall_s=proc.wall_s, cpu_s=proc.cpu_s, log=proc.log_path, progress_lines=len(log.progress),
                               individuals=None, elapsed_secs=None, indivs_per_s=None, indivs_per_cpu_s=None,
                               train_steps_per_s=None, train_steps_estimated=False)
    if last is None:
        row["status"] += ", no progress line"
        return row
    n = log.individuals
    rate = last.get("indivs/s")
    if rate is None or not math.isfinite(rate) or len(log.experiments) > 1:
        rate = _per(n, last["elapsed_secs"])
    row.update(individuals=n, elapsed_secs=last["elapsed_secs"], indivs_per_s=rate,
               indivs_per_cpu_s=_per(n, proc.cpu_s))
    if "train_steps/s" in last and math.isfinite(last["train_steps/s"]):
        row["train_steps_per_s"] = last["train_steps/s"]
    elif steps_per_indiv and rate is not None:
        row.update(train_steps_per_s=rate * steps_per_indiv, train_steps_estimated=True)
    return row


_AZERO_DATA = re.compile(r"F=(\d+), (\d+)/(\d+) train/valid, (\d+) search")


def throughput_round(work: str, summary: dict[str, Any], report: dict[str, Any]) -> None:
    work = os.path.join(work, "throughput")
    os.makedirs(work, exist_ok=True)
    secs = FLAGS.throughput_seconds
    every = FLAGS.throughput_progress_every
    rows: list[dict[str, Any]] = []
    if FLAGS.cpp_baseline_binary:
        binary = FLAGS.cpp_baseline_binary
        tasks = baseline_tasks_text()
        run_dir = _fresh_dir(os.path.join(work, "cpp"))
        proc = run_measured([binary, *baseline_args(tasks, every)], os.path.join(run_dir, "log.txt"), secs, run_dir)
        log = parse_log(proc.text())
        require_progress(log, binary, "baseline", proc)
        steps = task_train_steps(tasks)
        row = _throughput_row("cpp", proc, log, steps)
        row["data"] = ("synthetic linear regression" if FLAGS.cpp_baseline_tasks.strip() == "synthetic"
                       else "--cpp_baseline_tasks") + (f", {steps} train steps/individual" if steps else "")
        rows.append(row)
    out = _fresh_dir(os.path.join(work, "azero"))
    synthetic = FLAGS.dataset == SYNTHETIC
    if synthetic:  # the baseline preset on tasks like the C++'s synthetic ones (no data files)
        cmd = [*_azero_command(FLAGS.azero_throughput_command, SEARCH), f"--output_dir={out}", "--config=baseline",
               *(f"--set={kind}_tasks={SYNTHETIC_TASKS}" for kind in ("search", "select", "final")),
               "--dtype=float64", "--max_minutes=0", f"--progress_every={every}"]
    else:
        cmd = [*_azero_command(FLAGS.azero_throughput_command, CIFAR_BINARY), f"--output_dir={out}",
               "--nobaselines", "--max_minutes=0", f"--progress_every={every}"]
        cmd += [f"--dataset={FLAGS.dataset}"] if FLAGS.dataset else []
        cmd += [f"--data_dir={FLAGS.data_dir}"] if FLAGS.data_dir else []
    proc = run_measured([*cmd, *FLAGS.azero_throughput_extra], os.path.join(work, "azero.log"), secs, ROOT)
    text = proc.text()
    row = _throughput_row("azero", proc, parse_log(text), None)
    if synthetic:
        row["data"] = (f"synthetic linear regression, "
                       f"{SYNTHETIC_SPEC['num_tasks'] * SYNTHETIC_SPEC['num_train']} train steps/individual")
    else:
        m = _AZERO_DATA.search(text)
        row["data"] = (f"{FLAGS.dataset or 'digits'}"
                       + (f", {int(m.group(4)) * int(m.group(2))} train steps/individual" if m else ""))
    if row["individuals"] is None:
        print(f"warning: azero-jax printed no progress line in {secs:g} s (log: {proc.log_path})", file=sys.stderr,
              flush=True)
    rows.append(row)
    for r in rows:
        print(f"[throughput] {dict(SIDES)[r['side']]}: {r['status']}, individuals={_fmt(r['individuals'])}, "
              f"wall={r['wall_s']:.1f}s, CPU={r['cpu_s']:.1f}s, log {r['log']}", flush=True)

    print(f"\n## Throughput round: run_baseline.sh config, {secs:g} s each\n")
    print("Figures from each side's last progress line: individuals per second of its own clock, individuals per "
          "CPU second of the whole process; C++ train steps/s are an upper-bound estimate (marked ~) from the task "
          "proto. Individuals/s compare only on tasks of the same size; train steps/s do not depend on it.\n")
    head = ("side", "status", "data", "progress lines", "individuals", "elapsed s", "wall s", "CPU s", "indivs/s",
            "indivs/CPU-s", "train steps/s")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        steps = _fmt(r["train_steps_per_s"])
        if r["train_steps_estimated"] and steps != NA:
            steps = "~" + steps
        cells = (dict(SIDES)[r["side"]], r["status"], r.get("data", ""), r["progress_lines"], _fmt(r["individuals"]),
                 _fmt(r["elapsed_secs"]), _fmt(r["wall_s"], 1), _fmt(r["cpu_s"], 1), _fmt(r["indivs_per_s"], 1),
                 _fmt(r["indivs_per_cpu_s"], 1), steps)
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    print("\n".join(lines))
    by_side = {r["side"]: r for r in rows}
    for side, _ in SIDES:
        if side in by_side:
            r = by_side[side]
            summary[f"{side}_baseline_indivs_per_s"] = r["indivs_per_s"]
            summary[f"{side}_baseline_indivs_per_cpu_s"] = r["indivs_per_cpu_s"]
            key = f"{side}_baseline_train_steps_per_s" + ("_est" if r["train_steps_estimated"] else "")
            summary[key] = r["train_steps_per_s"]
    cpp, az = by_side.get("cpp", {}), by_side["azero"]
    summary["baseline_indivs_per_s_ratio"] = _ratio(az["indivs_per_s"], cpp.get("indivs_per_s"))
    summary["baseline_indivs_per_cpu_s_ratio"] = _ratio(az["indivs_per_cpu_s"], cpp.get("indivs_per_cpu_s"))
    summary["baseline_train_steps_per_s_ratio"] = _ratio(az["train_steps_per_s"], cpp.get("train_steps_per_s"))
    report["throughput"] = dict(rows=rows, seconds=secs)


# -------------------------------------------------------------- main --

FLAGS = flags.FLAGS


def define_flags() -> None:
    """This tool's flags (defined on use, so that tests can import the module)."""
    if "cpp_demo_binary" in FLAGS:
        return
    flags.DEFINE_string("cpp_demo_binary", None, "the authors' run_search_experiment built with memory sizes "
                        "4/3/1 (run_demo.sh's -DMAX_*_ADDRESSES); omit to skip the C++ discovery runs")
    flags.DEFINE_string("cpp_baseline_binary", None, "the authors' run_search_experiment built with memory sizes "
                        "5/9/2 (run_baseline.sh's); omit to skip the C++ throughput run")
    flags.DEFINE_string("cpp_baseline_tasks", "", "C++ throughput tasks (required with --cpp_baseline_binary): "
                        "`synthetic` (10 linear-regression tasks, F=16, 8000/1000), a TaskCollection text-proto body "
                        "('tasks { ... }'), or @FILE holding one")
    flags.DEFINE_list("seeds", ["1", "2", "3", "4", "5"], "discovery seeds, run on each side")
    flags.DEFINE_float("max_seconds_per_seed", 1800.0, "wall-clock cap of each discovery run")
    flags.DEFINE_float("throughput_seconds", 120.0, "length of each side's throughput run")
    flags.DEFINE_list("rounds", list(ROUNDS), "which rounds: discovery, throughput")
    flags.DEFINE_string("output_json", None, "also write every raw figure here")
    flags.DEFINE_string("work_dir", None, "logs and run folders (default: a new temporary folder, kept)")
    flags.DEFINE_integer("cpp_progress_every", 1000, "C++ demo progress_every (run_demo.sh: 10000); a line per "
                         "generation makes the individual count exact and does not change the search")
    flags.DEFINE_integer("throughput_progress_every", 100, "progress_every of both throughput runs (one line per "
                         "generation of 100)")
    flags.DEFINE_list("azero_extra", [], "extra flags for experiments/linear_regression.py (after this tool's)")
    flags.DEFINE_list("azero_throughput_extra", [], "extra flags for experiments/cifar_binary.py (or search.py with "
                      "--dataset=synthetic; after this tool's)")
    flags.DEFINE_string("dataset", None, "azero-jax throughput data, passed to experiments/cifar_binary.py "
                        "(default: its built-in digits); `synthetic` runs experiments/search.py --config=baseline "
                        "on 10 linear-regression tasks, F=16, 8000/1000 (the kind and shape of "
                        "--cpp_baseline_tasks=synthetic)")
    flags.DEFINE_string("data_dir", None, "passed to experiments/cifar_binary.py with --dataset")
    flags.DEFINE_string("azero_discovery_command", "", "command run instead of `python "
                        "experiments/linear_regression.py` (tests, wrappers); this tool appends its flags")
    flags.DEFINE_string("azero_throughput_command", "", "command run instead of `python "
                        "experiments/cifar_binary.py` (tests, wrappers); this tool appends its flags")


def _check_flags() -> None:
    bad = [r for r in FLAGS.rounds if r not in ROUNDS]
    if bad or not FLAGS.rounds:
        raise ToolError(f"--rounds: unknown round(s) {', '.join(bad) or '(none given)'}; choose from "
                        f"{', '.join(ROUNDS)}")
    try:
        seeds = [int(s) for s in FLAGS.seeds]
    except ValueError:
        raise ToolError(f"--seeds must be integers, got {','.join(FLAGS.seeds)}") from None
    if "discovery" in FLAGS.rounds and (not seeds or min(seeds) < 1):
        raise ToolError("--seeds must be one or more integers >= 1 (0 would mean a time-based seed)")
    for name in ("max_seconds_per_seed", "throughput_seconds"):
        if not FLAGS[name].value > 0:
            raise ToolError(f"--{name} must be > 0")
    for name in ("cpp_progress_every", "throughput_progress_every"):
        if FLAGS[name].value < 1:
            raise ToolError(f"--{name} must be >= 1")
    if "discovery" in FLAGS.rounds:
        FLAGS.cpp_demo_binary = check_binary("cpp_demo_binary", FLAGS.cpp_demo_binary, "demo")
    if "throughput" in FLAGS.rounds:
        FLAGS.cpp_baseline_binary = check_binary("cpp_baseline_binary", FLAGS.cpp_baseline_binary, "baseline")
        if FLAGS.cpp_baseline_binary:
            baseline_tasks_text()


def _finite(value: Any) -> Any:
    """JSON-safe: NaN / infinity become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def format_summary(summary: dict[str, Any]) -> str:
    def show(v: Any) -> str:
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return NA
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 100 else f"{v:.0f}"
        return str(v)

    return " ".join(f"{k}={show(v)}" for k, v in summary.items())


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        _check_flags()
        work = FLAGS.work_dir or tempfile.mkdtemp(prefix="compare_reference_")
        work = os.path.abspath(work)
        os.makedirs(work, exist_ok=True)
        print(f"logs and run folders in {work}", flush=True)
        summary: dict[str, Any] = {}
        report: dict[str, Any] = {"work_dir": work, "flags": {
            name: FLAGS[name].value for name in ("cpp_demo_binary", "cpp_baseline_binary", "cpp_baseline_tasks",
                                                 "seeds", "max_seconds_per_seed", "throughput_seconds", "rounds",
                                                 "cpp_progress_every", "throughput_progress_every", "azero_extra",
                                                 "azero_throughput_extra", "dataset", "data_dir")}}
        if "discovery" in FLAGS.rounds:
            discovery_round(work, summary, report)
        if "throughput" in FLAGS.rounds:
            if "discovery" in FLAGS.rounds:
                print()
            throughput_round(work, summary, report)
    except ToolError as e:
        cli.fail(str(e))
        return
    report["summary"] = summary
    if FLAGS.output_json:
        with open(FLAGS.output_json, "w", encoding="utf-8") as f:
            json.dump(_finite(report), f, indent=1, allow_nan=False, default=str)
    print()
    print(format_summary(summary), flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=cli.parse_flags)
