"""What a run reports: progress lines and progress.csv rows during the
search, and at the end the final log lines, best_program.json/.txt and
results.json (written atomically).

The progress line itself is the evolution's one printer
(`RegularizedEvolution.maybe_log_progress`: the reference's line plus
throughput and FEC hit rate); this module feeds it the run's clock and
counters and mirrors each printed line as a CSV row.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Mapping
from typing import Any

from azero_jax import fileio, serialization
from azero_jax.evaluation import Evaluator
from azero_jax.program import Algorithm, MemoryShape
from azero_jax.search import evolution as evolution_lib

CSV_COLUMNS = ("experiment", "indivs", "elapsed_secs", "mean", "stdev", "best_fit", "train_steps",
               "indivs_per_sec", "train_steps_per_sec", "fec_hit_rate")


def reset_csv(path: str, rows: int) -> None:
    """Keeps the header and the first `rows` rows of progress.csv (a resume
    drops the rows written after its checkpoint: they are replayed), or
    starts the file with its header."""
    lines: list[str] = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines[:1 + rows] if lines else [",".join(CSV_COLUMNS) + "\n"])


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
    with open(csv_path, "a", encoding="utf-8", newline="") as f:
        csv.writer(f).writerow([experiment, shown["indivs"], f"{shown['elapsed_secs']:.3f}", repr(shown["mean"]),
                                repr(shown["stdev"]), repr(shown["best_fit"]), own.train_steps,
                                f"{shown['indivs_per_sec']:.3f}", f"{shown['train_steps_per_sec']:.3f}",
                                f"{shown['fec_hit_rate']:.6f}"])
    return True


def write_outputs(output_dir: str, best_program: Algorithm, memory: MemoryShape, final_fitness: float,
                  results: dict[str, Any], *, log: Callable[[str], None]) -> None:
    """The end of a run: the final fitness and the program in the log,
    best_program.json/.txt and results.json (`results`) in `output_dir`."""
    log(f"Final evaluation fitness (on unseen data) = {final_fitness:.6f}")
    log("Algorithm found:\n" + serialization.format_algorithm(best_program).rstrip("\n"))
    serialization.save_algorithm(os.path.join(output_dir, "best_program.json"), best_program, memory)
    serialization.save_algorithm(os.path.join(output_dir, "best_program.txt"), best_program)
    fileio.atomic_write_json(os.path.join(output_dir, "results.json"), results)
