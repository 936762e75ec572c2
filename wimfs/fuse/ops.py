"""pyfuse3 Operations over the image model: inodes, attributes and errnos in,
FUSEErrors out. No format knowledge lives here.

Error boundary: every handler runs inside `_guard`; FUSEError passes through,
WimfsError/OSError map to their errno, anything else is logged with its
traceback and becomes EIO. No exception ever ends pyfuse3.main(). The guard is
applied by `GuardedOperations.__init_subclass__` to every pyfuse3 handler a subclass
defines, so a new handler cannot miss it (`forget` alone handles its own errors).
"""

from __future__ import annotations

import errno
import functools
import inspect
import logging
import os
import stat
from dataclasses import dataclass

import pyfuse3
import trio

from wimfs.errors import WimfsError
from wimfs.format import structs as S
from wimfs.format.metadata import DiskDentry
from wimfs.format.reparse import link_target
from wimfs.format.filetime import filetime_to_unix_ns
from wimfs.image import NAME_MAX, ZERO_HASH, Dentry, Image, Inode, Stream, name_too_long
from wimfs.fuse.compact import IMAGE_INO_SHIFT, CompactAnswers, DirList
from wimfs.fuse.prefetch import Prefetcher
from wimfs.image_tree import LazyTree
from wimfs.overlay import ntfs_xattrs
from wimfs.wim import Wim

log = logging.getLogger(__name__)

# Read-only: the tree cannot change while mounted, so the kernel may keep entries and
# attributes for the whole mount (a year: longer than any mount lives).
TIMEOUT = 365 * 86400.0
XATTR_MAX = 65536           # Linux limit for one xattr value


def image_ino_base(index: int) -> int:
    return index << IMAGE_INO_SHIFT

# Errnos that are answers to the caller (the name is too long, the directory is not
# empty, the file would be too large ...), not faults of the file system: logged at debug
# level. Anything else (EIO, ENOSPC, EROFS ...) is logged as an error.
ANSWERS = frozenset({
    errno.ENOENT, errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENOTEMPTY,
    errno.ENAMETOOLONG, errno.EINVAL, errno.EPERM, errno.EACCES, errno.EFBIG,
    errno.EMLINK, errno.ENODATA, errno.EOPNOTSUPP, errno.ERANGE, errno.E2BIG,
    errno.EBUSY, errno.EXDEV, errno.ELOOP})


def _reply(name: str, exc: BaseException, err: int) -> pyfuse3.FUSEError:
    """The FUSEError for `err`, logged at the level its kind deserves."""
    log.log(logging.DEBUG if err in ANSWERS else logging.ERROR, "%s: %s", name, exc)
    return pyfuse3.FUSEError(err)


def _guard(fn):
    """The one error boundary between pyfuse3 and our code."""

    @functools.wraps(fn)
    async def wrapper(self, *args):
        try:
            return await fn(self, *args)
        except pyfuse3.FUSEError:
            raise
        except (WimfsError, OSError) as exc:
            raise _reply(fn.__name__, exc, exc.errno or errno.EIO) from None
        except Exception:
            log.exception("internal error in %s%r", fn.__name__, args)
            raise pyfuse3.FUSEError(errno.EIO) from None

    wrapper.guarded = True
    return wrapper


HANDLERS = frozenset(n for n, f in vars(pyfuse3.Operations).items()
                     if inspect.iscoroutinefunction(f))
UNGUARDED = frozenset({"forget"})     # pyfuse3: must not raise; catches its own errors


class GuardedOperations(pyfuse3.Operations):
    """Wraps every pyfuse3 handler a subclass defines in `_guard`."""

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        for name in HANDLERS - UNGUARDED:
            fn = cls.__dict__.get(name)
            if fn is not None and not getattr(fn, "guarded", False):
                setattr(cls, name, _guard(fn))


async def _wait_future(fut) -> None:
    """Wait for a concurrent.futures.Future from trio without a worker thread."""
    if fut.done():
        return
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()

    def wake(_f) -> None:
        try:
            token.run_sync_soon(done.set)
        except trio.RunFinishedError:
            pass

    fut.add_done_callback(wake)
    await done.wait()


@dataclass(slots=True)
class Handle:
    inode: Inode | None     # None: a plain file of a compact tree, opened without a view
    stream: Stream | None
    path: str
    writable: bool = False
    number: int = 0         # (the inode number, for messages, when `inode` is None)


class WimOperations(CompactAnswers, GuardedOperations):
    """Read-only view of one image, or of every image as numbered top-level folders."""

    supports_dot_lookup = True
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, wim: Wim, images: list[Image], all_images: bool = False,
                 case_insensitive: bool = False, threads: int = 0,
                 mountpoint: str = "", indexes: list[int] | None = None) -> None:
        """One image (`images[0]`), or with `all_images` the images of `indexes` as
        numbered folders: image N is opened when its folder is entered, its inode numbers
        are N << 32 + 1, ... (the folder's own before that: a placeholder).

        An image not loaded whole (a lazily loaded one) is served from its compact tree
        (wimfs.image_tree): the inode objects handlers see are made per request from the
        metadata resource and not kept; one loaded whole, from its objects."""
        super().__init__()
        self.wim = wim
        self.reader = wim.reader
        self.open_counts: dict[int, int] = {}    # inode number -> open handles
        self.read_requests = 0
        self.prefetch = Prefetcher(self.reader, pyfuse3.notify_store, self.open_counts)
        self.case_insensitive = case_insensitive
        self.mountpoint = os.path.abspath(mountpoint) if mountpoint else ""
        self.limiter = trio.CapacityLimiter(threads or os.cpu_count() or 2)
        self.uid = os.getuid()
        self.gid = os.getgid()
        self.lookup_counts: dict[int, int] = {}
        self.handles: dict[int, Handle | list] = {}
        self._next_fh = 1
        self._rw_flags = os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND | os.O_CREAT
        self.all_images = all_images
        self.images: dict[int, Image] = {}
        self._single: LazyTree | None = None
        if all_images:
            self._placeholders: dict[int, Inode] = {}
            self._fake_root(indexes if indexes is not None else [i.index for i in images])
            for img in images:
                self._adopt(img)
        else:
            self.images[images[0].index] = images[0]
            self.root = images[0].root
            tree = images[0].tree
            self._single = self._compact(images[0])
            # The inode objects by number (none for a compact tree).
            self.inodes = {} if self._single is not None else tree.inodes \
                if tree is not None else {i.ino: i for i in images[0].inodes}

    def _fake_root(self, indexes: list[int]) -> None:
        fake = DiskDentry("", "", S.FILE_ATTRIBUTE_DIRECTORY, -1, 0, 0, 0, 0, ZERO_HASH, 0,
                          0, 0, 0, 0, b"", [], 0)
        root_inode = Inode(pyfuse3.ROOT_INODE, fake)
        self.root = Dentry("", "", root_inode, None)
        root_inode.dentries.append(self.root)
        root_inode.nlink = 2 + len(indexes)
        self.inodes = {root_inode.ino: root_inode}
        for i in indexes:
            ph = Inode(image_ino_base(i) + 1, fake)
            ph.nlink = 2
            ph.dentries.append(Dentry(str(i), "", ph, None))
            self._placeholders[i] = ph
            self.root.children[str(i)] = ph.dentries[0]   # type: ignore[index]

    def _adopt(self, img: Image) -> None:
        """Image `img` in its folder (a compact tree's root is numbered as the folder's
        placeholder, which stays in the root's entries: `_inode` finds the image)."""
        self.images[img.index] = img
        if self._compact(img) is None:
            self.root.children[str(img.index)] = img.root        # type: ignore[index]

    def _load_image(self, index: int) -> Image:
        """Image `index` of an all-images mount, opened on first entry into its folder."""
        img = self.images.get(index)
        if img is None:
            if index not in self._placeholders:
                raise pyfuse3.FUSEError(errno.ENOENT)
            img = self.wim.image(index, ino_start=image_ino_base(index) + 1, lazy=True)
            self._adopt(img)
        return img

    @property
    def total_inodes(self) -> int:
        """The inodes parsed so far (a lazily loaded image is not counted ahead)."""
        n = len(self.inodes)
        for img in self.images.values():
            tree = self._compact(img)
            if tree is not None:
                n += tree.visited()
            elif self.all_images and img.tree is not None:
                n += len(img.tree.inodes)
        return n

    @functools.cached_property
    def total_bytes(self) -> int:
        """The size of the data the WIM holds (each blob once, uncompressed)."""
        blobs = self.wim.blob_table.blobs
        total = getattr(blobs, "total_size", None)      # a LazyBlobs: without descriptors
        return total() if total is not None else sum(b.size for b in blobs.values())

    # -- helpers ----------------------------------------------------------------

    def _image_for(self, ino: Inode) -> Image | None:
        if self.all_images:
            return self.images.get(ino.ino >> IMAGE_INO_SHIFT)
        return next(iter(self.images.values()))

    def _inode(self, ino: int, enter: bool = True) -> Inode:
        """The inode numbered `ino`; in an all-images mount the folder of an image not
        opened yet is its placeholder, or with `enter` the image is opened."""
        table, tree = self.inodes, self._single
        if self.all_images and ino >> IMAGE_INO_SHIFT:
            index = ino >> IMAGE_INO_SHIFT
            ph = self._placeholders.get(index)
            if not enter and index not in self.images and ph is not None and ph.ino == ino:
                return ph
            img = self._load_image(index)
            tree = self._compact(img)
            if tree is None:
                table = img.tree.inodes if img.tree is not None else {
                    i.ino: i for i in img.inodes}
        try:
            return tree.inode(ino) if tree is not None else table[ino]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None

    def _dentry(self, inode: Inode) -> Dentry:
        if not inode.dentries:
            raise pyfuse3.FUSEError(errno.ENOENT)   # removed while still referenced
        return inode.dentries[0]

    def _path(self, inode: Inode) -> str:
        tree = self._tree_of(inode.ino)
        d = inode.dentries[0] if inode.dentries else None
        if tree is not None:
            try:
                path = tree.path(inode.ino)
            except (KeyError, WimfsError):
                path = f"<inode {inode.ino}>"
        elif d is None:
            return f"<inode {inode.ino}>"
        else:
            path = d.path
        if self.all_images and inode.ino >> IMAGE_INO_SHIFT:
            return f"/{inode.ino >> IMAGE_INO_SHIFT}{path}".rstrip("/") or "/"
        return path

    def _is_link(self, inode: Inode) -> bool:
        return inode.is_reparse_point and inode.reparse_tag in (S.IO_REPARSE_TAG_SYMLINK,
                                                                S.IO_REPARSE_TAG_MOUNT_POINT)

    async def _link_target(self, inode: Inode) -> bytes | None:
        """UNIX target of a symlink/junction inode, or None if it is not a valid link."""
        if not inode.link_parsed:
            if inode.reparse is not None:   # a view's descriptor: looked up here, on the
                _ = inode.reparse.blob      # event loop, not made twice by two threads
            await trio.to_thread.run_sync(inode.link, self._read_small_blob,
                                          limiter=self.limiter)
        link = inode.link(self._read_small_blob)
        if not link:
            return None
        root = self.mountpoint
        if self.all_images and inode.ino >> IMAGE_INO_SHIFT:
            root = f"{root}/{inode.ino >> IMAGE_INO_SHIFT}"
        return os.fsencode(link_target(link, inode.rp_flags, root))

    def _read_small_blob(self, blob) -> bytes:
        try:
            return self.reader.read_all(blob)
        except WimfsError as exc:
            log.error("cannot read reparse data: %s", exc)
            return b""

    async def _attr(self, inode: Inode) -> pyfuse3.EntryAttributes:
        size = inode.size
        unix = inode.unix
        owner = None
        if unix is not None:
            mode = unix.mode
            owner = (unix.uid, unix.gid, unix.rdev)
            if stat.S_ISLNK(mode) or (not stat.S_IFMT(mode)):
                target = await self._link_target(inode) if self._is_link(inode) else None
                if target is not None:
                    mode = stat.S_IFLNK | stat.S_IMODE(mode)
                    size = len(target)
                elif not stat.S_IFMT(mode):
                    mode |= stat.S_IFDIR if inode.is_directory else stat.S_IFREG
        else:
            target = await self._link_target(inode) if self._is_link(inode) else None
            if target is not None and not inode.is_directory:
                mode = stat.S_IFLNK | 0o777
                size = len(target)
            else:
                mode = self._plain_mode(inode.attributes)
        a = self._fill(inode.ino, mode, owner, size, inode.nlink, inode.attributes,
                       inode.last_access_time, inode.last_write_time, inode.change_time)
        if self.all_images and inode is self._placeholders.get(inode.ino >> IMAGE_INO_SHIFT):
            a.attr_timeout = 1.0    # the folder of an image not opened yet: ask again soon
        return a

    @staticmethod
    def _plain_mode(attributes: int) -> int:
        """The mode of an inode without UNIX data that is not a link."""
        if attributes & S.FILE_ATTRIBUTE_DIRECTORY and \
                not attributes & S.FILE_ATTRIBUTE_REPARSE_POINT:
            return stat.S_IFDIR | 0o755
        if attributes & S.FILE_ATTRIBUTE_READONLY:
            return stat.S_IFREG | 0o444
        return stat.S_IFREG | 0o644

    def _fill(self, ino: int, mode: int, owner: tuple[int, int, int] | None, size: int,
              nlink: int, attributes: int, atime: int, mtime: int,
              ctime: int | None) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = ino
        a.generation = 0
        a.entry_timeout = TIMEOUT
        a.attr_timeout = TIMEOUT
        a.st_uid, a.st_gid, a.st_rdev = owner if owner is not None else (self.uid, self.gid, 0)
        a.st_mode = mode
        a.st_nlink = nlink or 1
        is_dir = attributes & S.FILE_ATTRIBUTE_DIRECTORY and \
            not attributes & S.FILE_ATTRIBUTE_REPARSE_POINT
        a.st_size = 0 if is_dir else size
        a.st_blksize = 4096
        a.st_blocks = (a.st_size + 511) // 512
        a.st_atime_ns = filetime_to_unix_ns(atime)
        a.st_mtime_ns = mtime_ns = filetime_to_unix_ns(mtime)
        a.st_ctime_ns = mtime_ns if ctime is None else filetime_to_unix_ns(ctime)
        return a

    # -- lookups and attributes --------------------------------------------------

    def _name(self, name: bytes) -> str | None:
        try:
            return name.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return None

    def _child(self, parent: Inode, name: bytes) -> Inode | None:
        if name == b".":
            return parent
        tree = self._tree_of(parent.ino)
        if tree is not None:
            return self._tree_child(tree, parent, name)
        d = self._dentry(parent)
        if name == b"..":
            if parent.ino == pyfuse3.ROOT_INODE:
                return self.root.inode
            if self.all_images and d.parent is None:
                return self.root.inode
            return (d.parent or self.root).inode
        s = self._name(name)
        if s is None:
            return None
        if parent.ino == pyfuse3.ROOT_INODE and d is not self.root:
            d = self.root
        child = d.lookup(s, self.case_insensitive) if d.children is not None else None
        if child is not None and self.all_images and d is self.root:
            return self._inode(child.inode.ino, enter=False)    # a placeholder, or the image
        return child.inode if child is not None else None

    async def lookup(self, parent_inode, name, ctx=None):
        parent = self._inode(parent_inode)
        if not parent.is_directory:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        if len(name) > NAME_MAX and name_too_long(name.decode("utf-8", "surrogateescape")):
            raise pyfuse3.FUSEError(errno.ENAMETOOLONG)  # UTF-8 bytes >= UTF-16 units
        child = self._child(parent, name)
        if child is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        attr = await self._attr(child)
        if name not in (b".", b"..") and self._tree_of(child.ino) is None:
            # (a compact tree's inodes are never freed: nothing to count)
            self.lookup_counts[child.ino] = self.lookup_counts.get(child.ino, 0) + 1
        return attr

    async def forget(self, inode_list):
        # Must not raise (pyfuse3 contract). Inodes of a read-only image are never freed.
        for ino, n in inode_list:
            left = self.lookup_counts.get(ino, 0) - n
            if left > 0:
                self.lookup_counts[ino] = left
            else:
                self.lookup_counts.pop(ino, None)

    async def getattr(self, inode, ctx=None):
        return await self._attr(self._inode(inode, enter=False))

    async def setattr(self, inode, attr, fields, fh, ctx):
        raise pyfuse3.FUSEError(errno.EROFS)

    async def readlink(self, inode, ctx):
        target = await self._link_target(self._inode(inode))
        if target is None:
            raise pyfuse3.FUSEError(errno.EINVAL)
        return target

    async def access(self, inode, mode, ctx):
        self._inode(inode, enter=False)
        if mode & os.W_OK:
            raise pyfuse3.FUSEError(errno.EROFS)
        return True

    # -- directories -------------------------------------------------------------

    def _new_fh(self, value) -> int:
        fh = self._next_fh
        self._next_fh += 1
        self.handles[fh] = value
        return fh

    async def opendir(self, inode, ctx):
        ino = self._inode(inode)
        if not ino.is_directory:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        tree = self._tree_of(inode)
        if tree is not None:
            return self._new_fh(DirList(tree, tree.entries(ino.ino)))
        d = self.root if inode == pyfuse3.ROOT_INODE else self._dentry(ino)
        return self._new_fh(list((d.children or {}).items()))

    async def readdir(self, fh, start_id, token):
        entries = self.handles.get(fh)
        if isinstance(entries, DirList):
            return await self._readdir_compact(entries, start_id, token)
        if not isinstance(entries, list):
            raise pyfuse3.FUSEError(errno.EBADF)
        for pos in range(start_id, len(entries)):
            name, child = entries[pos]
            inode = child.inode
            if self.all_images and inode.ino >> IMAGE_INO_SHIFT and \
                    inode is self._placeholders.get(inode.ino >> IMAGE_INO_SHIFT):
                inode = self._inode(inode.ino, enter=False)     # (the image, once opened)
            attr = await self._attr(inode)
            if not pyfuse3.readdir_reply(token, name.encode("utf-8", "surrogatepass"), attr,
                                         pos + 1):
                break
            self.lookup_counts[child.inode.ino] = self.lookup_counts.get(child.inode.ino, 0) + 1

    async def releasedir(self, fh):
        self.handles.pop(fh, None)

    # -- files -------------------------------------------------------------------

    async def open(self, inode, flags, ctx):
        tree = self._tree_of(inode)
        try:
            plain = tree.plain_data(inode) if tree is not None else None
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None
        if plain is not None:           # (most files of a compact tree: no view needed)
            ino, (is_dir, stream) = None, plain
        else:
            ino = self._inode(inode)
            is_dir, stream = ino.is_directory, ino.data
        if flags & self._rw_flags:
            raise pyfuse3.FUSEError(errno.EROFS)
        if is_dir:
            raise pyfuse3.FUSEError(errno.EISDIR)
        # The path is only for error messages: worked out when one is logged.
        h = Handle(ino, stream, "", number=inode)
        if stream is not None and stream.missing:
            # Its size is unknown too (it shows as 0): fail the open, not just reads.
            log.error("%s: data is missing from the WIM (blob %s; a split WIM part not "
                      "given with --ref?)", self._handle_path(h), stream.hash.hex())
            raise pyfuse3.FUSEError(errno.EIO)
        self._count_open(inode, 1)
        if plain is not None and stream is not None:
            self.prefetch.opened(tree, inode)
        return pyfuse3.FileInfo(fh=self._new_fh(h), keep_cache=True)

    async def read(self, fh, off, size):
        self.read_requests += 1
        h = self.handles.get(fh)
        if not isinstance(h, Handle):
            raise pyfuse3.FUSEError(errno.EBADF)
        return await self._read_stream(h, h.stream, off, size)

    async def _read_stream(self, h: Handle, stream: Stream | None, off: int, size: int):
        if stream is None:
            return b""
        if stream.missing:
            log.error("%s: data is missing from the WIM (blob %s; split WIM without --ref?)",
                      self._handle_path(h), stream.hash.hex())
            raise pyfuse3.FUSEError(errno.EIO)
        blob = stream.blob
        if blob is None or off >= blob.size:
            return b""
        try:
            if off == 0 and size >= blob.size and self.reader.is_one_chunk(blob):
                return self.reader.read(blob, 0, blob.size)     # most files: no cache
            data = self.reader.read_cached(blob, off, size)
            if data is None:
                rdesc = blob.rdesc
                if rdesc.is_compressed and (rdesc.is_solid or
                                            blob.size > 2 * rdesc.chunk_size):
                    # Decompression runs on the reader's worker threads (libwim releases
                    # the GIL); the event loop waits without a thread hop of its own.
                    # Small files (one or two chunks) are cheaper to decompress right here.
                    for fut in self.reader.schedule(blob, off, size):
                        await _wait_future(fut)
                data = self.reader.read(blob, off, size)
        except WimfsError as exc:
            log.error("%s: %s", self._handle_path(h), exc)
            raise pyfuse3.FUSEError(errno.EIO) from None
        return data

    async def release(self, fh):
        h = self.handles.pop(fh, None)
        if isinstance(h, Handle):
            self._count_open(h.number, -1)

    def _count_open(self, ino: int, delta: int) -> None:
        """One handle of inode `ino` more (1) or less (-1) in `open_counts`."""
        n = self.open_counts.get(ino, 0) + delta
        if n > 0:
            self.open_counts[ino] = n
        else:
            self.open_counts.pop(ino, None)

    async def flush(self, fh):
        # Nothing is buffered here: ENOSYS makes the kernel stop sending FLUSH at all,
        # which saves one request per close().
        raise pyfuse3.FUSEError(errno.ENOSYS)

    # -- extended attributes -----------------------------------------------------

    async def listxattr(self, inode, ctx):
        ino = self._inode(inode)
        # Like ntfs-3g, the system.ntfs_* names are readable but not listed, so that
        # cp -a and tar --xattrs do not try to copy them onto other filesystems.
        return [b"user." + n.encode("utf-8", "surrogatepass") for n in ino.named_streams]

    def _named_stream(self, ino: Inode, xattr: bytes) -> tuple[str | None, Stream | None]:
        """The named stream behind a `user.<name>` xattr, if any."""
        sname = self._name(xattr[5:])
        return sname, (ino.named_streams.get(sname) if sname is not None else None)

    async def getxattr(self, inode, name, ctx):
        ino = self._inode(inode)
        if name.startswith(b"user."):
            sname, stream = self._named_stream(ino, name)
            if stream is None:
                raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
            if stream.size > XATTR_MAX:
                raise pyfuse3.FUSEError(errno.E2BIG)
            if stream.missing:
                raise pyfuse3.FUSEError(errno.EIO)
            if stream.blob is None:
                return b""
            try:
                return await trio.to_thread.run_sync(self.reader.read_all, stream.blob,
                                                     limiter=self.limiter)
            except WimfsError as exc:
                log.error("%s: stream %s: %s", self._path(ino), sname, exc)
                raise pyfuse3.FUSEError(errno.EIO) from None
        value = await self._ntfs_xattr(ino, name)
        if value is None:
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
        return value

    async def _ntfs_xattr(self, ino: Inode, name: bytes) -> bytes | None:
        sname = name.decode("ascii", "replace")
        if sname not in ntfs_xattrs.NAMES:
            return None
        img = self._image_for(ino)
        sd = img.security_descriptor(ino) if img and sname == ntfs_xattrs.ACL else None
        data = b""
        if sname == ntfs_xattrs.REPARSE and ino.reparse is not None and \
                ino.reparse.blob is not None:
            data = await trio.to_thread.run_sync(self.reader.read_all, ino.reparse.blob,
                                                 limiter=self.limiter)
        return ntfs_xattrs.encode(sname, ino, sd, data)

    async def setxattr(self, inode, name, value, ctx):
        raise pyfuse3.FUSEError(errno.EROFS)

    async def removexattr(self, inode, name, ctx):
        raise pyfuse3.FUSEError(errno.EROFS)

    # -- file system -------------------------------------------------------------

    async def statfs(self, ctx):
        s = pyfuse3.StatvfsData()
        s.f_bsize = 4096
        s.f_frsize = 4096
        s.f_blocks = max(1, -(-self.total_bytes // 4096))
        s.f_bfree = 0
        s.f_bavail = 0
        s.f_files = self.total_inodes
        s.f_ffree = 0
        s.f_favail = 0
        s.f_namemax = NAME_MAX
        return s
