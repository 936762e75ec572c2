"""Exception hierarchy and the exit codes the CLI maps them to.

Every error a user can cause (bad input file, missing index, FUSE missing) is a
`WimfsError` subclass with a one-line message and an exit code; the CLI prints
the message and exits with the code. Anything else is a bug and gets a
traceback only with --debug.
"""

from __future__ import annotations

import errno as _errno
import os

# Documented exit codes (README "Exit codes").
EXIT_OK = 0
EXIT_ERROR = 1          # generic failure
EXIT_USAGE = 2          # bad command line (argparse uses 2 as well)
EXIT_BAD_IMAGE = 3      # not a WIM, corrupt or unsupported WIM
EXIT_NOT_FOUND = 4      # no such image index/name, path or file
EXIT_MOUNT = 5          # FUSE missing, mount or unmount failed
EXIT_DEPENDENCY = 6     # a system library (libwim) is missing
EXIT_BUSY = 7           # resource busy / locked


class WimfsError(Exception):
    """Base of every error wimfs reports to the user as one line."""

    exit_code = EXIT_ERROR
    errno = _errno.EIO


class UsageError(WimfsError):
    """A bad command line: unknown option, missing argument, bad option value."""

    exit_code = EXIT_USAGE
    errno = _errno.EINVAL


class WimFormatError(WimfsError):
    """The input is not a WIM, is damaged, or uses an unsupported feature."""

    exit_code = EXIT_BAD_IMAGE


class NotAWimError(WimFormatError):
    """The file does not start with a WIM header."""


class UnsupportedWimError(WimFormatError):
    """A valid WIM that uses something wimfs cannot read (e.g. encrypted ESD)."""

    errno = _errno.EOPNOTSUPP


class WimCorruptError(WimFormatError):
    """Damaged data: bad compressed chunk, SHA-1 mismatch, bad metadata."""


class ImageNotFoundError(WimfsError):
    exit_code = EXIT_NOT_FOUND
    errno = _errno.ENOENT


class PathNotFoundError(WimfsError, FileNotFoundError):
    exit_code = EXIT_NOT_FOUND
    errno = _errno.ENOENT


class MountError(WimfsError):
    exit_code = EXIT_MOUNT


class DependencyError(WimfsError):
    exit_code = EXIT_DEPENDENCY


class BusyError(WimfsError):
    exit_code = EXIT_BUSY
    errno = _errno.EBUSY


EXIT_INTERRUPTED = 130


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code of an exception (the ONE mapping for every command)."""
    if isinstance(exc, WimfsError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, FileNotFoundError) or (
            isinstance(exc, OSError) and exc.errno == _errno.ENOENT):
        return EXIT_NOT_FOUND
    return EXIT_ERROR


def is_expected(exc: BaseException) -> bool:
    """Errors a user can cause (one line, no traceback); anything else is a bug."""
    return isinstance(exc, (WimfsError, OSError))


def message_for(exc: BaseException, debug: bool = False) -> str:
    """One line describing `exc` (OSError: its text and the file it names)."""
    if isinstance(exc, OSError) and not isinstance(exc, WimfsError) and exc.strerror:
        names = [f for f in (exc.filename, exc.filename2) if f]
        text = exc.strerror + "".join(f": {os.fsdecode(f)}" for f in names)
    else:
        text = str(exc)
    if not is_expected(exc):
        text = f"internal error: {type(exc).__name__}: {text}" + \
            ("" if debug else " (rerun with --debug)")
    return " ".join(text.split()) or type(exc).__name__
