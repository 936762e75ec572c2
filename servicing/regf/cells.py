"""Cell access ([regf] "Cell"): the hive bins data held in one ``bytearray``,
bounds-checked reads of cells and of the fields of key nodes (nk) and key
values (vk), and the record of the 4 KiB pages an edit changed (what the
in-place commit writes).

Cell offsets are relative to the start of the hive bins data; a cell starts
with its int32 size (negative = allocated) and every field offset in
:mod:`servicing.regf.format` (``NK_*``, ``VK_*``, ``SK_*``) counts that size
field.
"""

from __future__ import annotations

import struct

from wimfs.format.xmlinfo import filetime_now

from .errors import RegfCorruptError
from .format import (CELL_SIZE_FIELD, HBIN_ALIGN, HBIN_HEADER_SIZE, I32, KEY_COMP_NAME, NIL,
                     NK, NK_FLAGS, NK_NAME, NK_NAMELEN, NK_NVAL, NK_TIME, NK_VALLIST, U16, U32,
                     U64, VALUE_COMP_NAME, VK, VK_NAME, decode_name)

_PAGE_SHIFT = HBIN_ALIGN.bit_length() - 1        # 4 KiB pages


class Cells:
    """The hive bins data (:attr:`data`) and the pages changed in it
    (:attr:`dirty`, page numbers, cleared by a commit)."""

    __slots__ = ("data", "dirty")

    def __init__(self, data: bytearray):
        self.data = data
        self.dirty: set[int] = set()

    def mark(self, off: int, n: int) -> None:
        """Record that bytes [off, off+n) were changed."""
        a = off >> _PAGE_SHIFT
        b = (off + n - 1) >> _PAGE_SHIFT
        if a == b:
            self.dirty.add(a)
        else:
            self.dirty.update(range(a, b + 1))

    def u32(self, off: int) -> int:
        return U32.unpack_from(self.data, off)[0]

    def put_u32(self, off: int, value: int) -> None:
        """Write a dword field and mark its page."""
        U32.pack_into(self.data, off, value)
        self.mark(off, 4)

    def cell(self, off: int, minlen: int = 0, sig: bytes | None = None) -> tuple[int, int]:
        """(start, end) of the data of the cell at *off*; checks bounds,
        minimum data length and the 2-byte signature."""
        d = self.data
        if off == NIL or off < HBIN_HEADER_SIZE or off + CELL_SIZE_FIELD > len(d) or off & 3:
            raise RegfCorruptError(f"cell offset {off:#x} outside the hive bins")
        size = I32.unpack_from(d, off)[0]
        if size < 0:
            size = -size
        if size < 8 or off + size > len(d) or size - CELL_SIZE_FIELD < minlen:
            raise RegfCorruptError(f"bad cell at {off:#x} (size {size})")
        start = off + CELL_SIZE_FIELD
        if sig is not None and d[start:start + 2] != sig:
            raise RegfCorruptError(f"cell {off:#x}: expected {sig!r}, found "
                                   f"{bytes(d[start:start + 2])!r}")
        return start, off + size

    def payload(self, off: int) -> bytes:
        """All data bytes of the cell at *off*."""
        s, e = self.cell(off)
        return bytes(self.data[s:e])

    def put(self, off: int, payload: bytes) -> None:
        """Write *payload* as the data of the (allocated) cell at *off*."""
        s = off + CELL_SIZE_FIELD
        self.data[s:s + len(payload)] = payload
        self.mark(s, len(payload))

    # ---- key nodes
    def nk(self, off: int) -> int:
        """*off*, checked to be a key node whose name fits its cell."""
        _, e = self.cell(off, NK.size, b"nk")
        if NK_NAME + U16.unpack_from(self.data, off + NK_NAMELEN)[0] > e - off:
            raise RegfCorruptError(f"key name of cell {off:#x} overruns the cell")
        return off

    def nk_name(self, off: int) -> str:
        d = self.data
        nlen = U16.unpack_from(d, off + NK_NAMELEN)[0]
        flags = U16.unpack_from(d, off + NK_FLAGS)[0]
        return decode_name(bytes(d[off + NK_NAME: off + NK_NAME + nlen]),
                           bool(flags & KEY_COMP_NAME))

    def touch(self, nk: int) -> None:
        """Set the last-written time of key *nk* to now."""
        U64.pack_into(self.data, nk + NK_TIME, filetime_now())
        self.mark(nk, NK_NAME)

    def value_offsets(self, nk: int) -> list[int]:
        """The vk offsets of key *nk*, in stored order."""
        n = self.u32(nk + NK_NVAL)
        if n == 0:
            return []
        s, e = self.cell(self.u32(nk + NK_VALLIST))
        if 4 * n > e - s:
            raise RegfCorruptError(f"value list of key {nk:#x} overruns its cell")
        return list(struct.unpack_from(f"<{n}I", self.data, s))

    # ---- key values
    def vk(self, off: int) -> tuple[str, int]:
        """(name, type) of the key value at *off*, checked."""
        d = self.data
        _, e = self.cell(off, VK.size, b"vk")
        _sig, nlen, _dsize, _doff, vtype, flags, _ = VK.unpack_from(d, off + CELL_SIZE_FIELD)
        if VK_NAME + nlen > e - off:
            raise RegfCorruptError(f"value name of cell {off:#x} overruns the cell")
        return decode_name(bytes(d[off + VK_NAME: off + VK_NAME + nlen]),
                           bool(flags & VALUE_COMP_NAME)), vtype
