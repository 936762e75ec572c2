"""Mutated WIMs: opening, loading the tree and reading every blob raises only
WimfsError, never IndexError/struct.error/hangs."""

from __future__ import annotations

import random
import time

import pytest

from wimfs.errors import WimfsError
from wimfs.wim import Wim


def _exercise(path: str) -> None:
    with Wim(path) as wim:
        for i in range(1, min(wim.image_count, 3) + 1):
            img = wim.image(i)
            for d in img.walk():
                ino = d.inode
                for s in [ino.data, ino.reparse, *ino.named_streams.values()]:
                    if s is not None and s.blob is not None:
                        wim.read_blob(s.blob)
                ino.link(wim.read_blob)


@pytest.mark.parametrize("kind", ["none", "xpress", "lzx", "solid"])
def test_mutations_raise_only_wimfs_errors(tmp_path, mixed_wims, kind):
    wims, _ = mixed_wims
    raw = open(wims[kind], "rb").read()
    rng = random.Random(hash(kind) & 0xFFFF)
    p = tmp_path / "m.wim"
    outcomes = {"ok": 0, "error": 0}
    for trial in range(60):
        buf = bytearray(raw)
        for _ in range(rng.choice((1, 2, 8, 32))):
            pos = rng.randrange(len(buf))
            # Bias towards the header, the blob table and the metadata (the tail).
            if rng.random() < 0.5:
                pos = rng.choice((rng.randrange(208), len(buf) - 1 - rng.randrange(
                    min(len(buf), 4096))))
            buf[pos] = rng.randrange(256)
        if rng.random() < 0.1:
            buf = buf[: rng.randrange(len(buf))]
        p.write_bytes(buf)
        t0 = time.monotonic()
        try:
            _exercise(str(p))
            outcomes["ok"] += 1
        except WimfsError:
            outcomes["error"] += 1
        assert time.monotonic() - t0 < 10, f"trial {trial} took too long"
    assert outcomes["error"] > 0  # the mutations did hit something
