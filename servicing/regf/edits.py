"""Edits of the cells of a hive: keys created, renamed and deleted (with
their subtree, values, class names and security references), values set
and deleted.  Called by the :class:`~servicing.regf.hive.Hive` facade once
an edit is validated, inside its ``_changing`` scope; each operation keeps
the key's bookkeeping (subkey list order and hints, counts, maximum name and
data lengths, last-written time, security reference counts, name indexes)
as Windows does.
"""

from __future__ import annotations

from wimfs.format.xmlinfo import filetime_now

from . import lists
from .alloc import Allocator
from .cells import Cells
from .errors import RegfCorruptError
from .format import (CELL_SIZE_FIELD, KEY_COMP_NAME, NIL, NK, NK_CLASS, NK_CLASSLEN, NK_FLAGS,
                     NK_MAXSUBCLASS, NK_MAXSUBNAME, NK_MAXVALDATA, NK_MAXVALNAME, NK_NAME,
                     NK_NAMELEN, NK_NVAL, NK_PARENT, NK_SECURITY, NK_VALLIST, SK, SK_BLINK,
                     SK_FLINK, SK_REFCOUNT, U16, U32, VALUE_COMP_NAME, VK, VK_DATA, VK_DSIZE,
                     encode_name)
from .names import NameIndex
from .valuecells import ValueCells


class CellEditor:
    """Applies validated edits to one hive's cells."""

    def __init__(self, cells: Cells, alloc: Allocator, value_cells: ValueCells,
                 names: NameIndex, leaf: type[lists.Leaf]):
        self.cells = cells
        self.alloc = alloc
        self.value_cells = value_cells
        self.names = names
        self.leaf = leaf              # the subkey list kind written

    def _write_subkeys(self, nk: int, kind: type[lists.Leaf] | None,
                       ents: list[lists.Entry]) -> None:
        self.names.drop_subkeys(nk)
        lists.write(self.cells, self.alloc, nk, ents, kind=kind, leaf=self.leaf)

    def _raise_max(self, nk: int, field: int, n: int, mask: int = 0xFFFFFFFF) -> None:
        """Raise the (low *mask* bits of the) dword *field* of key *nk* to *n*."""
        d = self.cells.data
        cur = U32.unpack_from(d, nk + field)[0]
        if n > cur & mask:
            U32.pack_into(d, nk + field, (cur & ~mask & 0xFFFFFFFF) | n)
            self.cells.mark(nk, NK_NAME)

    def new_key(self, parent: int, name: str, class_name: str | None) -> int:
        """Create subkey *name* (valid, not existing) of *parent*; returns it."""
        cells = self.cells
        nb, comp = encode_name(name)
        sk = cells.u32(parent + NK_SECURITY)
        cls_off, cls_len = NIL, 0
        if class_name:
            cb = class_name.encode("utf-16-le", "surrogatepass")
            cls_off, cls_len = self.alloc.alloc_bytes(cb), len(cb)
        o = self.alloc.alloc(NK.size + len(nb))
        cells.put(o, NK.pack(b"nk", KEY_COMP_NAME if comp else 0, filetime_now(), 0, parent,
                             0, 0, NIL, NIL, 0, NIL, sk, cls_off, 0, 0, 0, 0, 0, len(nb),
                             cls_len) + nb)
        if sk != NIL:
            cells.cell(sk, SK.size, b"sk")
            cells.put_u32(sk + SK_REFCOUNT, cells.u32(sk + SK_REFCOUNT) + 1)
        kind, ents = lists.read(cells, parent)
        ents.insert(lists.insert_pos(cells, ents, name), (o, kind.hint(name) if kind else None))
        # the same subkeys plus one: the parent's name index stays valid
        lists.write(cells, self.alloc, parent, ents, kind=kind, leaf=self.leaf)
        self.names.added_subkey(parent, name, o)
        self._raise_max(parent, NK_MAXSUBNAME, len(nb), 0xFFFF)
        self._raise_max(parent, NK_MAXSUBCLASS, cls_len)
        cells.touch(parent)
        return o

    def rename_key(self, parent: int, o: int, new_name: str) -> int:
        """Rename subkey *o* of *parent* to *new_name* (valid, free): the key
        moves to a new nk cell, which is returned."""
        cells = self.cells
        d = cells.data
        nb, comp = encode_name(new_name)
        kind, ents = lists.read(cells, parent)
        ents = [(x, h) for x, h in ents if x != o]
        n = self.alloc.alloc(NK.size + len(nb))
        d[n + CELL_SIZE_FIELD: n + NK_NAME] = d[o + CELL_SIZE_FIELD: o + NK_NAME]
        flags = U16.unpack_from(d, o + NK_FLAGS)[0] & ~KEY_COMP_NAME
        U16.pack_into(d, n + NK_FLAGS, flags | (KEY_COMP_NAME if comp else 0))
        U16.pack_into(d, n + NK_NAMELEN, len(nb))
        d[n + NK_NAME: n + NK_NAME + len(nb)] = nb
        cells.touch(n)
        for c, _ in lists.read(cells, n)[1]:       # children point at their parent
            cells.put_u32(c + NK_PARENT, n)
        self._free_key(o)
        ents.insert(lists.insert_pos(cells, ents, new_name), (n, None))
        self._write_subkeys(parent, kind, ents)
        self._raise_max(parent, NK_MAXSUBNAME, len(nb), 0xFFFF)
        cells.touch(parent)
        return n

    def _free_key(self, o: int) -> None:
        self.names.drop(o)
        self.alloc.free(o)

    def delete_key(self, parent: int, o: int) -> None:
        """Delete subkey *o* of *parent* and everything under it."""
        kind, ents = lists.read(self.cells, parent)
        self._write_subkeys(parent, kind, [(x, h) for x, h in ents if x != o])
        self.cells.touch(parent)
        self._delete_tree(o)

    def _delete_tree(self, top: int) -> None:
        cells = self.cells
        order = []
        stack = [top]
        seen = set()
        while stack:
            o = stack.pop()
            if o in seen:
                raise RegfCorruptError(f"loop in the key tree at cell {o:#x}")
            seen.add(o)
            order.append(o)
            stack.extend(x for x, _ in lists.read(cells, o)[1])
        for o in reversed(order):
            lists.free(cells, self.alloc, o)
            for vk in cells.value_offsets(o):
                self.value_cells.free(vk)
                self.alloc.free(vk)
            if cells.u32(o + NK_NVAL):
                self.alloc.free(cells.u32(o + NK_VALLIST))
            cls = cells.u32(o + NK_CLASS)
            if cls != NIL and U16.unpack_from(cells.data, o + NK_CLASSLEN)[0]:
                self.alloc.free(cls)
            self._release_sk(cells.u32(o + NK_SECURITY))
            self._free_key(o)

    def _release_sk(self, sk: int) -> None:
        """Drop one reference to security cell *sk*; unlink and free it at 0."""
        if sk == NIL:
            return
        cells = self.cells
        cells.cell(sk, SK.size, b"sk")
        rc = cells.u32(sk + SK_REFCOUNT)
        if rc > 1:
            cells.put_u32(sk + SK_REFCOUNT, rc - 1)
            return
        flink = cells.u32(sk + SK_FLINK)
        blink = cells.u32(sk + SK_BLINK)
        if flink != sk:
            cells.cell(flink, SK.size, b"sk")
            cells.cell(blink, SK.size, b"sk")
            cells.put_u32(blink + SK_FLINK, flink)
            cells.put_u32(flink + SK_BLINK, blink)
        self.alloc.free(sk)

    def set_value(self, nk: int, name: str, vtype: int, raw: bytes) -> int:
        """Create or replace value *name* of key *nk*; returns its vk."""
        cells = self.cells
        o = self.names.value(nk, name)
        size_f, off_f = self.value_cells.store(raw)
        if o is not None:
            self.value_cells.free(o)
            VK_DATA.pack_into(cells.data, o + VK_DSIZE, size_f, off_f, vtype)
            cells.mark(o + VK_DSIZE, VK_DATA.size)
        else:
            nb, comp = encode_name(name)
            o = self.alloc.alloc_bytes(VK.pack(b"vk", len(nb), size_f, off_f, vtype,
                                               VALUE_COMP_NAME if comp else 0, 0) + nb)
            self.value_cells.append(nk, o)
            self.names.added_value(nk, name, o)
            self._raise_max(nk, NK_MAXVALNAME, len(nb))
        self._raise_max(nk, NK_MAXVALDATA, len(raw))
        cells.touch(nk)
        return o

    def delete_value(self, nk: int, vk: int) -> None:
        """Delete value *vk* of key *nk*."""
        offs = self.cells.value_offsets(nk)
        offs.remove(vk)
        self.names.drop_values(nk)
        self.value_cells.free(vk)
        self.alloc.free(vk)
        self.value_cells.write_list(nk, offs)
        self.cells.touch(nk)
