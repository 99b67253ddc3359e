"""Mutator (spec §4, §12) and initial populations (§13)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from azero_jax import ops as ops_lib
from azero_jax import programs as programs_lib
from azero_jax.program import NO_OP, Algorithm, MemoryShape, make_instruction, validate_algorithm
from azero_jax.search import mutator as mut

MEM = MemoryShape(5, 3, 2, 4)
LINEAR_CFG = dict(setup_ops=["SCALAR_CONST_SET"], predict_ops=["VECTOR_INNER_PRODUCT"],
                  learn_ops=["SCALAR_DIFF", "SCALAR_PRODUCT", "SCALAR_VECTOR_PRODUCT", "VECTOR_SUM"])


def config(**kw) -> mut.MutatorConfig:
    base = dict(memory=MEM, mutate_prob=1.0, **LINEAR_CFG)
    base.update(kw)
    return mut.MutatorConfig(**base)


def random_program(seed: int = 0, sizes=(5, 1, 4), cfg: mut.MutatorConfig | None = None) -> Algorithm:
    return mut.InitialPopulation.from_config("random", sizes, cfg or config())(np.random.default_rng(seed))


def changed_positions(a, b) -> list[int]:
    return [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]


def test_parse_mutation_types():
    assert mut.parse_mutation_type("alter_param_mutation_type") == mut.ALTER_PARAM
    assert mut.parse_mutation_type(6) == mut.TRADE_INSTRUCTION
    with pytest.raises(ValueError, match="unknown mutation type"):
        mut.parse_mutation_type("SWAP")
    with pytest.raises(ValueError, match="no writable output"):
        mut.MutatorConfig(MemoryShape(2, 1, 0, 4), setup_ops=["VECTOR_SUM"])


def test_insert_respects_max_minus_one():
    cfg = config(mutation_types=[mut.INSERT_INSTRUCTION], size_min=(0, 0, 0), size_max=(7, 3, 6))
    m = mut.Mutator(cfg)
    rng = np.random.default_rng(1)
    algo = random_program()
    for _ in range(200):
        algo = m.mutate(rng, algo)
    # Effective maximum lengths are max - 1; sizes never shrink.
    assert algo.sizes == (6, 2, 5)


def test_insert_unbounded_when_max_unset():
    m = mut.Mutator(config(mutation_types=[mut.INSERT_INSTRUCTION]))
    rng = np.random.default_rng(2)
    algo = random_program()
    for _ in range(30):
        algo = m.mutate(rng, algo)
    assert sum(algo.sizes) == 10 + 30


def test_remove_respects_min():
    m = mut.Mutator(config(mutation_types=[mut.REMOVE_INSTRUCTION], size_min=(2, 1, 3)))
    rng = np.random.default_rng(3)
    algo = random_program()
    for _ in range(200):
        algo = m.mutate(rng, algo)
    assert algo.sizes == (2, 1, 3)


def test_trade_keeps_size_even_at_max():
    m = mut.Mutator(config(mutation_types=[mut.TRADE_INSTRUCTION], size_min=(5, 1, 4), size_max=(5, 1, 4)))
    rng = np.random.default_rng(4)
    algo = random_program()
    changed = 0
    for _ in range(50):
        child = m.mutate(rng, algo)
        assert child.sizes == algo.sizes
        changed += child != algo
    assert changed > 25


def test_insert_places_new_instruction_anywhere():
    m = mut.Mutator(config(mutation_types=[mut.INSERT_INSTRUCTION], setup_ops=[], predict_ops=[],
                           learn_ops=["VECTOR_SUM"]))
    base = programs_lib.noop_algorithm((0, 0, 3))
    rng = np.random.default_rng(5)
    seen = set()
    for _ in range(200):
        child = m.mutate(rng, base)
        assert len(child.learn) == 4
        seen.add(next(i for i, ins in enumerate(child.learn) if ins.op != 0))
    assert seen == {0, 1, 2, 3}  # positions 0..size inclusive


def test_alter_param_keeps_ops_and_changes_one_instruction():
    m = mut.Mutator(config(mutation_types=[mut.ALTER_PARAM]))
    rng = np.random.default_rng(6)
    algo = random_program()
    changed_any = 0
    for _ in range(300):
        child = m.mutate(rng, algo)
        assert child.sizes == algo.sizes
        diffs = 0
        for c in ("setup", "predict", "learn"):
            a, b = algo.component(c), child.component(c)
            assert [i.op for i in a] == [i.op for i in b]
            diffs += len(changed_positions(a, b))
        assert diffs <= 1
        changed_any += diffs
        validate_algorithm(child, MEM)
    assert changed_any > 150


def test_alter_param_noop_unchanged():
    m = mut.Mutator(config(mutation_types=[mut.ALTER_PARAM]))
    algo = programs_lib.noop_algorithm((3, 3, 3))
    rng = np.random.default_rng(7)
    assert all(m.mutate(rng, algo) == algo for _ in range(20))


def test_randomize_instruction_and_component():
    rng = np.random.default_rng(8)
    algo = random_program(sizes=(5, 3, 4), cfg=config(predict_ops=["VECTOR_INNER_PRODUCT", "VECTOR_NORM"]))
    m = mut.Mutator(config(mutation_types=[mut.RANDOMIZE_INSTRUCTION]))
    for _ in range(100):
        child = m.mutate(rng, algo)
        assert child.sizes == algo.sizes
        assert sum(len(changed_positions(algo.component(c), child.component(c)))
                   for c in ("setup", "predict", "learn")) <= 1
    m = mut.Mutator(config(mutation_types=[mut.RANDOMIZE_COMPONENT_FUNCTION]))
    for _ in range(100):
        child = m.mutate(rng, algo)
        assert child.sizes == algo.sizes
        assert sum(algo.component(c) != child.component(c) for c in ("setup", "predict", "learn")) <= 1


def test_frozen_component_never_mutated_and_randomize_algorithm():
    cfg = config(predict_ops=[], mutation_types=list(mut.MUTATION_TYPES))
    algo = random_program(cfg=config())  # predict holds a dot product
    m = mut.Mutator(cfg)
    rng = np.random.default_rng(9)
    for _ in range(300):
        assert m.mutate(rng, algo).predict == algo.predict
    child = m.apply(rng, algo, mut.RANDOMIZE_ALGORITHM)
    assert child.predict == algo.predict and child.sizes == algo.sizes
    assert child.setup != algo.setup and child.learn != algo.learn
    assert m.apply(rng, algo, mut.IDENTITY) is algo


def test_component_choice_uniform():
    m = mut.Mutator(config(mutation_types=[mut.INSERT_INSTRUCTION]))
    rng = np.random.default_rng(10)
    counts = np.zeros(3)
    algo = programs_lib.noop_algorithm((0, 0, 0))
    for _ in range(3000):
        counts += np.array(m.mutate(rng, algo).sizes)
    assert np.all(np.abs(counts / 3000 - 1 / 3) < 0.04)


def test_mutate_prob_zero_gives_exact_copies():
    m = mut.Mutator(config(mutate_prob=0.0, mutation_types=list(mut.MUTATION_TYPES)))
    rng = np.random.default_rng(11)
    algo = random_program()
    assert all(m.mutate(rng, algo) is algo for _ in range(100))


def test_mutate_prob_fraction():
    m = mut.Mutator(config(mutate_prob=0.9, mutation_types=[mut.RANDOMIZE_COMPONENT_FUNCTION]))
    rng = np.random.default_rng(12)
    algo = random_program()
    unchanged = sum(m.mutate(rng, algo) is algo for _ in range(2000))
    assert 0.07 < unchanged / 2000 < 0.13


def test_mutation_is_deterministic_per_seed():
    m = mut.Mutator(config(mutation_types=list(mut.MUTATION_TYPES), size_max=(8, 4, 8)))
    algo = random_program()

    def chain(seed):
        rng = np.random.default_rng(seed)
        a = algo
        for _ in range(50):
            a = m.mutate(rng, a)
        return a

    assert chain(1) == chain(1)
    assert chain(1) != chain(2)


def test_random_instructions_never_write_s0_or_v0():
    cfg = config(setup_ops=ops_lib.ALL_OPS[1:], predict_ops=ops_lib.ALL_OPS[1:], learn_ops=ops_lib.ALL_OPS[1:])
    rng = np.random.default_rng(13)
    gen = mut.InitialPopulation.from_config("random", (20, 20, 20), cfg)
    for _ in range(5):
        algo = validate_algorithm(gen(rng), MEM)
        for c in ("setup", "predict", "learn"):
            for ins in algo.component(c):
                assert ins.out >= ops_lib.RANDOM_OUT_ADDRESS_MIN[ins.spec.out]


# ------------------------------------------------------- alter rules --

def test_log_scale_keeps_sign_and_flip_frequency():
    rng = np.random.default_rng(14)
    flips = 0
    n = 5000
    for _ in range(n):
        v = mut.alter_value(rng, 0.5, "log_scale_or_flip")
        flips += v < 0
        assert mut.alter_value(rng, -0.25, "log_scale") < 0
        assert mut.alter_value(rng, 0.25, "log_scale") > 0
    assert abs(flips / n - mut.SIGN_FLIP_PROB) < 0.015
    # The reference's zero goes to -0 (the "negative" branch).
    z = mut.alter_value(rng, 0.0, "log_scale")
    assert z == 0.0 and math.copysign(1.0, z) < 0


def test_log_scale_step_is_lognormal():
    rng = np.random.default_rng(15)
    logs = np.array([math.log(mut.alter_value(rng, 2.0, "log_scale")) for _ in range(4000)])
    assert abs(logs.mean() - math.log(2.0)) < 0.06 and abs(logs.std() - 1.0) < 0.05


def test_gaussian_set_sd_never_flips():
    rng = np.random.default_rng(16)
    ins = make_instruction("VECTOR_GAUSSIAN_SET", out=1, f0=0.3, f1=0.2)
    for _ in range(500):
        ins = mut.alter_data(rng, ins)
        assert ins.f1 >= 0.0
    assert ins.f0 != 0.3


def test_uniform_set_sorted_after_alteration():
    rng = np.random.default_rng(17)
    ins = make_instruction("SCALAR_UNIFORM_SET", out=2, f0=0.9, f1=-0.4)  # unsorted on creation is allowed
    for _ in range(300):
        ins = mut.alter_data(rng, ins)
        assert ins.f0 <= ins.f1
        assert ins.f0 == np.float32(ins.f0) and ins.f1 == np.float32(ins.f1)


def test_const_set_index_redraw_is_uniform01():
    rng = np.random.default_rng(18)
    ins = make_instruction("MATRIX_CONST_SET", out=1, f0=0.5, f1=0.5, f2=0.7)
    fields_changed = set()
    for _ in range(300):
        new = mut.alter_data(rng, ins)
        assert 0.0 <= new.f0 < 1.0 and 0.0 <= new.f1 < 1.0
        fields_changed |= {f for f in ("f0", "f1", "f2") if getattr(new, f) != getattr(ins, f)}
    assert fields_changed == {"f0", "f1", "f2"}


def test_alter_param_address_choices():
    rng = np.random.default_rng(19)
    two = make_instruction("SCALAR_SUM", in1=0, in2=0, out=1)
    one = make_instruction("VECTOR_NORM", in1=0, out=1)
    fields_two, fields_one = set(), set()
    for _ in range(300):
        t = mut.alter_param(rng, two, MEM)
        fields_two |= {f for f in ("in1", "in2", "out") if getattr(t, f) != getattr(two, f)}
        o = mut.alter_param(rng, one, MEM)
        fields_one |= {f for f in ("in1", "in2", "out") if getattr(o, f) != getattr(one, f)}
        assert o.in2 == 0
    assert fields_two == {"in1", "in2", "out"} and fields_one == {"in1", "out"}
    s = make_instruction("SCALAR_CONST_SET", out=2, d=0.5)
    outs = {mut.alter_param(rng, s, MEM).out for _ in range(200)}
    assert outs == {1, 2, 3, 4}  # never s0


# ------------------------------------------------- initial programs --

def test_initial_population_kinds():
    rng = np.random.default_rng(20)
    cfg = config()
    noop = mut.InitialPopulation.from_config("NO_OP_ALGORITHM", (2, 3, 4), cfg)(rng)
    assert noop.sizes == (2, 3, 4) and all(i == NO_OP for c in ("setup", "predict", "learn")
                                           for i in noop.component(c))
    lin = mut.InitialPopulation.from_config("linear", (5, 1, 4), cfg)(rng)
    assert lin == programs_lib.linear_algorithm((5, 1, 4))
    nn = mut.InitialPopulation("neural_net", (1, 1, 1), MemoryShape(5, 9, 2, 4))(rng)
    assert nn == programs_lib.neural_net_algorithm()
    gen = mut.InitialPopulation.from_config("random", (5, 1, 4), cfg)
    a, b = gen(rng), gen(rng)
    assert a.sizes == b.sizes == (5, 1, 4) and a != b
    with pytest.raises(ValueError, match="unknown initial population"):
        mut.parse_initial_kind("best")
