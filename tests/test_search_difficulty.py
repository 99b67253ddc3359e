"""scripts/search_difficulty.py: a tiny measurement gives a well-formed,
deterministic table; success is judged against the hand-written program's
select fitness; the interval helpers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from azero_jax import programs as programs_lib
from azero_jax.scripts import search_difficulty as sd

TINY = dict(repeats=3, individuals=40, seed=5, population_size=20, tournament_size=5, children_per_step=10)


@pytest.fixture(scope="module")
def tiny_rows():
    return [sd.measure("linear", **TINY, log=lambda _line: None) for _ in range(2)]


def test_tiny_run_gives_a_well_formed_table(tiny_rows):
    row = tiny_rows[0]
    assert row["family"] == "linear" and row["repeats"] == 3 and row["individuals_per_run"] == 40
    assert 0.0 < row["reference_select_fitness"] < 1.0
    for method in ("evolution", "random_search"):
        d = row[method]
        assert 0 <= d["successes"] <= d["runs"] == 3 and 0.0 <= d["rate"] <= 1.0
        lo, hi = d["wilson95"]
        assert 0.0 <= lo <= d["rate"] <= hi <= 1.0
    text = sd.format_table([row])
    assert text.splitlines()[1].startswith("linear") and "evo/RS" in text
    json.dumps(row)  # the JSON table


def test_same_seed_gives_the_same_table(tiny_rows):
    # Every count and fitness (best / median select fitness of each method's runs), not the timings;
    # compared as JSON since a ratio with no success at all is nan.
    a, b = (json.dumps({k: v for k, v in row.items() if not k.endswith("_seconds")}, sort_keys=True)
            for row in tiny_rows)
    assert a == b


def test_success_is_beating_the_hand_written_programs_select_fitness(monkeypatch):
    config = sd.family_config("linear", population_size=20, tournament_size=5, children_per_step=10)
    better = programs_lib.linear_algorithm(learning_rate=0.05)  # the same SGD, a better rate for 100 examples
    worse = programs_lib.noop_algorithm()
    reference, fits = sd.select_fitnesses(config, "linear", [better, worse, programs_lib.linear_algorithm()], seed=1)
    assert fits[0] > reference > fits[1]
    assert fits[2] == reference  # the reference itself does not beat itself
    # measure() counts exactly the runs whose best beats it.
    monkeypatch.setattr(sd, "run_evolution", lambda *a, **k: [better, worse, better])
    monkeypatch.setattr(sd, "run_random_search", lambda *a, **k: [worse, programs_lib.linear_algorithm(), better])
    row = sd.measure("linear", **TINY, log=lambda _line: None)
    assert row["evolution"]["successes"] == 2 and row["random_search"]["successes"] == 1
    assert row["ratio"] == pytest.approx(2.0)
    lo, hi = row["ratio_katz95"]
    assert lo <= 2.0 <= hi


def test_wilson_and_ratio_intervals():
    assert sd.wilson(0, 10) == (0.0, pytest.approx(sd.Z95**2 / (10 + sd.Z95**2)))
    lo, hi = sd.wilson(5, 10)
    assert lo == pytest.approx(1 - hi) and lo < 0.5 < hi
    assert sd.wilson(10, 10)[1] == 1.0
    assert math.isinf(float(sd._ratio(0.2, 0.0))) and math.isnan(float(sd._ratio(0.0, 0.0)))
    lo, hi = sd.ratio_interval(8, 2, 40)
    assert lo < 4.0 < hi and lo * hi == pytest.approx(16.0)  # symmetric around 4 on the log scale
    lo, hi = sd.ratio_interval(6, 0, 40)  # no RS success: corrected, finite, wide
    assert 0.5 < lo < 1.0 and 100 < hi < 1000
    assert all(math.isnan(v) for v in sd.ratio_interval(0, 0, 40))


def test_budget_is_equal_and_rounded_up():
    assert sd.budget(40, 20, 10) == (2, 40)
    assert sd.budget(45, 20, 10) == (3, 50)
    assert sd.budget(5, 20, 10) == (0, 20)
    assert np.all([sd.budget(n, 100, 50)[1] >= n for n in (1, 100, 101, 30000)])


def test_command_line_writes_the_json_table_and_rejects_bad_flags(tmp_path):
    import subprocess
    import sys

    script = [sys.executable, "experiments/search_difficulty.py"]
    args = ["--repeats=2", "--individuals=20", "--population_size=10", "--tournament_size=3",
            "--children_per_step=10", f"--output_dir={tmp_path}"]
    root = __file__.rsplit("/tests/", 1)[0]
    done = subprocess.run(script + args, cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "evo/RS" in done.stdout
    data = json.loads((tmp_path / "search_difficulty.json").read_text())
    assert data["settings"]["families"] == ["linear"] and data["rows"][0]["individuals_per_run"] == 20
    bad = subprocess.run(script + ["--families=linear,cubic"], cwd=root, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "unknown --families cubic" in bad.stderr
