"""Directories parsed on first use (wimfs.image_tree), checked on real mounts against
`wimlib-imagex apply`: each test mounts afresh, so the directories it touches first are
unparsed when it touches them."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess

import pytest

from tests.helpers import (assert_same_tree, mounted, require_tool, snapshot, wimlib_apply,
                           wimlib_capture)
from tests.helpers.rwmount import RwMount
from tests.helpers.trees import layered_tree as _tree

pytestmark = [pytest.mark.mount]


@pytest.fixture(scope="module")
def wim_and_applied(tmp_path_factory):
    require_tool("wimlib-imagex")
    d = tmp_path_factory.mktemp("lazy")
    _tree(d / "src")
    w = wimlib_capture(d / "src", d / "lazy.wim")
    applied = d / "applied"
    wimlib_apply(w, 1, applied)
    return w, applied


def _same_stat(a: os.stat_result, b: os.stat_result) -> None:
    assert stat.S_IFMT(a.st_mode) == stat.S_IFMT(b.st_mode)
    assert a.st_nlink == b.st_nlink
    assert a.st_mtime_ns == b.st_mtime_ns
    if not stat.S_ISDIR(a.st_mode):         # (a directory's size is the file system's own)
        assert a.st_size == b.st_size


def test_lookup_deep_in_an_unvisited_tree(wim_and_applied, tmp_path):
    w, applied = wim_and_applied
    with mounted(w, tmp_path / "m") as _:
        mnt = tmp_path / "m"
        rel = "a/b/c/d/e/deep.txt"
        _same_stat(os.stat(mnt / rel), os.stat(applied / rel))
        assert (mnt / rel).read_bytes() == (applied / rel).read_bytes()
        for parent in ("a/b/c/d/e", "a/b/c", "a"):
            _same_stat(os.stat(mnt / parent), os.stat(applied / parent))
        with pytest.raises(FileNotFoundError):
            os.stat(mnt / "a/b/c/d/e/missing")


def test_readdir_of_an_unvisited_directory(wim_and_applied, tmp_path):
    w, applied = wim_and_applied
    with mounted(w, tmp_path / "m"):
        mnt = tmp_path / "m"
        got = sorted(os.listdir(mnt / "wide"))
        assert got == sorted(os.listdir(applied / "wide"))
        for name in got:          # the attributes readdir handed the kernel
            _same_stat(os.lstat(mnt / "wide" / name), os.lstat(applied / "wide" / name))
        assert_same_tree(snapshot(mnt / "wide", xattrs=False),
                         snapshot(applied / "wide", xattrs=False), "mount", "apply")


def test_hard_links_across_visited_and_unvisited_directories(wim_and_applied, tmp_path):
    w, applied = wim_and_applied
    with mounted(w, tmp_path / "m"):
        mnt = tmp_path / "m"
        one = os.stat(mnt / "links/x/one.txt")      # y and z are not parsed yet
        assert one.st_nlink == os.stat(applied / "links/x/one.txt").st_nlink == 3
        assert os.listdir(mnt / "links/y") == ["two.txt"]
        two = os.stat(mnt / "links/y/two.txt")
        three = os.stat(mnt / "links/z/three.txt")
        assert one.st_ino == two.st_ino == three.st_ino
        assert two.st_nlink == three.st_nlink == 3
        assert (mnt / "links/z/three.txt").read_text() == "linked\n"


def test_rename_out_of_an_unvisited_directory(wim_and_applied, tmp_path):
    w, applied = wim_and_applied
    work = tmp_path / "rw.wim"
    shutil.copyfile(w, work)
    with RwMount(work, tmp_path / "m", tmp_path / "state") as m:
        os.rename(m.mnt / "move/inner/m.txt", m.mnt / "m.txt")
        os.rename(m.mnt / "move/inner/deeper", m.mnt / "deeper2")
        os.rename(m.mnt / "links/z/three.txt", m.mnt / "three.txt")
        m.unmount("--commit")
    expect = tmp_path / "expect"
    subprocess.run(["cp", "-a", applied, expect], check=True)     # keeps the hard links
    os.rename(expect / "move/inner/m.txt", expect / "m.txt")
    os.rename(expect / "move/inner/deeper", expect / "deeper2")
    os.rename(expect / "links/z/three.txt", expect / "three.txt")
    got = tmp_path / "got"
    wimlib_apply(work, 1, got)
    assert_same_tree(snapshot(got, xattrs=False), snapshot(expect, xattrs=False),
                     "commit applied by wimlib", "expected")
    assert subprocess.run(["wimlib-imagex", "verify", work], capture_output=True).returncode == 0


def _parsed(log_text: str) -> list[str]:
    return [line.split(": parsed directory ", 1)[1].rsplit(" (", 1)[0]
            for line in log_text.splitlines() if ": parsed directory " in line]


def test_mount_and_read_one_file_parses_only_the_directories_on_its_path(
        wim_and_applied, tmp_path, monkeypatch):
    w, applied = wim_and_applied
    monkeypatch.setenv("WIMFS_DEBUG", "1")       # the daemon logs each directory it parses
    mp = tmp_path / "m"
    with mounted(w, mp, log_path=tmp_path / "mount.log"):
        assert _parsed((tmp_path / "mount.log").read_text()) == []      # nothing at mount
        rel = "a/b/c/d/e/deep.txt"
        assert (mp / rel).read_bytes() == (applied / rel).read_bytes()
    assert _parsed((tmp_path / "mount.log").read_text()) == [
        "/", "/a", "/a/b", "/a/b/c", "/a/b/c/d", "/a/b/c/d/e"]


def _patch_subdir_offset(wim, path: str, value_of) -> None:
    """Point directory `path`'s entry list at `value_of(metadata, root_list)` in an
    uncompressed WIM, fixing the metadata resource's SHA-1 in the blob table (so only the
    tree is corrupt, as a writer with a bug would leave it)."""
    import hashlib
    import struct

    from wimfs.format.metadata import parse_dentry_tree, parse_security_data
    from wimfs.wim import Wim

    with Wim(str(wim)) as w:
        md = w.blob_table.metadata[0]
        buf = w.reader.read_all(md)
        where = md.rdesc.offset_in_wim
        table_at = w.header.blob_table_reshdr.offset_in_wim
        table = w.reader.pread(w.header.blob_table_reshdr.size_in_wim, table_at)
    root = parse_dentry_tree(buf, parse_security_data(buf)[1])
    d = root
    for part in path.split("/"):
        d = next(c for c in d.children if c.name == part)
    new = bytearray(buf)
    struct.pack_into("<Q", new, d.offset + 16, value_of(buf, root.subdir_offset))
    assert table.count(md.hash) == 1
    with open(wim, "r+b") as f:
        f.seek(where)
        f.write(new)
        f.seek(table_at + table.index(md.hash))
        f.write(hashlib.sha1(new).digest())


@pytest.mark.parametrize("kind", ["cycle", "out-of-range"])
def test_corrupt_directory_found_late_gives_eio_and_the_mount_survives(
        wim_and_applied, tmp_path, kind):
    src = tmp_path / "src"
    _tree(src)
    w = wimlib_capture(src, tmp_path / "bad.wim", compress="none")
    _patch_subdir_offset(w, "a/b/c", (lambda buf, root_list: root_list) if kind == "cycle"
                         else (lambda buf, root_list: len(buf) + 64))
    mp = tmp_path / "m"
    log = tmp_path / "mount.log"
    with mounted(w, mp, log_path=log):
        assert (mp / "a/b/other.txt").read_text() == "other\n"
        for probe in (lambda: os.listdir(mp / "a/b/c"), lambda: os.stat(mp / "a/b/c/d")):
            with pytest.raises(OSError) as ei:
                probe()
            assert ei.value.errno == errno.EIO
        # the rest of the image is served as before
        assert sorted(os.listdir(mp / "wide")) == sorted(os.listdir(src / "wide"))
        assert (mp / "links/y/two.txt").read_text() == "linked\n"
    text = log.read_text()
    assert "directory /a/b/c" in text and "ERROR" in text, text[-2000:]


def test_index_all_opens_an_image_only_when_its_folder_is_entered(tmp_path, monkeypatch):
    require_tool("wimlib-imagex")
    for k in (1, 2):
        _tree(tmp_path / f"src{k}")
        (tmp_path / f"src{k}" / f"only{k}.txt").write_text(f"{k}\n")
    w = wimlib_capture(tmp_path / "src1", tmp_path / "two.wim")
    wimlib_capture(tmp_path / "src2", w, append=True)
    exp = tmp_path / "applied2"
    wimlib_apply(w, 2, exp)
    monkeypatch.setenv("WIMFS_DEBUG", "1")
    mp, log = tmp_path / "m", tmp_path / "all.log"
    with mounted(w, mp, "--index", "all", log_path=log):
        assert sorted(os.listdir(mp)) == ["1", "2"]
        assert os.path.isdir(mp / "1") and os.path.isdir(mp / "2")
        assert _parsed(log.read_text()) == []          # no image opened yet
        assert sorted(os.listdir(mp / "2")) == sorted(os.listdir(exp))
        assert (mp / "2/a/b/c/d/e/deep.txt").read_text() == "deep\n"
        st1, st2 = os.stat(mp / "2/links/x/one.txt"), os.stat(mp / "2/links/z/three.txt")
        assert st1.st_ino == st2.st_ino and st1.st_nlink == 3
    parsed = [line for line in log.read_text().splitlines() if ": parsed directory " in line]
    assert parsed and all("image 2: " in line for line in parsed), parsed


def test_rw_mount_edit_parses_only_the_directories_on_its_path(
        wim_and_applied, tmp_path, monkeypatch):
    """A read-write mount parses what it is asked for; its commit copies the directories
    nobody visited through (checked by wimlib's apply of the result)."""
    w, applied = wim_and_applied
    work = tmp_path / "rw.wim"
    shutil.copyfile(w, work)
    monkeypatch.setenv("WIMFS_DEBUG", "1")
    with RwMount(work, tmp_path / "m", tmp_path / "state") as m:
        assert _parsed(m.log()) == []
        (m.mnt / "a/b/c/d/e/deep.txt").write_text("changed\n")
        assert _parsed(m.log()) == ["/", "/a", "/a/b", "/a/b/c", "/a/b/c/d", "/a/b/c/d/e"]
        m.unmount("--commit")
    expect = tmp_path / "expect"
    subprocess.run(["cp", "-a", applied, expect], check=True)
    (expect / "a/b/c/d/e/deep.txt").write_text("changed\n")
    got = tmp_path / "got"
    wimlib_apply(work, 1, got)
    assert_same_tree(snapshot(got, xattrs=False), snapshot(expect, xattrs=False),
                     "commit applied by wimlib", "expected")
    assert subprocess.run(["wimlib-imagex", "verify", work], capture_output=True).returncode == 0


def test_rw_mount_corrupt_directory_found_late_gives_eio_and_commit_refuses(tmp_path):
    """A read-write mount of an image whose directory a/b/c is cyclic comes up (nothing is
    parsed at mount); that directory gives EIO, the rest works, and a commit, which would
    have to copy it, fails with one line and leaves the WIM as it was."""
    require_tool("wimlib-imagex")
    src = tmp_path / "src"
    _tree(src)
    w = wimlib_capture(src, tmp_path / "bad.wim", compress="none")
    _patch_subdir_offset(w, "a/b/c", lambda buf, root_list: root_list)
    before = w.read_bytes()
    with RwMount(w, tmp_path / "m", tmp_path / "state") as m:
        with pytest.raises(OSError) as ei:
            os.listdir(m.mnt / "a/b/c")
        assert ei.value.errno == errno.EIO
        (m.mnt / "wide/w01").write_bytes(b"still writable")
        assert (m.mnt / "wide/w01").read_bytes() == b"still writable"
        r = m.commit(check=False)
        assert r.returncode != 0 and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "a/b/c" in r.stderr, r.stderr
        assert (m.mnt / "a/b/other.txt").read_text() == "other\n"     # still mounted
    assert w.read_bytes() == before
