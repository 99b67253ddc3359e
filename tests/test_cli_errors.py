"""The entry points' error boundary (azero_jax.cli.run_app), table-driven:
every malformed input, by entry point, is exit status 2, exactly one
`error:` line on stderr and no traceback; OS faults (a file where a directory
is expected, a directory where a file is expected, a full disk via
RLIMIT_FSIZE, a full stdout) likewise; a bug still shows its traceback and
says it is one. Also: a 3-second wall-clock budget holds within a bounded
overshoot, and the main job resumes after a kill in its first seconds.

Subprocesses run the scripts in a temporary directory holding the fixture
files; the reference backend and tiny configs keep the module fast."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = {
    "search": os.path.join(ROOT, "experiments", "search.py"),
    "linear_regression": os.path.join(ROOT, "experiments", "linear_regression.py"),
    "cifar_binary": os.path.join(ROOT, "experiments", "cifar_binary.py"),
    "evaluate_program": os.path.join(ROOT, "tools", "evaluate_program.py"),
}
SMALL_TASKS = json.dumps([{"kind": "linear", "features": 4, "num_train": 20, "num_valid": 10, "num_tasks": 2}])


def _save_npz(path, rng, **changes):
    arrays = dict(x_train=rng.standard_normal((20, 4)), y_train=rng.standard_normal(20),
                  x_valid=rng.standard_normal((10, 4)), y_valid=rng.standard_normal(10))
    arrays.update(changes)
    np.savez(path, **arrays)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A directory with good and bad data files, configs and programs."""
    d = tmp_path_factory.mktemp("cli_errors")
    rng = np.random.default_rng(0)
    _save_npz(d / "good.npz", rng)
    x = rng.standard_normal((20, 4))
    x[3, 1] = np.nan
    _save_npz(d / "nan.npz", rng, x_train=x)
    _save_npz(d / "inf.npz", rng, y_valid=np.full(10, np.inf))
    _save_npz(d / "novalid.npz", rng, x_valid=np.zeros((0, 4)), y_valid=np.zeros(0))
    _save_npz(d / "labels.npz", rng, y_train=np.arange(20) % 2.0, y_valid=np.arange(10) % 3.0)
    _save_npz(d / "complex.npz", rng, x_train=rng.standard_normal((20, 4)) + 1j)
    _save_npz(d / "small.npz", rng, x_train=rng.standard_normal((5, 4)), y_train=rng.standard_normal(5))
    (d / "dir.npz").mkdir()
    (d / "afile").write_text("x")
    for name, tasks, extra in (("nan", "nan.npz", {}), ("inf", "inf.npz", {}), ("novalid", "novalid.npz", {}), ("small", "small.npz", {}),
                               ("fec", "good.npz", {"fec": {"num_train_examples": 50}}),
                               ("dirnpz", "dir.npz", {})):
        (d / f"cfg_{name}.json").write_text(json.dumps({"preset": "tiny", **extra,
                                                        "search_tasks": [{"kind": "npz", "path": tasks}]}))
    (d / "deep.json").write_text("[" * 100000 + "]" * 100000)
    program = {"format": "azero-jax-program", "version": 1,
               "memory": {"scalars": 2, "vectors": 2, "matrices": 0, "features": 4}, "setup": [],
               "predict": [{"op": "SCALAR_SUM_OP", "in1": 0, "in2": 0, "out": 1}], "learn": []}
    (d / "prog_s2.json").write_text(json.dumps(program))
    program["predict"][0]["in2"] = 3
    (d / "prog_s3.json").write_text(json.dumps(program))
    (d / "progress_dir" / "progress.csv").mkdir(parents=True)
    return d


def _run(entry: str, *args: str, cwd, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPTS[entry], *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, **kw)


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


# (entry point, arguments, a fragment the error line must contain)
CASES = {
    "search": [
        (["--config=cfg_nan.json", "--output_dir=o"], "non-finite"),
        (["--config=cfg_inf.json", "--output_dir=o"], "y_valid has 10 non-finite"),
        (["--config=cfg_novalid.json", "--output_dir=o"], "at least one valid example"),
        (["--config=cfg_small.json", "--output_dir=o"], "at least 10"),
        (["--config=cfg_fec.json", "--output_dir=o"], "FEC probe"),
        (["--config=cfg_dirnpz.json", "--output_dir=o"], "dir.npz"),
        (["--config=deep.json", "--output_dir=o"], "nested too deeply"),
        (["--config=tiny", "--output_dir=o", "--hurdle_tasks=2"], "hurdle_tasks (2) must be less than"),
        (["--config=tiny", "--output_dir=o", "--max_minutes=-1"], "--max_minutes must be a finite number >= 0"),
        (["--config=tiny", "--output_dir=o", "--max_minutes=nan"], "--max_minutes"),
        (["--config=tiny", "--output_dir=o", "--max_seconds=-5"], "max_seconds must be > 0"),
        (["--config=tiny", "--output_dir=o", "--max_seconds=inf"], "must be finite"),
        (["--config=tiny", "--output_dir=o", "--seed=4294967297"], "random_seed must be <= 2147483647"),
        (["--config=tiny", "--output_dir=o", "--seed=-1"], "random_seed must be >= 0"),
        (["--config=tiny", "--output_dir=o", "--memory=100000,3,1"], "<= 1000"),
        (["--config=tiny", "--output_dir=o", "--mutate_learn_size_min=5", "--mutate_learn_size_max=2"],
         "mutate_learn_size_min (5) exceeds"),
        (["--config=tiny", "--output_dir=o", "--learn_size_init=9", "--mutate_learn_size_max=4"],
         "learn_size_init (9) exceeds"),
        (["--config=tiny", "--output_dir=o", "--learn_ops=[]"], "learn"),
        (["--config=tiny", "--output_dir=o", "--set", "fec=" + "[" * 5000 + "]" * 5000], "nested too deeply"),
        (["--config=tiny", "--output_dir=", ], "--output_dir"),
        (["--config=tiny", "--output_dir=/dev/null"], "not a directory"),
        (["--config=tiny", "--output_dir=afile/sub"], "is a file, not a directory"),
        (["--config=tiny", "--output_dir=progress_dir"], "Is a directory"),
        (["--config=tiny", "--output_dir=o", "--resume", "--overwrite"], "contradict"),
        (["--config=tiny", "--output_dir=o", "--bogus=1"], "Unknown command line flag"),
    ],
    "linear_regression": [
        (["--seed=abc"], "--seed=abc"),
        (["--output_dir=o", "--max_minutes=-1"], "--max_minutes"),
        (["--output_dir=o", "--max_minutes=nan"], "--max_minutes"),
        (["--output_dir=o", "--resume=maybe"], "resume"),
        (["--output_dir=o", "--resume=yes", "--overwrite"], "contradict"),
        (["--output_dir=o", "--resume=yes"], "does not exist"),
        (["--output_dir=afile"], "not a directory"),
    ],
    "evaluate_program": [
        (["linear", "--data=novalid.npz"], "at least one valid example"),
        (["linear", "--data=labels.npz", "--eval_type=accuracy"], "labels 0 and 1"),
        (["linear", "--data=complex.npz"], "complex"),
        (["linear", "--data=dir.npz"], "dir.npz"),
        (["linear", "--data=missing.npz"], "does not exist"),
        (["linear", "--data=good.npz", "--max_abs_error=-1"], "--max_abs_error must be a finite number > 0"),
        (["linear", "--data=good.npz", "--max_abs_error=nan"], "--max_abs_error"),
        (["linear", "--data=good.npz", "--seed=4294967296"], "--seed must be in"),
        (["linear", "--data=good.npz", "--memory=100000,2,2"], "<= 1000"),
        (["prog_s3.json", "--data=good.npz"], "s3"),
        (["prog_s2.json", "--data=good.npz", "--memory=20,20,20"], "contradicts the memory block"),
        (["afile", "--data=good.npz"], "afile"),
        (["linear"], "exactly one of"),
    ],
    "cifar_binary": [
        (["--output_dir=o", "--cache_dir=afile", "--nobaselines"], "afile"),
        (["--output_dir=o", "--max_minutes=-1"], "--max_minutes"),
        (["--output_dir=o", "--search_tasks=demo_search"], "builds the tasks"),
    ],
}
TABLE = [pytest.param(entry, args, fragment, id=f"{entry}-{i}") for entry, rows in CASES.items()
         for i, (args, fragment) in enumerate(rows)]


@pytest.mark.parametrize("entry,args,fragment", TABLE)
def test_bad_input_is_one_error_line(workdir, tmp_path, entry, args, fragment):
    args = [a.replace("--output_dir=o", f"--output_dir={tmp_path / 'o'}") if a == "--output_dir=o" else a
            for a in args]
    line = _one_error_line(_run(entry, *args, cwd=workdir))
    assert fragment in line, line
    assert not (tmp_path / "o" / "checkpoint.json").exists()  # rejected before any work


def test_nonfinite_data_is_a_warning_in_the_evaluator(workdir):
    """The interpreter follows the reference's rules for NaN / infinity (the
    C++ cases test them), so the evaluator runs, but says so on stderr."""
    for name in ("nan.npz", "inf.npz"):
        proc = _run("evaluate_program", "linear", f"--data={name}", "--quiet", cwd=workdir)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("warning: ") and "non-finite" in lines[0], proc.stderr


def test_program_memory_block_wins(workdir):
    proc = _run("evaluate_program", "prog_s2.json", "--data=good.npz", "--quiet", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith("fitness=")
    same = _run("evaluate_program", "prog_s2.json", "--data=good.npz", "--quiet", "--memory=2,2,0", cwd=workdir)
    assert same.returncode == 0 and same.stdout == proc.stdout, same.stderr


# ------------------------------------------------------------- OS faults --

def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (256, 256))  # a "full disk" for files past 256 bytes


def test_full_disk_at_the_first_checkpoint(workdir, tmp_path):
    proc = _run("search", "--config=tiny", f"--output_dir={tmp_path / 'full'}", cwd=workdir,
                preexec_fn=_limit_file_size)
    line = _one_error_line(proc)
    assert "checkpoint.json" in line and "File too large" in line and "size limit" in line, line
    assert not [n for n in os.listdir(tmp_path / "full") if n.endswith(".part")]  # no temp file left behind


def test_full_stdout(workdir):
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, SCRIPTS["evaluate_program"], "linear", "--data=good.npz"],
                              stdout=full, stderr=subprocess.PIPE, text=True, cwd=workdir, timeout=120)
    line = _one_error_line(proc)
    assert "No space left on device" in line, line


def test_a_bug_shows_its_traceback_and_says_so(workdir):
    code = ("from azero_jax import cli\n"
            "def main(argv):\n    raise RuntimeError('boom')\n"
            "cli.run_app(main, '__main__')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "RuntimeError: boom" in proc.stderr
    assert "this is a bug" in proc.stderr.strip().splitlines()[-1]


def test_no_backend_probe_noise_unless_verbosity():
    code = ("import sys\nfrom azero_jax import cli\n"
            "def main(argv):\n    import jax\n    print(jax.default_backend())\n"
            "cli.run_app(main, '__main__', sys.argv)\n")
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                           env=env)
    assert quiet.returncode == 0 and quiet.stdout.strip(), quiet.stderr
    assert quiet.stderr.strip() == "", quiet.stderr  # no "Unable to initialize backend 'tpu'" line
    loud = subprocess.run([sys.executable, "-c", code, "--verbosity=0"], capture_output=True, text=True, cwd=ROOT,
                          timeout=60, env=env)
    assert loud.returncode == 0 and loud.stdout == quiet.stdout, loud.stderr
    if loud.stdout.strip() == "cpu":  # the probe of the missing TPU runtime is logged again
        assert "xla_bridge" in loud.stderr, loud.stderr


# ---------------------------------------------------------------- budgets --

def test_wall_clock_budget_stops_mid_sweep(tmp_path):
    """3-second budget; one sweep (4000 children) takes longer than that here,
    so before the per-step check this overshot by seconds."""
    budget = 3.0
    start = time.monotonic()
    proc = _run("search", "--config=tiny", f"--output_dir={tmp_path / 'run'}", f"--max_seconds={budget}",
                "--max_train_steps=1e12", "--max_experiments=1", "--population_size=4000",
                "--initial_population=noop", "--tournament_size=2", "--progress_every=100000", cwd=tmp_path)
    wall = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert budget <= results["elapsed_seconds"] < budget + 1.5, results["elapsed_seconds"]
    assert wall < budget + 15, wall  # start-up, select and final included


# ----------------------------------------------------------------- resume --

def _lr_args(out: str, steps: int) -> list[str]:
    return [f"--output_dir={out}", "--backend=reference", "--children_per_step=5", "--population_size=50",
            f"--max_train_steps={steps}", "--max_experiments=1", "--noearly_stop", "--max_minutes=0",
            f"--search_tasks={SMALL_TASKS}", f"--select_tasks={SMALL_TASKS}", f"--final_tasks={SMALL_TASKS}",
            "--checkpoint_every_seconds=1", "--progress_every=100"]


def _mid_search_checkpoint(path: str) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)["state"]["current"] is not None
    except (OSError, ValueError, KeyError):
        return False


def test_main_job_resumes_after_an_early_kill(tmp_path):
    """The main job killed a second or two in (after its first periodic
    checkpoint) resumes where it was, ends with the uninterrupted result,
    and a rerun of the finished run only reprints it."""
    steps = 40000
    full, killed = tmp_path / "full", tmp_path / "killed"
    script = SCRIPTS["linear_regression"]
    uninterrupted = subprocess.Popen([sys.executable, script, *_lr_args(str(full), steps)], cwd=tmp_path,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    proc = subprocess.Popen([sys.executable, script, *_lr_args(str(killed), steps)], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _mid_search_checkpoint(str(killed / "checkpoint.json")):
        assert proc.poll() is None, f"finished before a mid-search checkpoint: {proc.stderr.read()}"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "results.json").exists()
    resumed = subprocess.run([sys.executable, script, *_lr_args(str(killed), steps)], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed at indivs=" in resumed.stdout
    indivs = int(resumed.stdout.split("resumed at indivs=")[1].split(",")[0])
    assert indivs > 50  # more than the initial population: the kill lost at most a few sweeps
    assert uninterrupted.wait(timeout=120) == 0, uninterrupted.stderr.read()
    keys = ("search_fitness", "select_fitness", "final_fitness", "best_program", "experiments", "counters")
    a, b = (json.loads((d / "results.json").read_text()) for d in (full, killed))
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
    before = (killed / "results.json").read_text()
    again = subprocess.run([sys.executable, script, *_lr_args(str(killed), steps)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "already finished" in again.stdout and "final fitness (unseen tasks)" in again.stdout
    assert (killed / "results.json").read_text() == before  # not recomputed, not rewritten


def test_checkpoint_cadence_of_the_main_job():
    """With the main job's defaults a kill loses at most max(5 s, 10 % of the
    elapsed time), never more than 30 s."""
    from azero_jax import experiment
    from azero_jax.experiment import driver
    from azero_jax.scripts import linear_regression

    config = experiment.get_preset("tiny").replace(
        checkpoint_every_seconds=linear_regression.DEFAULTS["checkpoint_every_seconds"])
    run = driver._Run(config, "unused", None, None)
    for elapsed in (0.0, 1.0, 30.0, 60.0, 200.0, 1000.0, 5000.0):
        run.elapsed_before, run.session_start = elapsed, time.monotonic()
        interval = run.checkpoint_interval()
        assert interval <= max(5.0, 0.1 * elapsed) + 0.01 and interval <= 30.0, (elapsed, interval)


def test_corrupt_checkpoint_names_the_way_out(workdir, tmp_path):
    out = tmp_path / "run"
    args = ["--config=tiny", f"--output_dir={out}", "--max_experiments=1", "--max_train_steps=1000"]
    assert _run("search", *args, cwd=workdir).returncode == 0
    ckpt = out / "checkpoint.json"
    data = json.loads(ckpt.read_text())
    data["state"]["best"]["program"] = {"format": "azero-jax-program", "version": 1, "setup": [],
                                        "predict": [{"op": "NO_SUCH_OP"}], "learn": []}
    ckpt.write_text(json.dumps(data))
    line = _one_error_line(_run("search", *args, "--resume", cwd=workdir))
    assert "corrupt" in line and "--overwrite" in line, line
    ckpt.write_text("{not json")
    line = _one_error_line(_run("search", *args, "--resume", cwd=workdir))
    assert "corrupt" in line and "--overwrite" in line, line
    assert _run("search", *args, "--overwrite", cwd=workdir).returncode == 0
    assert json.loads((out / "results.json").read_text())["num_experiments"] == 1
