"""The journal of a session: one JSON record per edit (paths relative to the image root),
so that `wimfs remount` can rebuild the session after the daemon died.

Each record type is a dataclass (one per edit, like wimlib's update commands) that knows
how to apply itself to the tree (`apply(edits)`). A record that does not fit its type
(unknown op, missing or unknown fields) is a `JournalError`, never skipped silently; an
edit that no longer applies (its path is gone) is logged and skipped.

`t` on tree edits is the time the edit gave the parent directories, so that a replay gives
them the same last-write time. Data writes are not journaled one by one: a staged unnamed
stream's staging file carries its last-write time (its mtime).
"""

from __future__ import annotations

import errno
import json
import logging
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, ClassVar

from wimfs.errors import MountError
from wimfs.image import UnixData
from wimfs.overlay.edits import Kind
from wimfs.overlay.errors import FsError
from wimfs.overlay.staging import is_staged

if TYPE_CHECKING:
    from wimfs.overlay.edits import TreeEdits
    from wimfs.overlay.session import Overlay

log = logging.getLogger(__name__)


class JournalError(MountError):
    """The journal cannot be read back (not a journal, or a record of the wrong shape)."""


@dataclass(frozen=True, slots=True)
class Record:
    op: ClassVar[str] = ""

    def apply(self, edits: TreeEdits) -> None:
        raise NotImplementedError

    def to_json(self) -> str:
        d = {"op": self.op}
        d.update((k, v) for k, v in asdict(self).items() if not (k == "t" and v is None))
        return json.dumps(d, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Base(Record):
    """First record: the WIM state the edits apply to."""
    op: ClassVar[str] = "base"
    wim: str
    index: int
    generation: str


@dataclass(frozen=True, slots=True)
class CommitMark(Record):
    """Written just before a commit's header: the generation the WIM will have."""
    op: ClassVar[str] = "commit"
    generation: str

    def apply(self, edits: TreeEdits) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Stage(Record):
    op: ClassVar[str] = "stage"
    path: str
    stream: str
    file: str

    def apply(self, edits: TreeEdits) -> None:
        full = edits.staging.path(self.file)
        if not os.path.exists(full):
            raise FsError(errno.ENOENT, full)
        edits.attach_staged(edits.resolve(self.path).inode, self.stream, full)


@dataclass(frozen=True, slots=True)
class Create(Record):
    op: ClassVar[str] = "create"
    path: str
    kind: str
    mode: int
    uid: int
    gid: int
    target: str | None
    sd: str | None
    times: list[int]
    t: int | None = None

    def __post_init__(self) -> None:
        Kind(self.kind)                  # ValueError: not a kind `create` knows

    def apply(self, edits: TreeEdits) -> None:
        parent = edits.resolve(os.path.dirname(self.path))
        ino = edits.create(parent, os.path.basename(self.path), self.mode, self.uid, self.gid,
                           self.kind, self.target, self.t)
        ino.security_id = edits.sd_index(bytes.fromhex(self.sd)) if self.sd else -1
        ino.creation_time, ino.last_access_time, ino.last_write_time = self.times


@dataclass(frozen=True, slots=True)
class Unlink(Record):
    op: ClassVar[str] = "unlink"
    path: str
    t: int | None = None

    def apply(self, edits: TreeEdits) -> None:
        d = edits.resolve(self.path)
        edits.unlink(d.parent, d.name, self.t)


@dataclass(frozen=True, slots=True)
class Rmdir(Record):
    op: ClassVar[str] = "rmdir"
    path: str
    t: int | None = None

    def apply(self, edits: TreeEdits) -> None:
        d = edits.resolve(self.path)
        edits.rmdir(d.parent, d.name, self.t)


@dataclass(frozen=True, slots=True)
class Rename(Record):
    op: ClassVar[str] = "rename"
    old: str
    new: str
    flags: int
    t: int | None = None

    def apply(self, edits: TreeEdits) -> None:
        s = edits.resolve(self.old)
        p = edits.resolve(os.path.dirname(self.new))
        edits.rename(s.parent, s.name, p, os.path.basename(self.new), self.flags, self.t)


@dataclass(frozen=True, slots=True)
class Link(Record):
    op: ClassVar[str] = "link"
    src: str
    path: str
    t: int | None = None

    def apply(self, edits: TreeEdits) -> None:
        ino = edits.resolve(self.src).inode
        edits.link(ino, edits.resolve(os.path.dirname(self.path)),
                   os.path.basename(self.path), self.t)


@dataclass(frozen=True, slots=True)
class Meta(Record):
    """An inode's metadata after a change of attributes, times, SD, owner or DOS name."""
    op: ClassVar[str] = "meta"
    path: str
    attributes: int
    times: list[int]
    sd: str | None
    unix: list[int] | None
    short: list[str]

    def apply(self, edits: TreeEdits) -> None:
        edits.set_meta(edits.resolve(self.path).inode, self.attributes, self.times,
                       bytes.fromhex(self.sd) if self.sd else None,
                       UnixData(*self.unix) if self.unix else None, self.short)


@dataclass(frozen=True, slots=True)
class RmStream(Record):
    op: ClassVar[str] = "rmstream"
    path: str
    stream: str

    def apply(self, edits: TreeEdits) -> None:
        edits.resolve(self.path).inode.named_streams.pop(self.stream, None)


@dataclass(frozen=True, slots=True)
class Reparse(Record):
    op: ClassVar[str] = "reparse"
    path: str
    tag: int
    reserved: int
    file: str

    def apply(self, edits: TreeEdits) -> None:
        edits.set_reparse(edits.resolve(self.path).inode, self.tag, self.reserved,
                          edits.staging.path(self.file))


@dataclass(frozen=True, slots=True)
class Unreparse(Record):
    op: ClassVar[str] = "unreparse"
    path: str

    def apply(self, edits: TreeEdits) -> None:
        edits.clear_reparse(edits.resolve(self.path).inode)


RECORDS: dict[str, type[Record]] = {
    cls.op: cls for cls in (Base, CommitMark, Stage, Create, Unlink, Rmdir, Rename, Link,
                            Meta, RmStream, Reparse, Unreparse)}


def parse_record(line: str, where: str) -> Record:
    d = json.loads(line)
    if not isinstance(d, dict):
        raise JournalError(f"{where}: not a journal record")
    op = d.pop("op", None)
    cls = RECORDS.get(op)
    if cls is None:
        raise JournalError(f"{where}: unknown journal record {op!r}")
    try:
        return cls(**d)
    except (TypeError, ValueError) as exc:
        raise JournalError(f"{where}: journal record {op!r} does not fit: {exc}") from None


class Journal:
    """The journal file: appended to after each edit, rewritten after a commit."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file = None

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def read(self) -> list[Record]:
        """The records; a torn last line (the daemon died writing it) ends the list."""
        with open(self.path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        records = []
        for n, line in enumerate(lines, 1):
            try:
                records.append(parse_record(line, f"{self.path}:{n}"))
            except json.JSONDecodeError:
                break
        if not records or not isinstance(records[0], Base):
            raise JournalError(f"{self.path}: not a wimfs journal")
        return records

    def open(self) -> None:
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held open

    def append(self, record: Record) -> None:
        if self._file is not None:
            self._file.write(record.to_json() + "\n")
            self._file.flush()

    def sync(self) -> None:
        if self._file is not None:
            os.fsync(self._file.fileno())

    def rewrite(self, records: list[Record]) -> None:
        """Replace the journal atomically by `records` (the base and the staged files)."""
        tmp = self.path + ".new"
        with open(tmp, "w", encoding="utf-8") as f:
            for r in records:
                f.write(r.to_json() + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        if self._file is not None:
            self._file.close()
            self.open()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def replay(records: list[Record], edits: TreeEdits) -> int:
    """Apply the edit records to `edits`; returns how many applied. An edit whose path no
    longer resolves is logged and skipped."""
    n = 0
    for r in records:
        if isinstance(r, (Base, CommitMark)):
            continue
        try:
            r.apply(edits)
            n += 1
        except FsError as exc:
            log.warning("journal: cannot replay %r: %s", r, exc)
    return n


def records_for(ov: Overlay) -> list[Record]:
    """The journal of the tree as it is (after a commit): the base and the staged data
    streams."""
    records: list[Record] = [Base(ov.wim_path, ov.index, ov.generation)]
    for ino in ov.edits.live_inodes():
        for s in (ino.data, *ino.named_streams.values()):
            if is_staged(s):
                records.append(Stage(ino.dentries[0].path, s.name,
                                     os.path.basename(s.source.path)))
    return records


def recover(ov: Overlay) -> int:
    """Rebuild a session from its journal (remount after the daemon died); returns the
    number of edits replayed."""
    records = ov.journal.read()
    base = records[0]
    assert isinstance(base, Base)
    if base.index != ov.index:
        ov.reload_image(base.index)
    if base.generation != ov.generation:
        commits = [r for r in records if isinstance(r, CommitMark)]
        if commits and commits[-1].generation == ov.generation:
            # The commit reached the WIM; what the journal holds is in it now, except
            # data staged after the commit began (none survives a crash anyway).
            log.info("last commit completed before the crash; overlay is empty")
            ov.rewrite_journal()
            return 0
        raise MountError(f"the WIM changed since this overlay was made "
                         f"({base.generation} != {ov.generation}); cannot remount")
    n = replay(records[1:], ov.edits)
    for ino in ov.edits.live_inodes():       # data writes are not journaled one by one
        if is_staged(ino.data):
            try:
                ino.last_write_time = ov.staging_area.mtime(ino.data)
            except OSError:
                pass
    return n
