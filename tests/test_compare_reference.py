"""tools/compare_reference.py against a fake C++ binary and a stubbed
azero-jax side: the flags the binary gets, the tables, the key=value
summary and its medians, and bad binaries as one `error:` line, exit 2."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import statistics
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "compare_reference.py")


def _load_tool():
    spec = importlib.util.spec_from_file_location("compare_reference_under_test", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


tool = _load_tool()
import cpp_reference as cpp  # noqa: E402  (loading the tool put tools/ on sys.path)

# The fake run_search_experiment: checks its flags, then prints what the
# reference prints. Demo: seed S runs S experiments of 2000 individuals
# (progress at 1000 and 2000) and passes the select test in its last one
# unless S == 2. Baseline: five progress lines on a fake clock (100
# individuals per second), then waits to be stopped.
FAKE_CPP = '''
import sys, time

args = sys.argv[1:]
def flag(name):
    hits = [a.split("=", 1)[1] for a in args if a.startswith("--" + name + "=")]
    return hits[-1] if hits else None

def need(ok, what):
    if not ok:
        print("fake binary: bad flags: " + what, file=sys.stderr)
        sys.exit(3)

spec = flag("search_experiment_spec") or ""
select, final = flag("select_tasks") or "", flag("final_tasks") or ""
if "population_size: 1000\\n" in spec:
    for text in ("scalar_linear_regression_task {}", "features_size: 4", "num_train_examples: 100\\n",
                 "num_tasks: 10\\n", "setup_size_init: 10", "predict_size_init: 2", "learn_size_init: 8",
                 "num_valid_examples: 10\\n", "tournament_size: 10", "initial_population: RANDOM_ALGORITHM",
                 "max_train_steps: 200000000\\n", "RANDOMIZE_COMPONENT_FUNCTION_MUTATION_TYPE", "mutate_prob: 0.9",
                 "SCALAR_VECTOR_PRODUCT_OP", "fitness_combination_mode: MEAN_FITNESS_COMBINATION"):
        need(text in spec, text)
    need("num_tasks: 100\\n" in select and "num_train_examples: 1000" in select, "select_tasks")
    need("data_seeds: [1000000]" in final and "param_seeds: [2000000]" in final, "final_tasks")
    need("--randomize_task_seeds" in args, "--randomize_task_seeds")
    need(flag("max_experiments") == "0", "--max_experiments=0")
    need(flag("sufficient_fitness") == "0.9999", "--sufficient_fitness")
    seed = int(flag("random_seed"))
    print("Random seed = %d" % seed)
    for e in range(seed):
        print("Running evolution experiment (on the T_search tasks)...")
        for n in (1000, 2000):
            print("indivs=%d, elapsed_secs=%d, mean=0.100000, stdev=0.010000, best fit=0.500000," % (n, n // 1000))
        print("Experiment done. Retrieving candidate algorithm.")
        print("Search fitness for candidate algorithm = 0.99")
        print("Evaluating candidate algorithm from experiment (on T_select tasks)... ")
        passed = e == seed - 1 and seed != 2
        print("Select fitness for candidate algorithm = %s" % ("0.99999" if passed else "0.5"))
    print()
    print("Final evaluation of best algorithm (on unseen tasks)...")
    print("Final evaluation fitness (on unseen data) = 0.99995")
    print("Algorithm found: ")
    print("def Setup():")
elif "population_size: 100\\n" in spec:
    for text in ("train_budget_baseline: NEURAL_NET_ALGORITHM", "initial_population: NO_OP_ALGORITHM",
                 "mutate_learn_size_max: 23", "VECTOR_OUTER_PRODUCT_OP", "features_size: 16",
                 "num_train_examples: 8000"):
        need(text in spec, text)
    need("num_train_examples: 8000" in select and "num_train_examples: 8000" in final, "select/final tasks")
    need(flag("random_seed") == "1000060", "--random_seed")
    print("Random seed = 1000060")
    print("Running evolution experiment (on the T_search tasks)...")
    for k in range(1, 6):
        print("indivs=%d, elapsed_secs=%d, mean=0.500000, stdev=0.000000, best fit=0.500000," % (100 * k, k))
    sys.stdout.flush()
    time.sleep(120)
else:
    need(False, "no demo or baseline spec")
'''

# The stubbed azero-jax side: `discovery` writes results.json as
# experiments/linear_regression.py does (seed S: 100*S individuals, select
# passed unless S == 3); `throughput` prints progress lines as
# experiments/cifar_binary.py does.
FAKE_AZERO = '''
import json, os, sys

mode, args = sys.argv[1], sys.argv[2:]
def flag(name):
    hits = [a.split("=", 1)[1] for a in args if a.startswith("--" + name + "=")]
    return hits[-1] if hits else None

if mode == "discovery":
    assert flag("resume") == "no" and flag("max_experiments") == "0" and float(flag("max_minutes")) > 0, args
    seed, out = int(flag("seed")), flag("output_dir")
    results = {"counters": {"individuals": 100 * seed, "train_steps": 1000 * seed}, "elapsed_seconds": 2.0,
               "num_experiments": seed, "select_fitness": 0.9 if seed == 3 else 0.99999, "final_fitness": 0.99998}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f)
    print("Linear regression discovered (fake).")
elif flag("config") == "baseline":  # --dataset=synthetic: experiments/search.py
    sets = [a.split("=", 1)[1] for a in args if a.startswith("--set=")]
    assert sorted(s.split("=", 1)[0] for s in sets) == ["final_tasks", "search_tasks", "select_tasks"], args
    for s in sets:
        (spec,) = json.loads(s.split("=", 1)[1])
        assert spec == {"kind": "linear", "features": 16, "num_train": 8000, "num_valid": 1000, "num_tasks": 10}
    assert flag("max_minutes") == "0" and flag("dtype") == "float64" and "--nobaselines" not in args, args
    for k in range(1, 4):
        print("indivs=%d, elapsed_secs=%d, mean=0.5, stdev=0.0, best fit=0.5, indivs/s=100.0, "
              "train_steps/s=8000000, fec_hit_rate=0.0000," % (200 * k, 2 * k))
else:
    assert "--nobaselines" in args and flag("max_minutes") == "0" and flag("progress_every") == "100", args
    assert flag("output_dir") and flag("dataset") == "digits", args
    print("data ready in 0.1s: digits, F=16, 278/35 train/valid, 10 search + 100 final tasks")
    print("experiment 1: search on 10 task(s), population 100 x 1 island(s)")
    for k in range(1, 5):
        print("indivs=%d, elapsed_secs=%d, mean=0.5, stdev=0.0, best fit=0.5, indivs/s=100.0, "
              "train_steps/s=27800, fec_hit_rate=0.0000," % (100 * k, k))
'''


def _script(path, body: str, executable: bool = True) -> str:
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    if executable:
        path.chmod(0o755)
    return str(path)


@pytest.fixture
def fakes(tmp_path):
    cpp = _script(tmp_path / "run_search_experiment", FAKE_CPP)
    azero = _script(tmp_path / "fake_azero.py", FAKE_AZERO)
    return {"cpp": cpp,
            "azero_discovery": shlex.join([sys.executable, azero, "discovery"]),
            "azero_throughput": shlex.join([sys.executable, azero, "throughput"])}


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def _summary(stdout: str) -> dict[str, str]:
    last = stdout.strip().splitlines()[-1]
    pairs = dict(item.split("=", 1) for item in last.split())
    assert all(pairs.values()), last
    return pairs


def test_both_rounds_against_a_fake_binary(tmp_path, fakes):
    out_json = tmp_path / "figures.json"
    proc = _run(f"--cpp_demo_binary={fakes['cpp']}", f"--cpp_baseline_binary={fakes['cpp']}",
                "--cpp_baseline_tasks=synthetic", "--seeds=1,2,3", "--max_seconds_per_seed=60",
                "--throughput_seconds=1.5", f"--work_dir={tmp_path / 'work'}", f"--output_json={out_json}",
                f"--azero_discovery_command={fakes['azero_discovery']}",
                f"--azero_throughput_command={fakes['azero_throughput']}", "--dataset=digits")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    out = proc.stdout
    assert "not comparable across the two implementations" in out
    # Markdown tables: a row per run and a median row per side.
    discovery, throughput = out.split("## Throughput round")
    rows = [line for line in discovery.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| side | seed | status | discovered |")
    assert sum(line.startswith("| C++ | ") for line in rows) == 3
    assert sum(line.startswith("| azero-jax | ") for line in rows) == 3
    cpp_median = next(line for line in rows if line.startswith("| C++ median |"))
    assert "| 2/3 |" in cpp_median and "| 4000 |" in cpp_median
    azero_median = next(line for line in rows if line.startswith("| azero-jax median |"))
    assert "| 2/3 |" in azero_median and "| 200 |" in azero_median
    seed3 = next(line for line in rows if line.startswith("| C++ | 3 |")).split(" | ")
    assert seed3[2:6] == ["ok", "yes", "3", "6000"]
    thr = [line for line in throughput.splitlines() if line.startswith("| ")]
    assert thr[0].startswith("| side | status | data |") and len(thr) == 3
    assert thr[1].startswith("| C++ | stopped |") and thr[1].endswith("| ~8000000 |")
    assert thr[2].startswith("| azero-jax | exited (rc 0) | digits, 2780 train steps/individual |")

    summary = _summary(out)
    assert summary["cpp_demo_median_individuals"] == "4000"
    assert summary["azero_demo_median_individuals"] == "200"
    assert summary["cpp_discovered"] == "2" and summary["azero_discovered"] == "2"
    assert summary["cpp_discovery_runs"] == "3"
    assert float(summary["azero_demo_median_train_steps_per_s"]) == 1000.0  # 2000 steps / 2.0 s, seed 2
    assert summary["cpp_baseline_indivs_per_s"] == "100"  # 500 individuals at elapsed_secs=5
    assert summary["cpp_baseline_train_steps_per_s_est"] == "8000000"  # x 10 tasks x 8000 examples
    assert summary["azero_baseline_indivs_per_s"] == "100"
    assert summary["azero_baseline_train_steps_per_s"] == "27800"
    assert float(summary["baseline_indivs_per_s_ratio"]) == 1.0
    for key in ("cpp_demo_median_indivs_per_cpu_s", "azero_demo_median_indivs_per_s", "demo_indivs_per_cpu_s_ratio",
                "cpp_discovery_median_cpu_s", "azero_discovery_median_wall_s", "discovery_wall_s_ratio"):
        assert float(summary[key]) > 0, key

    # The medians are the medians of the raw figures.
    report = json.loads(out_json.read_text())
    runs = report["discovery"]["rows"]
    for side in ("cpp", "azero"):
        mine = [r for r in runs if r["side"] == side]
        for metric in ("wall_s", "cpu_s", "indivs_per_s", "indivs_per_cpu_s", "individuals"):
            assert report["discovery"]["medians"][side][metric] == pytest.approx(
                statistics.median(r[metric] for r in mine)), (side, metric)
        for r in mine:
            assert r["indivs_per_s"] == pytest.approx(r["individuals"] / r["wall_s"])
    assert report["summary"]["cpp_discovery_median_wall_s"] == pytest.approx(
        statistics.median(r["wall_s"] for r in runs if r["side"] == "cpp"))
    thr_rows = {r["side"]: r for r in report["throughput"]["rows"]}
    assert thr_rows["cpp"]["status"] == "stopped" and thr_rows["cpp"]["individuals"] == 500
    assert thr_rows["cpp"]["indivs_per_cpu_s"] == pytest.approx(500 / thr_rows["cpp"]["cpu_s"])
    assert 1.5 <= thr_rows["cpp"]["wall_s"] < 30


def test_azero_side_only_without_binaries(tmp_path, fakes):
    proc = _run("--rounds=discovery", "--seeds=4", f"--work_dir={tmp_path / 'work'}",
                f"--azero_discovery_command={fakes['azero_discovery']}")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    summary = _summary(proc.stdout)
    assert summary["azero_demo_median_individuals"] == "400"
    assert summary["demo_indivs_per_s_ratio"] == "na" and "cpp_discovery_runs" not in summary


@pytest.mark.parametrize("case", ["missing", "not_executable"])
def test_a_missing_or_non_executable_binary_is_one_error_line(tmp_path, case):
    path = tmp_path / "run_search_experiment"
    if case == "not_executable":
        _script(path, "print('hi')\n", executable=False)
    line = _one_error_line(_run(f"--cpp_demo_binary={path}", "--seeds=1"))
    assert "MAX_SCALAR_ADDRESSES=4" in line and "MAX_MATRIX_ADDRESSES=1" in line
    line = _one_error_line(_run(f"--cpp_baseline_binary={path}", "--rounds=throughput",
                                "--cpp_baseline_tasks=synthetic"))
    assert "MAX_SCALAR_ADDRESSES=5" in line and "MAX_VECTOR_ADDRESSES=9" in line


def test_synthetic_throughput_runs_the_search_on_the_cpp_kind_of_tasks(tmp_path, fakes):
    """--dataset=synthetic: azero-jax runs experiments/search.py's baseline
    config on linear-regression tasks of the C++'s synthetic shape (the fake
    asserts the flags), and the row says so."""
    proc = _run(f"--cpp_baseline_binary={fakes['cpp']}", "--cpp_baseline_tasks=synthetic", "--rounds=throughput",
                "--throughput_seconds=1.5", f"--work_dir={tmp_path / 'work'}", "--dataset=synthetic",
                f"--azero_throughput_command={fakes['azero_throughput']}")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| azero-jax |")]
    assert len(rows) == 1 and "| synthetic linear regression, 80000 train steps/individual |" in rows[0], rows
    summary = _summary(proc.stdout)
    assert summary["azero_baseline_indivs_per_s"] == "100"  # the last progress line's own rate
    assert summary["azero_baseline_train_steps_per_s"] == "8000000"
    assert float(summary["baseline_indivs_per_s_ratio"]) == 1.0


def test_a_binary_without_progress_lines_is_one_error_line(tmp_path, fakes):
    garbage = _script(tmp_path / "garbage", "print('Hello, world')\n")
    line = _one_error_line(_run(f"--cpp_demo_binary={garbage}", "--seeds=1", "--rounds=discovery",
                                f"--work_dir={tmp_path / 'work'}",
                                f"--azero_discovery_command={fakes['azero_discovery']}"))
    assert "progress line" in line and "Hello, world" in line and "MAX_VECTOR_ADDRESSES=3" in line
    line = _one_error_line(_run(f"--cpp_baseline_binary={garbage}", "--rounds=throughput",
                                "--cpp_baseline_tasks=synthetic", "--throughput_seconds=20",
                                f"--work_dir={tmp_path / 'work'}",
                                f"--azero_throughput_command={fakes['azero_throughput']}"))
    assert "progress line" in line and "MAX_MATRIX_ADDRESSES=2" in line


def test_bad_flags_are_one_error_line(tmp_path, fakes):
    line = _one_error_line(_run(f"--cpp_baseline_binary={fakes['cpp']}", "--rounds=throughput"))
    assert "--cpp_baseline_tasks is required" in line
    line = _one_error_line(_run(f"--cpp_baseline_binary={fakes['cpp']}", "--rounds=throughput",
                                "--cpp_baseline_tasks=features_size: 16"))
    assert "tasks { ... }" in line
    assert "unknown round" in _one_error_line(_run("--rounds=discovery,speed"))
    assert "--seeds" in _one_error_line(_run("--seeds=1,x"))


def test_parse_log_groups_experiments_and_reads_the_fitness_lines():
    text = "\n".join([
        "Random seed = 7", "Running evolution experiment (on the T_search tasks)...",
        "indivs=1000, elapsed_secs=0, mean=0.1, stdev=0.0, best fit=0.2,",
        "indivs=3000, elapsed_secs=2, mean=0.1, stdev=0.0, best fit=0.3,",
        "Search fitness for candidate algorithm = 0.3", "Select fitness for candidate algorithm = 0.25",
        "Running evolution experiment (on the T_search tasks)...",
        "indivs=1000, elapsed_secs=0, mean=0.1, stdev=0.0, best fit=0.9, indivs/s=12.5, train_steps/s=400,",
        "Select fitness for candidate algorithm = 0.99995",
        "Final evaluation fitness (on unseen data) = 0.99991", "Algorithm found: "])
    log = cpp.parse_log(text)
    assert log.individuals == 4000 and log.num_experiments == 2
    assert log.select == [0.25, 0.99995] and log.best_select == 0.99995 and log.final == 0.99991
    assert log.progress[-1]["indivs/s"] == 12.5 and log.progress[-1]["train_steps/s"] == 400
    # Without the marker lines, a counter that restarts still starts an experiment.
    bare = cpp.parse_log("indivs=500, elapsed_secs=1, mean=0, stdev=0, best fit=0,\n"
                          "indivs=100, elapsed_secs=0, mean=0, stdev=0, best fit=0,")
    assert bare.individuals == 600 and bare.num_experiments == 2
    assert not cpp.parse_log("Hello\n").progress


def test_text_proto_and_task_sizes():
    text = cpp.text_proto({"a": {"b": {}, "c": 3, "d": ("X_OP", "Y_OP")}, "e": 0.9, "f": "path/x",
                            "g": cpp.RawProto("tasks {\nnum_tasks: 2\n}")})
    assert text == textwrap.dedent("""\
        a {
          b {}
          c: 3
          d: [X_OP, Y_OP]
        }
        e: 0.9
        f: "path/x"
        g {
          tasks {
            num_tasks: 2
          }
        }""")
    assert cpp.task_train_steps(cpp.SYNTHETIC_BASELINE_TASKS) == 10 * 8000
    two = "tasks { num_tasks: 2 num_train_examples: 10 num_train_epochs: 3 } tasks { num_tasks: 1 num_train_examples: 5 }"
    assert cpp.task_train_steps(two) == 2 * 10 * 3 + 5
    assert cpp.task_train_steps("tasks { features_size: 16 }") is None
