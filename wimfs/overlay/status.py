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
    """What a modification changes: data, streams, attributes, times, security, a file's
    link count (the same whatever the session parsed of its hard-link group). Short
    names belong to names: `BaseState` keeps them per dentry."""
    def sk(s: Stream | None):
        if s is None:
            return None
        if isinstance(s.source, (StagedSource, LocalSource)):
            return ("staged", s.source.path)
        return (s.hash, s.size)
    # A directory's own write time changes with every entry added or removed below it;
    # those entries are reported themselves, so it does not make the directory "modified".
    mtime = None if ino.is_directory else ino.last_write_time
    links = None if ino.is_directory else ino.nlink
    return (sk(ino.data), sk(ino.reparse),
            tuple(sorted((n, sk(s)) for n, s in ino.named_streams.items())),
            ino.attributes, ino.security_id, mtime, ino.creation_time, links,
            (ino.unix.uid, ino.unix.gid, ino.unix.mode) if ino.unix else None)


def _names(ino: Inode) -> int:
    """How many names an inode has, counting those of a hard-link group still on disk
    (a file's link count): the same whatever the session parsed."""
    return 1 if ino.is_directory else ino.nlink


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
        self.paths: dict[str, int] = {}     # every path -> the inode it named
        self.blob_refs: dict[bytes, int] = {}
        # A hard-link group's blob references per name, as recorded with its first name:
        # its other names may be parsed after the inode changed (wimfs.image_tree.complete)
        self._group_refs: dict[int, dict[bytes, int]] = {}
        self.shorts: dict[Dentry, str] = {}     # each name's short name, as stored
        for d in image.walk_loaded():
            self._record(d, d.path)
        if image.tree is not None:
            image.tree.on_parse = self.record_children

    def record_children(self, parent: Dentry, children: dict[str, Dentry]) -> None:
        # Where the WIM has them: under the directory's path as recorded (it may have
        # been renamed or moved since, before its entries were parsed).
        orig = self.origin.get(parent.inode.ino)
        base = (orig[0] if orig is not None else parent.path).rstrip("/")
        for name, d in children.items():
            self._record(d, f"{base}/{name}")

    def _record(self, d: Dentry, path: str) -> None:
        self.paths[path] = d.inode.ino
        self.shorts[d] = d.short_name
        ino = d.inode
        refs = self._group_refs.get(ino.ino)
        if refs is None and ino.nlink > 1 and not ino.is_directory:
            refs = self._group_refs[ino.ino] = {}       # (its first name)
            add_blob_refs(ino, refs, 1)
        if refs is None:
            add_blob_refs(ino, self.blob_refs, 1)     # one per dentry
        else:                   # a hard-link group's name: the references of its first
            for h, n in refs.items():
                self.blob_refs[h] = self.blob_refs.get(h, 0) + n
        if ino.ino in self.origin:
            return
        key = content_key(ino)
        if any(is_staged(x) for x in ino.streams()):
            # Still open for writing (--force commit): it may change after the commit,
            # so the next commit must not be skipped as a no-op.
            key = ("uncommitted", key)
        self.origin[ino.ino] = (path, key)

    def changed(self, ino: Inode) -> bool:
        """Whether `ino` differs from what the WIM holds (or was not recorded)."""
        orig = self.origin.get(ino.ino)
        return orig is None or content_key(ino) != orig[1]

    def _short_changed(self, ino: Inode) -> bool:
        shorts = self.shorts
        return any(shorts.get(d, d.short_name) != d.short_name for d in ino.dentries)

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
            elif old_path != path and ino.ino not in seen_ino and _names(ino) == 1 and \
                    self.paths.get(path) != ino.ino:
                out.append(DiffEntry(Change.RENAMED, path, ino.size, old_path))
            elif old_path != path and path not in self.paths:
                out.append(DiffEntry(Change.ADDED, path, ino.size))
            if ino.ino not in seen_ino and (content_key(ino) != key or
                                            self._short_changed(ino)):
                out.append(DiffEntry(Change.MODIFIED, ino.dentries[0].path, ino.size))
            seen_ino.add(ino.ino)
        moved_from = {e.old_path for e in out if e.change == Change.RENAMED} | carried
        for path in sorted(self.paths.keys() - set(now) - moved_from):
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
        if was == old_path or _names(d.inode) > 1:
            return was
        return None
