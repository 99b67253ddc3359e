"""Random-set ops draw a fresh stream for every evaluated individual (as the
reference's shared mt19937 stream does), keyed by (evaluator seed, individual
number): reproducible, batch-order free, equal on both backends."""

from __future__ import annotations

import numpy as np
import pytest

from azero_jax import jax_eval, reference, rng, tasks
from azero_jax.evaluation import Jobs, make_backend, make_evaluator
from azero_jax.program import Algorithm, MemoryShape, make_instruction
from azero_jax.search.mutator import InitialPopulation, MutatorConfig

MEM = MemoryShape(4, 3, 1, 4)
TASKS = tasks.make_tasks(tasks.TaskSpec("linear", features=4, num_train=20, num_valid=10, num_tasks=3))
# Random weights drawn in Setup, never learned: the fitness is the draw's luck.
LUCKY = Algorithm(
    setup=(make_instruction("VECTOR_GAUSSIAN_SET", out=1, f0=0.0, f1=1.0),),
    predict=(make_instruction("VECTOR_INNER_PRODUCT", in1=0, in2=1, out=1),),
    learn=())
RANDOM_OPS = MutatorConfig(MEM, setup_ops=["VECTOR_GAUSSIAN_SET", "SCALAR_UNIFORM_SET"],
                           predict_ops=["VECTOR_INNER_PRODUCT", "SCALAR_GAUSSIAN_SET", "SCALAR_SUM"],
                           learn_ops=["SCALAR_DIFF", "SCALAR_VECTOR_PRODUCT", "VECTOR_SUM", "VECTOR_UNIFORM_SET"])


def random_op_programs(n: int, seed: int = 0) -> list[Algorithm]:
    gen = InitialPopulation.from_config("random", (3, 3, 4), RANDOM_OPS)
    r = np.random.default_rng(seed)
    return [gen(r) for _ in range(n)]


def test_evaluation_seeds_are_a_deterministic_numbered_sequence():
    whole = rng.evaluation_seeds(7, 0, 10_000)
    assert whole.dtype == np.uint32 and len(np.unique(whole)) == len(whole)
    np.testing.assert_array_equal(rng.evaluation_seeds(7, 300, 50), whole[300:350])
    assert not np.array_equal(rng.evaluation_seeds(8, 0, 100), whole[:100])
    # Numbers past 2**32 are distinct streams too.
    assert not np.array_equal(rng.evaluation_seeds(7, 2**32, 100), whole[:100])


def test_each_individual_gets_new_draws_batched_or_not():
    batched = make_evaluator(TASKS, MEM, seed=3)
    out = batched([LUCKY] * 4)
    assert len(set(out)) == 4  # the same program, four individuals, four draws
    one_by_one = make_evaluator(TASKS, MEM, seed=3)
    assert [one_by_one([LUCKY])[0] for _ in range(4)] == out
    seeds = rng.evaluation_seeds(3, 0, 4)
    assert out == [reference.evaluate(LUCKY, TASKS, MEM, seed=int(s)).fitness for s in seeds]


def test_job_seeds_default_to_the_individual_stream_and_explicit_ones_are_honoured():
    ev = make_evaluator(TASKS, MEM, seed=11)
    (default,) = ev.evaluate([LUCKY], tasks=[[1]])  # individual 0 of seed 11
    assert default == reference.evaluate_task(LUCKY, TASKS[1], MEM, seed=int(rng.evaluation_seeds(11, 0, 1)[0])).fitness
    fitness, _ = ev.full([LUCKY], Jobs([0], [1], [20], [12345]))
    assert fitness[0] == reference.evaluate_task(LUCKY, TASKS[1], MEM, seed=12345).fitness


def test_jax_evaluator_uses_the_same_streams_as_the_reference():
    programs = random_op_programs(24) + [LUCKY] * 4
    ev_j = make_evaluator(TASKS, MEM, backend="xla", seed=9, chunk=16)  # two chunks: seeds follow their programs
    ev_r = make_evaluator(TASKS, MEM, seed=9)
    got, want = ev_j(programs), ev_r(programs)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert len(set(got[-4:])) == 4
    # The second call numbers on: new draws for the same programs.
    again_j, again_r = ev_j(programs[-4:]), ev_r(programs[-4:])
    np.testing.assert_allclose(again_j, again_r, rtol=0, atol=1e-12)
    assert not set(again_j) & set(got[-4:])


def test_jax_evaluator_rejects_one_program_with_two_seeds():
    backend = make_backend("xla", TASKS, MEM, chunk=16)
    with pytest.raises(ValueError, match="share one random stream seed"):
        backend.full([LUCKY], Jobs([0, 0], [0, 1], [20, 20], [1, 2]))


def test_batch_with_per_program_seeds_equals_one_seed_each():
    programs = random_op_programs(6, seed=1) + [LUCKY]
    seeds = np.array([5, 6, 7, 8, 2**32 - 1, 0, 99])
    together = jax_eval.evaluate_batch(programs, TASKS, MEM, seed=seeds)
    for i, (p, s) in enumerate(zip(programs, seeds, strict=True)):
        alone = jax_eval.evaluate_batch([p], TASKS, MEM, seed=int(s))
        np.testing.assert_array_equal(together[i], alone[0])
    with pytest.raises(ValueError, match="one integer per program"):
        jax_eval.evaluate_batch(programs, TASKS, MEM, seed=seeds[:3])
