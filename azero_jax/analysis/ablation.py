"""What each part of a found program is worth: ablation and constant re-tuning.

* `ablate`: for every *live* instruction (`liveness.live_instructions`: dead
  code cannot change a result, so ablating it would only pad the table; on
  multiclass tasks by their layout, prediction v2 and label v1), the
  program with that instruction replaced by a NO_OP, and with each constant
  the op reads (`ops.Op.consts`) set to 0 and to 1; the table is sorted by
  impact, |base fitness - variant fitness|, largest first. A NO_OP keeps
  every position, so the random-set ops elsewhere keep their streams (keyed
  by instruction position) and the only change is the one ablated.
* `retune_constants`: the paper's final-evaluation step for an evolved
  program: a random search over log-uniform factors of its tunable constants
  (`tunable_constants`), trial 0 = the program as found, the best trial on
  the select tasks, its fitness on the final tasks. `baselines.retune_program`
  is this function plus the baselines' result form.

Both evaluate all their programs (base and variants; all trials) in ONE call
of `evaluation.task_results` on the chosen backend: a batched backend
compiles once and fills its lanes with the whole table instead of paying a
dispatch per variant, and the reference backend gives the same numbers (in
float64, up to the last-ulp summation order of `dot`), so the table does not
depend on where it was computed. Task fitnesses are combined per program
with `fitness.combine` (the driver's select/final rule: mean by default).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from azero_jax import evaluation, liveness, serialization
from azero_jax import fitness as fitness_lib
from azero_jax import ops as ops_lib
from azero_jax.multiclass import tasks_are_multiclass
from azero_jax.program import COMPONENT_TITLES, COMPONENTS, NO_OP, Algorithm, MemoryShape
from azero_jax.tasks import Task

NO_OP_CHANGE = "no_op"  # AblationRow.change of an instruction replaced by a NO_OP
CONST_CHANGE = "const"  # ... of one constant set to a value
CONST_VALUES = (0.0, 1.0)  # the values each used constant is set to
RETUNE_FACTOR_RANGE = (0.1, 10.0)  # log-uniform factor of each tunable constant per trial
RETUNE_STREAM = 2  # retune's random stream is default_rng([seed, RETUNE_STREAM]) (the baselines' numbering)

Site = tuple[str, int, tuple[str, ...]]  # (component, position, constant fields)


# ---------------------------------------------------------------- ablation --

@dataclasses.dataclass(frozen=True)
class Variant:
    """One ablated copy of a program and what was changed in it."""

    label: str  # e.g. "Learn[3] -> NoOp", "Setup[0].d = 0"
    component: str  # "setup" | "predict" | "learn"
    position: int  # index of the instruction in its component (dead code counted)
    change: str  # NO_OP_CHANGE or CONST_CHANGE
    field: str | None  # the constant set (CONST_CHANGE), else None
    value: float | None  # the value it was set to (CONST_CHANGE), else None
    program: Algorithm


@dataclasses.dataclass(frozen=True)
class AblationRow:
    """One variant's result: `delta` = fitness - base fitness (negative: the
    ablated part helped), `instruction` the original instruction as printed."""

    label: str
    component: str
    position: int
    change: str
    field: str | None
    value: float | None
    instruction: str
    fitness: float
    delta: float

    @property
    def impact(self) -> float:
        """|delta|; a NaN fitness counts as the largest impact."""
        return abs(self.delta) if not math.isnan(self.delta) else math.inf

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class AblationResult:
    """The base program's fitness and one row per variant, sorted by impact
    (ties keep program order: Setup, Predict, Learn, instruction by
    instruction, the NO_OP before the constants)."""

    base_fitness: float
    rows: tuple[AblationRow, ...]
    backend: str
    dtype: str
    seed: int
    combination: str
    num_tasks: int

    def to_dict(self) -> dict[str, Any]:
        return {"base_fitness": self.base_fitness, "backend": self.backend, "dtype": self.dtype, "seed": self.seed,
                "combination": self.combination, "num_tasks": self.num_tasks,
                "rows": [r.to_dict() for r in self.rows]}


def _label(component: str, position: int) -> str:
    return f"{COMPONENT_TITLES[component]}[{position}]"


def _with_instruction(program: Algorithm, component: str, position: int, instr) -> Algorithm:
    code = list(program.component(component))
    code[position] = instr
    return program.replace(**{component: tuple(code)})


def ablation_variants(program: Algorithm, *, multiclass: bool = False) -> list[Variant]:
    """The variants `ablate` evaluates, in program order: per live
    instruction, a NO_OP in its place, then each constant it uses
    (`Op.consts`, in field order) set to each of `CONST_VALUES`. Their
    number is live instructions + 2 x constants used by live instructions.
    `multiclass`: liveness by the multiclass layout (prediction v2, label v1;
    `azero_jax.multiclass`) instead of the binary / regression one (s1, s0)."""
    out: list[Variant] = []
    for component, mask in zip(COMPONENTS, liveness.live_instructions(program, multiclass=multiclass), strict=True):
        for position, (instr, alive) in enumerate(zip(program.component(component), mask, strict=True)):
            if not alive:
                continue
            where = _label(component, position)
            out.append(Variant(f"{where} -> NoOp", component, position, NO_OP_CHANGE, None, None,
                               _with_instruction(program, component, position, NO_OP)))
            for field in instr.spec.consts:
                for value in CONST_VALUES:
                    changed = dataclasses.replace(instr, **{field: value})
                    out.append(Variant(f"{where}.{field} = {value:g}", component, position, CONST_CHANGE, field,
                                       value, _with_instruction(program, component, position, changed)))
    return out


def combined_fitness(programs: Sequence[Algorithm], tasks: Sequence[Task], memory: MemoryShape, *,
                     backend: str = "reference", dtype: str = "float64", seed: int = 0,
                     combination: str = fitness_lib.MEAN,
                     max_abs_error: float = fitness_lib.MAX_ABS_ERROR) -> np.ndarray:
    """Each program's fitness over `tasks` (select/final evaluation: all
    epochs, no FEC, no train budget, one random stream `seed`), from ONE
    batched `evaluation.task_results` call; `memory`'s F is taken from the
    tasks. A bad backend or dtype is a ValueError naming the choices."""
    if not tasks:
        raise ValueError("no tasks to evaluate on")
    backend = evaluation.resolve_backend(backend, tasks[0].features)
    if backend == "reference" and dtype != "float64":
        raise ValueError(f"the reference backend computes in float64, not {dtype}")
    result = evaluation.task_results(list(programs), list(tasks), memory.with_features(tasks[0].features),
                                     seed=seed, backend=backend, dtype=dtype, max_abs_error=max_abs_error)
    return np.array([fitness_lib.combine(row, combination) for row in result.fitness.tolist()], dtype=np.float64)


def ablate(program: Algorithm, tasks: Sequence[Task], memory: MemoryShape, *, backend: str = "reference",
           dtype: str = "float64", seed: int = 0, combination: str = fitness_lib.MEAN,
           max_abs_error: float = fitness_lib.MAX_ABS_ERROR) -> AblationResult:
    """The ablation table of `program` on `tasks`: the base program and
    every `ablation_variants` entry evaluated in one batched call. Live code
    follows the tasks' layout (`tasks_are_multiclass`: all multiclass, or
    none)."""
    variants = ablation_variants(program, multiclass=tasks_are_multiclass(tasks))
    fit = combined_fitness([program, *(v.program for v in variants)], tasks, memory, backend=backend, dtype=dtype,
                           seed=seed, combination=combination, max_abs_error=max_abs_error)
    base = float(fit[0])
    rows = [AblationRow(v.label, v.component, v.position, v.change, v.field, v.value,
                        serialization.format_instruction(program.component(v.component)[v.position]),
                        float(f), float(f) - base)
            for v, f in zip(variants, fit[1:].tolist(), strict=True)]
    rows.sort(key=lambda r: -r.impact)  # stable: ties keep program order
    return AblationResult(base, tuple(rows), evaluation.resolve_backend(backend, tasks[0].features), dtype, seed,
                          combination, len(tasks))


def format_ablation(result: AblationResult) -> str:
    """The table as fixed-width text, one line per variant, most impact first."""
    tasks = f"{result.num_tasks} task{'s' * (result.num_tasks != 1)}"
    lines = [f"base fitness {result.base_fitness:.6f} ({result.combination} over {tasks}, {result.backend} "
             f"backend, {result.dtype}, seed {result.seed}); delta = variant - base"]
    if not result.rows:
        return "\n".join([*lines, "  (no live instructions: nothing to ablate)"])
    width = max([len(r.label) for r in result.rows] + [len("change")])
    instr_width = max([len(r.instruction) for r in result.rows] + [len("instruction")])
    lines.append(f"{'rank':>4}  {'change':<{width}}  {'instruction':<{instr_width}}  {'fitness':>10}  {'delta':>10}")
    for rank, r in enumerate(result.rows, 1):
        lines.append(f"{rank:>4}  {r.label:<{width}}  {r.instruction:<{instr_width}}  {r.fitness:>10.6f}  "
                     f"{r.delta:>+10.6f}")
    return "\n".join(lines)


# ------------------------------------------------------- constant re-tuning --

def tunable_constants(program: Algorithm) -> list[Site]:
    """(component, position, fields) of the constants the re-tuning scales:
    d of SCALAR_CONST_SET (learning rates, ...), the spread of the Gaussian
    sets (f1) and both bounds of the uniform sets (f0, f1). Means, element
    indices and single const-set elements are left alone: a scale factor
    means nothing for an index, and a mean of 0 (the usual) would not move."""
    out: list[Site] = []
    for c in COMPONENTS:
        for i, instr in enumerate(program.component(c)):
            name = ops_lib.OPS[instr.op].name
            if name == "SCALAR_CONST_SET_OP":
                out.append((c, i, ("d",)))
            elif name.endswith("_GAUSSIAN_SET_OP"):
                out.append((c, i, ("f1",)))
            elif name.endswith("_UNIFORM_SET_OP"):
                out.append((c, i, ("f0", "f1")))
    return out


def scale_constants(program: Algorithm, factors: Sequence[float], sites: Sequence[Site]) -> Algorithm:
    """`program` with each site's fields multiplied by its factor."""
    comps = {c: list(program.component(c)) for c in COMPONENTS}
    for factor, (c, i, fields) in zip(factors, sites, strict=True):
        instr = comps[c][i]
        comps[c][i] = dataclasses.replace(instr, **{f: getattr(instr, f) * factor for f in fields})
    return program.replace(**{c: tuple(v) for c, v in comps.items()})


def site_labels(sites: Sequence[Site]) -> list[str]:
    """"setup[2].d", "setup[0].f0/f1", ... (the form results files carry)."""
    return [f"{c}[{i}].{'/'.join(f)}" for c, i, f in sites]


@dataclasses.dataclass(frozen=True)
class RetuneResult:
    """The best re-tuning trial: its program, factors (one per site) and
    select fitness; trial 0 (factors 1) is the program as given, so
    `select_fitness >= original_select_fitness`. `final_fitness` is the
    chosen program's fitness on the final tasks (None when none were given)."""

    program: Algorithm
    sites: tuple[Site, ...]
    factors: tuple[float, ...]
    best_trial: int
    trials: int
    select_fitness: float
    original_select_fitness: float
    final_fitness: float | None
    trial_fitness: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"sites": site_labels(self.sites), "factors": list(self.factors), "best_trial": self.best_trial,
                "trials": self.trials, "select_fitness": self.select_fitness,
                "original_select_fitness": self.original_select_fitness, "final_fitness": self.final_fitness,
                "program_text": serialization.format_algorithm(self.program)}


def log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """One log-uniform draw in `bounds` (the re-tuning's and the baselines' tuning draws)."""
    return float(math.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1]))))


def retune_candidates(program: Algorithm, trials: int, rng: np.random.Generator,
                      factor_range: tuple[float, float] = RETUNE_FACTOR_RANGE
                      ) -> tuple[list[Site], list[list[float]], list[Algorithm]]:
    """The sites, each trial's factors and each trial's program: trial 0 is
    the program unchanged; a program without tunable constants has only it
    (every trial would be the same program)."""
    sites = tunable_constants(program)
    factors: list[list[float]] = [[1.0] * len(sites)]
    candidates = [program]
    for _ in range(1, max(1, trials) if sites else 1):
        drawn = [log_uniform(rng, factor_range) for _ in sites]  # site by site: the baselines' draw order
        factors.append(drawn)
        candidates.append(scale_constants(program, drawn, sites))
    return sites, factors, candidates


def retune_constants(program: Algorithm, select_tasks: Sequence[Task], memory: MemoryShape, *, trials: int = 20,
                     seed: int = 0, final_tasks: Sequence[Task] | None = None, backend: str = "reference",
                     dtype: str = "float64", combination: str = fitness_lib.MEAN,
                     max_abs_error: float = fitness_lib.MAX_ABS_ERROR,
                     factor_range: tuple[float, float] = RETUNE_FACTOR_RANGE) -> RetuneResult:
    """Random search over log-uniform factors (`factor_range`) of the
    program's tunable constants, `trials` programs in all (trial 0 = as
    given), all scored on `select_tasks` in one batched call; the best (the
    first of equals, so the program as given wins ties) is scored on
    `final_tasks`. The factors come from default_rng([seed, RETUNE_STREAM]);
    the same `seed` keys the random-op stream of every evaluation."""
    rng = np.random.default_rng([seed, RETUNE_STREAM])
    sites, factors, candidates = retune_candidates(program, trials, rng, factor_range)
    common = dict(backend=backend, dtype=dtype, seed=seed, combination=combination, max_abs_error=max_abs_error)
    select = combined_fitness(candidates, select_tasks, memory, **common)
    best = int(np.argmax(select))
    final = None
    if final_tasks is not None:
        final = float(combined_fitness([candidates[best]], final_tasks, memory, **common)[0])
    return RetuneResult(candidates[best], tuple(sites), tuple(factors[best]), best, len(candidates),
                        float(select[best]), float(select[0]), final, tuple(float(f) for f in select.tolist()))


def format_retune(result: RetuneResult) -> str:
    """A few lines: what was tuned, the fitness before and after, the program."""
    if not result.sites:
        return (f"re-tuning: no tunable constants (scalar const-sets, Gaussian spreads, uniform bounds); the "
                f"program is unchanged, fitness {result.select_fitness:.6f}")
    factors = ", ".join(f"{label} x{f:.4g}" for label, f in zip(site_labels(result.sites), result.factors,
                                                                strict=True))
    lines = [f"re-tuning: {result.trials} trials over {len(result.sites)} constant site(s); best trial "
             f"{result.best_trial} ({factors})",
             f"  select fitness {result.original_select_fitness:.6f} -> {result.select_fitness:.6f}"
             + ("" if result.final_fitness is None else f", final fitness {result.final_fitness:.6f}")]
    if result.best_trial:
        lines.append("  re-tuned program:")
        lines.extend("  " + line for line in serialization.format_algorithm(result.program).splitlines())
    return "\n".join(lines)
