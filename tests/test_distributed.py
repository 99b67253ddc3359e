"""Island evolution across processes (azero_jax/search/distributed.py,
azero_jax/scripts/search_distributed.py): local processes on gloo CPU
collectives, the tiny config on the reference backend."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from azero_jax import program_arrays as pa
from azero_jax import serialization
from azero_jax.scripts import search_distributed
from azero_jax.search import distributed as dist
from azero_jax.search import evolution_state
from azero_jax.search.evolution_state import EvolutionState, Island

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "search_distributed.py")
# 3 islands on 2 processes: process 0 holds islands 0 and 2, process 1 island 1, so the
# ring 0 -> 1 -> 2 -> 0 crosses processes both ways and one process holds a padding slot.
SEARCH_FLAGS = ["--config=tiny", "--islands=3", "--migration_every=3", "--steps=6", "--population_size=10",
                "--seed=7"]
TIMEOUT = 120


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(AZERO_JAX_CPU_DEVICES="1", JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    env.pop("XLA_FLAGS", None)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(output_dir: str, num_processes: int, extra: list[str] = (), env: dict[str, str] | None = None
            ) -> list[subprocess.Popen]:
    """Starts the script on `num_processes` local processes (stdout and stderr merged)."""
    args = [sys.executable, SCRIPT, *SEARCH_FLAGS, *extra, f"--output_dir={output_dir}"]
    if num_processes > 1:
        args += [f"--coordinator_address=127.0.0.1:{_free_port()}", f"--num_processes={num_processes}",
                 "--initialization_timeout=60"]
    return [subprocess.Popen([*args, f"--process_id={p}"] if num_processes > 1 else args, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env={**_env(), **(env or {})})
            for p in range(num_processes)]


def _finish(procs: list[subprocess.Popen], timeout: float = TIMEOUT) -> list[str]:
    """The processes' logs once they end (all killed if one does not end in time)."""
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    return logs


def _run(output_dir: str, num_processes: int, extra: list[str] = ()) -> list[str]:
    """Runs the script on `num_processes` local processes; their logs."""
    procs = _launch(output_dir, num_processes, extra)
    logs = _finish(procs)
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log
    return logs


def _results(output_dir: str) -> dict:
    with open(os.path.join(output_dir, "results.json")) as f:
        return json.load(f)


def _layout_free(results: dict) -> dict:
    """What the determinism claim says does not depend on the process count."""
    return {"islands": [{k: v for k, v in r.items() if k != "process"} for r in results["islands"]],
            **{k: results[k] for k in ("best_program", "best_fitness", "best_island", "migrations", "num_islands",
                                  "select_fitness", "final_fitness", "chosen_island", "chosen_program", "steps",
                                  "stopped_by")}}


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("two"))
    return out, _run(out, 2)


def test_placement_rule():
    assert [dist.owner(g, 2) for g in range(5)] == [0, 1, 0, 1, 0]
    assert dist.local_islands(0, 2, 3) == [0, 2] and dist.local_islands(1, 2, 3) == [1]
    assert dist.local_islands(3, 4, 2) == []
    assert dist.island_seed(1, 0, "evolution") != dist.island_seed(1, 1, "evolution")
    assert dist.island_seed(1, 0, "evolution") != dist.island_seed(1, 0, "evaluator")


def test_wire_form_round_trip_is_bit_exact():
    rng = np.random.default_rng(0)
    codes = [pa.ComponentCode(rng.integers(0, 9, (2, c, 4)).astype(np.int32), rng.normal(size=(2, c, 4)),
                              np.asarray([c, c - 1], np.int32)) for c in (2, 3, 4)]
    programs = pa.ProgramArrays(*codes)
    fits = np.asarray([np.nan, -0.0])
    rows = dist.encode_rows(programs, fits, 3, (3, 3, 5))
    back, back_fits, valid = dist.decode_rows(rows, (3, 3, 5))
    assert valid.tolist() == [True, True, False]
    assert np.isnan(back_fits[0]) and np.signbit(back_fits[1])
    for a, b in zip(pa.with_capacity(programs, (3, 3, 5)), pa.take(back, [0, 1]), strict=True):
        np.testing.assert_array_equal(a.ints, b.ints)
        assert a.floats.tobytes() == b.floats.tobytes()
        np.testing.assert_array_equal(a.lengths, b.lengths)


def test_migrants_cross_processes_both_ways(two_process_run):
    out, logs = two_process_run
    sent, arrived = {}, {}
    for p, log in enumerate(logs):
        assert all(line.startswith(f"[process {p}] ") for line in log.splitlines()
                   if line.startswith("[process")), log
        for m, g, digest in re.findall(r"migration (\d+): island (\d+) sends its best, fitness=\S+, "
                                       r"program=(\w+)", log):
            sent[int(m), int(g)] = (p, digest)
        for m, src, sp, dst, dp, digest in re.findall(
                r"migration (\d+) \(step \d+\): island (\d+) \(process (\d+)\) -> island (\d+) \(process (\d+)\) "
                r"slot \d+, fitness=\S+, program=(\w+)", log):
            assert int(dp) == p
            arrived[int(m), int(src), int(dst)] = (int(sp), digest)
    assert {k[0] for k in sent} == {1, 2}
    for (m, src, dst), (sp, digest) in arrived.items():
        assert dst == (src + 1) % 3 and sent[m, src] == (sp, digest)  # what the source sent is what arrived
    crossings = {(sp, dist.owner(dst, 2)) for (m, src, dst), (sp, _) in arrived.items()}
    assert (0, 1) in crossings and (1, 0) in crossings  # process 0 -> 1 and 1 -> 0
    assert len(arrived) == 2 * 3  # 2 migrations x 3 islands
    results = _results(out)
    assert results["migrations"] == 2 and results["num_processes"] == 2
    assert [r["islands"] for r in results["per_process"]] == [[0, 2], [1]]
    assert [r["individuals"] for r in results["per_process"]] == [2 * 16, 16]  # 10 initial + 6 children per island


def test_select_and_final_phases(two_process_run):
    """Process 0 evaluates every island's best on the select tasks, keeps the best by select
    fitness (ties: lowest island) and evaluates it on the final tasks; the others do not."""
    out, logs = two_process_run
    results = _results(out)
    selects = [r["select_fitness"] for r in results["islands"]]
    assert len(selects) == 3 and all(isinstance(f, float) for f in selects)
    assert results["chosen_island"] == dist.choose_best(selects)
    assert results["select_fitness"] == selects[results["chosen_island"]]
    assert isinstance(results["final_fitness"], float) and np.isfinite(results["final_fitness"])
    chosen = serialization.algorithm_from_dict(results["chosen_program"])
    assert dist.program_digest(chosen) == results["islands"][results["chosen_island"]]["best_program_digest"]
    assert results["steps"] == 6 and results["stopped_by"] == "steps"
    assert "select: island" in logs[0] and "select: island" not in logs[1]
    assert "final fitness" in logs[0]


def test_phase_seeds_and_choice():
    assert dist.phase_seed(7, "select") != dist.phase_seed(7, "final") != dist.phase_seed(8, "final")
    assert 0 <= dist.phase_seed(7, "select") < 2**31
    assert dist.choose_best([0.5, np.nan, 0.7, 0.7]) == 2 and dist.choose_best([np.nan, np.nan]) == 0
    assert dist.agree_to_stop(True, dist.local_allgather)
    assert not dist.agree_to_stop(False, dist.local_allgather)
    assert dist.agree_to_stop(False, lambda x: np.stack([x, np.ones_like(x)]))  # another process's clock


def test_max_minutes_stops_every_process_at_the_same_step(tmp_path):
    """A tiny budget against a huge --steps: both processes stop after the same step, in
    bounded time, checkpoint it, and process 0 still runs select/final and writes results."""
    out = str(tmp_path)
    start = time.monotonic()
    logs = _run(out, 2, ["--steps=1000000", "--max_minutes=0.001", "--checkpoint_every_steps=1000"])
    assert time.monotonic() - start < 60
    stops = [re.findall(r"stopped by --max_minutes after step (\d+) of 1000000", log) for log in logs]
    assert len(stops[0]) == 1 and stops[0] == stops[1], logs
    step = int(stops[0][0])
    results = _results(out)
    assert results["stopped_by"] == "max_minutes" and results["steps"] == step < 1000000
    assert isinstance(results["select_fitness"], float) and isinstance(results["final_fitness"], float)
    assert dist.list_checkpoints(out) == {0: [step], 1: [step]}


def test_same_seed_gives_identical_results(two_process_run, tmp_path):
    out, _ = two_process_run
    again = str(tmp_path / "again")
    _run(again, 2)
    assert _results(out) == _results(again)


def test_one_process_equals_two_processes(two_process_run, tmp_path):
    """The module's claim: the islands do not depend on the process count."""
    out, _ = two_process_run
    one = str(tmp_path / "one")
    _run(one, 1)
    assert _results(one)["per_process"] == [{"process": 0, "islands": [0, 1, 2], "individuals": 3 * 16}]
    assert _layout_free(_results(one)) == _layout_free(_results(out))


def test_wrong_coordinator_address_is_one_error_line(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    out = subprocess.run([sys.executable, SCRIPT, *SEARCH_FLAGS, f"--output_dir={tmp_path}",
                          f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", "--process_id=1",
                          "--initialization_timeout=3"], capture_output=True, text=True, timeout=60, env=_env())
    assert time.monotonic() - start < 30
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: no coordinator reachable at"), out.stderr
    # process 0 cannot run a coordinator on another machine's address: at once
    out = subprocess.run([sys.executable, SCRIPT, *SEARCH_FLAGS, f"--output_dir={tmp_path}",
                          "--coordinator_address=192.0.2.1:1234", "--num_processes=2", "--process_id=0",
                          "--initialization_timeout=3"], capture_output=True, text=True, timeout=60, env=_env())
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: process 0 cannot run the coordinator at 192.0.2.1:1234: '192.0.2.1' is not an address of this machine"]
    assert not os.path.exists(tmp_path / "results.json")


def test_killed_process_resumes_to_the_same_results(two_process_run, tmp_path):
    """Process 1 SIGKILLs itself after step 5 (checkpoints at 2 and 4); process 0, waiting for
    it in the step-6 migration, ends on its own within a bounded time with one error line and
    exit status 3; the same command resumes both from step 4 and ends with the uninterrupted
    run's results."""
    out, _ = two_process_run
    run = str(tmp_path / "killed")
    flags = ["--checkpoint_every_steps=2"]
    procs = _launch(run, 2, [*flags, "--collective_timeout=20"], env={search_distributed.KILL_ENV: "1:5"})
    try:
        assert procs[1].wait(timeout=TIMEOUT) == -signal.SIGKILL
        killed_at = time.monotonic()
        survivor = procs[0].communicate(timeout=60)[0]
        assert time.monotonic() - killed_at < 30
    finally:
        _finish(procs)
    assert procs[0].returncode == search_distributed.EXIT_PEER_LOST, survivor
    errors = [line for line in survivor.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: process 0 lost the other processes ("), survivor
    assert "rerun the same command on every process to resume" in errors[0]
    assert "Fatal Python error" not in survivor and "Check failure" not in survivor, survivor
    assert not os.path.exists(os.path.join(run, "results.json"))
    held = dist.list_checkpoints(run)
    assert dist.common_step([held.get(0, []), held.get(1, [])]) == 4, held
    logs = _run(run, 2, flags)
    for p, log in enumerate(logs):
        assert f"[process {p}] resumed from step 4 (1 migrations done;" in log, log
    assert _results(run) == _results(out)
    assert dist.list_checkpoints(run) == {0: [6], 1: [6]}


def test_resume_with_another_process_count_is_one_error_line(tmp_path):
    _run(str(tmp_path), 1, ["--checkpoint_every_steps=2"])
    assert dist.list_checkpoints(str(tmp_path)) == {0: [6]}
    start = time.monotonic()
    procs = _launch(str(tmp_path), 2, ["--checkpoint_every_steps=2"])
    logs = _finish(procs, timeout=60)
    assert time.monotonic() - start < 30
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 2, log
        assert [line for line in log.splitlines() if not line.startswith("[process")] == [
            f"error: the checkpoints in {tmp_path} were written with --num_processes=1, this run has "
            "--num_processes=2: resume with --num_processes=1 or use a fresh --output_dir"], log


def test_guarded_allgather_bounds_a_failed_or_hung_exchange():
    def failing(x):
        raise RuntimeError("UNKNOWN: Gloo AllGather failed: Connection reset by peer\nmore detail")

    with pytest.raises(dist.CollectiveError, match="^UNKNOWN: Gloo AllGather failed: Connection reset by peer$"):
        dist.guarded_allgather(failing, timeout=5, on_timeout=lambda: None)(np.zeros(1, np.int32))
    fired = []

    def slow(x):
        time.sleep(0.5)
        return np.asarray(x)[None]

    out = dist.guarded_allgather(slow, timeout=0.1, on_timeout=lambda: fired.append(True))(np.ones(2, np.int32))
    assert fired == [True] and out.shape == (1, 2)  # the watchdog ran while the exchange hung
    fired.clear()
    dist.guarded_allgather(dist.local_allgather, timeout=0.2, on_timeout=lambda: fired.append(True))(np.ones(1))
    time.sleep(0.4)
    assert fired == []  # a finished exchange cancels its watchdog


def test_float_rows_gather_bit_exact_with_uneven_counts():
    a = np.asarray([[1.5, np.nan], [-0.0, 2.0]])
    b = np.asarray([[3.0, np.inf]])

    def two(x):  # process 0 holds a, process 1 b
        if x.shape == (1,):
            return np.stack([x, np.asarray([1], np.int32)])
        other = np.zeros_like(x.view(np.float64))
        other[:1] = b
        return np.stack([x, other.view(np.int32)])

    out = dist.gather_float_rows(a, two)
    assert out.shape == (3, 2) and out.tobytes() == np.concatenate([a, b]).tobytes()
    assert dist.gather_float_rows(np.zeros((0, 3)), dist.local_allgather).shape == (0, 3)


def test_merged_progress_csv(two_process_run):
    """Process 0's progress.csv holds every island's rows from both processes, each island's in step order."""
    out, logs = two_process_run
    with open(os.path.join(out, "progress.csv")) as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == search_distributed.PROGRESS_COLUMNS
    assert {(r["island"], r["process"]) for r in rows} == {("0", "0"), ("1", "1"), ("2", "0")}
    for g in "012":
        steps = [int(r["step"]) for r in rows if r["island"] == g]
        assert steps == sorted(steps) and steps
    assert re.search(r"^\[process 1\] island 1: indivs=\d+", logs[1], re.M), logs[1]
    with open(os.path.join(out, "fitness.png"), "rb") as f:  # one curve per island, drawn from that file
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_checkpoint_round_trip_is_bit_exact():
    rng = np.random.default_rng(1)
    codes = [pa.ComponentCode(rng.integers(0, 9, (3, c, 4)).astype(np.int32), rng.normal(size=(3, c, 4)),
                              np.asarray([c, 1, 0], np.int32)) for c in (2, 3, 4)]
    state = EvolutionState(islands=[Island(pa.ProgramArrays(*codes), np.asarray([np.nan, -0.0, 1.5]), 2)],
                           rng_state=np.random.default_rng(5).bit_generator.state, num_individuals=7, num_steps=3)
    back = evolution_state.state_from_dict(json.loads(json.dumps(evolution_state.state_to_dict(state))))
    assert back.islands[0].fitnesses.tobytes() == state.islands[0].fitnesses.tobytes()
    for a, b in zip(state.islands[0].programs, back.islands[0].programs, strict=True):
        for x, y in zip(a, b, strict=True):
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
    assert back.rng_state == state.rng_state and (back.num_individuals, back.num_steps, back.islands[0].next_slot) == (
        7, 3, 2)
    assert dist.common_step([[2, 4], [4]]) == 4 and dist.common_step([[4, 6], [2]]) is None


def test_time_stopped_run_resumes_to_the_uninterrupted_results(two_process_run, tmp_path):
    """A --max_minutes stop checkpoints its stop step; the same command without the budget
    continues from there and ends with the uninterrupted run's results.json."""
    out, _ = two_process_run
    run = str(tmp_path)
    logs = _run(run, 2, ["--max_minutes=0.001", "--checkpoint_every_steps=2"])
    step = int(re.findall(r"stopped by --max_minutes after step (\d+) of 6", logs[0])[0])
    assert _results(run)["stopped_by"] == "max_minutes" and dist.list_checkpoints(run) == {0: [step], 1: [step]}
    logs = _run(run, 2, ["--checkpoint_every_steps=2"])
    assert f"[process 1] resumed from step {step} " in logs[1], logs[1]
    assert _results(run) == _results(out)
