"""Search difficulty (AutoML-Zero §4.1, Figure 4): how much better regularized
evolution is than random search (RS) at equal budgets.

  azero-search-difficulty --output_dir=runs/difficulty      # the default table (linear, ~6 min on 2 cores)
  azero-search-difficulty --families=linear,nn --repeats=10 --individuals=5000

(or `python experiments/search_difficulty.py ...` from a checkout).

Our reading of the paper's measure. A *run* is one search with a fixed
budget of individuals (evaluated programs). It *succeeds* when the program
it returns (evolution: the best of its final population; RS: the best
program it drew, the same rule as `search.evolution.result`) has a select
fitness strictly above that of the hand-written reference program (the
reference Generator's `linear` / `neural_net` program, `programs.py`) on
the same select tasks. The *success rate* of a method is the fraction of
its runs that succeed; the paper reports the evolution / RS ratio of
success rates per task family, in a search space restricted to the ops the
reference program needs (so that RS succeeds sometimes), and finds it grows
with task difficulty (about 5x for linear regression). This script measures
that table on this package's evaluators.

Families (`FAMILIES`): `linear` is the demo's search tasks (demo_search,
10 linear tasks, F=4, 100 train / 100 valid) with 100 held-out select tasks
of the same size, in the restricted space of run_integration_test_linear.sh
(Setup: SCALAR_CONST_SET, Predict: VECTOR_INNER_PRODUCT, Learn:
SCALAR_DIFF, SCALAR_PRODUCT, SCALAR_VECTOR_PRODUCT, VECTOR_SUM; sizes 5/1/4,
memory 4,3,1), random initial programs; `nn` is the 2-layer-NN teacher
(search: nn_teacher, select: nn_teacher_heldout) in the space of the
hand-written neural net's own 15 ops (sizes 3/5/11 as that program, memory
5,9,2), random initial programs. Both use the demo's mutation types
(ALTER_PARAM, RANDOMIZE_INSTRUCTION, RANDOMIZE_COMPONENT_FUNCTION). Why
select tasks of the search tasks' size and not demo_select (1000 train):
there the reference (SGD, lr 0.01) reaches 0.99994, which only a
near-exact SGD linear regressor with a better rate beats, so a success
would measure the rediscovery of one program; on 100 examples the
reference reaches 0.632, and any better learner found (SGD with a better
rate, a Hebbian w += c*y*x, ...) counts, as the paper compares with the
reference in the search's own setting.

Defaults (pilots on the 2-core development machine): `linear` only, 40
runs per method of 30,000 individuals (population 100, tournament 10, 50
children per step): about 6 minutes on a quiet machine (evolution 6/40
successes, RS 0/40; at 10,000 individuals neither method succeeded in 10
runs). `nn` is opt-in (`--families=linear,nn`): its programs are 19
instructions on 1000 examples, about 4x slower per individual, and at
budgets of this size neither method beats the hand-written net (0/10 each
at 5,000 individuals; the paper's budgets were orders of magnitude larger).

Design:
- Equal budgets: every run evaluates exactly the same number of programs
  `n = P + steps * k` (population P, k children per step; `--individuals` is
  rounded up to that form, and RS gets the same n).
- The R evolution runs of a family are R islands of ONE search without
  migration (independent searches, one batched evaluator call per step for
  all of them); RS draws all runs' programs in blocks, also one call per
  block. The FEC cache is off: a cache shared by the islands would couple
  the runs (and the binomial statistics assume independent runs).
- Determinism: every random draw comes from generators seeded by `--seed`,
  the family and the method (`_seed`); the evaluations are deterministic
  functions of (program, task, seed). Same flags => identical table.
- Statistics: a 95% Wilson score interval per success rate (sensible at
  0 or R successes, where the normal interval collapses), and a 95% Katz
  (delta-method, log scale) interval for the ratio, with the
  Haldane-Anscombe 0.5 correction when a count is 0: a bootstrap is
  degenerate there (a method with no success never succeeds in a
  resample, so every resampled ratio is inf), and with RS at 0 that case is
  the common one. The ratio itself is reported uncorrected (inf when RS
  never succeeded, nan when neither did).
"""

from __future__ import annotations

from azero_jax import cpu_devices

cpu_devices.use_cpu_cores_or_exit()  # one XLA host device per core; before anything imports JAX

import dataclasses  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from azero_jax import cli, experiment, fileio  # noqa: E402
from azero_jax import program_arrays as pa  # noqa: E402
from azero_jax import programs as programs_lib  # noqa: E402
from azero_jax import tasks as tasks_lib  # noqa: E402
from azero_jax.evaluation import Evaluator  # noqa: E402
from azero_jax.experiment.evaluators import build_search, make_evaluator  # noqa: E402
from azero_jax.program import Algorithm  # noqa: E402
from azero_jax.search import evolution as evolution_lib  # noqa: E402
from azero_jax.search import mutator as mutator_lib  # noqa: E402

Z95 = 1.959963984540054
RS_BLOCK = 4096  # programs per RS evaluator call (all runs together)

_NN_OPS = {
    "setup_ops": ["VECTOR_GAUSSIAN_SET", "MATRIX_GAUSSIAN_SET", "SCALAR_CONST_SET"],
    "predict_ops": ["MATRIX_VECTOR_PRODUCT", "VECTOR_SUM", "VECTOR_MAX", "VECTOR_INNER_PRODUCT", "SCALAR_SUM"],
    "learn_ops": ["SCALAR_DIFF", "SCALAR_PRODUCT", "SCALAR_SUM", "SCALAR_VECTOR_PRODUCT", "VECTOR_SUM",
                  "VECTOR_HEAVYSIDE", "VECTOR_PRODUCT", "VECTOR_OUTER_PRODUCT", "MATRIX_SUM"],
}
_COMMON = dict(initial_population="random", allowed_mutation_types=list(mutator_lib.DEMO_MUTATION_TYPES),
               mutate_prob=0.9, fec=None, train_budget=None, max_experiments=1, num_islands=1, migration_every=0)


# 100 held-out linear tasks the size of the demo's search tasks (F=4, 100 train / 100 valid).
_HELDOUT_LINEAR = {"kind": "linear", "features": 4, "num_train": 100, "num_valid": 100, "num_tasks": 100,
                   "data_seeds": [3000000], "param_seeds": [4000000]}


@dataclasses.dataclass(frozen=True)
class Family:
    """A task family: its search space and tasks (config fields over the
    `preset`) and the hand-written reference program it must beat."""

    name: str
    reference: str  # programs.hand_written name
    preset: str
    fields: dict[str, Any]


FAMILIES = {
    "linear": Family("linear", "linear", "integration_linear", dict(
        search_tasks=["demo_search"], select_tasks=[_HELDOUT_LINEAR], final_tasks=[_HELDOUT_LINEAR],
        setup_size_init=5, predict_size_init=1, learn_size_init=4, memory=[4, 3, 1])),
    "nn": Family("nn", "neural_net", "integration_nonlinear", dict(
        search_tasks=["nn_teacher"], select_tasks=["nn_teacher_heldout"], final_tasks=["nn_teacher_heldout"],
        setup_size_init=3, predict_size_init=5, learn_size_init=11, memory=[5, 9, 2],
        mutate_setup_size_min=0, mutate_setup_size_max=None, mutate_predict_size_min=0,
        mutate_predict_size_max=None, mutate_learn_size_min=0, mutate_learn_size_max=None, **_NN_OPS)),
}


def family_config(family: str, *, population_size: int = 100, tournament_size: int = 10,
                  children_per_step: int = 50, backend: str = "xla", dtype: str = "float64") -> experiment.ExperimentConfig:
    """The validated search config of `family` (one run; `num_islands` is set per measurement)."""
    fam = FAMILIES[family]
    return experiment.get_preset(fam.preset).replace(
        **_COMMON, **fam.fields, population_size=population_size, tournament_size=tournament_size,
        children_per_step=children_per_step, backend=backend, dtype=dtype)


def _seed(seed: int, *parts: int) -> int:
    """A 31-bit seed for one stream of the measurement (seed, family, method, ...)."""
    return int(np.random.SeedSequence([seed, *parts]).generate_state(1)[0] >> 1)


def budget(individuals: int, population_size: int, children_per_step: int) -> tuple[int, int]:
    """(steps, n): the evolution steps per run and the individuals each run
    then evaluates, n = P + steps * k >= max(individuals, P)."""
    steps = max(0, math.ceil((individuals - population_size) / children_per_step))
    return steps, population_size + steps * children_per_step


def _search(config: experiment.ExperimentConfig, seed: int) -> tuple[Evaluator, evolution_lib.RegularizedEvolution]:
    """The search evaluator and evolution of `config`, the driver's assembly
    (`build_search`; the families set no FEC, train budget or hurdles)."""
    specs = config.task_specs("search")
    return build_search(config, specs, tasks_lib.make_tasks(specs), evaluator_seed=seed)


def run_evolution(config: experiment.ExperimentConfig, repeats: int, steps: int, seed: int) -> list[Algorithm]:
    """`repeats` independent regularized-evolution runs (islands without
    migration, one evaluator call per step), `steps` steps each; each run's
    best program of its final population."""
    _, evo = _search(config.replace(num_islands=repeats, migration_every=0), _seed(seed, 0))
    state = evo.init(np.random.default_rng(_seed(seed, 1)))
    for _ in range(steps):
        state = evo.step(state)
    return [island.program(evolution_lib.best_index(island.fitnesses)) for island in state.islands]


def run_random_search(config: experiment.ExperimentConfig, repeats: int, individuals: int,
                      seed: int) -> list[Algorithm]:
    """`repeats` independent random-search runs of `individuals` fresh
    programs from the initial-population generator (each run its own
    stream); each run's best program (the first of its best on ties)."""
    evaluator, evo = _search(config, _seed(seed, 0))
    generator = evo.generator
    rngs = [np.random.default_rng(_seed(seed, 2, r)) for r in range(repeats)]
    best_fit = np.full(repeats, -np.inf)
    best: list[Algorithm | None] = [None] * repeats
    block = max(1, RS_BLOCK // repeats)
    for start in range(0, individuals, block):
        count = min(block, individuals - start)
        programs = [generator(rng) for rng in rngs for _ in range(count)]
        fits = np.asarray(evaluator.evaluate(pa.from_algorithms(programs)), dtype=np.float64).reshape(repeats, count)
        for r in range(repeats):
            i = evolution_lib.best_index(fits[r])
            if fits[r, i] > best_fit[r]:
                best_fit[r], best[r] = fits[r, i], programs[r * count + i]
    return [b for b in best if b is not None]


def select_fitnesses(config: experiment.ExperimentConfig, family: str, programs: Sequence[Algorithm],
                     seed: int) -> tuple[float, np.ndarray]:
    """(the reference program's select fitness, each program's), from one
    batched evaluation on the family's select tasks (no FEC, mean over
    tasks, like the driver's select phase)."""
    tasks = tasks_lib.make_tasks(config.task_specs("select"))
    memory = config.memory_shape(tasks[0].features)
    evaluator = make_evaluator(config, tasks, memory, seed=_seed(seed, 3))
    reference = programs_lib.hand_written(FAMILIES[family].reference)
    fits = np.asarray(evaluator.evaluate(pa.from_algorithms([reference, *programs])), dtype=np.float64)
    return float(fits[0]), fits[1:]


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # Exact ends at 0 and n successes (the formula gives them up to rounding).
    return (0.0 if successes == 0 else max(0.0, center - half), 1.0 if successes == n else min(1.0, center + half))


def _ratio(a: float, b: float) -> float:
    """a / b, with inf for a > 0 = b and nan for 0 / 0."""
    if b > 0:
        return a / b
    return math.inf if a > 0 else math.nan


def ratio_interval(evo_successes: int, rs_successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% interval of p_evo / p_rs by the delta method on the log ratio
    (Katz): log(RR) +- z * sqrt(1/a - 1/n + 1/b - 1/n). With a zero count,
    0.5 is added to every cell of the 2x2 table (Haldane-Anscombe), which
    keeps the interval finite and informative; (nan, nan) when neither
    method succeeded."""
    a, b, na, nb = float(evo_successes), float(rs_successes), float(n), float(n)
    if a == 0 and b == 0:
        return (math.nan, math.nan)
    if a == 0 or b == 0:
        a, b, na, nb = a + 0.5, b + 0.5, na + 1.0, nb + 1.0
    log_rr = math.log((a / na) / (b / nb))
    se = math.sqrt(1 / a - 1 / na + 1 / b - 1 / nb)
    return (math.exp(log_rr - z * se), math.exp(log_rr + z * se))


def measure(family: str, *, repeats: int, individuals: int, seed: int, backend: str = "xla",
            population_size: int = 100, tournament_size: int = 10, children_per_step: int = 50,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """One row of the table: `repeats` evolution and RS runs of equal
    budget on `family`, their select-fitness successes against the
    reference program, rates with Wilson intervals and the ratio."""
    fam_id = list(FAMILIES).index(family)
    config = family_config(family, population_size=population_size, tournament_size=tournament_size,
                           children_per_step=children_per_step, backend=backend)
    steps, n = budget(individuals, population_size, children_per_step)
    row: dict[str, Any] = {"family": family, "reference_program": FAMILIES[family].reference, "repeats": repeats,
                           "individuals_per_run": n}
    bests = {}
    for method, run in (("evolution", lambda: run_evolution(config, repeats, steps, _seed(seed, fam_id, 0))),
                        ("random_search", lambda: run_random_search(config, repeats, n, _seed(seed, fam_id, 1)))):
        start = time.monotonic()
        bests[method] = run()
        row[f"{method}_seconds"] = round(time.monotonic() - start, 1)
        log(f"{family}: {repeats} {method} runs of {n} individuals in {row[f'{method}_seconds']:.1f}s")
    reference, fits = select_fitnesses(config, family, bests["evolution"] + bests["random_search"],
                                       _seed(seed, fam_id, 2))
    row["reference_select_fitness"] = reference
    for i, method in enumerate(("evolution", "random_search")):
        mine = fits[i * repeats:(i + 1) * repeats]
        wins = int(np.sum(mine > reference))
        row[method] = {"successes": wins, "runs": repeats, "rate": wins / repeats, "wilson95": list(wilson(wins, repeats)),
                       "best_select_fitness": float(mine.max()), "median_select_fitness": float(np.median(mine))}
    evo, rs = row["evolution"]["successes"], row["random_search"]["successes"]
    row["ratio"] = _ratio(evo / repeats, rs / repeats)
    row["ratio_katz95"] = list(ratio_interval(evo, rs, repeats))
    return row


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The success-rate table as text."""
    def rate(d: dict[str, Any]) -> str:
        lo, hi = d["wilson95"]
        return f"{d['successes']:>3}/{d['runs']:<3} = {d['rate']:.2f} [{lo:.2f}, {hi:.2f}]"

    lines = [f"{'family':<7} {'budget':>7} {'reference':>9}  {'evolution success [Wilson 95%]':<30}  "
             f"{'random search success [Wilson 95%]':<34}  evo/RS [Katz 95%]"]
    for r in rows:
        lo, hi = r["ratio_katz95"]
        lines.append(f"{r['family']:<7} {r['individuals_per_run']:>7} {r['reference_select_fitness']:>9.5f}  "
                     f"{rate(r['evolution']):<30}  {rate(r['random_search']):<34}  "
                     f"{r['ratio']:.2f} [{lo:.2f}, {hi:.2f}]")
    return "\n".join(lines)


# ---------------------------------------------------------------- flags --
_FLAGS: dict[str, flags.FlagHolder] = {}


def define_flags() -> None:
    if _FLAGS:
        return
    _FLAGS["repeats"] = flags.DEFINE_integer("repeats", 40, "runs per method and family", lower_bound=1)
    _FLAGS["individuals"] = flags.DEFINE_integer("individuals", 30000, "budget per run: individuals evaluated "
                                                 "(rounded up to population + steps x children_per_step)",
                                                 lower_bound=1)
    _FLAGS["families"] = flags.DEFINE_list("families", ["linear"], f"task families ({', '.join(FAMILIES)})")
    _FLAGS["backend"] = flags.DEFINE_enum("backend", "xla", ["xla", "reference", "pallas"], "evaluation backend")
    _FLAGS["seed"] = flags.DEFINE_integer("seed", 1, "seed of every random draw", lower_bound=0)
    _FLAGS["population_size"] = flags.DEFINE_integer("population_size", 100, "evolution's population", lower_bound=2)
    _FLAGS["tournament_size"] = flags.DEFINE_integer("tournament_size", 10, "evolution's tournament", lower_bound=1)
    _FLAGS["children_per_step"] = flags.DEFINE_integer("children_per_step", 50, "evolution's children per step",
                                                       lower_bound=1)
    _FLAGS["output_dir"] = flags.DEFINE_string("output_dir", None, "writes search_difficulty.json (the table) there")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    f = {k: v.value for k, v in _FLAGS.items()}
    unknown = [name for name in f["families"] if name not in FAMILIES]
    if unknown:
        cli.fail(f"unknown --families {', '.join(unknown)}; valid: {', '.join(FAMILIES)}")
    if f["children_per_step"] > f["population_size"]:
        cli.fail("--children_per_step cannot exceed --population_size")
    start = time.monotonic()
    settings = {k: f[k] for k in ("repeats", "individuals", "backend", "seed", "population_size", "tournament_size",
                                  "children_per_step")}
    rows = [measure(name, **settings) for name in f["families"]]
    table = format_table(rows)
    print(table)
    print(f"total {time.monotonic() - start:.0f}s; success = the run's best beats the hand-written reference's "
          "select fitness; ratio = evolution / random-search success rate")
    if f["output_dir"]:
        os.makedirs(f["output_dir"], exist_ok=True)
        path = os.path.join(f["output_dir"], "search_difficulty.json")
        fileio.atomic_write_json(path, {"settings": {**settings, "families": f["families"]}, "rows": rows,
                                        "table": table, "seconds": round(time.monotonic() - start, 1)})
        print(f"wrote {path}")


def cli_main(argv: list[str] | None = None) -> None:
    """The `azero-search-difficulty` console script."""
    define_flags()
    cli.run_app(main, __name__, argv)


if __name__ == "__main__":
    cli_main()
