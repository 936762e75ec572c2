"""The cell allocator ([regf] "Cell": a positive size = unallocated).

A free-cell index by size, built lazily one hive bin at a time: opening a
100 MB hive and allocating a few cells must not walk a million cells (nor
hop 30,000 bin headers).  The offsets and sizes of the bins grow by hopping
headers only as far as needed; a bin's free cells enter the index when the
allocator's sequential scan reaches it or a cell of it is freed (free cells
never span bins, so coalescing stays inside one bin and a bin's cells are
indexed all or nothing).  New bins (4 KiB multiples, appended to the data)
are indexed when appended.

When no indexed free cell fits, at most :data:`SCAN_BUDGET` further bins
are scanned before a new bin is appended, so the cost of an allocation is
bounded; the scan cursor still sweeps the whole hive over many allocations,
so free space anywhere is eventually reused.  Freed cells are zeroed and
coalesced with free neighbours.
"""

from __future__ import annotations

import bisect

from wimfs.format.xmlinfo import filetime_now

from .cells import Cells
from .errors import RegfCorruptError
from .format import (CELL_ALIGN, CELL_SIZE_FIELD, HBIN, HBIN_ALIGN, HBIN_HEADER_SIZE,
                     HBIN_SIZE, I32, NIL, U32)

SCAN_BUDGET = 64        # bins scanned per allocation miss
_MIN_SPLIT = 16         # smallest free remainder worth keeping as its own cell


class Allocator:
    """Allocates and frees cells of one hive's :class:`Cells`."""

    def __init__(self, cells: Cells):
        self.cells = cells
        self.free_start: dict[int, int] = {}      # free cell -> size
        self.free_end: dict[int, int] = {}        # end of a free cell -> its offset
        self.free_by_size: dict[int, set[int]] = {}
        self.free_sizes: list[int] = []           # sorted keys of free_by_size
        self.bins: list[int] = []                 # starts of the bins hopped so far
        self.bin_sizes: list[int] = []
        self.hop = 0                              # next bin header not yet hopped
        self.scanned: set[int] = set()            # bins whose free cells are indexed
        self.cursor = 0                           # index in bins of the sequential scan

    # ---- bins
    def _hop_one(self) -> None:
        """Read the next hive bin header (bins are contiguous from 0)."""
        d = self.cells.data
        pos = self.hop
        if d[pos:pos + 4] != b"hbin":
            raise RegfCorruptError(f"expected hive bin at {pos:#x}")
        bsize = U32.unpack_from(d, pos + HBIN_SIZE)[0]
        if bsize < HBIN_ALIGN or bsize % HBIN_ALIGN or pos + bsize > len(d):
            raise RegfCorruptError(f"bad hive bin size {bsize} at {pos:#x}")
        self.bins.append(pos)
        self.bin_sizes.append(bsize)
        self.hop = pos + bsize

    def _bin_of(self, off: int) -> int:
        """Number of the hive bin holding *off* (hopping headers as far as
        needed)."""
        n = len(self.cells.data)
        while self.hop <= off and self.hop < n:
            self._hop_one()
        i = bisect.bisect_right(self.bins, off) - 1
        if i < 0 or off >= self.bins[i] + self.bin_sizes[i]:
            raise RegfCorruptError(f"cell offset {off:#x} outside the hive bins")
        return i

    def _scan_bin(self, i: int) -> None:
        """Add the free cells of hive bin number *i* to the index,
        coalescing adjacent ones."""
        cells = self.cells
        d = cells.data
        unpack = I32.unpack_from
        pos = self.bins[i]
        self.scanned.add(pos)
        end = pos + self.bin_sizes[i]
        c = pos + HBIN_HEADER_SIZE
        prev = None                 # offset of a free cell ending at c
        while c < end:
            sz = unpack(d, c)[0]
            if sz > 0:
                if c + sz > end or sz % CELL_ALIGN:
                    raise RegfCorruptError(f"bad free cell at {c:#x}")
                if prev is not None:
                    self._index_remove(prev)
                    merged = c + sz - prev
                    I32.pack_into(d, prev, merged)
                    cells.mark(prev, CELL_SIZE_FIELD)
                    self._index_add(prev, merged)
                else:
                    self._index_add(c, sz)
                    prev = c
                c += sz
            elif sz < 0:
                if c - sz > end or -sz < 8:
                    raise RegfCorruptError(f"bad cell at {c:#x}")
                prev = None
                c -= sz
            else:
                raise RegfCorruptError(f"zero-sized cell at {c:#x}")

    def _new_bin(self, need: int) -> int:
        """Append a hive bin holding one free cell of at least *need* bytes;
        returns the cell."""
        cells = self.cells
        d = cells.data
        pos = len(d)
        bsize = -(-(need + HBIN_HEADER_SIZE) // HBIN_ALIGN) * HBIN_ALIGN
        d.extend(bytes(bsize))
        HBIN.pack_into(d, pos, b"hbin", pos, bsize, bytes(8), filetime_now(), 0)
        off = pos + HBIN_HEADER_SIZE
        I32.pack_into(d, off, bsize - HBIN_HEADER_SIZE)
        cells.mark(pos, bsize)
        self.scanned.add(pos)          # hopped into bins when reached
        self._index_add(off, bsize - HBIN_HEADER_SIZE)
        return off

    # ---- free-cell index
    def _index_add(self, off: int, size: int) -> None:
        self.free_start[off] = size
        self.free_end[off + size] = off
        b = self.free_by_size.get(size)
        if b is None:
            b = self.free_by_size[size] = set()
            bisect.insort(self.free_sizes, size)
        b.add(off)

    def _index_remove(self, off: int) -> None:
        size = self.free_start.pop(off)
        del self.free_end[off + size]
        b = self.free_by_size[size]
        b.discard(off)
        if not b:
            del self.free_by_size[size]
            del self.free_sizes[bisect.bisect_left(self.free_sizes, size)]

    def _find_free(self, need: int) -> int | None:
        """Offset of an indexed free cell of at least *need* bytes, scanning
        up to SCAN_BUDGET more bins (in file order) into the index; None if
        none fits."""
        sizes = self.free_sizes
        i = bisect.bisect_left(sizes, need)
        if i < len(sizes):
            return next(iter(self.free_by_size[sizes[i]]))
        budget = SCAN_BUDGET
        n = len(self.cells.data)
        while budget > 0:
            if self.cursor == len(self.bins):
                if self.hop >= n:
                    break
                self._hop_one()
            j = self.cursor
            self.cursor += 1
            if self.bins[j] in self.scanned:
                continue
            budget -= 1
            if self.bin_sizes[j] - HBIN_HEADER_SIZE < need:
                continue                 # cannot hold it; left for free()
            self._scan_bin(j)
            if sizes and sizes[-1] >= need:
                return next(iter(self.free_by_size[sizes[bisect.bisect_left(sizes, need)]]))
        return None

    # ---- public
    def alloc(self, length: int) -> int:
        """Allocate a cell holding *length* bytes of data; returns its offset."""
        d = self.cells.data
        need = (length + CELL_SIZE_FIELD + CELL_ALIGN - 1) & ~(CELL_ALIGN - 1)
        off = self._find_free(need)
        if off is None:
            off = self._new_bin(need)
        size = self.free_start[off]
        self._index_remove(off)
        rest = size - need
        if rest >= _MIN_SPLIT:
            I32.pack_into(d, off + need, rest)
            self._index_add(off + need, rest)
            self.cells.mark(off, need + CELL_SIZE_FIELD)
        else:
            need = size
            self.cells.mark(off, need)
        I32.pack_into(d, off, -need)
        return off

    def alloc_bytes(self, payload: bytes) -> int:
        """A new cell holding *payload*."""
        off = self.alloc(len(payload))
        s = off + CELL_SIZE_FIELD
        self.cells.data[s:s + len(payload)] = payload
        return off

    def free(self, off: int) -> None:
        """Free the cell at *off* (NIL: nothing), zeroing its data and
        coalescing it with free neighbours in its bin."""
        if off == NIL:
            return
        i = self._bin_of(off)
        if self.bins[i] not in self.scanned:
            self._scan_bin(i)
        d = self.cells.data
        size = I32.unpack_from(d, off)[0]
        if size >= 0:
            raise RegfCorruptError(f"double free of cell {off:#x}")
        size = -size
        if off + size > self.bins[i] + self.bin_sizes[i]:
            raise RegfCorruptError(f"cell {off:#x} overruns its hive bin")
        d[off + CELL_SIZE_FIELD: off + size] = bytes(size - CELL_SIZE_FIELD)   # scrub
        nxt = off + size
        if nxt in self.free_start:
            size += self.free_start[nxt]
            self._index_remove(nxt)
            U32.pack_into(d, nxt, 0)
        prev = self.free_end.get(off)
        if prev is not None:
            size += self.free_start[prev]
            self._index_remove(prev)
            U32.pack_into(d, off, 0)
            off = prev
        I32.pack_into(d, off, size)
        self.cells.mark(off, size)
        self._index_add(off, size)
