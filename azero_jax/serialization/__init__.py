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

import os

from azero_jax import fileio
from azero_jax.program import Algorithm, MemoryShape
from azero_jax.serialization._common import ProgramFileError, ProgramSyntaxError
from azero_jax.serialization._json import (
    ADDRESS_FIELDS,
    JSON_FORMAT,
    JSON_VERSION,
    MEMORY_FIELDS,
    _loads_json,
    algorithm_and_memory_from_dict,
    algorithm_from_dict,
    algorithm_to_dict,
    dumps_algorithm,
    instruction_to_dict,
    loads_algorithm,
)
from azero_jax.serialization._text import (
    format_algorithm,
    format_instruction,
    format_number,
    parse_algorithm,
    parse_instruction,
)

__all__ = [
    "ADDRESS_FIELDS",
    "JSON_FORMAT",
    "JSON_VERSION",
    "MEMORY_FIELDS",
    "ProgramFileError",
    "ProgramSyntaxError",
    "algorithm_and_memory_from_dict",
    "algorithm_from_dict",
    "algorithm_to_dict",
    "dumps_algorithm",
    "format_algorithm",
    "format_instruction",
    "format_number",
    "instruction_to_dict",
    "load_algorithm",
    "load_algorithm_and_memory",
    "loads_algorithm",
    "loads_any",
    "parse_algorithm",
    "parse_instruction",
    "save_algorithm",
]


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
