"""Exceptions of the regf engine.

Every failure the engine reports is a :class:`RegfError`; callers (the image
registry, the ``wimfs reg`` CLI, fuzz tests) rely on nothing else escaping the
reader for bad input -- no ``IndexError``, ``struct.error`` or hang.
"""

from __future__ import annotations


class RegfError(Exception):
    """Base class of every error raised by the regf engine."""


class RegfCorruptError(RegfError):
    """The file is not a valid regf hive (bad signature, truncated, cell out of
    bounds, loop in a subkey list, ...)."""


class RegfUnsupportedError(RegfCorruptError):
    """A recognised but unsupported format (Windows 9x ``CREG``, a log file
    opened as a primary, an unknown major version)."""


class RegfDirtyError(RegfError):
    """The hive is dirty (sequence numbers differ or bad checksum) and its
    transaction logs could not be replayed; editing it would lose data."""


class RegfNotFoundError(RegfError):
    """A key or value does not exist."""


class KeyNotFoundError(RegfNotFoundError):
    """No key of that path."""


class ValueNotFoundError(RegfNotFoundError):
    """No value of that name."""


class RegfStateError(RegfError):
    """An operation not allowed in the handle's state: writing a read-only
    hive, deleting the root key, committing after a failed edit, ..."""
