"""Solid chunks (>= 1 MiB) are kept decompressed in a spill file: random-order reads over a
solid resource stay correct when the spill limit forces slots to be reused."""

from __future__ import annotations

import random

import pytest

from tests.unit.conftest import capture
from wimfs.wim import Wim


@pytest.fixture(scope="module")
def solid_wim(tmp_path_factory):
    base = tmp_path_factory.mktemp("spill")
    src = base / "src"
    src.mkdir()
    rng = random.Random(7)
    files = {}
    for i in range(12):
        data = rng.randbytes(300_000) + bytes(rng.randrange(200_000, 900_000))
        (src / f"f{i:02d}.bin").write_bytes(data)
        files[f"f{i:02d}.bin"] = data
    wim = capture(src, base / "s.wim", "LZMS", "--solid", "--solid-chunk-size=1M")
    return wim, files


@pytest.mark.parametrize("limit_mb", [2, 4096])
def test_random_order_reads_with_slot_reuse(solid_wim, limit_mb, monkeypatch):
    wim_path, files = solid_wim
    monkeypatch.setenv("WIMFS_SPILL_LIMIT_MB", str(limit_mb))
    rng = random.Random(limit_mb)
    with Wim(wim_path, verify_blobs=False) as wim:
        img = wim.image(1)
        assert wim.blob_table.solid_resources[0].chunk_size == 1 << 20
        blobs = {n: img.lookup_path(n).inode.data.blob for n in files}
        for _ in range(150):
            name = rng.choice(sorted(files))
            data = files[name]
            off = rng.randrange(len(data))
            size = rng.choice((1, 4096, 131072, 1 << 20, 3 << 20))
            got = wim.reader.read(blobs[name], off, size)
            assert got == data[off:off + size], (name, off, size)
        spill = wim.reader.spill
        assert spill.slots, "solid chunks should have gone to the spill file"
        if limit_mb == 2:
            # The limit holds, give or take the chunks being unpacked at that moment
            # (one per worker thread plus the reader's own).
            workers = wim.reader._pool._max_workers
            assert spill.used <= (2 + workers + 1) << 20
        # The daemon's memory holds no decompressed solid chunk (only the metadata's).
        solid_ids = {id(r) for r in wim.blob_table.solid_resources}
        assert not [k for k in wim.reader._cache if k[0] in solid_ids]
