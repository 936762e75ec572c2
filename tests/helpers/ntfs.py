"""NTFS-rich WIM fixture built with mkntfs + ntfs-3g + wimlib (no Windows needed).

``make_ntfs_wim(tmpdir)`` returns ``NtfsWim(wim, expected, source)``:
 * ``wim``: captured by ``wimlib-imagex capture VOLUME.img out.wim`` (libntfs-3g capture mode:
   named streams, security descriptors, DOS names, attributes, reparse points, hard links),
 * ``expected``: snapshot of ``wimlib-imagex apply out.wim 1 FRESH.img`` read through ntfs-3g (the oracle),
 * ``source``: snapshot of the volume we built, read through ntfs-3g (for self-checking the oracle).

Snapshots probe ``system.ntfs_attrib/acl/dos_name/reparse_data/times`` (ntfs_times: creation + last
write only) and list ``user.*`` (named streams, ntfs-3g ``streams_interface=xattr``).
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .env import require_fuse, require_tool, run
from .snapshot import NTFS_PROBE_XATTRS, snapshot
from .wimlib import wimlib_apply, wimlib_capture

NTFS3G_OPTS = "streams_interface=xattr,posix_nlink"

# FILE_ATTRIBUTE_*
READONLY, HIDDEN, SYSTEM, DIRECTORY, ARCHIVE, NORMAL = 0x1, 0x2, 0x4, 0x10, 0x20, 0x80
REPARSE_POINT = 0x400

# --- tiny self-relative security descriptor builder -------------------------------------------

SE_DACL_PRESENT = 0x0004
SE_DACL_AUTO_INHERITED = 0x0400
SE_DACL_PROTECTED = 0x1000
SE_SELF_RELATIVE = 0x8000
ACCESS_ALLOWED, ACCESS_DENIED = 0, 1
OBJECT_INHERIT, CONTAINER_INHERIT, INHERIT_ONLY, INHERITED = 0x1, 0x2, 0x8, 0x10
FILE_ALL_ACCESS = 0x001F01FF
FILE_GENERIC_READ_EXECUTE = 0x001200A9
FILE_GENERIC_WRITE = 0x00120116


def sid(s: str) -> bytes:
    """'S-1-5-32-544' -> binary SID."""
    parts = s.split("-")
    assert parts[0] == "S" and parts[1] == "1", s
    auth = int(parts[2])
    subs = [int(x) for x in parts[3:]]
    return (struct.pack("<BB", 1, len(subs)) + auth.to_bytes(6, "big")
            + b"".join(struct.pack("<I", x) for x in subs))


def ace(kind: int, flags: int, mask: int, who: str) -> bytes:
    body = struct.pack("<I", mask) + sid(who)
    return struct.pack("<BBH", kind, flags, 4 + len(body)) + body


def acl(*aces: bytes) -> bytes:
    body = b"".join(aces)
    return struct.pack("<BBHHH", 2, 0, 8 + len(body), len(aces), 0) + body


def security_descriptor(owner: str, group: str, dacl: bytes | None, control: int = 0) -> bytes:
    """Self-relative SD laid out owner, group, DACL (ntfs-3g's own layout)."""
    o, g = sid(owner), sid(group)
    off = 20
    off_owner, off_group = off, off + len(o)
    off_dacl = off_group + len(g) if dacl is not None else 0
    ctrl = SE_SELF_RELATIVE | control | (SE_DACL_PRESENT if dacl is not None else 0)
    hdr = struct.pack("<BBHIIII", 1, 0, ctrl, off_owner, off_group, 0, off_dacl)
    return hdr + o + g + (dacl or b"")


EVERYONE, SYSTEM_SID, ADMINS, USERS = "S-1-1-0", "S-1-5-18", "S-1-5-32-544", "S-1-5-32-545"
GUESTS, USER_SID = "S-1-5-32-546", "S-1-5-21-1004336348-1177238915-682003330-1001"

SD_EVERYONE_FULL = security_descriptor(ADMINS, SYSTEM_SID, acl(ace(ACCESS_ALLOWED, 0, FILE_ALL_ACCESS, EVERYONE)))
SD_USER_RO_DENY_GUESTS = security_descriptor(
    USER_SID, USERS,
    acl(ace(ACCESS_DENIED, 0, FILE_GENERIC_WRITE, GUESTS),
        ace(ACCESS_ALLOWED, 0, FILE_GENERIC_READ_EXECUTE, USER_SID),
        ace(ACCESS_ALLOWED, 0, FILE_ALL_ACCESS, ADMINS)))
SD_DIR_INHERITABLE = security_descriptor(
    ADMINS, SYSTEM_SID,
    acl(ace(ACCESS_ALLOWED, OBJECT_INHERIT | CONTAINER_INHERIT, FILE_ALL_ACCESS, SYSTEM_SID),
        ace(ACCESS_ALLOWED, OBJECT_INHERIT | CONTAINER_INHERIT | INHERIT_ONLY, FILE_GENERIC_READ_EXECUTE, USERS),
        ace(ACCESS_ALLOWED, 0, FILE_ALL_ACCESS, ADMINS)),
    control=SE_DACL_PROTECTED)
SD_INHERITED = security_descriptor(
    ADMINS, SYSTEM_SID,
    acl(ace(ACCESS_ALLOWED, INHERITED, FILE_ALL_ACCESS, SYSTEM_SID),
        ace(ACCESS_ALLOWED, INHERITED, FILE_GENERIC_READ_EXECUTE, USERS)),
    control=SE_DACL_AUTO_INHERITED)
SD_EMPTY_DACL = security_descriptor(ADMINS, SYSTEM_SID, acl())

# --- reparse points ---------------------------------------------------------------------------

IO_REPARSE_TAG_SYMLINK = 0xA000000C
IO_REPARSE_TAG_MOUNT_POINT = 0xA0000003


def symlink_reparse(substitute: str, print_name: str, relative: bool) -> bytes:
    s, p = substitute.encode("utf-16-le"), print_name.encode("utf-16-le")
    data = struct.pack("<HHHHI", 0, len(s), len(s), len(p), 1 if relative else 0) + s + p
    return struct.pack("<IHH", IO_REPARSE_TAG_SYMLINK, len(data), 0) + data


def junction_reparse(substitute: str, print_name: str) -> bytes:
    s, p = substitute.encode("utf-16-le"), print_name.encode("utf-16-le")
    data = struct.pack("<HHHH", 0, len(s), len(s) + 2, len(p)) + s + b"\0\0" + p + b"\0\0"
    return struct.pack("<IHH", IO_REPARSE_TAG_MOUNT_POINT, len(data), 0) + data


# --- ntfs-3g volume handling ------------------------------------------------------------------

def mkntfs(img: Path, size_mb: int = 24) -> Path:
    require_tool("mkntfs", "ntfs-3g")
    with open(img, "wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    run(["mkntfs", "-F", "-Q", "-q", str(img)])
    return img


class ntfs3g_mounted:
    """Foreground ntfs-3g mount (so we can wait for it to flush and exit on unmount)."""

    def __init__(self, img, mnt, opts: str = NTFS3G_OPTS):
        self.img, self.mnt, self.opts = str(img), str(mnt), opts

    def __enter__(self):
        require_fuse()
        os.makedirs(self.mnt, exist_ok=True)
        self.proc = subprocess.Popen(["ntfs-3g", "-o", self.opts + ",no_detach", self.img, self.mnt],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while not os.path.ismount(self.mnt):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
                self._stop()
                raise AssertionError(f"ntfs-3g mount of {self.img} failed: {err}")
            time.sleep(0.05)
        return Path(self.mnt)

    def _stop(self):
        if os.path.ismount(self.mnt):
            subprocess.run(["fusermount3", "-u", self.mnt], capture_output=True)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            subprocess.run(["fusermount3", "-uz", self.mnt], capture_output=True)
            self.proc.kill()
            self.proc.wait()

    def __exit__(self, *exc):
        self._stop()
        return False


def ntfs_snapshot(root, **kw) -> dict:
    kw.setdefault("probe_xattrs", NTFS_PROBE_XATTRS)
    return snapshot(root, **kw)


def _setx(path: Path, name: str, value: bytes) -> None:
    os.setxattr(path, name, value, follow_symlinks=False)


def populate_ntfs(mnt: Path) -> None:
    """The NTFS-rich content (deterministic)."""
    r = random.Random("ntfs-fixture")
    m = Path(mnt)
    (m / "plain.txt").write_bytes(b"plain file\n")
    # named data streams (files and a directory), including a large and an empty stream
    (m / "streams.txt").write_bytes(b"unnamed stream data\n")
    _setx(m / "streams.txt", "user.stream1", b"first named stream\n")
    _setx(m / "streams.txt", "user.Zone.Identifier", b"[ZoneTransfer]\r\nZoneId=3\r\n")
    _setx(m / "streams.txt", "user.binary", r.randbytes(3000))
    (m / "big_with_stream.bin").write_bytes(r.randbytes(200_000))
    _setx(m / "big_with_stream.bin", "user.bigstream", r.randbytes(30_000) + bytes(30_000))
    (m / "stream_only.txt").write_bytes(b"")
    _setx(m / "stream_only.txt", "user.only", b"data lives only in a named stream")
    (m / "dir_with_stream").mkdir()
    _setx(m / "dir_with_stream", "user.dirstream", b"stream on a directory")
    # DOS (8.3) names
    (m / "Long File Name.txt").write_bytes(b"has a dos name\n")
    _setx(m / "Long File Name.txt", "system.ntfs_dos_name", b"LONGFI~1.TXT")
    (m / "Another Long Directory").mkdir()
    _setx(m / "Another Long Directory", "system.ntfs_dos_name", b"ANOTHE~1")
    (m / "Another Long Directory" / "inside file name.dat").write_bytes(b"x")
    _setx(m / "Another Long Directory" / "inside file name.dat", "system.ntfs_dos_name", b"INSIDE~1.DAT")
    # security descriptors
    (m / "acl_everyone.txt").write_bytes(b"acl 1\n")
    _setx(m / "acl_everyone.txt", "system.ntfs_acl", SD_EVERYONE_FULL)
    (m / "acl_user.txt").write_bytes(b"acl 2\n")
    _setx(m / "acl_user.txt", "system.ntfs_acl", SD_USER_RO_DENY_GUESTS)
    (m / "acl_dir").mkdir()
    _setx(m / "acl_dir", "system.ntfs_acl", SD_DIR_INHERITABLE)
    (m / "acl_dir" / "inherits.txt").write_bytes(b"acl 3\n")
    _setx(m / "acl_dir" / "inherits.txt", "system.ntfs_acl", SD_INHERITED)
    (m / "empty_dacl.txt").write_bytes(b"empty dacl\n")
    _setx(m / "empty_dacl.txt", "system.ntfs_acl", SD_EMPTY_DACL)
    # attributes
    for name, attrs in (("readonly.txt", READONLY | ARCHIVE), ("hidden.txt", HIDDEN | ARCHIVE),
                        ("system_hidden.txt", SYSTEM | HIDDEN | ARCHIVE)):
        (m / name).write_bytes(name.encode() + b"\n")
    (m / "hidden_dir").mkdir()
    (m / "readonly_dir").mkdir()
    (m / "readonly_dir" / "child.txt").write_bytes(b"child of readonly dir\n")
    # hard links: a pair and a triple across directories
    (m / "hl").mkdir()
    (m / "hl2").mkdir()
    (m / "hl" / "pair_a").write_bytes(b"pair\n")
    os.link(m / "hl" / "pair_a", m / "hl2" / "pair_b")
    (m / "hl" / "triple_1").write_bytes(r.randbytes(10_000))
    os.link(m / "hl" / "triple_1", m / "hl" / "triple_2")
    os.link(m / "hl" / "triple_1", m / "hl2" / "triple_3")
    # unicode
    (m / "ünïcödé_日本_😀.txt").write_bytes("unicode\n".encode())
    # reparse points: relative symlink, absolute symlink into the volume, directory junction
    (m / "rel_symlink").write_bytes(b"")
    _setx(m / "rel_symlink", "system.ntfs_reparse_data", symlink_reparse("plain.txt", "plain.txt", True))
    (m / "abs_symlink").write_bytes(b"")
    _setx(m / "abs_symlink", "system.ntfs_reparse_data",
          symlink_reparse("\\??\\C:\\acl_dir\\inherits.txt", "C:\\acl_dir\\inherits.txt", False))
    (m / "junction").mkdir()
    _setx(m / "junction", "system.ntfs_reparse_data", junction_reparse("\\??\\C:\\acl_dir", "C:\\acl_dir"))
    # attributes last (readonly would block the writes above)
    for name, attrs in (("readonly.txt", READONLY | ARCHIVE), ("hidden.txt", HIDDEN | ARCHIVE),
                        ("system_hidden.txt", SYSTEM | HIDDEN | ARCHIVE), ("hidden_dir", HIDDEN | DIRECTORY),
                        ("readonly_dir", READONLY | DIRECTORY)):
        _setx(m / name, "system.ntfs_attrib", struct.pack("<I", attrs))


@dataclass
class NtfsWim:
    wim: Path
    expected: dict
    source: dict
    images: dict = field(default_factory=dict)


def make_ntfs_wim(tmpdir, compress: str = "lzx") -> NtfsWim:
    """Build the NTFS-rich volume, capture it, and produce the oracle snapshot (see module doc)."""
    tmpdir = Path(tmpdir)
    tmpdir.mkdir(parents=True, exist_ok=True)
    require_tool("mkntfs", "ntfs-3g", "wimlib-imagex")
    src_img = mkntfs(tmpdir / "ntfs_src.img")
    with ntfs3g_mounted(src_img, tmpdir / "ntfs_src_mnt") as mnt:
        populate_ntfs(mnt)
    with ntfs3g_mounted(src_img, tmpdir / "ntfs_src_mnt") as mnt:
        source = ntfs_snapshot(mnt, raw_xattrs=True)
    wim = wimlib_capture(src_img, tmpdir / "ntfs.wim", compress=compress, name="ntfs-rich",
                         description="mkntfs + ntfs-3g fixture")
    out_img = mkntfs(tmpdir / "ntfs_apply.img")
    wimlib_apply(wim, 1, out_img)
    with ntfs3g_mounted(out_img, tmpdir / "ntfs_apply_mnt") as mnt:
        expected = ntfs_snapshot(mnt, raw_xattrs=True)
    return NtfsWim(wim=wim, expected=expected, source=source,
                   images={"source": src_img, "applied": out_img})
