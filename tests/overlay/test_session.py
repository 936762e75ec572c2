"""The path API (`wimfs.overlay.open_image`) against wimlib: edits made through a session,
committed, then `wimlib-imagex apply`/`verify`/`dir --detailed` as the oracle; the same edits
made with os calls on an applied copy of the original are the expected tree."""

from __future__ import annotations

import calendar
import errno
import fcntl
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import (REPO_ROOT, assert_same_tree, snapshot, wimlib_apply,
                           wimlib_verify)
from tests.helpers.wimlib import wimlib_dir_detailed
from wimfs.errors import (BusyError, ImageNotFoundError, PathNotFoundError, WimCorruptError,
                          WimfsError)
from wimfs.format.security import inherit
from wimfs.overlay import open_image

ARCHIVE, DIRECTORY = 0x20, 0x10


def applied(wim, dest: Path) -> dict:
    wimlib_apply(wim, 1, dest)
    return snapshot(dest, xattrs=False)


def test_edits_match_the_same_edits_on_an_applied_tree(wim, tmp_path):
    exp = tmp_path / "exp"
    wimlib_apply(wim, 1, exp)
    local = tmp_path / "local.bin"
    local.write_bytes(os.urandom(3 << 20) + b"tail")      # more than one copy chunk
    os.utime(local, ns=(1_500_000_000_123_456_700, 1_500_000_000_123_456_700))
    staging = tmp_path / "staging"
    with open_image(str(wim), 1, staging_dir=str(staging)) as s:
        s.write_file("/new.txt", b"brand new\n")
        s.write_file("hardlinks/a/pair_1", b"replaced through one link\n")
        s.mkdirs("x/y/z")
        s.copy_in("x/y/z/copied.bin", str(local))
        s.remove("symlinks/dir", recursive=True)
        s.remove("hardlinks/a/triple_2")
        s.rename("unicode", "x/moved_unicode")
        s.link("new.txt", "x/y/new_link.txt")
        s.write_file("x/y/new_link.txt", b"written through the second link\n")
        assert s.changed
    assert wimlib_verify(wim).returncode == 0
    assert not os.listdir(staging)
    (exp / "new.txt").write_bytes(b"brand new\n")
    (exp / "hardlinks/a/pair_1").write_bytes(b"replaced through one link\n")
    (exp / "x/y/z").mkdir(parents=True)
    shutil.copyfile(local, exp / "x/y/z/copied.bin")
    shutil.rmtree(exp / "symlinks/dir")
    os.unlink(exp / "hardlinks/a/triple_2")
    os.rename(exp / "unicode", exp / "x/moved_unicode")
    os.link(exp / "new.txt", exp / "x/y/new_link.txt")
    (exp / "x/y/new_link.txt").write_bytes(b"written through the second link\n")
    got = tmp_path / "got"
    assert_same_tree(applied(wim, got), snapshot(exp, xattrs=False), "session", "expected")
    # copy_in keeps the local file's mtime (FILETIME: 100 ns units)
    assert os.stat(got / "x/y/z/copied.bin").st_mtime_ns == 1_500_000_000_123_456_700


def test_new_entries_inherit_like_a_mount(sd_wim, tmp_path):
    before = wimlib_dir_detailed(sd_wim)
    parent_sd = bytes.fromhex(before["hardlinks"]["sd"])
    t0 = time.time()
    with open_image(str(sd_wim), 1, staging_dir=str(tmp_path / "st")) as s:
        s.write_file("hardlinks/new_file.txt", b"new\n")
        s.mkdirs("hardlinks/new_dir/deeper")
        s.write_file("hardlinks/new_dir/deeper/f", b"f")
        s.write_file("hardlinks/a/pair_1", b"replaced\n", stream="ads")
        s.write_file("hardlinks/b/same_content_2", b"a new stream\n", stream="added")
    t1 = time.time()
    after = wimlib_dir_detailed(sd_wim)
    f, d = after["hardlinks/new_file.txt"], after["hardlinks/new_dir"]
    assert f["attributes"] == ARCHIVE
    assert d["attributes"] == DIRECTORY
    assert bytes.fromhex(f["sd"]) == inherit(parent_sd, False)
    assert bytes.fromhex(d["sd"]) == inherit(parent_sd, True)
    assert bytes.fromhex(after["hardlinks/new_dir/deeper"]["sd"]) == inherit(
        inherit(parent_sd, True), True)
    assert bytes.fromhex(after["hardlinks/new_dir/deeper/f"]["sd"]) == inherit(
        inherit(inherit(parent_sd, True), True), False)
    # creation time: now (wimlib prints whole seconds, UTC)
    created = calendar.timegm(time.strptime(f["creation_time"], "%a %b %d %H:%M:%S %Y UTC"))
    assert int(t0) - 1 <= created <= t1 + 1
    assert after["hardlinks/a/pair_1"]["streams"]["ads"] == len(b"replaced\n")
    assert after["hardlinks/b/same_content_2"]["streams"]["added"] == len(b"a new stream\n")
    # the other entries keep their metadata
    for rel in ("emptydir", "hardlinks/a/triple_1", "symlinks/rel_link", "unicode"):
        assert after[rel] == before[rel], rel
    assert wimlib_verify(sd_wim).returncode == 0
    with open_image(str(sd_wim), 1, write=False) as s:
        assert s.read_file("hardlinks/a/pair_1", stream="ads") == b"replaced\n"
        assert s.read_file("hardlinks/new_dir/deeper/f") == b"f"


def test_exception_in_block_leaves_wim_byte_identical(wim, tmp_path):
    data = wim.read_bytes()
    staging = tmp_path / "staging"
    with pytest.raises(RuntimeError, match="boom"):
        with open_image(str(wim), 1, staging_dir=str(staging)) as s:
            s.write_file("new.txt", b"x" * 100_000)
            s.remove("hardlinks", recursive=True)
            raise RuntimeError("boom")
    assert wim.read_bytes() == data
    assert os.listdir(staging) == []
    # the lock is gone with the session
    with open_image(str(wim), 1, staging_dir=str(staging)) as s:
        assert not s.changed
    assert wim.read_bytes() == data


def test_locked_wim_is_busy(wim, tmp_path):
    fd = os.open(wim, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(BusyError) as ei:
            open_image(str(wim), 1, staging_dir=str(tmp_path / "st"))
        assert ei.value.exit_code == 7
        assert os.listdir(tmp_path / "st") == []
        # read-only sessions take no lock
        with open_image(str(wim), 1, write=False) as s:
            assert s.is_dir("hardlinks")
    finally:
        os.close(fd)


def test_path_queries_and_errors(wim, tmp_path):
    with open_image(str(wim), 1, staging_dir=str(tmp_path / "st")) as s:
        assert s.resolve("HARDLINKS/A/PAIR_1") == "/hardlinks/a/pair_1"
        assert s.resolve("hardlinks/nope") is None
        assert s.exists("/hardlinks/a/pair_1") and not s.exists("hardlinks/A/pair_1")
        assert sorted(s.listdir("hardlinks")) == ["a", "b", "c"]
        st = s.stat("hardlinks/a/pair_1")
        assert (st.size, st.is_dir) == (5000, False)
        assert s.stat("hardlinks").is_dir
        with s.open_file("hardlinks/a/triple_1") as f:
            f.seek(60000)
            assert f.read(100) == s.read_file("hardlinks/a/triple_1")[60000:60100]
        with pytest.raises(PathNotFoundError) as ei:
            s.read_file("no/such")
        assert isinstance(ei.value, FileNotFoundError) and ei.value.exit_code == 4
        with pytest.raises(PathNotFoundError):
            s.write_file("no/such/file", b"")
        with pytest.raises(FileExistsError) as ei2:
            s.link("hardlinks/a/pair_1", "hardlinks/b/pair_2")
        assert isinstance(ei2.value, WimfsError) and ei2.value.errno == errno.EEXIST
        with pytest.raises(WimfsError) as ei3:
            s.remove("hardlinks")
        assert ei3.value.errno == errno.ENOTEMPTY
        with pytest.raises(NotADirectoryError):
            s.mkdirs("hardlinks/a/pair_1/sub")
        with pytest.raises(IsADirectoryError):
            s.write_file("hardlinks", b"")
        assert not s.changed
    with open_image(str(wim), 1, write=False) as s:
        with pytest.raises(WimfsError) as ei4:
            s.write_file("x", b"")
        assert ei4.value.errno == errno.EROFS


NO_FUSE = """
import sys
sys.modules["pyfuse3"] = None
sys.modules["trio"] = None
from wimfs.overlay import open_image
with open_image(sys.argv[1], 1, staging_dir=sys.argv[2]) as s:
    s.mkdirs("made/without/fuse")
    s.write_file("made/without/fuse/f.txt", b"no fuse\\n")
assert not any(m.startswith("wimfs.fuse") for m in sys.modules), "wimfs.fuse was imported"
"""


def test_works_without_pyfuse3_and_trio(wim, tmp_path):
    r = subprocess.run([sys.executable, "-c", NO_FUSE, str(wim), str(tmp_path / "st")],
                       cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    wimlib_apply(wim, 1, tmp_path / "out")
    assert (tmp_path / "out/made/without/fuse/f.txt").read_bytes() == b"no fuse\n"


CRASH = """
import sys
from wimfs.overlay import open_image
with open_image(sys.argv[1], 1, staging_dir=sys.argv[2]) as s:
    for i in range(40):
        s.write_file(f"big/f{i}", bytes([i]) * 200_000 + bytes(range(256)) * i)
    s.remove("hardlinks", recursive=True)
    s.rename("unicode", "big/unicode")
print("committed", flush=True)
"""


def test_kill9_during_edits_and_commit_keeps_old_or_new_state(wim, tmp_path):
    with open_image(str(wim), 1, staging_dir=str(tmp_path / "st")) as s:
        s.mkdirs("big")
    base = tmp_path / "base.wim"
    shutil.copyfile(wim, base)
    old = applied(base, tmp_path / "old2")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", CRASH, str(wim), str(tmp_path / "st")],
                       env=env, capture_output=True, text=True, timeout=300)
    full = time.monotonic() - t0
    assert r.returncode == 0 and "committed" in r.stdout, r.stderr
    new = applied(wim, tmp_path / "new")
    assert new != old
    rnd = random.Random(17)
    for trial in range(10):
        shutil.copyfile(base, wim)
        p = subprocess.Popen([sys.executable, "-c", CRASH, str(wim), str(tmp_path / "st")],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(full * (trial + rnd.random()) / 10)    # spread over the whole run
        p.kill()
        p.wait()
        assert wimlib_verify(wim).returncode == 0, f"trial {trial}"
        got = applied(wim, tmp_path / f"t{trial}")
        assert got in (old, new), f"trial {trial}: neither the old nor the new state"


def test_bad_index_leaves_nothing_behind(wim, tmp_path):
    staging = tmp_path / "st"
    with pytest.raises(ImageNotFoundError) as ei:
        open_image(str(wim), 9, staging_dir=str(staging))
    assert ei.value.exit_code == 4
    assert os.listdir(staging) == []
    with open_image(str(wim), 1, staging_dir=str(staging)) as s:   # the lock was released
        with pytest.raises(WimfsError) as root:
            s.remove("/", recursive=True)
        assert root.value.errno == errno.EBUSY
        s.rename("hardlinks/a/pair_1", "hardlinks/b/same_content_2")     # replaces a file
        assert s.read_file("hardlinks/b/same_content_2") == \
            s.read_file("hardlinks/b/pair_2")
        assert s.diff()
    assert os.listdir(staging) == []


def test_data_missing_from_a_split_part_is_an_error(corpus, tmp_path):
    """Part 1 of a split set without the other part: streams whose blobs are in part 2
    fail to read (never read as empty); wimlib's apply with --ref gives the real bytes."""
    part1 = corpus / "wim/pebakery/Split.swm"
    part2 = corpus / "wim/pebakery/Split2.swm"
    wimlib_apply(part1, 1, tmp_path / "ref", extra=[f"--ref={part2}"])
    missing = good = 0
    with open_image(str(part1), 1, write=False) as s:
        for name in s.listdir("/"):
            if s.is_dir(name):
                continue
            try:
                data = s.read_file(name)
            except WimCorruptError:
                missing += 1
                continue
            assert data == (tmp_path / "ref" / name).read_bytes(), name
            good += 1
    assert missing and good


HOLD = """
import sys, time
from wimfs.overlay import open_image
s = open_image(sys.argv[1], 1)
s.write_file("held.txt", b"x" * 100_000)
print("ready", flush=True)
time.sleep(600)
"""


def test_cleanup_removes_only_the_staging_of_killed_sessions(wim, tmp_path):
    """A session's staging dir outlives a `kill -9` (nothing can resume it: it never
    committed); `wimfs cleanup` removes it, and leaves a live session's alone."""
    state = tmp_path / "state"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), WIMFS_STATE_DIR=str(state))
    copy = tmp_path / "other.wim"
    shutil.copyfile(wim, copy)
    procs = [subprocess.Popen([sys.executable, "-c", HOLD, str(w)], env=env,
                              stdout=subprocess.PIPE, text=True) for w in (wim, copy)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        sessions = state / "sessions"
        dirs = sorted(p for p in sessions.iterdir() if p.is_dir())
        assert len(dirs) == 2
        procs[0].kill()
        procs[0].wait()
        r = subprocess.run([sys.executable, "-m", "wimfs", "cleanup"], env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        left = sorted(p for p in sessions.iterdir() if p.is_dir())
        assert len(left) == 1 and "killed servicing session" in r.stdout
        assert [p.name for p in sessions.iterdir() if p.name.endswith(".lock")] == \
            [left[0].name + ".lock"]
        fd = os.open(f"{left[0]}.lock", os.O_RDWR)
        try:                                  # what is left is the live session's
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert wimlib_verify(wim).returncode == 0 and wimlib_verify(copy).returncode == 0


def test_deferred_copy_in_reads_the_local_file_at_commit_and_never_writes_it(wim, tmp_path):
    """`copy_in(..., deferred=True)` (what `wimfs update --add` uses): nothing is copied
    into the staging area; the commit reads the local file; a later write through the
    session copies it up first, so the local file is never written; the result equals
    the same edits made on an applied tree."""
    exp = tmp_path / "exp"
    wimlib_apply(wim, 1, exp)
    local, other = tmp_path / "local.bin", tmp_path / "other.bin"
    local.write_bytes(os.urandom(3 << 20) + b"tail")
    other.write_bytes(b"other content " * 1000)
    os.utime(local, ns=(1_500_000_000_000_000_000, 1_500_000_000_123_456_700))
    before = (local.read_bytes(), os.stat(local))
    staging = tmp_path / "staging"
    with open_image(str(wim), 1, staging_dir=str(staging)) as s:
        s.mkdirs("d")
        s.copy_in("d/deferred.bin", str(local), deferred=True)
        s.copy_in("d/edited.bin", str(other), deferred=True)
        s.copy_in("d/replaced.bin", str(other), deferred=True)
        s.copy_in("d/replaced.bin", str(local), deferred=True)
        data_dir = staging / "data"
        assert not data_dir.exists() or not os.listdir(data_dir)   # no copy yet
        assert s.read_file("d/deferred.bin") == before[0]
        ov = s.overlay
        ino = s.image.lookup_path("/d/edited.bin").inode
        stream = ino.data
        ov.finish_copy_up(ino, "", stream, ov.copy_up(stream))
        ov.write(stream, 0, b"EDITED")
    after = os.stat(local)
    assert local.read_bytes() == before[0] and other.read_bytes() == b"other content " * 1000
    assert (after.st_mtime_ns, after.st_nlink, after.st_ctime_ns) == \
        (before[1].st_mtime_ns, before[1].st_nlink, before[1].st_ctime_ns)
    assert wimlib_verify(wim).returncode == 0
    (exp / "d").mkdir()
    shutil.copyfile(local, exp / "d/deferred.bin")
    shutil.copyfile(local, exp / "d/replaced.bin")
    (exp / "d/edited.bin").write_bytes(b"EDITED" + (b"other content " * 1000)[6:])
    got = tmp_path / "got"
    assert_same_tree(applied(wim, got), snapshot(exp, xattrs=False), "session", "expected")
    assert os.stat(got / "d/deferred.bin").st_mtime_ns == 1_500_000_000_123_456_700


def test_a_read_only_session_parses_only_the_folders_it_uses(tmp_path, monkeypatch):
    """Read-only servicing (image-info, list commands) on a big image: reading one file
    parses the directories on its path and no other (wimlib-imagex capture makes the
    image; the parse calls are counted)."""
    from tests.helpers import wimlib_capture
    from wimfs.image_tree import LazyTree
    src = tmp_path / "src"
    (src / "a/b/c").mkdir(parents=True)
    (src / "a/b/c/file.txt").write_text("deep")
    for i in range(20):
        (src / f"other{i}/sub").mkdir(parents=True)
        (src / f"other{i}/sub/x").write_text(str(i))
    wim = wimlib_capture(src, tmp_path / "t.wim")
    parsed = []
    real = LazyTree.parse_directory

    def counting(self, parent, pending):
        parsed.append(parent.path)
        return real(self, parent, pending)

    monkeypatch.setattr(LazyTree, "parse_directory", counting)
    with open_image(str(wim), 1, write=False) as s:
        assert s.read_file("a/b/c/file.txt") == b"deep"
    assert sorted(parsed) == ["/", "/a", "/a/b", "/a/b/c"]
