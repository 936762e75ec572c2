"""The read-write session of a mounted image: tree edits in memory, copy-on-write
of data streams into a staging directory, a journal of edits for recovery, commit
and discard.

Copy-on-write is per data stream: the first write or truncate copies that stream
into a staging file; untouched files keep pointing at their blobs. Tree edits
(create, unlink, rename, link) change the in-memory image tree directly.

The staging directory holds `data/` (staged streams), `journal` (one JSON record
per edit, paths relative to the image root) and `control.sock` (the daemon's
control channel). A killed daemon leaves all three; `remount` loads the base
image again and replays the journal.

Nothing here imports pyfuse3 or trio; the FUSE adapter calls these methods on
its event-loop thread, and runs copy-up and commit in worker threads.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import secrets
import shutil
import stat
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from wimfs.builder import NewImage, WimBuilder
from wimfs.errors import BusyError, MountError, WimfsError
from wimfs.format import structs as S
from wimfs.format.header import WimHeader
from wimfs.format.reparse import make_symlink
from wimfs.format.security import SecurityDescriptor, inherit
from wimfs.format.blobtable import ZERO_HASH
from wimfs.format.xmlinfo import filetime_now, filetime_to_unix_ns, unix_ns_to_filetime
from wimfs.image import Dentry, Image, Inode, Stream, UnixData
from wimfs.wim import Wim
from wimfs.writer import FileSource

log = logging.getLogger(__name__)

RP_SYMLINK = S.IO_REPARSE_TAG_SYMLINK


class FsError(OSError):
    """An errno for the FUSE layer (EEXIST, ENOTEMPTY, ...)."""

    def __init__(self, err: int, msg: str = ""):
        super().__init__(err, msg or os.strerror(err))


class StagedSource(FileSource):
    """The current content of a staged stream (its staging file)."""

    def __init__(self, path: str):
        self.path = path
        self.fixed_size: int | None = None    # set while a commit reads it (no stat each time)

    @property
    def size(self) -> int:  # type: ignore[override]
        if self.fixed_size is not None:
            return self.fixed_size
        return os.path.getsize(self.path)

    @size.setter
    def size(self, value: int) -> None:
        pass


def _generation(hdr: WimHeader) -> str:
    return f"{hdr.guid.hex()}:{hdr.blob_table_reshdr.offset_in_wim}"


@dataclass
class CommitResult:
    new_index: int
    written_bytes: int
    seconds: float


@dataclass
class DiffEntry:
    change: str            # added | modified | deleted | renamed
    path: str
    size: int = 0
    old_path: str | None = None


@dataclass
class Overlay:
    wim_path: str
    index: int
    staging: str
    mountpoint: str = ""
    wim: Wim = field(init=False)
    image: Image = field(init=False)

    # -- set-up ------------------------------------------------------------------

    def __post_init__(self) -> None:
        self.wim_path = os.path.abspath(self.wim_path)
        self.lock_fd = -1
        self._lock_wim()
        try:
            self.wim = Wim(self.wim_path)
            self.index = self.wim.resolve_image(self.index)
            self._load_base()
        except BaseException:
            os.close(self.lock_fd)
            raise
        os.makedirs(os.path.join(self.staging, "data"), mode=0o700, exist_ok=True)
        os.chmod(self.staging, 0o700)
        self.journal_path = os.path.join(self.staging, "journal")
        self._journal = None
        self._retired: list[Wim] = []
        self.replaying = False
        # The time a tree edit gave its parent directories (journaled with the edit as "t",
        # so that a replay gives them the same last-write time).
        self._touch_time: int | None = None
        self._replay_time: int | None = None
        self.frozen = False
        self.unix_mode = any(i.unix is not None for i in self.image.inodes)

    def _lock_wim(self) -> None:
        try:
            self.lock_fd = os.open(self.wim_path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            # Not writable (permissions, read-only file system): mount anyway; a commit
            # will fail and say why, the overlay stays.
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            self.lock_fd = os.open(self.wim_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.lock_fd)
            raise BusyError(f"{self.wim_path} is already mounted read-write (or locked by "
                            "another writer)") from None

    def _load_base(self) -> None:
        self.image = self.wim.image(self.index)
        self.inodes: dict[int, Inode] = {i.ino: i for i in self.image.inodes}
        self.next_ino = max(self.inodes) + 1
        self._mark_base()
        self.generation = _generation(self.wim.header)

    def _mark_base(self) -> None:
        """Remember the tree as the WIM now holds it, for status: each inode's first path
        and content, and every path."""
        self.origin: dict[int, tuple[str, tuple]] = {}
        self.base_paths: set[str] = set()
        for d in self.image.walk():
            path = d.path
            self.base_paths.add(path)
            if d.inode.ino in self.origin:
                continue
            key = _content_key(d.inode)
            if any(isinstance(x.source, StagedSource) for x in self._all_streams(d.inode)):
                # Still open for writing (--force commit): it may change after the commit,
                # so the next commit must not be skipped as a no-op.
                key = ("uncommitted", key)
            self.origin[d.inode.ino] = (path, key)

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        self.wim.close()
        for w in self._retired:
            w.close()
        self._retired.clear()
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1

    # -- journal -------------------------------------------------------------------

    def start_journal(self, resume: bool) -> int:
        """Open the journal; with `resume`, replay it first. Returns records replayed."""
        n = 0
        if resume and os.path.exists(self.journal_path):
            n = self._replay()
        elif os.path.exists(self.journal_path) and not resume:
            raise MountError(f"staging directory {self.staging} holds an overlay; use "
                             "'wimfs remount' or remove it")
        if not resume or not os.path.exists(self.journal_path):
            self._rewrite_journal()
        self._journal = open(self.journal_path, "a", encoding="utf-8")
        return n

    def _record(self, op: str, **kw) -> None:
        t, self._touch_time = self._touch_time, None
        if self.replaying or self._journal is None:
            return
        kw["op"] = op
        if t is not None:
            kw["t"] = t
        self._journal.write(json.dumps(kw, separators=(",", ":")) + "\n")
        self._journal.flush()

    def _rewrite_journal(self) -> None:
        tmp = self.journal_path + ".new"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps({"op": "base", "wim": self.wim_path, "index": self.index,
                                "generation": self.generation}) + "\n")
            for ino in self._live_inodes():
                for sname, s in self._streams_of(ino):
                    if isinstance(s.source, StagedSource):
                        f.write(json.dumps({"op": "stage", "path": ino.dentries[0].path,
                                            "stream": sname,
                                            "file": os.path.basename(s.source.path)}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.journal_path)
        if self._journal is not None:
            self._journal.close()
            self._journal = open(self.journal_path, "a", encoding="utf-8")

    def _replay(self) -> int:
        with open(self.journal_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a torn last line: the daemon died while writing it
        if not records or records[0].get("op") != "base":
            raise MountError(f"{self.journal_path}: not a wimfs journal")
        base = records[0]
        if base.get("index") != self.index and isinstance(base.get("index"), int):
            self.index = base["index"]
            self._load_base()
        commits = [r for r in records if r.get("op") == "commit"]
        if base["generation"] != self.generation:
            if commits and commits[-1]["generation"] == self.generation:
                # The commit reached the WIM; what the journal holds is in it now, except
                # data staged after the commit began (none survives a crash anyway).
                log.info("last commit completed before the crash; overlay is empty")
                self._rewrite_journal()
                return 0
            raise MountError(f"the WIM changed since this overlay was made "
                             f"({base['generation']} != {self.generation}); cannot remount")
        self.replaying = True
        n = 0
        try:
            for r in records[1:]:
                op = r.pop("op")
                self._replay_time = r.pop("t", None)
                if op == "commit":
                    continue
                try:
                    getattr(self, "_replay_" + op)(**r)
                    n += 1
                except (FsError, KeyError, TypeError, AttributeError) as exc:
                    log.warning("journal: cannot replay %s %r: %s", op, r, exc)
        finally:
            self.replaying = False
            self._replay_time = None
        self._data_times_from_staging()
        return n

    def _data_times_from_staging(self) -> None:
        """A staged unnamed stream's staging file carries its last-write time (see
        `note_data_write`): data writes are not journaled one by one."""
        for ino in self._live_inodes():
            s = ino.data
            if s is not None and isinstance(s.source, StagedSource):
                try:
                    ino.last_write_time = unix_ns_to_filetime(
                        os.stat(s.source.path).st_mtime_ns)
                except OSError:
                    pass

    def note_data_write(self, ino: Inode) -> None:
        """After a write or truncate of the unnamed stream: its last-write time is the
        staging file's mtime (so that a replay after a crash restores it)."""
        s = ino.data
        if s is not None and isinstance(s.source, StagedSource):
            ino.last_write_time = unix_ns_to_filetime(os.stat(s.source.path).st_mtime_ns)
        else:
            self._touch(ino)
            self._touch_time = None

    def _sync_staging_mtime(self, ino: Inode) -> None:
        """Keep the staging file's mtime equal to an explicitly set last-write time."""
        s = ino.data
        if s is not None and isinstance(s.source, StagedSource) and not self.replaying:
            ns = filetime_to_unix_ns(ino.last_write_time)
            try:
                os.utime(s.source.path, ns=(ns, ns))
            except OSError:
                pass

    # -- lookups -----------------------------------------------------------------

    def resolve(self, path: str) -> Dentry:
        d = self.image.lookup_path(path)
        if d is None:
            raise FsError(errno.ENOENT, path)
        return d

    def _live_inodes(self) -> list[Inode]:
        seen: dict[int, Inode] = {}
        for d in self.image.walk():
            seen.setdefault(id(d.inode), d.inode)
        return list(seen.values())

    @staticmethod
    def _all_streams(ino: Inode):
        """Every stream of an inode that exists: unnamed data, named ones, reparse data."""
        if ino.data is not None:
            yield ino.data
        yield from ino.named_streams.values()
        if ino.reparse is not None:
            yield ino.reparse

    @staticmethod
    def _streams_of(ino: Inode):
        if ino.data is not None:
            yield "", ino.data
        for n, s in ino.named_streams.items():
            yield n, s

    # -- reading -------------------------------------------------------------------

    def read(self, stream: Stream, off: int, size: int) -> bytes:
        if isinstance(stream.source, StagedSource):
            with open(stream.source.path, "rb") as f:
                return os.pread(f.fileno(), size, off)
        if stream.blob is None:
            return b""
        return self.wim.reader.read(stream.blob, off, size)

    # -- copy-on-write ---------------------------------------------------------------

    def is_staged(self, stream: Stream | None) -> bool:
        return stream is not None and isinstance(stream.source, StagedSource)

    def new_staging_file(self) -> str:
        return os.path.join(self.staging, "data", secrets.token_hex(8))

    def copy_up(self, stream: Stream, keep: bool = True) -> str:
        """Copy a stream's content into a new staging file (runs in a worker thread;
        touches no shared state). Returns the path."""
        path = self.new_staging_file()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            if keep and stream.blob is not None:
                for off in range(0, stream.blob.size, 1 << 20):
                    data = self.wim.reader.read(stream.blob, off, 1 << 20)
                    os.pwrite(fd, data, off)
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        os.close(fd)
        return path

    def finish_copy_up(self, ino: Inode, sname: str, stream: Stream, path: str) -> None:
        """Switch a stream to its staging file (event-loop thread)."""
        stream.source = StagedSource(path)
        stream.blob = None
        stream.hash = ZERO_HASH
        stream.size = os.path.getsize(path)
        self._record("stage", path=self._path_of(ino), stream=sname,
                     file=os.path.basename(path))

    def _replay_stage(self, path: str, stream: str, file: str) -> None:
        ino = self.resolve(path).inode
        s = self._stream(ino, stream, create=True)
        full = os.path.join(self.staging, "data", file)
        if not os.path.exists(full):
            raise FsError(errno.ENOENT, full)
        s.source = StagedSource(full)
        s.blob, s.hash, s.size = None, ZERO_HASH, os.path.getsize(full)

    def _stream(self, ino: Inode, sname: str, create: bool = False) -> Stream:
        if sname == "":
            if ino.data is None:
                if not create:
                    raise FsError(errno.ENOENT)
                ino.data = Stream("", ZERO_HASH, None, 0)
            return ino.data
        s = ino.named_streams.get(sname)
        if s is None:
            if not create:
                raise FsError(errno.ENODATA)
            s = ino.named_streams[sname] = Stream(sname, ZERO_HASH, None, 0)
        return s

    def write(self, stream: Stream, off: int, data: bytes) -> int:
        assert isinstance(stream.source, StagedSource)
        fd = os.open(stream.source.path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            n = os.pwrite(fd, data, off)
        finally:
            os.close(fd)
        stream.size = max(stream.size, off + n)
        return n

    def truncate_staged(self, stream: Stream, size: int) -> None:
        assert isinstance(stream.source, StagedSource)
        os.truncate(stream.source.path, size)
        stream.size = size

    def fsync(self, stream: Stream | None) -> None:
        if stream is not None and isinstance(stream.source, StagedSource):
            fd = os.open(stream.source.path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if self._journal is not None:
            os.fsync(self._journal.fileno())

    # -- tree edits ----------------------------------------------------------------------

    def _path_of(self, ino: Inode) -> str | None:
        return ino.dentries[0].path if ino.dentries else None

    def _check_name(self, name: str) -> None:
        if not name or name in (".", "..") or "/" in name or "\x00" in name:
            raise FsError(errno.EINVAL)
        if len(name.encode("utf-16-le", "surrogatepass")) > 510:
            raise FsError(errno.ENAMETOOLONG)

    def _new_inode(self, parent: Dentry, attributes: int, mode: int, uid: int, gid: int,
                   is_dir: bool) -> Inode:
        now = filetime_now()
        sd_id = -1
        psd = self.image.security_descriptor(parent.inode)
        if psd is not None:
            try:
                sd_id = self._sd_index(inherit(psd, is_dir))
            except WimfsError as exc:
                log.warning("%s: cannot inherit the security descriptor: %s", parent.path,
                            exc)
        tagged = b""
        ino = Inode.new(self.next_ino, attributes, sd_id, now, now, now, tagged_items=tagged)
        self.next_ino += 1
        if self.unix_mode:
            ino.unix = UnixData(uid, gid, mode, 0)
            ino.tagged_items = _unix_tag(ino.unix)
        self.inodes[ino.ino] = ino
        return ino

    def _sd_index(self, sd: bytes) -> int:
        try:
            return self.image.security.index(sd)
        except ValueError:
            self.image.security.append(sd)
            return len(self.image.security) - 1

    def _attach(self, parent: Dentry, name: str, ino: Inode, short_name: str = "") -> Dentry:
        d = Dentry(name, short_name, ino, parent)
        assert parent.children is not None
        parent.children[name] = d
        parent._ci = None
        ino.dentries.append(d)
        if ino.is_directory:
            parent.inode.nlink += 1
        else:
            ino.nlink = len(ino.dentries)
        self._touch(parent.inode)
        return d

    def _detach(self, d: Dentry) -> None:
        parent = d.parent
        assert parent is not None and parent.children is not None
        del parent.children[d.name]
        parent._ci = None
        d.inode.dentries.remove(d)
        if d.inode.is_directory:
            parent.inode.nlink -= 1
        else:
            d.inode.nlink = len(d.inode.dentries)
        self._touch(parent.inode)

    def _touch(self, ino: Inode) -> None:
        if not self.replaying:
            if self._touch_time is None:
                self._touch_time = filetime_now()
            ino.last_write_time = self._touch_time
        elif self._replay_time is not None:
            ino.last_write_time = self._replay_time

    def _require_dir(self, d: Dentry) -> None:
        if d.children is None:
            raise FsError(errno.ENOTDIR)

    def create(self, parent: Dentry, name: str, mode: int, uid: int, gid: int,
               kind: str = "file", target: str | None = None) -> Inode:
        self._check_freeze()
        self._require_dir(parent)
        self._check_name(name)
        if parent.lookup(name) is not None:
            raise FsError(errno.EEXIST)
        if kind == "dir":
            attrs = S.FILE_ATTRIBUTE_DIRECTORY
            ftype = stat.S_IFDIR
        elif kind == "symlink":
            attrs = S.FILE_ATTRIBUTE_REPARSE_POINT
            ftype = stat.S_IFLNK
        else:
            attrs = S.FILE_ATTRIBUTE_ARCHIVE
            ftype = stat.S_IFREG if not stat.S_IFMT(mode) else stat.S_IFMT(mode)
        ino = self._new_inode(parent, attrs, ftype | stat.S_IMODE(mode), uid, gid,
                              kind == "dir")
        if kind == "symlink":
            assert target is not None
            self._set_symlink(ino, target)
        elif kind != "dir":
            ino.data = Stream("", ZERO_HASH, None, 0)
        else:
            ino.nlink = 2
        d = self._attach(parent, name, ino)
        self._record("create", path=d.path, kind=kind, mode=mode, uid=uid, gid=gid,
                     target=target, sd=self._sd_hex(ino), times=self._times(ino))
        return ino

    def _sd_hex(self, ino: Inode) -> str | None:
        sd = self.image.security_descriptor(ino)
        return sd.hex() if sd is not None else None

    @staticmethod
    def _times(ino: Inode) -> list[int]:
        return [ino.creation_time, ino.last_access_time, ino.last_write_time]

    def _replay_create(self, path, kind, mode, uid, gid, target, sd, times) -> None:
        parent = self.resolve(os.path.dirname(path))
        ino = self.create(parent, os.path.basename(path), mode, uid, gid, kind, target)
        ino.security_id = self._sd_index(bytes.fromhex(sd)) if sd else -1
        ino.creation_time, ino.last_access_time, ino.last_write_time = times

    def _set_symlink(self, ino: Inode, target: str) -> None:
        mp = self.mountpoint.rstrip("/")
        if target.startswith("/"):
            if mp and (target == mp or target.startswith(mp + "/")):
                data = make_symlink(target[len(mp):] or "/", relative=False)
                ino.rp_flags = 0           # fixed: relative to the image root
            else:
                data = make_symlink(target, relative=False)
                ino.rp_flags = S.RP_FLAG_NOT_FIXED
        else:
            data = make_symlink(target, relative=True)
            ino.rp_flags = 0
        ino.reparse_tag = RP_SYMLINK
        ino.attributes |= S.FILE_ATTRIBUTE_REPARSE_POINT
        path = self.new_staging_file()
        with open(path, "wb") as f:
            f.write(data)
        ino.reparse = Stream("", ZERO_HASH, None, len(data), StagedSource(path))
        ino._link = False

    def unlink(self, parent: Dentry, name: str) -> Inode:
        self._check_freeze()
        d = parent.lookup(name) if parent.children is not None else None
        if d is None:
            raise FsError(errno.ENOENT)
        if d.inode.is_directory:
            raise FsError(errno.EISDIR)
        path = d.path
        self._detach(d)
        self._record("unlink", path=path)
        return d.inode

    def _replay_unlink(self, path) -> None:
        d = self.resolve(path)
        self.unlink(d.parent, d.name)

    def rmdir(self, parent: Dentry, name: str) -> Inode:
        self._check_freeze()
        d = parent.lookup(name) if parent.children is not None else None
        if d is None:
            raise FsError(errno.ENOENT)
        if not d.inode.is_directory:
            raise FsError(errno.ENOTDIR)
        if d.children:
            raise FsError(errno.ENOTEMPTY)
        path = d.path
        self._detach(d)
        self._record("rmdir", path=path)
        return d.inode

    def _replay_rmdir(self, path) -> None:
        d = self.resolve(path)
        self.rmdir(d.parent, d.name)

    def rename(self, p_old: Dentry, old: str, p_new: Dentry, new: str, flags: int = 0
               ) -> Inode | None:
        """Returns the inode that lost its last name by being replaced, if any."""
        self._check_freeze()
        self._require_dir(p_old)
        self._require_dir(p_new)
        self._check_name(new)
        src = p_old.lookup(old)
        if src is None:
            raise FsError(errno.ENOENT)
        dst = p_new.lookup(new)
        # Moving a directory into itself or its own subtree.
        if src.inode.is_directory:
            a: Dentry | None = p_new
            while a is not None:
                if a is src:
                    raise FsError(errno.EINVAL)
                a = a.parent
        old_path, new_path = src.path, p_new.path.rstrip("/") + "/" + new
        exchange = bool(flags & 2)      # RENAME_EXCHANGE
        if flags & 1 and dst is not None:   # RENAME_NOREPLACE
            raise FsError(errno.EEXIST)
        if exchange:
            if dst is None:
                raise FsError(errno.ENOENT)
            if dst is src:
                return None
            self._detach(src)
            self._detach(dst)
            self._attach(p_new, new, src.inode, src.short_name)
            self._attach(p_old, old, dst.inode, dst.short_name)
            self._move_children(src, p_new.children[new])
            self._move_children(dst, p_old.children[old])
            self._record("rename", old=old_path, new=new_path, flags=flags)
            return None
        replaced = None
        if dst is not None:
            if dst is src or dst.inode is src.inode:
                # POSIX: renaming a hard link onto another link of the same file is a no-op.
                return None
            if dst.inode.is_directory:
                if not src.inode.is_directory:
                    raise FsError(errno.EISDIR)
                if dst.children:
                    raise FsError(errno.ENOTEMPTY)
            elif src.inode.is_directory:
                raise FsError(errno.ENOTDIR)
            self._detach(dst)
            replaced = dst.inode if not dst.inode.dentries else None
        self._detach(src)
        nd = self._attach(p_new, new, src.inode, src.short_name if new == old else "")
        self._move_children(src, nd)
        self._record("rename", old=old_path, new=new_path, flags=flags)
        return replaced

    @staticmethod
    def _move_children(old: Dentry, new: Dentry) -> None:
        if old.children is not None:
            new.children = old.children
            for c in new.children.values():
                c.parent = new
            new._ci = None

    def _replay_rename(self, old, new, flags) -> None:
        s = self.resolve(old)
        p = self.resolve(os.path.dirname(new))
        self.rename(s.parent, s.name, p, os.path.basename(new), flags)

    def link(self, ino: Inode, parent: Dentry, name: str) -> None:
        self._check_freeze()
        self._require_dir(parent)
        self._check_name(name)
        if ino.is_directory:
            raise FsError(errno.EPERM)
        if ino.is_reparse_point:
            # A WIM dentry holds either reparse data or a hard-link group, not both.
            raise FsError(errno.EMLINK)
        if parent.lookup(name) is not None:
            raise FsError(errno.EEXIST)
        if not ino.dentries:
            raise FsError(errno.ENOENT)
        src_path = ino.dentries[0].path
        d = self._attach(parent, name, ino)
        self._record("link", src=src_path, path=d.path)

    def _replay_link(self, src, path) -> None:
        ino = self.resolve(src).inode
        self.link(ino, self.resolve(os.path.dirname(path)), os.path.basename(path))

    # -- attributes ----------------------------------------------------------------------

    def set_times(self, ino: Inode, atime: int | None = None, mtime: int | None = None,
                  ctime_birth: int | None = None) -> None:
        self._check_freeze()
        if atime is not None:
            ino.last_access_time = atime
        if mtime is not None:
            ino.last_write_time = mtime
            self._sync_staging_mtime(ino)
        if ctime_birth is not None:
            ino.creation_time = ctime_birth
        self._record_meta(ino)

    def chmod(self, ino: Inode, mode: int) -> None:
        self._check_freeze()
        if ino.unix is not None:
            ino.unix.mode = stat.S_IFMT(ino.unix.mode) | stat.S_IMODE(mode)
            ino.tagged_items = _replace_unix_tag(ino.tagged_items, ino.unix)
        if not ino.is_directory:
            if mode & 0o222:
                ino.attributes &= ~S.FILE_ATTRIBUTE_READONLY
            else:
                ino.attributes |= S.FILE_ATTRIBUTE_READONLY
        self._record_meta(ino)

    def chown(self, ino: Inode, uid: int | None, gid: int | None) -> None:
        self._check_freeze()
        if ino.unix is None:
            raise FsError(errno.EPERM, "this image stores no UNIX owners")
        if uid is not None and uid != 0xFFFFFFFF:
            ino.unix.uid = uid
        if gid is not None and gid != 0xFFFFFFFF:
            ino.unix.gid = gid
        ino.tagged_items = _replace_unix_tag(ino.tagged_items, ino.unix)
        self._record_meta(ino)

    def _record_meta(self, ino: Inode) -> None:
        if self.replaying or not ino.dentries:
            return
        self._record("meta", path=ino.dentries[0].path, attributes=ino.attributes,
                     times=self._times(ino), sd=self._sd_hex(ino),
                     unix=[ino.unix.uid, ino.unix.gid, ino.unix.mode, ino.unix.rdev]
                     if ino.unix else None,
                     short=[d.short_name for d in ino.dentries])

    def _replay_meta(self, path, attributes, times, sd, unix, short) -> None:
        ino = self.resolve(path).inode
        keep = S.FILE_ATTRIBUTE_DIRECTORY | S.FILE_ATTRIBUTE_REPARSE_POINT
        ino.attributes = (attributes & ~keep) | (ino.attributes & keep)
        ino.creation_time, ino.last_access_time, ino.last_write_time = times
        ino.security_id = self._sd_index(bytes.fromhex(sd)) if sd else -1
        if unix:
            ino.unix = UnixData(*unix)
            ino.tagged_items = _replace_unix_tag(ino.tagged_items, ino.unix)
        for d, sn in zip(ino.dentries, short):
            d.short_name = sn

    # -- xattrs: named streams and Windows metadata -----------------------------------------

    def set_named_stream(self, ino: Inode, name: str, value: bytes) -> None:
        self._check_freeze()
        path = self.new_staging_file()
        with open(path, "wb") as f:
            f.write(value)
        s = self._stream(ino, name, create=True)
        s.source, s.blob, s.hash, s.size = StagedSource(path), None, ZERO_HASH, len(value)
        self._record("stage", path=self._path_of(ino), stream=name,
                     file=os.path.basename(path))

    def remove_named_stream(self, ino: Inode, name: str) -> None:
        self._check_freeze()
        if name not in ino.named_streams:
            raise FsError(errno.ENODATA)
        del ino.named_streams[name]
        self._record("rmstream", path=self._path_of(ino), stream=name)

    def _replay_rmstream(self, path, stream) -> None:
        self.resolve(path).inode.named_streams.pop(stream, None)

    def set_ntfs_xattr(self, ino: Inode, name: str, value: bytes) -> None:
        """system.ntfs_* names, as ntfs-3g accepts them."""
        self._check_freeze()
        if name in ("system.ntfs_attrib", "system.ntfs_attrib_be"):
            if len(value) != 4:
                raise FsError(errno.EINVAL)
            a = struct.unpack("<I" if name.endswith("attrib") else ">I", value)[0]
            keep = S.FILE_ATTRIBUTE_DIRECTORY | S.FILE_ATTRIBUTE_REPARSE_POINT
            ino.attributes = (a & ~keep) | (ino.attributes & keep)
        elif name == "system.ntfs_acl":
            try:
                SecurityDescriptor.parse(value)
            except WimfsError:
                raise FsError(errno.EINVAL) from None
            ino.security_id = self._sd_index(bytes(value))
        elif name == "system.ntfs_dos_name":
            sn = value.decode("utf-8", "surrogatepass").rstrip("\x00")
            if not _valid_dos_name(sn):
                raise FsError(errno.EINVAL)
            if not ino.dentries:
                raise FsError(errno.ENOENT)
            ino.dentries[0].short_name = sn.upper()
        elif name in ("system.ntfs_times", "system.ntfs_times_be"):
            if len(value) not in (8, 16, 24, 32):
                raise FsError(errno.EINVAL)
            fmt = ("<" if name.endswith("times") else ">") + f"{len(value) // 8}Q"
            t = struct.unpack(fmt, value)
            ino.creation_time = t[0]
            if len(t) > 1:
                ino.last_write_time = t[1]
                self._sync_staging_mtime(ino)
            if len(t) > 2:
                ino.last_access_time = t[2]
        elif name == "system.ntfs_reparse_data":
            if len(value) < 8:
                raise FsError(errno.EINVAL)
            tag, dlen, reserved = struct.unpack_from("<IHH", value)
            if dlen != len(value) - 8:
                raise FsError(errno.EINVAL)
            if len(ino.dentries) > 1:
                raise FsError(errno.EMLINK)
            path = self.new_staging_file()
            with open(path, "wb") as f:
                f.write(value[8:])
            ino.reparse = Stream("", ZERO_HASH, None, dlen, StagedSource(path))
            ino.reparse_tag, ino.rp_reserved = tag, reserved
            ino.attributes |= S.FILE_ATTRIBUTE_REPARSE_POINT
            ino._link = False
            self._record("reparse", path=self._path_of(ino), tag=tag, reserved=reserved,
                         file=os.path.basename(path))
            return
        else:
            raise FsError(errno.EOPNOTSUPP)
        self._record_meta(ino)

    def _replay_reparse(self, path, tag, reserved, file) -> None:
        ino = self.resolve(path).inode
        full = os.path.join(self.staging, "data", file)
        ino.reparse = Stream("", ZERO_HASH, None, os.path.getsize(full), StagedSource(full))
        ino.reparse_tag, ino.rp_reserved = tag, reserved
        ino.attributes |= S.FILE_ATTRIBUTE_REPARSE_POINT
        ino._link = False

    def remove_ntfs_xattr(self, ino: Inode, name: str) -> None:
        self._check_freeze()
        if name == "system.ntfs_acl":
            ino.security_id = -1
        elif name == "system.ntfs_dos_name":
            for d in ino.dentries:
                d.short_name = ""
        elif name == "system.ntfs_reparse_data":
            if not ino.is_reparse_point:
                raise FsError(errno.ENODATA)
            ino.reparse = None
            ino.reparse_tag = 0
            ino.attributes &= ~S.FILE_ATTRIBUTE_REPARSE_POINT
            ino._link = False
        else:
            raise FsError(errno.EOPNOTSUPP)
        self._record_meta(ino)
        if name == "system.ntfs_reparse_data":
            self._record("unreparse", path=self._path_of(ino))

    def _replay_unreparse(self, path) -> None:
        ino = self.resolve(path).inode
        ino.reparse, ino.reparse_tag, ino._link = None, 0, False
        ino.attributes &= ~S.FILE_ATTRIBUTE_REPARSE_POINT

    # -- commit / discard -------------------------------------------------------------------

    def _check_freeze(self) -> None:
        if self.frozen and not self.replaying:
            raise FsError(errno.EBUSY, "a commit is in progress")

    def commit(self, append: bool = False, name: str | None = None,
               description: str | None = None, check: bool = False, quiet: bool = True,
               open_for_write: Callable[[], set[int]] = set,
               progress_cb: Callable[[int, int], None] | None = None) -> CommitResult:
        """Write the current tree into the WIM (runs in a worker thread while the FUSE
        layer holds off every change). On failure nothing in the WIM changes."""
        t0 = time.monotonic()
        size_before = os.path.getsize(self.wim_path)
        if not append and not self.diff():
            return CommitResult(self.index, 0, 0.0)     # nothing to write
        live = self._live_inodes()
        staged = [x for ino in live for x in self._all_streams(ino)
                  if isinstance(x.source, StagedSource)]
        for x in staged:
            x.source.fixed_size = os.path.getsize(x.source.path)
        img = Image(self.index, self.image.security, self.image.root, live)
        for ino in live:
            if not ino.is_directory:
                ino.nlink = len(ino.dentries)
        old_el = self.wim.xml_root.findall("IMAGE")
        el = old_el[self.index - 1] if self.index - 1 < len(old_el) else None
        win, props = _windows_xml(img, self)
        ni = NewImage(img, name=name, description=description,
                      xml_element=None if append else el, windows=win,
                      extra_properties=props)
        b = WimBuilder(self.wim_path, self.wim.header.compression_type,
                       append_to=self.wim, check_integrity=check, quiet=quiet)
        b.lock = False                  # our lock_fd holds the flock
        b.progress_cb = progress_cb
        if append and name is None:
            raise WimfsError("--append needs --name for the new image")

        def mark(hdr: WimHeader) -> None:
            self._record("commit", generation=_generation(hdr))
            if self._journal is not None:
                os.fsync(self._journal.fileno())

        b.before_header = mark
        b.add(ni)
        try:
            b.write(replace_index=None if append else self.index)
        except OSError as exc:
            raise WimfsError(f"commit failed: {exc.strerror or exc}"
                             f"{': ' + exc.filename if exc.filename else ''}") from None
        finally:
            for x in staged:
                if isinstance(x.source, StagedSource):
                    x.source.fixed_size = None
        # Switch to the new state: reload the WIM, point committed streams at their
        # new blobs and drop their staging files (unless still open for writing).
        busy = open_for_write()
        # Readers may still be using the old Wim in other threads: retire it (closed at
        # the end of the session) instead of closing it under them.
        old_wim = self.wim
        self.wim = Wim(self.wim_path)
        old_wim.reader._cache.clear()
        self._retired.append(old_wim)
        if append:
            self.index = self.wim.image_count
        blobs = self.wim.blob_table.blobs
        to_delete: list[str] = []
        for ino in live:
            for s in self._all_streams(ino):
                if s is None or not isinstance(s.source, StagedSource):
                    continue
                if ino.ino in busy:
                    continue
                blob = blobs.get(s.hash) if s.hash != ZERO_HASH else None
                if s.hash != ZERO_HASH and blob is None:
                    continue
                to_delete.append(s.source.path)
                s.source, s.blob = None, blob
        # Unchanged streams keep their blob descriptors: their bytes did not move.
        for ino in live:
            for s in self._all_streams(ino):
                if s is not None and s.blob is not None and s.source is None:
                    nb = blobs.get(s.hash)
                    if nb is not None:
                        s.blob = nb
        self.generation = _generation(self.wim.header)
        self._mark_base()
        self._rewrite_journal()
        # The journal no longer names the committed staging files: delete them (and any
        # other file nothing uses now) in the background, after the freeze is lifted;
        # thousands of unlinks of flushed files take seconds.
        to_delete += self._unused_staging_files()
        threading.Thread(target=_unlink_all, args=(to_delete,), daemon=True,
                         name="wimfs-staging-cleanup").start()
        return CommitResult(self.index, os.path.getsize(self.wim_path) - size_before,
                            time.monotonic() - t0)

    def _unused_staging_files(self) -> list[str]:
        """Staging files no stream uses (computed while changes are frozen)."""
        used = set()
        for ino in self.inodes.values():
            for s in self._all_streams(ino):
                if s is not None and isinstance(s.source, StagedSource):
                    used.add(os.path.basename(s.source.path))
        d = os.path.join(self.staging, "data")
        return [os.path.join(d, n) for n in os.listdir(d) if n not in used]

    def discard(self) -> None:
        """Drop every change: remove the staging directory. The WIM is untouched."""
        self.close()
        shutil.rmtree(self.staging, ignore_errors=True)

    def forget_inode(self, ino: Inode) -> None:
        """An unlinked inode is no longer open or looked up: free it and its staging."""
        if ino.dentries:
            return
        self.inodes.pop(ino.ino, None)
        for s in self._all_streams(ino):
            if s is not None and isinstance(s.source, StagedSource):
                try:
                    os.unlink(s.source.path)
                except OSError:
                    pass

    # -- status ---------------------------------------------------------------------------

    def diff(self) -> list[DiffEntry]:
        out: list[DiffEntry] = []
        now_paths: dict[str, Inode] = {}
        for d in self.image.walk():
            now_paths[d.path] = d.inode
        seen_ino: set[int] = set()
        for path, ino in now_paths.items():
            orig = self.origin.get(ino.ino)
            if orig is None:
                out.append(DiffEntry("added", path, ino.size))
                continue
            old_path, key = orig
            if old_path != path and ino.ino not in seen_ino and len(ino.dentries) == 1:
                out.append(DiffEntry("renamed", path, ino.size, old_path))
            elif old_path != path and path not in self.base_paths:
                out.append(DiffEntry("added", path, ino.size))
            if ino.ino not in seen_ino and _content_key(ino) != key:
                out.append(DiffEntry("modified", ino.dentries[0].path, ino.size))
            seen_ino.add(ino.ino)
        moved_from = {e.old_path for e in out if e.change == "renamed"}
        for path in sorted(self.base_paths - set(now_paths) - moved_from):
            out.append(DiffEntry("deleted", path))
        out.sort(key=lambda e: (e.path, e.change))
        return out

    def staged_bytes(self) -> int:
        total = 0
        d = os.path.join(self.staging, "data")
        for n in os.listdir(d):
            try:
                total += os.path.getsize(os.path.join(d, n))
            except OSError:
                pass
        return total


def _content_key(ino: Inode) -> tuple:
    """What a modification changes: data, streams, attributes, times, security, links."""
    def sk(s: Stream | None):
        if s is None:
            return None
        if isinstance(s.source, StagedSource):
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


def _windows_xml(img: Image, ov: Overlay):
    """The XML WINDOWS element (and FLAGS etc.) DISM writes for a Windows tree, read from
    the committed tree's SOFTWARE/SYSTEM hives; (None, {}) for other trees."""
    try:
        from wimfs.windows import windows_info
    except ImportError:
        return None, {}

    def read(s: Stream) -> bytes:
        if isinstance(s.source, StagedSource):
            with open(s.source.path, "rb") as f:
                return f.read()
        if s.blob is not None:
            return ov.wim.read_blob(s.blob)
        return b""

    try:
        found = windows_info(img, read)
    except Exception as exc:    # a damaged hive must not make the commit fail
        log.warning("cannot read Windows version information: %s", exc)
        return None, {}
    return found if found is not None else (None, {})


def _unlink_all(paths: list[str]) -> None:
    for p in paths:
        try:
            os.unlink(p)
        except OSError:
            pass


def _unix_tag(u: UnixData) -> bytes:
    return struct.pack("<II", S.TAG_WIMLIB_UNIX_DATA, 16) + \
        S.UNIX_DATA_STRUCT.pack(u.uid, u.gid, u.mode, u.rdev)


def _replace_unix_tag(tagged: bytes, u: UnixData) -> bytes:
    out = bytearray()
    p = 0
    while p + 8 <= len(tagged):
        tag, length = struct.unpack_from("<II", tagged, p)
        full = 8 + ((length + 7) & ~7)
        if tag != S.TAG_WIMLIB_UNIX_DATA:
            out += tagged[p:p + full]
        p += full
    return bytes(out) + _unix_tag(u)


def _valid_dos_name(n: str) -> bool:
    if not n or len(n) > 12:
        return False
    base, _, ext = n.partition(".")
    if not base or len(base) > 8 or len(ext) > 3 or "." in ext:
        return False
    bad = set('"*+,/:;<=>?[\\]|')
    return all(32 < ord(c) < 127 and c not in bad for c in n)
