"""Chunks compressed ahead of a commit, found again by their content.

A read-write mount knows which files changed long before it is asked to commit: when the
last writer closes a file, its chunks can be compressed on an idle core
(`Precompressor`), and the commit's writer then takes them from here instead of
compressing them on the commit's critical path (`ResourceWriter` asks `ChunkMemo.get`
for every chunk it would compress). wimlib compresses at commit time; DISM users wait on
the commit, not on the editing.

Entries are keyed by what determines the output: compression type, chunk size, level and
the SHA-256 of the uncompressed chunk (a key over the content, so a file written again
after it was precompressed simply misses: nothing is ever stale, and a collision would
need a SHA-256 collision). The memo holds at most `limit` bytes of compressed chunks; the
oldest entries go first.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from wimfs.codec import Compressor

log = logging.getLogger(__name__)

MEMO_LIMIT = 64 << 20       # compressed bytes kept, per read-write mount
FILE_LIMIT = 4 << 20        # files larger than this are compressed at commit, as before
BACKLOG_LIMIT = 256 << 20   # bytes queued for precompression at once
NICE = 19                   # the precompressing thread's nice value (idle work)


def chunk_key(ctype: int, chunk_size: int, level: int, raw) -> tuple:
    return ctype, chunk_size, level, hashlib.sha256(raw).digest()


class ChunkMemo:
    """Thread-safe: compressed chunks by `chunk_key` (None: the chunk does not shrink)."""

    def __init__(self, limit: int = MEMO_LIMIT) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple, bytes | None] = OrderedDict()
        self._bytes = 0
        self.hits = 0           # chunks the writer took from here

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: tuple) -> bool:
        with self._lock:
            return key in self._entries

    def get(self, key: tuple) -> tuple[bool, bytes | None]:
        """(found, compressed bytes or None for a chunk that does not shrink)."""
        with self._lock:
            if key in self._entries:
                self.hits += 1
                return True, self._entries[key]
            return False, None

    def put(self, key: tuple, compressed: bytes | None) -> None:
        n = len(compressed) if compressed else 64
        with self._lock:
            if key in self._entries or n > self.limit:
                return
            self._entries[key] = compressed
            self._bytes += n
            while self._bytes > self.limit:
                _, old = self._entries.popitem(last=False)
                self._bytes -= len(old) if old else 64

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


class Precompressor:
    """Compresses closed files' chunks into a `ChunkMemo` on one background thread."""

    def __init__(self, ctype: int, chunk_size: int, level: int = 0,
                 memo: ChunkMemo | None = None) -> None:
        self.ctype, self.chunk_size, self.level = ctype, chunk_size, level
        self.memo = memo if memo is not None else ChunkMemo()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="wimfs-precompress")
        self._queued = 0
        self._lock = threading.Lock()
        self._compressor: Compressor | None = None
        self._pending: list = []

    def submit(self, path: str) -> bool:
        """Queue `path` (a staging file no one writes now). False if it was not taken
        (too big, or too much already queued)."""
        try:
            size = os.path.getsize(path)
        except OSError:
            return False
        if not 0 < size <= FILE_LIMIT:
            return False
        with self._lock:
            if self._queued + size > BACKLOG_LIMIT:
                return False
            self._queued += size
        fut = self._pool.submit(self._run, path, size)
        fut.size = size
        with self._lock:
            self._pending = [f for f in self._pending if not f.done()]
            self._pending.append(fut)
        return True

    def cancel_pending(self) -> None:
        """Drop the files not started yet (a commit is starting: it compresses what is
        left itself, on all cores, instead of racing this thread for the same chunks)."""
        with self._lock:
            pending, self._pending = self._pending, []
        for fut in pending:
            if fut.cancel():
                with self._lock:
                    self._queued -= fut.size

    def _run(self, path: str, size: int) -> None:
        try:
            if self._compressor is None:
                self._compressor = Compressor(self.ctype, self.chunk_size, self.level)
                try:        # idle work: the FUSE requests come first
                    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
                except (AttributeError, OSError):
                    pass
            cs = self.chunk_size
            with open(path, "rb") as f:
                while True:
                    raw = f.read(cs)
                    if not raw:
                        break
                    key = chunk_key(self.ctype, cs, self.level, raw)
                    if key not in self.memo:       # (a chunk seen in another file)
                        self.memo.put(key, self._compressor.compress(raw))
        except OSError as exc:      # removed or replaced meanwhile: the commit compresses it
            log.debug("precompress %s: %s", path, exc)
        finally:
            with self._lock:
                self._queued -= size

    def drain(self) -> None:
        """Wait until everything queued so far is done (tests)."""
        self._pool.submit(lambda: None).result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
