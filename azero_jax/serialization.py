"""Reading and writing programs: the reference's printed text and a JSON schema.

Two formats:

* **Printed text**, exactly what the reference's ``Algorithm::ToReadable()``
  prints (``def Setup():`` / two-space indented instructions / ``def
  Predict():`` / ``def Learn():``). `format_algorithm` reproduces it byte for
  byte; `parse_algorithm` reads it back. Both are driven by the op table's
  ``Op.printed`` templates, so a new op needs no change here. Numbers print
  with 6 significant digits, so text is lossy for arbitrary constants (it is
  exact for the C++ reference cases, whose constants were chosen to print
  exactly).
* **JSON** (``"format": "azero-jax-program"``, ``"version": 1``): lossless,
  strict JSON (non-finite constants are the strings ``"nan"``, ``"-nan"``,
  ``"inf"``, ``"-inf"``) and optionally carries the memory shape::

    {"format": "azero-jax-program", "version": 1,
     "memory": {"scalars": 20, "vectors": 20, "matrices": 20, "features": 4},
     "setup": [{"op": "SCALAR_CONST_SET_OP", "out": 2, "d": 0.0625}],
     "predict": [{"op": "VECTOR_INNER_PRODUCT_OP", "in1": 1, "in2": 0, "out": 1}],
     "learn": []}

  Writers emit only the addresses and constants the op uses. Readers accept
  ``op`` as a name (``"SCALAR_SUM_OP"`` or ``"SCALAR_SUM"``) or an integer id;
  an unused address may be omitted or 0; a constant the op does not use, or
  any other unknown key, is an error (it usually means a wrong op). Loading
  validates against the ``memory`` argument if given, else the stored shape.

Every malformed input raises `ProgramSyntaxError` (a `ProgramError`) with a
one-line message ``{source}:{line}: {problem}`` (text) or
``{source}: {json path}: {problem}`` (JSON), never a stray KeyError/TypeError.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from azero_jax import fileio
from azero_jax import ops as ops_lib
from azero_jax.program import (
    COMPONENT_TITLES,
    COMPONENTS,
    Algorithm,
    Instruction,
    MemoryShape,
    ProgramError,
    validate_instruction,
)

JSON_FORMAT = "azero-jax-program"
JSON_VERSION = 1
MEMORY_FIELDS = ("scalars", "vectors", "matrices", "features")
ADDRESS_FIELDS = ("in1", "in2", "out")

_HEADERS = tuple(f"def {COMPONENT_TITLES[c]}():" for c in COMPONENTS)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class ProgramSyntaxError(ProgramError):
    """A program file or string is malformed; the message is one line naming
    the source and the line (text) or JSON path where the problem is."""

    def __init__(self, source: str, problem: str, line: int | None = None, path: str | None = None):
        self.source = source
        self.line = line
        self.path = path
        self.problem = _one_line(problem)
        if line is not None:
            message = f"{source}:{line}: {self.problem}"
        elif path:
            message = f"{source}: {path}: {self.problem}"
        else:
            message = f"{source}: {self.problem}"
        super().__init__(_one_line(message))

    def __reduce__(self):
        # Picklable (errors cross process boundaries in parallel evaluation).
        return (type(self), (self.source, self.problem, self.line, self.path))


class ProgramFileError(ProgramError):
    """A program file cannot be read or written (missing, unreadable, not UTF-8)."""


def _one_line(text: str) -> str:
    return " ".join(str(text).splitlines()) if ("\n" in str(text) or "\r" in str(text)) else str(text)


def _quote(text: str, limit: int = 80) -> str:
    """repr() of a (shortened) user string, so messages stay one line."""
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


# ------------------------------------------------------------------ numbers --


def format_number(x: float) -> str:
    """C++ ``std::ostream << double`` with default flags (``%g``, precision 6).

    A NaN with the sign bit set prints ``-nan`` as glibc does (Python's ``%g``
    would drop the sign)."""
    x = float(x)
    if math.isnan(x):
        return "-nan" if math.copysign(1.0, x) < 0 else "nan"
    return format(x, "g")


_NUMBER_RE = r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:inf(?:inity)?|nan))"
_ADDRESS_RE = r"[A-Za-z][0-9]+"


def _parse_constant(token: str, field: str) -> float:
    """A printed constant as a Python float; rejects finite literals that would
    overflow (double for ``d``, float32 for ``f0..f2``) instead of silently
    turning them into inf."""
    value = float(token)
    if math.isinf(value) and "inf" not in token.lower():
        raise ValueError(f"constant {field}={token} overflows a double")
    if field != "d" and math.isfinite(value) and abs(value) > _FLOAT32_MAX:
        # Strict: a few values a hair above FLT_MAX would round down, but none is printed by us.
        raise ValueError(f"constant {field}={token} overflows float32 (|value| > {_FLOAT32_MAX:g})")
    return value


# ----------------------------------------------------------------- printing --


def format_instruction(instr: Instruction) -> str:
    """One instruction as the reference prints it (no indentation)."""
    spec = instr.spec
    values: dict[str, str] = {}
    for key, field, kind in (("o", "out", spec.out), ("a", "in1", spec.in1), ("b", "in2", spec.in2)):
        if kind is not None:
            values[key] = f"{kind}{getattr(instr, field)}"
    for field in spec.consts:
        values[field] = format_number(getattr(instr, field))
    return spec.printed.format(**values)


def format_algorithm(algorithm: Algorithm) -> str:
    """The whole program exactly as ``Algorithm::ToReadable()`` prints it."""
    lines: list[str] = []
    for header, name in zip(_HEADERS, COMPONENTS, strict=True):
        lines.append(header + "\n")
        lines.extend(f"  {format_instruction(instr)}\n" for instr in algorithm.component(name))
    return "".join(lines)


# ------------------------------------------------------------------ parsing --

_PLACEHOLDER_RE = re.compile(r"\{(o|a|b|d|f0|f1|f2)\}")
_LITERAL_TOKEN_RE = re.compile(r"[A-Za-z0-9_.]+|\S")


class _Template:
    """Ops sharing one printed template, told apart by their operand kinds."""

    def __init__(self, index: int, printed: str):
        self.index = index
        self.printed = printed
        self.group = f"t{index}"
        self.placeholders: list[str] = []
        self.by_kinds: dict[tuple[str | None, str | None, str | None], ops_lib.Op] = {}
        self.regex = self._compile(printed)

    def _compile(self, printed: str) -> str:
        """Literal text becomes tokens joined by optional whitespace, so
        ``s1=1/s2`` or extra spaces still parse; placeholders become groups."""
        parts: list[str] = []
        pos = 0
        for m in _PLACEHOLDER_RE.finditer(printed):
            parts.extend(re.escape(t) for t in _LITERAL_TOKEN_RE.findall(printed[pos : m.start()]))
            name = m.group(1)
            self.placeholders.append(name)
            pattern = _ADDRESS_RE if name in ("o", "a", "b") else _NUMBER_RE
            parts.append(f"(?P<{self.group}_{name}>{pattern})")
            pos = m.end()
        parts.extend(re.escape(t) for t in _LITERAL_TOKEN_RE.findall(printed[pos:]))
        return f"(?P<{self.group}>" + r"\s*".join(parts) + ")"

    def add(self, op: ops_lib.Op) -> None:
        kinds = (op.out, op.in1, op.in2)
        if kinds in self.by_kinds:
            raise AssertionError(f"ops {self.by_kinds[kinds].name} and {op.name} print identically")
        self.by_kinds[kinds] = op

    @staticmethod
    def kinds_text(kinds: tuple[str | None, ...]) -> str:
        """``o=v, a=s`` for the operands a template has."""
        return ", ".join(f"{p}={k}" for p, k in zip("oab", kinds, strict=True) if k is not None)


def _build_templates() -> tuple[list[_Template], re.Pattern[str]]:
    templates: dict[str, _Template] = {}
    for op in ops_lib.OPS:
        if op.printed not in templates:
            templates[op.printed] = _Template(len(templates), op.printed)
        templates[op.printed].add(op)
    ordered = list(templates.values())
    matcher = re.compile(r"\s*(?:" + "|".join(t.regex for t in ordered) + r")\s*\Z", re.ASCII)
    return ordered, matcher


_TEMPLATES, _LINE_MATCHER = _build_templates()
_TEMPLATE_BY_GROUP = {t.group: t for t in _TEMPLATES}
_HEADER_RE = re.compile(r"def\s+(\w+)\s*\(\s*\)\s*:", re.ASCII)


def parse_instruction(line: str) -> Instruction:
    """One printed instruction (no indentation needed); raises ValueError with
    a one-line problem description (callers add file:line)."""
    m = _LINE_MATCHER.match(line)
    if m is None:
        raise ValueError(f"unknown instruction {_quote(line.strip())}")
    template = _TEMPLATE_BY_GROUP[m.lastgroup]
    groups = {name: m.group(f"{template.group}_{name}") for name in template.placeholders}
    kinds = tuple(groups[k][0] if k in groups else None for k in ("o", "a", "b"))
    op = template.by_kinds.get(kinds)  # type: ignore[arg-type]
    if op is None:
        valid = "; ".join(template.kinds_text(k) for k in template.by_kinds)
        raise ValueError(
            f"operand kinds {template.kinds_text(kinds)} do not match any op of form "
            f"{template.printed!r} (valid kinds: {valid})"
        )
    fields: dict[str, Any] = {}
    for key, field in (("o", "out"), ("a", "in1"), ("b", "in2")):
        if key in groups:
            fields[field] = int(groups[key][1:])
    for field in op.consts:
        fields[field] = _parse_constant(groups[field], field)
    try:
        return Instruction(op.id, **fields)
    except ProgramError as e:
        raise ValueError(str(e)) from None


def parse_algorithm(text: str, *, source: str = "<string>", memory: MemoryShape | None = None) -> Algorithm:
    """Parses the reference's printed program text.

    Tolerates blank lines, ``#`` comments, any indentation, trailing whitespace
    and CRLF; the headers must appear once each, in the order Setup, Predict,
    Learn (components may be empty). With `memory`, addresses and constants are
    validated against it. Raises ProgramSyntaxError naming ``source:line``."""
    if not isinstance(text, str):
        raise ProgramSyntaxError(source, f"program text must be a str, got {type(text).__name__}")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    components: dict[str, list[Instruction]] = {c: [] for c in COMPONENTS}
    line_numbers: dict[str, list[int]] = {c: [] for c in COMPONENTS}
    current = -1  # index into COMPONENTS of the component being read
    last_line = 0  # last line with content
    for number, raw in enumerate(lines, start=1):
        content = raw.split("#", 1)[0].strip()
        if not content:
            continue
        last_line = number
        if _HEADER_RE.fullmatch(content) is not None:
            if current + 1 >= len(_HEADERS):
                raise ProgramSyntaxError(source, f"unexpected {_quote(content)} after 'def Learn():'", line=number)
            expected = _HEADERS[current + 1]
            if content.replace(" ", "").replace("\t", "") != expected.replace(" ", ""):
                raise ProgramSyntaxError(source, f"expected {expected!r}, found {_quote(content)}", line=number)
            current += 1
            continue
        if current < 0:
            raise ProgramSyntaxError(source, f"{_quote(content)} before 'def Setup():'", line=number)
        try:
            instr = parse_instruction(content)
        except ValueError as e:
            raise ProgramSyntaxError(source, str(e), line=number) from None
        name = COMPONENTS[current]
        components[name].append(instr)
        line_numbers[name].append(number)
    if current < len(COMPONENTS) - 1:
        missing = _HEADERS[current + 1]
        if last_line == 0:
            raise ProgramSyntaxError(source, f"empty program (missing {missing!r})", line=1)
        raise ProgramSyntaxError(source, f"missing {missing!r} (file truncated?)", line=last_line)
    algorithm = Algorithm(**components)
    if memory is not None:
        for name in COMPONENTS:
            for i, (instr, number) in enumerate(zip(components[name], line_numbers[name], strict=True)):
                try:
                    validate_instruction(instr, memory, where=f"{COMPONENT_TITLES[name]} instruction {i}")
                except ProgramError as e:
                    raise ProgramSyntaxError(source, str(e), line=number) from None
    return algorithm


# --------------------------------------------------------------------- JSON --


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
            for name in COMPONENTS:
                for i, instr in enumerate(components[name]):
                    try:
                        validate_instruction(instr, check, where=f"{COMPONENT_TITLES[name]} instruction {i}")
                    except ProgramError as e:
                        raise self.fail(f"{name}[{i}]", str(e)) from None
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


def loads_any(text: str, *, source: str = "<string>", memory: MemoryShape | None = None
              ) -> tuple[Algorithm, MemoryShape | None]:
    """JSON if the first non-space character is ``{``, else printed text.
    Returns the algorithm and the memory shape stored in the JSON (if any)."""
    stripped = text.lstrip()
    if not stripped:
        raise ProgramSyntaxError(source, "empty program file", line=1)
    if stripped.startswith("{"):
        return algorithm_and_memory_from_dict(_loads_json(text, source), source=source, memory=memory)
    return parse_algorithm(text, source=source, memory=memory), None


def load_algorithm(path: str | os.PathLike[str], memory: MemoryShape | None = None) -> Algorithm:
    """Reads a program file in either format (auto-detected)."""
    return load_algorithm_and_memory(path, memory)[0]


def load_algorithm_and_memory(path: str | os.PathLike[str], memory: MemoryShape | None = None
                              ) -> tuple[Algorithm, MemoryShape | None]:
    """Reads a program file in either format (auto-detected); also returns
    the memory shape its JSON form stores (None for text or without one).
    Validation uses `memory` if given, else the stored shape."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ProgramFileError(f"{source}: cannot read program file: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ProgramFileError(f"{source}: not UTF-8 text (byte {e.start})") from None
    return loads_any(text, source=source, memory=memory)


def save_algorithm(path: str | os.PathLike[str], algorithm: Algorithm, memory: MemoryShape | None = None,
                   *, fmt: str = "auto") -> None:
    """Writes atomically (temp file in the same directory, fsync, os.replace),
    so a crash never leaves a half-written program. `fmt` is ``"json"``,
    ``"text"`` or ``"auto"`` (text for a ``.txt`` suffix, else JSON; text
    drops `memory`)."""
    target = os.fspath(path)
    if fmt == "auto":
        fmt = "text" if target.lower().endswith(".txt") else "json"
    if fmt == "json":
        content = dumps_algorithm(algorithm, memory)
    elif fmt == "text":
        content = format_algorithm(algorithm)
    else:
        raise ValueError(f"fmt must be 'auto', 'json' or 'text', got {fmt!r}")
    try:
        fileio.atomic_write_text(target, content, make_dirs=False)
    except OSError as e:
        raise ProgramFileError(f"{target}: cannot write program file: {e.strerror or e}") from None
