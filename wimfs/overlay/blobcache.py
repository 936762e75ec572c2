"""Whole blobs read through the path API, kept for the next reader of the same blob.

A servicing operation reads a hive whole several times (image-info, then the edit), and an
``IMAGE.wim:all`` run reads the same hive blob of every edition: editions share their
SYSTEM hive. Decompressing an 11 MiB LZX hive costs about 25 ms each time; the cache,
keyed by the blob's SHA-1 and bounded in bytes (least recently used out first), makes
every read after the first a dictionary lookup. Bytes are immutable, so a cached blob is
never changed by its readers.
"""

from __future__ import annotations

from collections import OrderedDict

DEFAULT_LIMIT = 128 << 20


class BlobCache:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self.size = 0
        self._blobs: OrderedDict[bytes, bytes] = OrderedDict()

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

    def clear(self) -> None:
        self._blobs.clear()
        self.size = 0
