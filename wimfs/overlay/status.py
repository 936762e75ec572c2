"""What a session changed: the tree as the WIM holds it (`BaseState`, recorded at load and
after each commit) against the tree now (`diff`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from wimfs.image import Dentry, Image, Inode, Stream, add_blob_refs
from wimfs.overlay.staging import LocalSource, StagedSource, is_staged


class Change(enum.StrEnum):
    ADDED = "added"
    MODIFIED = "modified"
    DELETED = "deleted"
    RENAMED = "renamed"


@dataclass
class DiffEntry:
    change: Change
    path: str
    size: int = 0
    old_path: str | None = None


def content_key(ino: Inode) -> tuple:
    """What a modification changes: data, streams, attributes, times, security, links."""
    def sk(s: Stream | None):
        if s is None:
            return None
        if isinstance(s.source, (StagedSource, LocalSource)):
            return ("staged", s.source.path)
        return (s.hash, s.size)
    # A directory's own write time changes with every entry added or removed below it;
    # those entries are reported themselves, so it does not make the directory "modified".
    mtime = None if ino.is_directory else ino.last_write_time
    shorts = tuple(d.short_name for d in ino.dentries)
    return (sk(ino.data), sk(ino.reparse),
            tuple(sorted((n, sk(s)) for n, s in ino.named_streams.items())),
            ino.attributes, ino.security_id, mtime, ino.creation_time, shorts,
            (ino.unix.uid, ino.unix.gid, ino.unix.mode) if ino.unix else None)


class BaseState:
    """The tree as the WIM now holds it, as far as it is parsed into objects: each
    inode's first path and content key, every path, and the references its dentries make
    to each blob (what a commit replacing this image takes off the blob table's reference
    counts: the in-memory tree has been edited since, so it cannot be counted then).

    A lazily parsed tree reports each directory it parses later (`record_children`,
    before anything in it can change). Directories never parsed are unchanged: `diff`
    does not enter them and the commit copies them through, their blob references on
    neither side of the count."""

    def __init__(self, image: Image) -> None:
        self.origin: dict[int, tuple[str, tuple]] = {}
        self.paths: set[str] = set()
        self.blob_refs: dict[bytes, int] = {}
        for d in image.walk_loaded():
            self._record(d, d.path)
        if image.tree is not None:
            image.tree.on_parse = self.record_children

    def record_children(self, parent: Dentry, children: dict[str, Dentry]) -> None:
        base = parent.path.rstrip("/")
        for name, d in children.items():
            self._record(d, f"{base}/{name}")

    def _record(self, d: Dentry, path: str) -> None:
        self.paths.add(path)
        ino = d.inode
        add_blob_refs(ino, self.blob_refs, 1)     # one per dentry (a group's may come later)
        if ino.ino in self.origin:
            return
        key = content_key(ino)
        if any(is_staged(x) for x in ino.streams()):
            # Still open for writing (--force commit): it may change after the commit,
            # so the next commit must not be skipped as a no-op.
            key = ("uncommitted", key)
        self.origin[ino.ino] = (path, key)

    def diff(self, image: Image) -> list[DiffEntry]:
        """What changed, by path. An entry that moved only because a directory above it
        was renamed or moved is not listed (the directory is), whether or not the
        session parsed what is under it: the output does not depend on what was
        visited."""
        out: list[DiffEntry] = []
        now = {d.path: d for d in image.walk_loaded()}
        seen_ino: set[int] = set()
        carried: set[str] = set()           # base paths that moved with a directory above
        for path, d in now.items():
            ino = d.inode
            orig = self.origin.get(ino.ino)
            if orig is None:
                out.append(DiffEntry(Change.ADDED, path, ino.size))
                continue
            old_path, key = orig
            was = self._carried_from(d, old_path, path)
            if was is not None:
                carried.add(was)
            elif old_path != path and ino.ino not in seen_ino and len(ino.dentries) == 1:
                out.append(DiffEntry(Change.RENAMED, path, ino.size, old_path))
            elif old_path != path and path not in self.paths:
                out.append(DiffEntry(Change.ADDED, path, ino.size))
            if ino.ino not in seen_ino and content_key(ino) != key:
                out.append(DiffEntry(Change.MODIFIED, ino.dentries[0].path, ino.size))
            seen_ino.add(ino.ino)
        moved_from = {e.old_path for e in out if e.change == Change.RENAMED} | carried
        for path in sorted(self.paths - set(now) - moved_from):
            out.append(DiffEntry(Change.DELETED, path))
        out.sort(key=lambda e: (e.path, e.change))
        return out

    def _carried_from(self, d: Dentry, old_path: str, path: str) -> str | None:
        """The base path of `d` (now at `path`) if it is still the same name in the same
        directory and only that directory's path changed; else None."""
        parent = d.parent
        porig = self.origin.get(parent.inode.ino) if parent is not None else None
        if porig is None:
            return None
        was = f"{porig[0].rstrip('/')}/{d.name}"
        if was == path or was not in self.paths:
            return None
        if was == old_path or len(d.inode.dentries) > 1:
            return was
        return None
