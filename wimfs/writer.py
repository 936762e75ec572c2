"""The one WIM writer behind capture, export, optimize and commit.

`ResourceWriter` appends resources to a file: blobs (one resource each, or packed
into solid resources), metadata resources, the blob table, XML and the integrity
table. Chunks are compressed by libwim in worker threads (it releases the GIL),
kept in order, and each chunk is stored raw when it does not shrink; a whole
resource is stored uncompressed when compression does not pay.

Chunk reuse: a source derived from a blob stored as a plain resource compressed as
this writer compresses (`BlobSource.origin`, e.g. a file of a read-write session
copied up from its old blob) does not recompress the chunks whose bytes did not
change: each chunk is compared with the old resource's chunk (decompressing is far
cheaper than compressing) and, when equal, the old compressed bytes are copied.

Dedup: every blob is hashed with SHA-1 as it is written; a blob whose hash is
already known (in the WIM being appended to, or written earlier in this run) is
dropped and the file position rolled back, so each file is read once.

Memory: a blob of up to HOLD_BYTES is held (raw and compressed) until its last chunk
decides how it is stored; a larger one is written as its chunks arrive (`_Streamed`),
its chunk table last, and read a second time only if compression did not pay in the
end and it must be stored raw (as wimlib does). Either way at most WINDOW_BYTES of
chunks are in flight.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from wimfs.chunkmemo import ChunkMemo, chunk_key
from wimfs.codec import Compressor
from wimfs.errors import WimfsError
from wimfs.format import structs as S
from wimfs.format.blobtable import ZERO_HASH, build_blob_table
from wimfs.format.header import ResourceHeader
from wimfs.progress import Progress

log = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = {S.COMPRESSION_NONE: 32768, S.COMPRESSION_XPRESS: 32768,
                      S.COMPRESSION_LZX: 32768, S.COMPRESSION_LZMS: 131072}
SOLID_CHUNK_SIZE = 64 << 20
WINDOW_BYTES = 16 << 20           # chunks in flight per writer (64 batches of 256 KiB)


class BlobSource:
    """Where a blob's bytes come from. Re-iterable (a resource that does not compress
    is written again raw)."""

    size: int
    # A blob these bytes were derived from (a staged copy of it, edited): the writer
    # reuses its compressed chunks that did not change. Only a hint; chunks are compared.
    origin: WimBlobSource | None = None

    def chunks(self, chunk_size: int) -> Iterator[bytes]:
        raise NotImplementedError

    def describe(self) -> str:
        return "<data>"


class BytesSource(BlobSource):
    def __init__(self, data: bytes):
        self.data = data
        self.size = len(data)

    def chunks(self, chunk_size: int) -> Iterator[bytes]:
        mv = memoryview(self.data)
        for off in range(0, self.size, chunk_size):
            yield bytes(mv[off:off + chunk_size])


class FileSource(BlobSource):
    def __init__(self, path: str, size: int | None = None):
        self.path = path
        self.size = os.path.getsize(path) if size is None else size

    def chunks(self, chunk_size: int) -> Iterator[bytes]:
        with open(self.path, "rb", buffering=0) as f:
            left = self.size
            while left > 0:
                data = f.read(min(chunk_size, left))
                if not data:
                    raise WimfsError(f"{self.path}: file shrank while being read")
                # Files may be read in pieces smaller than asked for.
                while len(data) < min(chunk_size, left):
                    more = f.read(min(chunk_size, left) - len(data))
                    if not more:
                        raise WimfsError(f"{self.path}: file shrank while being read")
                    data += more
                left -= len(data)
                yield data

    def describe(self) -> str:
        return self.path


class WimBlobSource(BlobSource):
    """A blob of another (or the same) WIM, read through its ResourceReader."""

    def __init__(self, reader, blob):
        self.reader = reader
        self.blob = blob
        self.size = blob.size

    def chunks(self, chunk_size: int) -> Iterator[bytes]:
        for off in range(0, self.size, chunk_size):
            yield self.reader.read(self.blob, off, chunk_size)

    def describe(self) -> str:
        return f"blob {self.blob.hex}"


@dataclass(slots=True)
class WrittenBlob:
    """A blob as it will appear in the new blob table."""

    hash: bytes
    size: int
    reshdr: ResourceHeader
    refcnt: int = 1
    part_number: int = 1
    solid_group: int = -1          # index into ResourceWriter.solid_resources, or -1


class ResourceWriter:
    """Appends resources to `fd` starting at `offset`."""

    def __init__(self, fd: int, offset: int, ctype: int, chunk_size: int, threads: int = 0,
                 progress: Progress | None = None, level: int = 0) -> None:
        self.fd = fd
        self.pos = offset
        self.ctype = ctype
        self.chunk_size = chunk_size
        self.level = level
        self.threads = threads or os.cpu_count() or 2
        self.progress = progress or Progress()
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="wimfs-compress") \
            if ctype != S.COMPRESSION_NONE else None
        self._compressors: dict = {}
        self.solid_resources: list[ResourceHeader] = []
        self.solid_usizes: list[int] = []
        self.stats = {"compressed_chunks": 0, "reused_chunks": 0}
        # Chunks compressed ahead of this write (a read-write mount's closed files).
        self.memo: ChunkMemo | None = None
        self._stats_lock = threading.Lock()

    def close(self) -> None:
        if self._pool:
            self._pool.shutdown(wait=True)

    # -- low level ------------------------------------------------------------

    def _write(self, data: bytes | memoryview) -> None:
        self.pos = _pwrite_all(self.fd, data, self.pos)

    def _compressor(self, ctype: int, chunk_size: int) -> Compressor:
        key = (threading.get_ident(), ctype, chunk_size)
        c = self._compressors.get(key)
        if c is None:
            c = self._compressors[key] = Compressor(ctype, chunk_size, self.level)
        return c

    IOV_MAX = 1024      # buffers per pwritev (Linux's IOV_MAX)

    def _write_all(self, pieces: list) -> None:
        """Write the pieces one after another: a gathered write per IOV_MAX of them, not
        one call each (a resource is hundreds of chunks)."""
        for k in range(0, len(pieces), self.IOV_MAX):
            group = pieces[k:k + self.IOV_MAX]
            total = sum(len(p) for p in group)
            n = os.pwritev(self.fd, group, self.pos)
            self.pos += n
            if n < total:                   # a short write: the rest one by one
                for piece in group:
                    skip = min(n, len(piece))
                    n -= skip
                    if skip < len(piece):
                        self._write(memoryview(piece)[skip:])

    def _compress_chunk(self, ctype: int, chunk_size: int, data: bytes) -> bytes:
        if self.memo:           # (an empty memo: no SHA-256 of every chunk for nothing)
            found, out = self.memo.get(chunk_key(ctype, chunk_size, self.level, data))
            if found:
                return data if out is None else out
        out = self._compressor(ctype, chunk_size).compress(data)
        return data if out is None else out

    # -- plain (non-solid) resources -------------------------------------------

    def write_buffer(self, data: bytes, compress: bool = True,
                     flags: int = 0) -> tuple[ResourceHeader, bytes]:
        """Write one resource from memory; return its header and SHA-1."""
        rh, digest = self.write_blobs([BytesSource(data)], compress=compress, flags=flags)[0]
        return rh, digest

    def write_blobs(self, sources: list[BlobSource], compress: bool = True, flags: int = 0,
                    known: Callable[[bytes], bool] | None = None,
                    on_error: Callable[[BlobSource, Exception], bool] | None = None
                    ) -> list[tuple[ResourceHeader | None, bytes | None]]:
        """Write each source as its own resource, in order, compressing chunks of several
        blobs at once. A blob whose hash satisfies `known` is not kept (position rolled
        back). `on_error(source, exc)` returning True skips an unreadable source;
        otherwise the error propagates. Returns (reshdr or None if deduplicated/skipped,
        sha1 or None if skipped) per source."""
        ctype = self.ctype if compress else S.COMPRESSION_NONE
        cs = self.chunk_size
        results: list[tuple[ResourceHeader | None, bytes | None]] = []
        outer_known = known
        seen: set[bytes] = set()

        def known(digest: bytes) -> bool:  # noqa: F811 - also dedup within this call
            if digest in seen or (outer_known is not None and outer_known(digest)):
                return True
            seen.add(digest)
            return False

        if ctype == S.COMPRESSION_NONE or self._pool is None:
            for src in sources:
                results.append(self._write_uncompressed(src, flags, known, on_error))
            return results

        window: deque[tuple[int, Future | bytes | BaseException]] = deque()
        window_bytes = 0
        gen = self._chunk_jobs(sources, cs, ctype)
        state = {"exhausted": False}

        def fill() -> None:
            nonlocal window_bytes
            while not state["exhausted"] and window_bytes < WINDOW_BYTES:
                try:
                    item = next(gen)
                except StopIteration:
                    state["exhausted"] = True
                    return
                window.append(item)
                window_bytes += cs

        # Per-source accumulation, consumed strictly in order. A source of up to
        # HOLD_BYTES is held (raw and compressed) until its end decides how it is stored;
        # a larger one is streamed to the file behind room left for its chunk table.
        for i, src in enumerate(sources):
            fill()
            chunks_raw: list[bytes] = []
            chunks_out: list[bytes] = []
            streamed = _Streamed(self, src.size, cs) if src.size > self.HOLD_BYTES else None
            sha = hashlib.sha1()
            failed: BaseException | None = None
            nchunks = -(-src.size // cs)
            for _ in range(nchunks):
                if not window:
                    fill()
                idx, raw, fut = window.popleft()
                window_bytes -= cs
                assert idx == i
                if isinstance(fut, BaseException):
                    failed = fut
                    break
                sha.update(raw)
                if streamed is not None:
                    streamed.add(fut.result())
                else:
                    chunks_raw.append(raw)
                    chunks_out.append(fut.result())
                fill()
                self.progress.add(len(raw))
            if failed is not None:
                if streamed is not None:
                    self.pos = streamed.start       # (nothing points at what it wrote)
                if on_error is not None and on_error(src, failed):
                    results.append((None, None))
                    continue
                raise failed
            digest = sha.digest() if src.size else ZERO_HASH
            if src.size == 0 or (known is not None and known(digest)):
                if streamed is not None:
                    self.pos = streamed.start
                results.append((None, digest))
                continue
            if streamed is not None:
                results.append((streamed.finish(src, digest, flags), digest))
            else:
                results.append((self._emit_chunked(src, chunks_raw, chunks_out, flags),
                                digest))
        return results

    # Sources larger than this are not held whole in memory while they are written.
    HOLD_BYTES = 4 << 20

    BATCH_BYTES = 256 << 10    # chunks compressed per worker task (small files: many)
    BATCH_CHUNKS = 64

    def _chunk_jobs(self, sources: list[BlobSource], cs: int, ctype: int):
        """Yield (source index, raw chunk, handle with .result() -> compressed chunk) in
        order; a read error yields the exception in place of the handle and ends that
        source. Chunks go to the workers in batches, so thousands of small files do not
        cost a task (and a GIL hand-over) each."""
        batch: list[tuple[int, bytes, tuple | None]] = []
        size = 0

        def flush():
            fut = self._pool.submit(self._compress_batch, ctype, cs,
                                    [(r, old) for _, r, old in batch])
            items = [(i, raw, _BatchItem(fut, k)) for k, (i, raw, _) in enumerate(batch)]
            batch.clear()
            return items

        for i, src in enumerate(sources):
            if src.size == 0:
                continue
            n = 0
            reuse = self._reusable(src, ctype, cs)
            try:
                for raw in src.chunks(cs):
                    old = (reuse[0], reuse[1], n) if reuse and n < reuse[2] else None
                    n += 1
                    batch.append((i, raw, old))
                    size += len(raw)
                    if size >= self.BATCH_BYTES or len(batch) >= self.BATCH_CHUNKS:
                        size = 0
                        yield from flush()
                if n != -(-src.size // cs):
                    raise WimfsError(f"{src.describe()}: size changed while being read")
            except (OSError, WimfsError) as exc:
                if batch:
                    size = 0
                    yield from flush()
                yield i, b"", exc  # ends this source; the consumer stops reading it
        if batch:
            yield from flush()

    def _reusable(self, src: BlobSource, ctype: int, cs: int) -> tuple | None:
        """(reader, rdesc, chunk count) of the resource whose chunks `src` may reuse."""
        origin = src.origin
        if origin is None:
            return None
        blob, r = origin.blob, origin.blob.rdesc
        if (r.is_solid or not r.is_compressed or blob.offset_in_res != 0
                or blob.size != r.uncompressed_size or r.compression_type != ctype
                or r.chunk_size != cs or blob.size == 0):
            return None
        return origin.reader, r, -(-blob.size // cs)

    def _compress_batch(self, ctype: int, cs: int,
                        jobs: list[tuple[bytes, tuple | None]]) -> list[bytes]:
        """Compress each chunk, or take the old stored chunk when its bytes are equal."""
        out = []
        reused = 0
        for raw, old in jobs:
            if old is not None:
                reader, rdesc, k = old
                try:
                    stored, data = reader.stored_chunk(rdesc, k)
                except (OSError, WimfsError):
                    stored, data = b"", b""        # unreadable: compress the new bytes
                if data == raw and stored:
                    out.append(stored)
                    reused += 1
                    continue
            out.append(self._compress_chunk(ctype, cs, raw))
        with self._stats_lock:
            self.stats["reused_chunks"] += reused
            self.stats["compressed_chunks"] += len(jobs) - reused
        return out

    def _emit_chunked(self, src: BlobSource, raws: list[bytes], outs: list[bytes],
                      flags: int) -> ResourceHeader:
        usize = src.size
        sizes = [len(c) for c in outs]
        start = self.pos
        if sum(sizes) + _table_size(len(sizes), usize) >= usize:
            # Compression does not pay: store the resource uncompressed.
            self._write_all(raws)
            return ResourceHeader(usize, flags, start, usize)
        self._write_all([_chunk_table(sizes, usize), *outs])
        return ResourceHeader(self.pos - start, flags | S.RESHDR_FLAG_COMPRESSED, start, usize)

    def _write_source(self, src: BlobSource, count: bool = True) -> bytes:
        """Write the source's bytes raw at the current position; return their SHA-1.
        `count`: add them to the progress (not when they were counted before)."""
        start = self.pos
        sha = hashlib.sha1()
        for raw in src.chunks(1 << 20):
            sha.update(raw)
            self._write(raw)
            if count:
                self.progress.add(len(raw))
        if self.pos - start != src.size:
            raise WimfsError(f"{src.describe()}: size changed while being read")
        return sha.digest()

    def _write_uncompressed(self, src, flags, known, on_error):
        start = self.pos
        try:
            digest = self._write_source(src)
        except (OSError, WimfsError) as exc:
            self.pos = start
            if on_error is not None and on_error(src, exc):
                return None, None
            raise
        digest = digest if src.size else ZERO_HASH
        if src.size == 0 or (known is not None and known(digest)):
            self.pos = start
            return None, digest
        return ResourceHeader(src.size, flags, start, src.size), digest

    # -- raw copies ------------------------------------------------------------------

    def can_copy_raw(self, src: BlobSource) -> bool:
        """A blob of another WIM can be copied as stored (no decompress/recompress) when it
        is alone in a plain resource compressed exactly as this WIM wants it."""
        if not isinstance(src, WimBlobSource):
            return False
        blob, r = src.blob, src.blob.rdesc
        if r.is_solid or blob.offset_in_res != 0 or blob.size != r.uncompressed_size:
            return False
        if r.is_compressed:
            return r.compression_type == self.ctype and r.chunk_size == self.chunk_size
        return self.ctype == S.COMPRESSION_NONE

    def copy_raw(self, src: WimBlobSource, flags: int = 0) -> ResourceHeader:
        """Copy a resource byte for byte (its SHA-1 is the blob table's, not re-checked,
        as wimlib's export does)."""
        r = src.blob.rdesc
        start = self.pos
        off, left = r.offset_in_wim, r.size_in_wim
        while left > 0:
            n = min(left, 4 << 20)
            self._write(src.reader.pread(n, off, r.part_number))
            off += n
            left -= n
        self.progress.add(src.size)
        return ResourceHeader(r.size_in_wim, flags | (r.flags & S.RESHDR_FLAG_COMPRESSED),
                              start, r.uncompressed_size)

    # -- solid resources ---------------------------------------------------------

    def write_solid(self, sources: list[tuple[bytes, BlobSource]], ctype: int = S.COMPRESSION_LZMS,
                    chunk_size: int = SOLID_CHUNK_SIZE) -> list[tuple[bytes, ResourceHeader]]:
        """Pack already-hashed blobs into one solid resource. Returns (hash, blob reshdr)
        where the blob reshdr's offset is inside the resource's uncompressed data; the
        resource itself is appended to `solid_resources`."""
        total = sum(s.size for _, s in sources)
        if total == 0:
            return []
        nchunks = -(-total // chunk_size)
        start = self.pos
        header = S.SOLID_HEADER_STRUCT.pack(total, chunk_size, ctype)
        table_pos = start + len(header)
        self.pos = table_pos + 4 * nchunks
        pool = self._pool or ThreadPoolExecutor(self.threads)
        sizes: list[int] = []
        futs: deque[Future] = deque()
        max_inflight = max(2, self.threads + 1)

        def stream() -> Iterator[bytes]:
            buf = bytearray()
            for _h, s in sources:
                for piece in s.chunks(min(chunk_size, 1 << 22)):
                    buf += piece
                    self.progress.add(len(piece))
                    while len(buf) >= chunk_size:
                        yield bytes(buf[:chunk_size])
                        del buf[:chunk_size]
            if buf:
                yield bytes(buf)

        def drain(limit: int) -> None:
            while len(futs) > limit:
                c = futs.popleft().result()
                sizes.append(len(c))
                self._write(c)

        for chunk in stream():
            futs.append(pool.submit(self._compress_chunk, ctype, chunk_size, chunk))
            drain(max_inflight)
        drain(0)
        if pool is not self._pool:
            pool.shutdown()
        end = self.pos
        self.pos = start
        self._write(header + struct.pack(f"<{nchunks}I", *sizes))
        self.pos = end
        self.solid_resources.append(ResourceHeader(end - start, S.RESHDR_FLAG_SOLID, start,
                                                   S.SOLID_RESOURCE_MAGIC_NUMBER))
        self.solid_usizes.append(total)
        out = []
        off = 0
        for h, s in sources:
            out.append((h, ResourceHeader(s.size, S.RESHDR_FLAG_SOLID, off, s.size)))
            off += s.size
        return out


class _Streamed:
    """A resource written while its chunks arrive: room for the chunk table first, the
    compressed chunks after it (in gathered writes), the table last. If compression did
    not pay in the end, the source is read again and written raw over it, as wimlib does;
    a source whose bytes differ on that second read is an error (the first read's SHA-1
    names the blob)."""

    FLUSH_CHUNKS = 64

    def __init__(self, writer: ResourceWriter, usize: int, cs: int) -> None:
        self.w = writer
        self.usize = usize
        self.table_size = _table_size(-(-usize // cs), usize)
        self.start = writer.pos
        writer.pos = self.start + self.table_size
        self.sizes: list[int] = []
        self.pending: list[bytes] = []

    def add(self, out: bytes) -> None:
        self.sizes.append(len(out))
        self.pending.append(out)
        if len(self.pending) >= self.FLUSH_CHUNKS:
            self._flush()

    def _flush(self) -> None:
        self.w._write_all(self.pending)
        self.pending = []

    def finish(self, src: BlobSource, digest: bytes, flags: int) -> ResourceHeader:
        self._flush()
        w = self.w
        if sum(self.sizes) + self.table_size >= self.usize:
            # Compression does not pay: the resource is stored uncompressed.
            w.pos = self.start
            try:
                if w._write_source(src, count=False) != digest:
                    raise WimfsError(f"{src.describe()}: changed while being read")
            except BaseException:
                w.pos = self.start
                raise
            return ResourceHeader(self.usize, flags, self.start, self.usize)
        _pwrite_all(w.fd, _chunk_table(self.sizes, self.usize), self.start)
        return ResourceHeader(w.pos - self.start, flags | S.RESHDR_FLAG_COMPRESSED,
                              self.start, self.usize)


def _table_size(nchunks: int, usize: int) -> int:
    """Bytes of a compressed resource's chunk table: an entry per chunk after the first,
    4 bytes each, 8 for a resource over 4 GiB."""
    return (nchunks - 1) * (4 if usize <= 0xFFFFFFFF else 8)


def _chunk_table(sizes: list[int], usize: int) -> bytes:
    """The chunk table: where each chunk after the first starts, from the compressed
    sizes of the chunks."""
    offsets = list(itertools.accumulate(sizes[:-1]))
    return struct.pack(f"<{len(offsets)}{'I' if usize <= 0xFFFFFFFF else 'Q'}", *offsets)


def _pwrite_all(fd: int, data: bytes | memoryview, at: int) -> int:
    """Write all of `data` at offset `at` (pwrite may write less); the offset after it."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, at)
        at += n
        view = view[n:]
    return at


class _BatchItem:
    """One chunk's share of a batch task's result."""

    __slots__ = ("fut", "k")

    def __init__(self, fut: Future, k: int):
        self.fut = fut
        self.k = k

    def result(self) -> bytes:
        return self.fut.result()[self.k]


def blob_table_bytes(entries: list[WrittenBlob], solid: list[ResourceHeader],
                     solid_usizes: list[int], metadata: list[WrittenBlob]) -> bytes:
    """Serialise the blob table: plain blobs, then metadata entries in image order, then
    each solid resource entry followed by its blobs, whose offsets count through all solid
    resources as if they were one (what WIMGAPI expects)."""
    rows = [(e.reshdr, e.part_number, e.refcnt, e.hash) for e in entries if e.solid_group < 0]
    rows += [(m.reshdr, m.part_number, m.refcnt, m.hash) for m in metadata]
    logical = 0
    for gi, rh in enumerate(solid):
        rows.append((rh, 1, 1, ZERO_HASH))
        for e in entries:
            if e.solid_group == gi:
                r = e.reshdr
                # A blob in a solid resource: its size is in size_in_wim; the
                # uncompressed size field is 0, as WIMGAPI and wimlib write it (7-Zip
                # refuses the blob otherwise).
                rows.append((ResourceHeader(r.size_in_wim, r.flags, r.offset_in_wim + logical,
                                            0), e.part_number, e.refcnt, e.hash))
        logical += solid_usizes[gi]
    return build_blob_table(rows)
