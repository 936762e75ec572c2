"""Exception hierarchy and the exit codes the CLI maps them to.

Every error a user can cause (bad input file, missing index, FUSE missing) is a
`WimfsError` subclass with a one-line message and an exit code; the CLI prints
the message and exits with the code. Anything else is a bug and gets a
traceback only with --debug.
"""

from __future__ import annotations

import errno as _errno

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
