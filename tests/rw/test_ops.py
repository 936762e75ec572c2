"""POSIX operations on a read-write mount: every call ordinary tools make.

One mount per module (each test works in its own directory); the round-trip test at the end
does a mix of everything on its own mount, commits, and compares ``wimlib-imagex apply``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import stat
import struct
import time

import pytest

from tests.helpers import (assert_same_tree, make_tree, require_fuse, require_tool, snapshot,
                           wimlib_apply, wimlib_capture, wimlib_verify)
from tests.helpers.rwmount import RwMount
from tests.helpers.wimlib import wimlib_dir_detailed

pytestmark = [pytest.mark.mount]

READONLY, ARCHIVE, HIDDEN, DIRECTORY, REPARSE = 0x1, 0x20, 0x2, 0x10, 0x400
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
AT_FDCWD = -100

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def renameat2(old, new, flags):
    r = _libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new),
                        ctypes.c_uint(flags))
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), str(old))


def attrib(path) -> int:
    return struct.unpack("<I", os.getxattr(path, "system.ntfs_attrib", follow_symlinks=False))[0]


@pytest.fixture(scope="module")
def base_src(tmp_path_factory):
    src = tmp_path_factory.mktemp("ops_src")
    (src / "base.txt").write_bytes(b"0123456789" * 1000)
    (src / "other.txt").write_bytes(b"other\n")
    (src / "dir").mkdir()
    (src / "dir" / "inside.txt").write_bytes(b"inside\n")
    make_tree(src / "gen", "chunks")
    return src


@pytest.fixture(scope="module")
def mnt(tmp_path_factory, base_src):
    """A read-write mount of an LZX image (no UNIX data: Windows semantics)."""
    require_fuse()
    require_tool("wimlib-imagex")
    work = tmp_path_factory.mktemp("ops")
    wim = wimlib_capture(base_src, work / "ops.wim", compress="lzx", name="ops")
    m = RwMount(wim, work / "mnt", work / "state")
    m.mount()
    yield m
    m.close()


@pytest.fixture
def d(mnt, request):
    """A fresh directory of the shared mount for this test."""
    p = mnt.mnt / request.node.name.replace("[", "_").replace("]", "")
    p.mkdir()
    return p


# --------------------------------------------------------------------------- open / write


def test_open_creat_excl_trunc_append(d, mnt):
    f = d / "f"
    fd = os.open(f, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    assert os.write(fd, b"hello") == 5
    os.close(fd)
    with pytest.raises(FileExistsError):
        os.open(f, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    fd = os.open(f, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b" world")
    os.close(fd)
    assert f.read_bytes() == b"hello world"
    fd = os.open(f, os.O_WRONLY | os.O_TRUNC)
    assert os.fstat(fd).st_size == 0
    os.write(fd, b"new")
    os.close(fd)
    assert f.read_bytes() == b"new"
    # O_TRUNC of a file that lives in the image (never copied up before)
    base = mnt.mnt / "other.txt"
    with open(base, "r+b") as fh:
        assert fh.read() == b"other\n"
    fd = os.open(base, os.O_RDWR | os.O_TRUNC)
    os.write(fd, b"replaced")
    os.lseek(fd, 0, 0)
    assert os.read(fd, 100) == b"replaced"
    os.close(fd)
    assert base.read_bytes() == b"replaced"


def test_copy_on_write_keeps_untouched_bytes(mnt, d):
    base = mnt.mnt / "base.txt"
    orig = bytearray(base.read_bytes())
    with open(base, "r+b") as fh:
        fh.seek(5000)
        fh.write(b"XYZ")
    orig[5000:5003] = b"XYZ"
    assert base.read_bytes() == bytes(orig)
    # holes and a big write
    f = d / "sparse"
    with open(f, "wb") as fh:
        fh.seek(1 << 20)
        fh.write(b"end")
    data = f.read_bytes()
    assert len(data) == (1 << 20) + 3 and data[:1 << 20] == bytes(1 << 20)
    big = os.urandom(5 << 20)
    (d / "big").write_bytes(big)
    assert (d / "big").read_bytes() == big
    # a file from a compressed resource spanning several chunks, modified mid-chunk
    g = mnt.mnt / "gen" / "rand_131073.bin"
    before = bytearray(g.read_bytes())
    with open(g, "r+b") as fh:
        fh.seek(70000)
        fh.write(b"\xff" * 10)
    before[70000:70010] = b"\xff" * 10
    assert g.read_bytes() == bytes(before)


def test_truncate_and_ftruncate(mnt, d):
    f = d / "t"
    f.write_bytes(b"abcdef")
    os.truncate(f, 3)
    assert f.read_bytes() == b"abc"
    os.truncate(f, 6)
    assert f.read_bytes() == b"abc\0\0\0"
    with open(f, "r+b") as fh:
        os.ftruncate(fh.fileno(), 1)
        assert os.fstat(fh.fileno()).st_size == 1
    assert f.read_bytes() == b"a"
    # truncate a base-image file without opening it
    g = mnt.mnt / "dir" / "inside.txt"
    os.truncate(g, 2)
    assert g.read_bytes() == b"in"
    assert os.stat(g).st_size == 2


def test_unlink_while_open(d):
    f = d / "gone"
    f.write_bytes(b"still here")
    fd = os.open(f, os.O_RDWR)
    os.unlink(f)
    assert not f.exists()
    assert os.listdir(d) == []
    os.lseek(fd, 0, os.SEEK_END)
    os.write(fd, b" and more")
    assert os.pread(fd, 100, 0) == b"still here and more"
    assert os.fstat(fd).st_nlink == 0
    os.close(fd)
    # the name can be reused at once
    f.write_bytes(b"new")
    assert f.read_bytes() == b"new"


def test_mkdir_rmdir(d):
    (d / "a" ).mkdir()
    (d / "a" / "b").mkdir()
    (d / "a" / "b" / "f").write_bytes(b"x")
    with pytest.raises(FileExistsError):
        (d / "a").mkdir()
    with pytest.raises(OSError) as ei:
        os.rmdir(d / "a")
    assert ei.value.errno == errno.ENOTEMPTY
    with pytest.raises(NotADirectoryError):
        os.rmdir(d / "a" / "b" / "f")
    with pytest.raises(IsADirectoryError):
        os.unlink(d / "a" / "b")
    os.unlink(d / "a" / "b" / "f")
    os.rmdir(d / "a" / "b")
    os.rmdir(d / "a")
    assert os.listdir(d) == []
    assert stat.S_ISDIR(os.stat(d).st_mode)


def test_rename_variants(d):
    (d / "a").write_bytes(b"A")
    (d / "b").write_bytes(b"B")
    os.rename(d / "a", d / "b")                       # replace
    assert (d / "b").read_bytes() == b"A" and not (d / "a").exists()
    (d / "c").write_bytes(b"C")
    with pytest.raises(FileExistsError):
        renameat2(d / "c", d / "b", RENAME_NOREPLACE)
    renameat2(d / "c", d / "c2", RENAME_NOREPLACE)
    assert (d / "c2").read_bytes() == b"C"
    renameat2(d / "b", d / "c2", RENAME_EXCHANGE)      # swap
    assert (d / "b").read_bytes() == b"C" and (d / "c2").read_bytes() == b"A"
    # directories: move with children, exchange a file and a directory
    (d / "x" / "y").mkdir(parents=True)
    (d / "x" / "y" / "deep").write_bytes(b"deep")
    os.rename(d / "x", d / "x2")
    assert (d / "x2" / "y" / "deep").read_bytes() == b"deep"
    renameat2(d / "x2", d / "b", RENAME_EXCHANGE)
    assert (d / "b" / "y" / "deep").read_bytes() == b"deep" and (d / "x2").read_bytes() == b"C"
    with pytest.raises(OSError) as ei:
        os.rename(d / "b", d / "b" / "y" / "into_myself")
    assert ei.value.errno == errno.EINVAL
    (d / "empty").mkdir()
    os.rename(d / "b" / "y", d / "empty")                # dir over empty dir
    assert (d / "empty" / "deep").exists()
    (d / "full").mkdir()
    (d / "full" / "f").write_bytes(b"")
    with pytest.raises(OSError) as ei:
        os.rename(d / "empty", d / "full")
    assert ei.value.errno in (errno.ENOTEMPTY, errno.EEXIST)
    with pytest.raises(IsADirectoryError):
        os.rename(d / "x2", d / "full")
    with pytest.raises(NotADirectoryError):
        os.rename(d / "full", d / "x2")
    # across directories, replacing
    (d / "full" / "f").write_bytes(b"moved")
    os.rename(d / "full" / "f", d / "x2")
    assert (d / "x2").read_bytes() == b"moved"
    assert sorted(os.listdir(d)) == ["b", "c2", "empty", "full", "x2"]


def test_rename_hard_link_onto_itself_is_noop(d):
    (d / "a").write_bytes(b"a")
    os.link(d / "a", d / "b")
    os.rename(d / "a", d / "b")
    assert (d / "a").exists() and (d / "b").exists()


def test_hard_links(d):
    (d / "a").write_bytes(b"1")
    os.link(d / "a", d / "b")
    (d / "sub").mkdir()
    os.link(d / "a", d / "sub" / "c")
    assert os.stat(d / "a").st_nlink == 3
    assert os.stat(d / "a").st_ino == os.stat(d / "sub" / "c").st_ino
    with open(d / "b", "ab") as fh:
        fh.write(b"2")
    assert (d / "sub" / "c").read_bytes() == b"12"
    os.unlink(d / "a")
    assert os.stat(d / "b").st_nlink == 2
    with pytest.raises(PermissionError):
        os.link(d / "sub", d / "dirlink")


def test_symlink_is_windows_reparse_point(d, mnt):
    os.symlink("target/file.txt", d / "rel")
    os.symlink(str(mnt.mnt / "base.txt"), d / "abs_inside")
    assert os.readlink(d / "rel") == "target/file.txt"
    assert os.readlink(d / "abs_inside") == str(mnt.mnt / "base.txt")
    assert (d / "abs_inside").read_bytes()[:10] == b"0123456789"
    assert attrib(d / "rel") & REPARSE
    rp = os.getxattr(d / "rel", "system.ntfs_reparse_data", follow_symlinks=False)
    tag, dlen, _ = struct.unpack_from("<IHH", rp)
    assert tag == 0xA000000C and dlen == len(rp) - 8
    sub_off, sub_len, pr_off, pr_len, flags = struct.unpack_from("<HHHHI", rp, 8)
    assert flags & 1  # SYMLINK_FLAG_RELATIVE
    sub = rp[20 + sub_off:20 + sub_off + sub_len].decode("utf-16-le")
    assert sub == "target\\file.txt"


def test_times(d):
    f = d / "f"
    f.write_bytes(b"x")
    os.utime(f, ns=(1_000_000_000_000_000_000, 1_100_000_000_123_456_700))
    st = os.stat(f)
    assert st.st_mtime_ns == 1_100_000_000_123_456_700
    assert st.st_atime_ns == 1_000_000_000_000_000_000
    before = os.stat(d).st_mtime_ns
    (d / "g").write_bytes(b"")
    assert os.stat(d).st_mtime_ns >= before


def test_new_file_gets_archive_and_now(d):
    t0 = time.time_ns()
    f = d / "new"
    f.write_bytes(b"x")
    (d / "newdir").mkdir()
    assert attrib(f) == ARCHIVE
    assert attrib(d / "newdir") & DIRECTORY
    assert not attrib(d / "newdir") & ARCHIVE
    st = os.stat(f)
    assert abs(st.st_mtime_ns - t0) < 10 * 10**9


def test_chmod_readonly_attribute(d):
    f = d / "ro"
    f.write_bytes(b"x")
    os.chmod(f, 0o444)
    assert attrib(f) & READONLY
    assert not os.stat(f).st_mode & 0o222
    os.chmod(f, 0o644)
    assert not attrib(f) & READONLY
    assert os.stat(f).st_mode & 0o200


def test_named_streams_xattrs(d):
    f = d / "s"
    f.write_bytes(b"main")
    os.setxattr(f, "user.stream1", b"one")
    os.setxattr(f, "user.Zone.Identifier", b"[ZoneTransfer]\r\nZoneId=3\r\n")
    big = os.urandom(60_000)            # the VFS caps xattr values at 64 KiB
    os.setxattr(f, "user.big", big)
    assert os.getxattr(f, "user.stream1") == b"one"
    assert os.getxattr(f, "user.big") == big
    assert {"user.stream1", "user.Zone.Identifier", "user.big"} <= set(os.listxattr(f))
    os.setxattr(f, "user.stream1", b"replaced value")
    assert os.getxattr(f, "user.stream1") == b"replaced value"
    os.removexattr(f, "user.stream1")
    assert "user.stream1" not in os.listxattr(f)
    with pytest.raises(OSError) as ei:
        os.getxattr(f, "user.stream1")
    assert ei.value.errno == errno.ENODATA
    with pytest.raises(OSError) as ei:
        os.removexattr(f, "user.nope")
    assert ei.value.errno == errno.ENODATA
    assert f.read_bytes() == b"main"
    (d / "sd").mkdir()
    os.setxattr(d / "sd", "user.dirstream", b"on a directory")
    assert os.getxattr(d / "sd", "user.dirstream") == b"on a directory"


def test_ntfs_xattrs(d):
    from tests.helpers.ntfs import SD_EVERYONE_FULL, symlink_reparse
    f = d / "Long File Name.txt"
    f.write_bytes(b"x")
    os.setxattr(f, "system.ntfs_attrib", struct.pack("<I", HIDDEN | ARCHIVE))
    assert attrib(f) == HIDDEN | ARCHIVE
    os.setxattr(f, "system.ntfs_acl", SD_EVERYONE_FULL)
    assert os.getxattr(f, "system.ntfs_acl") == SD_EVERYONE_FULL
    with pytest.raises(OSError) as ei:
        os.setxattr(f, "system.ntfs_acl", b"garbage")
    assert ei.value.errno == errno.EINVAL
    os.setxattr(f, "system.ntfs_dos_name", b"LONGFI~1.TXT")
    assert os.getxattr(f, "system.ntfs_dos_name") == b"LONGFI~1.TXT"
    with pytest.raises(OSError) as ei:
        os.setxattr(f, "system.ntfs_dos_name", b"not a valid dos name.txt")
    assert ei.value.errno == errno.EINVAL
    t = struct.pack("<QQ", 130_000_000_000_000_000, 131_000_000_000_000_000)
    os.setxattr(f, "system.ntfs_times", t)
    assert os.getxattr(f, "system.ntfs_times")[:16] == t
    # reparse data on a plain file turns it into a symlink
    g = d / "rp"
    g.write_bytes(b"")
    rp = symlink_reparse("plain.txt", "plain.txt", True)
    os.setxattr(g, "system.ntfs_reparse_data", rp)
    assert os.getxattr(g, "system.ntfs_reparse_data", follow_symlinks=False) == rp
    assert attrib(g) & REPARSE
    # The kernel keeps the cached regular-file inode until the entry times out (1 s).
    time.sleep(1.2)
    assert os.path.islink(g) and os.readlink(g) == "plain.txt"
    os.removexattr(g, "system.ntfs_reparse_data", follow_symlinks=False)
    assert not attrib(g) & REPARSE
    time.sleep(1.2)
    assert not os.path.islink(g) and g.is_file()
    with pytest.raises(OSError) as ei:
        os.setxattr(f, "trusted.x", b"1")
    assert ei.value.errno in (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM)


def test_fsync_and_statfs(d):
    f = d / "f"
    with open(f, "wb") as fh:
        fh.write(b"data" * 1000)
        fh.flush()
        os.fsync(fh.fileno())
        os.fdatasync(fh.fileno())
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(dfd)
    os.close(dfd)
    st = os.statvfs(d)
    assert st.f_bavail > 0 and st.f_bsize > 0 and st.f_favail > 0
    assert st.f_blocks >= st.f_bfree


def test_errors(d):
    with pytest.raises(FileNotFoundError):
        os.unlink(d / "missing")
    with pytest.raises(FileNotFoundError):
        os.rename(d / "missing", d / "x")
    with pytest.raises(OSError) as ei:
        (d / ("n" * 300)).write_bytes(b"")
    assert ei.value.errno == errno.ENAMETOOLONG
    (d / "f").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        (d / "f" / "x").write_bytes(b"")
    with pytest.raises(IsADirectoryError):
        open(d, "wb")


# --------------------------------------------------------------------------- round trip


def _do_everything(m):
    """A mix of every operation; returns nothing (the mount's view is the expectation)."""
    r = m / "rt"
    r.mkdir()
    (r / "created.txt").write_bytes(b"created\n")
    (r / "excl").write_bytes(b"")
    with open(m / "base.txt", "r+b") as fh:
        fh.seek(10)
        fh.write(b"patched")
    with open(m / "other.txt", "ab") as fh:
        fh.write(b"appended\n")
    os.truncate(m / "gen" / "rand_65536.bin", 1000)
    os.truncate(m / "gen" / "rand_1.bin", 100_000)
    os.unlink(m / "gen" / "rand_32767.bin")
    os.rename(m / "dir", r / "moved_dir")
    os.rename(m / "gen" / "text_32768.txt", r / "renamed.txt")
    renameat2(m / "gen" / "rand_32768.bin", m / "gen" / "rand_32769.bin", RENAME_EXCHANGE)
    os.link(r / "created.txt", r / "hardlink.txt")
    os.link(m / "gen" / "rand_131073.bin", r / "link_to_base")
    os.symlink("created.txt", r / "sym")
    os.symlink("../gen", r / "dirsym")
    os.symlink(str(m / "base.txt"), r / "abs_inside")     # fixed: relative to the image root
    os.symlink("/etc/hostname-not-here", r / "abs_outside")
    (r / "empty_dir").mkdir()
    (r / "ro.txt").write_bytes(b"ro")
    os.chmod(r / "ro.txt", 0o444)
    os.setxattr(r / "created.txt", "user.ads", b"alternate data")
    os.utime(r / "created.txt", ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    os.setxattr(r / "renamed.txt", "system.ntfs_dos_name", b"RENAME~1.TXT")
    (r / "big.bin").write_bytes(os.urandom(3 << 20))


@pytest.mark.parametrize("compress", ["lzx", "xpress"])
def test_roundtrip_commit_matches_apply(tmp_path, base_src, compress):
    require_fuse()
    wim = wimlib_capture(base_src, tmp_path / "rt.wim", compress=compress, name="rt")
    m = RwMount(wim, tmp_path / "mnt", tmp_path / "state")
    try:
        m.mount()
        _do_everything(m.mnt)
        seen = snapshot(m.mnt, xattrs=False)
        ro_attr = attrib(m.mnt / "rt" / "ro.txt")
        m.unmount("--commit")
    finally:
        m.close()
    v = wimlib_verify(wim)
    assert v.returncode == 0, v.stderr
    out = tmp_path / "apply"
    wimlib_apply(wim, 1, out)
    assert_same_tree(seen, snapshot(out, xattrs=False), "mount", "wimlib apply")
    assert os.stat(out / "rt" / "created.txt").st_mtime_ns == 1_600_000_000_000_000_000
    det = wimlib_dir_detailed(wim, 1)
    assert det["rt/created.txt"]["streams"] == {"": 8, "ads": 14}
    assert det["rt/renamed.txt"]["short_name"] == "RENAME~1.TXT"
    assert det["rt/ro.txt"]["attributes"] == ro_attr and ro_attr & READONLY
    assert det["rt/created.txt"]["attributes"] == ARCHIVE
    assert det["rt/created.txt"]["link_count"] == 2
    assert det["rt/sym"]["attributes"] & REPARSE


def test_unix_data_modes_roundtrip(tmp_path, base_src):
    """An image captured with --unix-data: full modes, owners, special files survive."""
    require_fuse()
    wim = wimlib_capture(base_src, tmp_path / "u.wim", compress="lzx", unix_data=True, name="u")
    m = RwMount(wim, tmp_path / "mnt", tmp_path / "state")
    try:
        m.mount()
        f = m.mnt / "modes.sh"
        f.write_bytes(b"#!/bin/sh\n")
        os.chown(f, 1234, 5678)          # first: chown clears set-user-ID (POSIX)
        os.chmod(f, 0o4751)
        os.mkdir(m.mnt / "d700", 0o700)
        os.chmod(m.mnt / "d700", 0o700)
        os.mkfifo(m.mnt / "fifo", 0o600)
        os.chmod(m.mnt / "other.txt", 0o600)
        st = os.stat(f)
        assert stat.S_IMODE(st.st_mode) == 0o4751 and (st.st_uid, st.st_gid) == (1234, 5678)
        assert stat.S_ISFIFO(os.stat(m.mnt / "fifo").st_mode)
        seen = snapshot(m.mnt, xattrs=False, stat_fields=("mode", "uid", "gid"))
        m.unmount("--commit")
    finally:
        m.close()
    assert wimlib_verify(wim).returncode == 0
    out = tmp_path / "apply"
    wimlib_apply(wim, 1, out, extra=["--unix-data"])
    got = snapshot(out, xattrs=False, stat_fields=("mode", "uid", "gid"))
    # the apply root is our tmp dir (its mode is not in the image)
    seen.pop("."), got.pop(".")
    assert_same_tree(seen, got, "mount", "wimlib apply --unix-data")


def test_kill9_then_remount_replays_every_operation(tmp_path, base_src):
    """The journal covers every kind of edit: after kill -9 of the daemon (no commit), a
    remount shows exactly the tree, metadata and streams the mount showed before."""
    from tests.helpers import NTFS_PROBE_XATTRS
    from tests.helpers.ntfs import SD_EVERYONE_FULL
    require_fuse()
    wim = wimlib_capture(base_src, tmp_path / "j.wim", compress="lzx", name="j")
    m = RwMount(wim, tmp_path / "mnt", tmp_path / "state")
    try:
        m.mount()
        _do_everything(m.mnt)
        r = m.mnt / "rt"
        os.setxattr(r / "created.txt", "system.ntfs_acl", SD_EVERYONE_FULL)
        os.setxattr(r / "big.bin", "system.ntfs_attrib", struct.pack("<I", HIDDEN | ARCHIVE))
        os.setxattr(r / "big.bin", "system.ntfs_times", struct.pack("<QQ", 1 << 57, 1 << 58))
        os.removexattr(r / "created.txt", "user.ads")
        os.setxattr(r / "created.txt", "user.second", b"second stream")
        (r / "gone_dir").mkdir()
        os.rmdir(r / "gone_dir")
        with open(m.mnt / "base.txt", "r+b") as fh:     # staged twice
            fh.seek(20)
            fh.write(b"again")
        os.truncate(r / "big.bin", 1 << 20)
        before = snapshot(m.mnt, probe_xattrs=NTFS_PROBE_XATTRS, raw_xattrs=True,
                          xattr_transforms={"system.ntfs_times": lambda v: v[:16]})
        m.kill9()
        m.remount()
        after = snapshot(m.mnt, probe_xattrs=NTFS_PROBE_XATTRS, raw_xattrs=True,
                         xattr_transforms={"system.ntfs_times": lambda v: v[:16]})
        assert_same_tree(after, before, "after remount", "before kill")
        m.unmount("--commit")
    finally:
        m.close()
    assert wimlib_verify(wim).returncode == 0
    det = wimlib_dir_detailed(wim, 1)
    assert det["rt/created.txt"]["streams"] == {"": 8, "second": 13}
    assert det["rt/created.txt"]["sd"] == SD_EVERYONE_FULL.hex()
