"""DISM's error codes, the 8-bit exit status each one maps to, and how wimfs errors map
onto them (dism-reference.md section 3.4). Only `servicing.dism.output` prints them."""

from __future__ import annotations

from wimfs.errors import (
    BusyError,
    DependencyError,
    ImageNotFoundError,
    MountError,
    NotAWimError,
    UnsupportedWimError,
    UsageError,
    WimCorruptError,
    WimFormatError,
    WimfsError,
)

# Win32 codes (printed in decimal) and HRESULTs (printed as 0x + lower-case hex).
SUCCESS = 0
FILE_NOT_FOUND = 2
PATH_NOT_FOUND = 3
ACCESS_DENIED = 5
BAD_FORMAT = 11
INVALID_DATA = 13
NOT_SUPPORTED = 50
INVALID_PARAMETER = 87
BUSY = 170
ELEVATION_REQUIRED = 740
NOT_FOUND = 1168
SUCCESS_REBOOT_REQUIRED = 3010
E_FAIL = 0x80004005
CBS_E_INVALID_PACKAGE = 0x800F0805
CBS_E_UNKNOWN_FEATURE = 0x800F080C
CBS_E_NOT_APPLICABLE = 0x800F081E
CBS_E_SOURCE_MISSING = 0x800F081F
CBS_E_IMAGE_UNSERVICEABLE = 0x800F0830
CBS_E_STORE_CORRUPTION = 0x800F0831
CBS_E_PENDING = 0x800F082F
WIM_MOUNT_DIR_NOT_EMPTY = 0xC1420114
WIM_NOT_FULLY_UNMOUNTED = 0xC1420117
WIM_NOT_A_MOUNT_POINT = 0xC142011C
WIM_PARTIAL_UNMOUNT = 0xC142011D
WIM_ALREADY_MOUNTED = 0xC1420127
DLL_NOT_FOUND = 0xC0000135

# Exit statuses for codes that do not fit below 126 (8 bits, and 126+ mean "not
# executable"/signals to a shell); smaller codes exit with themselves. NOTES-dism.md has
# this table for users.
EXIT_STATUS = {
    E_FAIL: 1,
    SUCCESS_REBOOT_REQUIRED: 101,
    ELEVATION_REQUIRED: 102,
    NOT_FOUND: 103,
    BUSY: 104,
    CBS_E_INVALID_PACKAGE: 110,
    CBS_E_UNKNOWN_FEATURE: 111,
    CBS_E_NOT_APPLICABLE: 112,
    CBS_E_SOURCE_MISSING: 113,
    CBS_E_IMAGE_UNSERVICEABLE: 114,
    CBS_E_STORE_CORRUPTION: 115,
    CBS_E_PENDING: 116,
    WIM_MOUNT_DIR_NOT_EMPTY: 120,
    WIM_NOT_FULLY_UNMOUNTED: 121,
    WIM_NOT_A_MOUNT_POINT: 122,
    WIM_PARTIAL_UNMOUNT: 123,
    WIM_ALREADY_MOUNTED: 124,
    DLL_NOT_FOUND: 125,
}


def exit_status(code: int) -> int:
    """The process exit status of a DISM code: the code itself below 100, else the table
    above; any other code exits 1."""
    if code in EXIT_STATUS:
        return EXIT_STATUS[code]
    return code if 0 <= code < 100 else 1


def is_hresult(code: int) -> bool:
    """HRESULTs (severity bit set) print in hex, Win32 codes in decimal."""
    return code >= 0x80000000


class DismError(WimfsError):
    """A failure reported as DISM reports it: `code` and the message lines under it.
    Its wimfs exit code is DISM's exit status for the code."""

    def __init__(self, message: str, code: int = INVALID_PARAMETER) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    @property
    def exit_code(self) -> int:         # type: ignore[override]
        return exit_status(self.code)


# wimfs errors -> DISM codes, most specific class first.
_BY_CLASS: list[tuple[type, int]] = [
    (UsageError, INVALID_PARAMETER),
    (ImageNotFoundError, INVALID_PARAMETER),
    (NotAWimError, BAD_FORMAT),
    (UnsupportedWimError, BAD_FORMAT),
    (WimCorruptError, INVALID_DATA),
    (WimFormatError, INVALID_DATA),
    (BusyError, BUSY),
    (DependencyError, DLL_NOT_FOUND),
    (MountError, E_FAIL),
    (FileNotFoundError, FILE_NOT_FOUND),
    (NotADirectoryError, PATH_NOT_FOUND),
    (PermissionError, ACCESS_DENIED),
    (FileExistsError, 80),          # ERROR_FILE_EXISTS
]


def code_for(exc: BaseException) -> int:
    """The DISM code of an exception: its own `hresult`/`win32` (ServicingError), else
    the class table above, else E_FAIL."""
    if isinstance(exc, DismError):
        return exc.code
    for attr in ("hresult", "win32"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and value:
            return value & 0xFFFFFFFF
    for cls, code in _BY_CLASS:
        if isinstance(exc, cls):
            return code
    return E_FAIL
