"""Apply (extract) an image to a directory.

Every file is created relative to an open directory fd with O_NOFOLLOW|O_EXCL (and
directories opened with O_NOFOLLOW|O_DIRECTORY), and images holding names the loader
refused ('..', '/', NUL) are refused up front, so nothing is ever written outside DIR.

Hard links stay hard links, symlinks/junctions become symlinks (fixed absolute targets
point into DIR, as wimlib does), times are restored; with `unix_data` the UNIX
owner/mode/device numbers from wimlib's tagged items. When DIR is on ntfs-3g (it offers
system.ntfs_attrib), attributes, security descriptors, DOS names, reparse data, times
and named streams are written as ntfs-3g xattrs.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import struct
from collections import OrderedDict

from wimfs.xattrs import (NTFS_ACL, NTFS_ATTRIB, NTFS_DOS_NAME, NTFS_REPARSE, NTFS_TIMES,
                          xattr_or_none)
from wimfs.errors import WimCorruptError, WimfsError
from wimfs.format import structs as S
from wimfs.format.reparse import full_reparse_buffer, link_target
from wimfs.format.xmlinfo import filetime_to_unix_ns
from wimfs.image import Dentry, Image, Inode
from wimfs.progress import Progress, ProgressCallback

log = logging.getLogger(__name__)

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
READ_PIECE = 1 << 20


class UnsafeImageError(WimCorruptError):
    pass


def check_names(img: Image) -> None:
    """Refuse images whose names could lead outside the target directory."""
    bad = [n for n in img.invalid_names if not n.endswith("(duplicate)")]
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise UnsafeImageError(f"image {img.index} contains unsafe file names (e.g. "
                               f"{bad[0]}{more}: '..', '/', NUL or empty); refusing to apply")
    for n in img.invalid_names:
        log.warning("image %d: skipping duplicate entry %s", img.index, n)


def _ns(ft: int) -> int:
    return max(filetime_to_unix_ns(ft), 0) if ft else 0


class _DirFds:
    """Directory fds by path (tuple of names from DIR), opened component by component
    with O_NOFOLLOW from DIR's fd; a few are kept open."""

    def __init__(self, root_fd: int, size: int = 128):
        self.root_fd = root_fd
        self.size = size
        self.cache: OrderedDict[tuple[str, ...], int] = OrderedDict()

    def get(self, parts: tuple[str, ...]) -> int:
        if not parts:
            return self.root_fd
        fd = self.cache.get(parts)
        if fd is not None:
            self.cache.move_to_end(parts)
            return fd
        parent = self.get(parts[:-1])
        fd = os.open(parts[-1], DIR_FLAGS, dir_fd=parent)
        self.cache[parts] = fd
        while len(self.cache) > self.size:
            # Never close an ancestor we are about to use: evict the oldest.
            _, old = self.cache.popitem(last=False)
            os.close(old)
        return fd

    def close(self) -> None:
        for fd in self.cache.values():
            os.close(fd)
        self.cache.clear()


def _parts(d: Dentry) -> tuple[str, ...]:
    out = []
    while d.parent is not None:
        out.append(d.name)
        d = d.parent
    return tuple(reversed(out))


class Applier:
    def __init__(self, wim, img: Image, dest: str, unix_data: bool = False,
                 progress: ProgressCallback | None = None,
                 altroot_fix: bool | None = None):
        self.wim = wim
        self.img = img
        self.dest = os.path.abspath(dest)
        self.unix_data = unix_data
        self.progress = Progress(label="applying", callback=progress)
        self.rpfix = bool(wim.header.flags & S.HDR_FLAG_RP_FIX) if altroot_fix is None \
            else altroot_fix
        self.warnings = 0
        self.ntfs = False

    def warn(self, msg: str) -> None:
        self.warnings += 1
        log.warning("%s", msg)

    def run(self) -> None:
        check_names(self.img)
        missing = sum(i.missing_blobs for i in self.img.inodes)
        if missing:
            raise WimCorruptError(f"image {self.img.index} references {missing} stream(s) "
                                  "missing from the WIM (a split WIM? pass its parts with "
                                  "--ref)")
        os.makedirs(self.dest, exist_ok=True)
        root_fd = os.open(self.dest, DIR_FLAGS)
        try:
            self.ntfs = xattr_or_none(self.dest, NTFS_ATTRIB) is not None
            self.fds = _DirFds(root_fd)
            try:
                self._apply(root_fd)
            finally:
                self.fds.close()
        finally:
            os.close(root_fd)
        self.progress.finish()

    # -- phases --

    def _apply(self, root_fd: int) -> None:
        dirs: list[Dentry] = []
        files: list[Dentry] = []
        links: list[Dentry] = []
        for d in self.img.walk():
            if d.parent is None:
                continue
            ino = d.inode
            if ino.is_directory:
                dirs.append(d)
            elif ino.is_reparse_point:
                links.append(d)
            else:
                files.append(d)
        # 1. directories (parents come first in walk order)
        for d in dirs:
            parent = self.fds.get(_parts(d.parent))
            try:
                os.mkdir(d.name, 0o755, dir_fd=parent)
            except FileExistsError:
                st = os.stat(d.name, dir_fd=parent, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    raise WimfsError(f"{self.dest}{d.path}: exists and is not a directory") \
                        from None
        # 2. files, in the order their data lies in the WIM (sequential reads), one per
        # inode; the other names of an inode become hard links.
        first: dict[int, Dentry] = {}
        order: list[Inode] = []
        for d in files:
            if id(d.inode) not in first:
                first[id(d.inode)] = d
                order.append(d.inode)
        self.progress.total = sum(i.size for i in order)

        def where(ino: Inode):
            s = ino.data
            if s is None or s.blob is None:
                return (0, 0, 0)
            r = s.blob.rdesc
            return (1, r.offset_in_wim, s.blob.offset_in_res)

        order.sort(key=where)
        for ino in order:
            d0 = first[id(ino)]
            self._file(d0, ino)
            for d in ino.dentries:
                if d.parent is None or d is d0:
                    continue
                src_fd = self.fds.get(_parts(d0.parent))
                dst_fd = self.fds.get(_parts(d.parent))
                os.link(d0.name, d.name, src_dir_fd=src_fd, dst_dir_fd=dst_fd,
                        follow_symlinks=False)
        # 3. symlinks / reparse points
        done_links: dict[int, Dentry] = {}
        for d in links:
            self._reparse(d, done_links)
        # 4. directory metadata, deepest first (creating entries changed their times)
        for d in reversed(dirs):
            self._dir_meta(d)
        self._dir_meta(self.img.root)

    def _file(self, d: Dentry, ino: Inode) -> None:
        parent = self.fds.get(_parts(d.parent))
        mode = ino.unix.mode if (self.unix_data and ino.unix) else 0
        if self.unix_data and ino.unix and not stat.S_ISREG(mode) and stat.S_IFMT(mode):
            try:
                os.mknod(d.name, mode, ino.unix.rdev, dir_fd=parent)
            except OSError as exc:
                self.warn(f"{d.path}: cannot create special file: {exc.strerror}")
                return
            self._owner(parent, d.name, ino, follow=False)
            self._times(parent, d.name, ino)
            return
        fd = os.open(d.name, FILE_FLAGS, 0o644, dir_fd=parent)
        try:
            s = ino.data
            if s is not None and s.blob is not None and s.size:
                self._write_blob(fd, s.blob, s.size)
            self._set_meta(fd, ino, d)
        finally:
            os.close(fd)

    def _write_blob(self, fd: int, blob, size: int) -> None:
        reader = self.wim.reader
        off = 0
        while off < size:
            n = min(READ_PIECE, size - off)
            data = reader.read(blob, off, n)
            if len(data) != n:
                raise WimCorruptError(f"blob {blob.hex}: short read")
            view = memoryview(data)
            while view:
                w = os.write(fd, view)
                view = view[w:]
            off += n
            self.progress.add(n)

    def _reparse(self, d: Dentry, done: dict[int, Dentry]) -> None:
        ino = d.inode
        parent = self.fds.get(_parts(d.parent))
        first = done.get(id(ino))
        if first is not None:
            try:
                os.link(first.name, d.name, src_dir_fd=self.fds.get(_parts(first.parent)),
                        dst_dir_fd=parent, follow_symlinks=False)
                return
            except OSError:
                pass
        done[id(ino)] = d
        if self.ntfs:
            # ntfs-3g: a file (or directory) carrying the reparse data itself.
            if ino.attributes & S.FILE_ATTRIBUTE_DIRECTORY:
                os.mkdir(d.name, 0o755, dir_fd=parent)
                fd = os.open(d.name, DIR_FLAGS, dir_fd=parent)
            else:
                fd = os.open(d.name, FILE_FLAGS, 0o644, dir_fd=parent)
            try:
                if ino.data is not None and ino.data.blob is not None and ino.data.size:
                    self._write_blob(fd, ino.data.blob, ino.data.size)
                self._ntfs_meta(fd, ino, d)
            finally:
                os.close(fd)
            return
        link = ino.link(self.wim.read_blob)
        if link is None:
            self.warn(f"{d.path}: skipping reparse point with tag {ino.reparse_tag:#x} "
                      "(not a symbolic link or junction)")
            return
        target = link_target(link, ino.rp_flags, self.dest if self.rpfix else None)
        os.symlink(target, d.name, dir_fd=parent)
        if self.unix_data and ino.unix:
            self._owner(parent, d.name, ino, follow=False, chmod=False)
        self._times(parent, d.name, ino)

    def _owner(self, parent: int, name: str, ino: Inode, follow: bool, chmod: bool = True):
        try:
            os.chown(name, ino.unix.uid, ino.unix.gid, dir_fd=parent, follow_symlinks=follow)
        except OSError as exc:
            self.warn(f"{name}: cannot set owner: {exc.strerror}")
        if chmod:
            os.chmod(name, stat.S_IMODE(ino.unix.mode), dir_fd=parent, follow_symlinks=follow)

    def _times(self, parent: int, name: str, ino: Inode) -> None:
        a, m = _ns(ino.last_access_time), _ns(ino.last_write_time)
        try:
            os.utime(name, ns=(a or m, m), dir_fd=parent, follow_symlinks=False)
        except OSError as exc:
            self.warn(f"{name}: cannot set times: {exc.strerror}")

    def _dir_meta(self, d: Dentry) -> None:
        self._set_meta(self.fds.get(_parts(d)), d.inode, d)

    def _set_meta(self, fd: int, ino, d: Dentry) -> None:
        """Windows metadata (on ntfs-3g), UNIX owner and mode (--unix-data), then times."""
        if self.ntfs:
            self._ntfs_meta(fd, ino, d)
        if self.unix_data and ino.unix:
            try:
                os.fchown(fd, ino.unix.uid, ino.unix.gid)
            except OSError as exc:
                self.warn(f"{d.path}: cannot set owner: {exc.strerror}")
            os.fchmod(fd, stat.S_IMODE(ino.unix.mode))
        a, m = _ns(ino.last_access_time), _ns(ino.last_write_time)
        os.utime(fd, ns=(a or m, m))

    # -- ntfs-3g --

    def _ntfs_meta(self, fd: int, ino: Inode, d: Dentry) -> None:
        def setx(name: str, value: bytes) -> None:
            try:
                os.setxattr(fd, name, value)
            except OSError as exc:
                self.warn(f"{d.path}: cannot set {name}: {exc.strerror}")

        for name, s in ino.named_streams.items():
            data = self.wim.read_blob(s.blob) if s.blob is not None else b""
            setx("user." + name, data)
        sd = self.img.security_descriptor(ino)
        if sd:
            setx(NTFS_ACL, sd)
        if ino.is_reparse_point and ino.reparse is not None:
            data = self.wim.read_blob(ino.reparse.blob) if ino.reparse.blob else b""
            setx(NTFS_REPARSE, full_reparse_buffer(ino.reparse_tag, ino.rp_reserved, data))
        if d.short_name and d.parent is not None:
            try:
                parent = self.fds.get(_parts(d.parent))
                path = f"/proc/self/fd/{parent}/{d.name}"
                os.setxattr(path, NTFS_DOS_NAME, d.short_name.encode("utf-8"),
                            follow_symlinks=False)
            except OSError as exc:
                self.warn(f"{d.path}: cannot set the DOS name: {exc.strerror}")
        setx(NTFS_TIMES, struct.pack("<QQQQ", ino.creation_time, ino.last_write_time,
                                     ino.last_access_time, ino.last_write_time))
        setx(NTFS_ATTRIB, struct.pack("<I", ino.attributes))


def apply_image(wim, index: int, dest: str, unix_data: bool = False,
                progress: ProgressCallback | None = None) -> int:
    """Extract image `index` of `wim` to `dest`; returns the number of warnings."""
    img = wim.image(index)
    a = Applier(wim, img, dest, unix_data=unix_data, progress=progress)
    try:
        a.run()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeImageError(f"{exc.filename}: refusing to follow a symbolic link while "
                                   "applying") from None
        if exc.errno == errno.EEXIST:
            raise WimfsError(f"{dest}: {exc.filename} already exists (apply to an empty "
                             "directory)") from None
        raise
    return a.warnings
