"""analysis.ablation (the ablation table, constant re-tuning) and
tools/analyze_program.py as a user runs it: on shipped programs, on a JSON
program as the main job writes it, on multiclass tasks (their layout: the
prediction in v2), and on bad input."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from azero_jax import baselines, programs, serialization, tasks
from azero_jax.analysis import ablation as A
from azero_jax.program import NO_OP, Algorithm, MemoryShape, make_instruction

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "analyze_program.py"
LINEAR_MEMORY = MemoryShape(4, 3, 1, 4)

# A best_program.json of experiments/linear_regression.py (a short run: fitness ~0.39 on demo_select), as
# the main job prints it: dead code in every component, three scalar constants.
EVOLVED_TEXT = """def Setup():
  s3 = dot(v1, v1)
  s3 = s1 - s3
  s1 = -0.5300896006489417
  s3 = s3 * s1
  s3 = s0 * s1
  v1 = v1 + v0
  v1 = s3 * v1
  s2 = s0 - s0
  v2 = v0 + v0
  v2 = s0 * v0
def Predict():
  s1 = dot(v0, v2)
  s1 = s2 * s1
def Learn():
  s3 = s2 - s2
  s2 = dot(v2, v0)
  v2 = v2 + v1
  v1 = s0 * v0
  s2 = 0.5019128166005531
  s3 = dot(v2, v1)
  s3 = 0.6551701462503025
  v2 = s3 * v2
"""


def _evolved() -> Algorithm:
    return serialization.parse_algorithm(EVOLVED_TEXT)


def _padded_linear() -> Algorithm:
    """The shipped linear program with NO_OP padding and one dead Setup
    instruction (s3 is written by Learn before anything reads it)."""
    lin = programs.linear_algorithm((3, 2, 6))
    return lin.replace(setup=(lin.setup[0], make_instruction("SCALAR_CONST_SET", out=3, d=0.5), NO_OP))


@pytest.fixture(scope="module")
def select_tasks():
    return tasks.make_tasks(tasks.get_preset("demo_select", num_tasks=10))


def test_variants_cover_live_instructions_and_used_constants():
    program = _padded_linear()
    variants = A.ablation_variants(program)
    # 6 live instructions (NO_OPs and the dead s3 = 0.5 are not), 1 constant used by them (Setup[0].d) x 2.
    assert len(variants) == 6 + 1 * 2
    assert {(v.component, v.position) for v in variants} == {
        ("setup", 0), ("predict", 0), ("learn", 0), ("learn", 1), ("learn", 2), ("learn", 3)}
    assert [v.label for v in variants[:3]] == ["Setup[0] -> NoOp", "Setup[0].d = 0", "Setup[0].d = 1"]
    for v in variants:
        changed = [(c, i) for c in ("setup", "predict", "learn")
                   for i, (a, b) in enumerate(zip(program.component(c), v.program.component(c), strict=True))
                   if a != b]
        assert changed == [(v.component, v.position)], v.label  # exactly the one instruction
        new = v.program.component(v.component)[v.position]
        if v.change == A.NO_OP_CHANGE:
            assert new == NO_OP
        else:
            assert getattr(new, v.field) == v.value


def test_constants_set_to_0_and_1_on_the_fields_the_op_reads():
    nn = programs.neural_net_algorithm()  # Gaussian sets use f0 (mean), f1 (spread); const set uses d
    consts = [v for v in A.ablation_variants(nn) if v.change == A.CONST_CHANGE]
    assert [(v.component, v.position, v.field, v.value) for v in consts] == [
        ("setup", 0, "f0", 0.0), ("setup", 0, "f0", 1.0), ("setup", 0, "f1", 0.0), ("setup", 0, "f1", 1.0),
        ("setup", 1, "f0", 0.0), ("setup", 1, "f0", 1.0), ("setup", 1, "f1", 0.0), ("setup", 1, "f1", 1.0),
        ("setup", 2, "d", 0.0), ("setup", 2, "d", 1.0)]
    f1_zero = consts[2].program.setup[0]
    assert (f1_zero.f0, f1_zero.f1, f1_zero.d) == (0.0, 0.0, 0.0)
    f0_one = consts[1].program.setup[0]
    assert (f0_one.f0, f0_one.f1) == (1.0, nn.setup[0].f1)
    vector_set = Algorithm(setup=(make_instruction("VECTOR_CONST_SET", out=1, f0=0.5, f1=-0.25),),
                           predict=(make_instruction("VECTOR_INNER_PRODUCT", in1=1, in2=0, out=1),))
    labels = [v.label for v in A.ablation_variants(vector_set)]
    assert labels == ["Setup[0] -> NoOp", "Setup[0].f0 = 0", "Setup[0].f0 = 1", "Setup[0].f1 = 0",
                      "Setup[0].f1 = 1", "Predict[0] -> NoOp"]


def test_ablating_linear_shows_its_learning_matters(select_tasks):
    program = _padded_linear()
    result = A.ablate(program, select_tasks, LINEAR_MEMORY)
    assert result.base_fitness > 0.999  # linear regression on linear tasks
    assert len(result.rows) == 8 and result.num_tasks == 10 and result.backend == "reference"
    impacts = [r.impact for r in result.rows]
    assert impacts == sorted(impacts, reverse=True)
    by_label = {r.label: r for r in result.rows}
    assert not any(r.position == 1 and r.component == "setup" for r in result.rows)  # the dead s3 = 0.5
    for i in range(4):  # every step of the SGD update matters
        row = by_label[f"Learn[{i}] -> NoOp"]
        assert row.fitness < result.base_fitness - 0.5, row
        assert row.delta == pytest.approx(row.fitness - result.base_fitness)
    assert by_label["Learn[3] -> NoOp"].instruction == "v1 = v1 + v2"
    assert by_label["Setup[0].d = 0"].fitness == pytest.approx(by_label["Learn[3] -> NoOp"].fitness)  # lr 0
    assert by_label["Setup[0].d = 1"].fitness < 0.1  # lr 1 diverges
    table = A.format_ablation(result)
    assert table.splitlines()[2].split()[:2] == ["1", result.rows[0].label.split()[0]]
    json.dumps(result.to_dict())


def test_batched_xla_equals_reference():
    program = _evolved()
    few = tasks.make_tasks(tasks.get_preset("demo_search", num_tasks=3, num_train=50))
    ref = A.ablate(program, few, LINEAR_MEMORY, backend="reference")
    xla = A.ablate(program, few, LINEAR_MEMORY, backend="xla", dtype="float64")
    assert xla.backend == "xla" and len(ref.rows) == len(xla.rows) == 19
    assert xla.base_fitness == pytest.approx(ref.base_fitness, rel=1e-12, abs=1e-12)
    ref_fit = {r.label: r.fitness for r in ref.rows}
    for r in xla.rows:  # float64 results equal up to the summation order of dot
        assert r.fitness == pytest.approx(ref_fit[r.label], rel=1e-12, abs=1e-12), r.label


def test_retune_without_constants_returns_the_program_unchanged(select_tasks):
    lin = programs.linear_algorithm()
    no_consts = lin.replace(setup=())  # lr s2 = 0: nothing to tune
    r = A.retune_constants(no_consts, select_tasks[:3], LINEAR_MEMORY, trials=7, seed=3)
    assert r.program == no_consts and r.sites == () and r.factors == () and r.trials == 1 and r.best_trial == 0
    assert r.select_fitness == r.original_select_fitness and r.final_fitness is None
    assert "no tunable constants" in A.format_retune(r)


def test_retune_searches_constants_and_matches_the_baselines(select_tasks):
    slow = programs.linear_algorithm(learning_rate=0.001)
    select, final = select_tasks[:3], select_tasks[3:6]
    r = A.retune_constants(slow, select, LINEAR_MEMORY, trials=6, seed=1, final_tasks=final)
    assert r.trials == 6 and len(r.trial_fitness) == 6 and r.sites == (("setup", 0, ("d",)),)
    assert r.trial_fitness[0] == r.original_select_fitness
    assert r.select_fitness == max(r.trial_fitness) >= r.original_select_fitness
    assert r.program.setup[0].d == pytest.approx(0.001 * r.factors[0])
    assert all(0.1 <= f <= 10.0 for f in r.factors) and r.final_fitness is not None
    b = baselines.retune_program(slow, select, final, LINEAR_MEMORY, trials=6, seed=1)
    assert (b.select_fitness, b.final_fitness, b.params["factors"], b.program) == (
        r.select_fitness, r.final_fitness, list(r.factors), r.program)
    assert b.params["sites"] == ["setup[0].d"]


def _multiclass_tasks(num_tasks: int = 2, n_train: int = 60, n_valid: int = 30) -> list[tasks.Task]:
    """3-class tasks on 4 features whose class is the argmax of a random linear map (softmax regression
    learns them; without learning every logit stays 0 and class 0 is predicted: about 1/3 accuracy)."""
    out = []
    for i in range(num_tasks):
        rng = np.random.default_rng(10 + i)
        w = rng.normal(size=(4, 3))
        x = rng.normal(size=(n_train + n_valid, 4))
        y = np.argmax(x @ w, axis=1).astype(float)
        out.append(tasks.Task(x[:n_train], y[:n_train], x[n_train:], y[n_train:], eval_type="multiclass",
                              num_classes=3, num_train_epochs=2, data_seed=i, index=i))
    return out


MULTICLASS_MEMORY = programs.MULTICLASS_LINEAR_MEMORY.with_features(4)


def test_ablating_multiclass_linear_shows_its_learning_matters():
    program = programs.multiclass_linear_algorithm(learning_rate=0.1)
    # With the binary layout (prediction s1) nothing of it is live: the layout decides what is ablated.
    assert A.ablation_variants(program) == []
    assert len(A.ablation_variants(program, multiclass=True)) == 8 + 1 * 2  # 8 live, Setup[0].d x 2
    result = A.ablate(program, _multiclass_tasks(), MULTICLASS_MEMORY)
    assert result.base_fitness > 0.8  # chance: 1/3
    by_label = {r.label: r for r in result.rows}
    assert len(result.rows) == 10 and set(by_label) >= {"Predict[0] -> NoOp", "Predict[1] -> NoOp"}
    for i in (0, 3, 4):  # the softmax-gradient step (onehot - p) and the weight update
        row = by_label[f"Learn[{i}] -> NoOp"]
        assert row.fitness < result.base_fitness - 0.3 and row.fitness < 0.5, row  # back to about chance
    assert by_label["Learn[0] -> NoOp"].instruction == "v4 = v1 - v2"
    assert by_label["Setup[0].d = 0"].fitness == by_label["Learn[4] -> NoOp"].fitness  # lr 0: nothing learned
    # Dropping the lr product is lr 1, which the bounded softmax gradient tolerates; the bias barely matters.
    for label in ("Learn[1] -> NoOp", "Learn[2] -> NoOp", "Predict[1] -> NoOp"):
        assert abs(by_label[label].delta) < 0.1, by_label[label]
    assert by_label["Predict[0] -> NoOp"].fitness < result.base_fitness - 0.3  # the logits need the weights
    impacts = [r.impact for r in result.rows]
    assert impacts == sorted(impacts, reverse=True)


def test_ablation_refuses_mixed_task_layouts(select_tasks):
    with pytest.raises(ValueError, match="mix multiclass") as info:
        A.ablate(programs.linear_algorithm(), [select_tasks[0], *_multiclass_tasks(1)], LINEAR_MEMORY)
    assert "\n" not in str(info.value)
    assert A.tasks_are_multiclass(_multiclass_tasks(2)) and not A.tasks_are_multiclass(select_tasks)


# ------------------------------------------------------------------ the tool --

def run_tool(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_tool_on_a_shipped_program(tmp_path):
    out_dir = tmp_path / "out"
    proc = run_tool("linear", "--tasks=demo_search", "--memory=4,3,1", "--retune_trials=4",
                    "--final_tasks=demo_search", f"--output_dir={out_dir}", "--export=numpy", "--json")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    for heading in ("program linear (memory S=4 V=3 M=1 F=4):", "live code (6 of 6", "ablation on demo_search",
                    "re-tuning: 4 trials"):
        assert heading in text, heading
    payload = json.loads(text.strip().splitlines()[-1])
    rows = payload["ablation"]["rows"]
    assert len(rows) == 8 and payload["retune"]["trials"] == 4 and payload["memory"]["scalars"] == 4
    assert [abs(r["delta"]) for r in rows] == sorted((abs(r["delta"]) for r in rows), reverse=True)
    saved = json.loads((out_dir / "ablation.json").read_text())
    assert saved == payload
    assert (out_dir / "analysis.txt").read_text() in text
    assert (out_dir / "evolved_numpy.py").exists() and f"wrote {out_dir / 'evolved_numpy.py'}" in text
    if (out_dir / "retuned_program.json").exists():  # written when a trial beat the program as given
        assert payload["retune"]["best_trial"] > 0
        serialization.load_algorithm(out_dir / "retuned_program.json")


def test_tool_on_a_json_program_file_from_the_main_job(tmp_path):
    program = tmp_path / "best_program.json"
    serialization.save_algorithm(program, _evolved(), LINEAR_MEMORY)  # as experiments/linear_regression.py
    rng = np.random.default_rng(0)
    w = rng.normal(size=4)
    x, xv = rng.normal(size=(100, 4)), rng.normal(size=(20, 4))
    np.savez(tmp_path / "task.npz", x_train=x, y_train=x @ w, x_valid=xv, y_valid=xv @ w)
    proc = run_tool(str(program), f"--data={tmp_path / 'task.npz'}", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "live code (13 of 20 instructions" in proc.stdout
    payload = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(payload["ablation"]["rows"]) == 19 and payload["retune"] is None
    assert payload["ablation"]["num_tasks"] == 1


@pytest.mark.parametrize("args,fragment", [
    (("missing_program.json", "--tasks=demo_search"), "missing_program.json"),
    (("neural_net", "--tasks=demo_search", "--memory=4,3,1"), "out of range"),  # needs S=5, V=9, M=2
    (("linear", "--tasks=demo_search", "--output_dir=afile"), "afile"),
    (("linear", "--tasks=demo_search", "--output_dir=afile/sub"), "afile"),
    (("linear", "--tasks=demo_search", "--final_tasks=demo_final"), "--retune_trials"),
    (("linear", "--tasks=demo_search", "--retune_trials=-1"), "--retune_trials"),
    (("linear", "--tasks=demo_search", "--dtype=float32"), "float64"),
    (("linear", "--tasks=demo_search", "--export=torch", "--output_dir=out"), "--export"),
    (("linear", "--tasks=demo_search", "--export=numpy"), "--output_dir"),
])
def test_tool_bad_input_is_one_error_line(tmp_path, args, fragment):
    (tmp_path / "afile").write_text("x")
    proc = run_tool(*args, cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], proc.stderr
    assert proc.stdout == ""  # refused before any evaluation


def test_tool_on_multiclass_data_uses_the_multiclass_layout(tmp_path):
    import importlib.util

    program = programs.multiclass_linear_algorithm(learning_rate=0.1)
    program = program.replace(learn=program.learn + (make_instruction("SCALAR_CONST_SET", out=1, d=2.0),))  # dead
    program_file = tmp_path / "mc_program.json"
    serialization.save_algorithm(program_file, program, MULTICLASS_MEMORY)
    task = _multiclass_tasks(1)[0]
    np.savez(tmp_path / "mc.npz", x_train=task.x_train, y_train=task.y_train, x_valid=task.x_valid,
             y_valid=task.y_valid)
    out_dir = tmp_path / "out"
    proc = run_tool(str(program_file), f"--data={tmp_path / 'mc.npz'}", "--eval_type=multiclass", "--export=numpy",
                    f"--output_dir={out_dir}", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "live code (8 of 9 instructions; dead ones cannot change any result; multiclass layout" in proc.stdout
    payload = json.loads(proc.stdout.strip().splitlines()[-1])
    assert payload["multiclass"] and "s1 = 2" not in payload["live_code_text"]
    assert "v2 = v2 + v3" in payload["live_code_text"]
    rows = {r["label"]: r for r in payload["ablation"]["rows"]}
    assert len(rows) == 10 and rows["Learn[3] -> NoOp"]["delta"] < -0.3
    assert payload["base_fitness"] > 0.8
    exported = out_dir / "evolved_numpy.py"
    text = exported.read_text()
    assert "def _softmax(" in text and "    v[1] = 0.0\n" in text and "s1 = 2" not in text
    spec = importlib.util.spec_from_file_location("tool_mc_export", exported)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    got = module.fit(task.x_train, task.y_train, task.x_valid, task.y_valid, num_classes=3, epochs=1)
    assert got.fitness == payload["base_fitness"]  # one epoch, as the .npz tasks: the oracle's fitness


def test_tool_multiclass_bad_input_is_one_error_line(tmp_path):
    task = _multiclass_tasks(1, 12, 6)[0]
    np.savez(tmp_path / "mc.npz", x_train=task.x_train, y_train=task.y_train, x_valid=task.x_valid,
             y_valid=task.y_valid)
    for args, fragment in [
        (("noop", "--data=mc.npz", "--eval_type=multiclass", "--memory=4,2,1"), "at least 3 vector addresses"),
        (("linear", "--tasks=demo_search", "--memory=4,3,1", "--retune_trials=2", "--final_data=mc.npz",
          "--eval_type=multiclass"), "mix multiclass"),
    ]:
        proc = run_tool(*args, cwd=tmp_path)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and fragment in lines[0], proc.stderr
        assert proc.stdout == ""


def test_shipped_name_gives_the_multiclass_program_on_multiclass_tasks(tmp_path):
    """`linear` on multiclass data is the softmax regression (its live code reaches v2), not the
    binary program (whose s1 is dead there)."""
    task = _multiclass_tasks(1)[0]
    np.savez(tmp_path / "mc.npz", x_train=task.x_train, y_train=task.y_train, x_valid=task.x_valid,
             y_valid=task.y_valid)
    proc = run_tool("linear", f"--data={tmp_path / 'mc.npz'}", "--eval_type=multiclass", "--json")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = serialization.format_algorithm(programs.multiclass_linear_algorithm())
    assert payload["multiclass"] and payload["base_fitness"] > 0.5
    assert all(line in expected for line in payload["live_code_text"].splitlines() if line.startswith("  "))
    assert payload["ablation"]["rows"]  # live code to ablate
