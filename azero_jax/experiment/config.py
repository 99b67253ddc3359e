"""Experiment config: the one JSON-able schema of a search run.

`ExperimentConfig` mirrors the reference's `SearchExperimentSpec` plus the
driver flags of `run_search_experiment.cc` and this package's extensions.
Every field is validated on construction (checks in `validators`;
`ConfigError` names the field and the valid values); `to_dict` /
`from_dict` / `to_json` / `from_json` round trip exactly, and `search_hash`
(the checkpoint's config hash) covers everything but `RUN_CONTROL_FIELDS`. Presets live in
`azero_jax.experiment.presets`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any

from azero_jax import checkpoint as checkpoint_lib
from azero_jax import evaluation
from azero_jax import fitness as fitness_lib
from azero_jax import ops as ops_lib
from azero_jax import tasks as tasks_lib
from azero_jax.experiment.validators import (
    MAX_ADDRESSES,
    MAX_SEED,
    ConfigError,
    TaskEntry,
    _choice,
    _fec_spec,
    _float,
    _int,
    _listify,
    _task_entries,
    _train_budget_spec,
    task_spec,
)
from azero_jax.program import COMPONENTS, MemoryShape
from azero_jax.search import evolution as evolution_lib
from azero_jax.search import mutator as mutator_lib
from azero_jax.search.fec import FECSpec
from azero_jax.search.train_budget import TrainBudgetSpec

BACKENDS = evaluation.BACKEND_CHOICES  # ("auto", "reference", "xla", "pallas"); "jax" = "xla"
DTYPES = ("auto",) + evaluation.DTYPES
COMBINATIONS = (fitness_lib.MEAN, fitness_lib.MEDIAN)

# Fields that only steer how long a run goes or how it reports; they may
# change between a run and its resume (everything else is hashed into the
# checkpoint and must match).
RUN_CONTROL_FIELDS = ("max_experiments", "max_train_steps", "max_seconds", "sufficient_fitness", "progress_every",
                      "checkpoint_path", "checkpoint_every_seconds", "search_sufficient_fitness")


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
    train_budget: None, or a `TrainBudgetSpec`; given as a dict
      {"baseline": "neural_net", "factor": 2.0} (the JSON form) too.
    fec: None (off), or a `FECSpec`; given as a dict {num_train_examples,
      num_valid_examples, cache_size, forget_every} (the JSON form; missing
      keys take the reference defaults) too.
    memory: (S, V, M) address counts; F comes from the tasks.
    max_experiments: 0 = unlimited (stop only on sufficient_fitness/time).
    sufficient_fitness: None = never stop early.
    memory: each count at most MAX_ADDRESSES (1000).
    random_seed: 0 = time-based (the chosen seed is logged and saved); at
      most MAX_SEED (2**31 - 1).
    max_seconds: wall-clock budget of the whole run (None = none; else > 0
      and finite); checked after every evolution step, so it stops the
      current search within about one step (possibly mid-sweep) and starts
      no further experiment.
    checkpoint_path: None = <output_dir>/checkpoint.json.
    checkpoint_every_seconds: periodic checkpoints at sweep boundaries
      (0 = after every sweep, None = only at the end of each experiment);
      a positive value is the longest interval: earlier in a run they come
      every max(5 s, 10 % of the elapsed time), so a kill loses little.
    Sizes: mutate_*_size_min <= mutate_*_size_max and *_size_init <=
      mutate_*_size_max when a maximum is set. Floats must be finite.
    backend: "auto" (the default: "pallas" on an NVIDIA GPU when F is a
      power of two, "native" on a CPU when Numba is installed and the dtype
      is float64, else "xla"), "native" (the oracle compiled by Numba,
      `azero_jax.native_eval`: the CPU's fast path, float64, one job per core
      at a time), "xla" (the batched JAX interpreter `azero_jax.jax_eval` on
      CPU, GPU or TPU; feed it with children_per_step in the hundreds; "jax"
      is accepted as its old name), "pallas" (one Pallas kernel per batch,
      `azero_jax.pallas_eval`: GPUs; interpret mode, slow, on CPU) or
      "reference" (the NumPy oracle, one program and task at a time).
      Select/final evaluations use the same backend.
    dtype: compute dtype of the xla backend: "auto" (the default) is float32
      when JAX runs on a GPU or TPU and float64 on a CPU; "float64" agrees
      with the reference bit for bit on the demo ops, so FEC hashes agree
      too; "float32" hashes differently and is consistent only with itself.
      The reference and native backends compute float64 ("auto" or "float64").
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
    train_budget: TrainBudgetSpec | None = None
    max_abs_error: float = fitness_lib.MAX_ABS_ERROR
    fec: FECSpec | None = None
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
    backend: str = "auto"
    dtype: str = "auto"
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
            low, high, init = (getattr(self, f"mutate_{c}_size_min"), getattr(self, f"mutate_{c}_size_max"),
                               getattr(self, f"{c}_size_init"))
            if high:  # None or 0 = no limit
                if low > high:
                    raise ConfigError(f"ExperimentConfig.mutate_{c}_size_min ({low}) exceeds mutate_{c}_size_max "
                                      f"({high}): make the minimum <= the maximum")
                if init > high:
                    raise ConfigError(f"ExperimentConfig.{c}_size_init ({init}) exceeds mutate_{c}_size_max ({high}): "
                                      "the initial programs must fit the size limit")
        s("train_budget", _train_budget_spec(self.train_budget))
        s("max_abs_error", _float("max_abs_error", self.max_abs_error, 0.0, strict_low=True))
        s("fec", _fec_spec(self.fec))
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
        cap = dict(high=MAX_ADDRESSES, why="the documented cap on address counts")
        s("memory", (_int("memory[0] (scalars)", memory[0], 2, **cap), _int("memory[1] (vectors)", memory[1], 1, **cap),
                     _int("memory[2] (matrices)", memory[2], 0, **cap)))
        s("max_experiments", _int("max_experiments", self.max_experiments, 0))
        s("sufficient_fitness", _float("sufficient_fitness", self.sufficient_fitness, allow_none=True))
        if not isinstance(self.randomize_task_seeds, bool):
            raise ConfigError(f"ExperimentConfig.randomize_task_seeds must be true or false, got {self.randomize_task_seeds!r}")
        s("random_seed", _int("random_seed", self.random_seed, 0, high=MAX_SEED,
                              why="seeds lie in [0, 2**31); 0 = time-based"))
        s("backend", _choice("backend", evaluation.BACKEND_ALIASES.get(str(self.backend).strip().lower(),
                                                                       self.backend), BACKENDS))
        s("dtype", _choice("dtype", self.dtype, DTYPES))
        s("children_per_step", _int("children_per_step", self.children_per_step, 1))
        s("num_islands", _int("num_islands", self.num_islands, 1))
        s("migration_every", _int("migration_every", self.migration_every, 0))
        s("island_task_groups", self._check_island_groups(self.island_task_groups))
        if not isinstance(self.random_search, bool):
            raise ConfigError(f"ExperimentConfig.random_search must be true or false, got {self.random_search!r}")
        s("hurdle_tasks", _int("hurdle_tasks", self.hurdle_tasks, 0))
        num_search = sum(spec.num_tasks for spec in self.task_specs("search"))
        if self.hurdle_tasks and self.hurdle_tasks >= num_search:
            raise ConfigError(f"ExperimentConfig.hurdle_tasks ({self.hurdle_tasks}) must be less than the number of "
                              f"search tasks ({num_search}): use 0 (off) to {num_search - 1}")
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
            mutator_cfg = self.mutator_config(features=1)  # ops writable in this memory, non-empty op lists, ...
            mutator_lib.InitialPopulation.from_config(self.initial_population, self.init_sizes, mutator_cfg)
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

    def multiclass(self) -> bool:
        """Whether the final tasks are multiclass (prediction in v2, `azero_jax.multiclass`): the layout
        a found program's live code is read in."""
        return all(spec.eval_type == fitness_lib.MULTICLASS for spec in self.task_specs("final"))

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
            from azero_jax.experiment.presets import get_preset  # the presets are ExperimentConfigs

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
        except RecursionError:
            raise ConfigError(f"{source}: invalid config: JSON nested too deeply") from None
        except ValueError as e:  # e.g. an integer literal with too many digits
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

    def compute_dtype(self) -> str:
        """The dtype evaluations run in ("auto" resolved: float32 when JAX's
        default device is a GPU or TPU, float64 otherwise and on the reference)."""
        return evaluation.resolve_dtype(self.dtype, self.backend)

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


def load_config(preset_or_path: str) -> ExperimentConfig:
    """A preset name, or the path of a JSON config (which may name a base
    "preset" and override fields)."""
    from azero_jax.experiment.presets import PRESETS, get_preset  # the presets are ExperimentConfigs

    if preset_or_path in PRESETS:
        return get_preset(preset_or_path)
    if os.path.exists(preset_or_path) or preset_or_path.endswith(".json"):
        return ExperimentConfig.from_json(preset_or_path)
    raise ConfigError(f"--config {preset_or_path!r} is neither a preset ({', '.join(PRESETS)}) nor a JSON file")
