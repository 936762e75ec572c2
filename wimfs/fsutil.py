"""Small file-system helpers shared by the engine and servicing."""

from __future__ import annotations

import os


def fsync_dir(path: str) -> None:
    """fsync a directory so a rename or create in it is durable; errors are ignored
    (some file systems cannot open or fsync directories)."""
    try:
        dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def check_output_dir(path: str) -> None:
    """Refuse up front to write `path` into a directory that does not exist."""
    from wimfs.errors import PathNotFoundError

    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise PathNotFoundError(f"cannot write {path}: the directory {d} does not exist")
