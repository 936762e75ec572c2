"""Key and Value: the objects of the public reading API, views of an nk or
vk cell of a :class:`~servicing.regf.hive.Hive` by offset."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import KeyNotFoundError, RegfCorruptError, ValueNotFoundError, guard
from .format import (KEY_HIVE_ENTRY, NIL, NK_CLASS, NK_CLASSLEN, NK_FLAGS, NK_NSUB, NK_NVAL,
                     NK_PARENT, NK_SECURITY, NK_TIME, SK, SK_DESC, SK_DESCLEN, TYPE_NAMES, U16,
                     U64)
from .values import decode_value

if TYPE_CHECKING:
    from .hive import Hive


def split_path(path: str) -> list[str]:
    """Components of a key path (``\\`` or ``/`` separated)."""
    return [p for p in path.replace("/", "\\").split("\\") if p]


class Value:
    """A key value (vk cell).  ``raw`` is the exact data bytes, ``data`` the
    decoded Python value."""

    __slots__ = ("hive", "offset", "name", "type")

    def __init__(self, hive: Hive, offset: int):
        self.hive = hive
        self.offset = offset
        self.name, self.type = hive.cells.vk(offset)

    @property
    def raw(self) -> bytes:
        return self.hive._value_cells.read(self.offset)

    @property
    def data(self):
        return decode_value(self.type, self.raw)

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.type, f"REG_0x{self.type:X}")

    def __repr__(self):
        return f"<Value {self.name!r} {self.type_name}>"


class Key:
    """A key node (nk cell).  Obtained from :meth:`Hive.key`,
    :attr:`Hive.root`, :meth:`subkey`, :meth:`subkeys`.  A Key refers to its
    cell offset; :meth:`Hive.rename_key` returns the new Key object."""

    __slots__ = ("hive", "offset")

    def __init__(self, hive: Hive, offset: int):
        self.hive = hive
        self.offset = offset
        hive.cells.nk(offset)

    def __eq__(self, other):
        return isinstance(other, Key) and other.hive is self.hive and other.offset == self.offset

    def __hash__(self):
        return hash((id(self.hive), self.offset))

    def __repr__(self):
        return f"<Key {self.name!r}>"

    def _u32(self, field: int) -> int:
        return self.hive.cells.u32(self.offset + field)

    # ---- attributes
    @property
    @guard
    def name(self) -> str:
        return self.hive.cells.nk_name(self.offset)

    @property
    @guard
    def flags(self) -> int:
        return U16.unpack_from(self.hive.cells.data, self.offset + NK_FLAGS)[0]

    @property
    def timestamp(self) -> int:
        """Last-written time as a FILETIME (100 ns since 1601)."""
        return U64.unpack_from(self.hive.cells.data, self.offset + NK_TIME)[0]

    @property
    @guard
    def class_name(self) -> str | None:
        cells = self.hive.cells
        off = self._u32(NK_CLASS)
        ln = U16.unpack_from(cells.data, self.offset + NK_CLASSLEN)[0]
        if off == NIL or ln == 0:
            return None
        s, e = cells.cell(off)
        return bytes(cells.data[s:min(e, s + ln)]).decode("utf-16-le", "replace")

    @property
    @guard
    def security_descriptor(self) -> bytes | None:
        cells = self.hive.cells
        off = self._u32(NK_SECURITY)
        if off == NIL:
            return None
        _, e = cells.cell(off, SK.size, b"sk")
        ln = cells.u32(off + SK_DESCLEN)
        if SK_DESC + ln > e - off:
            raise RegfCorruptError(f"security cell {off:#x} descriptor overruns the cell")
        return bytes(cells.data[off + SK_DESC: off + SK_DESC + ln])

    @property
    def security_offset(self) -> int:
        return self._u32(NK_SECURITY)

    @property
    @guard
    def parent(self) -> Key | None:
        if self.flags & KEY_HIVE_ENTRY or self.offset == self.hive._root:
            return None
        return Key(self.hive, self._u32(NK_PARENT))

    @property
    def subkey_count(self) -> int:
        return self._u32(NK_NSUB)

    @property
    def value_count(self) -> int:
        return self._u32(NK_NVAL)

    # ---- navigation
    @guard
    def subkeys(self) -> list[Key]:
        """Subkeys in stored (sorted) order."""
        return [Key(self.hive, o) for o, _ in self.hive._subkey_entries(self.offset)[1]]

    @guard
    def subkey(self, name: str) -> Key:
        o = self.hive._find_subkey(self.offset, name)
        if o is None:
            raise KeyNotFoundError(f"no subkey {name!r} under {self.name!r}")
        return Key(self.hive, o)

    def open(self, path: str) -> Key:
        k = self
        for part in split_path(path):
            k = k.subkey(part)
        return k

    def has_subkey(self, name: str) -> bool:
        try:
            self.subkey(name)
            return True
        except KeyNotFoundError:
            return False

    @guard
    def values(self) -> list[Value]:
        """Values in stored order."""
        return [Value(self.hive, o) for o in self.hive.cells.value_offsets(self.offset)]

    @guard
    def value(self, name: str) -> Value:
        o = self.hive._find_value(self.offset, name)
        if o is None:
            raise ValueNotFoundError(f"no value {name!r} in key {self.name!r}")
        return Value(self.hive, o)

    def get(self, name: str, default=None):
        """Decoded data of value *name*, or *default*."""
        try:
            return self.value(name).data
        except ValueNotFoundError:
            return default

    # ---- edits (done by the hive)
    def create_key(self, path: str, class_name: str | None = None) -> Key:
        return self.hive._create_key_at(self, path, class_name)

    def delete_key(self, path: str) -> None:
        self.hive._delete_key_at(self, path)

    def set_value(self, name: str, vtype: int, data=None) -> Value:
        """Create or replace value *name* (``""`` = default value).  *data* is
        raw bytes, or str / list[str] / int converted per *vtype*."""
        return self.hive._set_value_at(self, name, vtype, data)

    def delete_value(self, name: str) -> None:
        self.hive._delete_value_at(self, name)
