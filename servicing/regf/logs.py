"""Transaction log replay ([regf] "Format of transaction log files").

A primary file is *dirty* when its sequence numbers differ or its base block
checksum is wrong.  Windows then recovers it from ``<hive>.LOG`` (NT 5.x),
``<hive>.LOG1``/``<hive>.LOG2`` (Vista and later).  Two formats exist:

* **Old format** ([regf] "Old format"): a 512-byte copy of the base block,
  then at offset 512 the *dirty vector* -- ``DIRT`` and a bitmap with one bit
  per 512-byte page of the hive bins data -- and, from the next 512-byte
  boundary, the dirty pages in bitmap order.
* **New format** ([regf] "New format", Windows 8.1+): the base block copy,
  then from offset 512 a sequence of ``HvLE`` log entries: size, flags,
  sequence number, hive bins data size, dirty page count, Hash-1 (Marvin32 of
  the entry from offset 40) and Hash-2 (Marvin32 of the first 32 bytes), the
  dirty page references (offset, size) and the pages.  Entries are applied
  in sequence-number order starting at the primary's secondary sequence
  number (or the log's when the primary base block is invalid); recovery
  stops at the first entry with a bad hash, a non-4096-multiple bins size or
  a gap in the sequence numbers.  Entries from both logs form one sequence.

Logs are only consulted for a dirty primary: "If a hive isn't dirty ...
subsequent log entries ... are ignored".
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence

from .errors import RegfCorruptError, RegfDirtyError, RegfError
from .format import (BASE_BLOCK_SIZE, BASE_CHECKSUM, HBIN_ALIGN, LOG_BASE_SIZE, U32, BaseBlock,
                     checksum, marvin32)

LOG_SUFFIXES = (".LOG", ".LOG1", ".LOG2")
#: HvLE entry header: signature, size, flags, sequence, bins size, dirty page
#: count, Hash-1, Hash-2 (construct declaration: structs.HvLEHeader)
HVLE_HDR = struct.Struct("<4sIIIIIQQ")
#: dirty page reference of an HvLE entry: offset, size
DIRTY_REF = struct.Struct("<II")
#: unit of the log layout: dirty pages of old logs, HvLE entry sizes
SECTOR = 512
#: the dirty vector (old format) or the first HvLE entry follows the base block copy
ENTRIES = LOG_BASE_SIZE
_BITMAP = ENTRIES + 4               # after b"DIRT"
_HASH2_SPAN = 32                    # Hash-2 covers the first 32 bytes of an entry


def find_logs(path: str) -> list[str]:
    """Existing, non-empty log files next to *path* (case-insensitive)."""
    d = os.path.dirname(os.path.abspath(path)) or "."
    base = os.path.basename(path).upper()
    want = {base + s for s in LOG_SUFFIXES}
    out = []
    try:
        names = os.listdir(d)
    except OSError:
        return []
    for n in sorted(names):
        if n.upper() in want:
            p = os.path.join(d, n)
            try:
                if os.path.isfile(p) and os.path.getsize(p) > 0:
                    out.append(p)
            except OSError:
                pass
    return out


def _log_base(raw: bytes) -> BaseBlock | None:
    if len(raw) < LOG_BASE_SIZE or raw[:4] != b"regf":
        return None
    hdr = bytearray(raw[:LOG_BASE_SIZE]).ljust(BASE_BLOCK_SIZE, b"\0")
    try:
        bb = BaseBlock(hdr)
    except RegfError:
        return None
    if U32.unpack_from(raw, BASE_CHECKSUM)[0] != checksum(raw[:LOG_BASE_SIZE]):
        return None
    return bb


def _apply_old(bb: BaseBlock, raw: bytes, data: bytearray) -> bytearray:
    size = bb.bins_size
    if size % HBIN_ALIGN or size <= 0:
        raise RegfCorruptError(f"old-format log: bad hive bins data size {size}")
    nbits = size // SECTOR
    nbytes = (nbits + 7) // 8
    if raw[ENTRIES:_BITMAP] != b"DIRT" or len(raw) < _BITMAP + nbytes:
        raise RegfCorruptError("old-format log: no dirty vector")
    bitmap = raw[_BITMAP:_BITMAP + nbytes]
    pos = ENTRIES + -(-(_BITMAP - ENTRIES + nbytes) // SECTOR) * SECTOR
    out = bytearray(data[:size].ljust(size, b"\0"))
    for i in range(nbits):
        if bitmap[i >> 3] & (1 << (i & 7)):
            page = raw[pos:pos + SECTOR]
            if len(page) < SECTOR:
                raise RegfCorruptError("old-format log: truncated dirty pages")
            out[i * SECTOR:(i + 1) * SECTOR] = page
            pos += SECTOR
    return out


def _new_entries(raw: bytes) -> list[tuple[int, int, list[tuple[int, bytes]]]]:
    """Valid HvLE entries of one log: (sequence, bins size, pages)."""
    out = []
    hdr = HVLE_HDR.size
    ref = DIRTY_REF.size
    pos = ENTRIES
    n = len(raw)
    while pos + hdr <= n and raw[pos:pos + 4] == b"HvLE":
        sig, size, _flags, seq, bins, count, h1, h2 = HVLE_HDR.unpack_from(raw, pos)
        if size < hdr or size % SECTOR or pos + size > n or bins % HBIN_ALIGN or bins == 0:
            break
        entry = raw[pos:pos + size]
        if marvin32(entry[:_HASH2_SPAN]) != h2 or marvin32(entry[hdr:]) != h1:
            break
        if hdr + ref * count > size:
            break
        p = hdr + ref * count
        pages = []
        ok = True
        for i in range(count):
            off, sz = DIRTY_REF.unpack_from(entry, hdr + ref * i)
            if p + sz > size or off + sz > bins:
                ok = False
                break
            pages.append((off, entry[p:p + sz]))
            p += sz
        if not ok:
            break
        out.append((seq, bins, pages))
        pos += size
    return out


def read_logs(paths: Sequence[str]) -> list[bytes]:
    """The contents of the log files *paths*; :class:`RegfDirtyError` when
    one cannot be read (a dirty hive cannot be recovered then)."""
    out = []
    for p in paths:
        try:
            with open(p, "rb") as f:
                out.append(f.read())
        except OSError as e:
            raise RegfDirtyError(f"cannot read log {p}: {e.strerror}") from None
    return out


def replay(base: BaseBlock, data: bytearray,
           logs: Sequence[bytes]) -> tuple[BaseBlock, bytearray, int]:
    """Recover a dirty primary from the contents of its logs (``.LOG``,
    ``.LOG1``, ``.LOG2``, in any order).

    Returns the updated base block, hive bins data and the last sequence
    number applied.  Raises :class:`RegfDirtyError` when no log can be used.
    """
    olds: list[tuple[BaseBlock, bytes]] = []
    entries: dict[int, tuple[int, list]] = {}
    log_bases: list[BaseBlock] = []
    for raw in logs:
        bb = _log_base(raw)
        if bb is None:
            continue
        if raw[ENTRIES:_BITMAP] == b"DIRT":
            if bb.seq1 == bb.seq2:
                olds.append((bb, raw))
        elif raw[ENTRIES:_BITMAP] == b"HvLE":
            log_bases.append(bb)
            for seq, bins, pages in _new_entries(raw):
                entries.setdefault(seq, (bins, pages))
    if entries:
        start = base.seq2 if base.checksum_ok else max(b.seq1 for b in log_bases)
        cands = sorted(s for s in entries if s >= start)
        if cands:
            seq = cands[0]
            last = None
            while seq in entries:
                bins, pages = entries[seq]
                if len(data) < bins:
                    data.extend(b"\0" * (bins - len(data)))
                elif len(data) > bins:
                    del data[bins:]
                for off, page in pages:
                    data[off:off + len(page)] = page
                base.bins_size = bins
                last = seq
                seq += 1
            if not base.checksum_ok:
                lb = max(log_bases, key=lambda b: b.seq1)
                base.root = lb.root
                base.major, base.minor = lb.major, lb.minor
            base.seq1 = base.seq2 = last
            return base, data, last
    if olds:
        bb, raw = max(olds, key=lambda t: t[0].seq1)
        if bb.seq1 >= base.seq2 or not base.checksum_ok:
            data = _apply_old(bb, raw, data)
            base.bins_size = bb.bins_size
            base.root = bb.root
            base.seq1 = base.seq2 = bb.seq1
            return base, data, bb.seq1
    bad = "" if base.checksum_ok else ", bad checksum"
    raise RegfDirtyError(f"hive is dirty (sequence numbers {base.seq1}/{base.seq2}{bad}) and no "
                         "usable transaction log was found")


def build_old_log(base512: bytes, data, runs: list[tuple[int, int]]) -> bytes:
    """An old-format ([regf] "Old format") transaction log holding the
    pages of *data* (the new hive bins data) covered by *runs* ((offset,
    length) pairs, 512-byte aligned): *base512* (the log's base block, its
    bins size = ``len(data)``), ``DIRT`` + the bitmap, the dirty pages."""
    size = len(data)
    nbits = size // SECTOR
    nbytes = (nbits + 7) // 8
    bitmap = bytearray(nbytes)
    pages = []
    mv = memoryview(data)
    try:
        for off, ln in runs:
            if off % SECTOR or (ln % SECTOR and off + ln != size):
                raise ValueError("log runs must be 512-byte aligned")
            for i in range(off // SECTOR, -(-(off + ln) // SECTOR)):
                bitmap[i >> 3] |= 1 << (i & 7)
            pages.append(bytes(mv[off:off + ln]))
    finally:
        mv.release()
    head = bytes(base512[:LOG_BASE_SIZE]) + b"DIRT" + bytes(bitmap)
    head += bytes(-len(head) % SECTOR)
    return head + b"".join(pages)
