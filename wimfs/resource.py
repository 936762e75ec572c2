"""Random access to blobs: chunk tables, a bounded LRU of decompressed chunks,
read-ahead in worker threads and SHA-1 checking on a blob's first complete read.

Everything here is synchronous and thread-safe; the FUSE layer calls `read`
from worker threads (libwim releases the GIL while it decompresses), and may
call `read_cached` on the event loop thread to skip the thread hop when every
chunk it needs is already decompressed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from array import array
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

from wimfs.codec import Codecs
from wimfs.errors import WimCorruptError
from wimfs.format import structs as S
from wimfs.format.blobtable import BlobDescriptor, ResourceDescriptor

log = logging.getLogger(__name__)


class BlobHashError(WimCorruptError):
    """A blob's content does not match its SHA-1."""


class _HashState:
    __slots__ = ("next", "sha")

    def __init__(self) -> None:
        self.next = 0
        self.sha = hashlib.sha1()


class SpillCache:
    """Decompressed solid chunks (up to 64 MiB each) kept in an unlinked temporary file:
    the bytes live in the kernel's page cache instead of the daemon, reads take just the
    range they need, and random access over a multi-GB ESD does not decompress a chunk
    again each time it is revisited. Slots are reused least-recently-used first once
    `limit` bytes are in use; a slot's generation number lets readers detect that it
    was reused under them."""

    def __init__(self, directory: str | None, limit: int) -> None:
        self.directory = directory
        self.limit = limit
        self.fd = -1
        self.slots: OrderedDict[tuple[int, int], tuple[int, int, int]] = OrderedDict()
        self.free: dict[int, list[int]] = {}
        self.end = 0
        self.used = 0
        self.gen = 0

    def _open(self) -> None:
        import tempfile

        d = self.directory
        if d is None:
            from wimfs.paths import state_dir

            d = os.path.join(state_dir(), "cache")
        os.makedirs(d, mode=0o700, exist_ok=True)
        f = tempfile.TemporaryFile(dir=d)
        self.fd = os.dup(f.fileno())
        f.close()

    def reserve(self, key: tuple[int, int], size: int) -> tuple[int, int]:
        """A slot for `key` (caller holds the reader's lock). Returns (offset, gen)."""
        if self.fd < 0:
            self._open()
        free = self.free.get(size)
        if free:
            off = free.pop()
        elif self.used + size <= self.limit or not self.slots:
            off = self.end
            self.end += size
        else:
            # Reuse the least recently used slot that is big enough.
            for k, (o, n, _g) in self.slots.items():
                if n >= size:
                    del self.slots[k]
                    self.used -= n
                    off = o
                    size = n
                    break
            else:
                off = self.end
                self.end += size
        self.gen += 1
        self.used += size
        return off, self.gen

    def commit(self, key: tuple[int, int], off: int, size: int, gen: int) -> None:
        self.slots[key] = (off, size, gen)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class ResourceReader:
    """Reads blobs of one WIM file (opened by path or fd)."""

    READAHEAD_BYTES = 1 << 20      # keep this much decompressed ahead of a sequential reader
    TASK_CHUNKS = 8                # consecutive chunks decompressed by one worker task

    def __init__(self, fd: int, cache_bytes: int = 256 << 20, threads: int = 0,
                 verify: bool = True) -> None:
        self.fd = fd
        self.file_size = os.fstat(fd).st_size
        # Other parts of a split WIM (--ref): part number -> (fd, file size).
        self.part_fds: dict[int, tuple[int, int]] = {}
        self.cache_bytes = max(cache_bytes, 0)
        self.codecs = Codecs()
        self.verify = verify
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._cached = 0
        self._inflight: dict[tuple[int, int], Future] = {}
        self._tables: dict[int, tuple[array, int]] = {}
        self._rdescs: dict[int, ResourceDescriptor] = {}
        self._last_chunk: dict[int, int] = {}
        self._ra_high: dict[int, int] = {}     # highest chunk scheduled ahead, per resource
        self._hash_states: dict[int, _HashState] = {}
        n = threads or os.cpu_count() or 2
        self._pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="wimfs-readahead")
        # Solid chunks unpacked at once: each needs its 64 MiB output plus its input.
        # Both cores read an ESD at >= 100 MB/s (~250 MiB peak); WIMFS_SOLID_THREADS=1
        # halves the memory at ~90 MB/s.
        self._big_chunk = threading.Semaphore(
            int(os.environ.get("WIMFS_SOLID_THREADS", str(min(2, n)))))
        self.spill = SpillCache(os.environ.get("WIMFS_CACHE_DIR"),
                                int(os.environ.get("WIMFS_SPILL_LIMIT_MB", "8192")) << 20)
        self.stats = {"decompressed_chunks": 0, "cache_hits": 0, "readahead": 0}

    def drop_cache(self) -> None:
        """Free the decompressed chunks held in memory (the WIM is being replaced)."""
        with self._lock:
            self._cache.clear()
            self._cached = 0

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.spill.close()

    SPILL_MIN_CHUNK = 1 << 20

    def _spills(self, rdesc: ResourceDescriptor) -> bool:
        return rdesc.chunk_size >= self.SPILL_MIN_CHUNK

    def _have(self, key: tuple[int, int], spills: bool) -> bool:
        return key in (self.spill.slots if spills else self._cache)

    # -- raw file access ----------------------------------------------------

    def pread(self, size: int, offset: int, part: int = 0) -> bytes:
        fd, file_size = self.part_fds.get(part) or (self.fd, self.file_size)
        if offset + size > file_size:
            raise WimCorruptError(f"resource at {offset}+{size} is past the end of the WIM "
                                  f"({file_size} bytes): the file is truncated")
        data = os.pread(fd, size, offset)
        while len(data) < size:  # pread may return short on some filesystems
            more = os.pread(fd, size - len(data), offset + len(data))
            if not more:
                raise WimCorruptError(f"short read at {offset}: the WIM is truncated")
            data += more
        return data

    # -- chunk tables ---------------------------------------------------------

    def _chunk_table(self, rdesc: ResourceDescriptor) -> tuple[array, int]:
        """Return (offsets, chunk_size): absolute file offsets of each chunk and one past
        the last chunk."""
        key = id(rdesc)
        t = self._tables.get(key)
        if t is not None:
            return t
        cs = rdesc.chunk_size
        usize = rdesc.uncompressed_size
        nchunks = -(-usize // cs)
        if rdesc.is_solid:
            hdr = S.SOLID_HEADER_STRUCT.size
            table_bytes = nchunks * 4
            raw = self.pread(table_bytes, rdesc.offset_in_wim + hdr, rdesc.part_number)
            sizes = array("I")
            sizes.frombytes(raw)
            offs = array("Q", [0]) * (nchunks + 1)
            pos = rdesc.offset_in_wim + hdr + table_bytes
            for i, s in enumerate(sizes):
                offs[i] = pos
                pos += s
            offs[nchunks] = pos
        else:
            esize = 4 if usize <= 0xFFFFFFFF else 8
            table_bytes = (nchunks - 1) * esize
            if table_bytes > rdesc.size_in_wim:
                raise WimCorruptError(f"resource at {rdesc.offset_in_wim}: chunk table larger "
                                      "than the resource")
            raw = self.pread(table_bytes, rdesc.offset_in_wim, rdesc.part_number) \
                if table_bytes else b""
            entries = array("I" if esize == 4 else "Q")
            entries.frombytes(raw)
            base = rdesc.offset_in_wim + table_bytes
            offs = array("Q", [base])
            offs.extend(base + e for e in entries)
            offs.append(rdesc.offset_in_wim + rdesc.size_in_wim)
        end = rdesc.offset_in_wim + rdesc.size_in_wim
        for i in range(nchunks):
            a, b = offs[i], offs[i + 1]
            chunk_usize = min(cs, usize - i * cs)
            if b < a or b > end or b - a > chunk_usize or (b == a and chunk_usize):
                raise WimCorruptError(f"resource at {rdesc.offset_in_wim}: invalid chunk "
                                      f"table entry {i}")
        if end > (self.part_fds.get(rdesc.part_number) or (0, self.file_size))[1]:
            raise WimCorruptError(f"resource at {rdesc.offset_in_wim} runs past the end of "
                                  "the WIM: the file is truncated")
        with self._lock:
            self._tables[key] = (offs, cs)
            self._rdescs[key] = rdesc
        return offs, cs

    def _load_chunk(self, rdesc: ResourceDescriptor, idx: int) -> bytes:
        self.stats["decompressed_chunks"] += 1
        return self._read_chunk(rdesc, idx, False)[1]

    def stored_chunk(self, rdesc: ResourceDescriptor, idx: int) -> tuple[bytes, bytes]:
        """Chunk `idx` of a compressed resource: (its bytes as stored, uncompressed); the
        uncompressed bytes come from the cache when the chunk was read lately."""
        return self._read_chunk(rdesc, idx, not self._spills(rdesc))

    def _read_chunk(self, rdesc: ResourceDescriptor, idx: int,
                    cached: bool) -> tuple[bytes, bytes]:
        offs, cs = self._chunk_table(rdesc)
        a, b = offs[idx], offs[idx + 1]
        usize = min(cs, rdesc.uncompressed_size - idx * cs)
        raw = self.pread(b - a, a, rdesc.part_number)
        if b - a == usize:          # stored raw: did not compress
            return raw, raw
        if cached:
            with self._lock:
                data = self._cache.get((id(rdesc), idx))
            if data is not None:
                return raw, data
        try:
            return raw, self.codecs.decompress(rdesc.compression_type, cs, raw, usize)
        except WimCorruptError as exc:
            raise WimCorruptError(f"chunk {idx} of resource at {rdesc.offset_in_wim}: "
                                  f"{exc}") from None

    def _once(self, key: tuple[int, int], lookup, load, store):
        """Produce the value for `key` once across threads: `lookup()` (under the lock)
        returns a value already there; otherwise one thread runs `load()` and `store()`s
        its result under the lock while the others wait for it."""
        with self._lock:
            found = lookup()
            if found is not None:
                self.stats["cache_hits"] += 1
                return found
            fut = self._inflight.get(key)
            owner = fut is None
            if owner:
                fut = self._inflight[key] = Future()
        if not owner:
            return fut.result()
        try:
            value = load()
        except BaseException as exc:
            with self._lock:
                del self._inflight[key]
            fut.set_exception(exc)
            raise
        with self._lock:
            del self._inflight[key]
            store(value)
        fut.set_result(value)
        return value

    def _ensure_spilled(self, rdesc: ResourceDescriptor, idx: int) -> None:
        """Decompress a big chunk into the spill file unless it is there already."""
        key = (id(rdesc), idx)

        def lookup():
            if key in self.spill.slots:
                self.spill.slots.move_to_end(key)
                return True
            return None

        def load():
            # Bounds memory: one (up to 64 MiB) chunk unpacked and written out at a
            # time; the buffer is gone before the next unpack starts.
            with self._big_chunk:
                data = self._load_chunk(rdesc, idx)
                with self._lock:
                    off, gen = self.spill.reserve(key, len(data))
                view = memoryview(data)
                pos = 0
                while pos < len(view):
                    pos += os.pwrite(self.spill.fd, view[pos:], off + pos)
                del view, data
            return off, pos, gen

        self._once(key, lookup, load, lambda slot: self.spill.commit(key, *slot))

    def _spill_read(self, key: tuple[int, int], skip: int, size: int) -> bytes | None:
        """Bytes of a spilled chunk, or None if it is not (or no longer) there."""
        with self._lock:
            slot = self.spill.slots.get(key)
            if slot is None:
                return None
            self.spill.slots.move_to_end(key)
        off, _n, gen = slot
        data = os.pread(self.spill.fd, size, off + skip)
        with self._lock:
            if self.spill.slots.get(key, (0, 0, -1))[2] != gen:
                return None        # the slot was reused while we read it
        return data

    def _spilled_range(self, rdesc: ResourceDescriptor, start: int, size: int,
                       load: bool) -> bytes | None:
        cs = rdesc.chunk_size
        rid = id(rdesc)
        parts = []
        pos, end = start, start + size
        while pos < end:
            idx = pos // cs
            skip = pos - idx * cs
            n = min(end - pos, cs - skip)
            for _attempt in range(3):
                if load:
                    self._ensure_spilled(rdesc, idx)
                piece = self._spill_read((rid, idx), skip, n)
                if piece is not None or not load:
                    break
            if piece is None:
                if load:
                    raise WimCorruptError("spill cache thrashing: raise WIMFS_SPILL_LIMIT_MB")
                return None
            parts.append(piece)
            pos += n
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def get_chunk(self, rdesc: ResourceDescriptor, idx: int) -> bytes:
        key = (id(rdesc), idx)
        if self._spills(rdesc):
            cs = rdesc.chunk_size
            n = min(cs, rdesc.uncompressed_size - idx * cs)
            return self._spilled_range(rdesc, idx * cs, n, load=True)  # type: ignore

        def lookup():
            data = self._cache.get(key)
            if data is not None:
                self._cache.move_to_end(key)
            return data

        def store(data) -> None:
            self._cache[key] = data
            self._cached += len(data)
            while self._cached > self.cache_bytes and len(self._cache) > 2:
                _, old = self._cache.popitem(last=False)
                self._cached -= len(old)

        return self._once(key, lookup, lambda: self._load_chunk(rdesc, idx), store)

    def _load_group(self, rdesc: ResourceDescriptor, idxs: list[int]) -> None:
        for idx in idxs:
            if self._spills(rdesc):
                self._ensure_spilled(rdesc, idx)
            else:
                self.get_chunk(rdesc, idx)

    def _submit(self, rdesc: ResourceDescriptor, idxs: list[int]) -> list[Future]:
        """Queue decompression of the chunks not cached or under way, in tasks of up to
        TASK_CHUNKS consecutive chunks; return their futures."""
        rid = id(rdesc)
        spills = self._spills(rdesc)
        with self._lock:
            todo = [i for i in idxs if not self._have((rid, i), spills) and
                    (rid, i) not in self._inflight]
        futs = []
        step = self.TASK_CHUNKS if rdesc.chunk_size <= 1 << 20 else 1
        for k in range(0, len(todo), step):
            futs.append(self._pool.submit(self._load_group, rdesc, todo[k:k + step]))
        return futs

    def _readahead(self, blob: BlobDescriptor, rdesc: ResourceDescriptor, first: int,
                   last: int) -> None:
        """Keep READAHEAD_BYTES (at least one chunk) decompressed ahead of a sequential
        reader: to the end of the blob, or for solid resources (whose blobs are read one
        after the other) to the end of the resource."""
        rid = id(rdesc)
        cs = rdesc.chunk_size
        prev = self._last_chunk.get(rid)
        self._last_chunk[rid] = last
        start_of_blob = first * cs <= blob.offset_in_res
        if not (start_of_blob or (prev is not None and prev <= first <= prev + 1)):
            return
        if rdesc.is_solid:
            limit = -(-rdesc.uncompressed_size // cs) - 1
        else:
            limit = (blob.offset_in_res + blob.size - 1) // cs
        target = min(last + max(1, self.READAHEAD_BYTES // cs), limit)
        high = self._ra_high.get(rid, -1)
        if start_of_blob or high < last:
            high = last
        lo = high + 1
        if lo > target:
            return
        self._ra_high[rid] = target
        futs = self._submit(rdesc, list(range(lo, target + 1)))
        self.stats["readahead"] += len(futs)

    def schedule(self, blob: BlobDescriptor, offset: int, size: int) -> list[Future]:
        """Start decompressing what a read needs (and read-ahead) on the worker threads.
        Returns futures for the chunks not yet available; when they are done, `read`
        is served from the cache."""
        size = min(size, blob.size - offset)
        if size <= 0 or not blob.rdesc.is_compressed:
            return []
        rdesc, start, first, last, cs = self._chunk_range(blob, offset, size)
        if last >= -(-rdesc.uncompressed_size // cs):
            raise WimCorruptError(f"blob {blob.hex} lies outside its resource")
        rid = id(rdesc)
        spills = self._spills(rdesc)
        with self._lock:
            missing = [i for i in range(first, last + 1) if not self._have((rid, i), spills)]
            waits = [self._inflight[(rid, i)] for i in missing if (rid, i) in self._inflight]
        futs = self._submit(rdesc, missing) + waits
        self._readahead(blob, rdesc, first, last)
        return futs

    # -- blob reads -------------------------------------------------------------

    def _chunk_range(self, blob: BlobDescriptor, offset: int, size: int):
        rdesc = blob.rdesc
        start = blob.offset_in_res + offset
        cs = rdesc.chunk_size
        return rdesc, start, start // cs, (start + size - 1) // cs, cs

    def read_cached(self, blob: BlobDescriptor, offset: int, size: int) -> bytes | None:
        """The bytes if they can be served without I/O or decompression, else None."""
        size = min(size, blob.size - offset)
        if size <= 0:
            return b""
        rdesc = blob.rdesc
        if not rdesc.is_compressed:
            return None
        if blob.verified is False:
            raise BlobHashError(f"blob {blob.hex} has a bad SHA-1")
        rdesc, start, first, last, cs = self._chunk_range(blob, offset, size)
        rid = id(rdesc)
        if self._spills(rdesc):
            data = self._spilled_range(rdesc, start, size, load=False)
            if data is None:
                return None
            self._readahead(blob, rdesc, first, last)
            return self._check_hash(blob, offset, data)
        with self._lock:
            parts = []
            for idx in range(first, last + 1):
                c = self._cache.get((rid, idx))
                if c is None:
                    return None
                parts.append(c)
            for idx in range(first, last + 1):
                self._cache.move_to_end((rid, idx))
        self._readahead(blob, rdesc, first, last)
        data = self._slice(parts, start - first * cs, size)
        return self._check_hash(blob, offset, data)

    @staticmethod
    def _slice(parts: list, skip: int, size: int) -> bytes:
        """Copy exactly the requested bytes out of the chunks (one copy)."""
        if len(parts) == 1:
            return bytes(memoryview(parts[0])[skip:skip + size])
        out = []
        for p in parts:
            mv = memoryview(p)
            if skip >= len(mv):
                skip -= len(mv)
                continue
            take = mv[skip:skip + size]
            out.append(take)
            size -= len(take)
            skip = 0
            if size <= 0:
                break
        return b"".join(out)

    def read(self, blob: BlobDescriptor, offset: int, size: int) -> bytes:
        """Read `size` bytes at `offset` of the blob (short at its end)."""
        if blob.verified is False:
            raise BlobHashError(f"blob {blob.hex} has a bad SHA-1")
        size = min(size, blob.size - offset)
        if size <= 0:
            return b""
        rdesc = blob.rdesc
        if offset == 0 and size == blob.size and self.is_one_chunk(blob):
            return self._check_hash(blob, 0, self._one_chunk(rdesc))
        if not rdesc.is_compressed:
            if blob.offset_in_res + offset + size > rdesc.uncompressed_size:
                raise WimCorruptError(f"blob {blob.hex} lies outside its resource")
            data = self.pread(size, rdesc.offset_in_wim + blob.offset_in_res + offset,
                              rdesc.part_number)
            return self._check_hash(blob, offset, data)
        rdesc, start, first, last, cs = self._chunk_range(blob, offset, size)
        nchunks = -(-rdesc.uncompressed_size // cs)
        if last >= nchunks:
            raise WimCorruptError(f"blob {blob.hex} lies outside its resource")
        self._readahead(blob, rdesc, first, last)
        if self._spills(rdesc):
            return self._check_hash(blob, offset,
                                    self._spilled_range(rdesc, start, size, load=True))
        parts = [self.get_chunk(rdesc, idx) for idx in range(first, last + 1)]
        data = self._slice(parts, start - first * cs, size)
        return self._check_hash(blob, offset, data)

    @staticmethod
    def is_one_chunk(blob: BlobDescriptor) -> bool:
        """A blob that is the whole of a compressed, non-solid resource of one chunk: most
        files of a Windows image. Read whole, it is one pread and one decompression, with
        no chunk table, no chunk cache and no locks."""
        rdesc = blob.rdesc
        return rdesc.is_compressed and not rdesc.is_solid and blob.offset_in_res == 0 and \
            blob.size == rdesc.uncompressed_size <= rdesc.chunk_size

    def _one_chunk(self, rdesc: ResourceDescriptor) -> bytes:
        usize, n = rdesc.uncompressed_size, rdesc.size_in_wim
        if not 0 < n <= usize:      # (the chunk table's checks, for its single entry)
            raise WimCorruptError(f"resource at {rdesc.offset_in_wim}: invalid size "
                                  f"{n} for a chunk of {usize} bytes")
        raw = self.pread(n, rdesc.offset_in_wim, rdesc.part_number)
        if n == usize:              # stored raw: did not compress
            return raw
        self.stats["decompressed_chunks"] += 1
        try:
            # bytes, as every other read returns (callers hand it to ctypes and hashes)
            return bytes(self.codecs.decompress(rdesc.compression_type, rdesc.chunk_size,
                                                raw, usize))
        except WimCorruptError as exc:
            raise WimCorruptError(f"chunk 0 of resource at {rdesc.offset_in_wim}: "
                                  f"{exc}") from None

    def read_once(self, blob: BlobDescriptor) -> bytes | bytearray:
        """The whole blob for a caller that keeps it (a metadata resource): decompressed
        chunk by chunk into one buffer, past the chunk cache, so no second copy exists."""
        rdesc = blob.rdesc
        if not rdesc.is_compressed or rdesc.is_solid or blob.offset_in_res or \
                blob.size != rdesc.uncompressed_size or blob.verified is False:
            return self.read_all(blob)
        _offs, cs = self._chunk_table(rdesc)
        out = bytearray(blob.size)
        pos = 0
        for idx in range(-(-blob.size // cs)):
            data = self._load_chunk(rdesc, idx)
            out[pos:pos + len(data)] = data
            pos += len(data)
        if pos != blob.size:
            raise WimCorruptError(f"blob {blob.hex}: short read")
        return self._check_hash(blob, 0, out)     # type: ignore[return-value]

    def read_all(self, blob: BlobDescriptor) -> bytes:
        data = self.read(blob, 0, blob.size)
        if len(data) != blob.size:
            raise WimCorruptError(f"blob {blob.hex}: short read")
        return data

    # -- SHA-1 on first complete read -------------------------------------------

    def _check_hash(self, blob: BlobDescriptor, offset: int, data: bytes) -> bytes:
        if not self.verify or blob.verified is not None:
            return data
        key = id(blob)
        if offset == 0 and len(data) == blob.size:
            ok = hashlib.sha1(data).digest() == blob.hash
            self._hash_states.pop(key, None)
            return self._finish_hash(blob, ok, data)
        with self._lock:
            st = self._hash_states.get(key)
            if offset == 0:
                st = self._hash_states[key] = _HashState()
            if st is None or st.next != offset:
                return data               # not sequential from the start: skip checking
            st.sha.update(data)
            st.next += len(data)
            if st.next < blob.size:
                return data
            del self._hash_states[key]
            ok = st.sha.digest() == blob.hash
        return self._finish_hash(blob, ok, data)

    @staticmethod
    def _finish_hash(blob: BlobDescriptor, ok: bool, data: bytes) -> bytes:
        blob.verified = ok
        if not ok:
            raise BlobHashError(f"blob {blob.hex} has a bad SHA-1")
        return data
