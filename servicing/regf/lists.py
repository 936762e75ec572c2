"""Subkey lists ([regf] "Index leaf", "Fast leaf", "Hash leaf", "Index root").

A key's subkeys are one leaf (``li``: offsets; ``lf``: offset + 4-byte name
hint; ``lh``: offset + name hash) or an index root (``ri``) of leaves, all
sorted by upper-cased name.  One class per kind, found by signature in
:data:`LEAVES`; the engine reads any of them and writes ``lh`` (regf 1.5+)
or ``lf`` leaves, under an ``ri`` when there are more than
:data:`~servicing.regf.format.LEAF_MAX` subkeys.

An entry is ``(nk offset, hint)``; the hint is the stored hash/hint, or
None for ``li`` leaves (and for a new entry whose hint is not computed yet).
"""

from __future__ import annotations

import struct

from .alloc import Allocator
from .cells import Cells
from .errors import RegfCorruptError
from .format import (LEAF_MAX, LIST_HDR, NIL, NK_NAME, NK_NSUB, NK_SUBLIST, lf_hint, lh_hash,
                     sort_key)

Entry = tuple[int, "int | None"]


class Leaf:
    """A subkey list leaf kind: signature, entry size, hint function."""

    sig: bytes
    kind: str
    entry_size: int

    @staticmethod
    def hint(name: str) -> int | None:
        return None

    @classmethod
    def read(cls, d: bytearray, s: int, e: int, out: list[Entry]) -> None:
        """Append the entries of the leaf whose data is d[s:e] to *out*."""
        cnt = LIST_HDR.unpack_from(d, s)[1]
        if LIST_HDR.size + cls.entry_size * cnt > e - s:
            raise RegfCorruptError(f"{cls.kind} list at {s - 4:#x} overruns its cell")
        cls._unpack(d, s + LIST_HDR.size, cnt, out)

    @staticmethod
    def _unpack(d: bytearray, pos: int, cnt: int, out: list[Entry]) -> None:
        raise NotImplementedError

    @classmethod
    def pack(cls, entries: list[Entry]) -> bytes:
        raise NotImplementedError


class _HintedLeaf(Leaf):
    entry_size = 8

    @staticmethod
    def _unpack(d, pos, cnt, out):
        vals = struct.unpack_from(f"<{2 * cnt}I", d, pos)
        out.extend(zip(vals[0::2], vals[1::2]))

    @classmethod
    def pack(cls, entries):
        flat = [x for pair in entries for x in pair]
        return LIST_HDR.pack(cls.sig, len(entries)) + struct.pack(f"<{len(flat)}I", *flat)


class HashLeaf(_HintedLeaf):
    """``lh``: offset + :func:`~servicing.regf.format.lh_hash` of the name."""

    sig, kind = b"lh", "lh"
    hint = staticmethod(lh_hash)


class FastLeaf(_HintedLeaf):
    """``lf``: offset + the first 4 characters of the name."""

    sig, kind = b"lf", "lf"
    hint = staticmethod(lf_hint)


class IndexLeaf(Leaf):
    """``li``: offsets only."""

    sig, kind = b"li", "li"
    entry_size = 4

    @staticmethod
    def _unpack(d, pos, cnt, out):
        out.extend((o, None) for o in struct.unpack_from(f"<{cnt}I", d, pos))

    @classmethod
    def pack(cls, entries):
        return LIST_HDR.pack(cls.sig, len(entries)) + struct.pack(
            f"<{len(entries)}I", *(o for o, _ in entries))


class IndexRoot:
    """``ri``: offsets of leaves (never of another ``ri``)."""

    sig = b"ri"

    @staticmethod
    def leaves(cells: Cells, s: int, e: int) -> tuple[int, ...]:
        cnt = LIST_HDR.unpack_from(cells.data, s)[1]
        if LIST_HDR.size + 4 * cnt > e - s:
            raise RegfCorruptError(f"ri list {s - 4:#x} overruns its cell")
        return struct.unpack_from(f"<{cnt}I", cells.data, s + LIST_HDR.size)

    @classmethod
    def pack(cls, leaves: list[int]) -> bytes:
        return LIST_HDR.pack(cls.sig, len(leaves)) + struct.pack(f"<{len(leaves)}I", *leaves)


LEAVES: dict[bytes, type[Leaf]] = {c.sig: c for c in (HashLeaf, FastLeaf, IndexLeaf)}


def leaf_for(minor: int) -> type[Leaf]:
    """The leaf kind this engine writes into a hive of regf 1.*minor*."""
    return HashLeaf if minor >= 5 else FastLeaf


def _read_leaf(cells: Cells, off: int, out: list[Entry]) -> type[Leaf]:
    s, e = cells.cell(off, LIST_HDR.size)
    sig = bytes(cells.data[s:s + 2])
    leaf = LEAVES.get(sig)
    if leaf is None:
        what = ("nested ri list" if sig == IndexRoot.sig
                else f"unknown subkey list signature {sig!r}")
        raise RegfCorruptError(f"{what} at {off:#x}")
    leaf.read(cells.data, s, e, out)
    return leaf


def read(cells: Cells, nk: int) -> tuple[type[Leaf] | None, list[Entry]]:
    """The flattened subkey list of key *nk*: (leaf kind, entries)."""
    n = cells.u32(nk + NK_NSUB)
    lst = cells.u32(nk + NK_SUBLIST)
    if n == 0 or lst == NIL:
        return None, []
    out: list[Entry] = []
    s, e = cells.cell(lst, LIST_HDR.size)
    if cells.data[s:s + 2] == IndexRoot.sig:
        kind = None
        for leaf in IndexRoot.leaves(cells, s, e):
            k = _read_leaf(cells, leaf, out)
            kind = kind or k
    else:
        kind = _read_leaf(cells, lst, out)
    if len(out) > len(cells.data) // 80 + 1:
        raise RegfCorruptError(f"subkey list of key {nk:#x} longer than the hive")
    return kind, out


def free(cells: Cells, alloc: Allocator, nk: int) -> None:
    """Free the subkey list cells of key *nk* (not the subkeys)."""
    lst = cells.u32(nk + NK_SUBLIST)
    if lst == NIL or cells.u32(nk + NK_NSUB) == 0:
        return
    s, e = cells.cell(lst, LIST_HDR.size)
    if cells.data[s:s + 2] == IndexRoot.sig:
        for leaf in IndexRoot.leaves(cells, s, e):
            alloc.free(leaf)
    alloc.free(lst)


def write(cells: Cells, alloc: Allocator, nk: int, entries: list[Entry], *,
          kind: type[Leaf] | None, leaf: type[Leaf]) -> None:
    """Replace the subkey list of *nk* by *entries* (sorted, hints of the
    *kind* they were read as) in leaves of kind *leaf*; hints of another
    kind or None are recomputed."""
    free(cells, alloc, nk)
    if kind is not leaf:
        entries = [(o, None) for o, _ in entries]
    entries = [(o, h if h is not None else leaf.hint(cells.nk_name(o))) for o, h in entries]
    new = NIL
    if entries:
        leaves = [alloc.alloc_bytes(leaf.pack(entries[i:i + LEAF_MAX]))
                  for i in range(0, len(entries), LEAF_MAX)]
        new = leaves[0] if len(leaves) == 1 else alloc.alloc_bytes(IndexRoot.pack(leaves))
    cells.put_u32(nk + NK_SUBLIST, new)
    cells.put_u32(nk + NK_NSUB, len(entries))
    cells.mark(nk, NK_NAME)


def insert_pos(cells: Cells, entries: list[Entry], name: str) -> int:
    """Index at which a subkey *name* keeps *entries* sorted."""
    key = sort_key(name)
    lo, hi = 0, len(entries)
    while lo < hi:
        mid = (lo + hi) // 2
        if sort_key(cells.nk_name(entries[mid][0])) < key:
            lo = mid + 1
        else:
            hi = mid
    return lo
