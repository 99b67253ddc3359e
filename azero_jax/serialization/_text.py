"""The reference's printed program text: `format_algorithm` reproduces
``Algorithm::ToReadable()`` byte for byte, `parse_algorithm` reads it back.
Both are driven by the op table's ``Op.printed`` templates, so a new op needs
no change here."""

from __future__ import annotations

import math
import re
from typing import Any

from azero_jax import ops as ops_lib
from azero_jax.program import COMPONENT_TITLES, COMPONENTS, Algorithm, Instruction, MemoryShape, ProgramError
from azero_jax.serialization._common import _FLOAT32_MAX, ProgramSyntaxError, _quote, check_memory

_HEADERS = tuple(f"def {COMPONENT_TITLES[c]}():" for c in COMPONENTS)


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
        check_memory(components, memory,
                     lambda name, i, problem: ProgramSyntaxError(source, problem, line=line_numbers[name][i]))
    return algorithm
