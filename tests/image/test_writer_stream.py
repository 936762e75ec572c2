"""Large blobs are written while their chunks arrive (wimfs.writer._Streamed), not held
whole in memory: a 1 GiB file added with `wimfs update` took 1.06 GB of memory before.

Oracles: the held path (every source held in memory, as before) writes the same bytes
for the same sources; wimlib-imagex verifies and extracts what `wimfs update` wrote; the
peak memory of the command is measured by the kernel (wait4's rusage of that child)."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys

import pytest

from tests.helpers import wimlib_capture, wimlib_verify
from wimfs.errors import WimfsError
from wimfs.format import structs as S
from wimfs.writer import BlobSource, BytesSource, ResourceWriter

CS = 32768


def sources(r: random.Random) -> list[BlobSource]:
    text = b"".join(b"line %d of a text file\n" % i for i in range(20000))
    return [BytesSource(b) for b in (
        text[:5 * CS],                                # compresses
        r.randbytes(5 * CS + 7),                      # does not: stored raw
        text[:CS],                                    # exactly one chunk
        r.randbytes(100) + text[:3 * CS] + r.randbytes(CS),   # mixed chunks
        text[:5 * CS],                                # a duplicate of the first
        b"",
        text[7:7 + 2 * CS - 1],
    )]


def write(path, srcs, hold: int, monkeypatch, **kw):
    monkeypatch.setattr(ResourceWriter, "HOLD_BYTES", hold)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        w = ResourceWriter(fd, 208, S.COMPRESSION_LZX, CS)
        try:
            out = w.write_blobs(srcs, **kw)
        finally:
            w.close()
        os.ftruncate(fd, w.pos)
    finally:
        os.close(fd)
    return out, path.read_bytes()


def test_streamed_resources_are_the_held_ones(tmp_path, monkeypatch):
    r = random.Random(5)
    srcs = sources(r)
    held = write(tmp_path / "held", srcs, 1 << 40, monkeypatch)
    streamed = write(tmp_path / "streamed", srcs, 0, monkeypatch)
    assert streamed == held
    results, _ = held
    assert results[4][0] is None and results[5][0] is None       # deduplicated, empty
    assert not results[1][0].is_compressed and results[0][0].is_compressed


def test_a_known_blob_and_a_skipped_source_leave_nothing(tmp_path, monkeypatch):
    r = random.Random(6)
    srcs = sources(r)

    class Unreadable(BlobSource):
        size = 3 * CS

        def chunks(self, chunk_size):
            yield bytes(chunk_size)
            raise OSError(5, "I/O error")

    srcs.insert(2, Unreadable())
    known = {hashlib.sha1(srcs[0].data).digest()}
    kw = dict(known=known.__contains__, on_error=lambda src, exc: True)
    assert write(tmp_path / "s", srcs, 0, monkeypatch, **kw) == \
        write(tmp_path / "h", srcs, 1 << 40, monkeypatch, **kw)


def test_a_source_that_changes_before_the_raw_rewrite_is_an_error(tmp_path, monkeypatch):
    class Changing(BlobSource):
        """Random bytes (compression does not pay), other bytes on the second read."""
        size = 4 * CS

        def __init__(self):
            self.reads = 0

        def chunks(self, chunk_size):
            self.reads += 1
            r = random.Random(self.reads)
            for _ in range(4):
                yield r.randbytes(chunk_size)

    with pytest.raises(WimfsError, match="changed while being read"):
        write(tmp_path / "x", [Changing()], 0, monkeypatch)


@pytest.mark.parametrize("kind", ["zeros-and-text", "random"])
def test_update_of_a_big_file_runs_in_bounded_memory(kind, tmp_path):
    """256 MiB added by `wimfs update`: the command's peak RSS stays far below the file's
    size (it was above it), and wimlib-imagex verifies and extracts the file."""
    base = tmp_path / "base"
    base.mkdir()
    (base / "a.txt").write_text("base")
    wim = wimlib_capture(base, tmp_path / "x.wim", compress="lzx")
    big = tmp_path / "big.bin"
    size = 256 << 20 if kind != "random" else 96 << 20
    with open(big, "wb") as f:
        if kind == "random":
            f.write(os.urandom(size))
        else:
            text = b"".join(b"%d, " % i for i in range(200000))[:1 << 20]
            for k in range(size >> 20):
                f.write(text if k % 4 == 0 else bytes(1 << 20))
    # The command is started by a small launcher that waits for it: a child started
    # straight from this test process would count this process's memory as its own
    # (Linux keeps the peak of the memory a process had before exec).
    launcher = ("import os, sys\n"
                "pid = os.fork()\n"
                "if pid == 0:\n"
                "    os.execv(sys.executable, [sys.executable, '-m', 'wimfs', *sys.argv[1:]])\n"
                "_, status, usage = os.wait4(pid, 0)\n"
                "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)\n")
    r = subprocess.run([sys.executable, "-c", launcher, "update", f"{wim}:1", "--add",
                        str(big), "/big.bin"], capture_output=True, text=True, timeout=600)
    rc, peak_kib = map(int, r.stdout.split()[-2:])
    assert rc == 0, r.stderr
    peak_mib = peak_kib / 1024
    assert peak_mib < 120, peak_mib             # 256 MiB: before, ~270 MiB
    assert wimlib_verify(wim).returncode == 0
    out = tmp_path / "out"
    subprocess.run(["wimlib-imagex", "extract", str(wim), "1", "/big.bin",
                    f"--dest-dir={out}"], check=True, capture_output=True)
    with open(big, "rb") as a, open(out / "big.bin", "rb") as b:
        while True:
            x, y = a.read(1 << 22), b.read(1 << 22)
            assert x == y
            if not x:
                break
