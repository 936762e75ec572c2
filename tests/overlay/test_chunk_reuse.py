"""A commit reuses the old resource's compressed chunks whose bytes did not change.

The expected number of reused chunks is derived from the data alone (the WIM's chunk size:
32 KiB, wimlib-imagex's default for LZX and XPRESS, or 64 KiB; compared byte for byte); the
result WIM is checked with `wimlib-imagex verify` and applied by wimlib and compared."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.helpers import require_tool, wimlib_apply, wimlib_capture, wimlib_verify
from tests.helpers.overlay import write
from wimfs.overlay import Overlay, open_image

CS = 32768


def _data(n_chunks: int, seed: int) -> bytes:
    """Compressible text with some random (stored raw) chunks, not a whole chunk multiple."""
    rnd = random.Random(seed)
    out = bytearray()
    for i in range(n_chunks):
        if i % 5 == 3:
            out += rnd.randbytes(CS)
        else:
            words = [f"value{rnd.randrange(1000)}" for _ in range(CS // 8)]
            out += " ".join(words).encode()[:CS]
    return bytes(out[:-1000])


def _same_chunks(old: bytes, new: bytes, cs: int = CS) -> int:
    return sum(1 for k in range(-(-min(len(old), len(new)) // cs))
               if old[k * cs:(k + 1) * cs] == new[k * cs:(k + 1) * cs])


def _edits(old: bytes) -> dict[str, bytes]:
    mid = len(old) // 2
    return {
        "first": b"X" + old[1:],
        "last": old[:-1] + b"Y",
        "middle": old[:mid] + b"changed" + old[mid + 7:],
        "grow": old + b"more bytes " * 5000,
        "shrink": old[:mid + 100],
        "shift": b"inserted" + old,
    }


@pytest.fixture(params=["lzx", "xpress", "none", "lzx-64k"])
def reuse_wim(request, tmp_path) -> tuple[Path, bytes, str]:
    require_tool("wimlib-imagex")
    src = tmp_path / "src"
    src.mkdir()
    old = _data(20, 1)
    for name in _edits(old):
        (src / f"{name}.bin").write_bytes(old)
    (src / "untouched.txt").write_bytes(b"untouched\n")
    compress, _, big = request.param.partition("-")
    wim = wimlib_capture(src, tmp_path / "t.wim", compress=compress,
                         extra=("--chunk-size=65536",) if big else ())
    return wim, old, request.param


def _check(wim: Path, tmp_path: Path, expected: dict[str, bytes]) -> None:
    assert wimlib_verify(wim).returncode == 0
    out = tmp_path / "applied"
    wimlib_apply(wim, 1, out)
    for name, data in expected.items():
        assert (out / f"{name}.bin").read_bytes() == data, name
    assert (out / "untouched.txt").read_bytes() == b"untouched\n"


def test_image_session_commit_reuses_unchanged_chunks(reuse_wim, tmp_path):
    wim, old, compress = reuse_wim
    edits = _edits(old)
    with open_image(str(wim), 1, staging_dir=str(tmp_path / "staging")) as s:
        for name, data in edits.items():
            s.write_file(f"{name}.bin", data)
        result = s.commit()
    _check(wim, tmp_path, edits)
    # An uncompressed WIM compresses nothing, so it has nothing to reuse.
    cs = 65536 if compress == "lzx-64k" else CS
    expected = 0 if compress == "none" else sum(_same_chunks(old, d, cs)
                                                 for d in edits.values())
    assert result.reused_chunks == expected
    if compress != "none":
        assert expected >= len(edits) * CS * 5 // cs  # the edits leave most chunks equal


def test_rw_overlay_commit_reuses_chunks_of_copied_up_files(reuse_wim, tmp_path):
    """Writes in place after a copy-up (what a FUSE write does), committed twice: the
    second commit reuses the chunks of the blobs the first one wrote."""
    wim, old, compress = reuse_wim
    ov = Overlay(str(wim), 1, str(tmp_path / "ov"))
    try:
        ino = ov.resolve("middle.bin").inode
        write(ov, ino, b"patched", len(old) // 3)
        first = ov.commit()
        new = bytearray(old)
        new[len(old) // 3:len(old) // 3 + 7] = b"patched"
        write(ov, ino, b"again", 5)
        second = ov.commit()
        newer = bytearray(new)
        newer[5:10] = b"again"
    finally:
        ov.discard()
    expected = {"middle": bytes(newer)}
    _check(wim, tmp_path, expected)
    cs = 65536 if compress == "lzx-64k" else CS
    if compress == "none":
        assert first.reused_chunks == second.reused_chunks == 0
    else:
        assert first.reused_chunks == _same_chunks(old, bytes(new), cs) == len(old) // cs
        assert second.reused_chunks == _same_chunks(bytes(new), bytes(newer), cs) \
            == len(old) // cs


def test_a_changed_origin_resource_is_not_trusted(reuse_wim, tmp_path):
    """The chunks are compared, not assumed: a staged file whose origin is an unrelated
    blob (different bytes) reuses nothing and is written right."""
    wim, old, compress = reuse_wim
    other = os.urandom(len(old))
    with open_image(str(wim), 1, staging_dir=str(tmp_path / "staging")) as s:
        s.write_file("first.bin", other)
        result = s.commit()
    assert result.reused_chunks == 0
    exp = dict.fromkeys(_edits(old), old)
    exp["first"] = other
    _check(wim, tmp_path, exp)
