"""wimfs.ahead: files read and compressed before the commit asks for them.

The oracle for every chunk is libwim's compressor called directly on the file's bytes
(split at the WIM's chunk size, as wimlib splits a resource); the rules under test are
the module's: sizes checked at `take`, a file read once, bounded memory, never an error.
"""

from __future__ import annotations

import os
import random
import threading
import time

import pytest

from tests.helpers import wimlib_capture
from wimfs import ahead as A
from wimfs.codec import Compressor
from wimfs.format import structs as S

CS = 32768


def expected_chunks(path) -> list[tuple[bytes, bytes]]:
    data = open(path, "rb").read()
    c = Compressor(S.COMPRESSION_LZX, CS)
    out = []
    for off in range(0, len(data), CS):
        raw = data[off:off + CS]
        z = c.compress(raw)
        out.append((raw, raw if z is None else z))
    return out


def resolved(items) -> list[tuple[bytes, bytes]]:
    return [(raw, h.result()) for raw, h in items]


def read_here(ahead, path, timeout=10.0) -> None:
    """Wait until the reading thread has handed `path` out (a `take` before that would
    claim it for the writer: the race the writer and the thread run on purpose)."""
    deadline = time.monotonic() + timeout
    while True:
        with ahead._cond:
            if path in ahead._ready:
                return
        assert time.monotonic() < deadline, f"{path} was never read ahead"
        time.sleep(0.005)


def settled(ahead) -> None:
    ahead._thread.join(10)
    assert not ahead._thread.is_alive()


@pytest.fixture
def lzx_wim(tmp_path):
    src = tmp_path / "base"
    src.mkdir()
    (src / "a.txt").write_text("base")
    return wimlib_capture(src, tmp_path / "base.wim", compress="lzx")


def make_files(root, sizes, seed=7):
    r = random.Random(seed)
    root.mkdir(exist_ok=True)
    paths = []
    for i, size in enumerate(sizes):
        p = root / f"f{i:03d}.bin"
        # Half text-like (compresses), half random (stored raw).
        data = (b"the quick brown fox %d " % i * (size // 20 + 1))[:size] if i % 2 \
            else r.randbytes(size)
        p.write_bytes(data)
        paths.append(str(p))
    return paths


def test_chunks_are_what_the_compressor_makes(lzx_wim, tmp_path):
    paths = make_files(tmp_path / "src", [1, 100, CS - 1, CS, CS + 1, 5 * CS + 17, 200_000])
    with A.CompressAhead(str(lzx_wim), lambda: paths) as ahead:
        assert ahead.serves(S.COMPRESSION_LZX, CS, 0)
        assert not ahead.serves(S.COMPRESSION_XPRESS, CS, 0)
        assert not ahead.serves(S.COMPRESSION_LZX, CS, 1)
        settled(ahead)
        for p in paths:
            assert resolved(ahead.take(p, os.path.getsize(p))) == expected_chunks(p)
        assert ahead.stats == {"files": len(paths), "taken": len(paths), "missed": 0}


def test_a_size_that_is_not_the_sessions_is_not_taken(lzx_wim, tmp_path):
    [p] = make_files(tmp_path / "src", [50_000])
    with A.CompressAhead(str(lzx_wim), lambda: [p]) as ahead:
        settled(ahead)
        assert ahead.take(p, 50_001) is None
        assert ahead.take(p, 50_000) is None        # claimed by then: the writer reads it


def test_the_writer_claims_what_it_reaches_first(lzx_wim, tmp_path):
    paths = make_files(tmp_path / "src", [1000, 2000, 3000])
    go = threading.Event()

    def files():
        yield paths[0]
        go.wait(10)
        yield from paths[1:]

    with A.CompressAhead(str(lzx_wim), files) as ahead:
        assert ahead.take(paths[1], 2000) is None     # not read yet: the writer reads it
        go.set()
        settled(ahead)
        assert resolved(ahead.take(paths[0], 1000)) == expected_chunks(paths[0])
        assert resolved(ahead.take(paths[2], 3000)) == expected_chunks(paths[2])
        assert ahead.stats["files"] == 2              # paths[1] was never read here


def test_memory_is_bounded_and_reading_resumes(lzx_wim, tmp_path, monkeypatch):
    monkeypatch.setattr(A, "FILE_LIMIT", 40_000)
    monkeypatch.setattr(A, "LIMIT", 100_000)
    sizes = [30_000] * 12 + [60_000]                  # the last is over FILE_LIMIT
    paths = make_files(tmp_path / "src", sizes)
    with A.CompressAhead(str(lzx_wim), lambda: paths) as ahead:
        read_here(ahead, paths[0])
        time.sleep(0.3)                               # it reads until it is full
        with ahead._cond:
            # A file is read when FILE_LIMIT more bytes fit: 3 files of 30,000 (the
            # third read at 60,000 + 40,000 <= 100,000; a fourth would not fit).
            assert ahead.stats["files"] == 3
            assert ahead._held <= A.LIMIT
        for p in paths[:-1]:
            read_here(ahead, p)
            assert resolved(ahead.take(p, 30_000)) == expected_chunks(p)
            with ahead._cond:
                assert ahead._held <= A.LIMIT
        assert ahead.take(paths[-1], 60_000) is None  # too big: the writer reads it
        assert ahead.stats == {"files": 12, "taken": 12, "missed": 1}


def test_close_while_waiting_for_room(lzx_wim, tmp_path, monkeypatch):
    monkeypatch.setattr(A, "FILE_LIMIT", 40_000)
    monkeypatch.setattr(A, "LIMIT", 40_000)
    paths = make_files(tmp_path / "src", [30_000] * 4)
    ahead = A.CompressAhead(str(lzx_wim), lambda: paths)
    time.sleep(0.2)
    t0 = time.monotonic()
    ahead.close()
    assert time.monotonic() - t0 < 5
    assert not ahead._thread.is_alive()


@pytest.mark.parametrize("kind", ["none", "solid", "not-a-wim", "missing", "fifo"])
def test_nothing_ahead_for_what_it_cannot_serve(kind, tmp_path):
    src = tmp_path / "base"
    src.mkdir()
    (src / "a.txt").write_text("base")
    if kind == "none":
        wim = wimlib_capture(src, tmp_path / "x.wim", compress="none")
    elif kind == "solid":
        wim = wimlib_capture(src, tmp_path / "x.esd", compress="lzms", solid=True)
    elif kind == "not-a-wim":
        wim = tmp_path / "x.wim"
        wim.write_bytes(b"MSCF" + bytes(300))
    elif kind == "missing":
        wim = tmp_path / "missing.wim"
    else:
        wim = tmp_path / "fifo"
        os.mkfifo(wim)
    [p] = make_files(tmp_path / "src", [1000])
    with A.CompressAhead(str(wim), lambda: [p]) as ahead:
        for ctype in (S.COMPRESSION_NONE, S.COMPRESSION_LZX, S.COMPRESSION_LZMS):
            assert not ahead.serves(ctype, CS, 0)
        assert ahead.take(p, 1000) is None
        assert ahead.pool is None


def test_a_failing_walk_ends_quietly(lzx_wim, tmp_path):
    paths = make_files(tmp_path / "src", [1000, 2000])

    def files():
        yield paths[0]
        raise PermissionError("walk failed")

    with A.CompressAhead(str(lzx_wim), files) as ahead:
        assert ahead.serves(S.COMPRESSION_LZX, CS, 0)
        settled(ahead)
        assert resolved(ahead.take(paths[0], 1000)) == expected_chunks(paths[0])
        assert ahead.take(paths[1], 2000) is None


def test_unreadable_and_vanished_files_are_left_to_the_writer(lzx_wim, tmp_path):
    paths = make_files(tmp_path / "src", [1000, 2000, 3000])
    os.unlink(paths[1])
    os.symlink(paths[0], paths[1])                    # (not followed: lstat said file)
    gone = str(tmp_path / "src" / "gone.bin")
    with A.CompressAhead(str(lzx_wim), lambda: [paths[0], gone, paths[1], paths[2]]) as ahead:
        settled(ahead)
        assert ahead.take(paths[2], 3000) is not None
        assert ahead.take(gone, 10) is None
        assert ahead.take(paths[1], 1000) is None
        assert ahead.take(paths[0], 1000) is not None


def test_a_closed_ahead_serves_nothing(lzx_wim, tmp_path):
    [p] = make_files(tmp_path / "src", [1000])
    ahead = A.CompressAhead(str(lzx_wim), lambda: [p])
    settled(ahead)
    ahead.close()
    assert not ahead.serves(S.COMPRESSION_LZX, CS, 0)     # its threads are gone
    assert ahead.take(p, 1000) is None
