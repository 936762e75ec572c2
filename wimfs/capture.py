"""Capture: build an in-memory image tree from a directory, ready for WimBuilder.

UNIX semantics follow wimlib's unix_capture: plain files FILE_ATTRIBUTE_NORMAL,
directories FILE_ATTRIBUTE_DIRECTORY, symlinks IO_REPARSE_TAG_SYMLINK reparse points
(relative targets flagged SYMBOLIC_LINK_RELATIVE; absolute targets that lead into the
capture root "fixed" to root-relative form, others kept with RP_FLAG_NOT_FIXED), hard
links grouped by (st_dev, st_ino), times from stat (creation = last write = mtime),
UNIX uid/gid/mode/rdev as wimlib's tagged item with `unix_data`.

When the source root offers ``system.ntfs_attrib`` (an ntfs-3g or wimfs mount), the
Windows metadata comes from the system.ntfs_* xattrs and named streams from ``user.*``.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from wimfs.errors import PathNotFoundError, WimfsError
from wimfs.format import structs as S
from wimfs.format.metadata import unix_data_item
from wimfs.format.xmlinfo import unix_ns_to_filetime
from wimfs.image import ZERO_HASH, Dentry, Image, Inode, Stream, UnixData
from wimfs.writer import BytesSource, FileSource

log = logging.getLogger(__name__)

from wimfs.xattrs import (NTFS_ACL, NTFS_ATTRIB, NTFS_DOS_NAME,  # noqa: F401 - re-exported
                          NTFS_REPARSE, NTFS_TIMES, xattr_or_none)


class CaptureError(WimfsError):
    pass


class XattrStreamSource(BytesSource):
    def __init__(self, path: str, name: str, value: bytes):
        super().__init__(value)
        self.path = path
        self.name = name

    def describe(self) -> str:
        return f"{self.path} (stream {self.name})"


# -- exclusion config (wimlib's INI-like capture configuration) -----------------------

@dataclass
class CaptureConfig:
    exclude: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: str) -> CaptureConfig:
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as exc:
            raise PathNotFoundError(f"{path}: cannot read the capture configuration: "
                                    f"{exc.strerror}") from None
        if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
            text = raw.decode("utf-16")
        else:
            text = raw.decode("utf-8-sig", "replace")
        return cls.parse(text, path)

    @classmethod
    def parse(cls, text: str, where: str = "config") -> CaptureConfig:
        cfg = cls()
        section: list[str] | None = None
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line[0] in ";#":
                continue
            if line.startswith("[") and line.endswith("]"):
                name = line[1:-1].strip().lower()
                section = {"exclusionlist": cfg.exclude,
                           "exclusionexception": cfg.exceptions}.get(name)
                if section is None:
                    # wimlib knows other sections ([CompressionExclusionList], ...); they
                    # do not change what is captured.
                    section = []
                continue
            if section is None:
                raise CaptureError(f"{where}:{n}: pattern {line!r} is not in a section "
                                   "([ExclusionList] or [ExclusionException])")
            section.append(_normalize_pattern(line))
        return cfg

    def excluded(self, path: str) -> bool:
        """`path` is the path inside the image ("/a/b")."""
        return _match_any(path, self.exclude) and not _match_any(path, self.exceptions)


def _normalize_pattern(p: str) -> str:
    p = p.replace("\\", "/")
    if len(p) >= 2 and p[1] == ":" and p[0].isalpha():
        p = p[2:]               # drive letters mean the capture root
    if len(p) > 1:
        p = p.rstrip("/")
    return p


def _match_any(path: str, patterns: list[str]) -> bool:
    name = path.rsplit("/", 1)[-1]
    for pat in patterns:
        if "/" in pat:
            if not pat.startswith("/"):
                pat = "/" + pat
            # Wildcards do not cross "/" (as wimlib's FNM_PATHNAME-style match).
            if pat.count("/") == path.count("/") and fnmatch.fnmatchcase(path, pat):
                return True
        elif fnmatch.fnmatchcase(name, pat):
            return True
    return False


# -- symlinks ------------------------------------------------------------------------

def symlink_reparse_data(nt_target: str, relative: bool) -> bytes:
    """Reparse data (no header) as wimlib writes it: substitute name, NUL, print name,
    NUL; absolute targets as ``\\??\\C:\\x`` with print name ``C:\\x``."""
    if relative:
        sub = prn = nt_target
    else:
        sub = "\\??\\C:" + nt_target
        prn = "C:" + nt_target
    bs = sub.encode("utf-16-le", "surrogatepass")
    bp = prn.encode("utf-16-le", "surrogatepass")
    flags = S.SYMBOLIC_LINK_RELATIVE if relative else 0
    return struct.pack("<HHHHI", 0, len(bs), len(bs) + 2, len(bp), flags) + bs + b"\0\0" + \
        bp + b"\0\0"


def _to_nt(target: str) -> str:
    return target.translate({0x2F: 0x5C, 0x5C: 0x2F})


# -- the scan ------------------------------------------------------------------------

@dataclass
class CaptureOptions:
    unix_data: bool = False
    config: CaptureConfig | None = None
    rpfix: bool = True
    # skip(path, exc) -> True to skip an unreadable entry, False to fail.
    on_error: Callable[[str, Exception], bool] | None = None
    ntfs: bool | None = None          # None: detect from the root's xattrs


def check_readable(path: str) -> None:
    """Open (and close) a file at scan time, so unreadable files are found before
    anything is written (and can be skipped whole with --skip-errors)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    os.close(fd)


def _ft(ns: int) -> int:
    return unix_ns_to_filetime(ns)


def _unix_item(st: os.stat_result) -> bytes:
    return unix_data_item(st.st_uid, st.st_gid, st.st_mode, st.st_rdev)


class _Scanner:
    def __init__(self, root: str, opts: CaptureOptions):
        self.root = root
        self.opts = opts
        self.inodes: list[Inode] = []
        self.by_devino: dict[tuple[int, int], Inode] = {}
        self.security: list[bytes] = []
        self.sd_index: dict[bytes, int] = {}
        self.skipped: list[str] = []
        st = os.stat(root)
        self.root_id = (st.st_dev, st.st_ino)
        self.ntfs = opts.ntfs
        if self.ntfs is None:
            self.ntfs = xattr_or_none(root, NTFS_ATTRIB) is not None

    def fail(self, path: str, exc: Exception) -> None:
        """An unreadable entry: skip it (on_error says so) or stop."""
        if self.opts.on_error is not None and self.opts.on_error(path, exc):
            self.skipped.append(path)
            return
        if isinstance(exc, OSError):
            raise CaptureError(f"cannot read {path}: {exc.strerror or exc} (use --skip-errors "
                               "to skip unreadable files)") from None
        raise CaptureError(f"cannot read {path}: {exc}") from None

    def new_inode(self, attributes: int, st: os.stat_result) -> Inode:
        ino = Inode.new(len(self.inodes) + 1, attributes, -1, _ft(st.st_mtime_ns),
                        _ft(st.st_atime_ns), _ft(st.st_mtime_ns))
        if self.opts.unix_data:
            ino.tagged_items = _unix_item(st)
            ino.unix = UnixData(st.st_uid, st.st_gid, st.st_mode, st.st_rdev)
        self.inodes.append(ino)
        return ino

    def security_id(self, sd: bytes | None) -> int:
        if not sd:
            return -1
        i = self.sd_index.get(sd)
        if i is None:
            i = self.sd_index[sd] = len(self.security)
            self.security.append(sd)
        return i

    # -- one entry --

    def make(self, path: str, st: os.stat_result) -> Inode | None:
        mode = st.st_mode
        if not stat.S_ISDIR(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1:
                ino = self.by_devino.get(key)
                if ino is not None:
                    return ino
        if self.ntfs:
            ino = self.make_ntfs(path, st)
        else:
            ino = self.make_unix(path, st)
        if ino is not None and not stat.S_ISDIR(mode) and st.st_nlink > 1:
            self.by_devino[(st.st_dev, st.st_ino)] = ino
        return ino

    def make_unix(self, path: str, st: os.stat_result) -> Inode | None:
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            return self.new_inode(S.FILE_ATTRIBUTE_DIRECTORY, st)
        if stat.S_ISREG(mode):
            check_readable(path)
            ino = self.new_inode(S.FILE_ATTRIBUTE_NORMAL, st)
            if st.st_size:
                ino.data = Stream("", ZERO_HASH, None, st.st_size, FileSource(path, st.st_size))
            return ino
        if stat.S_ISLNK(mode):
            return self.make_symlink(path, st)
        if self.opts.unix_data:
            # Devices, FIFOs, sockets: empty files whose type is in the UNIX data.
            return self.new_inode(0, st)
        log.warning("skipping %s: not a file, directory or symbolic link (capture with "
                    "--unix-data to keep it)", path)
        return None

    def make_symlink(self, path: str, st: os.stat_result) -> Inode:
        target = os.readlink(path)
        attrs = S.FILE_ATTRIBUTE_REPARSE_POINT
        try:
            if stat.S_ISDIR(os.stat(path).st_mode):
                attrs |= S.FILE_ATTRIBUTE_DIRECTORY
        except OSError:
            pass
        relative = not target.startswith("/")
        rp_flags = S.RP_FLAG_NOT_FIXED
        if not relative and self.opts.rpfix:
            fixed = self.relativize(target)
            if fixed is not None:
                target = fixed
                rp_flags = 0
        ino = self.new_inode(attrs, st)
        ino.reparse_tag = S.IO_REPARSE_TAG_SYMLINK
        ino.rp_flags = rp_flags
        data = symlink_reparse_data(_to_nt(target), relative)
        ino.reparse = Stream("", ZERO_HASH, None, len(data), BytesSource(data))
        return ino

    def relativize(self, target: str) -> str | None:
        """If a prefix of the absolute `target` is the capture root, the rest ("/x/y")."""
        t = target.rstrip("/") or "/"
        # Longest prefix first is not needed: the first prefix that is the root wins, as
        # in wimlib (it walks from the start).
        i = 0
        while True:
            j = t.find("/", i + 1)
            prefix = t[:j] if j >= 0 else t
            try:
                st = os.stat(prefix or "/")
                if (st.st_dev, st.st_ino) == self.root_id:
                    rest = t[len(prefix):] if j >= 0 else ""
                    return rest if rest else "/"
            except OSError:
                return None
            if j < 0:
                return None
            i = j

    def make_ntfs(self, path: str, st: os.stat_result) -> Inode | None:
        raw = xattr_or_none(path, NTFS_ATTRIB)
        if raw is None or len(raw) < 4:
            return self.make_unix(path, st)
        attrs = struct.unpack_from("<I", raw)[0]
        ino = self.new_inode(attrs, st)
        times = xattr_or_none(path, NTFS_TIMES)
        if times and len(times) >= 24:
            ino.creation_time, ino.last_write_time, ino.last_access_time = \
                struct.unpack_from("<QQQ", times)
        ino.security_id = self.security_id(xattr_or_none(path, NTFS_ACL))
        if attrs & S.FILE_ATTRIBUTE_REPARSE_POINT:
            rp = xattr_or_none(path, NTFS_REPARSE)
            if rp and len(rp) >= 8:
                tag, dlen, reserved = struct.unpack_from("<IHH", rp)
                data = rp[8:8 + dlen]
                ino.reparse_tag, ino.rp_reserved = tag, reserved
                ino.rp_flags = 0          # as wimlib's NTFS capture
                ino.reparse = Stream("", ZERO_HASH, None, len(data), BytesSource(data))
            else:
                ino.attributes &= ~S.FILE_ATTRIBUTE_REPARSE_POINT
        if stat.S_ISREG(st.st_mode) and st.st_size:
            check_readable(path)
            ino.data = Stream("", ZERO_HASH, None, st.st_size, FileSource(path, st.st_size))
        try:
            names = os.listxattr(path, follow_symlinks=False)
        except OSError:
            names = []
        for name in names:
            if name.startswith("user."):
                value = xattr_or_none(path, name)
                if value is None:
                    continue
                sname = name[5:]
                src = XattrStreamSource(path, sname, value) if value else None
                ino.named_streams[sname] = Stream(sname, ZERO_HASH, None, len(value), src)
        return ino

    def dos_name(self, path: str) -> str:
        if not self.ntfs:
            return ""
        raw = xattr_or_none(path, NTFS_DOS_NAME)
        if not raw:
            return ""
        try:
            return raw.decode("utf-8") if b"\0" not in raw else raw.decode("utf-16-le")
        except UnicodeDecodeError:
            return ""

    # -- the tree --

    def scan(self) -> Image:
        try:
            st = os.lstat(self.root)
        except OSError as exc:
            raise PathNotFoundError(f"{self.root}: {exc.strerror}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise CaptureError(f"{self.root} is not a directory")
        root_ino = self.make(self.root, st)
        assert root_ino is not None
        root = Dentry("", "", root_ino, None)
        root_ino.dentries.append(root)
        if root.children is None:
            raise CaptureError(f"{self.root}: the root must be a directory")
        stack: list[tuple[str, str, Dentry]] = [(self.root, "", root)]
        config = self.opts.config
        while stack:
            dpath, ipath, parent = stack.pop()
            try:
                with os.scandir(dpath) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                self.fail(dpath, exc)
                continue
            for e in entries:
                name = e.name
                cpath = e.path
                cipath = f"{ipath}/{name}"
                if config is not None and config.excluded(cipath):
                    continue
                try:
                    cst = e.stat(follow_symlinks=False)
                    ino = self.make(cpath, cst)
                except OSError as exc:
                    self.fail(cpath, exc)
                    continue
                if ino is None:
                    continue
                try:
                    name.encode("utf-16-le")
                except UnicodeEncodeError:
                    # Undecodable bytes in the name: keep them round-trippable.
                    pass
                d = Dentry(name, self.dos_name(cpath), ino, parent)
                ino.dentries.append(d)
                parent.children[name] = d
                if d.children is not None:
                    stack.append((cpath, cipath, d))
        for ino in self.inodes:
            ino.nlink = len(ino.dentries) if not ino.is_directory else 2
        inodes = [i for i in self.inodes if i.dentries]
        for n, i in enumerate(inodes, 1):
            i.ino = n
        return Image(0, self.security, root, inodes)


def capture_tree(root: str, opts: CaptureOptions | None = None) -> tuple[Image, list[str]]:
    """Scan `root`; return the image and the paths skipped because unreadable."""
    s = _Scanner(os.path.abspath(root), opts or CaptureOptions())
    img = s.scan()
    return img, s.skipped


def uses_rpfix(img: Image) -> bool:
    return any(i.reparse_tag == S.IO_REPARSE_TAG_SYMLINK for i in img.inodes)
