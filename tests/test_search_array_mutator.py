"""Program arrays (exact round trips, the interpreter's layout) and ArrayMutator:
valid children, determinism, and the reference `Mutator`'s distributions
(chi-square / Kolmogorov-Smirnov tests, alpha 1e-4, on 20,000 children of the
same parents, fixed seeds), which do reject a dropped or mis-weighted type."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest

from azero_jax import ops as ops_lib
from azero_jax import program_arrays as pa
from azero_jax.jax_eval.compile import compile_programs
from azero_jax.program import COMPONENTS, Algorithm, Instruction, MemoryShape, ProgramError, validate_algorithm
from azero_jax.search import mutator as mut
from azero_jax.search.array_mutator import ArrayMutator

MEM = MemoryShape(5, 4, 3, 4)
STAT_CFG = mut.MutatorConfig(  # Setup: every set op; sizes limited in Setup and Learn
    MEM, setup_ops=[*range(56, 65), 1], predict_ops=[27, 31, 5, 21, 28], learn_ops=[2, 18, 23, 56, 57, 58, 59, 62],
    mutation_types=mut.MUTATION_TYPES, mutate_prob=0.8, size_min=(1, 0, 2), size_max=(6, None, 8))
ALL_CFG = mut.MutatorConfig(MEM, setup_ops=ops_lib.ALL_OPS, predict_ops=ops_lib.ALL_OPS, learn_ops=ops_lib.ALL_OPS)
ALPHA_Z = 3.719  # one-sided normal quantile of alpha = 1e-4
KS_C = math.sqrt(-math.log(1e-4 / 2) / 2)


def _bits(programs: list[Algorithm]) -> list:
    """Exact (bitwise, NaN and -0 included) form of programs."""
    return [tuple(tuple((i.op, i.in1, i.in2, i.out, *np.array([i.d, i.f0, i.f1, i.f2]).view(np.int64).tolist())
                        for i in p.component(c)) for c in COMPONENTS) for p in programs]


def _random_programs(cfg: mut.MutatorConfig, n: int, seed: int, max_sizes=(7, 5, 9)) -> list[Algorithm]:
    rng = np.random.default_rng(seed)
    ops = {c: cfg.ops(c) or [1] for c in COMPONENTS}
    return [mut.InitialPopulation("random", [int(rng.integers(0, m + 1)) for m in max_sizes], cfg.memory, ops)(rng)
            for _ in range(n)]


_ODD = [math.nan, math.inf, -math.inf, -0.0, 3.4028234663852886e38, 1e-45, 0.1]
SPECIAL = Algorithm(tuple(Instruction(56, out=2, d=x) for x in _ODD),
                    tuple(Instruction(58, out=1, f0=x, f1=-x, f2=x) for x in _ODD),
                    tuple(Instruction(59, out=3, f0=x, f1=0.25) for x in _ODD) + (Instruction(0),))


def test_round_trip_all_ops_and_special_constants():
    programs = _random_programs(ALL_CFG, 300, 0) + [SPECIAL, Algorithm()]
    assert {i.op for p in programs for c in COMPONENTS for i in p.component(c)} == set(ops_lib.ALL_OPS)
    arrays = pa.from_algorithms(programs, (4, 20, 3))
    assert arrays.capacities == (7, 20, 9) and arrays.batch == len(programs)
    back = pa.to_algorithms(arrays)
    assert _bits(back) == _bits(programs) and back[:300] == programs[:300]
    assert [hash(p) for p in back[:300]] == [hash(p) for p in programs[:300]]
    # take / concatenate across different capacities.
    idx = np.array([5, 301, 5, 0, 300])
    other = _random_programs(ALL_CFG, 7, 1, max_sizes=(2, 12, 1))
    joined = pa.concatenate([pa.take(arrays, idx), pa.from_algorithms(other)])
    assert _bits(pa.to_algorithms(joined)) == _bits([programs[i] for i in idx] + other)
    assert pa.to_algorithms(pa.empty(2, 3)) == [Algorithm(), Algorithm()]
    pa.check_memory(arrays, MEM)
    with pytest.raises(ValueError, match="out of range"):
        pa.check_memory(arrays, MemoryShape(5, 4, 2, 4))


def test_interpreter_layout_equals_compile_programs():
    programs = _random_programs(ALL_CFG, 40, 2) + [SPECIAL]
    for n, kw in ((41, {}), (13, dict(batch_multiple=2)), (1, dict(min_lengths={"learn": 32})), (41, dict(batch_size=64))):
        want, got = compile_programs(programs[-n:], MEM, **kw), compile_programs(pa.from_algorithms(programs[-n:], 16), MEM, **kw)
        assert got.num_programs == want.num_programs and got.length_buckets == want.length_buckets
        for g, w in zip(got[:3], want[:3], strict=True):
            assert g.ints.dtype == w.ints.dtype and np.array_equal(g.ints, w.ints)
            assert np.array_equal(g.floats.view(np.int64), w.floats.view(np.int64)) and np.array_equal(g.lengths, w.lengths)
    every = list(range(ops_lib.NUM_OPS))
    with pytest.raises(ProgramError, match="program 1, learn instruction 0: op .* is not in the learn op subset"):
        compile_programs(pa.from_algorithms([Algorithm(), SPECIAL]), MEM,
                         op_subsets={"setup": every, "predict": every, "learn": [0]})


def test_children_valid_sizes_in_limits_parents_untouched():
    cfg = dataclasses.replace(STAT_CFG, predict_ops=(), mutate_prob=0.95)  # Predict frozen
    am, rng = ArrayMutator(cfg), np.random.default_rng(3)
    parents = pa.from_algorithms(_random_programs(STAT_CFG, 200, 4, max_sizes=(6, 3, 8)), am.capacity)
    allowed = {c: set(cfg.ops(c)) for c in COMPONENTS}
    for _ in range(30):
        before = _bits(pa.to_algorithms(parents))
        children = am.mutate(rng, parents)
        assert _bits(pa.to_algorithms(parents)) == before  # parents untouched
        old, new = parents.sizes, children.sizes
        assert np.array_equal(new[:, 1], old[:, 1])
        for k in (0, 2):  # insert only while size < max - 1, remove only while size > min
            grew, shrank = new[:, k] > old[:, k], new[:, k] < old[:, k]
            assert np.all(new[grew, k] <= cfg.size_max[k] - 1) and np.all(new[shrank, k] >= cfg.size_min[k])
            assert np.all(np.abs(new[:, k] - old[:, k]) <= 1)
        for p, ch in zip(pa.to_algorithms(parents), pa.to_algorithms(children), strict=True):
            validate_algorithm(ch, MEM)
            assert ch.predict == p.predict
            for c in ("setup", "learn"):
                for i in ch.component(c):
                    assert i.op in allowed[c] and i.out >= ops_lib.RANDOM_OUT_ADDRESS_MIN.get(i.spec.out, 0)
                    assert all(v == float(np.float32(v)) or math.isnan(v) for v in (i.f0, i.f1, i.f2))
        parents = children


def test_unbounded_growth_copies_and_empty_batch():
    cfg = mut.MutatorConfig(MEM, learn_ops=[23], mutation_types=["INSERT_INSTRUCTION"], mutate_prob=1.0)
    am, rng = ArrayMutator(cfg), np.random.default_rng(5)
    arrays = pa.from_algorithms(_random_programs(cfg, 10, 6, max_sizes=(2, 2, 3)))
    start = arrays.sizes[:, 2].copy()
    assert am.capacity == (0, 0, 0)
    for _ in range(20):
        arrays = am.mutate(rng, arrays)
    assert np.array_equal(arrays.sizes[:, 2], start + 20) and arrays.capacities[2] >= start.max() + 20
    copy = ArrayMutator(dataclasses.replace(cfg, mutate_prob=0.0)).mutate(rng, arrays)
    assert _bits(pa.to_algorithms(copy)) == _bits(pa.to_algorithms(arrays))
    assert am.mutate(rng, pa.take(arrays, [])).batch == 0


def test_deterministic_per_seed():
    parents = pa.from_algorithms(_random_programs(STAT_CFG, 100, 7))

    def run(seed, a=parents):
        rng = np.random.default_rng(seed)
        for _ in range(10):
            a = ArrayMutator(STAT_CFG).mutate(rng, a)
        return _bits(pa.to_algorithms(a))

    assert run(1) == run(1) and run(1) != run(2)
    index = np.array([3, 3, 0, 99, 50])  # mutate(parents, index) = mutate(take(parents, index)), same draws
    fused, taken = (ArrayMutator(STAT_CFG).mutate(np.random.default_rng(4), *a)
                    for a in ((parents, index), (pa.take(parents, index),)))
    assert _bits(pa.to_algorithms(fused)) == _bits(pa.to_algorithms(taken))


N_STAT = 20_000


def _crit(df: int) -> float:  # chi-square critical value at alpha = 1e-4 (Wilson-Hilferty)
    return df * (1 - 2 / (9 * df) + ALPHA_Z * math.sqrt(2 / (9 * df))) ** 3


def _chi2_rejects(a: dict, b: dict) -> bool:
    """Two-sample chi-square homogeneity test (categories with < 10 counts in all merged)."""
    keys = sorted(set(a) | set(b))
    ca, cb = np.array([a.get(k, 0) for k in keys], float), np.array([b.get(k, 0) for k in keys], float)
    small = ca + cb < 10
    ca, cb = np.append(ca[~small], ca[small].sum()), np.append(cb[~small], cb[small].sum())
    ca, cb = ca[ca + cb > 0], cb[ca + cb > 0]
    ea = (ca + cb) * ca.sum() / (ca.sum() + cb.sum())
    eb = ca + cb - ea
    return len(ca) > 1 and float(((ca - ea) ** 2 / ea).sum() + ((cb - eb) ** 2 / eb).sum()) > _crit(len(ca) - 1)


def _gof_rejects(values: np.ndarray, support: list, probs: list | None = None) -> bool:
    """Chi-square goodness of fit of `values` to `probs` (default uniform) on `support`."""
    counts = np.array([(values == v).sum() for v in support], float)
    assert counts.sum() == len(values), "a value outside the support"
    e = len(values) * (np.full(len(support), 1 / len(support)) if probs is None else np.asarray(probs))
    return len(support) > 1 and ((counts - e) ** 2 / e).sum() > _crit(len(support) - 1)


def _ks_rejects(x: np.ndarray, y: np.ndarray) -> bool:
    """Two-sample Kolmogorov-Smirnov test (NaNs left out)."""
    x, y = np.sort(x[~np.isnan(x)]), np.sort(y[~np.isnan(y)])
    grid = np.concatenate([x, y])
    d = np.abs(np.searchsorted(x, grid, "right") / len(x) - np.searchsorted(y, grid, "right") / len(y)).max()
    return d > KS_C * math.sqrt((len(x) + len(y)) / (len(x) * len(y)))


def _ks1_rejects(x: np.ndarray, cdf) -> bool:
    """One-sample Kolmogorov-Smirnov test of `x` against `cdf`."""
    x, n = np.sort(x), len(x)
    f = cdf(x)
    return max((np.arange(1, n + 1) / n - f).max(), (f - np.arange(n) / n).max()) > KS_C / math.sqrt(n)


_NORMAL_CDF = np.vectorize(lambda v: 0.5 * (1 + math.erf(v / math.sqrt(2))))


def _counts(values: np.ndarray) -> dict:
    return {tuple(np.atleast_1d(v)): n for v, n in zip(*np.unique(values, axis=0, return_counts=True), strict=True)}


def _pair(parents: pa.ProgramArrays, children: pa.ProgramArrays, comp: str):
    """Component `comp` of parents and children as (B, L, 8) int64 rows (op,
    in1, in2, out, the float fields' bits), the size changes, parent sizes."""
    both = pa.concatenate([parents, children]).component(comp)  # same capacity
    rows = np.concatenate([both.ints.astype(np.int64), both.floats.view(np.int64)], axis=2)
    b, size = parents.batch, both.lengths.astype(int)
    return rows[:b], rows[b:], size[b:] - size[:b], size[:b]


def _effects(parents: pa.ProgramArrays, children: pa.ProgramArrays):
    """Per child the visible effect (per component: unchanged, +1, -1, several positions
    changed, the op, or which fields at one position) and the changed rows (new, old)."""
    keys = np.zeros(parents.batch, np.int64)
    changed = []
    for comp in COMPONENTS:
        p, c, grow, size = _pair(parents, children, comp)
        diff = (p != c).any(-1) & (np.arange(p.shape[1])[None, :] < size[:, None]) & (grow == 0)[:, None]
        first = np.argmax(diff, axis=1)
        fields = p[np.arange(len(p)), first] != c[np.arange(len(p)), first]
        single = np.where(fields[:, 0], 4, 5 + (fields[:, 1:] * (1 << np.arange(7))).sum(1))
        keys = keys * 200 + np.select([grow == 1, grow == -1, ~diff.any(1), diff.sum(1) > 1], [1, 2, 0, 3], single)
        changed.append((c[diff], p[diff]))
    return dict(zip(*np.unique(keys, return_counts=True), strict=True)), changed


def _edit_signatures(parents: pa.ProgramArrays, children: pa.ProgramArrays) -> np.ndarray:
    """(B, 12): per component, size change, parent size, first / last differing position (-1: none)."""
    out = []
    for comp in COMPONENTS:
        p, c, grow, size = _pair(parents, children, comp)
        cap = p.shape[1]
        diff = (p != c).any(-1) & (np.arange(cap)[None, :] < (size + np.maximum(grow, 0))[:, None])
        first = np.where(diff.any(1), np.argmax(diff, 1), -1)
        last = np.where(diff.any(1), cap - 1 - np.argmax(diff[:, ::-1], 1), -1)
        out.append(np.stack([grow, size, first, last], 1))
    return np.concatenate(out, 1)


def test_mutate_prob_type_and_component_choice_exact():
    """Against the theory, with types whose effect is always visible (sizes 8, no
    limits): P(copy) = 1 - p + p / T, each type p / T, the insert's component uniform."""
    types = ("IDENTITY", "INSERT_INSTRUCTION", "REMOVE_INSTRUCTION", "RANDOMIZE_COMPONENT_FUNCTION",
             "RANDOMIZE_ALGORITHM")
    cfg = dataclasses.replace(STAT_CFG, mutation_types=types, mutate_prob=0.7, size_min=(0, 0, 0),
                              size_max=(None, None, None))
    rng = np.random.default_rng(19)
    programs = [mut.InitialPopulation.from_config("random", (8, 8, 8), cfg)(rng) for _ in range(100)]
    parents = pa.take(pa.from_algorithms(programs), np.arange(N_STAT) % 100)
    sig = _edit_signatures(parents, ArrayMutator(cfg).mutate(rng, parents)).reshape(N_STAT, 3, 4)
    grow, changed = sig[:, :, 0], sig[:, :, 2] >= 0
    outcome = np.select([~changed.any(1), (grow == 1).any(1), (grow == -1).any(1), changed.sum(1) == 1,
                         changed.all(1)], [0, 1, 2, 3, 4], 5)
    p = cfg.mutate_prob / len(types)
    assert not _gof_rejects(outcome, [0, 1, 2, 3, 4], [1 - 4 * p, p, p, p, p])
    assert not _gof_rejects(np.argmax(grow[outcome == 1], 1), [0, 1, 2])


def _both(cfg: mut.MutatorConfig, programs: list[Algorithm], n: int, seed: int):
    """`n` children of the same parents from the reference Mutator and from ArrayMutator."""
    index, rng, reference = np.arange(n) % len(programs), np.random.default_rng(seed), mut.Mutator(cfg)
    parents = pa.take(pa.from_algorithms(programs), index)
    ref = pa.from_algorithms([reference.mutate(rng, programs[i]) for i in index])
    arr = ArrayMutator(cfg).mutate(np.random.default_rng(seed + 1), parents)
    return parents, ref, arr


@pytest.fixture(scope="module")
def stat_runs():
    """All 8 types, mutate_prob 0.8, parents at and beyond the size limits."""
    programs = _random_programs(STAT_CFG, 200, 8, max_sizes=(6, 4, 8))
    programs[0] = programs[0].replace(learn=(mut.NO_OP,) * 3)  # alter of a NO_OP leaves it unchanged
    parents, ref, arr = _both(STAT_CFG, programs, N_STAT, 9)
    return parents, _effects(parents, ref), _effects(parents, arr)


def test_effect_frequencies_match_reference(stat_runs):
    """Copies, each type's visible effect, its component, the changed ops and addresses."""
    _, (ref_keys, ref_changed), (arr_keys, arr_changed) = stat_runs
    assert not _chi2_rejects(ref_keys, arr_keys)
    same, ref_same = arr_keys.get(0, 0) / N_STAT, ref_keys.get(0, 0) / N_STAT
    p, t = STAT_CFG.mutate_prob, len(STAT_CFG.mutation_types)
    assert same >= 1 - p + p / t - 0.01  # copies + IDENTITY, plus blocked / same-value mutations
    assert abs(same - ref_same) < 4 * math.sqrt(2 * same * (1 - same) / N_STAT)
    for k in range(3):  # per component: unchanged, +1, -1, several, one position
        per = [{c: sum(n for key, n in keys.items() if min(key // 200 ** (2 - k) % 200, 4) == c) for c in range(5)}
               for keys in (ref_keys, arr_keys)]
        assert not _chi2_rejects(*per), (COMPONENTS[k], per)
        assert not _chi2_rejects(_counts(ref_changed[k][0][:, :4]), _counts(arr_changed[k][0][:, :4])), k


@pytest.mark.parametrize("change", ["drop", "double"])
def test_checks_reject_a_dropped_or_misweighted_type(stat_runs, change):
    """The effect-frequency test fails for each type dropped or drawn twice as often."""
    parents, (ref_keys, *_), _ = stat_runs
    for t in mut.MUTATION_TYPES:
        types = [x for x in mut.MUTATION_TYPES if x != t] if change == "drop" else [*mut.MUTATION_TYPES, t]
        wrong = ArrayMutator(dataclasses.replace(STAT_CFG, mutation_types=tuple(types)))
        keys, _ = _effects(parents, wrong.mutate(np.random.default_rng(11), parents))
        assert _chi2_rejects(ref_keys, keys), (change, t)


def test_random_instructions_match_reference_and_the_op_table():
    """RANDOMIZE_COMPONENT_FUNCTION on sizes 12: ops uniform over the list, inputs over [0,
    size), outputs over [RANDOM_OUT_ADDRESS_MIN, size), constants over `randomize` ranges."""
    cfg = dataclasses.replace(STAT_CFG, mutation_types=("RANDOMIZE_COMPONENT_FUNCTION",), mutate_prob=1.0)
    rng = np.random.default_rng(12)
    programs = [mut.InitialPopulation.from_config("random", (12, 12, 12), cfg)(rng) for _ in range(50)]
    parents, ref, arr = _both(cfg, programs, 3000, 13)
    for comp in COMPONENTS:
        ref_rows, arr_rows = (c[(p != c).any(-1).any(-1)].reshape(-1, 8)  # every slot of a randomized component
                              for p, c, _, _ in (_pair(parents, children, comp) for children in (ref, arr)))
        ops = list(cfg.ops(comp))
        assert not _chi2_rejects(_counts(ref_rows[:, 0]), _counts(arr_rows[:, 0]))
        assert not _gof_rejects(arr_rows[:, 0], ops), comp
        for op in ops:
            spec = ops_lib.OPS[op]
            r, a = ref_rows[ref_rows[:, 0] == op], arr_rows[arr_rows[:, 0] == op]
            for f, kind in ((1, spec.in1), (2, spec.in2), (3, spec.out)):
                low = ops_lib.RANDOM_OUT_ADDRESS_MIN[kind] if f == 3 and kind else 0
                support = list(range(low, MEM.size(kind))) if kind else [0]
                assert not _gof_rejects(a[:, f], support), (spec.name, f)
                assert not _chi2_rejects(_counts(r[:, f]), _counts(a[:, f])), (spec.name, f)
            for field, lo, hi in spec.randomize:
                j = 4 + ops_lib.CONST_FIELDS.index(field)
                x, y = r[:, j].view(np.float64), a[:, j].view(np.float64)
                assert not _ks_rejects(x, y) and lo <= y.min() and y.max() <= hi, (spec.name, field)
                assert abs(y.mean() - (lo + hi) / 2) < 4 * (hi - lo) / math.sqrt(12 * len(y)), (spec.name, field)
                assert not _ks1_rejects(y, lambda v, lo=lo, hi=hi: (v - lo) / (hi - lo)), (spec.name, field)
                # f0-f2 are float32 values; d is a double (not rounded).
                assert np.array_equal(y, y.astype(np.float32).astype(np.float64)) == (field != "d")
            unused = [4 + i for i, f in enumerate(ops_lib.CONST_FIELDS) if f not in spec.consts]
            assert not a[:, unused].any()


def test_alter_param_matches_reference():
    """ALTER_PARAM only: which field changes, new addresses, altered constants (float32,
    sorted uniform bounds), and the alter rules' laws."""
    cfg = dataclasses.replace(STAT_CFG, mutation_types=("ALTER_PARAM",), mutate_prob=1.0)
    programs = _random_programs(cfg, 300, 14, max_sizes=(6, 4, 8))
    parents, ref, arr = _both(cfg, programs, N_STAT, 15)
    (ref_keys, ref_changed), (arr_keys, arr_changed) = _effects(parents, ref), _effects(parents, arr)
    assert not _chi2_rejects(ref_keys, arr_keys)
    for k, ((ref_new, ref_old), (arr_new, arr_old)) in enumerate(zip(ref_changed, arr_changed, strict=True)):
        assert (arr_new[:, 0] == arr_old[:, 0]).all()  # the op never changes
        for f in (1, 2, 3):
            assert not _chi2_rejects(_counts(ref_new[:, [0, f]]), _counts(arr_new[:, [0, f]])), (k, f)
        for op in cfg.ops(COMPONENTS[k]):
            for f in range(4, 8):
                sel = [(n[:, 0] == op) & (n[:, f] != o[:, f]) for n, o in ((ref_new, ref_old), (arr_new, arr_old))]
                name, x, y = (op, f), ref_new[sel[0], f].view(np.float64), arr_new[sel[1], f].view(np.float64)
                assert len(x) < 30 or (abs(len(x) - len(y)) < 5 * math.sqrt(len(x)) and not _ks_rejects(x, y)), name
                assert f == 4 or np.array_equal(y, y.astype(np.float32).astype(np.float64)), name
        uniform = np.isin(arr_new[:, 0], [59, 60, 61]) & (arr_new[:, 4:] != arr_old[:, 4:]).any(1)  # data altered
        assert uniform.sum() > 100 or not {59, 60, 61} & set(cfg.ops(COMPONENTS[k]))
        assert (arr_new[uniform, 5].view(np.float64) <= arr_new[uniform, 6].view(np.float64)).all()
    _check_alter_rules(ref_changed, arr_changed)


def _check_alter_rules(ref_changed, arr_changed):
    """Pooled by rule (one field changed, sorting ops left out), against theory and the
    reference: uniform01 is U(0, 1); log_scale steps log|new / old| are N(0, 1), sign
    kept; log_scale_or_flip flips the sign with probability 0.1, else the same step."""
    rule_of = {(o.id, 4 + ops_lib.CONST_FIELDS.index(f)): r for o in ops_lib.OPS if not o.sort_after_alter
               for f, r in o.alter}
    for rule in ("uniform01", "log_scale", "log_scale_or_flip"):
        laws = []
        for changed in (ref_changed, arr_changed):
            pairs = [(o[s, f].view(np.float64), n[s, f].view(np.float64)) for n, o in changed
                     for (op, f), r in rule_of.items() if r == rule
                     for s in [((n[:, 4:] != o[:, 4:]).sum(1) == 1) & (n[:, :4] == o[:, :4]).all(1) & (n[:, 0] == op)
                               & (n[:, f] != o[:, f])]]
            old, new = np.concatenate([a for a, _ in pairs]), np.concatenate([b for _, b in pairs])
            assert len(new) > 300, rule
            flip = new == -old
            p = mut.SIGN_FLIP_PROB if rule == "log_scale_or_flip" else 0.0
            step = np.log(np.abs(new[~flip])) - np.log(np.abs(old[~flip]))
            laws.append((new, step, flip.mean()))
            if rule == "uniform01":
                assert not _ks1_rejects(new, lambda v: v), rule
                continue
            assert abs(flip.mean() - p) <= 4 * math.sqrt(p * (1 - p) / len(new)), (rule, flip.mean())
            assert (np.signbit(new[~flip]) == np.signbit(old[~flip])).all(), rule
            assert not _ks1_rejects(step, _NORMAL_CDF), rule
        assert not _ks_rejects(laws[0][0], laws[1][0]) and abs(laws[0][2] - laws[1][2]) < 0.03, rule
        assert rule == "uniform01" or not _ks_rejects(laws[0][1], laws[1][1]), rule


def test_insert_remove_trade_positions_match_reference():
    """Where INSERT / REMOVE / TRADE act (distinct random instructions: the edited span is
    visible): inserts uniform over [0, size], removals over [0, size), trades' over [0, size]."""
    cfg = dataclasses.replace(STAT_CFG, mutation_types=("INSERT_INSTRUCTION", "REMOVE_INSTRUCTION", "TRADE_INSTRUCTION"),
                              mutate_prob=1.0)
    rng = np.random.default_rng(16)
    programs = [mut.InitialPopulation.from_config("random", sizes, cfg)(rng)
                for sizes in [(5, 4, 6), (4, 0, 7), (1, 1, 2)] * 20]
    parents, ref, arr = _both(cfg, programs, N_STAT, 17)
    sig_ref, sig_arr = _edit_signatures(parents, ref), _edit_signatures(parents, arr)
    assert not _chi2_rejects(_counts(sig_ref), _counts(sig_arr))
    for k in range(3):
        grow, size, first, last = sig_arr[:, 4 * k:4 * k + 4].T
        for n, (g, slots) in itertools.product(np.unique(size), ((1, 1), (-1, 0))):
            sel = (grow == g) & (size == n)
            assert not sel.any() or not _gof_rejects(first[sel], list(range(n + slots))), (k, n, g)
            assert (last[sel] == n + slots - 1).all()
    # Trade alone (Learn only): unchanged with probability 1 / (size + 1), the new instruction removed again.
    cfg = dataclasses.replace(cfg, mutation_types=("TRADE_INSTRUCTION",), setup_ops=(), predict_ops=())
    parents, ref, arr = _both(cfg, programs, 6000, 18)
    sig_ref, sig_arr = _edit_signatures(parents, ref)[:, 8:], _edit_signatures(parents, arr)[:, 8:]
    assert not _chi2_rejects(_counts(sig_ref), _counts(sig_arr))
    for n in (2, 6, 7):
        same = (sig_arr[sig_arr[:, 1] == n, 2] == -1)
        assert abs(same.mean() - 1 / (n + 1)) < 4 * math.sqrt(1 / (n + 1) / len(same)), (n, same.mean())
