"""Checkpoint/resume of a run: what of a run a checkpoint holds
(`run_state`), and its restore (`restore_run`, `resume_experiment`) with
schema checks of every nested part, so that a malformed checkpoint is
reported as one CheckpointError naming the way out (`FRESH_START`) and not as
a crash later; and a finished run's result from its results.json
(`finished_result`), so that a finished run resumed with the same config
reprints it without recomputing.

The driver (driver.py) owns the run (`_Run`) and when it checkpoints; this
module only maps a run to its checkpoint state and back.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

from azero_jax import checkpoint as checkpoint_lib
from azero_jax import serialization
from azero_jax import tasks as tasks_lib
from azero_jax.evaluation import Evaluator
from azero_jax.experiment import report
from azero_jax.experiment.config import ExperimentConfig
from azero_jax.experiment.evaluators import evaluator_state, restore_evaluator
from azero_jax.experiment.report import ExperimentResult
from azero_jax.search import evolution as evolution_lib

if TYPE_CHECKING:
    from azero_jax.experiment.driver import _Run

COUNTER_KEYS = ("individuals", "train_steps", "full_evaluations", "fec_hits", "fec_misses", "hurdle_stops")
FRESH_START = ("to discard it and start afresh: --overwrite (azero-search / cifar_binary: without --resume; "
               "linear_regression: --resume=no --overwrite), or another --output_dir")


def run_state(run: _Run, evolution_state: evolution_lib.EvolutionState | None = None,
              evaluator: Evaluator | None = None, plan: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint state of `run`; with `evolution_state` and `evaluator`
    (and the plan) also its current experiment, mid-search."""
    assert run.main_rng is not None
    current = None
    if evolution_state is not None and evaluator is not None:
        current = {"plan": plan, "evolution": evolution_lib.state_to_dict(evolution_state),
                   "evaluator": evaluator_state(evaluator)}
    return {"random_seed": run.random_seed,
            "main_rng": evolution_lib.jsonable(run.main_rng.bit_generator.state),
            "experiment_index": run.experiment_index, "experiments": run.experiments, "best": run.best,
            "totals": run.totals, "elapsed_seconds": run.elapsed(), "progress_rows": run.progress_rows,
            "current": current}


def restore_run(run: _Run) -> None:
    """Loads `run`'s checkpoint into it (CheckpointError, naming the way out,
    for a missing, foreign, mismatched or malformed one) and trims
    progress.csv to the checkpointed rows."""
    try:
        state = checkpoint_lib.load(run.ckpt_path, config_digest=run.digest)
    except checkpoint_lib.CheckpointError as e:
        if "does not exist" in str(e):
            raise
        raise checkpoint_lib.CheckpointError(f"{e}; {FRESH_START}") from None
    try:
        run.random_seed = int(state["random_seed"])
        if run.config.random_seed and run.random_seed != run.config.random_seed:
            raise checkpoint_lib.CheckpointError(
                f"checkpoint {run.ckpt_path!r} was written with random_seed {run.random_seed}, "
                f"but the config asks for {run.config.random_seed}")
        run.main_rng = evolution_lib.make_rng(state["main_rng"])
        run.experiment_index = int(state["experiment_index"])
        run.experiments = list(state["experiments"])
        run.best = state["best"]
        run.totals = {k: int(state["totals"].get(k, 0)) for k in COUNTER_KEYS}  # hurdle_stops: newer than some checkpoints
        run.elapsed_before = float(state["elapsed_seconds"])
        run.progress_rows = int(state["progress_rows"])
        run.current = state["current"]
        # Schema checks of the nested parts, so a malformed checkpoint is
        # reported here and not as a crash later.
        if not isinstance(run.experiments, list) or (run.best is not None and not isinstance(run.best, dict)):
            raise TypeError("experiments / best have the wrong type")
        if run.best is not None:
            serialization.algorithm_from_dict(run.best["program"], source="checkpoint best program")
            float(run.best["search_fitness"]), float(run.best["select_fitness"]), int(run.best["experiment"])
        if run.current is not None:
            if not isinstance(run.current, dict) or not isinstance(run.current.get("evaluator"), dict):
                raise TypeError("current experiment has the wrong type")
            tasks_lib.TaskSpec(**run.current["plan"]["search_tasks"][0])
            evolution_lib.state_from_dict(run.current["evolution"])
        if run.experiment_index < 0 or run.progress_rows < 0 or (run.experiment_index and run.best is None):
            raise ValueError("negative counts or no best program after an experiment")
    except checkpoint_lib.CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as e:
        raise checkpoint_lib.CheckpointError(f"checkpoint {run.ckpt_path!r} is corrupt (bad field: {e!r}); "
                                             f"{FRESH_START}") from None
    run.session_start = time.monotonic()
    report.reset_csv(run.csv_path, run.progress_rows)


def resume_experiment(run: _Run) -> tuple[dict[str, Any], Evaluator, evolution_lib.RegularizedEvolution,
                                          evolution_lib.EvolutionState]:
    """The checkpointed current experiment of `run`, rebuilt: (plan,
    evaluator, evolution, state); a malformed one is a CheckpointError."""
    plan = run.current["plan"]
    try:
        evaluator, evo = run.build(plan)
    except (KeyError, TypeError, IndexError, AttributeError) as e:
        raise checkpoint_lib.CheckpointError(
            f"checkpoint {run.ckpt_path!r} is corrupt (its current experiment's plan: {e!r}); "
            f"{FRESH_START}") from None
    try:
        restore_evaluator(evaluator, run.current["evaluator"])
        state = evolution_lib.state_from_dict(run.current["evolution"])
        check_population_shape(state, run.config)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise checkpoint_lib.CheckpointError(
            f"checkpoint {run.ckpt_path!r} is corrupt (its current experiment: {e!r}); {FRESH_START}") from None
    run.log(f"experiment {run.experiment_index + 1}: resumed at indivs={state.num_individuals}, "
            f"train_steps={evaluator.counters().train_steps}")
    run.current = None
    return plan, evaluator, evo, state


def check_population_shape(state: evolution_lib.EvolutionState, config: ExperimentConfig) -> None:
    """ValueError unless the checkpointed population has the config's island
    count and population size."""
    if len(state.islands) != config.num_islands:
        raise ValueError(f"{len(state.islands)} islands, the config has {config.num_islands}")
    for island in state.islands:
        p = config.population_size
        if island.size != p or island.fitnesses.shape != (p,) or not 0 <= island.next_slot < p:
            raise ValueError(f"an island of {island.size} programs / {island.fitnesses.shape} fitnesses / "
                             f"next slot {island.next_slot}, the population size is {p}")


def finished_result(run: _Run, config: ExperimentConfig, output_dir: str) -> ExperimentResult | None:
    """The result of a finished run from its results.json, when that file
    was written by this very config (else None: the caller recomputes)."""
    path = os.path.join(output_dir, "results.json")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict) or data.get("config") != config.to_dict():
            return None
        program, memory = serialization.algorithm_and_memory_from_dict(data["best_program"], source=path)
        result = ExperimentResult(
            best_program=program, search_fitness=float(data["search_fitness"]),
            select_fitness=float(data["select_fitness"]), final_fitness=float(data["final_fitness"]),
            best_experiment=int(data["best_experiment"]), num_experiments=int(data["num_experiments"]),
            experiments=list(data["experiments"]), counters=dict(data["counters"]),
            elapsed_seconds=float(data["elapsed_seconds"]), random_seed=int(data["random_seed"]),
            memory=memory or config.memory_shape(1), profile=dict(data.get("profile") or {}),
            multiclass=config.multiclass())
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    if result.num_experiments != run.experiment_index:
        return None
    run.log(f"this run is already finished: its results from {path} (nothing recomputed)")
    report.log_final(run.log, result.final_fitness, result.best_program)
    return result
