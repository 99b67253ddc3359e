"""The search on the batched JAX evaluator: parity with the reference
evaluator, FEC semantics through the batched probe, a small linear-regression
search, determinism of whole runs, hurdles.

All JAX tests share one task shape (3 linear tasks, F=4, 100 train / 100
valid), one op set and batch size 32, so the interpreter compiles only a
couple of times for the whole file.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from azero_jax import experiment, reference, tasks
from azero_jax import programs as programs_lib
from azero_jax.evaluation import CachedEvaluator, Jobs, make_evaluator
from azero_jax.evaluation.xla_backend import XlaBackend, op_subsets_for
from azero_jax.program import MemoryShape, make_instruction
from azero_jax.search import evolution as evo
from azero_jax.search.array_mutator import ArrayMutator
from azero_jax.search.fec import FECSpec
from azero_jax.search.mutator import DEMO_MUTATION_TYPES, InitialPopulation, Mutator, MutatorConfig
from azero_jax.search.train_budget import TrainBudget

MEM = MemoryShape(4, 3, 1, 4)
OPS = dict(setup_ops=["SCALAR_CONST_SET"], predict_ops=["VECTOR_INNER_PRODUCT"],
           learn_ops=["SCALAR_DIFF", "SCALAR_PRODUCT", "SCALAR_VECTOR_PRODUCT", "VECTOR_SUM"])
SPEC = dict(kind="linear", features=4, num_train=100, num_valid=100, num_tasks=3)
TASKS = tasks.make_tasks(tasks.TaskSpec(**SPEC))
MCFG = MutatorConfig(MEM, mutation_types=DEMO_MUTATION_TYPES, mutate_prob=0.9, **OPS)
SUBSETS = op_subsets_for({c: MCFG.ops(c) for c in ("setup", "predict", "learn")})
LINEAR = programs_lib.linear_algorithm((2, 1, 4), learning_rate=0.1)


def jax_evaluator(**kw) -> CachedEvaluator:
    return make_evaluator(TASKS, MEM, backend="xla", op_subsets=SUBSETS, chunk=32, **kw)


def random_programs(n: int, seed: int = 0):
    gen = InitialPopulation.from_config("random", (2, 1, 4), MCFG)
    rng = np.random.default_rng(seed)
    return [gen(rng) for _ in range(n)]


# ------------------------------------------------------------- parity --

def test_full_and_probe_match_reference_evaluator():
    """float64: per (program, task) the same fitness (up to summation-order
    ulps of dot) and exactly the same train steps; the train budget's
    zero-example jobs give the minimum fitness without running."""
    programs = random_programs(20) + [LINEAR, programs_lib.linear_algorithm((2, 1, 4), learning_rate=0.01)]
    pairs = [(p, t) for p in range(len(programs)) for t in range(3)] + [(0, 1)]
    counts = [100 if (p + t) % 7 else 37 for p, t in pairs[:-1]] + [0]
    jobs = Jobs([p for p, _ in pairs], [t for _, t in pairs], counts, [5] * len(pairs))
    fitness, steps = jax_evaluator(seed=5).full(programs, jobs)
    for j, (p, t) in enumerate(pairs):
        expected = reference.evaluate_task(programs[p], TASKS[t], MEM, seed=5, num_train_examples=counts[j])
        if counts[j] == 0:
            assert (fitness[j], steps[j]) == (0.0, 0)
            continue
        assert fitness[j] == pytest.approx(expected.fitness, rel=0, abs=1e-12)
        assert steps[j] == expected.train_steps
    # Probe train steps are exact; keys agree wherever the errors are bit-equal (almost all here).
    fec = FECSpec(10, 10)
    keys_j, steps_j = jax_evaluator(fec_spec=fec).probe_keys(programs, jobs)
    keys_r, steps_r = make_evaluator(TASKS, MEM, fec_spec=fec).probe_keys(programs, jobs)
    np.testing.assert_array_equal(steps_j, steps_r)
    assert np.mean(keys_j == keys_r) > 0.8


def test_whole_batch_matches_reference_with_budget_and_fec():
    programs = random_programs(12, seed=1) + [LINEAR] * 3
    budget = TrainBudget.neural_net((2, 1, 4), threshold_factor=0.25)  # rejects the longest programs
    kw = dict(fec_spec=FECSpec(10, 10), train_budget=budget)
    ev_j, ev_r = jax_evaluator(**kw), make_evaluator(TASKS, MEM, **kw)
    got, want = ev_j(programs), ev_r(programs)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert ev_j.fec_hits >= 6  # the two repeats of LINEAR hit on every task


# ------------------------------------------------------------------ FEC --

def test_fec_identical_and_dead_code_hit():
    ev = jax_evaluator(fec_spec=FECSpec(10, 10))
    first = ev([LINEAR])
    assert (ev.fec_misses, ev.fec_hits, ev.num_full_evaluations) == (3, 0, 3)
    assert ev([LINEAR]) == first and ev.fec_hits == 3
    # Dead code: Setup also sets s3, which Learn overwrites before reading it.
    dead = LINEAR.replace(setup=LINEAR.setup + (make_instruction("SCALAR_CONST_SET", out=3, d=0.7),))
    assert dead != LINEAR
    assert ev([dead]) == first
    assert (ev.fec_hits, ev.num_full_evaluations) == (6, 3)
    # A functional change misses.
    ev([programs_lib.linear_algorithm((2, 1, 4), learning_rate=0.05)])
    assert ev.num_full_evaluations == 6


def test_fec_forgets_after_100_hits_and_evicts_lru():
    ev = jax_evaluator(fec_spec=FECSpec(10, 10, forget_every=100))
    values = ev([LINEAR] * 101)
    # Insert counts 1, 99 hits reach 100 and erase the entry: the 101st is a miss.
    assert (ev.fec_hits, ev.num_full_evaluations) == (99 * 3, 2 * 3)
    assert len(set(values)) == 1
    a, b, c = (programs_lib.linear_algorithm((2, 1, 4), learning_rate=lr) for lr in (0.1, 0.05, 0.02))
    ev = jax_evaluator(fec_spec=FECSpec(10, 10, cache_size=6, forget_every=0))  # room for 2 programs x 3 tasks
    for program in (a, b, a):  # a is now the most recently used
        ev([program])
    assert ev.num_full_evaluations == 6
    ev([c])  # evicts b (least recently used), keeps a
    ev([a])
    assert ev.num_full_evaluations == 9
    ev([b])
    assert ev.num_full_evaluations == 12


def _search(evaluator, population: int = 32, children: int = 32) -> evo.RegularizedEvolution:
    gen = InitialPopulation.from_config("random", (2, 1, 4), MCFG)
    config = evo.EvolutionConfig(population_size=population, tournament_size=5, children_per_step=children,
                                 progress_every=10**9)
    return evo.RegularizedEvolution(config, Mutator(MCFG), gen, evaluator, log=None)


def test_search_with_fec_on_and_off_reaches_the_same_best():
    results = []
    for fec in (FECSpec(10, 10), None):
        ev = jax_evaluator(fec_spec=fec)
        search = _search(ev)
        state = search.run(search.init(4), max_steps=20)
        results.append((evo.best_of_population(state), ev))
    (best_on, fit_on), ev_on = results[0]
    (best_off, fit_off), ev_off = results[1]
    assert fit_on == pytest.approx(fit_off, abs=1e-12) and best_on == best_off
    assert ev_on.fec_hits > 0 and ev_on.num_full_evaluations < ev_off.num_full_evaluations


def test_probe_memo_changes_nothing_but_the_probes_run():
    """Array populations (the driver's ArrayMutator): a search with the
    live-code probe memo gives exactly the search without it (populations,
    fitnesses, FEC cache, every counter), while skipping probes."""
    runs = []
    for memo in (True, False):
        ev = jax_evaluator(fec_spec=FECSpec(10, 10), probe_memo=memo)
        gen = InitialPopulation.from_config("random", (6, 1, 6), MCFG)  # room for dead code
        config = evo.EvolutionConfig(population_size=32, tournament_size=5, children_per_step=32,
                                     progress_every=10**9)
        search = evo.RegularizedEvolution(config, ArrayMutator(MCFG), gen, ev, log=None)
        state = search.run(search.init(7), max_steps=12)
        runs.append((evo.state_to_dict(state), ev.to_state(), ev.counters(), ev.num_probes_skipped))
    (state_on, ev_on, counters_on, skipped), (state_off, ev_off, counters_off, none) = runs
    assert state_on == state_off and ev_on == ev_off and counters_on == counters_off
    assert none == 0 and skipped > 0.2 * counters_on.individuals * len(TASKS)


# --------------------------------------------------------- small search --

def test_small_linear_regression_search_finds_a_learner():
    """Reduced config: the SGD linear learner with a far too small learning
    rate and a broken Learn (the weight update writes v2 instead of v1, so it
    learns nothing). Evolution must repair the instruction and tune the rate:
    it finds a program with fitness > 0.999 in a few thousand children."""
    broken = programs_lib.linear_algorithm((2, 1, 4), learning_rate=0.002)
    broken = broken.replace(learn=broken.learn[:3] + (make_instruction("VECTOR_SUM", in1=1, in2=2, out=2),))
    ev = jax_evaluator(fec_spec=FECSpec(10, 10))
    assert ev([broken])[0] < 0.5
    config = evo.EvolutionConfig(population_size=100, tournament_size=10, children_per_step=32, progress_every=10**9)
    search = evo.RegularizedEvolution(config, Mutator(MCFG), lambda rng: broken, ev, log=None)
    state = search.run(search.init(0), max_seconds=40,
                       should_stop=lambda s: evo.best_of_population(s)[1] > 0.999)
    program, fit = evo.best_of_population(state)
    assert fit > 0.999, (fit, state.num_individuals)
    # Confirmed by the reference interpreter, on the search tasks and on unseen ones.
    assert reference.evaluate(program, TASKS, MEM).fitness > 0.999
    unseen = tasks.make_tasks(tasks.TaskSpec(**SPEC, data_seeds=(77,), param_seeds=(78,)))
    assert reference.evaluate(program, unseen, MEM).fitness > 0.99


# --------------------------------------------------- driver determinism --

def _config(**changes) -> experiment.ExperimentConfig:
    base = dict(search_tasks=[SPEC], select_tasks=[{**SPEC, "data_seeds": [500], "param_seeds": [600]}],
                final_tasks=[{**SPEC, "data_seeds": [700], "param_seeds": [800]}], **OPS,
                setup_size_init=2, predict_size_init=1, learn_size_init=4, fec={}, population_size=32,
                tournament_size=5, initial_population="random", max_train_steps=60_000, progress_every=64,
                memory=[4, 3, 1], max_experiments=2, random_seed=3, backend="xla", children_per_step=32,
                checkpoint_every_seconds=None)
    base.update(changes)
    return experiment.ExperimentConfig(**base)


_TIMINGS = re.compile(r"(elapsed_secs|indivs/s|train_steps/s)=[0-9.]+")


def test_jax_runs_are_deterministic(tmp_path):
    runs = []
    for name in ("a", "b"):
        lines: list[str] = []
        result = experiment.run_experiments(_config(), output_dir=str(tmp_path / name), log=lines.append)
        progress = [_TIMINGS.sub(r"\1=_", ln) for ln in lines if ln.startswith("indivs=")]
        runs.append((progress, result.to_dict()))
    (lines_a, res_a), (lines_b, res_b) = runs
    assert len(lines_a) >= 4 and lines_a == lines_b
    for key in ("best_program", "search_fitness", "select_fitness", "final_fitness", "experiments", "counters"):
        assert res_a[key] == res_b[key], key
    assert res_a["counters"]["fec_hits"] > 0 and "probe" in res_a["profile"]


# -------------------------------------------------------------- hurdles --

def test_hurdles_stop_weak_candidates_early():
    programs = [LINEAR, programs_lib.linear_algorithm((2, 1, 4), learning_rate=0.001)] + random_programs(4, 3)
    plain = make_evaluator(TASKS, MEM)
    full = plain(programs)
    ev = make_evaluator(TASKS, MEM, hurdle_tasks=1, hurdle_percentile=75.0)
    assert ev(programs) == full  # no population yet: no hurdle
    ev.set_population(np.array([0.2, 0.5, 0.5, 0.9, math.nan]))  # unique finite: 0.2, 0.5, 0.9
    assert ev.hurdle_threshold == pytest.approx(0.7)
    before = ev.num_full_evaluations
    got = ev(programs)
    first_task = [reference.evaluate(p, TASKS[:1], MEM).fitness for p in programs]
    for g, f, one in zip(got, full, first_task, strict=True):
        assert g == (f if one >= 0.7 else one)
    passed = sum(one >= 0.7 for one in first_task)
    assert 0 < passed < len(programs)
    assert ev.num_full_evaluations - before == len(programs) + 2 * passed
    assert ev.num_hurdle_stops == len(programs) - passed
    with pytest.raises(ValueError, match="hurdle_tasks"):
        make_evaluator(TASKS, MEM, hurdle_tasks=3)


def test_hurdle_threshold_follows_the_population_in_a_search():
    ev = make_evaluator(TASKS[:2], MEM, fec_spec=FECSpec(10, 10), hurdle_tasks=1)
    search = _search(ev, population=20, children=10)
    state = search.init(1)
    assert ev.hurdle_threshold is None
    state = search.step(state)
    fits = np.unique(state.islands[0].fitnesses)
    assert ev.hurdle_threshold is not None and fits.min() <= ev.hurdle_threshold <= fits.max()


def test_experiment_config_hurdles_random_search_and_backend():
    cfg = _config(hurdle_tasks=1, random_search=True, dtype="float32")
    assert cfg.evolution_config().random_search
    ev = experiment.make_evaluator(cfg, TASKS, MEM, seed=0, hurdles=True)
    assert isinstance(ev.backend, XlaBackend) and ev.hurdle_tasks == 1 and ev.backend.dtype == "float32"
    assert experiment.make_evaluator(cfg, TASKS, MEM, seed=0).hurdle_tasks == 0  # select/final: never
    with pytest.raises(experiment.ConfigError, match="hurdle_percentile"):
        _config(hurdle_percentile=120)
    with pytest.raises(experiment.ConfigError, match="random_search"):
        _config(random_search="yes")


class _Kill(Exception):
    pass


def test_jax_run_resumes_identically(tmp_path):
    config = _config(checkpoint_every_seconds=0.0)
    full = experiment.run_experiments(config, output_dir=str(tmp_path / "full"), log=None).to_dict()

    def hook(experiment_index: int, step: int) -> None:
        if (experiment_index, step) == (1, 3):
            raise _Kill

    with pytest.raises(_Kill):
        experiment.run_experiments(config, output_dir=str(tmp_path / "killed"), log=None, step_hook=hook)
    resumed = experiment.run_experiments(config, output_dir=str(tmp_path / "killed"), resume=True, log=None).to_dict()
    for key in ("best_program", "search_fitness", "select_fitness", "final_fitness", "experiments", "counters"):
        assert resumed[key] == full[key], key
