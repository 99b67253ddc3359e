"""What the text and JSON forms share: their errors, one-line message
helpers, and the check of a program's instructions against a memory shape."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from azero_jax.program import COMPONENT_TITLES, COMPONENTS, Instruction, MemoryShape, ProgramError, validate_instruction

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


def check_memory(components: Mapping[str, Sequence[Instruction]], memory: MemoryShape,
                 fail: Callable[[str, int, str], Exception]) -> None:
    """Validates every instruction against `memory`; the first that does not
    fit raises `fail(component, position, problem)`."""
    for name in COMPONENTS:
        for i, instr in enumerate(components[name]):
            try:
                validate_instruction(instr, memory, where=f"{COMPONENT_TITLES[name]} instruction {i}")
            except ProgramError as e:
                raise fail(name, i, str(e)) from None
