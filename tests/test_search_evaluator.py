"""The evaluator on the reference backend: FEC per (candidate, task), train budget, counters, state."""

from __future__ import annotations

import numpy as np
import pytest

from azero_jax import programs as programs_lib
from azero_jax import reference, tasks
from azero_jax.evaluation import make_evaluator
from azero_jax.program import MemoryShape, make_instruction
from azero_jax.search.fec import FECSpec
from azero_jax.search.mutator import InitialPopulation, MutatorConfig
from azero_jax.search.train_budget import TrainBudget

MEM = MemoryShape(4, 3, 1, 4)
TASKS = tasks.make_tasks(tasks.TaskSpec("linear", features=4, num_train=20, num_valid=10, num_tasks=3))
LINEAR = programs_lib.linear_algorithm((5, 1, 4))


def random_programs(n: int, seed: int = 0):
    cfg = MutatorConfig(MEM, setup_ops=["SCALAR_CONST_SET"], predict_ops=["VECTOR_INNER_PRODUCT"],
                        learn_ops=["SCALAR_DIFF", "SCALAR_PRODUCT", "SCALAR_VECTOR_PRODUCT", "VECTOR_SUM"])
    gen = InitialPopulation.from_config("random", (5, 1, 4), cfg)
    rng = np.random.default_rng(seed)
    return [gen(rng) for _ in range(n)]


def test_matches_reference_without_fec():
    ev = make_evaluator(TASKS, MEM)
    expected = reference.evaluate(LINEAR, TASKS, MEM).fitness
    assert ev([LINEAR]) == [expected]
    assert ev.counters()._asdict() == {"individuals": 1, "train_steps": 60, "full_evaluations": 3,
                                       "fec_hits": 0, "fec_misses": 0, "hurdle_stops": 0}


def test_fec_hit_reuses_fitness_and_counts_probe_steps():
    ev = make_evaluator(TASKS, MEM, fec_spec=FECSpec(10, 10))
    first = ev([LINEAR])
    assert first == [reference.evaluate(LINEAR, TASKS, MEM).fitness]
    assert (ev.fec_misses, ev.fec_hits, ev.num_train_steps) == (3, 0, 3 * 10 + 3 * 20)
    # A functionally identical program with different padding: same probe errors, all hits.
    twin = programs_lib.linear_algorithm((6, 2, 5))
    assert ev([twin]) == first
    assert (ev.fec_misses, ev.fec_hits, ev.num_train_steps) == (3, 3, 90 + 30)
    # A different learning rate: different errors, misses.
    other = LINEAR.replace(setup=(make_instruction("SCALAR_CONST_SET", out=2, d=0.02),) + LINEAR.setup[1:])
    ev([other])
    assert ev.fec_misses == 6


def test_batched_equals_sequential():
    progs = random_programs(6)
    batch = [progs[0], progs[1], progs[0], LINEAR, progs[0], LINEAR] + progs[2:]
    spec = FECSpec(10, 10, cache_size=5, forget_every=3)
    ev_batch = make_evaluator(TASKS, MEM, fec_spec=spec)
    ev_seq = make_evaluator(TASKS, MEM, fec_spec=spec)
    out_batch = ev_batch(batch)
    out_seq = [ev_seq([p])[0] for p in batch]
    assert out_batch == out_seq
    assert ev_batch.counters() == ev_seq.counters()
    assert ev_batch.cache.to_state() == ev_seq.cache.to_state()


def test_forget_every_inside_one_batch():
    ev = make_evaluator(TASKS, MEM, fec_spec=FECSpec(10, 10, forget_every=2))
    ev([LINEAR] * 3)  # miss (count 1), hit (count 2 -> forgotten), miss again
    assert ev.num_full_evaluations == 6 and ev.fec_hits == 3


def test_train_budget_zeroes_expensive_programs():
    heavy = LINEAR.replace(predict=LINEAR.predict + (make_instruction("MATRIX_GAUSSIAN_SET", f0=0.0, f1=1.0),) * 30)
    ev = make_evaluator(TASKS, MEM, fec_spec=FECSpec(10, 10), train_budget=TrainBudget.neural_net((5, 1, 4)))
    assert ev([heavy]) == [0.0]
    assert ev.num_train_steps == 30  # probes only; no full training
    assert ev([LINEAR])[0] > 0.0


def test_rejects_too_small_tasks():
    small = tasks.make_tasks(tasks.TaskSpec("linear", features=4, num_train=5, num_valid=10))
    with pytest.raises(ValueError, match="at least 10"):
        make_evaluator(small, MEM)
    with pytest.raises(ValueError, match="FEC probe"):
        make_evaluator(TASKS, MEM, fec_spec=FECSpec(10, 11))
