"""Search experiments: config schema, search -> select -> final driver,
progress logging, results and checkpoint/resume (spec §14-§18).

`ExperimentConfig` mirrors the reference's `SearchExperimentSpec` plus the
driver flags of `run_search_experiment.cc` and this package's extensions, as
one JSON-able schema. `run_experiments` is the reference driver loop:

  repeat: search (regularized evolution on T_search) -> best of the final
          population -> evaluate on T_select (fresh seed, MEAN, no FEC, no
          budget) -> keep it if select fitness >= best so far
  until best select fitness > sufficient_fitness or max_experiments done;
  then evaluate the kept program once on T_final.

Determinism and resume: every random draw comes from serialized state (the
main NumPy generator, drawn only at experiment boundaries, and the evolution
state's own generator), checkpoints are taken only at sweep boundaries, and
all evaluations are deterministic functions of (program, task, seed). So a run
resumed from any checkpoint ends with exactly the result of an uninterrupted
run (as long as the wall-clock budget `max_seconds` does not decide the stop).
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from azero_jax import checkpoint as checkpoint_lib
from azero_jax import fitness as fitness_lib
from azero_jax import liveness, serialization
from azero_jax import ops as ops_lib
from azero_jax import programs as programs_lib
from azero_jax import tasks as tasks_lib
from azero_jax.program import COMPONENTS, Algorithm, MemoryShape
from azero_jax.search import evolution as evolution_lib
from azero_jax.search import mutator as mutator_lib
from azero_jax.search.evaluator import CachedEvaluator, ReferenceEvaluator
from azero_jax.search.fec import FECCache, FECSpec
from azero_jax.search.train_budget import DEFAULT_THRESHOLD_FACTOR, TrainBudget

BACKENDS = ("reference", "jax")
IMPLEMENTED_BACKENDS = ("reference", "jax")
DTYPES = ("float64", "float32")
COMBINATIONS = (fitness_lib.MEAN, fitness_lib.MEDIAN)

# Fields that only steer how long a run goes or how it reports; they may
# change between a run and its resume (everything else is hashed into the
# checkpoint and must match).
RUN_CONTROL_FIELDS = ("max_experiments", "max_train_steps", "max_seconds", "sufficient_fitness", "progress_every",
                      "checkpoint_path", "checkpoint_every_seconds", "search_sufficient_fitness")

TaskEntry = str | dict[str, Any]


class ConfigError(ValueError):
    """An invalid experiment config (unknown key, bad value, unusable preset)."""


# --------------------------------------------------------------- checks --

def _int(name: str, value: Any, low: int | None = None, *, allow_none: bool = False) -> int | None:
    """An integer (an integral float like 2e8 from JSON is accepted)."""
    if value is None and allow_none:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"ExperimentConfig.{name} must be an integer{' or null' if allow_none else ''}, got {value!r}")
    if low is not None and value < low:
        raise ConfigError(f"ExperimentConfig.{name} must be >= {low}, got {value!r}")
    return int(value)


def _float(name: str, value: Any, low: float | None = None, high: float | None = None, *,
           allow_none: bool = False, strict_low: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"ExperimentConfig.{name} must be a number{' or null' if allow_none else ''}, got {value!r}")
    value = float(value)
    if math.isnan(value):
        raise ConfigError(f"ExperimentConfig.{name} must not be NaN")
    if low is not None and (value <= low if strict_low else value < low):
        raise ConfigError(f"ExperimentConfig.{name} must be {'>' if strict_low else '>='} {low}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"ExperimentConfig.{name} must be <= {high}, got {value!r}")
    return value


def _choice(name: str, value: Any, choices: Sequence[str]) -> str:
    key = str(value).strip().lower()
    if key not in choices:
        raise ConfigError(f"ExperimentConfig.{name} must be one of {', '.join(choices)}, got {value!r}")
    return key


def _listify(value: Any) -> Any:
    """Tuples -> lists, recursively (the JSON form, so round trips compare equal)."""
    if isinstance(value, dict):
        return {k: _listify(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_listify(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


_TASK_FIELDS = tuple(f.name for f in dataclasses.fields(tasks_lib.TaskSpec))


def task_spec(entry: TaskEntry, where: str = "task") -> tasks_lib.TaskSpec:
    """One TaskSpec from a preset name, or a dict of TaskSpec fields with an
    optional "preset" key whose spec the other fields override."""
    try:
        if isinstance(entry, str):
            return tasks_lib.get_preset(entry)
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a task preset name or a dict of TaskSpec fields, got {entry!r}")
        fields = dict(entry)
        unknown = sorted(set(fields) - set(_TASK_FIELDS) - {"preset"})
        if unknown:
            raise ConfigError(f"{where}: unknown TaskSpec key(s) {', '.join(map(repr, unknown))}; "
                              f"valid keys: preset, {', '.join(_TASK_FIELDS)}")
        preset = fields.pop("preset", None)
        if preset is not None:
            return tasks_lib.get_preset(preset, **fields)
        return tasks_lib.TaskSpec(**fields)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where}: {e}") from None


def _task_entries(name: str, value: Any, *, allow_none: bool) -> tuple[TaskEntry, ...] | None:
    if value is None:
        if allow_none:
            return None
        raise ConfigError(f"ExperimentConfig.{name} is required (a task preset name, a TaskSpec dict, or a list of them)")
    if isinstance(value, (str, dict)):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"ExperimentConfig.{name} must be a non-empty list of task preset names / TaskSpec dicts, "
                          f"got {value!r}")
    out: list[TaskEntry] = []
    for i, entry in enumerate(value):
        task_spec(entry, f"ExperimentConfig.{name}[{i}]")  # validates
        out.append(entry if isinstance(entry, str) else _listify(entry))
    return tuple(out)


# --------------------------------------------------------------- config --

@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """One search run. Reference `SearchExperimentSpec` fields (same names and
    defaults) plus the driver flags and this package's extensions.

    Tasks: each collection is a list of task preset names
    (`azero_jax.tasks.PRESETS`) and/or dicts of `TaskSpec` fields (optionally
    with "preset" to override a preset). select_tasks defaults to
    search_tasks, final_tasks to select_tasks.
    Ops: names or ids (stored as names). An empty list freezes a component.
    Sizes: `mutate_*_size_max` None (or 0, as in the reference) = no limit.
    train_budget: None, or {"baseline": "neural_net", "factor": 2.0}.
    fec: None (off), or {num_train_examples, num_valid_examples, cache_size,
      forget_every} (missing keys take the reference defaults).
    memory: (S, V, M) address counts; F comes from the tasks.
    max_experiments: 0 = unlimited (stop only on sufficient_fitness/time).
    sufficient_fitness: None = never stop early.
    random_seed: 0 = time-based (the chosen seed is logged and saved).
    max_seconds: wall-clock budget of the whole run (None = none); stops the
      current search at the next sweep and starts no further experiment.
    checkpoint_path: None = <output_dir>/checkpoint.json.
    checkpoint_every_seconds: periodic checkpoints at sweep boundaries
      (0 = after every sweep, None = only at the end of each experiment).
    backend: "reference" (NumPy interpreter, one program and task at a time)
      or "jax" (batched `azero_jax.jax_eval`; feed it with children_per_step
      in the hundreds). Select/final evaluations use the same backend.
    dtype: compute dtype of the jax backend ("float64" agrees with the
      reference bit for bit on the demo ops, so FEC hashes agree too;
      "float32" hashes differently and is consistent only with itself); the
      reference computes float64.
    children_per_step: children per evolution step and island, evaluated in
      one batched call (1 = the reference's sequential algorithm).
    island_task_groups: None = every island searches on all search_tasks;
      else one group id per search_tasks entry (ids 0..G-1, each used): island
      i searches only on the tasks of group i * G // num_islands, e.g. the
      paper's mixed setting (half the islands on CIFAR-10 tasks, half on MNIST
      tasks). Migrants are re-evaluated on their new island's tasks.
      Select and final evaluations use all their tasks as usual.
    random_search: every child is a fresh initial program (baseline mode).
    hurdle_tasks: 0 = off (the reference); k > 0 = the paper's hurdle: a
      child is first evaluated on the first k search tasks and stops there if
      its fitness on them is below the hurdle_percentile percentile of the
      population's unique fitnesses (that partial fitness is its fitness).
    search_sufficient_fitness: None = the reference (each search spends its
      whole max_train_steps); a number = at each sweep boundary where the
      population's best search fitness exceeds it (and its previous checked
      value), that program is evaluated on the select tasks, and the search
      ends if its select fitness exceeds sufficient_fitness (with no
      sufficient_fitness: ends at once). A failed check lets the search go
      on, so a population close to a solution is not thrown away. Saves the
      rest of the budget after a discovery.
    """

    search_tasks: tuple[TaskEntry, ...] = ("demo_search",)
    select_tasks: tuple[TaskEntry, ...] | None = None
    final_tasks: tuple[TaskEntry, ...] | None = None
    setup_ops: tuple[str, ...] = ()
    predict_ops: tuple[str, ...] = ()
    learn_ops: tuple[str, ...] = ()
    setup_size_init: int = 0
    predict_size_init: int = 0
    learn_size_init: int = 0
    mutate_setup_size_min: int = 0
    mutate_setup_size_max: int | None = None
    mutate_predict_size_min: int = 0
    mutate_predict_size_max: int | None = None
    mutate_learn_size_min: int = 0
    mutate_learn_size_max: int | None = None
    train_budget: dict[str, Any] | None = None
    max_abs_error: float = fitness_lib.MAX_ABS_ERROR
    fec: dict[str, Any] | None = None
    fitness_combination: str = fitness_lib.MEAN
    population_size: int = 1000
    tournament_size: int = 10
    initial_population: str = "noop"
    max_train_steps: int = 80_000_000_000
    allowed_mutation_types: tuple[str, ...] = mutator_lib.DEMO_MUTATION_TYPES
    mutate_prob: float = 0.9
    progress_every: int = 10000
    memory: tuple[int, int, int] = (20, 20, 20)
    # -- driver flags (run_search_experiment.cc) --
    max_experiments: int = 1
    sufficient_fitness: float | None = None
    randomize_task_seeds: bool = False
    random_seed: int = 0
    # -- this package --
    backend: str = "reference"
    dtype: str = "float64"
    children_per_step: int = 1
    num_islands: int = 1
    migration_every: int = 0
    island_task_groups: tuple[int, ...] | None = None
    random_search: bool = False
    hurdle_tasks: int = 0
    hurdle_percentile: float = 75.0
    search_sufficient_fitness: float | None = None
    max_seconds: float | None = None
    checkpoint_path: str | None = None
    checkpoint_every_seconds: float | None = 600.0

    def __post_init__(self):
        s = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        s("search_tasks", _task_entries("search_tasks", self.search_tasks, allow_none=False))
        s("select_tasks", _task_entries("select_tasks", self.select_tasks, allow_none=True))
        s("final_tasks", _task_entries("final_tasks", self.final_tasks, allow_none=True))
        for c in COMPONENTS:
            value = getattr(self, f"{c}_ops")
            if isinstance(value, (str, int)) or not isinstance(value, (list, tuple)):
                raise ConfigError(f"ExperimentConfig.{c}_ops must be a list of op names or ids, got {value!r}")
            try:
                s(f"{c}_ops", tuple(ops_lib.OPS[i].name for i in ops_lib.resolve_op_ids(value)))
            except ValueError as e:
                raise ConfigError(f"ExperimentConfig.{c}_ops: {e}") from None
            s(f"{c}_size_init", _int(f"{c}_size_init", getattr(self, f"{c}_size_init"), 0))
            s(f"mutate_{c}_size_min", _int(f"mutate_{c}_size_min", getattr(self, f"mutate_{c}_size_min"), 0))
            s(f"mutate_{c}_size_max", _int(f"mutate_{c}_size_max", getattr(self, f"mutate_{c}_size_max"), 0,
                                           allow_none=True))
        s("train_budget", self._check_train_budget(self.train_budget))
        s("max_abs_error", _float("max_abs_error", self.max_abs_error, 0.0, strict_low=True))
        s("fec", self._check_fec(self.fec))
        combination = str(self.fitness_combination).strip().lower().removesuffix("_fitness_combination")
        s("fitness_combination", _choice("fitness_combination", combination, COMBINATIONS))
        s("population_size", _int("population_size", self.population_size, 1))
        s("tournament_size", _int("tournament_size", self.tournament_size, 1))
        try:
            s("initial_population", mutator_lib.parse_initial_kind(self.initial_population))
            types = self.allowed_mutation_types
            if isinstance(types, (str, int)):
                types = (types,)
            s("allowed_mutation_types", tuple(mutator_lib.parse_mutation_type(t) for t in types))
        except ValueError as e:
            raise ConfigError(f"ExperimentConfig: {e}") from None
        if not self.allowed_mutation_types:
            raise ConfigError("ExperimentConfig.allowed_mutation_types must not be empty")
        s("max_train_steps", _int("max_train_steps", self.max_train_steps, 1))
        s("mutate_prob", _float("mutate_prob", self.mutate_prob, 0.0, 1.0))
        s("progress_every", _int("progress_every", self.progress_every, 1))
        memory = self.memory
        if isinstance(memory, dict):
            memory = [memory.get(k) for k in ("scalars", "vectors", "matrices")]
        if not isinstance(memory, (list, tuple)) or len(memory) != 3:
            raise ConfigError(f"ExperimentConfig.memory must be [scalars, vectors, matrices], got {self.memory!r}")
        s("memory", (_int("memory[0] (scalars)", memory[0], 2), _int("memory[1] (vectors)", memory[1], 1),
                     _int("memory[2] (matrices)", memory[2], 0)))
        s("max_experiments", _int("max_experiments", self.max_experiments, 0))
        s("sufficient_fitness", _float("sufficient_fitness", self.sufficient_fitness, allow_none=True))
        if not isinstance(self.randomize_task_seeds, bool):
            raise ConfigError(f"ExperimentConfig.randomize_task_seeds must be true or false, got {self.randomize_task_seeds!r}")
        s("random_seed", _int("random_seed", self.random_seed, 0))
        s("backend", _choice("backend", self.backend, BACKENDS))
        s("dtype", _choice("dtype", self.dtype, DTYPES))
        s("children_per_step", _int("children_per_step", self.children_per_step, 1))
        s("num_islands", _int("num_islands", self.num_islands, 1))
        s("migration_every", _int("migration_every", self.migration_every, 0))
        s("island_task_groups", self._check_island_groups(self.island_task_groups))
        if not isinstance(self.random_search, bool):
            raise ConfigError(f"ExperimentConfig.random_search must be true or false, got {self.random_search!r}")
        s("hurdle_tasks", _int("hurdle_tasks", self.hurdle_tasks, 0))
        s("hurdle_percentile", _float("hurdle_percentile", self.hurdle_percentile, 0.0, 100.0))
        s("search_sufficient_fitness", _float("search_sufficient_fitness", self.search_sufficient_fitness,
                                              allow_none=True))
        if self.children_per_step > self.population_size:
            raise ConfigError(f"ExperimentConfig.children_per_step ({self.children_per_step}) cannot exceed "
                              f"population_size ({self.population_size})")
        s("max_seconds", _float("max_seconds", self.max_seconds, 0.0, allow_none=True, strict_low=True))
        if self.checkpoint_path is not None and not isinstance(self.checkpoint_path, str):
            raise ConfigError(f"ExperimentConfig.checkpoint_path must be a path string or null, got {self.checkpoint_path!r}")
        s("checkpoint_every_seconds", _float("checkpoint_every_seconds", self.checkpoint_every_seconds, 0.0,
                                             allow_none=True))
        try:
            self.mutator_config(features=1)  # ops writable in this memory, non-empty op lists, ...
        except ValueError as e:
            raise ConfigError(f"ExperimentConfig: {e}") from None

    def _check_island_groups(self, value: Any) -> tuple[int, ...] | None:
        if value is None:
            return None
        where = "ExperimentConfig.island_task_groups"
        if isinstance(value, (str, int)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be null or a list of group ids, one per search_tasks entry; got {value!r}")
        groups = tuple(_int(f"island_task_groups[{i}]", g, 0) for i, g in enumerate(value))
        if len(groups) != len(self.search_tasks):
            raise ConfigError(f"{where} has {len(groups)} entries but search_tasks has {len(self.search_tasks)}; "
                              "give one group id per search_tasks entry")
        if set(groups) != set(range(max(groups) + 1)):
            raise ConfigError(f"{where} must use every group id from 0 to its maximum, got {list(groups)}")
        if self.num_islands < max(groups) + 1:
            raise ConfigError(f"{where} has {max(groups) + 1} groups but num_islands is {self.num_islands}; "
                              "every group needs at least one island")
        return groups

    def island_tasks(self, search_specs: Sequence[tasks_lib.TaskSpec]) -> tuple[list[int], list[list[int]]] | None:
        """(group id per search task, task indices per island), or None when
        every island searches on every task."""
        if self.island_task_groups is None:
            return None
        per_task = [g for g, spec in zip(self.island_task_groups, search_specs, strict=True)
                    for _ in range(spec.num_tasks)]
        num_groups = max(self.island_task_groups) + 1
        islands = []
        for i in range(self.num_islands):
            group = i * num_groups // self.num_islands
            islands.append([t for t, g in enumerate(per_task) if g == group])
        return per_task, islands

    @staticmethod
    def _check_train_budget(value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ConfigError(f"ExperimentConfig.train_budget must be null or a dict with keys baseline, factor, got {value!r}")
        unknown = sorted(set(value) - {"baseline", "factor"})
        if unknown:
            raise ConfigError(f"ExperimentConfig.train_budget: unknown key(s) {', '.join(map(repr, unknown))}; "
                              "valid keys: baseline, factor")
        baseline = str(value.get("baseline", "neural_net"))
        baseline = programs_lib.REFERENCE_NAMES.get(baseline.strip().upper(), baseline.strip().lower())
        if baseline not in programs_lib.HAND_WRITTEN:
            raise ConfigError(f"ExperimentConfig.train_budget.baseline must be one of "
                              f"{', '.join(programs_lib.HAND_WRITTEN)}, got {value.get('baseline')!r}")
        factor = _float("train_budget.factor", value.get("factor", DEFAULT_THRESHOLD_FACTOR), 0.0, strict_low=True)
        return {"baseline": baseline, "factor": factor}

    @staticmethod
    def _check_fec(value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        valid = [f.name for f in dataclasses.fields(FECSpec)]
        if not isinstance(value, dict):
            raise ConfigError(f"ExperimentConfig.fec must be null or a dict with keys {', '.join(valid)}, got {value!r}")
        unknown = sorted(set(value) - set(valid))
        if unknown:
            raise ConfigError(f"ExperimentConfig.fec: unknown key(s) {', '.join(map(repr, unknown))}; "
                              f"valid keys: {', '.join(valid)}")
        try:
            return dataclasses.asdict(FECSpec(**{k: (int(v) if isinstance(v, float) and v.is_integer() else v)
                                                 for k, v in value.items()}))
        except ValueError as e:
            raise ConfigError(f"ExperimentConfig.fec: {e}") from None

    # -- construction --
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> ExperimentConfig:
        """Validated config from a dict; unknown keys name the valid ones.
        A "preset" key starts from that preset and overrides its fields."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: an experiment config must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        base: dict[str, Any] = {}
        if "preset" in data:
            base = get_preset(data.pop("preset")).to_dict()
        unknown = [k for k in data if k not in cls.field_names()]
        if unknown:
            raise ConfigError(f"{source}: unknown config key(s) {', '.join(map(repr, unknown))}; valid keys: "
                              f"preset, {', '.join(cls.field_names())}")
        base.update(data)
        return cls(**base)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> ExperimentConfig:
        source = os.fspath(path)
        try:
            with open(source, encoding="utf-8") as f:
                data = json.load(f)
        except OSError as e:
            raise ConfigError(f"{source}: cannot read config: {e.strerror or e}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{source}: invalid JSON: {e}") from None
        return cls.from_dict(data, source=source)

    def to_dict(self) -> dict[str, Any]:
        return {name: _listify(getattr(self, name)) for name in self.field_names()}

    def to_json(self, path: str | os.PathLike[str]) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")

    def replace(self, **changes: Any) -> ExperimentConfig:
        unknown = [k for k in changes if k not in self.field_names()]
        if unknown:
            raise ConfigError(f"unknown config key(s) {', '.join(map(repr, unknown))}; valid keys: "
                              f"{', '.join(self.field_names())}")
        return dataclasses.replace(self, **changes)

    def search_hash(self) -> str:
        """Hash of everything that defines the search (not RUN_CONTROL_FIELDS)."""
        data = {k: v for k, v in self.to_dict().items() if k not in RUN_CONTROL_FIELDS}
        return checkpoint_lib.config_hash(data)

    # -- derived objects --
    def task_specs(self, which: str) -> list[tasks_lib.TaskSpec]:
        entries = {"search": self.search_tasks, "select": self.select_tasks or self.search_tasks,
                   "final": self.final_tasks or self.select_tasks or self.search_tasks}[which]
        return [task_spec(e, f"{which}_tasks[{i}]") for i, e in enumerate(entries)]

    def memory_shape(self, features: int) -> MemoryShape:
        return MemoryShape(*self.memory, features)

    def mutator_config(self, features: int) -> mutator_lib.MutatorConfig:
        return mutator_lib.MutatorConfig(
            memory=self.memory_shape(features), setup_ops=self.setup_ops, predict_ops=self.predict_ops,
            learn_ops=self.learn_ops, mutation_types=self.allowed_mutation_types, mutate_prob=self.mutate_prob,
            size_min=tuple(getattr(self, f"mutate_{c}_size_min") for c in COMPONENTS),
            size_max=tuple(getattr(self, f"mutate_{c}_size_max") for c in COMPONENTS))

    @property
    def init_sizes(self) -> tuple[int, int, int]:
        return (self.setup_size_init, self.predict_size_init, self.learn_size_init)

    def evolution_config(self) -> evolution_lib.EvolutionConfig:
        return evolution_lib.EvolutionConfig(
            population_size=self.population_size, tournament_size=self.tournament_size,
            children_per_step=self.children_per_step, num_islands=self.num_islands,
            migration_every=self.migration_every, random_search=self.random_search,
            progress_every=self.progress_every)


# -------------------------------------------------------------- presets --

_DEMO_OPS = [ops_lib.OPS[i].name for i in ops_lib.DEMO_OPS]
_DEMO_TYPES = list(mutator_lib.DEMO_MUTATION_TYPES)

PRESETS: dict[str, dict[str, Any]] = {
    # run_demo.sh (spec §16); time-seeded like the reference script. Runs on
    # the batched JAX backend (float64: same values as the reference
    # interpreter up to summation-order ulps), 250 children per step (4 steps
    # per sweep of the population of 1000) to amortize each batched call;
    # backend="reference", children_per_step=1 is the reference's sequential
    # algorithm on the NumPy interpreter (~100x slower).
    "demo": dict(
        search_tasks=["demo_search"], select_tasks=["demo_select"], final_tasks=["demo_final"],
        setup_ops=_DEMO_OPS, predict_ops=_DEMO_OPS, learn_ops=_DEMO_OPS,
        setup_size_init=10, predict_size_init=2, learn_size_init=8,
        fec={"num_train_examples": 10, "num_valid_examples": 10}, population_size=1000, tournament_size=10,
        initial_population="random", max_train_steps=200_000_000, allowed_mutation_types=_DEMO_TYPES,
        mutate_prob=0.9, progress_every=10000, memory=[4, 3, 1], max_experiments=0, randomize_task_seeds=True,
        sufficient_fitness=0.9999, random_seed=0, backend="jax", dtype="float64", children_per_step=250),
    # run_baseline.sh (spec §17). Its tasks are projected binary CIFAR-10
    # (F 16, 8000 train, 1000 valid, accuracy) in the .npz files below;
    # experiments/cifar_binary.py builds such collections and points this
    # config at them.
    "baseline": dict(
        search_tasks=[{"kind": "explicit", "path": "binary_cifar10_data/search.npz", "features": 16,
                       "num_train": 8000, "num_valid": 1000, "num_tasks": 10, "eval_type": "accuracy"}],
        select_tasks=[{"kind": "explicit", "path": "binary_cifar10_data/search.npz", "features": 16,
                       "num_train": 8000, "num_valid": 1000, "num_tasks": 10, "eval_type": "accuracy"}],
        final_tasks=[{"kind": "explicit", "path": "binary_cifar10_data/final.npz", "features": 16,
                      "num_train": 8000, "num_valid": 1000, "num_tasks": 100, "eval_type": "accuracy"}],
        setup_ops=[ops_lib.OPS[i].name for i in ops_lib.BASELINE_SETUP_OPS],
        predict_ops=[ops_lib.OPS[i].name for i in ops_lib.BASELINE_PREDICT_OPS],
        learn_ops=[ops_lib.OPS[i].name for i in ops_lib.BASELINE_LEARN_OPS],
        setup_size_init=1, predict_size_init=1, learn_size_init=1,
        mutate_setup_size_min=1, mutate_setup_size_max=7, mutate_predict_size_min=1, mutate_predict_size_max=11,
        mutate_learn_size_min=1, mutate_learn_size_max=23,
        train_budget={"baseline": "neural_net", "factor": 2.0}, population_size=100, tournament_size=10,
        initial_population="noop", max_train_steps=100_000_000_000,
        allowed_mutation_types=["ALTER_PARAM", "RANDOMIZE_COMPONENT_FUNCTION", "INSERT_INSTRUCTION",
                                "REMOVE_INSTRUCTION"],
        mutate_prob=0.9, progress_every=10000, memory=[5, 9, 2], max_experiments=1, random_seed=1000060),
    # run_integration_test_linear.sh (spec §18).
    "integration_linear": dict(
        search_tasks=["integration_linear_search"], select_tasks=["integration_linear_select"],
        final_tasks=["integration_linear_select"],
        setup_ops=["SCALAR_CONST_SET"], predict_ops=["VECTOR_INNER_PRODUCT"],
        learn_ops=["SCALAR_DIFF", "SCALAR_PRODUCT", "SCALAR_VECTOR_PRODUCT", "VECTOR_SUM"],
        setup_size_init=5, predict_size_init=1, learn_size_init=4,
        fec={"num_train_examples": 10, "num_valid_examples": 10}, population_size=1000, tournament_size=10,
        initial_population="random", max_train_steps=100_000_000, allowed_mutation_types=_DEMO_TYPES,
        mutate_prob=0.9, memory=[4, 3, 1], random_seed=100021),
    # run_integration_test_nonlinear.sh (spec §18): only Setup evolves.
    "integration_nonlinear": dict(
        search_tasks=["nn_teacher"], select_tasks=["nn_teacher_heldout"], final_tasks=["nn_teacher_heldout"],
        setup_ops=["VECTOR_GAUSSIAN_SET", "MATRIX_GAUSSIAN_SET"], predict_ops=[], learn_ops=[],
        setup_size_init=2, predict_size_init=1, learn_size_init=4,
        mutate_setup_size_min=6, mutate_setup_size_max=7, mutate_predict_size_min=3, mutate_predict_size_max=4,
        mutate_learn_size_min=9, mutate_learn_size_max=10,
        train_budget={"baseline": "neural_net", "factor": 2.0}, population_size=1000, tournament_size=10,
        initial_population="damaged_neural_net", max_train_steps=100_000_000,
        allowed_mutation_types=["ALTER_PARAM", "INSERT_INSTRUCTION", "REMOVE_INSTRUCTION", "TRADE_INSTRUCTION"],
        mutate_prob=1.0, memory=[5, 9, 2], random_seed=100001),
    # Seconds-long smoke run on the reference backend (tests, CI, first try).
    "tiny": dict(
        search_tasks=[{"kind": "linear", "features": 4, "num_train": 20, "num_valid": 10, "num_tasks": 2}],
        select_tasks=[{"kind": "linear", "features": 4, "num_train": 50, "num_valid": 20, "num_tasks": 3,
                       "data_seeds": [5000], "param_seeds": [6000]}],
        final_tasks=[{"kind": "linear", "features": 4, "num_train": 50, "num_valid": 20, "num_tasks": 3,
                      "data_seeds": [7000], "param_seeds": [8000]}],
        setup_ops=_DEMO_OPS, predict_ops=_DEMO_OPS, learn_ops=_DEMO_OPS,
        setup_size_init=3, predict_size_init=1, learn_size_init=4,
        fec={"num_train_examples": 10, "num_valid_examples": 10}, population_size=20, tournament_size=5,
        initial_population="random", max_train_steps=12000, allowed_mutation_types=_DEMO_TYPES,
        progress_every=100, memory=[4, 3, 1], max_experiments=2, random_seed=1, checkpoint_every_seconds=60.0),
}

PRESET_NOTES: dict[str, str] = {
    "baseline": "reads projected binary CIFAR-10 collections (binary_cifar10_data/search.npz, final.npz); "
                "experiments/cifar_binary.py runs this config on collections it builds itself from CIFAR-10, "
                "MNIST, Fashion-MNIST or the built-in digits",
}


def get_preset(name: str) -> ExperimentConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown experiment preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return ExperimentConfig(**PRESETS[name])


def load_config(preset_or_path: str) -> ExperimentConfig:
    """A preset name, or the path of a JSON config (which may name a base
    "preset" and override fields)."""
    if preset_or_path in PRESETS:
        return get_preset(preset_or_path)
    if os.path.exists(preset_or_path) or preset_or_path.endswith(".json"):
        return ExperimentConfig.from_json(preset_or_path)
    raise ConfigError(f"--config {preset_or_path!r} is neither a preset ({', '.join(PRESETS)}) nor a JSON file")


# --------------------------------------------------------------- driver --

@dataclasses.dataclass
class ExperimentResult:
    """What a run produced (also written to results.json)."""

    best_program: Algorithm
    search_fitness: float
    select_fitness: float
    final_fitness: float
    best_experiment: int
    num_experiments: int
    experiments: list[dict[str, Any]]
    counters: dict[str, int]
    elapsed_seconds: float
    random_seed: int
    memory: MemoryShape
    # Wall seconds per phase of this session (select_mutate, probe, hash,
    # cache, full, select, ...) and its CPU seconds: profiling only.
    profile: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        secs = max(self.elapsed_seconds, 1e-9)
        return {
            "search_fitness": self.search_fitness, "select_fitness": self.select_fitness,
            "final_fitness": self.final_fitness, "best_experiment": self.best_experiment,
            "num_experiments": self.num_experiments, "experiments": self.experiments,
            "counters": self.counters, "elapsed_seconds": self.elapsed_seconds,
            "individuals_per_second": self.counters.get("individuals", 0) / secs,
            "train_steps_per_second": self.counters.get("train_steps", 0) / secs,
            "random_seed": self.random_seed,
            "profile": self.profile,
            "best_program": serialization.algorithm_to_dict(self.best_program, self.memory),
            "best_program_text": serialization.format_algorithm(self.best_program),
            "best_program_live_text": serialization.format_algorithm(
                liveness.strip_dead_code(self.best_program, keep_positions=False)),
        }


CSV_COLUMNS = ("experiment", "indivs", "elapsed_secs", "mean", "stdev", "best_fit", "train_steps",
               "indivs_per_sec", "train_steps_per_sec", "fec_hit_rate")
_COUNTER_KEYS = ("individuals", "train_steps", "full_evaluations", "fec_hits", "fec_misses")


def _resolve_seed(seed: int) -> int:
    """Reference rule: seed 0 means a time-based seed."""
    return seed if seed else int(time.time_ns() % (2**31 - 2)) + 1


class _Run:
    """Mutable state of one run; everything in it is checkpointed."""

    def __init__(self, config: ExperimentConfig, output_dir: str, log: Callable[[str], None] | None,
                 step_hook: Callable[[int, int], None] | None):
        self.config = config
        self.output_dir = output_dir
        self.log = log or (lambda _line: None)
        self.step_hook = step_hook
        self.ckpt_path = config.checkpoint_path or os.path.join(output_dir, "checkpoint.json")
        self.csv_path = os.path.join(output_dir, "progress.csv")
        self.digest = config.search_hash()
        self.session_start = time.monotonic()
        self.elapsed_before = 0.0
        self.last_checkpoint = time.monotonic()
        self.random_seed = 0
        self.main_rng: np.random.Generator | None = None
        self.experiment_index = 0  # completed experiments
        self.experiments: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.totals = {k: 0 for k in _COUNTER_KEYS}
        self.progress_rows = 0
        self.current: dict[str, Any] | None = None  # {"plan", "evolution", "evaluator"} mid-experiment
        self.profile: dict[str, float] = collections.defaultdict(float)  # this session only
        # Early stop of the current search (search_sufficient_fitness); not
        # checkpointed: a failed check changes nothing, a passed one ends the search.
        self.select_checked = -math.inf
        self.stop_search = False
        self._select_tasks: list[tasks_lib.Task] | None = None  # the current experiment's
        self.cpu_start = time.process_time()

    # -- time / counters --
    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.session_start

    def out_of_time(self) -> bool:
        return self.config.max_seconds is not None and self.elapsed() >= self.config.max_seconds

    # -- checkpoints --
    def to_state(self, evolution_state: evolution_lib.EvolutionState | None = None,
                 evaluator: CachedEvaluator | None = None, plan: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self.main_rng is not None
        current = None
        if evolution_state is not None and evaluator is not None:
            current = {"plan": plan, "evolution": evolution_lib.state_to_dict(evolution_state),
                       "evaluator": {"num_individuals": evaluator.num_individuals,
                                     "num_train_steps": evaluator.num_train_steps,
                                     "num_full_evaluations": evaluator.num_full_evaluations,
                                     "cache": None if evaluator.cache is None else evaluator.cache.to_state()}}
        return {"random_seed": self.random_seed,
                "main_rng": evolution_lib.jsonable(self.main_rng.bit_generator.state),
                "experiment_index": self.experiment_index, "experiments": self.experiments, "best": self.best,
                "totals": self.totals, "elapsed_seconds": self.elapsed(), "progress_rows": self.progress_rows,
                "current": current}

    def save(self, **kwargs: Any) -> None:
        checkpoint_lib.save(self.ckpt_path, self.to_state(**kwargs), config_digest=self.digest)
        self.last_checkpoint = time.monotonic()

    def restore(self) -> None:
        state = checkpoint_lib.load(self.ckpt_path, config_digest=self.digest)
        try:
            self.random_seed = int(state["random_seed"])
            if self.config.random_seed and self.random_seed != self.config.random_seed:
                raise checkpoint_lib.CheckpointError(
                    f"checkpoint {self.ckpt_path!r} was written with random_seed {self.random_seed}, "
                    f"but the config asks for {self.config.random_seed}")
            self.main_rng = evolution_lib.make_rng(state["main_rng"])
            self.experiment_index = int(state["experiment_index"])
            self.experiments = list(state["experiments"])
            self.best = state["best"]
            self.totals = {k: int(state["totals"][k]) for k in _COUNTER_KEYS}
            self.elapsed_before = float(state["elapsed_seconds"])
            self.progress_rows = int(state["progress_rows"])
            self.current = state["current"]
        except checkpoint_lib.CheckpointError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise checkpoint_lib.CheckpointError(f"checkpoint {self.ckpt_path!r} is corrupt (bad field: {e!r})") from None
        self.session_start = time.monotonic()
        self._truncate_csv()

    # -- progress --
    def _truncate_csv(self) -> None:
        """Drops progress rows written after the checkpoint (they are replayed)."""
        lines: list[str] = []
        if os.path.exists(self.csv_path):
            with open(self.csv_path, encoding="utf-8") as f:
                lines = f.readlines()
        with open(self.csv_path, "w", encoding="utf-8") as f:
            f.writelines(lines[:1 + self.progress_rows] if lines else [",".join(CSV_COLUMNS) + "\n"])

    def progress(self, state: evolution_lib.EvolutionState, evaluator: CachedEvaluator) -> None:
        """Reference progress line (+ throughput and FEC hit rate) and a CSV row."""
        every = self.config.progress_every
        if state.last_progress is not None and state.num_individuals < state.last_progress + every:
            return
        state.last_progress = state.num_individuals
        fits = evolution_lib.all_fitnesses(state)
        mean, stdev, best = evolution_lib.population_stats(fits)
        elapsed = self.elapsed()
        secs = max(elapsed, 1e-9)
        indivs_rate = (self.totals["individuals"] + evaluator.num_individuals) / secs
        steps_rate = (self.totals["train_steps"] + evaluator.num_train_steps) / secs
        lookups = evaluator.fec_hits + evaluator.fec_misses
        hit_rate = evaluator.fec_hits / lookups if lookups else 0.0
        self.log(f"{evolution_lib.progress_line(state.num_individuals, elapsed, fits)} "
                 f"indivs/s={indivs_rate:.1f}, train_steps/s={steps_rate:.0f}, fec_hit_rate={hit_rate:.4f},")
        with open(self.csv_path, "a", encoding="utf-8", newline="") as f:
            csv.writer(f).writerow([self.experiment_index + 1, state.num_individuals, f"{elapsed:.3f}", repr(mean),
                                    repr(stdev), repr(best), evaluator.num_train_steps, f"{indivs_rate:.3f}",
                                    f"{steps_rate:.3f}", f"{hit_rate:.6f}"])
        self.progress_rows += 1

    # -- one experiment --
    def draw_plan(self) -> dict[str, Any]:
        """All random choices of one experiment, drawn from the main generator
        at its start (so a mid-experiment checkpoint only needs the plan)."""
        assert self.main_rng is not None
        rng = self.main_rng
        search = self.config.task_specs("search")
        select = self.config.task_specs("select")
        if self.config.randomize_task_seeds:
            search = tasks_lib.randomize_collection_seeds(search, rng)
        evaluator_seed = int(rng.integers(0, 2**31))
        evolution_seed = int(rng.integers(0, 2**63))
        if self.config.randomize_task_seeds:
            select = tasks_lib.randomize_collection_seeds(select, rng)
        select_seed = int(rng.integers(0, 2**31))
        return {"search_tasks": [_listify(dataclasses.asdict(s)) for s in search],
                "select_tasks": [_listify(dataclasses.asdict(s)) for s in select],
                "evaluator_seed": evaluator_seed, "evolution_seed": evolution_seed, "select_seed": select_seed}

    def build(self, plan: dict[str, Any]) -> tuple[CachedEvaluator, evolution_lib.RegularizedEvolution]:
        cfg = self.config
        specs = [tasks_lib.TaskSpec(**s) for s in plan["search_tasks"]]
        search_tasks = tasks_lib.make_tasks(specs)
        groups = cfg.island_tasks(specs)
        memory = cfg.memory_shape(search_tasks[0].features)
        budget = None
        if cfg.train_budget is not None:
            budget = TrainBudget.neural_net(cfg.init_sizes, cfg.train_budget["factor"],
                                            baseline=cfg.train_budget["baseline"])
        evaluator = make_evaluator(
            cfg, search_tasks, memory, seed=plan["evaluator_seed"],
            fec_spec=FECSpec(**cfg.fec) if cfg.fec is not None else None, train_budget=budget,
            combination=cfg.fitness_combination, hurdles=True, task_groups=None if groups is None else groups[0])
        mutator_cfg = cfg.mutator_config(memory.features)
        generator = mutator_lib.InitialPopulation.from_config(cfg.initial_population, cfg.init_sizes, mutator_cfg)
        evo = evolution_lib.RegularizedEvolution(cfg.evolution_config(), mutator_lib.Mutator(mutator_cfg), generator,
                                                 evaluator, log=None, island_tasks=None if groups is None else groups[1])
        return evaluator, evo

    def search_done(self, evaluator: CachedEvaluator, state: evolution_lib.EvolutionState,
                    plan: dict[str, Any]) -> bool:
        """Reference: the train-step budget (or time). Optionally also once the
        best program passes the select test (see search_sufficient_fitness)."""
        if self.stop_search:
            return True
        target = self.config.search_sufficient_fitness
        if target is not None:
            program, fit = evolution_lib.result(state, self.config.evolution_config())
            if fit > target and fit > self.select_checked:
                self.select_checked = fit
                sufficient = self.config.sufficient_fitness
                if sufficient is None or self.select_fitness(program, plan) > sufficient:
                    self.stop_search = True
                    return True
        return evaluator.num_train_steps >= self.config.max_train_steps or self.out_of_time()

    def select_fitness(self, program: Algorithm, plan: dict[str, Any]) -> float:
        """Fitness on this experiment's select tasks (fresh RNG: the plan's seed)."""
        start = time.perf_counter()
        if self._select_tasks is None:
            self._select_tasks = tasks_lib.make_tasks([tasks_lib.TaskSpec(**s) for s in plan["select_tasks"]])
        select_tasks = self._select_tasks
        memory = self.config.memory_shape(select_tasks[0].features)
        value = evaluate_program(program, select_tasks, memory, seed=plan["select_seed"],
                                 max_abs_error=self.config.max_abs_error, config=self.config)
        self.profile["select"] += time.perf_counter() - start
        return value

    def maybe_checkpoint(self, **kwargs: Any) -> None:
        every = self.config.checkpoint_every_seconds
        if every is not None and time.monotonic() - self.last_checkpoint >= every:
            self.save(**kwargs)

    def run_experiment(self) -> None:
        if self.current is None:
            plan = self.draw_plan()
            evaluator, evo = self.build(plan)
            self.log(f"experiment {self.experiment_index + 1}: search on {len(evaluator.tasks)} task(s), "
                     f"population {self.config.population_size} x {self.config.num_islands} island(s)")
            state = evo.init(plan["evolution_seed"])
            self.progress(state, evaluator)
            if not self.search_done(evaluator, state, plan):
                self.maybe_checkpoint(evolution_state=state, evaluator=evaluator, plan=plan)
        else:
            plan = self.current["plan"]
            evaluator, evo = self.build(plan)
            saved = self.current["evaluator"]
            evaluator.num_individuals = int(saved["num_individuals"])
            evaluator.num_train_steps = int(saved["num_train_steps"])
            evaluator.num_full_evaluations = int(saved["num_full_evaluations"])
            if saved["cache"] is not None:
                evaluator.cache = FECCache.from_state(saved["cache"])
            state = evolution_lib.state_from_dict(self.current["evolution"])
            self.log(f"experiment {self.experiment_index + 1}: resumed at indivs={state.num_individuals}, "
                     f"train_steps={evaluator.num_train_steps}")
            self.current = None
        # Reference Run(): stop tests only between full sweeps.
        while not self.search_done(evaluator, state, plan):
            while True:
                state = evo.step(state)
                if self.step_hook is not None:
                    self.step_hook(self.experiment_index, state.num_steps)
                if evo.completed_sweep(state):
                    break
            self.progress(state, evaluator)
            if not self.search_done(evaluator, state, plan):
                self.maybe_checkpoint(evolution_state=state, evaluator=evaluator, plan=plan)
        program, search_fitness = evolution_lib.result(state, evo.config)
        for timers in (evo.timers, evaluator.timers):
            for name, seconds in timers.items():
                self.profile[name] += seconds
        select_fitness = self.select_fitness(program, plan)
        self.select_checked, self.stop_search, self._select_tasks = -math.inf, False, None
        kept = self.best is None or select_fitness >= self.best["select_fitness"]
        counters = evaluator.counters()
        record = {"experiment": self.experiment_index + 1, "search_fitness": search_fitness,
                  "select_fitness": select_fitness, "kept": kept, "counters": counters}
        self.experiments.append(record)
        for k in _COUNTER_KEYS:
            self.totals[k] += counters[k]
        if kept:
            self.best = {"program": serialization.algorithm_to_dict(program), "search_fitness": search_fitness,
                         "select_fitness": select_fitness, "experiment": self.experiment_index + 1}
        self.experiment_index += 1
        self.log(f"experiment {self.experiment_index}: search fitness={search_fitness:.6f}, "
                 f"select fitness={select_fitness:.6f}{' (kept)' if kept else ''}")
        self.save()

    def finished(self) -> bool:
        """Reference stop test, checked after each experiment."""
        cfg = self.config
        if self.experiment_index == 0:
            return False
        if cfg.sufficient_fitness is not None and self.best is not None \
                and self.best["select_fitness"] > cfg.sufficient_fitness:
            return True
        if cfg.max_experiments and self.experiment_index >= cfg.max_experiments:
            return True
        return self.out_of_time()


def make_evaluator(config: ExperimentConfig, task_list: Sequence[tasks_lib.Task], memory: MemoryShape, *,
                   seed: int, fec_spec: FECSpec | None = None, train_budget: TrainBudget | None = None,
                   combination: str = fitness_lib.MEAN, hurdles: bool = False,
                   task_groups: Sequence[int] | None = None) -> CachedEvaluator:
    """The config's backend as a `CachedEvaluator` (search: FEC, budget and
    hurdles as configured; select/final: none of them). `task_groups`: the
    island task group of each task (JAX: one batched call per group)."""
    hurdle = dict(hurdle_tasks=config.hurdle_tasks if hurdles else 0, hurdle_percentile=config.hurdle_percentile)
    if config.backend == "jax":
        from azero_jax.search.jax_evaluator import JaxEvaluator, op_subsets_for  # imports JAX only when used

        extra = []
        if config.initial_population != "random":
            extra.append(programs_lib.hand_written(config.initial_population, config.init_sizes))
        subsets = op_subsets_for({c: getattr(config, f"{c}_ops") for c in COMPONENTS}, *extra)
        return JaxEvaluator(task_list, memory, fec_spec=fec_spec, train_budget=train_budget, combination=combination,
                            max_abs_error=config.max_abs_error, seed=seed, dtype=config.dtype, op_subsets=subsets,
                            task_groups=task_groups, **hurdle)
    return ReferenceEvaluator(task_list, memory, fec_spec=fec_spec, train_budget=train_budget,
                              combination=combination, max_abs_error=config.max_abs_error, seed=seed, **hurdle)


def evaluate_program(program: Algorithm, task_list: Sequence[tasks_lib.Task], memory: MemoryShape, *,
                     seed: int, max_abs_error: float = fitness_lib.MAX_ABS_ERROR,
                     config: ExperimentConfig | None = None) -> float:
    """Select/final evaluation: MEAN combination, no FEC, no train budget, on
    the config's backend (the reference when no config is given)."""
    if config is None:
        evaluator: CachedEvaluator = ReferenceEvaluator(task_list, memory, combination=fitness_lib.MEAN,
                                                        max_abs_error=max_abs_error, seed=seed)
    else:
        evaluator = make_evaluator(config.replace(max_abs_error=max_abs_error), task_list, memory, seed=seed)
    return float(evaluator([program])[0])


def _check_runnable(config: ExperimentConfig) -> None:
    if config.backend not in IMPLEMENTED_BACKENDS:
        raise ConfigError(f"backend {config.backend!r} is not available yet; use backend 'reference'")
    if config.backend == "reference" and config.dtype != "float64":
        raise ConfigError(f"the reference backend computes in float64; dtype {config.dtype!r} needs backend 'jax'")
    for which in ("search", "select", "final"):
        for spec in config.task_specs(which):
            if spec.kind == tasks_lib.EXPLICIT and not os.path.exists(spec.path):
                note = next((f" (preset {name} {text})" for name, text in PRESET_NOTES.items()
                             if any(e == spec.path or (isinstance(e, dict) and e.get("path") == spec.path)
                                    for e in PRESETS[name].get(f"{which}_tasks", []))), "")
                raise ConfigError(f"{which} task data file {spec.path!r} does not exist{note}")


def run_experiments(config: ExperimentConfig, *, output_dir: str, resume: bool = False,
                    log: Callable[[str], None] | None = print,
                    step_hook: Callable[[int, int], None] | None = None) -> ExperimentResult:
    """Runs search experiments until done (see the module docstring) and
    writes progress.csv, checkpoint.json, best_program.json/.txt and
    results.json into `output_dir`.

    resume: continue from the checkpoint (same search config required).
    step_hook(experiment_index, step): called after every evolution step;
      tests raise from it to simulate a kill.
    """
    _check_runnable(config)
    os.makedirs(output_dir, exist_ok=True)
    run = _Run(config, output_dir, log, step_hook)
    if resume:
        run.restore()
        run.log(f"resumed from {run.ckpt_path}: {run.experiment_index} experiment(s) done, "
                f"random_seed={run.random_seed}")
    else:
        if os.path.exists(run.ckpt_path):
            raise ConfigError(f"{run.ckpt_path} already exists; pass resume to continue that run "
                              "or use another output directory")
        run.random_seed = _resolve_seed(config.random_seed)
        run.main_rng = np.random.default_rng(run.random_seed)
        run._truncate_csv()
        run.log(f"random_seed={run.random_seed}")
        run.save()  # so a run killed before its first periodic checkpoint can resume too
    while not run.finished():
        run.run_experiment()
    assert run.best is not None and run.main_rng is not None
    # The final seed comes from a copy of the main generator, so a resumed
    # finished run (or one extended later) draws it identically.
    final_rng = evolution_lib.make_rng(evolution_lib.copy_rng_state(run.main_rng.bit_generator.state))
    final_seed = int(final_rng.integers(0, 2**31))
    best_program = serialization.algorithm_from_dict(run.best["program"])
    final_tasks = tasks_lib.make_tasks(config.task_specs("final"))
    memory = config.memory_shape(final_tasks[0].features)
    start = time.perf_counter()
    final_fitness = evaluate_program(best_program, final_tasks, memory, seed=final_seed,
                                     max_abs_error=config.max_abs_error, config=config)
    run.profile["final"] += time.perf_counter() - start
    run.profile["cpu_seconds"] = time.process_time() - run.cpu_start
    result = ExperimentResult(
        best_program=best_program, search_fitness=run.best["search_fitness"],
        select_fitness=run.best["select_fitness"], final_fitness=final_fitness,
        best_experiment=run.best["experiment"], num_experiments=run.experiment_index, experiments=run.experiments,
        counters=dict(run.totals), elapsed_seconds=run.elapsed(), random_seed=run.random_seed, memory=memory,
        profile=dict(run.profile))
    run.log(f"Final evaluation fitness (on unseen data) = {final_fitness:.6f}")
    run.log("Algorithm found:\n" + serialization.format_algorithm(best_program).rstrip("\n"))
    serialization.save_algorithm(os.path.join(output_dir, "best_program.json"), best_program, memory)
    serialization.save_algorithm(os.path.join(output_dir, "best_program.txt"), best_program)
    data = result.to_dict()
    data["config"] = config.to_dict()
    _write_json_atomic(os.path.join(output_dir, "results.json"), data)
    return result


def _write_json_atomic(path: str, data: dict[str, Any]) -> None:
    tmp = path + ".part"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
