"""Where value data and value lists live in the cells ([regf] "Key value",
"Big data", "Values list").

Data of up to 4 bytes is stored inline in the vk's data offset field (size
field MSB set); longer data in one data cell, or -- over
:data:`~servicing.regf.format.BIG_DATA_THRESHOLD` bytes on hives of minor
version 4 and later -- in a ``db`` record: a list of segment cells of at
most :data:`~servicing.regf.format.BIG_DATA_SEGMENT` bytes each.  A key's
value list is one cell of vk offsets; it grows with ~25 % spare entries so
that adding n values one by one costs O(n) rather than O(n^2).
"""

from __future__ import annotations

import struct

from .alloc import Allocator
from .cells import Cells
from .errors import RegfCorruptError
from .format import (BIG_DATA_SEGMENT, BIG_DATA_THRESHOLD, CELL_SIZE_FIELD, DATA_INLINE, DB,
                     NIL, NK_NAME, NK_NVAL, NK_VALLIST, U32, VK, VK_DOFF, VK_DSIZE)

#: a rewritten value list keeps its cell unless that wastes this many bytes
_LIST_SLACK = 64


class ValueCells:
    """Value data and value lists of one hive."""

    def __init__(self, cells: Cells, alloc: Allocator, minor: int):
        self.cells = cells
        self.alloc = alloc
        self.big_data = minor >= 4          # db records exist from regf 1.4 on

    def _is_big(self, length: int) -> bool:
        return self.big_data and length > BIG_DATA_THRESHOLD

    def _db(self, off: int) -> tuple[int, ...] | None:
        """The segment cells of the db record at data cell *off*, or None
        when it is not one."""
        s, _ = self.cells.cell(off)
        if self.cells.data[s:s + 2] != b"db":
            return None
        _, nseg, segl = DB.unpack_from(self.cells.data, s)
        ss, se = self.cells.cell(segl)
        if 4 * nseg > se - ss:
            raise RegfCorruptError(f"big data segment list {segl:#x} overruns its cell")
        return struct.unpack_from(f"<{nseg}I", self.cells.data, ss) + (segl,)

    def read(self, vk: int) -> bytes:
        """The data of the value at *vk*."""
        cells = self.cells
        d = cells.data
        _sig, _nlen, dsize, doff, _t, _f, _ = VK.unpack_from(d, vk + CELL_SIZE_FIELD)
        if dsize & DATA_INLINE:
            ln = dsize & ~DATA_INLINE
            if ln > 4:
                raise RegfCorruptError(f"inline value data of cell {vk:#x} longer than 4 bytes")
            return bytes(d[vk + VK_DOFF: vk + VK_DOFF + ln])
        if dsize == 0:
            return b""
        s, e = cells.cell(doff)
        segs = self._db(doff) if self._is_big(dsize) else None
        if segs is None:
            if dsize > e - s:
                raise RegfCorruptError(f"value data of cell {vk:#x} overruns its cell")
            return bytes(d[s:s + dsize])
        parts = []
        left = dsize
        for seg in segs[:-1]:
            if left <= 0:
                break
            a, b = cells.cell(seg)
            take = min(left, BIG_DATA_SEGMENT, b - a)
            parts.append(bytes(d[a:a + take]))
            left -= take
        if left > 0:
            raise RegfCorruptError(f"big data of value {vk:#x} shorter than its size")
        return b"".join(parts)

    def store(self, raw: bytes) -> tuple[int, int]:
        """Store value data; returns the vk's (data size, data offset) fields."""
        n = len(raw)
        if n <= 4:
            return n | DATA_INLINE, U32.unpack(raw.ljust(4, b"\0"))[0]
        if not self._is_big(n):
            return n, self.alloc.alloc_bytes(raw)
        segs = []
        for i in range(0, n, BIG_DATA_SEGMENT):
            # 4 spare bytes per segment cell: readers such as hivex take
            # (cell size - 8) as the segment length
            seg = raw[i:i + BIG_DATA_SEGMENT]
            off = self.alloc.alloc(len(seg) + 4)
            self.cells.data[off + CELL_SIZE_FIELD: off + CELL_SIZE_FIELD + len(seg)] = seg
            segs.append(off)
        segl = self.alloc.alloc_bytes(struct.pack(f"<{len(segs)}I", *segs))
        return n, self.alloc.alloc_bytes(DB.pack(b"db", len(segs), segl))

    def free(self, vk: int) -> None:
        """Free the data cells of the value at *vk* (not the vk)."""
        dsize = self.cells.u32(vk + VK_DSIZE)
        doff = self.cells.u32(vk + VK_DOFF)
        if dsize & DATA_INLINE or dsize == 0 or doff == NIL:
            return
        self.cells.cell(doff)
        segs = self._db(doff) if self._is_big(dsize) else None
        for seg in segs or ():          # the segments, then their list
            self.alloc.free(seg)
        self.alloc.free(doff)

    def append(self, nk: int, vk: int) -> None:
        """Append *vk* to the value list of *nk*: in place when the list
        cell has room, else into a new cell with spare entries."""
        cells = self.cells
        d = cells.data
        n = U32.unpack_from(d, nk + NK_NVAL)[0]
        lst = U32.unpack_from(d, nk + NK_VALLIST)[0]
        offs = b""
        if n and lst != NIL:
            s, e = cells.cell(lst)
            if 4 * n > e - s:
                raise RegfCorruptError(f"value list of key {nk:#x} overruns its cell")
            if 4 * (n + 1) <= e - s:
                cells.put_u32(s + 4 * n, vk)
                U32.pack_into(d, nk + NK_NVAL, n + 1)
                cells.mark(nk, NK_NAME)
                return
            offs = bytes(d[s:s + 4 * n])
        new = self.alloc.alloc(4 * (n + 1 + (n >> 2)))
        s = new + CELL_SIZE_FIELD
        d[s:s + 4 * n] = offs
        U32.pack_into(d, s + 4 * n, vk)
        if n and lst != NIL:
            self.alloc.free(lst)
        U32.pack_into(d, nk + NK_VALLIST, new)
        U32.pack_into(d, nk + NK_NVAL, n + 1)
        cells.mark(nk, NK_NAME)

    def write_list(self, nk: int, offs: list[int]) -> None:
        """Replace the value list of *nk* by *offs*."""
        cells = self.cells
        old = cells.u32(nk + NK_VALLIST)
        n_old = cells.u32(nk + NK_NVAL)
        new = NIL
        if offs:
            payload = struct.pack(f"<{len(offs)}I", *offs)
            if old != NIL and n_old:
                s, e = cells.cell(old)
                if e - s >= len(payload) and e - s - len(payload) < _LIST_SLACK:
                    cells.put(old, payload)
                    new = old
            if new == NIL:
                new = self.alloc.alloc_bytes(payload)
        if old != NIL and new != old and n_old:
            self.alloc.free(old)
        cells.put_u32(nk + NK_VALLIST, new)
        cells.put_u32(nk + NK_NVAL, len(offs))
        cells.mark(nk, NK_NAME)
