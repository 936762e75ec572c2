"""The integrity table: SHA-1 of each chunk of the WIM from the end of the header
to the end of the blob table."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass

from wimfs.errors import WimCorruptError
from wimfs.format import structs as S

INTEGRITY_CHUNK_SIZE = 10 * 1024 * 1024


@dataclass(slots=True)
class IntegrityTable:
    chunk_size: int
    hashes: list[bytes]

    @classmethod
    def parse(cls, data: bytes) -> IntegrityTable:
        if len(data) < 12:
            raise WimCorruptError("integrity table is truncated")
        size, n, chunk_size = struct.unpack_from("<III", data, 0)
        if chunk_size == 0 or size < 12 + 20 * n or len(data) < 12 + 20 * n:
            raise WimCorruptError("integrity table is invalid")
        return cls(chunk_size, [data[12 + 20 * i:32 + 20 * i] for i in range(n)])

    def build(self) -> bytes:
        body = b"".join(self.hashes)
        return struct.pack("<III", 12 + len(body), len(self.hashes), self.chunk_size) + body


def compute(read_at: Callable[[int, int], bytes], end: int,
            chunk_size: int = INTEGRITY_CHUNK_SIZE) -> IntegrityTable:
    hashes = []
    pos = S.WIM_HEADER_DISK_SIZE
    while pos < end:
        n = min(chunk_size, end - pos)
        data = read_at(pos, n)
        if len(data) != n:
            raise WimCorruptError("WIM is truncated (integrity check)")
        hashes.append(hashlib.sha1(data).digest())
        pos += n
    return IntegrityTable(chunk_size, hashes)


def verify(table: IntegrityTable, read_at: Callable[[int, int], bytes], end: int) -> list[int]:
    """Return the indexes of chunks whose SHA-1 does not match (empty = OK)."""
    expected_n = -(-(end - S.WIM_HEADER_DISK_SIZE) // table.chunk_size)
    if expected_n != len(table.hashes):
        raise WimCorruptError(f"integrity table has {len(table.hashes)} entries, "
                              f"expected {expected_n}")
    actual = compute(read_at, end, table.chunk_size)
    return [i for i, (a, b) in enumerate(zip(actual.hashes, table.hashes)) if a != b]
