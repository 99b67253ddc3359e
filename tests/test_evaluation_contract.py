"""The evaluation contract (`azero_jax.evaluation`): the Evaluator and
Backend protocols, the backend registry, and evaluator state round trips."""

from __future__ import annotations

import numpy as np
import pytest

from azero_jax import evaluation, tasks
from azero_jax.evaluation.reference_backend import ReferenceBackend
from azero_jax.program import MemoryShape
from azero_jax.search.fec import FECSpec
from azero_jax.search.mutator import InitialPopulation, MutatorConfig
from azero_jax.search.train_budget import TrainBudget

MEM = MemoryShape(4, 3, 1, 4)
TASKS = tasks.make_tasks(tasks.TaskSpec("linear", features=4, num_train=20, num_valid=10, num_tasks=3))
OPS = dict(setup_ops=["SCALAR_CONST_SET"], predict_ops=["VECTOR_INNER_PRODUCT"],
           learn_ops=["SCALAR_DIFF", "SCALAR_PRODUCT", "SCALAR_VECTOR_PRODUCT", "VECTOR_SUM"])


def random_programs(n: int, seed: int = 0):
    gen = InitialPopulation.from_config("random", (3, 1, 4), MutatorConfig(MEM, **OPS))
    rng = np.random.default_rng(seed)
    return [gen(rng) for _ in range(n)]


class CountingBackend:
    """A backend written against the protocol only: delegates to the
    reference and counts the jobs it was given."""

    def __init__(self, tasks, memory, *, max_abs_error, dtype, chunk=1):
        self.inner = ReferenceBackend(tasks, memory, max_abs_error=max_abs_error, dtype=dtype)
        self.tasks = self.inner.tasks
        self.chunk = chunk
        self.jobs = 0

    def probe(self, programs, jobs, *, num_train, num_valid, seed):
        self.jobs += len(jobs)
        return self.inner.probe(programs, jobs, num_train=num_train, num_valid=num_valid, seed=seed)

    def full(self, programs, jobs):
        self.jobs += len(jobs)
        return self.inner.full(programs, jobs)


def test_protocols_are_satisfied():
    ev = evaluation.make_evaluator(TASKS, MEM)
    assert isinstance(ev, evaluation.Evaluator) and isinstance(ev.backend, evaluation.Backend)
    assert isinstance(evaluation.as_evaluator(lambda programs: [0.0] * len(programs)), evaluation.Evaluator)
    assert isinstance(CountingBackend(TASKS, MEM, max_abs_error=100.0, dtype="float64"), evaluation.Backend)
    with pytest.raises(TypeError, match="Evaluator or a callable"):
        evaluation.as_evaluator(3)


def test_a_registered_backend_plugs_in_with_one_line():
    evaluation.register_backend("counting", CountingBackend)
    try:
        kw = dict(fec_spec=FECSpec(10, 10), train_budget=TrainBudget.neural_net((3, 1, 4), threshold_factor=0.5),
                  seed=4)
        programs = random_programs(12) * 2
        new = evaluation.make_evaluator(TASKS, MEM, backend="counting", op_subsets={"setup": [0]}, chunk=5, **kw)
        ref = evaluation.make_evaluator(TASKS, MEM, backend="reference", **kw)
        assert new.evaluate(programs) == ref.evaluate(programs)
        assert new.counters() == ref.counters()
        # It got the option it names (chunk), not the ones it does not (op_subsets).
        assert new.backend.chunk == 5 and new.backend.jobs > 0
    finally:
        evaluation._REGISTRY.pop("counting")
    with pytest.raises(ValueError, match="unknown backend 'counting'"):
        evaluation.make_evaluator(TASKS, MEM, backend="counting")


def test_state_round_trip_continues_identically():
    programs = random_programs(16, seed=1)
    kw = dict(fec_spec=FECSpec(10, 10, cache_size=20, forget_every=3), seed=9, hurdle_tasks=1)
    a = evaluation.make_evaluator(TASKS, MEM, **kw)
    a.evaluate(programs[:8])
    state = a.to_state()
    b = evaluation.make_evaluator(TASKS, MEM, **kw)
    b.load_state(state)
    assert b.counters() == a.counters() and b.to_state() == state
    for ev in (a, b):
        ev.set_population(np.linspace(0.0, 1.0, 8))
    assert a.evaluate(programs[8:]) == b.evaluate(programs[8:])
    assert a.counters() == b.counters() and a.to_state() == b.to_state()


def test_state_errors():
    ev = evaluation.make_evaluator(TASKS, MEM, fec_spec=FECSpec(10, 10))
    with pytest.raises(KeyError, match="cache"):
        ev.load_state({"num_individuals": 1, "num_train_steps": 2, "num_full_evaluations": 3})
    no_fec = evaluation.make_evaluator(TASKS, MEM).to_state()
    with pytest.raises(ValueError, match="FEC"):
        ev.load_state(no_fec)


def test_backend_names_and_dtypes():
    assert evaluation.BACKENDS == ("reference", "xla", "pallas", "native") and evaluation.resolve_backend("JAX") == "xla"
    with pytest.raises(ValueError, match="use one of: auto, reference, xla, pallas, native"):
        evaluation.resolve_backend("torch")
    for backend in ("reference", "native"):
        with pytest.raises(ValueError, match="float64"):
            evaluation.make_evaluator(TASKS, MEM, backend=backend, dtype="float32")
    with pytest.raises(ValueError, match="dtype must be one of"):
        evaluation.make_evaluator(TASKS, MEM, dtype="float16")
