"""Randomized operators checked statistically: over many draws every allowed
outcome appears and no forbidden one ever does (spec §4, §12, §13)."""

from __future__ import annotations

import collections

import numpy as np

from azero_jax import generators
from azero_jax import ops as ops_lib
from azero_jax.program import COMPONENTS, MemoryShape, validate_algorithm
from azero_jax.search import evolution as evo
from azero_jax.search import mutator as mut

MEM = MemoryShape(5, 3, 2, 4)
SETUP_OPS = ["SCALAR_CONST_SET", "VECTOR_GAUSSIAN_SET", "VECTOR_UNIFORM_SET"]
LEARN_OPS = ["SCALAR_DIFF", "SCALAR_PRODUCT", "SCALAR_VECTOR_PRODUCT", "VECTOR_SUM", "MATRIX_VECTOR_PRODUCT"]
N = 3000


def _config(types, **kw) -> mut.MutatorConfig:
    # Predict is frozen (empty op list): it must never change.
    base = dict(memory=MEM, setup_ops=SETUP_OPS, predict_ops=[], learn_ops=LEARN_OPS, mutation_types=types,
                mutate_prob=1.0, size_min=(2, 0, 2), size_max=(6, None, 7))
    base.update(kw)
    return mut.MutatorConfig(**base)


def _parent(cfg: mut.MutatorConfig, rng: np.random.Generator, sizes=(4, 2, 4)):
    program = mut.InitialPopulation.from_config("random", (sizes[0], 0, sizes[2]), cfg)(rng)
    predict = tuple(generators.random_instruction(rng, ops_lib.resolve_op_ids(["VECTOR_INNER_PRODUCT"])[0], MEM)
                    for _ in range(sizes[1]))
    return program.replace(predict=predict)


def test_every_allowed_outcome_appears_and_no_forbidden_one():
    cfg = _config(list(mut.MUTATION_TYPES))
    allowed = {c: set(cfg.ops(c)) for c in COMPONENTS}
    rng = np.random.default_rng(0)
    m = mut.Mutator(cfg)
    seen_ops = {c: set() for c in COMPONENTS}
    seen_sizes = {c: set() for c in COMPONENTS}
    seen_out = collections.defaultdict(set)
    changed = collections.Counter()
    for _ in range(N):
        parent = _parent(cfg, rng, sizes=(int(rng.integers(2, 6)), 2, int(rng.integers(2, 7))))
        child = m.mutate(rng, parent)
        validate_algorithm(child, MEM)
        assert child.predict == parent.predict  # frozen component
        for c in ("setup", "learn"):
            n = len(child.component(c))
            lo, hi = cfg.size_min[COMPONENTS.index(c)], cfg.size_max[COMPONENTS.index(c)]
            # insert only while size < max - 1; remove only while size > min; trade keeps the size.
            assert lo <= n <= hi - 1 or n == len(parent.component(c)), (c, n)
            seen_sizes[c].add(n)
            if child.component(c) != parent.component(c):
                changed[c] += 1
            for instr in child.component(c):
                assert instr.op in allowed[c] | {ops_lib.NO_OP_ID}
                seen_ops[c].add(instr.op)
                spec = instr.spec
                if spec.out is not None:
                    assert instr.out >= ops_lib.RANDOM_OUT_ADDRESS_MIN[spec.out]  # never s0 / v0
                    seen_out[spec.out].add(instr.out)
    for c in ("setup", "learn"):
        assert seen_ops[c] == allowed[c], c  # every allowed op appears
        assert changed[c] > N // 4
    assert seen_sizes["setup"] == set(range(2, 6)) and seen_sizes["learn"] == set(range(2, 7))
    # Every writable address of each kind appears as an output.
    assert seen_out[ops_lib.SCALAR] == set(range(ops_lib.RANDOM_OUT_ADDRESS_MIN[ops_lib.SCALAR], MEM.scalars))
    assert seen_out[ops_lib.VECTOR] == set(range(ops_lib.RANDOM_OUT_ADDRESS_MIN[ops_lib.VECTOR], MEM.vectors))


def test_insert_and_remove_positions_cover_every_slot():
    rng = np.random.default_rng(1)
    cfg = _config(["INSERT_INSTRUCTION"], setup_ops=[], size_max=(0, None, 9))
    m = mut.Mutator(cfg)
    parent = _parent(cfg, rng, sizes=(0, 2, 4))
    inserted_at, removed_at = set(), set()
    for _ in range(400):
        child = m.apply(rng, parent, "INSERT_INSTRUCTION")
        assert len(child.learn) == 5 and child.setup == parent.setup
        pos = next(i for i in range(5) if i == 4 or child.learn[i] != parent.learn[i])
        assert child.learn[:pos] + child.learn[pos + 1:] == parent.learn
        inserted_at.add(pos)
        child = m.apply(rng, parent, "REMOVE_INSTRUCTION")
        assert len(child.learn) == 3
        removed_at.update(i for i in range(4) if parent.learn[:i] + parent.learn[i + 1:] == child.learn)
    assert inserted_at == set(range(5)) and removed_at == set(range(4))


def test_mutation_types_and_mutate_prob_frequencies():
    """Each allowed type is drawn (uniformly); a type not in the list never
    happens (RANDOMIZE_ALGORITHM would change both components at once)."""
    rng = np.random.default_rng(2)
    cfg = _config(["ALTER_PARAM", "INSERT_INSTRUCTION", "IDENTITY"], mutate_prob=0.6)
    m = mut.Mutator(cfg)
    outcomes = collections.Counter()
    for _ in range(N):
        parent = _parent(cfg, rng)
        child = m.mutate(rng, parent)
        if child == parent:
            outcomes["same"] += 1
            continue
        grew = [c for c in COMPONENTS if len(child.component(c)) > len(parent.component(c))]
        both = all(child.component(c) != parent.component(c) for c in ("setup", "learn"))
        assert not both  # one mutation touches one component
        assert all(len(child.component(c)) >= len(parent.component(c)) for c in COMPONENTS)  # no removal
        outcomes["insert" if grew else "alter"] += 1
    # P(copy) = 0.4 + 0.6 * (1/3 identity + alter that draws the same value, rare).
    assert abs(outcomes["same"] / N - 0.6) < 0.05
    # Alters that redraw the same address or value count as "same" (often, with this small memory).
    assert abs(outcomes["insert"] / N - 0.2) < 0.03 and outcomes["alter"] > 0.12 * N


def test_fast_random_instruction_equals_generators():
    """The mutator's fast constructor gives the same instruction, from the
    same draws, as the validating `generators.random_instruction`."""
    for op in ops_lib.ALL_OPS:
        a, b = np.random.default_rng(op), np.random.default_rng(op)
        for _ in range(20):
            x, y = mut.random_instruction(a, op, MEM), generators.random_instruction(b, op, MEM)
            assert x == y and hash(x) == hash(y)
        assert a.uniform() == b.uniform()


def test_tournaments_vectorized_matches_single():
    fits = np.random.default_rng(3).random(50)
    fits[[4, 9]] = np.nan
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    assert evo.tournaments(a, fits, 7, 1)[0] == evo.tournament(b, fits, 7)
    winners = evo.tournaments(a, fits, 7, 4000)
    assert not np.isin(winners, [4, 9]).any()
    # The winner is the best of T uniform draws: P(rank r from the top) follows that law.
    ranks = np.argsort(np.argsort(-np.nan_to_num(fits, nan=-1.0)))[winners]
    assert abs(np.mean(ranks == 0) - (1 - (49 / 50) ** 7)) < 0.03
