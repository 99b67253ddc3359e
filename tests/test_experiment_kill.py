"""Kill-and-resume with a real SIGKILL: a search subprocess killed at random
points and resumed each time ends with exactly the uninterrupted result."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT_KEYS = ("search_fitness", "select_fitness", "final_fitness", "best_program", "experiments", "counters",
               "best_experiment")


def _start(config: str, out: str, resume: bool) -> subprocess.Popen:
    args = [sys.executable, os.path.join(ROOT, "experiments", "search.py"), f"--config={config}",
            f"--output_dir={out}"] + (["--resume"] if resume else [])
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _results(out: str) -> dict:
    with open(os.path.join(out, "results.json"), encoding="utf-8") as f:
        data = json.load(f)
    return {k: data[k] for k in RESULT_KEYS}


def test_sigkill_at_random_points_then_resume_matches(tmp_path):
    # The tiny preset on the reference backend, checkpointing after every sweep,
    # long enough (a few seconds) to be killed mid-search.
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"preset": "tiny", "max_train_steps": 15000, "max_experiments": 2,
                                  "checkpoint_every_seconds": 0, "children_per_step": 4, "num_islands": 2,
                                  "migration_every": 3}))
    full = str(tmp_path / "full")
    start = time.monotonic()
    proc = _start(str(config), full, resume=False)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    duration = time.monotonic() - start

    rng = random.Random(1234)
    killed = str(tmp_path / "killed")
    kills = 0
    resume = False
    for _ in range(3):
        proc = _start(str(config), killed, resume=resume)
        # A random point after the first checkpoint exists (so a resume is possible).
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(killed, "checkpoint.json")) and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.6 * duration))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            resume = True
            continue
        assert proc.returncode == 0, proc.stderr.read()
        break
    else:
        proc = _start(str(config), killed, resume=True)
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert kills >= 1
    assert _results(killed) == _results(full)
