"""Plots of a run: `fitness.png` from progress.csv (and its select checks),
and an ablation as a bar chart.

Design:
- matplotlib is optional (the `plot` extra): it is imported inside the
  functions, never at module import, so the search and its entry points run
  without it. When it is missing a plot function prints ONE line
  (`MISSING_NOTE`) and returns None instead of failing: a plot is a
  convenience, never a reason to lose a finished run.
- The non-interactive Agg backend is selected before pyplot is imported, so
  plotting works on headless machines and never opens a window (and never
  changes the backend of a process that already imported pyplot).
- Inputs are plain files and tuples (progress.csv, select_checks.csv, a
  sequence of (label, delta)), so the plots can be redrawn from a finished
  run's directory without the run's Python objects.
"""

from __future__ import annotations

import csv
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

MISSING_NOTE = "matplotlib is not installed: pip install 'azero-jax[plot]' to get fitness.png"
SELECT_CHECKS_FILE = "select_checks.csv"  # beside progress.csv (written by experiment/report.py)


def _pyplot(log: Callable[[str], None] | None) -> Any | None:
    """matplotlib.pyplot on the Agg backend, or None (after the one note)."""
    try:
        import matplotlib
    except ImportError:
        (log or print)(MISSING_NOTE)
        return None
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _float(value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


class Progress(NamedTuple):
    """A progress.csv's curves: `group` is the column they are grouped by
    ("experiment": the driver's runs; "island": `azero-search-distributed`),
    `curves` {group value: {"indivs", "mean", "best_fit": [...]}} in file
    order (x = individuals of that search or island)."""

    group: str
    curves: dict[int, dict[str, list[float]]]


def read_progress(progress_csv: str | os.PathLike) -> Progress:
    """progress.csv's curves, one per experiment (or island)."""
    curves: dict[int, dict[str, list[float]]] = {}
    with open(progress_csv, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        group = "experiment" if "experiment" in (reader.fieldnames or ()) else "island"
        for row in reader:
            curve = curves.setdefault(int(row[group]), {"indivs": [], "mean": [], "best_fit": []})
            for key in curve:
                curve[key].append(_float(row[key]))
    return Progress(group, curves)


def read_select_checks(path: str | os.PathLike) -> list[dict[str, Any]]:
    """select_checks.csv rows (experiment, indivs, search_fitness,
    select_fitness, kind = "early" | "end"); [] when the file is absent."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return [{"experiment": int(r["experiment"]), "indivs": int(r["indivs"]),
                 "search_fitness": _float(r["search_fitness"]), "select_fitness": _float(r["select_fitness"]),
                 "kind": r["kind"]} for r in csv.DictReader(f)]


def plot_progress(progress_csv: str | os.PathLike, output_png: str | os.PathLike, *,
                  select_checks: Iterable[dict[str, Any]] | str | os.PathLike | None = None,
                  log: Callable[[str], None] | None = None, title: str | None = None) -> Path | None:
    """Writes the fitness curves of a run: per experiment (search) the best
    and the mean search fitness over the population's individuals against
    the individuals searched, with the select checks marked at their
    individual count (their select fitness: filled = the end-of-search check,
    hollow = an early check, see `search_sufficient_fitness`); a dotted
    segment joins each best curve's last progress row to the search's end
    (the end check's individuals and search fitness).

    select_checks: rows as `read_select_checks` gives them, or a path to
      such a CSV; None reads select_checks.csv beside `progress_csv` if there.
    log: where the missing-matplotlib note goes (default: print).
    Returns the PNG's path, or None when matplotlib is missing or
    progress.csv has no rows (nothing written).
    """
    progress = read_progress(progress_csv)
    curves, group = progress.curves, "search" if progress.group == "experiment" else "island"
    if select_checks is None:
        select_checks = os.path.join(os.path.dirname(os.fspath(progress_csv)), SELECT_CHECKS_FILE)
    if isinstance(select_checks, (str, os.PathLike)):
        select_checks = read_select_checks(select_checks)
    checks = list(select_checks)
    if not curves:
        return None
    plt = _pyplot(log)
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    many = len(curves) > 1
    labelled: set[str] = set()
    for i, (exp, curve) in enumerate(sorted(curves.items())):
        color = colors[i % len(colors)]
        suffix = f" ({group} {exp})" if many else ""
        ax.plot(curve["indivs"], curve["best_fit"], color=color, lw=1.6, label=f"best{suffix}" if i < 6 else None)
        # progress rows come every progress_every individuals; the search's end (its best search
        # fitness at its last individual, from the end check) closes the best curve, dotted.
        end = [c for c in checks if c["experiment"] == exp and c["kind"] == "end" and curve["indivs"]
               and c["indivs"] > curve["indivs"][-1]]
        if end:
            ax.plot([curve["indivs"][-1], end[-1]["indivs"]], [curve["best_fit"][-1], end[-1]["search_fitness"]],
                    color=color, lw=1.6, ls=":")
        ax.plot(curve["indivs"], curve["mean"], color=color, lw=1.0, ls="--",
                label=f"mean{suffix}" if i < 6 else None)
        for kind, face in (("end", color), ("early", "none")):
            mine = [c for c in checks if c["experiment"] == exp and c["kind"] == kind]
            if mine:
                ax.scatter([c["indivs"] for c in mine], [c["select_fitness"] for c in mine], s=40, zorder=3,
                           marker="o" if kind == "end" else "D", facecolors=face, edgecolors=color,
                           label=None if kind in labelled else f"select check ({kind})")
                labelled.add(kind)
    ax.set_xlabel(f"individuals (per {group})")
    ax.set_ylabel("fitness")
    ax.set_title(title or "search fitness: best and mean over the population; markers: select fitness")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    fig.tight_layout()
    out = Path(output_png)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_ablation(rows: Sequence[tuple[str, float]], output_png: str | os.PathLike, *,
                  log: Callable[[str], None] | None = None, title: str | None = None,
                  ylabel: str = "fitness change when removed") -> Path | None:
    """An ablation as a horizontal bar chart: `rows` is a sequence of
    (label, delta), e.g. ("Learn 3: s2 = s0 * s1", -0.41) for the change of
    fitness when that instruction is removed (negative = the program needs
    it); bars in the given order, top to bottom. Returns the PNG's path, or
    None when matplotlib is missing."""
    rows = [(str(label), float(delta)) for label, delta in rows]
    plt = _pyplot(log)
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(8, max(2.0, 0.35 * len(rows) + 1.2)))
    labels = [label for label, _ in rows]
    deltas = [delta for _, delta in rows]
    ax.barh(range(len(rows)), deltas, color=["tab:red" if d < 0 else "tab:blue" for d in deltas])
    ax.set_yticks(range(len(rows)), labels, fontsize="small", family="monospace")
    ax.invert_yaxis()
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_xlabel(ylabel)
    ax.set_title(title or "ablation")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    out = Path(output_png)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
