"""Islands that search different task collections (the paper's mixed
setting): each island's fitnesses are measured on its own tasks only, a
migrant is re-evaluated on its new island's tasks, and the config checks its
groups."""

from __future__ import annotations

import numpy as np
import pytest

from azero_jax import experiment, reference, tasks
from azero_jax.evaluation import make_evaluator
from azero_jax.program import MemoryShape
from azero_jax.search import evolution as evo
from azero_jax.search.fec import FECSpec
from azero_jax.search.mutator import DEMO_MUTATION_TYPES, InitialPopulation, Mutator, MutatorConfig

MEM = MemoryShape(4, 3, 1, 4)
CFG = MutatorConfig(MEM, mutation_types=DEMO_MUTATION_TYPES, mutate_prob=0.9, setup_ops=["SCALAR_CONST_SET"],
                    predict_ops=["VECTOR_INNER_PRODUCT"],
                    learn_ops=["SCALAR_DIFF", "SCALAR_PRODUCT", "SCALAR_VECTOR_PRODUCT", "VECTOR_SUM"])
GROUP_A = tasks.TaskSpec(kind="scalar_linear_regression", features=4, num_train=20, num_valid=10, num_tasks=2,
                         data_seeds=(1,), param_seeds=(2,))
GROUP_B = tasks.TaskSpec(kind="scalar_linear_regression", features=4, num_train=20, num_valid=10, num_tasks=1,
                         data_seeds=(30,), param_seeds=(40,))
TASKS = tasks.make_tasks([GROUP_A, GROUP_B])
ISLAND_TASKS = [[0, 1], [2]]


def _search(migration_every: int = 0):
    ev = make_evaluator(TASKS, MEM, fec_spec=FECSpec(10, 10))
    config = evo.EvolutionConfig(population_size=8, tournament_size=3, children_per_step=4, num_islands=2,
                                 migration_every=migration_every)
    search = evo.RegularizedEvolution(config, Mutator(CFG), InitialPopulation.from_config("random", (2, 1, 4), CFG),
                                      ev, log=None, island_tasks=ISLAND_TASKS)
    return search, ev


def test_each_island_is_scored_on_its_own_tasks():
    search, _ = _search()
    state = search.run(search.init(3), max_steps=6)
    for island, task_ids in zip(state.islands, ISLAND_TASKS, strict=True):
        own = [TASKS[t] for t in task_ids]
        for program, fit in zip(island.algorithms(), island.fitnesses, strict=True):
            # FEC may reuse a cached value of a program with identical probe errors
            # (spec §9); with these tiny tasks the probe covers the whole train set.
            assert fit == pytest.approx(reference.evaluate(program, own, MEM).fitness, abs=1e-12)


def test_migrants_are_reevaluated_on_the_new_island():
    search, ev = _search(migration_every=2)
    state = search.init(5)
    for _ in range(2):
        state = search.step(state)  # the second step migrates
    for dst, island in enumerate(state.islands):
        slot = (island.next_slot - 1) % island.size
        migrant = island.program(slot)
        own = [TASKS[t] for t in ISLAND_TASKS[dst]]
        assert island.fitnesses[slot] == pytest.approx(reference.evaluate(migrant, own, MEM).fitness, abs=1e-12)
    assert ev.num_individuals == 16 + 2 * 8 + 2  # init + children + the two migrants


def test_island_tasks_must_match_the_islands():
    ev = make_evaluator(TASKS, MEM)
    config = evo.EvolutionConfig(population_size=4, tournament_size=2, num_islands=2)
    with pytest.raises(ValueError, match="one non-empty task list per island"):
        evo.RegularizedEvolution(config, Mutator(CFG), InitialPopulation.from_config("random", (2, 1, 4), CFG),
                                 ev, log=None, island_tasks=[[0, 1]])
    with pytest.raises(ValueError, match="task indices"):
        ev([InitialPopulation.from_config("random", (2, 1, 4), CFG)(np.random.default_rng(0))], tasks=[[5]])


def test_config_island_task_groups():
    entries = [dict(kind="scalar_linear_regression", features=4, num_train=20, num_valid=10, num_tasks=2),
               dict(kind="scalar_linear_regression", features=4, num_train=20, num_valid=10, num_tasks=1,
                    data_seeds=[30], param_seeds=[40])]
    base = experiment.get_preset("tiny")
    cfg = base.replace(search_tasks=entries, island_task_groups=[0, 1], num_islands=4)
    per_task, islands = cfg.island_tasks(cfg.task_specs("search"))
    assert per_task == [0, 0, 1]
    assert islands == [[0, 1], [0, 1], [2], [2]]  # the first half of the islands on group 0
    with pytest.raises(experiment.ConfigError, match="one group id per search_tasks entry"):
        base.replace(search_tasks=entries, island_task_groups=[0], num_islands=2)
    with pytest.raises(experiment.ConfigError, match="every group needs at least one island"):
        base.replace(search_tasks=entries, island_task_groups=[0, 1], num_islands=1)
    with pytest.raises(experiment.ConfigError, match="every group id"):
        base.replace(search_tasks=entries, island_task_groups=[0, 2], num_islands=3)


@pytest.mark.parametrize("backend", ["reference", "xla"])
def test_experiment_with_island_groups_runs(tmp_path, backend):
    entries = [dict(kind="scalar_linear_regression", features=4, num_train=20, num_valid=10, num_tasks=2),
               dict(kind="scalar_linear_regression", features=4, num_train=20, num_valid=10, num_tasks=1,
                    data_seeds=[30], param_seeds=[40])]
    cfg = experiment.get_preset("tiny").replace(search_tasks=entries, island_task_groups=[0, 1], num_islands=2,
                                                migration_every=2, max_experiments=1, backend=backend,
                                                children_per_step=5)
    result = experiment.run_experiments(cfg, output_dir=str(tmp_path), log=None)
    assert 0.0 <= result.search_fitness <= 1.0 and result.num_experiments == 1
