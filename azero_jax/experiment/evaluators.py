"""The experiment's evaluators: the config's backend and settings turned
into `azero_jax.evaluation` evaluators, and their checkpoint state.

The driver builds, saves and restores evaluators only through the functions
here, and those only through the `Evaluator` contract
(`azero_jax.evaluation.base`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from azero_jax import evaluation
from azero_jax import fitness as fitness_lib
from azero_jax import programs as programs_lib
from azero_jax import tasks as tasks_lib
from azero_jax.program import COMPONENTS, Algorithm, MemoryShape
from azero_jax.search import mutator as mutator_lib
from azero_jax.search.array_mutator import ArrayMutator
from azero_jax.search.evolution import RegularizedEvolution
from azero_jax.search.fec import FECSpec
from azero_jax.search.train_budget import TrainBudget

if TYPE_CHECKING:
    from azero_jax.experiment.config import ExperimentConfig


def backend_options(config: ExperimentConfig, task_groups: Sequence[int] | None = None) -> dict[str, Any]:
    """The batched backend's compile-time options for this config: the ops
    the interpreter is specialized on (the allowed ops plus those of a
    hand-written initial program) and the island task groups."""
    if config.backend == "reference":
        return {}
    from azero_jax.evaluation.xla_backend import op_subsets_for  # imports JAX only when used

    extra = []
    if config.initial_population != "random":
        extra.append(programs_lib.hand_written(config.initial_population, config.init_sizes))
    return {"op_subsets": op_subsets_for({c: getattr(config, f"{c}_ops") for c in COMPONENTS}, *extra),
            "task_groups": task_groups}


def make_evaluator(config: ExperimentConfig, task_list: Sequence[tasks_lib.Task], memory: MemoryShape, *,
                   seed: int, fec_spec: FECSpec | None = None, train_budget: TrainBudget | None = None,
                   combination: str = fitness_lib.MEAN, hurdles: bool = False,
                   task_groups: Sequence[int] | None = None) -> evaluation.CachedEvaluator:
    """The config's backend as an evaluator (search: FEC, budget and hurdles
    as configured; select/final: none of them). `task_groups`: the island
    task group of each task (batched backends: one call per group)."""
    return evaluation.make_evaluator(
        task_list, memory, backend=config.backend, dtype=config.compute_dtype(), seed=seed, fec_spec=fec_spec,
        train_budget=train_budget, combination=combination, max_abs_error=config.max_abs_error,
        hurdle_tasks=config.hurdle_tasks if hurdles else 0, hurdle_percentile=config.hurdle_percentile,
        **backend_options(config, task_groups))


def build_search(config: ExperimentConfig, search_specs: Sequence[tasks_lib.TaskSpec],
                 search_tasks: Sequence[tasks_lib.Task], *, evaluator_seed: int,
                 island: int | None = None) -> tuple[evaluation.Evaluator, RegularizedEvolution]:
    """The evaluator and the regularized evolution of one search on
    `search_tasks` (made from `search_specs`): the driver's searcher, with all
    the config's islands in it, or (`island` = g) the single-island searcher
    of global island g that `azero-search-distributed` runs (its own
    evaluator, no migration inside; the island's tasks when islands search
    different task groups). The vectorized mutator over array-held
    populations; no progress log of its own (the callers print progress)."""
    groups = config.island_tasks(search_specs)
    memory = config.memory_shape(search_tasks[0].features)
    budget = None if config.train_budget is None else config.train_budget.build(config.init_sizes)
    evaluator = make_evaluator(
        config, search_tasks, memory, seed=evaluator_seed, fec_spec=config.fec, train_budget=budget,
        combination=config.fitness_combination, hurdles=True, task_groups=None if groups is None else groups[0])
    mutator_cfg = config.mutator_config(memory.features)
    generator = mutator_lib.InitialPopulation.from_config(config.initial_population, config.init_sizes, mutator_cfg)
    evo_cfg = config.evolution_config()
    island_tasks = None if groups is None else groups[1]
    if island is not None:
        evo_cfg = dataclasses.replace(evo_cfg, num_islands=1, migration_every=0)
        island_tasks = None if groups is None else [groups[1][island]]
    evo = RegularizedEvolution(evo_cfg, ArrayMutator(mutator_cfg), generator, evaluator, log=None,
                               island_tasks=island_tasks)
    return evaluator, evo


def evaluate_program(program: Algorithm, task_list: Sequence[tasks_lib.Task], memory: MemoryShape, *,
                     seed: int, max_abs_error: float = fitness_lib.MAX_ABS_ERROR,
                     config: ExperimentConfig | None = None) -> float:
    """Select/final evaluation: MEAN combination, no FEC, no train budget, on
    the config's backend (the reference when no config is given)."""
    if config is None:
        return evaluation.evaluate_program(program, task_list, memory, seed=seed, max_abs_error=max_abs_error)
    evaluator = make_evaluator(config.replace(max_abs_error=max_abs_error), task_list, memory, seed=seed)
    return float(evaluator.evaluate([program])[0])


def evaluator_state(evaluator: evaluation.Evaluator) -> dict[str, Any]:
    """The evaluator's part of a checkpoint (JSON-able): its counters and FEC cache."""
    return evaluator.to_state()


def restore_evaluator(evaluator: evaluation.Evaluator, saved: dict[str, Any]) -> None:
    """Puts an `evaluator_state` back into a freshly made evaluator."""
    evaluator.load_state(saved)
