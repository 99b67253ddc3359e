"""Value checks of the experiment config: typed, range-checked fields and
task entries, each failure a `ConfigError` that names the field and the
valid values.

`_int` / `_float` / `_choice` check one scalar field, `_listify` gives a
value's JSON form (so round trips compare equal), `_train_budget_spec` /
`_fec_spec` accept a sub-spec or its JSON dict, and `task_spec` /
`_task_entries` parse the task collections (preset names or TaskSpec dicts).
`ExperimentConfig` (config.py) applies them field by field.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from azero_jax import programs as programs_lib
from azero_jax import tasks as tasks_lib
from azero_jax.search.fec import FECSpec
from azero_jax.search.train_budget import DEFAULT_THRESHOLD_FACTOR, TrainBudgetSpec

TaskEntry = str | dict[str, Any]


class ConfigError(ValueError):
    """An invalid experiment config (unknown key, bad value, unusable preset)."""


# Documented limits (README "Flags"): seeds are the reference's 31-bit seeds
# (0 = time-based); address counts and the feature dimension are capped so a
# typo cannot ask for terabytes (every program holds S scalars, V F-vectors
# and M FxF matrices per task).
MAX_SEED = 2**31 - 1
MAX_ADDRESSES = 1000  # S, V and M each
MAX_FEATURES = tasks_lib.MAX_FEATURES


# --------------------------------------------------------------- checks --

def _int(name: str, value: Any, low: int | None = None, *, allow_none: bool = False,
         high: int | None = None, why: str = "") -> int | None:
    """An integer (an integral float like 2e8 from JSON is accepted) in
    [low, high]; `why` explains the upper limit."""
    if value is None and allow_none:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"ExperimentConfig.{name} must be an integer{' or null' if allow_none else ''}, got {value!r}")
    if low is not None and value < low:
        raise ConfigError(f"ExperimentConfig.{name} must be >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"ExperimentConfig.{name} must be <= {high}{f' ({why})' if why else ''}, got {value!r}")
    return int(value)


def _float(name: str, value: Any, low: float | None = None, high: float | None = None, *,
           allow_none: bool = False, strict_low: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"ExperimentConfig.{name} must be a number{' or null' if allow_none else ''}, got {value!r}")
    try:
        value = float(value)
    except OverflowError:
        raise ConfigError(f"ExperimentConfig.{name} is too large for a number, got {value!r}") from None
    if math.isnan(value):
        raise ConfigError(f"ExperimentConfig.{name} must not be NaN")
    if math.isinf(value):
        raise ConfigError(f"ExperimentConfig.{name} must be finite, got {value!r}"
                          + (" (use null for none)" if allow_none else ""))
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
    """Tuples -> lists, spec dataclasses -> dicts, recursively (the JSON
    form, so round trips compare equal)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _listify(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {k: _listify(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_listify(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value



def _train_budget_spec(value: Any) -> TrainBudgetSpec | None:
    """None, or a TrainBudgetSpec (given as one or as its JSON dict)."""
    if value is None or isinstance(value, TrainBudgetSpec):
        return value
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
    return TrainBudgetSpec(baseline=baseline, factor=factor)


def _fec_spec(value: Any) -> FECSpec | None:
    """None, or an FECSpec (given as one or as its JSON dict)."""
    if value is None or isinstance(value, FECSpec):
        return value
    valid = [f.name for f in dataclasses.fields(FECSpec)]
    if not isinstance(value, dict):
        raise ConfigError(f"ExperimentConfig.fec must be null or a dict with keys {', '.join(valid)}, got {value!r}")
    unknown = sorted(set(value) - set(valid))
    if unknown:
        raise ConfigError(f"ExperimentConfig.fec: unknown key(s) {', '.join(map(repr, unknown))}; "
                          f"valid keys: {', '.join(valid)}")
    try:
        return FECSpec(**{k: (int(v) if isinstance(v, float) and v.is_integer() else v)
                          for k, v in value.items()})
    except ValueError as e:
        raise ConfigError(f"ExperimentConfig.fec: {e}") from None


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
