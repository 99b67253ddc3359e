"""Atomic file writes: readers see the old file or the new one, never a mix.

Every writer of a file that a crash must not leave half-written (checkpoints,
results.json, saved programs, cached datasets) goes through `atomic_open`:
a temp file in the target's directory, flushed and fsynced, then
`os.replace`d over the target, then (best effort) the directory fsynced so the
rename itself is durable. On any failure the temp file is removed and the
target is left as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Any

# mkstemp creates 0600; the files written here are ordinary files.
DEFAULT_MODE = 0o644


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", *, prefix: str = ".tmp-",
                file_mode: int = DEFAULT_MODE, make_dirs: bool = True) -> Iterator[IO[Any]]:
    """A file object whose content replaces `path` atomically when the
    `with` block ends without an exception (on one, the temp file is removed
    and `path` is untouched). `mode` is "w" (UTF-8 text, "\\n" line ends) or
    "wb". `make_dirs`: create the parent directory if missing (else a
    missing directory is an OSError)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open mode must be 'w' or 'wb', got {mode!r}")
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    try:
        if make_dirs:
            os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".part", dir=directory)
    except OSError as e:
        raise with_path(e, target) from None
    try:
        os.chmod(tmp, file_mode)
        if mode == "w":
            f = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        else:
            f = os.fdopen(fd, "wb")
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and e.filename in (None, tmp):
            raise with_path(e, target) from None
        raise
    _fsync_directory(directory)


def with_path(e: OSError, path: str | os.PathLike[str]) -> OSError:
    """`e` naming `path` (a write error on an open file names none; the
    temp file's name means nothing to the user), same class and errno."""
    if e.filename is not None and e.filename != path and not str(e.filename).endswith(".part"):
        return e
    try:
        return type(e)(e.errno, e.strerror or str(e), os.fspath(path))
    except TypeError:
        return OSError(e.errno, e.strerror or str(e), os.fspath(path))


def _fsync_directory(directory: str) -> None:
    """Makes a rename in `directory` durable (best effort; not all systems allow it)."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def atomic_write_text(path: str | os.PathLike[str], text: str, *, prefix: str = ".tmp-",
                      make_dirs: bool = True) -> None:
    """Writes `text` (UTF-8) to `path` atomically."""
    with atomic_open(path, "w", prefix=prefix, make_dirs=make_dirs) as f:
        f.write(text)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, prefix: str = ".tmp-",
                       make_dirs: bool = True) -> None:
    """Writes `data` to `path` atomically."""
    with atomic_open(path, "wb", prefix=prefix, make_dirs=make_dirs) as f:
        f.write(data)


def atomic_write_json(path: str | os.PathLike[str], data: Any, *, indent: int | None = 2) -> None:
    """Writes `data` as JSON (`indent`, NaN/Infinity allowed as json.dump
    does, a final newline) to `path` atomically."""
    atomic_write_text(path, json.dumps(data, indent=indent) + "\n")
