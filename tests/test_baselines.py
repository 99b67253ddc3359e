"""Baselines: the hand-written programs on a built-in binary task, tuning,
re-tuning of an evolved program's constants, and the optax models."""

from __future__ import annotations

import numpy as np
import pytest

from azero_jax import baselines as B
from azero_jax import datasets as D
from azero_jax import programs, reference
from azero_jax.program import MemoryShape

MEMORY = MemoryShape(5, 9, 2, 8)


@pytest.fixture(scope="module")
def collections(tmp_path_factory):
    search, final, _ = D.projected_collections("digits", features=8, num_search_tasks=3, num_final_tasks=3,
                                               cache_dir=str(tmp_path_factory.mktemp("cache")))
    return search, final


def test_hand_written_neural_net_beats_chance(collections):
    search, _ = collections
    result = reference.evaluate(programs.neural_net_algorithm(), search.tasks(), MEMORY, seed=0)
    assert result.fitness > 0.8, result.fitness  # chance is 0.5 (balanced classes)
    assert all(t.fitness > 0.7 for t in result.tasks)


def test_tuning_picks_best_on_select_and_reports_final(collections):
    search, final = collections
    st, ft = search.tasks(), final.tasks()
    arrays = final.arrays()
    test = B.with_test_as_valid(ft, arrays["x_test"], arrays["y_test"])
    r = B.tune_hand_written("linear", st, ft, MEMORY, trials=3, seed=1, test_tasks=test)
    assert r.trials == 3 and 0.8 < r.select_fitness <= 1.0 and 0.8 < r.final_fitness <= 1.0 and r.final_test > 0.8
    default = reference.evaluate(programs.linear_algorithm(), st, MEMORY).fitness
    assert r.select_fitness >= default
    assert set(r.to_dict()) >= {"name", "select_fitness", "final_fitness", "final_test_accuracy", "program_text"}


def test_retune_scales_constants():
    nn = programs.neural_net_algorithm()
    sites = B.tunable_constants(nn)
    assert [(c, i, f) for c, i, f in sites] == [("setup", 0, ("f1",)), ("setup", 1, ("f1",)), ("setup", 2, ("d",))]
    scaled = B.scale_constants(nn, [2.0, 1.0, 10.0], sites)
    assert scaled.setup[0].f1 == pytest.approx(0.2) and scaled.setup[2].d == pytest.approx(0.1)
    assert scaled.predict == nn.predict and scaled.learn == nn.learn
    with pytest.raises(ValueError, match="tunable hand-written"):
        B.hand_written_candidates("noop", 2, np.random.default_rng(0))


def test_optax_baselines_train(collections):
    search, final = collections
    rows = B.optax_baselines(search.arrays(), final.arrays(), hidden=8, epochs=3, batch_size=32,
                             learning_rates=(1e-2, 1e-1), seed=0)
    assert [r.name for r in rows] == ["logistic_regression_optax", "mlp_8_optax"]
    for r in rows:
        assert r.select_fitness > 0.85 and r.final_fitness > 0.85 and r.final_test > 0.85, r
    table = B.format_table([r.to_dict() for r in rows])
    assert "logistic_regression_optax" in table and "%" in table
