"""Read-write Operations: the read-only adapter plus the editing handlers, all
delegating to `wimfs.overlay.Overlay`. Changes are frozen while a commit runs."""

from __future__ import annotations

import errno
import functools
import logging
import os
import stat

import pyfuse3
import trio

from wimfs.errors import WimfsError
from wimfs.format.filetime import unix_ns_to_filetime
from wimfs.fuse.ops import Handle, WimOperations
from wimfs.image import ZERO_HASH, Dentry, Image, Inode, Stream
from wimfs.overlay import Kind, Overlay, ntfs_xattrs

log = logging.getLogger(__name__)

RW_TIMEOUT = 1.0
INLINE_COPY_UP = 64 << 10   # streams up to this size are copied up on the event loop


class RwOperations(WimOperations):
    def __init__(self, overlay: Overlay, case_insensitive: bool = False, threads: int = 0,
                 mountpoint: str = "") -> None:
        super().__init__(overlay.wim, [overlay.image], case_insensitive=case_insensitive,
                         threads=threads, mountpoint=mountpoint)
        self.overlay = overlay
        self.inodes = overlay.inodes           # shared: the overlay adds and drops inodes
        self.write_counts: dict[int, int] = {}
        self._copy_locks: dict[int, trio.Lock] = {}
        self._idle = trio.Event()
        self._idle.set()
        self.committing = False
        self._changing: dict = {}              # task -> changes it has in flight
        self._drained: trio.Event | None = None

    # -- plumbing ------------------------------------------------------------------

    def _image_for(self, ino: Inode) -> Image | None:
        return self.overlay.image

    async def _wait_commit(self) -> None:
        """Called first by every handler that changes the tree: wait while a commit runs,
        then count the change as in flight until its handler returns (`_changes`), so
        that a commit starts only once no change is half done (a change can await a
        copy-up on a worker thread, and another request is served meanwhile)."""
        while self.committing:
            await self._idle.wait()
        task = trio.lowlevel.current_task()
        self._changing[task] = self._changing.get(task, 0) + 1

    def _change_done(self) -> None:
        # The handler returned: whatever it counted (one task serves one request at a
        # time) is done.
        self._changing.pop(trio.lowlevel.current_task(), None)
        if not self._changing and self._drained is not None:
            self._drained.set()

    async def _attr(self, inode: Inode) -> pyfuse3.EntryAttributes:
        a = await super()._attr(inode)
        if not inode.dentries and not inode.is_directory:
            a.st_nlink = 0          # unlinked but still open
        a.entry_timeout = RW_TIMEOUT
        a.attr_timeout = RW_TIMEOUT
        return a

    def _dentry_of(self, ino_no: int) -> Dentry:
        ino = self._inode(ino_no)
        if not ino.dentries:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return ino.dentries[0]

    def _str(self, name: bytes) -> str:
        s = self._name(name)
        if s is None:
            raise pyfuse3.FUSEError(errno.EINVAL)
        return s

    def _count_lookup(self, ino: Inode) -> None:
        self.lookup_counts[ino.ino] = self.lookup_counts.get(ino.ino, 0) + 1

    def _maybe_free(self, ino: Inode) -> None:
        if not ino.dentries and not self.lookup_counts.get(ino.ino) and \
                not self.open_counts.get(ino.ino):
            self.overlay.forget_inode(ino)

    async def forget(self, inode_list):
        await super().forget(inode_list)
        for ino_no, _ in inode_list:
            ino = self.inodes.get(ino_no)
            if ino is not None:
                try:
                    self._maybe_free(ino)
                except Exception:  # forget must not raise
                    log.exception("forget %d", ino_no)

    # -- tree edits ----------------------------------------------------------------

    async def create(self, parent_inode, name, mode, flags, ctx):
        await self._wait_commit()
        parent = self._dentry_of(parent_inode)
        ino = self.overlay.create(parent, self._str(name), mode, ctx.uid, ctx.gid, Kind.FILE)
        attr = await self._attr(ino)
        self._count_lookup(ino)
        fh = self._open_handle(ino, ino.data, flags)
        return pyfuse3.FileInfo(fh=fh), attr

    async def mknod(self, parent_inode, name, mode, rdev, ctx):
        await self._wait_commit()
        if not stat.S_ISREG(mode):
            if not self.overlay.unix_mode:
                raise pyfuse3.FUSEError(errno.EPERM)
        parent = self._dentry_of(parent_inode)
        ino = self.overlay.create(parent, self._str(name), mode, ctx.uid, ctx.gid, Kind.FILE)
        if ino.unix is not None:
            ino.unix.rdev = rdev
        attr = await self._attr(ino)
        self._count_lookup(ino)
        return attr

    async def mkdir(self, parent_inode, name, mode, ctx):
        await self._wait_commit()
        parent = self._dentry_of(parent_inode)
        ino = self.overlay.create(parent, self._str(name), mode, ctx.uid, ctx.gid, Kind.DIR)
        attr = await self._attr(ino)
        self._count_lookup(ino)
        return attr

    async def symlink(self, parent_inode, name, target, ctx):
        await self._wait_commit()
        parent = self._dentry_of(parent_inode)
        ino = self.overlay.create(parent, self._str(name), 0o777, ctx.uid, ctx.gid,
                                  Kind.SYMLINK, target=os.fsdecode(target))
        attr = await self._attr(ino)
        self._count_lookup(ino)
        return attr

    async def unlink(self, parent_inode, name, ctx):
        await self._wait_commit()
        ino = self.overlay.unlink(self._dentry_of(parent_inode), self._str(name))
        self._maybe_free(ino)

    async def rmdir(self, parent_inode, name, ctx):
        await self._wait_commit()
        ino = self.overlay.rmdir(self._dentry_of(parent_inode), self._str(name))
        self._maybe_free(ino)

    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags,
                     ctx):
        await self._wait_commit()
        replaced = self.overlay.rename(self._dentry_of(parent_inode_old), self._str(name_old),
                                       self._dentry_of(parent_inode_new), self._str(name_new),
                                       flags)
        if replaced is not None:
            self._maybe_free(replaced)

    async def link(self, inode, new_parent_inode, new_name, ctx):
        await self._wait_commit()
        ino = self._inode(inode)
        self.overlay.link(ino, self._dentry_of(new_parent_inode), self._str(new_name))
        attr = await self._attr(ino)
        self._count_lookup(ino)
        return attr

    # -- attributes ----------------------------------------------------------------

    async def setattr(self, inode, attr, fields, fh, ctx):
        await self._wait_commit()
        ino = self._inode(inode)
        if fields.update_size:
            if ino.is_directory:
                raise pyfuse3.FUSEError(errno.EISDIR)
            await self._truncate(ino, attr.st_size)
        if fields.update_mode:
            self.overlay.chmod(ino, attr.st_mode)
        if fields.update_uid or fields.update_gid:
            uid = attr.st_uid if fields.update_uid else None
            gid = attr.st_gid if fields.update_gid else None
            if ino.unix is None:
                # No UNIX data: owners are not stored. Like ntfs-3g's default ("silent"),
                # accept and ignore the change, so that `cp -a` / `tar x` as root work.
                pass
            else:
                self.overlay.chown(ino, uid, gid)
        if fields.update_atime or fields.update_mtime:
            self.overlay.set_times(
                ino,
                unix_ns_to_filetime(attr.st_atime_ns) if fields.update_atime else None,
                unix_ns_to_filetime(attr.st_mtime_ns) if fields.update_mtime else None)
        return await self._attr(ino)

    async def _truncate(self, ino: Inode, size: int) -> None:
        stream = ino.data
        if stream is None:
            stream = ino.data = Stream("", ZERO_HASH, None, 0)
        await self._stage(ino, "", stream, keep=size > 0)
        self.overlay.truncate_staged(stream, size)
        self.overlay.note_data_write(ino)

    async def _stage(self, ino: Inode, sname: str, stream: Stream, keep: bool = True) -> None:
        """Copy-on-write: make sure the stream lives in a staging file."""
        if self.overlay.is_staged(stream):
            return
        small = stream.size <= INLINE_COPY_UP and (
            stream.blob is None or not stream.blob.rdesc.is_solid)
        if (not keep or small) and id(stream) not in self._copy_locks:
            # Nothing to copy, or a small file outside solid resources (whose chunks are
            # 64 MiB): cheaper here than a trip to a worker thread and back (no await, so
            # no other request sees it half done). Not while a worker copies the same
            # stream up: that one finishes first.
            self.overlay.finish_copy_up(ino, sname, stream,
                                        self.overlay.copy_up(stream, keep))
            return
        lock = self._copy_locks.setdefault(id(stream), trio.Lock())
        async with lock:
            if self.overlay.is_staged(stream):
                return
            path = await trio.to_thread.run_sync(self.overlay.copy_up, stream, keep,
                                                 limiter=self.limiter)
            self.overlay.finish_copy_up(ino, sname, stream, path)
        self._copy_locks.pop(id(stream), None)

    # -- files ----------------------------------------------------------------------

    def _open_handle(self, ino: Inode, stream: Stream | None, flags: int) -> int:
        writable = bool(flags & (os.O_WRONLY | os.O_RDWR))
        fh = self._new_fh(Handle(ino, stream, self._path(ino), writable))
        self._count_open(ino.ino, 1)
        if writable:
            self.write_counts[ino.ino] = self.write_counts.get(ino.ino, 0) + 1
        return fh

    async def open(self, inode, flags, ctx):
        ino = self._inode(inode)
        if ino.is_directory:
            raise pyfuse3.FUSEError(errno.EISDIR)
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC):
            await self._wait_commit()
        if flags & os.O_TRUNC and flags & (os.O_WRONLY | os.O_RDWR):
            await self._truncate(ino, 0)
        fh = self._open_handle(ino, ino.data, flags)
        return pyfuse3.FileInfo(fh=fh, keep_cache=False)

    async def _read_stream(self, h, stream, off, size):
        if stream is not None and self.overlay.is_staged(stream):
            return await trio.to_thread.run_sync(self.overlay.read, stream, off, size,
                                                 limiter=self.limiter)
        if stream is not None and stream.blob is not None:
            self.reader = self.overlay.wim.reader
        return await super()._read_stream(h, stream, off, size)

    async def write(self, fh, off, buf):
        h = self.handles.get(fh)
        if not isinstance(h, Handle):
            raise pyfuse3.FUSEError(errno.EBADF)
        await self._wait_commit()
        ino = h.inode
        if ino.data is None:
            ino.data = Stream("", ZERO_HASH, None, 0)
        stream = ino.data
        h.stream = stream
        await self._stage(ino, "", stream)
        n = self.overlay.write(stream, off, buf)
        self.overlay.note_data_write(ino)
        return n

    async def release(self, fh):
        h = self.handles.pop(fh, None)
        if isinstance(h, Handle):
            self._count_open(h.inode.ino, -1)
            if h.writable:
                w = self.write_counts.get(h.inode.ino, 1) - 1
                if w > 0:
                    self.write_counts[h.inode.ino] = w
                else:
                    self.write_counts.pop(h.inode.ino, None)
                    stream = h.inode.data
                    if h.inode.dentries and stream is not None and \
                            self.overlay.is_staged(stream):
                        # Its last writer is gone: compress it now, not in the commit.
                        self.overlay.precompress(stream.source.path)
            self._maybe_free(h.inode)

    async def fsync(self, fh, datasync):
        h = self.handles.get(fh)
        stream = h.stream if isinstance(h, Handle) else None
        await trio.to_thread.run_sync(self.overlay.fsync, stream, limiter=self.limiter)

    async def fsyncdir(self, fh, datasync):
        await trio.to_thread.run_sync(self.overlay.fsync, None, limiter=self.limiter)

    async def access(self, inode, mode, ctx):
        self._inode(inode)
        return True

    # -- xattrs ------------------------------------------------------------------------

    async def getxattr(self, inode, name, ctx):
        ino = self._inode(inode)
        if name.startswith(b"user."):
            _sname, stream = self._named_stream(ino, name)
            if stream is not None and self.overlay.is_staged(stream):
                return await trio.to_thread.run_sync(self.overlay.read, stream, 0,
                                                     stream.size + 1, limiter=self.limiter)
        elif name == b"system.ntfs_reparse_data" and ino.is_reparse_point and \
                self.overlay.is_staged(ino.reparse):
            data = await trio.to_thread.run_sync(self.overlay.read, ino.reparse, 0,
                                                 ino.reparse.size + 1, limiter=self.limiter)
            return ntfs_xattrs.encode(ntfs_xattrs.REPARSE, ino, None, data)
        self.reader = self.overlay.wim.reader
        return await super().getxattr(inode, name, ctx)

    async def setxattr(self, inode, name, value, ctx):
        await self._wait_commit()
        ino = self._inode(inode)
        if name.startswith(b"user."):
            self.overlay.set_named_stream(ino, self._str(name[5:]), bytes(value))
        elif name.startswith(b"system.ntfs_"):
            self.overlay.set_ntfs_xattr(ino, name.decode("ascii", "replace"), bytes(value))
            if name in (b"system.ntfs_reparse_data", b"system.ntfs_attrib",
                        b"system.ntfs_attrib_be"):
                self._invalidate_names(ino)
        else:
            raise pyfuse3.FUSEError(errno.EOPNOTSUPP)

    def _invalidate_names(self, ino: Inode) -> None:
        """The file's type or mode changed (reparse point set or removed): make the kernel
        look its names up again instead of trusting its cached attributes."""
        for d in ino.dentries:
            if d.parent is None:
                continue
            try:
                pyfuse3.invalidate_entry_async(d.parent.inode.ino,
                                               d.name.encode("utf-8", "surrogatepass"))
            except Exception:  # best effort; the cache expires within a second anyway
                log.debug("invalidate_entry_async failed", exc_info=True)

    async def removexattr(self, inode, name, ctx):
        await self._wait_commit()
        ino = self._inode(inode)
        if name.startswith(b"user."):
            self.overlay.remove_named_stream(ino, self._str(name[5:]))
        elif name.startswith(b"system.ntfs_"):
            self.overlay.remove_ntfs_xattr(ino, name.decode("ascii", "replace"))
            if name == b"system.ntfs_reparse_data":
                self._invalidate_names(ino)
        else:
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)

    async def statfs(self, ctx):
        s = await super().statfs(ctx)
        st = os.statvfs(self.overlay.staging)
        s.f_bfree = st.f_bavail * st.f_frsize // s.f_frsize
        s.f_bavail = s.f_bfree
        s.f_blocks = max(s.f_blocks, s.f_bfree)
        s.f_ffree = s.f_favail = 1 << 30
        return s

    # -- commit -------------------------------------------------------------------------

    def open_for_write(self) -> set[int]:
        return set(self.write_counts)

    def open_for_write_paths(self) -> list[str]:
        # An open but unlinked file is not part of the image: it does not block a commit.
        return sorted(self._path(self.inodes[i]) for i in self.write_counts
                      if i in self.inodes and self.inodes[i].dentries)

    async def commit(self, force: bool = False, **kw):
        """Freeze changes, commit in a worker thread, thaw. Raises WimfsError."""
        if self.committing:
            raise WimfsError("a commit is already running")
        busy = self.open_for_write_paths()
        if busy and not force:
            raise WimfsError("files are open for writing: " + ", ".join(busy[:20]) +
                             (" ..." if len(busy) > 20 else "") + " (close them or use "
                             "--force)")
        self.committing = True
        self._idle = trio.Event()
        try:
            while self._changing:               # changes already past _wait_commit
                self._drained = trio.Event()
                await self._drained.wait()
        except BaseException:
            self.committing = False
            self._idle.set()
            raise
        finally:
            self._drained = None
        self.overlay.frozen = True
        try:
            keep_busy = set() if force else self.open_for_write()
            result = await trio.to_thread.run_sync(
                lambda: self.overlay.commit(open_for_write=lambda: keep_busy, **kw))
            self.wim = self.overlay.wim
            self.reader = self.overlay.wim.reader
            return result
        finally:
            self.overlay.frozen = False
            self.committing = False
            self._idle.set()



def _counted(fn):
    """End the in-flight count `_wait_commit` started, however the handler ends."""

    @functools.wraps(fn)
    async def wrapper(self, *args):
        try:
            return await fn(self, *args)
        finally:
            if self._changing:
                self._change_done()

    wrapper.guarded = True
    return wrapper


# Every handler that may call _wait_commit (open only for writing, the rest always).
for _name in ("create", "mknod", "mkdir", "symlink", "unlink", "rmdir", "rename", "link",
              "setattr", "open", "write", "setxattr", "removexattr"):
    setattr(RwOperations, _name, _counted(getattr(RwOperations, _name)))
