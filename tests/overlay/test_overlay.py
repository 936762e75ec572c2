"""`Overlay` driven directly, the way the FUSE handlers drive it, on wimlib-made WIMs: no
kernel, no mount. Every test ends with `check_overlay(ov)` (link counts, staged files,
journal replay gives the same diff); commits are checked with wimlib-imagex apply/verify."""

from __future__ import annotations

import errno
import os
import shutil
import struct

import pytest

from tests.helpers import assert_same_tree, snapshot, wimlib_apply, wimlib_verify
from tests.helpers.ntfs import ACCESS_ALLOWED, FILE_ALL_ACCESS, ace, acl, security_descriptor
from tests.helpers.overlay import check_overlay, read_all, truncate, write
from tests.helpers.wimlib import wimlib_dir_detailed, wimlib_xml, xml_image_names
from wimfs.errors import BusyError, WimfsError
from wimfs.overlay import Change, Kind, Overlay

RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
ARCHIVE, HIDDEN, READONLY = 0x20, 0x2, 0x1
T2020 = 132_223_104_000_000_000      # 2020-01-01 as a FILETIME


@pytest.fixture
def ov(wim, tmp_path):
    o = Overlay(str(wim), 1, str(tmp_path / "staging"))
    o.start_journal(resume=False)
    yield o
    o.close()


def d(ov: Overlay, path: str):
    return ov.resolve(path)


def errno_of(fn, *args) -> int:
    with pytest.raises(OSError) as ei:
        fn(*args)
    return ei.value.errno


def test_create_write_truncate_read(ov):
    root = ov.image.root
    ino = ov.create(root, "new.bin", 0o644, 0, 0, "file")
    assert ino.attributes == ARCHIVE and ino.nlink == 1
    assert write(ov, ino, b"hello world") == 11
    assert write(ov, ino, b"WORLD", 6) == 5
    assert read_all(ov, ino.data) == b"hello WORLD"
    truncate(ov, ino, 5)
    assert read_all(ov, ino.data) == b"hello"
    # copy-on-write of a committed file keeps its content
    base = d(ov, "hardlinks/a/triple_1").inode
    orig = ov.read(base.data, 0, base.size)
    write(ov, base, b"X", 100)
    assert read_all(ov, base.data) == orig[:100] + b"X" + orig[101:]
    # the hard links see it
    assert d(ov, "hardlinks/c/deeper/triple_3").inode is base
    dd = ov.create(root, "newdir", 0o755, 0, 0, "dir")
    assert dd.is_directory and dd.nlink == 2
    assert errno_of(ov.create, root, "newdir", 0o644, 0, 0, "file") == errno.EEXIST
    assert errno_of(ov.create, d(ov, "new.bin"), "x", 0o644, 0, 0, "file") == errno.ENOTDIR
    assert errno_of(ov.create, root, "a/b", 0o644, 0, 0, "file") == errno.EINVAL
    assert errno_of(ov.create, root, "x" * 256, 0o644, 0, 0, "file") == errno.ENAMETOOLONG
    assert {e.path for e in ov.diff() if e.change == "added"} == {"/new.bin", "/newdir"}
    modified = [e.path for e in ov.diff() if e.change == "modified"]
    assert len(modified) == 1 and d(ov, modified[0]).inode is base
    check_overlay(ov)


def test_unlink_rmdir(ov):
    triple = d(ov, "hardlinks/a/triple_1").inode
    assert ov.unlink(d(ov, "hardlinks/a"), "triple_2") is triple
    assert triple.nlink == 2
    assert errno_of(ov.unlink, d(ov, "hardlinks/a"), "triple_2") == errno.ENOENT
    assert errno_of(ov.unlink, d(ov, "hardlinks"), "a") == errno.EISDIR
    assert errno_of(ov.rmdir, d(ov, "hardlinks"), "a") == errno.ENOTEMPTY
    assert errno_of(ov.rmdir, d(ov, "hardlinks/a"), "pair_1") == errno.ENOTDIR
    parent = d(ov, "emptydir/nested")
    links = parent.inode.nlink
    ov.rmdir(parent, "empty_leaf")
    assert parent.inode.nlink == links - 1
    assert [e.path for e in ov.diff() if e.change == "deleted"] == [
        "/emptydir/nested/empty_leaf", "/hardlinks/a/triple_2"]
    check_overlay(ov)


def test_rename_plain_replace_noreplace_exchange(ov):
    a, b = d(ov, "hardlinks/a"), d(ov, "hardlinks/b")
    pair = d(ov, "hardlinks/a/pair_1").inode
    ov.rename(a, "pair_1", b, "moved")
    assert d(ov, "hardlinks/b/moved").inode is pair
    # replacing a file: the replaced inode loses its last name and is returned
    victim = d(ov, "hardlinks/b/same_content_2").inode
    assert ov.rename(a, "same_content_1", b, "same_content_2") is victim
    assert not victim.dentries
    assert errno_of(ov.rename, a, "triple_1", b, "moved", RENAME_NOREPLACE) == errno.EEXIST
    # exchange a file and a directory
    f, sub = d(ov, "hardlinks/a/triple_1").inode, d(ov, "hardlinks/c").inode
    ov.rename(a, "triple_1", d(ov, "hardlinks"), "c", RENAME_EXCHANGE)
    assert d(ov, "hardlinks/c").inode is f and d(ov, "hardlinks/a/triple_1").inode is sub
    assert d(ov, "hardlinks/a/triple_1/deeper/triple_3").inode is f
    assert errno_of(ov.rename, a, "nope", b, "x", RENAME_EXCHANGE) == errno.ENOENT
    assert errno_of(ov.rename, a, "empty_linked_1", b, "none", RENAME_EXCHANGE) == errno.ENOENT
    # a directory into its own subtree; a directory over a file and vice versa
    assert errno_of(ov.rename, d(ov, "hardlinks"), "a", d(ov, "hardlinks/a/triple_1"),
                    "x") == errno.EINVAL
    assert errno_of(ov.rename, d(ov, "hardlinks"), "b", a, "empty_linked_1") == errno.ENOTDIR
    assert errno_of(ov.rename, a, "empty_linked_1", d(ov, "hardlinks"), "b") == errno.EISDIR
    # renaming a hard link onto another link of the same file does nothing
    assert ov.rename(d(ov, "hardlinks"), "c", d(ov, "hardlinks/a/triple_1/deeper"),
                     "triple_3") is None
    assert d(ov, "hardlinks/c") is not None
    check_overlay(ov)


def test_link(ov):
    ino = d(ov, "hardlinks/a/pair_1").inode
    ov.link(ino, ov.image.root, "third")
    assert ino.nlink == 3 and d(ov, "third").inode is ino
    assert errno_of(ov.link, ino, ov.image.root, "third") == errno.EEXIST
    assert errno_of(ov.link, d(ov, "hardlinks").inode, ov.image.root, "x") == errno.EPERM
    assert errno_of(ov.link, d(ov, "symlinks/rel_link").inode, ov.image.root,
                    "x") == errno.EMLINK
    write(ov, d(ov, "third").inode, b"through the new link")
    assert read_all(ov, d(ov, "hardlinks/b/pair_2").inode.data).startswith(b"through")
    check_overlay(ov)


def test_symlink_and_named_streams(ov):
    ov.create(ov.image.root, "lnk", 0o777, 0, 0, "symlink", target="hardlinks/a/pair_1")
    f = d(ov, "hardlinks/a/pair_1").inode
    ov.set_named_stream(f, "ads", b"alternate data")
    assert read_all(ov, f.named_streams["ads"]) == b"alternate data"
    ov.set_named_stream(f, "ads", b"replaced")
    assert read_all(ov, f.named_streams["ads"]) == b"replaced"
    ov.set_named_stream(f, "gone", b"x")
    ov.remove_named_stream(f, "gone")
    assert errno_of(ov.remove_named_stream, f, "gone") == errno.ENODATA
    check_overlay(ov)


def test_ntfs_xattrs(ov):
    f = d(ov, "hardlinks/a/pair_1").inode
    ov.set_ntfs_xattr(f, "system.ntfs_attrib", struct.pack("<I", HIDDEN | ARCHIVE | 0x10))
    assert f.attributes == HIDDEN | ARCHIVE         # the directory bit cannot be set
    ov.set_ntfs_xattr(f, "system.ntfs_attrib_be", struct.pack(">I", READONLY))
    assert f.attributes == READONLY
    ov.set_ntfs_xattr(f, "system.ntfs_times", struct.pack("<3Q", 111, 222, 333))
    assert (f.creation_time, f.last_write_time, f.last_access_time) == (111, 222, 333)
    ov.set_ntfs_xattr(f, "system.ntfs_times_be", struct.pack(">Q", 444))
    assert f.creation_time == 444
    sd = security_descriptor("S-1-5-32-544", "S-1-5-18",
                             acl(ace(ACCESS_ALLOWED, 0, FILE_ALL_ACCESS, "S-1-1-0")))
    ov.set_ntfs_xattr(f, "system.ntfs_acl", sd)
    assert ov.image.security_descriptor(f) == sd
    ov.set_ntfs_xattr(f, "system.ntfs_dos_name", b"pair~1")
    assert f.dentries[0].short_name == "PAIR~1"
    for name, bad in (("system.ntfs_attrib", b"123"), ("system.ntfs_acl", b"junk"),
                      ("system.ntfs_dos_name", b"bad name.toolong"),
                      ("system.ntfs_times", b"1234567"),
                      ("system.ntfs_reparse_data", b"\x00" * 7)):
        assert errno_of(ov.set_ntfs_xattr, f, name, bad) == errno.EINVAL, name
    assert errno_of(ov.set_ntfs_xattr, f, "system.ntfs_other", b"") == errno.EOPNOTSUPP
    # a reparse point on a hard-linked file is refused; on a single file it is set
    rp = struct.pack("<IHH", 0x80000017, 4, 0) + b"abcd"
    assert errno_of(ov.set_ntfs_xattr, f, "system.ntfs_reparse_data", rp) == errno.EMLINK
    g = d(ov, "hardlinks/a/same_content_1").inode
    ov.set_ntfs_xattr(g, "system.ntfs_reparse_data", rp)
    assert g.is_reparse_point and g.reparse_tag == 0x80000017
    assert read_all(ov, g.reparse) == b"abcd"
    ov.remove_ntfs_xattr(g, "system.ntfs_reparse_data")
    assert not g.is_reparse_point
    assert errno_of(ov.remove_ntfs_xattr, g, "system.ntfs_reparse_data") == errno.ENODATA
    ov.remove_ntfs_xattr(f, "system.ntfs_acl")
    ov.remove_ntfs_xattr(f, "system.ntfs_dos_name")
    assert f.security_id == -1 and f.dentries[0].short_name == ""
    check_overlay(ov)


def test_chmod_chown_times(ov):
    f = d(ov, "hardlinks/a/pair_1").inode
    ov.chmod(f, 0o444)
    assert f.attributes & READONLY
    ov.chmod(f, 0o644)
    assert not f.attributes & READONLY
    assert errno_of(ov.chown, f, 1, 1) == errno.EPERM       # no UNIX data in this image
    ov.set_times(f, atime=5, mtime=6)
    assert (f.last_access_time, f.last_write_time) == (5, 6)
    check_overlay(ov)


def test_commit_matches_the_same_edits_on_an_applied_tree(ov, wim, tmp_path):
    exp = tmp_path / "exp"
    wimlib_apply(wim, 1, exp)
    root = ov.image.root
    write(ov, ov.create(root, "new.txt", 0o644, 0, 0, "file"), b"new file\n")
    write(ov, d(ov, "hardlinks/a/pair_1").inode, b"PAIR")
    ov.create(root, "nd", 0o755, 0, 0, "dir")
    ov.rename(d(ov, "hardlinks"), "c", d(ov, "nd"), "c_moved")
    ov.unlink(d(ov, "hardlinks/a"), "triple_2")
    ov.link(d(ov, "new.txt").inode, d(ov, "nd"), "new_link")
    truncate(ov, d(ov, "hardlinks/b/same_content_2").inode, 4)
    check_overlay(ov)
    result = ov.commit()
    assert result.written_bytes > 0
    check_overlay(ov)
    assert not ov.diff()
    assert wimlib_verify(wim).returncode == 0
    (exp / "new.txt").write_bytes(b"new file\n")
    with open(exp / "hardlinks/a/pair_1", "r+b") as fh:
        fh.write(b"PAIR")
    (exp / "nd").mkdir()
    os.rename(exp / "hardlinks/c", exp / "nd/c_moved")
    os.unlink(exp / "hardlinks/a/triple_2")
    os.link(exp / "new.txt", exp / "nd/new_link")
    os.truncate(exp / "hardlinks/b/same_content_2", 4)
    wimlib_apply(wim, 1, tmp_path / "got")
    assert_same_tree(snapshot(tmp_path / "got", xattrs=False), snapshot(exp, xattrs=False),
                     "committed", "expected")
    info = wimlib_dir_detailed(wim)
    assert info["new.txt"]["attributes"] == ARCHIVE and info["nd/new_link"]["link_count"] == 2
    # a second commit after more edits, on the adopted state
    write(ov, d(ov, "new.txt").inode, b"again")
    ov.commit()
    assert wimlib_verify(wim).returncode == 0
    wimlib_apply(wim, 1, tmp_path / "got2")
    assert (tmp_path / "got2/nd/new_link").read_bytes() == b"againile\n"
    check_overlay(ov)


def test_discard_leaves_wim_byte_identical(wim, tmp_path):
    before = wim.read_bytes()
    staging = tmp_path / "st"
    ov = Overlay(str(wim), 1, str(staging))
    ov.start_journal(resume=False)
    write(ov, ov.create(ov.image.root, "x", 0o644, 0, 0, "file"), b"x" * 100_000)
    ov.rmdir(d(ov, "emptydir/nested"), "empty_leaf")
    check_overlay(ov)
    ov.discard()
    assert wim.read_bytes() == before and not staging.exists()


def test_second_overlay_on_a_locked_wim_is_busy(ov, tmp_path):
    with pytest.raises(BusyError):
        Overlay(ov.wim_path, 1, str(tmp_path / "other"))


def test_journal_replay_restores_the_session(ov, wim, tmp_path):
    """Everything the other tests did, then a crash: a fresh Overlay over the journal."""
    root = ov.image.root
    f = ov.create(root, "f", 0o644, 0, 0, "file")
    write(ov, f, b"data")
    ov.set_named_stream(f, "s", b"stream")
    ov.set_ntfs_xattr(f, "system.ntfs_attrib", struct.pack("<I", HIDDEN))
    ov.create(root, "dir", 0o755, 0, 0, "dir")
    ov.rename(root, "f", d(ov, "dir"), "g")
    ov.link(d(ov, "dir/g").inode, root, "h")
    ov.rename(d(ov, "hardlinks"), "a", d(ov, "hardlinks"), "b", RENAME_EXCHANGE)
    ov.unlink(d(ov, "hardlinks/b"), "pair_1")
    ov.rmdir(d(ov, "emptydir"), "empty_dir")
    write(ov, d(ov, "symlinks/target.txt").inode, b"T")
    ov.set_times(d(ov, "symlinks/target.txt").inode, mtime=T2020)   # touch -d after a write
    check_overlay(ov)
    # the journal on disk, then a fresh overlay replaying it into the same state
    shutil.copytree(ov.staging, tmp_path / "crashed")
    copy = tmp_path / "copy.wim"
    shutil.copyfile(wim, copy)
    again = Overlay(str(copy), 1, str(tmp_path / "crashed"))
    try:
        assert again.start_journal(resume=True) > 10
        assert [(e.change, e.path) for e in again.diff()] == \
            [(e.change, e.path) for e in ov.diff()]
        assert d(again, "dir/g").inode is d(again, "h").inode
        assert d(again, "h").inode.attributes == HIDDEN
        assert d(again, "symlinks/target.txt").inode.last_write_time == T2020
    finally:
        again.close()


def test_append_needs_a_name_before_any_work(ov, wim):
    write(ov, ov.create(ov.image.root, "x", 0o644, 0, 0, "file"), b"appended")
    before = wim.read_bytes()
    with pytest.raises(WimfsError, match="--append needs --name"):
        ov.commit(append=True)
    assert wim.read_bytes() == before and ov.diff()
    assert ov.commit(append=True, name="second").new_index == 2
    assert ov.index == 2 and not ov.diff()
    assert wimlib_verify(wim).returncode == 0
    assert xml_image_names(wimlib_xml(wim)) == ["base", "second"]
    check_overlay(ov)


def test_diff_kinds(ov):
    ov.rename(d(ov, "hardlinks/a"), "same_content_1", d(ov, "hardlinks/a"), "renamed")
    ov.create(ov.image.root, "added", 0o644, 0, 0, Kind.FILE)
    ov.chmod(d(ov, "hardlinks/a/triple_1").inode, 0o444)
    ov.unlink(d(ov, "hardlinks/b"), "same_content_2")
    got = {(e.change, e.path) for e in ov.diff()}
    assert got >= {(Change.RENAMED, "/hardlinks/a/renamed"), (Change.ADDED, "/added"),
                   (Change.DELETED, "/hardlinks/b/same_content_2")}
    assert any(c == Change.MODIFIED for c, _ in got)
    assert all(isinstance(c, Change) for c, _ in got)
    check_overlay(ov)
