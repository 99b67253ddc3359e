"""analysis/plots.py: fitness.png from a real tiny run (written by the driver
at the run's end, select checks recorded), the missing-matplotlib note, the
ablation bar chart."""

from __future__ import annotations

import csv
import sys

import pytest

from azero_jax import experiment
from azero_jax.analysis import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    data = open(path, "rb").read()
    return len(data) > 100 and data.startswith(PNG_MAGIC)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Two small searches with early select checks (every improvement past
    fitness 0 takes the select test, which never passes), as in test_experiment."""
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("run")
    config = experiment.get_preset("tiny").replace(
        max_train_steps=4000, max_experiments=2, checkpoint_every_seconds=0.0,
        search_sufficient_fitness=0.0, sufficient_fitness=0.9999999)
    result = experiment.run_experiments(config, output_dir=str(out), log=None)
    return out, result


def test_the_driver_writes_fitness_png_and_select_checks(tiny_run):
    out, result = tiny_run
    assert _is_png(out / "fitness.png")
    with open(out / "select_checks.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    ends = [r for r in rows if r["kind"] == "end"]
    assert [int(r["experiment"]) for r in ends] == [1, 2]
    assert [float(r["select_fitness"]) for r in ends] == [e["select_fitness"] for e in result.experiments]
    assert any(r["kind"] == "early" for r in rows)
    for r in ends:  # the end check sits at the experiment's last individual count
        assert int(r["indivs"]) == result.experiments[int(r["experiment"]) - 1]["counters"]["individuals"]


def test_plot_progress_redraws_from_the_files(tiny_run, tmp_path):
    out, _ = tiny_run
    curves = plots.read_progress(out / "progress.csv").curves
    assert sorted(curves) == [1, 2] and all(len(c["indivs"]) >= 2 for c in curves.values())
    png = plots.plot_progress(out / "progress.csv", tmp_path / "again.png")
    assert png == tmp_path / "again.png" and _is_png(png)
    # Explicit check rows (and none) work too.
    assert _is_png(plots.plot_progress(out / "progress.csv", tmp_path / "none.png", select_checks=[]))


def test_missing_matplotlib_is_one_note_and_no_file(tiny_run, tmp_path, monkeypatch, capsys):
    out, _ = tiny_run
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    assert plots.plot_progress(out / "progress.csv", tmp_path / "f.png") is None
    assert plots.plot_ablation([("a", -0.5)], tmp_path / "a.png") is None
    printed = capsys.readouterr().out.splitlines()
    assert printed == [plots.MISSING_NOTE] * 2
    assert "pip install 'azero-jax[plot]'" in plots.MISSING_NOTE
    assert not (tmp_path / "f.png").exists() and not (tmp_path / "a.png").exists()
    notes: list[str] = []
    assert plots.plot_progress(out / "progress.csv", tmp_path / "f.png", log=notes.append) is None
    assert notes == [plots.MISSING_NOTE]


def test_plot_ablation_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [("Setup 0: s2 = 0.1", 0.0), ("Predict 0: s1 = dot(v0, v1)", -0.62), ("Learn 2: v1 = v1 + v2", -0.3),
            ("Learn 3: s3 = s3 * s2", 0.004)]
    png = plots.plot_ablation(rows, tmp_path / "ablation.png", title="linear")
    assert png == tmp_path / "ablation.png" and _is_png(png)


def test_empty_progress_writes_nothing(tmp_path):
    (tmp_path / "progress.csv").write_text(",".join(experiment.CSV_COLUMNS) + "\n")
    assert plots.plot_progress(tmp_path / "progress.csv", tmp_path / "f.png") is None
    assert not (tmp_path / "f.png").exists()
