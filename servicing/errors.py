"""Errors of the servicing layer and the exit codes every servicing command shares.

The README's exit-code table (0-7) is extended once here for all servicing commands
(drivers, packages, settings, Windows PE, applications, the DISM front end):

== =====================================================================
8  not applicable to this image (DISM: CBS_E_NOT_APPLICABLE 0x800f081e)
9  refused: wrong image kind (no Windows, Windows PE vs full, XP or older,
   unknown architecture), an unsigned or an inbox driver
10 refused: the image has operations pending its first boot
== =====================================================================

Each error also carries the HRESULT or Win32 code DISM would report, so that a
DISM front end can print ``Error: 0x...`` without a second mapping; only that front
end formats it.
"""

from __future__ import annotations

import errno as _errno

from wimfs.errors import EXIT_BAD_IMAGE, EXIT_NOT_FOUND, WimfsError

EXIT_NOT_APPLICABLE = 8
EXIT_REFUSED = 9
EXIT_PENDING = 10

# HRESULTs and Win32 codes DISM reports (dism-reference.md section 3.4).
E_FAIL = 0x80004005
CBS_E_NOT_APPLICABLE = 0x800F081E
CBS_E_PENDING = 0x800F082F
ERROR_FILE_NOT_FOUND = 2
ERROR_NOT_SUPPORTED = 50
ERROR_INVALID_PARAMETER = 87


class ServicingError(WimfsError):
    """A servicing operation failed; nothing of it reached the target."""

    hresult: int | None = E_FAIL
    win32: int | None = None


class NotApplicableError(ServicingError):
    exit_code = EXIT_NOT_APPLICABLE
    hresult = CBS_E_NOT_APPLICABLE


class RefusedError(ServicingError):
    """The operation is refused for this image or this input (wrong image kind,
    unsigned or inbox driver)."""

    exit_code = EXIT_REFUSED
    hresult = None
    win32 = ERROR_NOT_SUPPORTED
    errno = _errno.EOPNOTSUPP


class NoWindowsError(RefusedError):
    """The target holds no Windows installation."""


class UnsupportedWindowsError(RefusedError):
    """A Windows installation we cannot service (XP and older, unknown architecture)."""


class PendingError(ServicingError):
    exit_code = EXIT_PENDING
    hresult = CBS_E_PENDING


class TargetNotFoundError(ServicingError, FileNotFoundError):
    """The TARGET is neither a directory nor a WIM file."""

    exit_code = EXIT_NOT_FOUND
    hresult = None
    win32 = ERROR_FILE_NOT_FOUND
    errno = _errno.ENOENT


class TargetPathError(ServicingError, FileNotFoundError):
    """A path inside the target does not exist."""

    exit_code = EXIT_NOT_FOUND
    hresult = None
    win32 = ERROR_FILE_NOT_FOUND
    errno = _errno.ENOENT


class TargetDamagedError(ServicingError):
    exit_code = EXIT_BAD_IMAGE
