"""The config flags of the experiment entry points, generated from
`ExperimentConfig` so that a run's settings have one schema.

Flag scheme of the experiment entry points (`define_config_flags`):

  --<field>=VALUE   one flag per `ExperimentConfig` field, under the field's
                    own name (--population_size=100, --backend=reference,
                    --max_train_steps=2e8, --sufficient_fitness=none,
                    --memory=[4,3,1] or 4,3,1, --fec='{"num_train_examples": 10}',
                    --search_tasks=demo_search). Every one defaults to "not
                    given": the preset's / config file's / script's value.
                    Numbers as usual (integers also as 2e8), booleans as
                    --flag / --noflag, `none` or `null` clears an optional
                    field, lists and dicts as JSON (lists also as a
                    comma-separated list).
  --set KEY=VALUE   repeatable, applied after the flags above: VALUE is JSON,
                    or else a plain string (--set population_size=7,
                    --set backend=reference, --set 'fec=null').
  --seed, --islands, --max_minutes
                    aliases of --random_seed, --num_islands and
                    --max_seconds/60 (--max_minutes=0: no time budget);
                    giving an alias and its field with different values is
                    an error.

Range and choice checks are the config's own (`experiment.ConfigError`);
this layer only turns strings into values.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from absl import flags

from azero_jax.experiment.field_help import FIELD_HELP

# Each flag's --help text is FIELD_HELP[field] (azero_jax.experiment.field_help).

_NULLS = ("none", "null")
_KIND_NAMES = {"int": "integer", "float": "number", "str": "string", "list": "JSON list", "dict": "JSON object",
               "json": "JSON value"}


def _top_level_parts(annotation: str) -> list[str]:
    """'tuple[int, ...] | None' -> ['tuple[int, ...]', 'None']."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(annotation):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(annotation[start:i].strip())
            start = i + 1
    parts.append(annotation[start:].strip())
    return parts


def field_kind(field: dataclasses.Field) -> tuple[str, bool]:
    """(kind, optional) of a config field: kind is bool, int, float, str,
    list (tuples/lists), dict or json (anything else), from its annotation
    (a string under `from __future__ import annotations`, or a type); a
    `...Spec` class counts as dict (the config takes its fields as a dict)."""
    ann = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", None) or str(field.type)
    ann = ann.replace("typing.", "")
    if ann.startswith("Optional[") and ann.endswith("]"):
        ann = ann[len("Optional["):-1] + " | None"
    parts = _top_level_parts(ann)
    optional = "None" in parts or field.default is None
    parts = [p for p in parts if p != "None"]
    base = parts[0] if len(parts) == 1 else ""
    head = base.split("[", 1)[0].strip().lower()
    if head in ("bool", "int", "float", "str"):
        return head, optional
    if head in ("tuple", "list", "sequence"):
        return "list", optional
    if head in ("dict", "mapping") or head.endswith("spec"):  # a dict, or a spec dataclass given as one
        return "dict", optional
    default = field.default if field.default is not dataclasses.MISSING else None
    for kind, types in (("bool", bool), ("int", int), ("float", float), ("str", str), ("list", (list, tuple)),
                        ("dict", dict)):
        if isinstance(default, types):
            return kind, optional
    return "json", optional


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected an integer, got {text!r}") from None
    if not value.is_integer():
        raise ValueError(f"expected an integer, got {text!r}")
    return int(value)


def _parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None


def _json(text: str) -> Any:
    """json.loads, but a value nested too deeply is a ValueError too."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"JSON value nested too deeply: {text[:40]!r}...") from None


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise experiment_error(f"JSON value nested too deeply: {text[:40]!r}...") from None
    except ValueError:
        return text


def experiment_error(message: str) -> Exception:
    from azero_jax import experiment

    return experiment.ConfigError(message)


def _parse_list(text: str) -> Any:
    if not text.strip():
        return []
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"JSON value nested too deeply: {text[:40]!r}...") from None
    except ValueError:
        return [_json_or_text(part.strip()) for part in text.split(",")]


def _parse_dict(text: str) -> Any:
    try:
        return _json(text)
    except ValueError as e:
        raise ValueError(f"expected a JSON object or null ({e})") from None


_PARSERS: dict[str, Callable[[str], Any]] = {"int": _parse_int, "float": _parse_float, "str": str,
                                             "list": _parse_list, "dict": _parse_dict, "json": _json_or_text}


class FieldParser(flags.ArgumentParser):
    """absl parser of one config value: a string to an int / float / JSON
    value; `none` or `null` gives None for optional fields."""

    def __init__(self, kind: str, optional: bool):
        self.kind, self.optional = kind, optional
        self.syntactic_help = self.flag_type()

    def parse(self, argument: Any) -> Any:
        if not isinstance(argument, str):
            return argument  # set from code
        text = argument.strip()
        if self.optional and text.lower() in _NULLS:
            return None
        return _PARSERS[self.kind](text)

    def flag_type(self) -> str:
        return _KIND_NAMES[self.kind] + (" or none" if self.optional else "")


@dataclasses.dataclass
class _Alias:
    name: str
    field: str
    to_field: Callable[[Any], Any]
    scale: float | None = None


@dataclasses.dataclass
class _Registry:
    flag_values: flags.FlagValues
    fields: tuple[str, ...]
    aliases: dict[str, _Alias] = dataclasses.field(default_factory=dict)
    names: list[str] = dataclasses.field(default_factory=list)  # every flag defined here


_REGISTRIES: dict[int, _Registry] = {}
SET_FLAG = "set"


def defines_config_flags(flag_values: flags.FlagValues) -> bool:
    """Whether define_config_flags has run for `flag_values`."""
    return id(flag_values) in _REGISTRIES


def _registry(flag_values: flags.FlagValues) -> _Registry:
    reg = _REGISTRIES.get(id(flag_values))
    if reg is None:
        raise RuntimeError("call cli.define_config_flags() first")
    return reg


def batched_backend() -> str:
    """The batched evaluator's name for scripts that default to one: the
    first backend choice that is not the reference interpreter ("auto")."""
    from azero_jax import experiment

    return next(b for b in experiment.BACKENDS if b != "reference")


def define_config_flags(flag_values: flags.FlagValues = flags.FLAGS, *, aliases: bool = True) -> None:
    """Defines one flag per ExperimentConfig field (default None = not
    given), --set, and (with `aliases`) --seed, --islands, --max_minutes.
    Calling it again for the same FlagValues does nothing."""
    if id(flag_values) in _REGISTRIES:
        return
    from azero_jax import experiment

    config_fields = dataclasses.fields(experiment.ExperimentConfig)
    reg = _Registry(flag_values, tuple(f.name for f in config_fields))
    choices = {"backend": experiment.BACKENDS, "dtype": experiment.DTYPES}
    for field in config_fields:
        kind, optional = field_kind(field)
        text = FIELD_HELP.get(field.name, f"ExperimentConfig.{field.name}")
        if field.name in choices:
            text += f": one of {', '.join(choices[field.name])}"
        text += " [config field; default: from the config]"
        if kind == "bool":
            flags.DEFINE_bool(field.name, None, text, flag_values=flag_values)
        else:
            flags.DEFINE(FieldParser(kind, optional), field.name, None, text, flag_values=flag_values)
        reg.names.append(field.name)
    flags.DEFINE_multi_string(
        SET_FLAG, None, "KEY=VALUE: set config field KEY (VALUE as JSON, else a plain string); repeatable, "
        "applied after the other config flags", flag_values=flag_values)
    reg.names.append(SET_FLAG)
    _REGISTRIES[id(flag_values)] = reg
    if aliases:
        define_alias("seed", "random_seed", flag_values=flag_values)
        define_alias("islands", "num_islands", flag_values=flag_values)
        define_alias("max_minutes", "max_seconds", "wall-clock budget of the whole run in minutes (0 or none = no "
                     "budget)", scale=60.0, flag_values=flag_values)


def define_alias(name: str, field: str, help: str | None = None, *, scale: float | None = None,
                 flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """--name as another spelling of config field `field` (its value times
    `scale` when given; with a scale, 0 means none). Its help says so."""
    reg = _registry(flag_values)
    if field not in reg.fields:
        raise ValueError(f"alias --{name}: {field!r} is not a config field")
    kind, optional = field_kind(next(f for f in dataclasses.fields(_config_class()) if f.name == field))
    if scale is not None:
        kind, optional = "float", True
        to_field = lambda v: None if v is None or v == 0 else v * scale  # noqa: E731
        spelled = f"--{field}/{scale:g}"
    else:
        to_field = lambda v: v  # noqa: E731
        spelled = f"--{field}"
    text = f"alias of {spelled}: {help or FIELD_HELP.get(field, field)}"
    if kind == "bool":
        flags.DEFINE_bool(name, None, text, flag_values=flag_values)
    else:
        flags.DEFINE(FieldParser(kind, optional), name, None, text, flag_values=flag_values)
    reg.aliases[name] = _Alias(name, field, to_field, scale)
    reg.names.append(name)


def _config_class():
    from azero_jax import experiment

    return experiment.ExperimentConfig


def document_defaults(defaults: Mapping[str, Any], flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Adds "this script's default: X" to the help of each named flag (X as
    JSON; a string is shown as it is, so it may describe the default)."""
    for name, value in defaults.items():
        shown = value if isinstance(value, str) else json.dumps(value)
        flag = flag_values[name]
        flag.help = flag.help.replace("[config field; default: from the config]",
                                      f"[config field; this script's default: {shown}]")
        if "this script's default" not in flag.help:
            flag.help += f" [this script's default: {shown}]"


def config_flag_names(flag_values: flags.FlagValues = flags.FLAGS) -> list[str]:
    """Every flag that define_config_flags / define_alias defined."""
    return list(_registry(flag_values).names)


def _given(flag_values: flags.FlagValues, name: str) -> bool:
    flag = flag_values[name]
    return flag.value is not None or bool(flag.present)


def flag_overrides(flag_values: flags.FlagValues = flags.FLAGS) -> dict[str, Any]:
    """The config fields given on the command line: the field flags, the
    aliases (an alias and its field with different values: ConfigError),
    then --set (ConfigError for a malformed item or an unknown key)."""
    from azero_jax import experiment

    reg = _registry(flag_values)
    changes = {name: flag_values[name].value for name in reg.fields if _given(flag_values, name)}
    for alias in reg.aliases.values():
        if not _given(flag_values, alias.name):
            continue
        raw = flag_values[alias.name].value
        if alias.scale is not None and raw is not None and not (math.isfinite(raw) and raw >= 0):
            raise experiment.ConfigError(f"--{alias.name} must be a finite number >= 0 (0 or none = no budget), "
                                         f"got {_show(raw)}")
        value = alias.to_field(raw)
        if alias.field in changes and changes[alias.field] != value:
            raise experiment.ConfigError(
                f"--{alias.name}={_show(raw)} and --{alias.field}={_show(changes[alias.field])} disagree "
                f"(--{alias.name} is an alias of --{alias.field}); give one of them")
        changes[alias.field] = value
    for item in flag_values[SET_FLAG].value or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise experiment.ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        if key not in reg.fields:
            raise experiment.ConfigError(f"--set: unknown config key {key!r}; valid keys: {', '.join(reg.fields)}")
        changes[key] = _json_or_text(text)
    return changes


def _show(value: Any) -> str:
    return "none" if value is None else (value if isinstance(value, str) else json.dumps(value))


def config_from_flags(base, flag_values: flags.FlagValues = flags.FLAGS):
    """`base` (an ExperimentConfig) with the config flags, then --set,
    applied; raises experiment.ConfigError for a bad value (the config's own
    checks) or bad --set / alias use."""
    return base.replace(**flag_overrides(flag_values))
