"""Shared behaviour of the absl entry points: bad input is one `error:` line
and exit status 2, never a traceback."""

from __future__ import annotations

import sys

from absl import flags


def fail(message: str) -> None:
    """Prints `error: <first line of message>` to stderr and exits with 2."""
    print(f"error: {str(message).splitlines()[0] if message else 'failed'}", file=sys.stderr)
    sys.exit(2)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, but a bad flag is one `error:` line and exit 2
    (pass as `app.run(main, flags_parser=parse_flags)`)."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        fail(str(e))
        raise  # unreachable: fail() exits
