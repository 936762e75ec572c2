"""`open_images`: several images of one WIM edited and committed together (one flock, one
commit, header last), checked with wimlib-imagex (verify, extract, the blob table)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess

import pytest

from tests.helpers import require_tool, wimlib_verify
from tests.helpers.wimlib import wimlib_recounted_refs
from wimfs.errors import BusyError, WimfsError
from wimfs.overlay import open_image, open_images


@pytest.fixture
def wim3(tmp_path):
    """Three images from one small tree (wimlib-imagex capture + append)."""
    require_tool("wimlib-imagex")
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f.txt").write_bytes(b"base\n")
    (src / "big.bin").write_bytes(os.urandom(300_000))
    wim = tmp_path / "three.wim"
    subprocess.run(["wimlib-imagex", "capture", src, wim, "one", "--compress=lzx"],
                   check=True, capture_output=True)
    for name in ("two", "three"):
        subprocess.run(["wimlib-imagex", "append", src, wim, name], check=True,
                       capture_output=True)
    return wim


def _extract(wim, index: int, path: str) -> bytes | None:
    p = subprocess.run(["wimlib-imagex", "extract", str(wim), str(index), path,
                        "--to-stdout"], capture_output=True)
    return p.stdout if p.returncode == 0 else None


def _blob_hashes(wim) -> list[str]:
    out = subprocess.run(["wimlib-imagex", "info", str(wim), "--blobs"], check=True,
                         capture_output=True, text=True).stdout
    return re.findall(r"^Hash\s*=\s*(\S+)", out, re.M)


def test_edits_of_several_images_land_in_one_commit(wim3, tmp_path):
    shared = os.urandom(200_000)
    before = _blob_hashes(wim3)
    with open_images(str(wim3), [1, 3], staging_dir=str(tmp_path / "st")) as images:
        for i in (1, 3):
            with images.open(i) as s:
                s.write_file("/d/shared.bin", shared)        # the same in both images
                s.write_file("/d/f.txt", f"image {i}\n".encode())
    assert wimlib_verify(wim3).returncode == 0
    assert _extract(wim3, 1, "/d/f.txt") == b"image 1\n"
    assert _extract(wim3, 2, "/d/f.txt") == b"base\n"
    assert _extract(wim3, 3, "/d/f.txt") == b"image 3\n"
    for i in (1, 3):
        assert _extract(wim3, i, "/d/shared.bin") == shared
    assert _extract(wim3, 2, "/d/shared.bin") is None
    # New data: shared.bin once, and the two f.txt contents (the replaced "base\n" stays
    # in image 2); the three metadata resources are listed as before (two replaced).
    after = _blob_hashes(wim3)
    assert len(after) == len(before) + 3
    names = subprocess.run(["wimlib-imagex", "info", str(wim3)], check=True,
                           capture_output=True, text=True).stdout
    assert re.search(r"^Image Count:\s+3$", names, re.M)


def test_discard_and_errors_leave_the_wim_byte_identical(wim3, tmp_path):
    original = wim3.read_bytes()
    with pytest.raises(RuntimeError):
        with open_images(str(wim3), [1, 2]) as images:
            with images.open(1) as s:
                s.write_file("/new.txt", b"x")
            with images.open(2) as s:
                s.write_file("/new.txt", b"y")
            raise RuntimeError("abort")
    assert wim3.read_bytes() == original
    with open_images(str(wim3), [1, 2]) as images:     # nothing changed: nothing written
        with images.open(1) as s:
            assert s.read_file("/d/f.txt") == b"base\n"
    assert wim3.read_bytes() == original


def test_one_image_at_a_time_one_lock(wim3, tmp_path):
    with open_images(str(wim3), [1, 2]) as images:
        first = images.open(1)
        with pytest.raises(WimfsError, match="image 1 is still open"):
            images.open(2)
        first.write_file("/a.txt", b"a")
        first.commit()                                  # parked in the set
        with pytest.raises(WimfsError, match="not open for editing"):
            images.open(1)
        with pytest.raises(WimfsError, match="not open for editing"):
            images.open(3)
        with pytest.raises(BusyError):                  # the set holds the WIM's flock
            open_image(str(wim3), 3)
        with images.open(2) as s:
            s.write_file("/b.txt", b"b")
    assert (_extract(wim3, 1, "/a.txt"), _extract(wim3, 2, "/b.txt")) == (b"a", b"b")
    assert _extract(wim3, 2, "/a.txt") is None
    with open_image(str(wim3), 3) as s:                 # the lock is released
        s.write_file("/c.txt", b"c")
    assert wimlib_verify(wim3).returncode == 0


def test_staging_removed_after_commit(wim3, tmp_path):
    st = tmp_path / "st"
    with open_images(str(wim3), [2, 3], staging_dir=str(st)) as images:
        for i in (2, 3):
            with images.open(i) as s:
                s.write_file("/n.txt", b"n")
    assert os.listdir(st) == []
    shutil.rmtree(st)


def test_members_share_whole_blob_reads_and_see_their_own_writes(wim3, tmp_path,
                                                                  monkeypatch):
    """A blob read whole by one member is not decompressed again by the next member (the
    editions' shared hives); a member's own write is read back, never the cached blob."""
    from wimfs.resource import ResourceReader
    calls = []
    real = ResourceReader.read

    def counting(self, blob, off, size):
        calls.append(blob.hash)
        return real(self, blob, off, size)

    monkeypatch.setattr(ResourceReader, "read", counting)
    big = (wim3.parent / "src" / "big.bin").read_bytes()
    key = hashlib.sha1(big).digest()
    with open_images(str(wim3), [1, 2, 3], staging_dir=str(tmp_path / "st")) as images:
        for index in (1, 2):
            with images.open(index) as s:
                assert s.read_file("big.bin") == big
                assert s.read_file("/big.bin") == big
        assert calls.count(key) == 1
        with images.open(3) as s:
            s.write_file("big.bin", b"edited")
            assert s.read_file("big.bin") == b"edited"
    assert _extract(wim3, 3, "/big.bin") == b"edited"
    assert _extract(wim3, 1, "/big.bin") == big


def test_blob_cache_is_bounded_least_recently_used_first():
    from wimfs.overlay.blobcache import BlobCache
    c = BlobCache(limit=10)
    c.put(b"a", b"1234")
    c.put(b"b", b"5678")
    assert c.get(b"a") == b"1234"            # a is now the most recent
    c.put(b"c", b"90ab")                     # 12 bytes > 10: b goes
    assert (c.get(b"b"), c.get(b"a"), c.get(b"c")) == (None, b"1234", b"90ab")
    c.put(b"d", b"x" * 11)                   # larger than the limit: not kept
    assert c.get(b"d") is None and c.size == 8


def test_blob_cache_interns_content_written_whole():
    """Equal content written by several images is held once with its SHA-1 (hashlib is
    the oracle); different content is not confused with it."""
    from wimfs.overlay.blobcache import BlobCache
    c = BlobCache()
    a = bytes(range(256)) * 4096
    held, sha = c.intern(a)
    assert sha == hashlib.sha1(a).digest() and held == a
    again, sha2 = c.intern(bytearray(a))             # an equal copy: the same object
    assert again is held and sha2 == sha
    b = a[:-1] + b"\x00"
    other, sha3 = c.intern(b)
    assert sha3 == hashlib.sha1(b).digest() and other == b and other is not held


def test_set_members_writing_the_same_content_share_it(wim3, tmp_path):
    """The same bytes written whole into every image of a set are held once in memory
    and stored once in the WIM (wimlib-imagex's blob table is the oracle)."""
    data = os.urandom(1 << 20)
    with open_images(str(wim3), [1, 2, 3], staging_dir=str(tmp_path / "st")) as images:
        held = []
        for index in (1, 2, 3):
            with images.open(index) as s:
                s.write_file("same.bin", bytes(data))
                held.append(s.image.lookup_path("/same.bin").inode.data.source.data)
        assert held[0] is held[1] is held[2]
    for index in (1, 2, 3):
        assert _extract(wim3, index, "/same.bin") == data
    assert wimlib_verify(wim3).returncode == 0
    blobs = subprocess.run(["wimlib-imagex", "info", str(wim3), "--blobs"], check=True,
                           capture_output=True, text=True).stdout
    entry = re.search(r"Hash += 0x" + hashlib.sha1(data).hexdigest() +
                      r"\n(?:.*\n)*?Reference Count += (\d+)", blobs)
    assert blobs.count(hashlib.sha1(data).hexdigest()) == 1 and entry.group(1) == "3"


def test_one_commit_of_several_images_keeps_reference_counts_right(wim3, tmp_path):
    """Edits in two images (a file replaced in both, one deleted, one added) committed
    together: the blob table's counts equal those `wimlib-imagex optimize` (which counts
    every reference anew) gives for a copy; blobs it drops are at 0 in ours."""
    with open_images(str(wim3), [1, 3], staging_dir=str(tmp_path / "st")) as images:
        for index in (1, 3):
            with images.open(index) as s:
                s.write_file("big.bin", b"replaced in both")
                s.write_file(f"only{index}.txt", b"new %d" % index)
                if index == 1:
                    s.remove(next(n for n in s.listdir("/") if not s.is_dir(n)
                                  and n != "big.bin"))
    got, want = wimlib_recounted_refs(wim3, tmp_path)
    assert got == want


def test_content_beyond_the_memory_budget_is_staged(wim3, tmp_path, monkeypatch):
    """Whole-file writes are held in memory only within the set's budget; past it they
    go to staging files, and the committed images are the same (wimlib extracts them)."""
    from wimfs.overlay import blobcache
    monkeypatch.setattr(blobcache, "HELD_LIMIT", 1 << 20)
    first, second = os.urandom(700 << 10), os.urandom(700 << 10)
    staging = tmp_path / "st"
    with open_images(str(wim3), [1, 2], staging_dir=str(staging)) as images:
        with images.open(1) as s:
            s.write_file("a.bin", first)
            s.write_file("b.bin", second)            # 1.4 MiB > 1 MiB: staged
            s.write_file("c.bin", first)             # equal to held content: shared
            kinds = [type(s.image.lookup_path(f"/{n}").inode.data.source).__name__
                     for n in ("a.bin", "b.bin", "c.bin")]
        with images.open(2) as s:
            s.write_file("a.bin", first)
    assert kinds == ["HeldSource", "StagedSource", "HeldSource"]
    assert (_extract(wim3, 1, "/a.bin"), _extract(wim3, 1, "/b.bin"),
            _extract(wim3, 1, "/c.bin"), _extract(wim3, 2, "/a.bin")) == \
        (first, second, first, first)
    assert wimlib_verify(wim3).returncode == 0
