"""tools/evaluate_program.py as a user runs it, on its own and on the C++ cases."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from azero_jax import programs, serialization
from azero_jax.program import MemoryShape
from tests import cpp_cases

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "evaluate_program.py"


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_shipped_program_on_a_preset_prints_fitness_last():
    out = run_tool("linear", "--tasks=demo_search", "--memory=4,3,1")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "def Setup():" and lines[-1].startswith("fitness=")
    assert 0.5 < float(lines[-1].split("=", 1)[1]) < 0.6  # 100 steps of SGD at lr 0.01: far from solved


def test_json_program_and_npz_data_with_json_output(tmp_path):
    memory = MemoryShape(4, 3, 1, 4)
    program = tmp_path / "linear.json"
    serialization.save_algorithm(program, programs.linear_algorithm(learning_rate=0.1), memory)
    rng = np.random.default_rng(0)
    w = rng.normal(size=4)
    x, xv = rng.normal(size=(300, 4)), rng.normal(size=(20, 4))
    data = tmp_path / "task.npz"
    np.savez(data, x_train=x, y_train=x @ w, x_valid=xv, y_valid=xv @ w)
    out = run_tool(str(program), f"--data={data}", "--eval_type=rms", "--json", "--memory=4,3,1")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout.strip().splitlines()[-1])
    assert payload["fitness"] > 0.999 and payload["train_steps"] == 300
    np.testing.assert_allclose(payload["valid_predictions"], xv @ w, atol=1e-3)


@pytest.mark.parametrize("args,message", [
    (("missing.txt", "--tasks=demo_search"), "missing.txt"),
    (("linear", "--tasks=nope"), "unknown task preset 'nope'"),
    (("linear",), "exactly one of --tasks"),
    (("linear", "--tasks=demo_search", "--memory=4,3"), "--memory must be three integers"),
    (("linear", "--data=absent.npz"), "absent.npz"),
    (("neural_net", "--tasks=nn_teacher", "--memory=4,3,1"), "out of range"),
])
def test_bad_input_gives_one_clear_line_and_status_2(args, message):
    out = run_tool(*args)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert message in out.stderr and out.stderr.strip().count("\n") == 0, out.stderr


def test_bad_program_text_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("def Setup():\n  s2 = 0.5\ndef Predict():\n  s1 = frobnicate(v1)\ndef Learn():\n")
    out = run_tool(str(bad), "--tasks=demo_search")
    assert out.returncode == 2 and "bad.txt:4" in out.stderr and "Traceback" not in out.stderr


def _tool_on_case(case: dict, *extra: str) -> dict:
    """The tool run on one C++ case as a user runs it (the case's program.txt,
    its data.npz, --json, the default memory); its last stdout line parsed."""
    folder = cpp_cases.cases_dir() / case["id"]
    eval_type = "accuracy" if case["eval_type"] == "ACCURACY" else "rms"
    out = run_tool(str(folder / "program.txt"), f"--data={folder / 'data.npz'}", f"--eval_type={eval_type}",
                   "--json", "--quiet", *extra)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cpp_cases_pass_through_the_tool():
    """A slice of the C++ cases through the command line (every case runs
    in-process in test_cpp_reference_cases.py): fitness, train steps and
    validation predictions as the C++ computed them."""
    manifest = cpp_cases.load_manifest()
    for case in manifest["cases"][:12]:
        got = _tool_on_case(case)
        assert cpp_cases.mismatches(case, got["fitness"], got["valid_predictions"], got["train_steps"]) == [], case["id"]


def test_xla_backend_through_the_tool_matches_the_cases():
    """--backend=xla: the same fitness and train steps (float64); no predictions."""
    manifest = cpp_cases.load_manifest()
    for case in manifest["cases"][:3]:
        got = _tool_on_case(case, "--backend=xla")
        assert got["backend"] == "xla" and got["valid_predictions"] is None
        assert cpp_cases.close(got["fitness"], case["fitness"], rtol=1e-9, atol=1e-12), case["id"]
        assert got["train_steps"] == case["train_steps"], case["id"]
