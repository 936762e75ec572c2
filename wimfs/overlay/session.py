"""`Overlay`: the read-write session of one image, as a FUSE mount and `open_image` use
it. A facade over the staging area (`staging`), the tree edits (`edits`), the journal
(`journal`), status (`status`) and commit (`commit`): each edit checks the freeze, changes
the tree and appends its journal record.

The staging directory holds `data/` (staged streams), `journal` and `control.sock` (the
daemon's control channel). A killed daemon leaves all three; `remount` loads the base image
again and replays the journal. Nothing here imports pyfuse3 or trio; the FUSE adapter calls
these methods on its event-loop thread and runs copy-up and commit in worker threads.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil

from wimfs.chunkmemo import Precompressor
from wimfs.errors import BusyError, MountError
from wimfs.format import structs as S
from wimfs.format.xmlinfo import filetime_now
from wimfs.image import Dentry, Inode, Stream
from wimfs.overlay import journal as J
from wimfs.overlay import ntfs_xattrs as nx
from wimfs.overlay.commit import CommitResult, commit, generation_of
from wimfs.overlay.edits import Kind, TreeEdits
from wimfs.overlay.errors import FsError
from wimfs.overlay.staging import UNOWNED, Staging, is_staged
from wimfs.overlay.status import BaseState, DiffEntry
from wimfs.wim import Wim
from wimfs.writer import DEFAULT_CHUNK_SIZE, WimBlobSource

log = logging.getLogger(__name__)


def lock_wim(path: str) -> int:
    """Open the WIM and take its exclusive flock (one writer at a time): the fd."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        # Not writable (permissions, read-only file system): mount anyway; a commit
        # will fail and say why, the overlay stays.
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BusyError(f"{path} is already mounted read-write (or locked by another "
                        "writer)") from None
    return fd


class Overlay:
    def __init__(self, wim_path: str, index: int | None, staging: str,
                 mountpoint: str = "", lock_fd: int | None = None) -> None:
        self.wim_path = os.path.abspath(wim_path)
        self.staging = staging
        self.mountpoint = mountpoint
        # A caller holding the WIM's flock already (open_images) passes its fd: not ours.
        self._owns_lock = lock_fd is None
        self.lock_fd = lock_wim(self.wim_path) if lock_fd is None else lock_fd
        try:
            self.wim = Wim(self.wim_path)
            self.index = self.wim.resolve_image(index)
            self._load_base()
        except BaseException:
            if self._owns_lock:
                os.close(self.lock_fd)
            raise
        self.staging_area = Staging(staging)
        self.edits = TreeEdits(self.image, self.staging_area, mountpoint)
        self.journal = J.Journal(os.path.join(staging, "journal"))
        self.journal_path = self.journal.path
        self.retired: list[Wim] = []
        self.frozen = False                 # a commit is running: edits fail with EBUSY
        self.precompressor: Precompressor | None = None

    def _load_base(self) -> None:
        # Directories are parsed on first use; those nobody visits are copied through
        # by the commit (wimfs.image_tree: `make_writable`).
        self.image = self.wim.image(self.index, lazy=True)
        if self.image.tree is not None:
            self.image.tree.make_writable(self.image)
        self.mark_base()

    def mark_base(self) -> None:
        """The tree now is what the WIM holds (after load and each commit)."""
        self.generation = generation_of(self.wim.header)
        self.base = BaseState(self.image)

    @property
    def inodes(self) -> dict[int, Inode]:
        return self.edits.inodes

    @property
    def unix_mode(self) -> bool:
        return self.edits.unix_mode

    def precompress(self, path: str) -> None:
        """Compress the chunks of a staged file no one writes now, on an idle thread, for
        the next commit (wimfs.chunkmemo). Not for solid or uncompressed WIMs."""
        hdr = self.wim.header
        if hdr.compression_type == S.COMPRESSION_NONE or hdr.wim_version == S.WIM_VERSION_SOLID:
            return
        if self.precompressor is None:
            self.precompressor = Precompressor(
                hdr.compression_type, hdr.chunk_size or DEFAULT_CHUNK_SIZE[hdr.compression_type])
        self.precompressor.submit(path)

    def close(self) -> None:
        if self.precompressor is not None:
            self.precompressor.close()
            self.precompressor = None
        self.journal.close()
        self.wim.close()
        for w in self.retired:
            w.close()
        self.retired.clear()
        if self.lock_fd >= 0 and self._owns_lock:
            os.close(self.lock_fd)
        self.lock_fd = -1

    def discard(self) -> None:
        """Drop every change: remove the staging directory. The WIM is untouched."""
        self.close()
        shutil.rmtree(self.staging, ignore_errors=True)

    def commit(self, **kw) -> CommitResult:
        return commit(self, **kw)

    def diff(self) -> list[DiffEntry]:
        self.complete_changed_groups()
        return self.base.diff(self.image)

    def complete_changed_groups(self) -> None:
        """Parse the rest of every hard-link group parsed in part whose inode changed
        (data, streams, attributes, link count: wimfs.overlay.status.content_key), so
        that `diff` sees all its names and the writer writes them all from the inode.
        An unchanged group's names still on disk are copied through as stored, which is
        what they hold; names parsed after a change are recorded in the base state as
        the WIM holds them (`BaseState` keeps a group's references from its first)."""
        tree = self.image.tree
        if tree is None or not tree.writable:
            return
        changed = [ino for ino in tree.partial() if self.base.changed(ino)]
        if changed:
            tree.complete(changed)

    def staged_bytes(self) -> int:
        return self.staging_area.staged_bytes()

    # -- journal ---------------------------------------------------------------------------

    def start_journal(self, resume: bool) -> int:
        """Open the journal; with `resume`, replay it first. Returns records replayed."""
        exists = self.journal.exists()
        if exists and not resume:
            raise MountError(f"staging directory {self.staging} holds an overlay; use "
                             "'wimfs remount' or remove it")
        n = J.recover(self) if exists else 0
        if not exists:
            self.rewrite_journal()
        self.journal.open()
        return n

    def rewrite_journal(self) -> None:
        self.journal.rewrite(J.records_for(self))

    def reload_image(self, index: int) -> None:
        """Load another image of the WIM (a journal made for it is being recovered)."""
        self.index = index
        self._load_base()
        self.edits = TreeEdits(self.image, self.staging_area, self.mountpoint)

    def _check_freeze(self) -> None:
        if self.frozen:
            raise FsError(errno.EBUSY, "a commit is in progress")

    @staticmethod
    def _path_of(ino: Inode) -> str | None:
        return ino.dentries[0].path if ino.dentries else None

    def _record_meta(self, ino: Inode) -> None:
        """Journal a metadata change (and note its change time)."""
        ino.change_time = filetime_now()
        if ino.dentries:
            u = ino.unix
            self.journal.append(J.Meta(
                ino.dentries[0].path, ino.attributes, _times(ino), self.edits.sd_hex(ino),
                [u.uid, u.gid, u.mode, u.rdev] if u else None,
                [d.short_name for d in ino.dentries]))

    # -- data streams (staging) ------------------------------------------------------------

    def resolve(self, path: str) -> Dentry:
        return self.edits.resolve(path)

    def read(self, stream: Stream, off: int, size: int) -> bytes:
        if is_staged(stream):
            return self.staging_area.read(stream, off, size)
        if isinstance(stream.source, UNOWNED):
            return stream.source.read(off, size)
        if stream.blob is None:
            return b""
        return self.wim.reader.read(stream.blob, off, size)

    is_staged = staticmethod(is_staged)

    def copy_up(self, stream: Stream, keep: bool = True) -> str:
        """Copy a stream into a new staging file (worker thread; no shared state)."""
        return self.staging_area.copy_up(self.wim.reader, stream, keep)

    def origin_of(self, stream: Stream) -> WimBlobSource | None:
        """The blob of the WIM a stream's content was last derived from (the commit
        reuses its compressed chunks that did not change), if any."""
        if stream.source is not None:
            return stream.source.origin
        return WimBlobSource(self.wim.reader, stream.blob) if stream.blob is not None \
            else None

    def finish_copy_up(self, ino: Inode, sname: str, stream: Stream, path: str) -> None:
        """Switch a stream to its staging file (event-loop thread). The blob it was
        copied up from stays its `origin`: the commit reuses its unchanged chunks."""
        origin = stream.blob
        self.staging_area.attach(stream, path)
        if origin is not None:
            stream.source.origin = WimBlobSource(self.wim.reader, origin)
        self.journal.append(J.Stage(self._path_of(ino), sname, os.path.basename(path)))

    def write(self, stream: Stream, off: int, data: bytes) -> int:
        return self.staging_area.write(stream, off, data)

    def truncate_staged(self, stream: Stream, size: int) -> None:
        self.staging_area.truncate(stream, size)

    def fsync(self, stream: Stream | None) -> None:
        if is_staged(stream):
            self.staging_area.fsync(stream)
        self.journal.sync()

    def note_data_write(self, ino: Inode) -> None:
        """After a write or truncate of the unnamed stream: its last-write time is the
        staging file's mtime (so that a replay after a crash restores it)."""
        if is_staged(ino.data):
            ino.last_write_time = self.staging_area.mtime(ino.data)
        else:
            ino.last_write_time = filetime_now()
        ino.change_time = ino.last_write_time

    def forget_inode(self, ino: Inode) -> None:
        """An unlinked inode is no longer open or looked up: free it and its staging
        (not while names of its hard-link group are still on disk: they hold it)."""
        if not ino.dentries and not (ino.nlink and not ino.is_directory):
            self.inodes.pop(ino.ino, None)
            self.staging_area.release(ino)

    # -- tree edits ------------------------------------------------------------------------

    def create(self, parent: Dentry, name: str, mode: int, uid: int, gid: int,
               kind: Kind | str = Kind.FILE, target: str | None = None) -> Inode:
        self._check_freeze()
        now = filetime_now()
        ino = self.edits.create(parent, name, mode, uid, gid, kind, target, now)
        self.journal.append(J.Create(ino.dentries[0].path, str(Kind(kind)), mode, uid, gid,
                                     target, self.edits.sd_hex(ino), _times(ino), now))
        return ino

    def unlink(self, parent: Dentry, name: str) -> Inode:
        return self._remove(self.edits.unlink, J.Unlink, parent, name)

    def rmdir(self, parent: Dentry, name: str) -> Inode:
        return self._remove(self.edits.rmdir, J.Rmdir, parent, name)

    def _remove(self, edit, record: type[J.Unlink | J.Rmdir], parent: Dentry,
                name: str) -> Inode:
        self._check_freeze()
        path, now = _child_path(parent, name), filetime_now()
        ino = edit(parent, name, now)
        self.journal.append(record(path, now))
        return ino

    def rename(self, p_old: Dentry, old: str, p_new: Dentry, new: str, flags: int = 0
               ) -> Inode | None:
        """Returns the inode that lost its last name by being replaced, if any."""
        self._check_freeze()
        paths, now = (_child_path(p_old, old), _child_path(p_new, new)), filetime_now()
        replaced = self.edits.rename(p_old, old, p_new, new, flags, now)
        self.journal.append(J.Rename(*paths, flags, now))
        return replaced

    def link(self, ino: Inode, parent: Dentry, name: str) -> None:
        self._check_freeze()
        src, now = self._path_of(ino), filetime_now()
        self.edits.link(ino, parent, name, now)
        self.journal.append(J.Link(src, _child_path(parent, name), now))

    # -- metadata and streams --------------------------------------------------------------

    def set_times(self, ino: Inode, atime: int | None = None, mtime: int | None = None,
                  ctime_birth: int | None = None) -> None:
        self._check_freeze()
        self.edits.set_times(ino, atime, mtime, ctime_birth)
        if mtime is not None and is_staged(ino.data):
            self.staging_area.set_mtime(ino.data, mtime)
        self._record_meta(ino)

    def chmod(self, ino: Inode, mode: int) -> None:
        self._check_freeze()
        self.edits.chmod(ino, mode)
        self._record_meta(ino)

    def chown(self, ino: Inode, uid: int | None, gid: int | None) -> None:
        self._check_freeze()
        self.edits.chown(ino, uid, gid)
        self._record_meta(ino)

    def set_named_stream(self, ino: Inode, name: str, value: bytes) -> None:
        self._check_freeze()
        path = self.staging_area.store(value)
        self.edits.attach_staged(ino, name, path)
        ino.change_time = filetime_now()
        self.journal.append(J.Stage(self._path_of(ino), name, os.path.basename(path)))

    def remove_named_stream(self, ino: Inode, name: str) -> None:
        self._check_freeze()
        self.edits.remove_named_stream(ino, name)
        ino.change_time = filetime_now()
        self.journal.append(J.RmStream(self._path_of(ino), name))

    def set_ntfs_xattr(self, ino: Inode, name: str, value: bytes) -> None:
        """system.ntfs_* names, as ntfs-3g accepts them."""
        self._check_freeze()
        change = nx.decode(name, value)
        if isinstance(change, nx.SetReparse):
            if ino.nlink > 1:       # (names still on disk count too)
                raise FsError(errno.EMLINK)
            path = self.staging_area.store(change.data)
            self.edits.set_reparse(ino, change.tag, change.reserved, path)
            ino.change_time = filetime_now()
            self.journal.append(J.Reparse(self._path_of(ino), change.tag, change.reserved,
                                          os.path.basename(path)))
            return
        self.edits.apply_ntfs(ino, change)
        if isinstance(change, nx.SetTimes) and change.last_write is not None and \
                is_staged(ino.data):
            self.staging_area.set_mtime(ino.data, change.last_write)
        self._record_meta(ino)

    def remove_ntfs_xattr(self, ino: Inode, name: str) -> None:
        self._check_freeze()
        self.edits.remove_ntfs(ino, name)
        self._record_meta(ino)
        if name == nx.REPARSE:
            self.journal.append(J.Unreparse(self._path_of(ino)))


def _child_path(parent: Dentry, name: str) -> str:
    return parent.path.rstrip("/") + "/" + name


def _times(ino: Inode) -> list[int]:
    return [ino.creation_time, ino.last_access_time, ino.last_write_time]
