"""Commit, discard, append, --force, --check, failures, the lock, status/mounts."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import assert_same_tree, snapshot, wimlib_apply, wimlib_info, wimlib_verify
from tests.helpers.rwmount import is_mountpoint

from .conftest import sha1_file

pytestmark = [pytest.mark.mount]


def _verify_ok(wim):
    v = wimlib_verify(wim)
    assert v.returncode == 0, (v.stdout, v.stderr)
    return v


def _applied(wim, index, dest, **kw):
    wimlib_apply(wim, index, dest)
    return snapshot(dest, xattrs=False, **kw)


def _edit(m: Path, tag: str):
    (m / f"new_{tag}").mkdir()
    (m / f"new_{tag}" / "f.txt").write_bytes(f"content {tag}\n".encode())
    with open(m / "chunks" / "text_32769.txt", "ab") as fh:
        fh.write(tag.encode())


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_discard_leaves_wim_byte_identical(wim_copy, rw_factory):
    wim = wim_copy("lzx")
    before = sha1_file(wim)
    m = rw_factory(wim)
    _edit(m.mnt, "x")
    os.unlink(m.mnt / "chunks" / "rand_1.bin")
    (m.mnt / "big").write_bytes(os.urandom(2 << 20))
    staging = m.record()["staging"]
    assert os.path.isdir(staging)
    m.unmount("--discard")
    assert not is_mountpoint(m.mnt)
    assert sha1_file(wim) == before
    assert not os.path.exists(staging)
    assert m.record() is None


def test_unmount_needs_commit_or_discard(wim_copy, rw_factory):
    m = rw_factory(wim_copy("xpress"))
    r = m.unmount(check=False)
    assert r.returncode == 2 and "--commit or --discard" in r.stderr
    assert is_mountpoint(m.mnt)
    r = m.unmount("--commit", "--discard", check=False)
    assert r.returncode == 2
    assert is_mountpoint(m.mnt)


def test_commit_stays_mounted_then_more_edits_and_second_commit(wim_copy, rw_factory, tmp_path):
    wim = wim_copy("lzx")
    m = rw_factory(wim)
    _edit(m.mnt, "one")
    r = m.commit()
    assert "committed to image 1" in r.stdout
    assert is_mountpoint(m.mnt)
    _verify_ok(wim)
    first = snapshot(m.mnt, xattrs=False)
    assert_same_tree(first, _applied(wim, 1, tmp_path / "a1"), "mount", "apply after commit 1")
    # keep editing: the committed files, new ones, deletions
    _edit(m.mnt, "two")
    with open(m.mnt / "new_one" / "f.txt", "r+b") as fh:
        fh.write(b"C")
    os.rename(m.mnt / "new_one", m.mnt / "new_two" / "moved_one")
    os.unlink(m.mnt / "chunks" / "rand_32768.bin")
    st = m.status()
    assert st["changes"], st
    m.commit()
    _verify_ok(wim)
    second = snapshot(m.mnt, xattrs=False)
    assert_same_tree(second, _applied(wim, 1, tmp_path / "a2"), "mount", "apply after commit 2")
    assert (m.mnt / "new_two" / "moved_one" / "f.txt").read_bytes() == b"Content one\n"
    assert wimlib_info(wim)["header"]["image_count"] == 1
    # nothing left to commit: the overlay is empty, a commit still works
    assert m.status()["changes"] == []
    m.commit()
    m.unmount("--commit")
    _verify_ok(wim)
    assert_same_tree(second, _applied(wim, 1, tmp_path / "a3"), "mount", "apply after unmount")


def test_commit_does_not_rewrite_unchanged_data(wim_copy, rw_factory):
    wim = wim_copy("lzx")
    size0 = os.path.getsize(wim)
    m = rw_factory(wim)
    (m.mnt / "tiny").write_bytes(b"x")
    m.commit()
    grown = os.path.getsize(wim) - size0
    # metadata + tables only: far less than the image's data
    assert grown < size0 / 2, (grown, size0)


def test_append_keeps_original_image(wim_copy, rw_factory, tmp_path, rw_src):
    wim = wim_copy("lzx")
    orig = _applied(wim, 1, tmp_path / "orig")
    m = rw_factory(wim)
    _edit(m.mnt, "app")
    os.unlink(m.mnt / "chunks" / "rand_1.bin")
    seen = snapshot(m.mnt, xattrs=False)
    r = m.commit("--append", check=False)
    assert r.returncode != 0 and "--name" in r.stderr
    m.commit("--append", "--name", "edited")
    _verify_ok(wim)
    info = wimlib_info(wim)
    assert info["header"]["image_count"] == 2
    assert [i["name"] for i in info["images"]] == ["base", "edited"]
    assert_same_tree(_applied(wim, 1, tmp_path / "i1"), orig, "image 1", "original")
    assert_same_tree(seen, _applied(wim, 2, tmp_path / "i2"), "mount", "image 2")
    # later edits and commits go to the new image
    (m.mnt / "after_append").write_bytes(b"later")
    m.unmount("--commit")
    _verify_ok(wim)
    assert wimlib_info(wim)["header"]["image_count"] == 2
    assert (Path(tmp_path / "i2b") / "after_append").exists() is False
    wimlib_apply(wim, 2, tmp_path / "i2b")
    assert (tmp_path / "i2b" / "after_append").read_bytes() == b"later"
    assert_same_tree(_applied(wim, 1, tmp_path / "i1b"), orig, "image 1", "original")


def test_commit_refuses_open_files_unless_forced(wim_copy, rw_factory, tmp_path):
    wim = wim_copy("xpress")
    m = rw_factory(wim)
    fh = open(m.mnt / "busy.txt", "wb")
    try:
        fh.write(b"first")
        fh.flush()
        before = sha1_file(wim)
        r = m.commit(check=False)
        assert r.returncode != 0
        assert "/busy.txt" in r.stderr and "--force" in r.stderr
        assert sha1_file(wim) == before
        r = m.unmount("--commit", check=False)
        assert r.returncode != 0 and is_mountpoint(m.mnt)
        m.commit("--force")
        _verify_ok(wim)
        wimlib_apply(wim, 1, tmp_path / "a1")
        assert (tmp_path / "a1" / "busy.txt").read_bytes() == b"first"
        # the open file keeps working after the forced commit
        fh.write(b" second")
        fh.flush()
        assert (m.mnt / "busy.txt").read_bytes() == b"first second"
    finally:
        fh.close()
    m.unmount("--commit")
    _verify_ok(wim)
    wimlib_apply(wim, 1, tmp_path / "a2")
    assert (tmp_path / "a2" / "busy.txt").read_bytes() == b"first second"


def test_read_only_open_does_not_block_commit(wim_copy, rw_factory):
    m = rw_factory(wim_copy("xpress"))
    (m.mnt / "f").write_bytes(b"x")
    with open(m.mnt / "f", "rb"):
        m.commit()


def test_check_writes_integrity_table(wim_copy, rw_factory):
    wim = wim_copy("lzx")
    m = rw_factory(wim)
    _edit(m.mnt, "chk")
    m.commit("--check")
    v = _verify_ok(wim)
    assert b"does not contain integrity information" not in v.stdout + v.stderr
    hdr = subprocess.run(["wimlib-imagex", "info", "--header", str(wim)], capture_output=True,
                         text=True).stdout
    fields = dict(x.split("=", 1) for x in hdr.splitlines() if x.startswith("Integrity"))
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    assert int(fields["Integrity Size"], 0) > 0 and int(fields["Integrity Offset"], 0) > 0, hdr
    m.unmount("--discard")


def test_second_rw_mount_is_refused(wim_copy, rw_factory, tmp_path):
    wim = wim_copy("xpress")
    rw_factory(wim)
    state = tmp_path / "state"
    n_staging = len(os.listdir(state / "staging"))
    m2 = rw_factory(wim, name="m2", mount=False)
    r = m2.mount(check=False)
    assert r.returncode == 7, r.stderr
    assert "already mounted read-write" in r.stderr
    assert not is_mountpoint(m2.mnt)
    # the failed mount leaves no orphaned overlay behind
    assert len(os.listdir(state / "staging")) == n_staging


def test_status_and_mounts(wim_copy, rw_factory):
    m = rw_factory(wim_copy("lzx"))
    (m.mnt / "added.txt").write_bytes(b"a")
    with open(m.mnt / "chunks" / "rand_1.bin", "ab") as fh:
        fh.write(b"m")
    os.unlink(m.mnt / "chunks" / "rand_32767.bin")
    os.rename(m.mnt / "chunks" / "text_32768.txt", m.mnt / "renamed.txt")
    with open(m.mnt / "open.txt", "wb"):
        st = m.status()
        assert st["open_for_write"] == ["/open.txt"]
    ch = {(c["change"], c["path"]) for c in st["changes"]}
    assert ("added", "/added.txt") in ch
    assert ("modified", "/chunks/rand_1.bin") in ch
    assert ("deleted", "/chunks/rand_32767.bin") in ch
    assert ("renamed", "/renamed.txt") in ch
    rec = m.record()
    assert rec["status"] == "ok" and rec["read_write"] is True and rec["pid"] > 0
    assert os.path.samefile(rec["wim"], m.wim)
    txt = m.cli("status", m.mnt, "--diff", check=True).stdout
    assert "added" in txt and "/added.txt" in txt


def test_failed_commit_disk_full_keeps_overlay(wim_copy, rw_factory, tmp_path):
    fs = tmp_path / "small"
    with tmpfs(fs, "24m"):
        wim = fs / "w.wim"
        wim.write_bytes(wim_copy("lzx").read_bytes())
        before = sha1_file(wim)
        m = rw_factory(wim)
        payload = os.urandom(8 << 20)
        (m.mnt / "payload.bin").write_bytes(payload)
        filler = fs / "filler"
        free = os.statvfs(fs).f_bavail * os.statvfs(fs).f_frsize
        with open(filler, "wb") as f:
            f.write(bytes(max(0, free - (2 << 20))))
        r = m.commit(check=False)
        assert r.returncode != 0
        assert "space" in r.stderr.lower(), r.stderr
        assert is_mountpoint(m.mnt) and m.record()["status"] == "ok"
        assert (m.mnt / "payload.bin").read_bytes() == payload
        assert sha1_file(wim) == before, "a failed commit changed the WIM"
        _verify_ok(wim)
        r = m.unmount("--commit", check=False)
        assert r.returncode != 0 and is_mountpoint(m.mnt)
        os.unlink(filler)
        m.unmount("--commit")
        _verify_ok(wim)
        wimlib_apply(wim, 1, tmp_path / "out")
        assert (tmp_path / "out" / "payload.bin").read_bytes() == payload


def test_failed_commit_read_only_wim_keeps_overlay(wim_copy, rw_factory, tmp_path):
    """The WIM's directory is a read-only bind mount: the mount works, commits fail and say
    why, the overlay stays; once the bind is writable again the commit goes through."""
    real, ro = tmp_path / "real", tmp_path / "ro"
    real.mkdir()
    ro.mkdir()
    wim = real / "w.wim"
    wim.write_bytes(wim_copy("xpress").read_bytes())
    before = sha1_file(wim)
    r = subprocess.run(["mount", "--bind", str(real), str(ro)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot bind-mount: {r.stderr.strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        m = rw_factory(ro / "w.wim")
        (m.mnt / "f").write_bytes(b"data")
        r = m.commit(check=False)
        assert r.returncode != 0
        assert "read-only" in r.stderr.lower(), r.stderr
        r = m.unmount("--commit", check=False)
        assert r.returncode != 0
        assert is_mountpoint(m.mnt) and m.record()["status"] == "ok"
        assert (m.mnt / "f").read_bytes() == b"data"
        assert sha1_file(wim) == before
        subprocess.run(["mount", "-o", "remount,bind,rw", str(ro)], check=True)
        m.unmount("--commit")
    finally:
        subprocess.run(["umount", "-l", str(ro)], capture_output=True)
    _verify_ok(wim)
    wimlib_apply(wim, 1, tmp_path / "out")
    assert (tmp_path / "out" / "f").read_bytes() == b"data"


def test_dead_daemon_needs_remount_cleanup_and_purge(wim_copy, rw_factory):
    wim = wim_copy("xpress")
    before = sha1_file(wim)
    m = rw_factory(wim)
    (m.mnt / "kept.txt").write_bytes(b"kept")
    m.kill9()
    rec = m.record()
    assert rec["status"] == "needs remount"
    staging = rec["staging"]
    r = m.unmount("--discard", check=False)
    assert r.returncode != 0 and "remount" in r.stderr
    r = m.commit(check=False)
    assert r.returncode != 0 and "remount" in r.stderr
    r = m.cli("cleanup", check=True)
    assert "kept the overlay" in r.stdout and os.path.isdir(staging)
    assert not is_mountpoint(m.mnt)            # the dead FUSE mount is gone
    m.remount()
    assert (m.mnt / "kept.txt").read_bytes() == b"kept"
    assert "nothing to do" in m.remount().stdout
    m.kill9()
    m.cli("cleanup", "--purge", check=True)
    assert not os.path.exists(staging) and m.record() is None
    assert not is_mountpoint(m.mnt)
    assert sha1_file(wim) == before


def test_missing_wim_makes_record_invalid(wim_copy, rw_factory, tmp_path):
    wim = wim_copy("xpress")
    m = rw_factory(wim)
    m.kill9()
    moved = tmp_path / "elsewhere.wim"
    os.rename(wim, moved)
    assert m.record()["status"] == "invalid"
    r = m.remount(check=False)
    assert r.returncode != 0 and "cannot be recovered" in r.stderr
    os.rename(moved, wim)
    m.remount()
    m.unmount("--discard")


def test_open_unlinked_file_does_not_block_commit(wim_copy, rw_factory, tmp_path):
    wim = wim_copy("xpress")
    m = rw_factory(wim)
    fd = os.open(m.mnt / "tmp", os.O_CREAT | os.O_RDWR)
    try:
        os.write(fd, b"scratch")
        os.unlink(m.mnt / "tmp")
        (m.mnt / "kept").write_bytes(b"kept")
        assert m.status()["open_for_write"] == []
        m.commit()
        os.write(fd, b" more")                 # still usable after the commit
        assert os.pread(fd, 100, 0) == b"scratch more"
    finally:
        os.close(fd)
    m.unmount("--commit")
    wimlib_apply(wim, 1, tmp_path / "out")
    assert (tmp_path / "out" / "kept").read_bytes() == b"kept"
    assert not (tmp_path / "out" / "tmp").exists()


def test_rw_mount_of_second_image_leaves_first_alone(wim_copy, rw_factory, tmp_path, rw_src):
    from tests.helpers import wimlib_append
    wim = wim_copy("lzx", src=rw_src / "chunks")
    wimlib_append(rw_src / "symlinks", wim, name="second")
    one = _applied(wim, 1, tmp_path / "one")
    m = rw_factory(wim, "--index", "2")
    (m.mnt / "added_to_2").write_bytes(b"two")
    seen = snapshot(m.mnt, xattrs=False)
    m.unmount("--commit")
    _verify_ok(wim)
    info = wimlib_info(wim)
    assert [i["name"] for i in info["images"]] == ["base", "second"]
    assert_same_tree(_applied(wim, 1, tmp_path / "one_after"), one, "image 1", "before")
    assert_same_tree(seen, _applied(wim, 2, tmp_path / "two"), "mount", "image 2")
