"""The read engine against wimlib-made WIMs: every compression type, solid resources,
raw chunks mixed with compressed ones, random-range reads, cache and SHA-1 checks."""

from __future__ import annotations

import hashlib
import os
import re
import struct
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.conftest import corpus_dir, corpus_wims
from wimfs.errors import NotAWimError, UnsupportedWimError, WimCorruptError
from wimfs.format import structs as S
from wimfs.wim import Wim


def _file_data(wim: Wim, path: str) -> bytes:
    d = wim.image(1).lookup_path(path)
    assert d is not None, path
    return wim.read_blob(d.inode.data.blob) if d.inode.data and d.inode.data.blob else b""


@pytest.mark.parametrize("kind", ["none", "xpress", "lzx", "lzms", "solid"])
def test_reads_every_file_exactly(mixed_wims, kind):
    wims, files = mixed_wims
    with Wim(wims[kind]) as wim:
        for rel, data in files.items():
            assert _file_data(wim, rel) == data, rel
        if kind == "solid":
            assert wim.header.wim_version == S.WIM_VERSION_SOLID
            assert wim.blob_table.solid_resources


@pytest.mark.parametrize("kind", ["xpress", "lzx", "solid"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_ranges(mixed_wims, kind, data):
    wims, files = mixed_wims
    rel = data.draw(st.sampled_from(["random_then_zeros", "text", "sub/dir/nested.bin"]))
    content = files[rel]
    off = data.draw(st.integers(0, len(content)))
    size = data.draw(st.integers(0, 300000))
    with Wim(wims[kind], verify_blobs=False) as wim:
        blob = wim.image(1).lookup_path(rel).inode.data.blob
        assert wim.reader.read(blob, off, size) == content[off:off + size]


def test_raw_chunks_present(mixed_wims):
    """The random+zeros file must have chunks stored raw and compressed (the dissect bug)."""
    wims, files = mixed_wims
    with Wim(wims["xpress"]) as wim:
        blob = wim.image(1).lookup_path("random_then_zeros").inode.data.blob
        offs, cs = wim.reader._chunk_table(blob.rdesc)
        sizes = [offs[i + 1] - offs[i] for i in range(len(offs) - 1)]
        usizes = [min(cs, blob.size - i * cs) for i in range(len(sizes))]
        assert any(s == u for s, u in zip(sizes, usizes))
        assert any(s < u for s, u in zip(sizes, usizes))


def test_solid_chunk_decompressed_once(mixed_wims):
    wims, files = mixed_wims
    with Wim(wims["solid"], cache_size=256 << 20) as wim:
        blob = wim.image(1).lookup_path("random_then_zeros").inode.data.blob
        before = wim.reader.stats["decompressed_chunks"]
        out = b"".join(wim.reader.read(blob, off, 131072) for off in range(0, blob.size, 131072))
        assert out == files["random_then_zeros"]
        nchunks = len({(blob.offset_in_res + o) // blob.rdesc.chunk_size
                       for o in range(0, blob.size, 4096)})
        assert wim.reader.stats["decompressed_chunks"] - before == nchunks


def test_sha1_mismatch_detected(tmp_path, mixed_wims):
    wims, files = mixed_wims
    bad = tmp_path / "bad.wim"
    raw = bytearray(open(wims["none"], "rb").read())
    pos = raw.find(b"line 100 of some text")
    assert pos > 0
    raw[pos] ^= 0x20
    bad.write_bytes(raw)
    with Wim(str(bad)) as wim:
        blob = wim.image(1).lookup_path("text").inode.data.blob
        with pytest.raises(WimCorruptError, match="SHA-1"):
            wim.read_blob(blob)
        # Chunked sequential reads check it too, on the last chunk.
        blob.verified = None
        with pytest.raises(WimCorruptError):
            for off in range(0, blob.size, 65536):
                wim.reader.read(blob, off, 65536)
        assert _file_data(wim, "sub/small") == b"hello"


def test_header_agrees_with_wimlib(mixed_wims):
    wims, _ = mixed_wims
    for kind, path in wims.items():
        out = subprocess.run(["wimlib-imagex", "info", path, "--header"], check=True,
                             capture_output=True, text=True).stdout
        fields = {k.strip(): v.strip() for k, v in re.findall(r"^(\w[\w ]*?)\s+=\s+(.*)$",
                                                                 out, re.M)}
        with Wim(path) as wim:
            h = wim.header
            assert int(fields["Version"], 0) == h.wim_version, kind
            assert int(fields["Flags"], 0) == h.flags, kind
            assert int(fields["Chunk Size"], 0) == h.chunk_size, kind
            assert fields["GUID"] == h.guid.hex()
            assert int(fields["Image Count"], 0) == h.image_count
            assert int(fields["Boot Index"], 0) == h.boot_idx
            assert int(fields["Blob Table Size"], 0) == h.blob_table_reshdr.size_in_wim
            assert int(fields["Blob Table Offset"], 0) == h.blob_table_reshdr.offset_in_wim
            assert int(fields["XML Data Offset"], 0) == h.xml_data_reshdr.offset_in_wim


def test_not_a_wim(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"hello world" * 100)
    with pytest.raises(NotAWimError):
        Wim(str(p))


def test_encrypted_and_unknown_versions(tmp_path, mixed_wims):
    wims, _ = mixed_wims
    raw = bytearray(open(wims["lzx"], "rb").read())
    for version, match in ((0x10E00, "encrypted"), (0x12345, "unsupported WIM version")):
        struct.pack_into("<I", raw, 12, version)
        p = tmp_path / f"v{version:x}.wim"
        p.write_bytes(raw)
        with pytest.raises(UnsupportedWimError, match=match):
            Wim(str(p))


def test_truncated(tmp_path, mixed_wims):
    wims, _ = mixed_wims
    raw = open(wims["lzx"], "rb").read()
    for cut in (100, 300, len(raw) // 2, len(raw) - 10):
        p = tmp_path / f"t{cut}.wim"
        p.write_bytes(raw[:cut])
        with pytest.raises(WimCorruptError):
            Wim(str(p))


def test_large_resource_uses_8_byte_chunk_table(tmp_path):
    """A resource of >= 4 GiB has 64-bit chunk-table entries. Build one synthetically
    (131,073 LZX chunks of zeros, ~4 GiB uncompressed) and read across the 4 GiB mark."""
    from wimfs.codec import Compressor
    from wimfs.format.blobtable import BlobDescriptor, ResourceDescriptor
    from wimfs.resource import ResourceReader

    cs = 32768
    usize = (1 << 32) + 3 * cs + 123
    nchunks = -(-usize // cs)
    comp = Compressor(S.COMPRESSION_LZX, cs)
    zero_chunk = comp.compress(bytes(cs))
    marker = b"MARKER" + bytes(cs - 6)
    marker_chunk = comp.compress(marker)
    tail_len = usize - (nchunks - 1) * cs
    tail_chunk = comp.compress(bytes(tail_len)) or bytes(tail_len)
    special = (1 << 32) // cs          # the chunk that starts exactly at 4 GiB
    chunks = [zero_chunk] * nchunks
    chunks[special] = marker_chunk
    chunks[-1] = tail_chunk
    offsets, pos = [], 0
    for c in chunks:
        offsets.append(pos)
        pos += len(c)
    table = struct.pack(f"<{nchunks - 1}Q", *offsets[1:])
    path = tmp_path / "big.res"
    with open(path, "wb") as f:
        f.write(b"\0" * 16)
        f.write(table)
        for c in chunks:
            f.write(c)
    size_in_wim = len(table) + pos
    fd = os.open(path, os.O_RDONLY)
    try:
        reader = ResourceReader(fd, cache_bytes=1 << 20, verify=False)
        rdesc = ResourceDescriptor(16, size_in_wim, usize, S.RESHDR_FLAG_COMPRESSED,
                                   S.COMPRESSION_LZX, cs)
        blob = BlobDescriptor(b"\1" * 20, usize, 1, rdesc)
        assert reader.read(blob, (1 << 32) - 2, 10) == b"\0\0MARKER\0\0"
        assert reader.read(blob, usize - 5, 100) == bytes(5)
        assert reader.read(blob, 12345, 8) == bytes(8)
        reader.close()
    finally:
        os.close(fd)


@pytest.mark.parametrize("path", corpus_wims() or ["<no corpus>"],
                         ids=lambda p: os.path.basename(p))
def test_corpus_blobs_match_their_sha1(path):
    """Every blob of every corpus WIM reads and hashes to its SHA-1, except in the WIMs
    that are broken on purpose, where only a WimfsError may come out."""
    if path == "<no corpus>":
        corpus_dir()
    broken = ("corrupted_file", "VerifyFail", "cyclic")
    try:
        wim = Wim(path)
    except WimCorruptError:
        assert any(b in path for b in broken)
        return
    with wim:
        bad = 0
        for blob in wim.blob_table.blobs.values():
            try:
                data = wim.read_blob(blob)
            except WimCorruptError:
                bad += 1
                continue
            assert hashlib.sha1(data).digest() == blob.hash
        if not any(b in path for b in broken):
            assert bad == 0


@pytest.mark.parametrize("ctype", ["XPRESS", "LZX", "LZMS"])
def test_one_chunk_blobs_read_whole_in_one_step(tmp_path, ctype):
    """Most files of a Windows image are one compressed chunk: read whole they take one
    pread and one decompression, past the chunk cache (`ResourceReader.is_one_chunk`);
    partial reads of them take the chunked path. Both give the file's bytes, and a damaged
    chunk is an error, never wrong data."""
    from tests.unit.conftest import capture

    src = tmp_path / "src"
    src.mkdir()
    text = b"".join(b"%d: one small compressible file\n" % i for i in range(300))
    (src / "small.txt").write_bytes(text)
    wim = capture(src, tmp_path / "one.wim", ctype)
    with Wim(wim) as w:
        blob = w.image(1).lookup_path("small.txt").inode.data.blob
        rd = blob.rdesc
        assert w.reader.is_one_chunk(blob) and rd.size_in_wim < rd.uncompressed_size
        before = w.reader.stats["decompressed_chunks"]
        data = w.reader.read(blob, 0, blob.size)
        assert data == text and type(data) is bytes     # (ctypes and signify want bytes)
        assert w.reader.stats["decompressed_chunks"] == before + 1 and not w.reader._cache
        assert w.reader.read(blob, 100, 50) == text[100:150]           # chunked path
        assert w.reader._cache                                         # (it caches)
        offset = rd.offset_in_wim
    raw = bytearray(open(wim, "rb").read())
    raw[offset + 40] ^= 0xFF
    (tmp_path / "bad.wim").write_bytes(raw)
    with Wim(str(tmp_path / "bad.wim")) as w:
        blob = w.image(1).lookup_path("small.txt").inode.data.blob
        with pytest.raises(WimCorruptError):
            w.reader.read(blob, 0, blob.size)


def test_libwim_is_found_by_name_then_by_search(monkeypatch):
    """libwim is loaded by its usual names (no `ldconfig -p` run); the library search is
    the fallback, and with neither a dependency error says what to install."""
    import ctypes.util

    import pytest

    from wimfs import codec
    from wimfs.errors import DependencyError

    searched = []
    real = ctypes.util.find_library

    def find(name):
        searched.append(name)
        return real(name)

    monkeypatch.setattr(ctypes.util, "find_library", find)
    monkeypatch.setattr(codec, "_lib", None)
    assert codec.libwim().wimlib_compress
    assert searched == []
    monkeypatch.setattr(codec, "_lib", None)
    monkeypatch.setattr(codec, "LIBWIM_NAMES", ("libwim-not-here.so.99",))
    assert codec.libwim().wimlib_compress
    assert searched == ["wim"]
    monkeypatch.setattr(codec, "_lib", None)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    with pytest.raises(DependencyError, match="apt-get install libwim15"):
        codec.libwim()


def test_gathered_writes_survive_short_writes(tmp_path, monkeypatch):
    """ResourceWriter._write_all: one pwritev per IOV_MAX pieces; whatever a short write
    left is written after it, so the file is the pieces end to end."""
    import os
    import random

    from wimfs.format import structs as S
    from wimfs.writer import ResourceWriter

    r = random.Random(3)
    pieces = [r.randbytes(r.randrange(0, 5000)) for _ in range(2500)]
    real = os.pwritev
    calls = []

    def short(fd, buffers, offset):
        calls.append(len(buffers))
        data = b"".join(buffers)
        return real(fd, [data[:max(0, len(data) - r.randrange(0, 9000))]], offset)

    monkeypatch.setattr(os, "pwritev", short)
    path = tmp_path / "out"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        w = ResourceWriter(fd, 7, S.COMPRESSION_NONE, 32768)
        w._write_all(pieces)
        assert w.pos == 7 + sum(map(len, pieces))
    finally:
        os.close(fd)
    assert path.read_bytes()[7:] == b"".join(pieces)
    assert calls == [1024, 1024, 452]
