"""The serialization package's errors and message helpers (one-line messages)."""

from __future__ import annotations

import numpy as np

from azero_jax.program import ProgramError

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
