"""Whole blobs read through the path API, kept for the next reader of the same blob.

A servicing operation reads a hive whole several times (image-info, then the edit), and an
``IMAGE.wim:all`` run reads the same hive blob of every edition: editions share their
SYSTEM hive. Decompressing an 11 MiB LZX hive costs about 25 ms each time; the cache,
keyed by the blob's SHA-1 and bounded in bytes (least recently used out first), makes
every read after the first a dictionary lookup. Bytes are immutable, so a cached blob is
never changed by its readers.

It also interns content written whole through a session (`intern`: the same edited hive
written into every edition is held once, its SHA-1 computed once) and keeps objects
parsed read-only from a blob (`parsed`: a registry hive that every edition shares is
parsed once).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import xxhash

DEFAULT_LIMIT = 128 << 20
HELD_LIMIT = 256 << 20       # content written whole held in memory (see intern)
PARSED_LIMIT = 128 << 20     # bytes of parsed objects kept (their caller's estimate)


class BlobCache:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self.size = 0
        self._blobs: OrderedDict[bytes, bytes] = OrderedDict()
        self._fingerprints: dict[bytes, bytes] = {}      # xxh3-128 -> SHA-1
        self._held: dict[bytes, bytes] = {}              # SHA-1 -> content held
        self.held_size = 0
        self._parsed: OrderedDict[tuple, tuple[object, int]] = OrderedDict()
        self._parsed_size = 0

    def get(self, key: bytes) -> bytes | None:
        data = self._blobs.get(key)
        if data is not None:
            self._blobs.move_to_end(key)
        return data

    def put(self, key: bytes, data: bytes) -> None:
        if len(data) > self.limit or key in self._blobs:
            return
        self._blobs[key] = data
        self.size += len(data)
        while self.size > self.limit:
            _, old = self._blobs.popitem(last=False)
            self.size -= len(old)

    def intern(self, data: bytes) -> tuple[bytes, bytes] | None:
        """(bytes to hold, SHA-1) of content written whole, or None when holding it would
        pass HELD_LIMIT (the caller then stages it in a file). Content equal to content
        held before is shared and counted once, and its SHA-1 not computed again: it is
        found by a fast xxh3-128 fingerprint and confirmed by comparing the bytes."""
        fp = xxhash.xxh3_128_digest(data)
        sha = self._fingerprints.get(fp)
        if sha is not None:
            held = self._held.get(sha)
            if held is not None and held == data:
                return held, sha
        if self.held_size + len(data) > HELD_LIMIT:
            return None
        sha = hashlib.sha1(data).digest()
        held = self._held.get(sha)
        if held is None:
            held = self._held[sha] = bytes(data)
            self.held_size += len(held)
        self._fingerprints[fp] = sha
        return held, sha

    def parsed(self, key: tuple) -> object | None:
        """An object parsed read-only from a blob, by (kind, SHA-1), if kept."""
        found = self._parsed.get(key)
        if found is None:
            return None
        self._parsed.move_to_end(key)
        return found[0]

    def put_parsed(self, key: tuple, obj: object, size: int) -> None:
        """Keep *obj* (about *size* bytes); least recently used out first."""
        if size > PARSED_LIMIT or key in self._parsed:
            return
        self._parsed[key] = (obj, size)
        self._parsed_size += size
        while self._parsed_size > PARSED_LIMIT:
            _, (_, old) = self._parsed.popitem(last=False)
            self._parsed_size -= old

    def clear(self) -> None:
        self._blobs.clear()
        self._fingerprints.clear()
        self._held.clear()
        self.held_size = 0
        self._parsed.clear()
        self._parsed_size = 0
        self.size = 0
