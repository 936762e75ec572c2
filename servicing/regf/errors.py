"""Exceptions of the regf engine.

Every failure the engine reports is a :class:`RegfError`; callers (the image
registry, the ``wimfs reg`` CLI, fuzz tests) rely on nothing else escaping the
reader for bad input -- no ``IndexError``, ``struct.error`` or hang.  They are
:class:`wimfs.errors.WimfsError` s, so the CLI maps them to one line and an
exit code: corrupt, unsupported or dirty hive 3, missing key/value/hive file 4
(also a :class:`FileNotFoundError`), anything else 1.
"""

from __future__ import annotations

import errno as _errno
import functools
import struct

from wimfs.errors import EXIT_BAD_IMAGE, EXIT_ERROR, EXIT_NOT_FOUND, EXIT_USAGE, WimfsError


class RegfError(WimfsError):
    """Base class of every error raised by the regf engine."""

    exit_code = EXIT_ERROR


class RegfCorruptError(RegfError):
    """The file is not a valid regf hive (bad signature, truncated, cell out of
    bounds, loop in a subkey list, ...)."""

    exit_code = EXIT_BAD_IMAGE


class RegfUnsupportedError(RegfCorruptError):
    """A recognised but unsupported format (Windows 9x ``CREG``, a log file
    opened as a primary, an unknown major version)."""

    errno = _errno.EOPNOTSUPP


class RegfDirtyError(RegfError):
    """The hive is dirty (sequence numbers differ or bad checksum) and its
    transaction logs could not be replayed; editing it would lose data."""

    exit_code = EXIT_BAD_IMAGE


class RegfNotFoundError(RegfError, FileNotFoundError):
    """A hive file, key or value does not exist."""

    exit_code = EXIT_NOT_FOUND
    errno = _errno.ENOENT


class KeyNotFoundError(RegfNotFoundError):
    """No key of that path."""


class ValueNotFoundError(RegfNotFoundError):
    """No value of that name."""


class RegfStateError(RegfError):
    """An operation not allowed in the handle's state: writing a read-only
    hive, deleting the root key, committing after a failed edit, ..."""


class RegfDataError(RegfError, ValueError):
    """Value data text that does not fit its type (``reg add /d``): a bad or
    out-of-range number, odd or non-hex digits."""

    exit_code = EXIT_USAGE


#: what malformed input can make Python raise deep in the parsing code
LOWLEVEL_ERRORS = (IndexError, struct.error, ValueError, UnicodeError, OverflowError,
                   RecursionError, KeyError)


def corrupt(exc: BaseException) -> RegfCorruptError:
    """The :class:`RegfCorruptError` reported for a low-level error *exc*."""
    return RegfCorruptError(f"malformed hive: {type(exc).__name__}: {exc}")


def guard(fn):
    """Turn low-level exceptions caused by malformed input into
    :class:`RegfCorruptError` (defence in depth behind explicit checks)."""
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except RegfError:
            raise
        except LOWLEVEL_ERRORS as e:
            raise corrupt(e) from None
    return wrapper
