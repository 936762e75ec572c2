"""Errors of a session. `FsError` carries the errno the FUSE layer returns (EEXIST,
ENOTEMPTY, ...); the path API turns it into a `WimfsError` naming the path."""

from __future__ import annotations

import errno
import os

from wimfs.errors import PathNotFoundError, WimfsError


class FsError(OSError):
    """An errno for the FUSE layer (EEXIST, ENOTEMPTY, ...)."""

    def __init__(self, err: int, msg: str = ""):
        super().__init__(err, msg or os.strerror(err))


class PathError(WimfsError):
    """A path operation the image refuses; `errno` says why."""

    def __init__(self, err: int, path: str, msg: str = "") -> None:
        super().__init__(f"{path}: {msg or os.strerror(err)}")
        self.errno = err


class PathExistsError(WimfsError, FileExistsError):
    errno = errno.EEXIST


class NotADirectoryPathError(WimfsError, NotADirectoryError):
    errno = errno.ENOTDIR


class IsADirectoryPathError(WimfsError, IsADirectoryError):
    errno = errno.EISDIR


_BY_ERRNO: dict[int, type[WimfsError]] = {
    errno.ENOENT: PathNotFoundError, errno.EEXIST: PathExistsError,
    errno.ENOTDIR: NotADirectoryPathError, errno.EISDIR: IsADirectoryPathError,
}


def path_error(err: int, path: str, msg: str = "") -> WimfsError:
    """The WimfsError for errno `err` on `path` (FileNotFoundError etc. where one fits)."""
    cls = _BY_ERRNO.get(err)
    if cls is None:
        return PathError(err, path, msg)
    return cls(f"{path}: {msg or os.strerror(err)}")
