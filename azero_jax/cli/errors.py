"""The error boundary of the absl entry points (`run_app` wraps every entry
point's main in `guarded`), so that every entry point fails the same way:
  * user errors -- a bad flag, config, checkpoint, program or data file
    (ConfigError, CheckpointError, ProgramError, DatasetError, UsageError:
    all ValueErrors, raised by the validation at the edge) -- and OS errors
    (a full disk or a file size limit: ENOSPC / EFBIG, no permission, a file
    where a directory is expected, a directory where a file is expected, a
    closed or full stdout) are one `error: ...` line on stderr naming the
    path or value and what to do, and exit status 2;
  * anything else is a bug: its traceback, then a line saying so and where
    to report it, exit status 1 (AZERO_JAX_TRACEBACK=1 also shows the
    traceback of user and OS errors).
  * JAX's backend-probe log lines (e.g. "Unable to initialize backend
    'tpu'") are hidden unless --verbosity is given.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from absl import app, flags

from azero_jax.cli.config_flags import config_flag_names, defines_config_flags

USAGE_EXIT = 2  # user and OS errors
BUG_EXIT = 1  # programming errors (an uncaught exception's usual status)
BUG_REPORT = ("this is a bug in azero_jax, not in your input: please report it (the command line and the traceback "
              "above) on the project's issue tracker")
TRACEBACK_ENV = "AZERO_JAX_TRACEBACK"


class UsageError(ValueError):
    """A bad flag or input of an entry point: one `error:` line, exit 2."""


def fail(message: str) -> None:
    """Prints `error: <first line of message>` to stderr and exits with 2."""
    lines = str(message).splitlines() if message else []
    print(f"error: {lines[0] if lines else 'failed'}", file=sys.stderr)
    sys.exit(USAGE_EXIT)


_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free some space or write elsewhere (another --output_dir); a run's last "
                  "checkpoint is intact, so rerunning resumes it",
    errno.EFBIG: "a file size limit was hit (ulimit -f, or the file system's): raise it or write elsewhere; a "
                 "run's last checkpoint is intact, so rerunning resumes it",
    errno.EDQUOT: "the disk quota is exhausted: free some space or write elsewhere",
    errno.EACCES: "no permission: choose a path you can write (another --output_dir) or fix its permissions",
    errno.EPERM: "choose another path (another --output_dir)",
    errno.EROFS: "the file system is read-only: choose another path (another --output_dir)",
    errno.ENOTDIR: "a part of the path is a file, not a directory: choose another path",
    errno.EISDIR: "it is a directory where a file is expected: remove it or choose another path",
    errno.ENOENT: "no such file or directory: check the path",
    errno.EEXIST: "it already exists: remove it or choose another path",
    errno.ENAMETOOLONG: "the path is too long: choose a shorter one",
    errno.EPIPE: "the output was closed (broken pipe); nothing more can be printed",
    errno.EINVAL: "invalid argument (an empty or unusable path?): choose another path",
}


def describe_os_error(e: OSError) -> str:
    """One line for an OS error: the path(s), the system's reason, what to do.
    Without a path (a write to stdout, or to a file whose writer did not say
    which) it says "writing output"."""
    if e.filename is not None and not isinstance(e.filename, int):
        where = repr(os.fsdecode(e.filename))
        if getattr(e, "filename2", None) is not None:
            where += f" -> {os.fsdecode(e.filename2)!r}"
    else:
        where = "writing output (standard output or a file)"
    reason = e.strerror or str(e) or type(e).__name__
    hint = _OS_HINTS.get(e.errno or -1)
    return f"{where}: {reason}" + (f" ({hint})" if hint else "")


def _silence_stdout() -> None:
    """Points stdout's file descriptor at /dev/null, so that the interpreter's
    own flush at exit does not fail a second time on a closed or full output."""
    try:
        fd = sys.stdout.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except (AttributeError, OSError, ValueError):
        pass


def _flush_stdout() -> None:
    if sys.stdout is not None:
        sys.stdout.flush()


def _user_error_text(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def handle_exception(e: BaseException) -> int:
    """Reports `e` (the error boundary's policy, see the module docstring)
    on stderr and returns the exit status."""
    show = os.environ.get(TRACEBACK_ENV, "").strip() not in ("", "0")
    if isinstance(e, ValueError):  # ConfigError, CheckpointError, ProgramError, DatasetError, UsageError
        message = _user_error_text(e)
    elif isinstance(e, OSError):
        message = describe_os_error(e)
        if e.filename is None:
            _silence_stdout()
    elif isinstance(e, MemoryError):
        message = ("out of memory: the request is too large for this machine (smaller --memory, fewer or smaller "
                   "tasks, a smaller population or children_per_step)")
    elif isinstance(e, KeyboardInterrupt):
        print("error: interrupted (a run's last checkpoint is intact: rerun with the same flags to resume)",
              file=sys.stderr)
        return 130
    else:
        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
        print(f"error: internal error {type(e).__name__}: {_user_error_text(e)}; {BUG_REPORT}", file=sys.stderr)
        return BUG_EXIT
    if show:
        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
    print(f"error: {message}", file=sys.stderr)
    return USAGE_EXIT


def guarded(main: Callable[[list[str]], Any]) -> Callable[[list[str]], Any]:
    """`main` inside the error boundary: returns its status (stdout flushed,
    so a closed or full output is caught here too), or exits with the
    status `handle_exception` gives."""

    def boundary(argv: list[str]) -> Any:
        try:
            status = main(argv)
            _flush_stdout()
            return status
        except SystemExit:
            raise
        except BaseException as e:  # noqa: BLE001 -- the boundary itself
            code = handle_exception(e)
        try:
            sys.stderr.flush()
        except OSError:
            pass
        sys.exit(code)

    boundary.__name__ = getattr(main, "__name__", "main")
    boundary.__doc__ = getattr(main, "__doc__", None)
    return boundary


def quiet_jax_logging(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Hides JAX's INFO log lines (the backend probe's "Unable to initialize
    backend 'tpu'") unless --verbosity / -v was given on the command line."""
    try:
        given = flag_values["verbosity"].present
    except KeyError:
        given = False
    if not given:
        logging.getLogger("jax").setLevel(logging.WARNING)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, but a bad flag is one `error:` line and exit 2
    (pass as `app.run(main, flags_parser=parse_flags)`)."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        fail(str(e))
        raise  # unreachable: fail() exits


def run_app(main: Callable[[list[str]], Any], module_name: str, argv: Sequence[str] | None = None) -> None:
    """app.run(main) inside the error boundary (`guarded`: user and OS errors
    one `error:` line and exit 2, a bug its traceback), with parse_flags,
    quiet JAX logging, the config flags and `module_name`'s own flags listed
    by --help as the program's flags (whatever the program's file: a
    checkout's wrapper script or a console script)."""
    main_module = sys.modules.get("__main__")
    if main_module is not None and not getattr(main_module, "__doc__", None):
        main_module.__doc__ = sys.modules[module_name].__doc__  # a console script's --help text
    flag_values = flags.FLAGS
    names = [f.name for f in flag_values.get_flags_for_module(module_name)]
    if defines_config_flags(flag_values):
        names += config_flag_names(flag_values)
    for name in dict.fromkeys(names):
        flag_values.register_key_flag_for_module(sys.argv[0], flag_values[name])
    inner = guarded(main)

    def run_main(args: list[str]) -> Any:
        quiet_jax_logging(flag_values)
        return inner(args)

    try:
        app.run(run_main, argv=None if argv is None else list(argv), flags_parser=parse_flags)
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 -- failures outside main (flag parsing, absl itself)
        sys.exit(handle_exception(e))
