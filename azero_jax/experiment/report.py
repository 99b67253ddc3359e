"""What a run reports: progress lines and progress.csv rows during the
search, a select_checks.csv row per select test of a search's best (early
checks and the end-of-search check), and at the end the final log lines,
best_program.json/.txt, results.json (written atomically; its content is
`ExperimentResult.to_dict`) and fitness.png (analysis/plots.py; skipped with
one note when matplotlib is missing).

select_checks.csv is a plot annotation, kept out of results.json on purpose:
early checks are not checkpointed (a failed one changes nothing), so a run
resumed mid-search may repeat one, and results.json stays identical to an
uninterrupted run's.

The progress line itself is the evolution's one printer
(`RegularizedEvolution.maybe_log_progress`: the reference's line plus
throughput and FEC hit rate); this module feeds it the run's clock and
counters and mirrors each printed line as a CSV row.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any

from azero_jax import fileio, liveness, serialization
from azero_jax.evaluation import Evaluator
from azero_jax.program import Algorithm, MemoryShape
from azero_jax.search import evolution as evolution_lib

CSV_COLUMNS = ("experiment", "indivs", "elapsed_secs", "mean", "stdev", "best_fit", "train_steps",
               "indivs_per_sec", "train_steps_per_sec", "fec_hit_rate")
CHECK_COLUMNS = ("experiment", "indivs", "search_fitness", "select_fitness", "kind")


@dataclasses.dataclass
class ExperimentResult:
    """What a run produced (also written to results.json)."""

    best_program: Algorithm
    search_fitness: float
    select_fitness: float
    final_fitness: float
    best_experiment: int
    num_experiments: int
    experiments: list[dict[str, Any]]
    counters: dict[str, int]
    elapsed_seconds: float
    random_seed: int
    memory: MemoryShape
    # Wall seconds per phase of this session (select_mutate, probe, hash,
    # cache, full, select, ...) and its CPU seconds: profiling only.
    profile: dict[str, float] = dataclasses.field(default_factory=dict)
    multiclass: bool = False  # the tasks' layout (prediction v2): what the live text is computed for

    def to_dict(self) -> dict[str, Any]:
        secs = max(self.elapsed_seconds, 1e-9)
        return {
            "search_fitness": self.search_fitness, "select_fitness": self.select_fitness,
            "final_fitness": self.final_fitness, "best_experiment": self.best_experiment,
            "num_experiments": self.num_experiments, "experiments": self.experiments,
            "counters": self.counters, "elapsed_seconds": self.elapsed_seconds,
            "individuals_per_second": self.counters.get("individuals", 0) / secs,
            "train_steps_per_second": self.counters.get("train_steps", 0) / secs,
            "random_seed": self.random_seed,
            "profile": self.profile,
            "interpreter_use": interpreter_use(self.profile),
            "best_program": serialization.algorithm_to_dict(self.best_program, self.memory),
            "best_program_text": serialization.format_algorithm(self.best_program),
            "best_program_live_text": serialization.format_algorithm(
                liveness.strip_dead_code(self.best_program, keep_positions=False, multiclass=self.multiclass)),
        }


def interpreter_use(profile: dict[str, float]) -> dict[str, float] | None:
    """How much of its interpreter's speed the search used (this session's
    searches): the search's train steps per wall second against the
    interpreter's own rate on full batches of the search's programs (the
    driver's calibration after each search); None without a calibration."""
    if not profile.get("calibration_seconds") or not profile.get("search"):
        return None
    search = profile.get("search_train_steps", 0.0) / profile["search"]
    interpreter = profile["calibration_train_steps"] / profile["calibration_seconds"]
    out = {"search_train_steps_per_second": search, "interpreter_train_steps_per_second": interpreter,
           "fraction": search / interpreter if interpreter else 0.0}
    if profile.get("interpreter") and profile.get("search_individuals"):
        # Host time per child: the search's wall time outside the interpreter's calls.
        out["host_us_per_individual"] = 1e6 * (profile["search"] - profile["interpreter"]) / \
            profile["search_individuals"]
    return out


def reset_csv(path: str, rows: int) -> None:
    """Keeps the header and the first `rows` rows of progress.csv (a resume
    drops the rows written after its checkpoint: they are replayed), or
    starts the file with its header."""
    lines: list[str] = []
    try:
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                lines = f.readlines()
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(lines[:1 + rows] if lines else [",".join(CSV_COLUMNS) + "\n"])
    except OSError as e:
        raise fileio.with_path(e, path) from None


def reset_checks(path: str, experiments: int) -> None:
    """Keeps the header and the select_checks.csv rows of the first
    `experiments` (completed) experiments, or starts the file with its
    header (a resume redoes the current experiment's checks)."""
    rows: list[list[str]] = []
    try:
        if os.path.exists(path):
            with open(path, encoding="utf-8", newline="") as f:
                rows = [r for r in list(csv.reader(f))[1:] if r and r[0].isdigit() and int(r[0]) <= experiments]
        with open(path, "w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows([list(CHECK_COLUMNS), *rows])
    except OSError as e:
        raise fileio.with_path(e, path) from None


def log_select_check(path: str, *, experiment: int, indivs: int, search_fitness: float, select_fitness: float,
                     kind: str) -> None:
    """One select_checks.csv row: a select test of a search's best program
    after `indivs` individuals of experiment `experiment`; kind "early"
    (search_sufficient_fitness) or "end" (the end-of-search check)."""
    try:
        _append_row(path, [experiment, indivs, repr(float(search_fitness)), repr(float(select_fitness)), kind])
    except OSError as e:
        raise fileio.with_path(e, path) from None


def log_progress(evo: evolution_lib.RegularizedEvolution, state: evolution_lib.EvolutionState,
                 evaluator: Evaluator, *, log: Callable[[str], None], csv_path: str, experiment: int,
                 elapsed_secs: float, totals: Mapping[str, int]) -> bool:
    """The progress line (at most every progress_every individuals) with the
    run's throughput (`totals` of the finished experiments plus this one's
    evaluator) and this evaluator's FEC hit rate, and its CSV row. True when
    a row was written."""
    own = evaluator.counters()
    counters = {"individuals": totals["individuals"] + own.individuals,
                "train_steps": totals["train_steps"] + own.train_steps,
                "fec_hits": own.fec_hits, "fec_misses": own.fec_misses}
    shown = evo.maybe_log_progress(state, log=log, elapsed_secs=elapsed_secs, counters=counters)
    if shown is None:
        return False
    try:
        _append_row(csv_path, [experiment, shown["indivs"], f"{shown['elapsed_secs']:.3f}", repr(shown["mean"]),
                                repr(shown["stdev"]), repr(shown["best_fit"]), own.train_steps,
                                f"{shown['indivs_per_sec']:.3f}", f"{shown['train_steps_per_sec']:.3f}",
                                f"{shown['fec_hit_rate']:.6f}"])
    except OSError as e:
        raise fileio.with_path(e, csv_path) from None
    return True


def _append_row(path: str, row: list[Any]) -> None:
    with open(path, "a", encoding="utf-8", newline="") as f:
        csv.writer(f).writerow(row)


def log_final(log: Callable[[str], None], final_fitness: float, best_program: Algorithm) -> None:
    """The reference's closing lines: the final fitness and the program."""
    log(f"Final evaluation fitness (on unseen data) = {final_fitness:.6f}")
    log("Algorithm found:\n" + serialization.format_algorithm(best_program).rstrip("\n"))


def write_outputs(output_dir: str, best_program: Algorithm, memory: MemoryShape, final_fitness: float,
                  results: dict[str, Any], *, log: Callable[[str], None]) -> None:
    """The end of a run: the final fitness and the program in the log,
    best_program.json/.txt, results.json (`results`) and fitness.png in
    `output_dir`."""
    log_final(log, final_fitness, best_program)
    serialization.save_algorithm(os.path.join(output_dir, "best_program.json"), best_program, memory)
    serialization.save_algorithm(os.path.join(output_dir, "best_program.txt"), best_program)
    fileio.atomic_write_json(os.path.join(output_dir, "results.json"), results)
    write_plot(output_dir, log=log)


def write_plot(output_dir: str, *, log: Callable[[str], None]) -> str | None:
    """fitness.png from `output_dir`'s progress.csv and select_checks.csv;
    its path, or None (one note in the log when matplotlib is missing)."""
    from azero_jax.analysis import plots  # matplotlib itself is imported only when plotting

    png = os.path.join(output_dir, "fitness.png")
    try:
        written = plots.plot_progress(os.path.join(output_dir, "progress.csv"), png, log=log)
    except OSError as e:
        raise fileio.with_path(e, png) from None
    return None if written is None else str(written)
