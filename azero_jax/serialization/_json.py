"""The lossless JSON form of a program (schema in the package docstring):
dicts, strict JSON text, and a reader whose every error names the JSON path."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from azero_jax import ops as ops_lib
from azero_jax.program import COMPONENTS, Algorithm, Instruction, MemoryShape, ProgramError
from azero_jax.serialization._common import _FLOAT32_MAX, ProgramSyntaxError, _quote, check_memory

JSON_FORMAT = "azero-jax-program"
JSON_VERSION = 1
MEMORY_FIELDS = ("scalars", "vectors", "matrices", "features")
ADDRESS_FIELDS = ("in1", "in2", "out")


def _json_constant(value: float) -> float | str:
    if math.isnan(value):
        return "-nan" if math.copysign(1.0, value) < 0 else "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def instruction_to_dict(instr: Instruction) -> dict[str, Any]:
    """``{"op": NAME, <used addresses>, <used constants>}``; fields the op does
    not use are omitted (they are always 0 in a valid instruction)."""
    spec = instr.spec
    out: dict[str, Any] = {"op": spec.name}
    for field, kind in zip(ADDRESS_FIELDS, (spec.in1, spec.in2, spec.out), strict=True):
        if kind is not None:
            out[field] = getattr(instr, field)
    for field in spec.consts:
        out[field] = _json_constant(getattr(instr, field))
    return out


def algorithm_to_dict(algorithm: Algorithm, memory: MemoryShape | None = None) -> dict[str, Any]:
    """The versioned JSON-ready dict (see module docstring)."""
    out: dict[str, Any] = {"format": JSON_FORMAT, "version": JSON_VERSION}
    if memory is not None:
        out["memory"] = {f: getattr(memory, f) for f in MEMORY_FIELDS}
    for name in COMPONENTS:
        out[name] = [instruction_to_dict(instr) for instr in algorithm.component(name)]
    return out


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if isinstance(value, (int, float)) else type(value).__name__
    )


class _DictReader:
    """Reads the JSON dict, turning every problem into a ProgramSyntaxError
    carrying the JSON path (``predict[2].in1``)."""

    _NONFINITE = {"nan": math.nan, "-nan": -math.nan, "+nan": math.nan, "inf": math.inf, "+inf": math.inf,
                  "-inf": -math.inf}

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, problem: str) -> ProgramSyntaxError:
        return ProgramSyntaxError(self.source, problem, path=path or "top level")

    def mapping(self, value: Any, path: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(path, f"expected an object, got {_type_name(value)}")
        return value

    def check_keys(self, obj: Mapping[str, Any], path: str, required: tuple[str, ...], allowed: tuple[str, ...]) -> None:
        for key in obj:
            if key not in allowed:
                raise self.fail(path, f"unknown key {_quote(str(key))} (allowed: {', '.join(allowed)})")
        for key in required:
            if key not in obj:
                raise self.fail(path, f"missing key {key!r}")

    def integer(self, value: Any, path: str, low: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected an integer, got {_type_name(value)} {_quote(repr(value), 40)}")
        if value < low:
            raise self.fail(path, f"expected an integer >= {low}, got {value}")
        return value

    def number(self, value: Any, path: str) -> float:
        if isinstance(value, str):
            key = value.strip().lower()
            if key in self._NONFINITE:
                return self._NONFINITE[key]
            raise self.fail(path, f"expected a number or one of 'nan', 'inf', '-inf', got string {_quote(value, 40)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(path, f"expected a number, got {_type_name(value)}")
        try:
            return float(value)
        except OverflowError:
            raise self.fail(path, "integer constant too large for a double") from None

    def op(self, value: Any, path: str) -> ops_lib.Op:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise self.fail(path, f"expected an op name or id, got {_type_name(value)}")
        try:
            return ops_lib.get_op(value)
        except ValueError as e:
            raise self.fail(path, str(e)) from None

    def memory(self, value: Any, path: str = "memory") -> MemoryShape:
        obj = self.mapping(value, path)
        self.check_keys(obj, path, MEMORY_FIELDS, MEMORY_FIELDS)
        sizes = {f: self.integer(obj[f], f"{path}.{f}") for f in MEMORY_FIELDS}
        try:
            return MemoryShape(**sizes)
        except ProgramError as e:
            raise self.fail(path, str(e)) from None

    def instruction(self, value: Any, path: str) -> Instruction:
        obj = self.mapping(value, path)
        if "op" not in obj:
            raise self.fail(path, "missing key 'op'")
        spec = self.op(obj["op"], f"{path}.op")
        used = [f for f, k in zip(ADDRESS_FIELDS, (spec.in1, spec.in2, spec.out), strict=True) if k is not None]
        allowed = ("op", *ADDRESS_FIELDS, *spec.consts)
        for key in obj:
            if key in ops_lib.CONST_FIELDS and key not in spec.consts:
                raise self.fail(f"{path}.{key}", f"{spec.name} takes no constant {key!r} (it uses: "
                                f"{', '.join(spec.consts) or 'none'})")
        self.check_keys(obj, path, ("op", *used, *spec.consts), allowed)
        fields: dict[str, Any] = {}
        for field in ADDRESS_FIELDS:
            if field not in obj:
                continue
            address = self.integer(obj[field], f"{path}.{field}")
            if field not in used and address != 0:
                raise self.fail(f"{path}.{field}", f"{spec.name} does not use {field}; omit it or set it to 0")
            fields[field] = address
        for field in spec.consts:
            fields[field] = self.number(obj[field], f"{path}.{field}")
            if field != "d" and math.isfinite(fields[field]) and abs(fields[field]) > _FLOAT32_MAX:
                raise self.fail(f"{path}.{field}", f"constant {fields[field]!r} overflows float32")
        try:
            return Instruction(spec.id, **fields)
        except ProgramError as e:
            raise self.fail(path, str(e)) from None

    def algorithm(self, value: Any, memory: MemoryShape | None) -> tuple[Algorithm, MemoryShape | None]:
        obj = self.mapping(value, "")
        allowed = ("format", "version", "memory", *COMPONENTS)
        self.check_keys(obj, "", ("format", "version", *COMPONENTS), allowed)
        if obj["format"] != JSON_FORMAT:
            raise self.fail("format", f"expected {JSON_FORMAT!r}, got {_quote(repr(obj['format']), 40)}")
        version = obj["version"]
        if isinstance(version, bool) or not isinstance(version, int):
            raise self.fail("version", f"expected an integer, got {_type_name(version)}")
        if version != JSON_VERSION:
            raise self.fail("version", f"unsupported version {version} (this reader handles version {JSON_VERSION})")
        file_memory = self.memory(obj["memory"]) if "memory" in obj else None
        components: dict[str, list[Instruction]] = {}
        for name in COMPONENTS:
            items = obj[name]
            if not isinstance(items, list):
                raise self.fail(name, f"expected an array of instructions, got {_type_name(items)}")
            components[name] = [self.instruction(item, f"{name}[{i}]") for i, item in enumerate(items)]
        algorithm = Algorithm(**components)
        check = memory if memory is not None else file_memory
        if check is not None:
            check_memory(components, check, lambda name, i, problem: self.fail(f"{name}[{i}]", problem))
        return algorithm, file_memory


def algorithm_and_memory_from_dict(
    data: Any, *, source: str = "<dict>", memory: MemoryShape | None = None
) -> tuple[Algorithm, MemoryShape | None]:
    """Like `algorithm_from_dict`, also returning the memory shape stored in
    the dict (None if absent). Validation uses `memory` if given, else the
    stored shape, else none."""
    return _DictReader(source).algorithm(data, memory)


def algorithm_from_dict(data: Any, *, source: str = "<dict>", memory: MemoryShape | None = None) -> Algorithm:
    """Inverse of `algorithm_to_dict`; op may be a name or an integer id."""
    return algorithm_and_memory_from_dict(data, source=source, memory=memory)[0]


def _dumps_compact(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(", ", ": "))


def dumps_algorithm(algorithm: Algorithm, memory: MemoryShape | None = None) -> str:
    """Strict JSON, indented by 2 with one instruction per line (diff-friendly);
    keys in a fixed order (format, version, memory, setup, predict, learn)."""
    data = algorithm_to_dict(algorithm, memory)
    lines = ["{"]
    items = list(data.items())
    for index, (key, value) in enumerate(items):
        comma = "," if index < len(items) - 1 else ""
        if isinstance(value, list) and value:
            lines.append(f"  {json.dumps(key)}: [")
            lines.extend(f"    {_dumps_compact(v)}{',' if j < len(value) - 1 else ''}" for j, v in enumerate(value))
            lines.append(f"  ]{comma}")
        else:
            lines.append(f"  {json.dumps(key)}: {_dumps_compact(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _finite_json_number(token: str) -> float:
    """A JSON number that fits a double; an overflowing literal (1e309) is an
    error instead of a silent inf (write the string "inf" for infinity)."""
    value = float(token)
    if math.isinf(value):
        raise ValueError(f"number {token} does not fit a double (write \"inf\" / \"-inf\" for infinity)")
    return value


def _loads_json(text: str, source: str) -> Any:
    try:
        return json.loads(text, parse_float=_finite_json_number)
    except json.JSONDecodeError as e:
        raise ProgramSyntaxError(source, f"invalid JSON: {e.msg} (column {e.colno})", line=e.lineno) from None
    except RecursionError:
        raise ProgramSyntaxError(source, "invalid JSON: nested too deeply") from None
    except ValueError as e:  # e.g. huge integer literals (int max str digits)
        raise ProgramSyntaxError(source, f"invalid JSON: {e}") from None


def loads_algorithm(text: str, *, source: str = "<string>", memory: MemoryShape | None = None) -> Algorithm:
    """Parses a JSON program string (see `dumps_algorithm`)."""
    if not isinstance(text, str):
        raise ProgramSyntaxError(source, f"JSON text must be a str, got {type(text).__name__}")
    return algorithm_from_dict(_loads_json(text, source), source=source, memory=memory)
