"""The TARGET of a servicing operation: a Windows tree on disk, or an image in a WIM.

Servicing code sees only this interface (read, write or replace a file, ``mkdir -p``,
list, exists, remove, rename, hard link, case-insensitive lookup as Windows does) and
never calls ``os.*`` on a target or imports the overlay itself. Two backends:

* :class:`~servicing.target.directory.DirTarget` -- a directory holding a Windows
  installation (a wimfs mount, an extracted image, an ntfs-3g mount). Changes are
  staged (new content under temporary names in the target, removals and renames
  deferred) and applied by :meth:`Target.commit`, registry hives last; a failure
  leaves the directory as it was.
* :class:`~servicing.target.image.ImageTarget` -- ``IMAGE.wim[:N|:NAME]`` opened in
  process through the copy-on-write overlay of the read-write mount, committed with
  the same crash-safe commit (header last) or not at all. No FUSE.

Paths are ``/``-separated and relative to the target's root. A target is a context
manager: a clean exit commits (or, with ``dry_run``, discards after recording what
would change), an exception discards.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from enum import StrEnum
from typing import TYPE_CHECKING

from servicing.changes import Change, ChangeKind
from servicing.errors import TargetNotFoundError
from wimfs.format.upcase import upcase

if TYPE_CHECKING:
    from servicing.regf import Hive


class TargetKind(StrEnum):
    DIRECTORY = "directory"
    IMAGE = "image"


def norm(path: str) -> str:
    """``/a//b/`` -> ``a/b``; refuses ``..`` and ``.`` components (nothing is ever
    read or written outside the target)."""
    parts = [p for p in path.replace("\\", "/").split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise TargetNotFoundError(f"bad path inside the target: {path!r}")
    return "/".join(parts)


def join(*parts: str) -> str:
    return norm("/".join(p for p in parts if p))


class Target(ABC):
    """A Windows tree to service. Subclasses implement the ``_``-methods; the public
    ones record every change (for the log, ``--dry-run`` and ``--json``)."""

    kind: TargetKind

    def __init__(self, description: str, *, windir: str = "Windows",
                 dry_run: bool = False) -> None:
        self.description = description
        self.dry_run = dry_run
        self.changes: list[Change] = []
        self._windir = windir
        self._done = False

    # -- the Windows folder ---------------------------------------------------------

    @property
    def windir(self) -> str:
        """The Windows folder as the target spells it (``--windir``, found
        case-insensitively), or the name given when it does not exist."""
        return self.resolve(self._windir) or norm(self._windir)

    def system_path(self, *parts: str) -> str:
        """A path under the Windows folder, e.g. ``system_path("System32", "config")``."""
        return join(self.windir, *parts)

    # -- reading ----------------------------------------------------------------------

    @abstractmethod
    def read_file(self, path: str) -> bytes: ...

    @abstractmethod
    def listdir(self, path: str) -> list[str]: ...

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    @abstractmethod
    def is_dir(self, path: str) -> bool: ...

    def resolve(self, path: str) -> str | None:
        """Case-insensitive lookup as Windows does (names compared upper-cased one UTF-16
        unit at a time, so 'ß' stays 'ß'): the path with the target's real case, or None.
        An exact match wins."""
        cur = ""
        for part in norm(path).split("/") if norm(path) else []:
            exact = join(cur, part)
            if self.exists(exact):
                cur = exact
                continue
            if not self.is_dir(cur):
                return None
            up = upcase(part)
            match = sorted(n for n in self.listdir(cur) if upcase(n) == up)
            if not match:
                return None
            cur = join(cur, match[0])
        return cur

    def walk_files(self, path: str) -> Iterator[str]:
        for name in self.listdir(path):
            sub = join(path, name)
            if self.is_dir(sub):
                yield from self.walk_files(sub)
            else:
                yield sub

    # -- writing ----------------------------------------------------------------------

    def write_file(self, path: str, data: bytes) -> None:
        """Create or replace a file (its parent must exist)."""
        path = norm(path)
        kind = ChangeKind.FILE_REPLACED if self.exists(path) else ChangeKind.FILE_ADDED
        self._write_file(path, data)
        self.changes.append(Change(kind, path, size=len(data)))

    def copy_in(self, path: str, local_path: str, *, deferred: bool = False) -> None:
        """Create or replace a file with the content of a local file. `deferred`: the
        caller leaves the local file as it is until the operation ends, so an image
        target reads it once at the commit instead of copying it now."""
        path = norm(path)
        kind = ChangeKind.FILE_REPLACED if self.exists(path) else ChangeKind.FILE_ADDED
        self._copy_in(path, local_path, deferred=deferred)
        self.changes.append(Change(kind, path, size=os.path.getsize(local_path)))

    def mkdirs(self, path: str) -> None:
        path = norm(path)
        missing = []
        cur = path
        while cur and not self.exists(cur):
            missing.append(cur)
            cur = cur.rpartition("/")[0]
        self._mkdirs(path)
        self.changes.extend(Change(ChangeKind.DIR_ADDED, p) for p in reversed(missing))

    def remove(self, path: str, *, recursive: bool = False) -> None:
        path = norm(path)
        removed = list(self.walk_files(path)) if recursive and self.is_dir(path) else [path]
        self._remove(path, recursive=recursive)
        self.changes.extend(Change(ChangeKind.FILE_REMOVED, p) for p in removed)

    def rename(self, old: str, new: str) -> None:
        old, new = norm(old), norm(new)
        self._rename(old, new)
        self.changes.append(Change(ChangeKind.RENAMED, new, source=old))

    def link(self, existing: str, new: str) -> None:
        existing, new = norm(existing), norm(new)
        self._link(existing, new)
        self.changes.append(Change(ChangeKind.LINKED, new, source=existing))

    @abstractmethod
    def _write_file(self, path: str, data: bytes) -> None: ...

    @abstractmethod
    def _copy_in(self, path: str, local_path: str, *, deferred: bool) -> None: ...

    @abstractmethod
    def _mkdirs(self, path: str) -> None: ...

    @abstractmethod
    def _remove(self, path: str, *, recursive: bool) -> None: ...

    @abstractmethod
    def _rename(self, old: str, new: str) -> None: ...

    @abstractmethod
    def _link(self, existing: str, new: str) -> None: ...

    # -- registry hives -----------------------------------------------------------------

    @abstractmethod
    def open_hive(self, path: str, *, write: bool) -> Hive:
        """The hive file at *path* (real case), for reading or for editing."""

    @abstractmethod
    def stage_hive(self, path: str, hive: Hive) -> None:
        """Make an edited hive part of this transaction (it lands at :meth:`commit`)."""

    # -- the transaction -------------------------------------------------------------

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _discard(self) -> None: ...

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def commit(self) -> None:
        """Make every change land, or (on failure) none. With ``dry_run``: discard."""
        if self._done:
            return
        self._done = True
        if self.dry_run:
            self._discard()
        else:
            self._commit()

    def discard(self) -> None:
        if not self._done:
            self._done = True
            self._discard()

    def __enter__(self) -> Target:
        return self

    def __exit__(self, et, ev, tb) -> bool:
        if et is None:
            self.commit()
        else:
            self.discard()
        return False


def open_target(spec: str, *, write: bool = False, dry_run: bool = False,
                windir: str = "Windows") -> Target:
    """A TARGET from the command line: an existing directory is a Windows tree;
    otherwise ``PATH[:SELECTOR]`` where PATH is a WIM file (SELECTOR: index or name;
    none for a single-image WIM)."""
    if os.path.isdir(spec):
        from servicing.target.directory import DirTarget
        return DirTarget(spec, windir=windir, dry_run=dry_run)
    from servicing.target.image import ImageTarget
    return ImageTarget.open(spec, write=write, dry_run=dry_run, windir=windir)
