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


class ResourceReader:
    """Reads blobs of one WIM file (opened by path or fd)."""

    READAHEAD_BYTES = 1 << 20      # keep this much decompressed ahead of a sequential reader

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
        self._hash_states: dict[int, _HashState] = {}
        n = threads or os.cpu_count() or 2
        self._pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="wimfs-readahead")
        self.stats = {"decompressed_chunks": 0, "cache_hits": 0, "readahead": 0}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

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
        offs, cs = self._chunk_table(rdesc)
        a, b = offs[idx], offs[idx + 1]
        usize = min(cs, rdesc.uncompressed_size - idx * cs)
        raw = self.pread(b - a, a, rdesc.part_number)
        self.stats["decompressed_chunks"] += 1
        if b - a == usize:          # stored raw: did not compress
            return raw
        try:
            return self.codecs.decompress(rdesc.compression_type, cs, raw, usize)
        except WimCorruptError as exc:
            raise WimCorruptError(f"chunk {idx} of resource at {rdesc.offset_in_wim}: "
                                  f"{exc}") from None

    def get_chunk(self, rdesc: ResourceDescriptor, idx: int) -> bytes:
        key = (id(rdesc), idx)
        with self._lock:
            data = self._cache.get(key)
            if data is not None:
                self._cache.move_to_end(key)
                self.stats["cache_hits"] += 1
                return data
            fut = self._inflight.get(key)
            owner = fut is None
            if owner:
                fut = self._inflight[key] = Future()
        if not owner:
            return fut.result()
        try:
            data = self._load_chunk(rdesc, idx)
        except BaseException as exc:
            with self._lock:
                del self._inflight[key]
            fut.set_exception(exc)
            raise
        with self._lock:
            del self._inflight[key]
            self._cache[key] = data
            self._cached += len(data)
            while self._cached > self.cache_bytes and len(self._cache) > 2:
                _, old = self._cache.popitem(last=False)
                self._cached -= len(old)
        fut.set_result(data)
        return data

    def _prefetch(self, rdesc: ResourceDescriptor, first: int, last: int) -> None:
        for idx in range(first, last + 1):
            key = (id(rdesc), idx)
            with self._lock:
                if key in self._cache or key in self._inflight:
                    continue
            self.stats["readahead"] += 1
            self._pool.submit(self._prefetch_one, rdesc, idx)

    def _prefetch_one(self, rdesc: ResourceDescriptor, idx: int) -> None:
        try:
            self.get_chunk(rdesc, idx)
        except Exception:  # the foreground read will report it
            pass

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
        rdesc, start, first, last, cs = self._chunk_range(blob, offset, size)
        rid = id(rdesc)
        with self._lock:
            parts = []
            for idx in range(first, last + 1):
                c = self._cache.get((rid, idx))
                if c is None:
                    return None
                parts.append(c)
            for idx in range(first, last + 1):
                self._cache.move_to_end((rid, idx))
        data = self._slice(parts, start - first * cs, size)
        return self._check_hash(blob, offset, data)

    @staticmethod
    def _slice(parts: list[bytes], skip: int, size: int) -> bytes:
        if len(parts) == 1:
            return parts[0][skip:skip + size]
        return b"".join(parts)[skip:skip + size]

    def read(self, blob: BlobDescriptor, offset: int, size: int) -> bytes:
        """Read `size` bytes at `offset` of the blob (short at its end)."""
        if blob.verified is False:
            raise BlobHashError(f"blob {blob.hex} has a bad SHA-1")
        size = min(size, blob.size - offset)
        if size <= 0:
            return b""
        rdesc = blob.rdesc
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
        # Sequential access: keep READAHEAD_BYTES (at least one chunk) decompressed ahead.
        rid = id(rdesc)
        prev = self._last_chunk.get(rid)
        self._last_chunk[rid] = last
        blob_last_chunk = (blob.offset_in_res + blob.size - 1) // cs
        if prev is not None and first in (prev, prev + 1) and last < blob_last_chunk:
            ahead = max(1, self.READAHEAD_BYTES // cs)
            self._prefetch(rdesc, last + 1, min(last + ahead, blob_last_chunk))
        parts = [self.get_chunk(rdesc, idx) for idx in range(first, last + 1)]
        data = self._slice(parts, start - first * cs, size)
        return self._check_hash(blob, offset, data)

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
