"""Reader and writer of regf hives.

The whole hive bins data is held in one ``bytearray``; cells are read and
edited in place, new cells come from a free-cell allocator ([regf] "Cell":
positive size = unallocated) that reuses and coalesces free cells and appends
4 KiB-multiple hive bins when nothing fits.  Nothing touches the file until
:meth:`Hive.commit`, which writes the complete hive with equal sequence
numbers and a correct checksum to a temporary file in the same directory,
fsyncs it and renames it over the original, then truncates stale transaction
logs.  ``with Hive.open(p, write=True) as h:`` commits on a clean exit and
discards everything if an exception escapes.
"""

from __future__ import annotations

import bisect
import functools
import os
import struct
import tempfile
import time

from . import logs as _logs
from .errors import (KeyNotFoundError, RegfCorruptError, RegfNotFoundError, RegfDirtyError, RegfError,
                     RegfStateError, RegfUnsupportedError, ValueNotFoundError)
from .format import (BASE_BLOCK_SIZE, BIG_DATA_SEGMENT, BIG_DATA_THRESHOLD, DATA_INLINE,
                     DB, HBIN, HBIN_ALIGN, HBIN_HEADER_SIZE, I32, KEY_COMP_NAME,
                     KEY_HIVE_ENTRY, KEY_NO_DELETE, LEAF_MAX, LIST_HDR, NIL, NK, NK_CLASS,
                     NK_CLASSLEN, NK_FLAGS, NK_MAXSUBNAME, NK_MAXVALDATA, NK_MAXVALNAME,
                     NK_NAME, NK_NAMELEN, NK_NSUB, NK_NVAL, NK_PARENT, NK_SECURITY,
                     NK_SUBLIST, NK_TIME, NK_VALLIST, REG_BINARY, REG_DWORD,
                     REG_DWORD_BIG_ENDIAN, REG_EXPAND_SZ, REG_LINK, REG_MULTI_SZ, REG_QWORD,
                     REG_SZ, SK, SK_BLINK, SK_DESC, SK_FLINK, SK_REFCOUNT, TYPE_NAMES, U16,
                     U32, U64, VALUE_COMP_NAME, VK, VK_NAME, BaseBlock, decode_name,
                     default_security_descriptor, encode_name, lf_hint, lh_hash, sort_key,
                     upcase)

_LOWLEVEL = (IndexError, struct.error, ValueError, UnicodeError, OverflowError,
             RecursionError, KeyError)

_MAX_DEPTH = 512        # key nesting bound for walks (Windows allows 512 levels)


def _guard(fn):
    """Turn low-level exceptions caused by malformed input into
    :class:`RegfCorruptError` (defence in depth behind explicit checks)."""
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except RegfError:
            raise
        except _LOWLEVEL as e:
            raise RegfCorruptError("malformed hive: %s: %s" % (type(e).__name__, e)) from None
    return wrapper


def _edit(fn):
    """Wrapper of editing methods: checks the handle is writable, marks it
    broken if the edit fails half-way (so a later commit cannot write a
    half-applied edit), and converts low-level errors like :func:`_guard`."""
    @functools.wraps(fn)
    def wrapper(self, *a, **kw):
        hive = self if isinstance(self, Hive) else self.hive
        hive._check_writable()
        try:
            r = fn(self, *a, **kw)
        except (RegfError, TypeError) as e:
            if not getattr(e, "_harmless", False):
                hive._broken = True
            raise
        except _LOWLEVEL as e:
            hive._broken = True
            raise RegfCorruptError("malformed hive: %s: %s" % (type(e).__name__, e)) from None
        except BaseException:
            hive._broken = True
            raise
        hive._modified = True
        return r
    return wrapper


def _harmless(exc: RegfError) -> RegfError:
    """Mark an exception raised before any byte was changed."""
    exc._harmless = True
    return exc


def filetime_now() -> int:
    return int(time.time() * 10_000_000) + 116444736000000000


def split_path(path: str) -> list[str]:
    return [p for p in path.replace("/", "\\").split("\\") if p]


# --------------------------------------------------------------------------
# Value data conversion

def encode_data(vtype: int, data) -> bytes:
    """Python value -> raw bytes for a registry value type.  ``bytes`` are
    always taken as the raw data."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if vtype in (REG_SZ, REG_EXPAND_SZ):
        return (str(data) + "\0").encode("utf-16-le", "surrogatepass")
    if vtype == REG_LINK:
        return str(data).encode("utf-16-le", "surrogatepass")
    if vtype == REG_MULTI_SZ:
        if isinstance(data, str):
            data = [data]
        return "".join(s + "\0" for s in data).encode("utf-16-le", "surrogatepass") + b"\0\0"
    if vtype == REG_DWORD:
        return U32.pack(int(data) & 0xFFFFFFFF)
    if vtype == REG_DWORD_BIG_ENDIAN:
        return struct.pack(">I", int(data) & 0xFFFFFFFF)
    if vtype == REG_QWORD:
        return U64.pack(int(data) & 0xFFFFFFFFFFFFFFFF)
    if data is None:
        return b""
    raise TypeError("data for value type %d must be bytes" % vtype)


def decode_data(vtype: int, raw: bytes):
    """Raw bytes -> Python value (str, list[str], int); bytes when the data
    does not fit the type."""
    if vtype in (REG_SZ, REG_EXPAND_SZ, REG_LINK):
        s = raw[: len(raw) & ~1].decode("utf-16-le", "replace")
        return s.split("\0", 1)[0]
    if vtype == REG_MULTI_SZ:
        s = raw[: len(raw) & ~1].decode("utf-16-le", "replace")
        parts = s.split("\0")
        while parts and parts[-1] == "":
            parts.pop()
        return parts
    if vtype == REG_DWORD and len(raw) == 4:
        return U32.unpack(raw)[0]
    if vtype == REG_DWORD_BIG_ENDIAN and len(raw) == 4:
        return struct.unpack(">I", raw)[0]
    if vtype == REG_QWORD and len(raw) == 8:
        return U64.unpack(raw)[0]
    return raw


# --------------------------------------------------------------------------

class Value:
    """A key value (vk cell).  ``raw`` is the exact data bytes, ``data`` the
    decoded Python value."""

    __slots__ = ("hive", "offset", "name", "type")

    def __init__(self, hive: "Hive", offset: int):
        self.hive = hive
        self.offset = offset
        d = hive._d
        s, e = hive._cell(offset, 20, b"vk")
        _sig, nlen, _dsz, _doff, vtype, flags, _ = VK.unpack_from(d, offset + 4)
        if VK_NAME + nlen > e - offset:
            raise RegfCorruptError("value name of cell 0x%x overruns the cell" % offset)
        self.name = decode_name(bytes(d[offset + VK_NAME: offset + VK_NAME + nlen]),
                                bool(flags & VALUE_COMP_NAME))
        self.type = vtype

    @property
    def raw(self) -> bytes:
        return self.hive._value_data(self.offset)

    @property
    def data(self):
        return decode_data(self.type, self.raw)

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.type, "REG_0x%X" % self.type)

    def __repr__(self):
        return "<Value %r %s>" % (self.name, self.type_name)


class Key:
    """A key node (nk cell).  Obtained from :meth:`Hive.key`,
    :attr:`Hive.root`, :meth:`subkey`, :meth:`subkeys`.  A Key refers to its
    cell offset; :meth:`Hive.rename_key` returns the new Key object."""

    __slots__ = ("hive", "offset")

    def __init__(self, hive: "Hive", offset: int):
        self.hive = hive
        self.offset = offset
        hive._nk(offset)

    def __eq__(self, other):
        return isinstance(other, Key) and other.hive is self.hive and other.offset == self.offset

    def __hash__(self):
        return hash((id(self.hive), self.offset))

    def __repr__(self):
        return "<Key %r>" % self.name

    # ---- attributes
    @property
    @_guard
    def name(self) -> str:
        return self.hive._nk_name(self.offset)

    @property
    @_guard
    def flags(self) -> int:
        return U16.unpack_from(self.hive._d, self.offset + NK_FLAGS)[0]

    @property
    def timestamp(self) -> int:
        """Last-written time as a FILETIME (100 ns since 1601)."""
        return U64.unpack_from(self.hive._d, self.offset + NK_TIME)[0]

    @property
    @_guard
    def class_name(self) -> str | None:
        h = self.hive
        off = U32.unpack_from(h._d, self.offset + NK_CLASS)[0]
        ln = U16.unpack_from(h._d, self.offset + NK_CLASSLEN)[0]
        if off == NIL or ln == 0:
            return None
        s, e = h._cell(off)
        return bytes(h._d[s:min(e, s + ln)]).decode("utf-16-le", "replace")

    @property
    @_guard
    def security_descriptor(self) -> bytes | None:
        h = self.hive
        off = U32.unpack_from(h._d, self.offset + NK_SECURITY)[0]
        if off == NIL:
            return None
        s, e = h._cell(off, 20, b"sk")
        ln = U32.unpack_from(h._d, off + 4 + 16)[0]
        if SK_DESC + ln > e - off:
            raise RegfCorruptError("security cell 0x%x descriptor overruns the cell" % off)
        return bytes(h._d[off + SK_DESC: off + SK_DESC + ln])

    @property
    def security_offset(self) -> int:
        return U32.unpack_from(self.hive._d, self.offset + NK_SECURITY)[0]

    @property
    @_guard
    def parent(self) -> "Key | None":
        if self.flags & KEY_HIVE_ENTRY or self.offset == self.hive._root:
            return None
        return Key(self.hive, U32.unpack_from(self.hive._d, self.offset + NK_PARENT)[0])

    @property
    def subkey_count(self) -> int:
        return U32.unpack_from(self.hive._d, self.offset + NK_NSUB)[0]

    @property
    def value_count(self) -> int:
        return U32.unpack_from(self.hive._d, self.offset + NK_NVAL)[0]

    # ---- navigation
    @_guard
    def subkeys(self) -> list["Key"]:
        """Subkeys in stored (sorted) order."""
        return [Key(self.hive, o) for o, _ in self.hive._sub_entries(self.offset)[1]]

    @_guard
    def subkey(self, name: str) -> "Key":
        o = self.hive._find_subkey(self.offset, name)
        if o is None:
            raise KeyNotFoundError("no subkey %r under %r" % (name, self.name))
        return Key(self.hive, o)

    def open(self, path: str) -> "Key":
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

    @_guard
    def values(self) -> list[Value]:
        """Values in stored order."""
        return [Value(self.hive, o) for o in self.hive._value_offsets(self.offset)]

    @_guard
    def value(self, name: str) -> Value:
        o = self.hive._find_value(self.offset, name)
        if o is None:
            raise ValueNotFoundError("no value %r in key %r" % (name, self.name))
        return Value(self.hive, o)

    def get(self, name: str, default=None):
        """Decoded data of value *name*, or *default*."""
        try:
            return self.value(name).data
        except ValueNotFoundError:
            return default

    # ---- edits (delegating to the hive)
    def create_key(self, path: str, class_name: str | None = None) -> "Key":
        return self.hive._create_key_at(self, path, class_name)

    def delete_key(self, path: str) -> None:
        self.hive._delete_key_at(self, path)

    @_edit
    def set_value(self, name: str, vtype: int, data=None) -> Value:
        """Create or replace value *name* (``""`` = default value).  *data* is
        raw bytes, or str / list[str] / int converted per *vtype*."""
        if not isinstance(vtype, int) or not 0 <= vtype <= 0xFFFFFFFF:
            raise _harmless(RegfStateError("bad value type %r" % (vtype,)))
        raw = encode_data(vtype, data)
        return Value(self.hive, self.hive._set_value(self.offset, name, vtype, raw))

    @_edit
    def delete_value(self, name: str) -> None:
        h = self.hive
        o = h._find_value(self.offset, name)
        if o is None:
            raise _harmless(ValueNotFoundError("no value %r in key %r" % (name, self.name)))
        h._delete_value(self.offset, o)


# --------------------------------------------------------------------------

class Hive:
    """A registry hive file.  Use :meth:`open` or :meth:`create`."""

    def __init__(self, path: str | None, base: BaseBlock, data: bytearray, *,
                 writable: bool, dirty: bool = False, replayed: bool = False,
                 new: bool = False):
        self.path = path
        self.base = base
        self._d = data
        self.writable = writable
        self.dirty = dirty              # dirty and NOT recovered (read-only open)
        self.replayed_logs = replayed   # logs were applied at open
        self._root = base.root
        self._broken = False
        self._modified = new or replayed
        self._closed = False
        self._free_idx = None           # built lazily by _scan_free
        self._validate_bins_header()
        self._nk(self._root)

    # ---- construction
    @classmethod
    def open(cls, path: str | os.PathLike, write: bool = False, *, replay_logs: bool = True,
             ignore_dirty: bool = False) -> "Hive":
        """Open a hive file.

        A dirty hive is recovered from its transaction logs when
        *replay_logs*; if it cannot be, opening for writing raises
        :class:`RegfDirtyError` (unless *ignore_dirty*, which edits the
        primary as it is), while read-only opening reads the primary as is
        and sets :attr:`dirty`.
        """
        path = os.fspath(path)
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            raise RegfNotFoundError("hive file not found: %s" % path) from None
        except OSError as e:
            raise RegfError("cannot open %s: %s" % (path, e.strerror)) from None
        with f:
            head = f.read(BASE_BLOCK_SIZE)
            base = BaseBlock(head)
            if len(head) < BASE_BLOCK_SIZE:
                raise RegfCorruptError("truncated hive: %d bytes" % len(head))
            size = os.fstat(f.fileno()).st_size - BASE_BLOCK_SIZE
            cls._check_base(base)
            want = base.bins_size
            if want > size:
                want_read = size
            else:
                want_read = want
            data = bytearray(want_read)
            n = f.readinto(data)
            del data[n:]
        return cls._finish_open(path, base, data, write, replay_logs, ignore_dirty,
                                _logs.find_logs(path) if replay_logs else [])

    @classmethod
    def from_bytes(cls, blob: bytes, *, logs: list[str] | None = None) -> "Hive":
        """Parse a hive held in memory (read-only)."""
        base = BaseBlock(blob[:BASE_BLOCK_SIZE])
        if len(blob) < BASE_BLOCK_SIZE:
            raise RegfCorruptError("truncated hive: %d bytes" % len(blob))
        cls._check_base(base)
        data = bytearray(blob[BASE_BLOCK_SIZE:BASE_BLOCK_SIZE + base.bins_size])
        return cls._finish_open(None, base, data, False, bool(logs), False, logs or [])

    @staticmethod
    def _check_base(base: BaseBlock) -> None:
        if base.major != 1 or base.minor > 6:
            raise RegfUnsupportedError("unsupported regf version %d.%d" % (base.major, base.minor))
        if base.file_type != 0:
            raise RegfUnsupportedError(
                "not a primary hive file (file type %d: a transaction log?)" % base.file_type)
        if base.file_format != 1:
            raise RegfUnsupportedError("unsupported regf file format %d" % base.file_format)
        if base.bins_size % HBIN_ALIGN or base.bins_size == 0:
            raise RegfCorruptError("bad hive bins data size %d" % base.bins_size)

    @classmethod
    def _finish_open(cls, path, base, data, write, replay_logs, ignore_dirty, logfiles):
        dirty = base.seq1 != base.seq2 or not base.checksum_ok
        replayed = False
        if dirty and replay_logs and logfiles:
            try:
                base, data, _ = _logs.replay(base, data, logfiles)
                replayed = True
                dirty = False
            except RegfDirtyError:
                if write and not ignore_dirty:
                    raise
        if dirty and write and not ignore_dirty:
            raise RegfDirtyError(
                "hive %s is dirty (sequence numbers %d/%d%s) and has no transaction logs to "
                "replay; refusing to edit it" % (path, base.seq1, base.seq2,
                                                 "" if base.checksum_ok else ", bad checksum"))
        if len(data) < base.bins_size:
            raise RegfCorruptError("truncated hive: %d bytes of hive bins, header says %d"
                                   % (len(data), base.bins_size))
        return cls(path, base, data, writable=write, dirty=dirty, replayed=replayed)

    @classmethod
    def create(cls, path: str | os.PathLike | None, *, minor: int = 5, name: str = "") -> "Hive":
        """A new empty hive (root key and one security cell), open for
        writing; nothing is written until :meth:`commit`."""
        d = bytearray(HBIN_ALIGN)
        HBIN.pack_into(d, 0, b"hbin", 0, HBIN_ALIGN, b"\0" * 8, 0, 0)
        I32.pack_into(d, HBIN_HEADER_SIZE, HBIN_ALIGN - HBIN_HEADER_SIZE)
        base = BaseBlock.new(HBIN_HEADER_SIZE, HBIN_ALIGN, minor=minor, name=name)
        # place a placeholder root so __init__ validates; real root below
        root_name = b"ROOT"
        nk = NK.pack(b"nk", KEY_HIVE_ENTRY | KEY_NO_DELETE | KEY_COMP_NAME, filetime_now(), 0,
                     0, 0, 0, NIL, NIL, 0, NIL, NIL, NIL, 0, 0, 0, 0, 0, len(root_name), 0)
        cell = nk + root_name
        size = (len(cell) + 4 + 7) & ~7
        I32.pack_into(d, HBIN_HEADER_SIZE, -size)
        d[HBIN_HEADER_SIZE + 4: HBIN_HEADER_SIZE + 4 + len(cell)] = cell
        I32.pack_into(d, HBIN_HEADER_SIZE + size, HBIN_ALIGN - HBIN_HEADER_SIZE - size)
        h = cls(os.fspath(path) if path is not None else None, base, d, writable=True, new=True)
        desc = default_security_descriptor()
        sk = h._alloc(SK_DESC + len(desc))
        h._d[sk + 4: sk + SK_DESC] = SK.pack(b"sk", 0, sk, sk, 1, len(desc))
        h._d[sk + SK_DESC: sk + SK_DESC + len(desc)] = desc
        U32.pack_into(h._d, h._root + NK_SECURITY, sk)
        return h

    # ---- context manager / lifecycle
    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        try:
            if et is None and self.writable and not self._closed:
                self.commit()
        finally:
            self.close()
        return False

    def close(self) -> None:
        """Drop the handle without writing."""
        self._closed = True

    def _check_writable(self):
        if self._closed:
            raise _harmless(RegfStateError("hive is closed"))
        if not self.writable:
            raise _harmless(RegfStateError("hive is open read-only"))
        if self._broken:
            raise _harmless(RegfStateError("an earlier edit failed; the hive handle is unusable"))

    # ---- low-level cell access
    def _validate_bins_header(self):
        d = self._d
        if len(d) < HBIN_HEADER_SIZE or d[:4] != b"hbin":
            raise RegfCorruptError("no hive bin at the start of the hive bins data")
        if not (0 <= self._root < len(d)):
            raise RegfCorruptError("root cell offset 0x%x outside the hive bins" % self._root)

    def _cell(self, off: int, minlen: int = 0, sig: bytes | None = None) -> tuple[int, int]:
        """(start, end) of the data of the cell at *off*; checks bounds,
        minimum length and the 2-byte signature."""
        d = self._d
        if off == NIL or off < HBIN_HEADER_SIZE or off + 4 > len(d) or off & 3:
            raise RegfCorruptError("cell offset 0x%x outside the hive bins" % off)
        size = I32.unpack_from(d, off)[0]
        if size < 0:
            size = -size
        if size < 8 or off + size > len(d) or size - 4 < minlen:
            raise RegfCorruptError("bad cell at 0x%x (size %d)" % (off, size))
        if sig is not None and d[off + 4: off + 6] != sig:
            raise RegfCorruptError("cell 0x%x: expected %r, found %r"
                                   % (off, sig, bytes(d[off + 4: off + 6])))
        return off + 4, off + size

    def _nk(self, off: int) -> int:
        s, e = self._cell(off, 76, b"nk")
        nlen = U16.unpack_from(self._d, off + NK_NAMELEN)[0]
        if NK_NAME + nlen > e - off:
            raise RegfCorruptError("key name of cell 0x%x overruns the cell" % off)
        return off

    def _nk_name(self, off: int) -> str:
        d = self._d
        nlen = U16.unpack_from(d, off + NK_NAMELEN)[0]
        flags = U16.unpack_from(d, off + NK_FLAGS)[0]
        return decode_name(bytes(d[off + NK_NAME: off + NK_NAME + nlen]),
                           bool(flags & KEY_COMP_NAME))

    def _sub_entries(self, nk: int) -> tuple[str | None, list[tuple[int, int | None]]]:
        """Flattened subkey list of key *nk*: (leaf kind, [(offset, hint)])."""
        d = self._d
        n = U32.unpack_from(d, nk + NK_NSUB)[0]
        lst = U32.unpack_from(d, nk + NK_SUBLIST)[0]
        if n == 0 or lst == NIL:
            return None, []
        out: list = []
        kind = None
        s, e = self._cell(lst, 4)
        sig, cnt = LIST_HDR.unpack_from(d, s)
        if sig == b"ri":
            if 4 + 4 * cnt > e - s:
                raise RegfCorruptError("ri list 0x%x overruns its cell" % lst)
            for (leaf,) in struct.iter_unpack("<I", d[s + 4: s + 4 + 4 * cnt]):
                ls, le = self._cell(leaf, 4)
                lsig = bytes(d[ls:ls + 2])
                if lsig == b"ri":
                    raise RegfCorruptError("nested ri list at 0x%x" % leaf)
                k = self._read_leaf(ls, le, out)
                kind = kind or k
        else:
            kind = self._read_leaf(s, e, out)
        if len(out) > (len(d) // 80) + 1:
            raise RegfCorruptError("subkey list of key 0x%x longer than the hive" % nk)
        return kind, out

    def _read_leaf(self, s: int, e: int, out: list) -> str:
        d = self._d
        sig, cnt = LIST_HDR.unpack_from(d, s)
        if sig in (b"lf", b"lh"):
            if 4 + 8 * cnt > e - s:
                raise RegfCorruptError("%s list at 0x%x overruns its cell" % (sig.decode(), s - 4))
            vals = struct.unpack_from("<%dI" % (2 * cnt), d, s + 4)
            out.extend(zip(vals[0::2], vals[1::2]))
            return sig.decode()
        if sig == b"li":
            if 4 + 4 * cnt > e - s:
                raise RegfCorruptError("li list at 0x%x overruns its cell" % (s - 4))
            out.extend((o, None) for o in struct.unpack_from("<%dI" % cnt, d, s + 4))
            return "li"
        raise RegfCorruptError("unknown subkey list signature %r at 0x%x" % (bytes(sig), s - 4))

    def _find_subkey(self, nk: int, name: str) -> int | None:
        kind, ents = self._sub_entries(nk)
        if not ents:
            return None
        up = upcase(name)
        if kind == "lh":
            hv = lh_hash(name)
            for o, hh in ents:
                if hh == hv:
                    self._nk(o)
                    if upcase(self._nk_name(o)) == up:
                        return o
            # fall through: a hive with wrong hashes (e.g. written by hivex
            # for non-ASCII names) -- compare names
        for o, _ in ents:
            self._nk(o)
            if upcase(self._nk_name(o)) == up:
                return o
        return None

    def _value_offsets(self, nk: int) -> list[int]:
        d = self._d
        n = U32.unpack_from(d, nk + NK_NVAL)[0]
        if n == 0:
            return []
        lst = U32.unpack_from(d, nk + NK_VALLIST)[0]
        s, e = self._cell(lst)
        if 4 * n > e - s:
            raise RegfCorruptError("value list of key 0x%x overruns its cell" % nk)
        return list(struct.unpack_from("<%dI" % n, d, s))

    def _find_value(self, nk: int, name: str) -> int | None:
        up = upcase(name)
        d = self._d
        for o in self._value_offsets(nk):
            s, e = self._cell(o, 20, b"vk")
            nlen, flags = U16.unpack_from(d, o + 6)[0], U16.unpack_from(d, o + 4 + 16)[0]
            if VK_NAME + nlen > e - o:
                raise RegfCorruptError("value name of cell 0x%x overruns the cell" % o)
            vn = decode_name(bytes(d[o + VK_NAME: o + VK_NAME + nlen]), bool(flags & VALUE_COMP_NAME))
            if vn == name or upcase(vn) == up:
                return o
        return None

    def _is_big(self, length: int) -> bool:
        return length > BIG_DATA_THRESHOLD and self.base.minor >= 4

    def _value_data(self, vk: int) -> bytes:
        d = self._d
        _sig, _nlen, dsize, doff, _t, _f, _ = VK.unpack_from(d, vk + 4)
        if dsize & DATA_INLINE:
            ln = dsize & ~DATA_INLINE
            if ln > 4:
                raise RegfCorruptError("inline value data of cell 0x%x longer than 4 bytes" % vk)
            return bytes(d[vk + 12: vk + 12 + ln])
        if dsize == 0:
            return b""
        s, e = self._cell(doff)
        if self._is_big(dsize) and d[s:s + 2] == b"db":
            _, nseg, segl = DB.unpack_from(d, s)
            ss, se = self._cell(segl)
            if 4 * nseg > se - ss:
                raise RegfCorruptError("big data segment list 0x%x overruns its cell" % segl)
            parts = []
            left = dsize
            for (seg,) in struct.iter_unpack("<I", d[ss:ss + 4 * nseg]):
                if left <= 0:
                    break
                a, b = self._cell(seg)
                take = min(left, BIG_DATA_SEGMENT, b - a)
                parts.append(bytes(d[a:a + take]))
                left -= take
            if left > 0:
                raise RegfCorruptError("big data of value 0x%x shorter than its size" % vk)
            return b"".join(parts)
        if dsize > e - s:
            raise RegfCorruptError("value data of cell 0x%x overruns its cell" % vk)
        return bytes(d[s:s + dsize])

    # ---- public reading API
    @property
    def root(self) -> Key:
        return Key(self, self._root)

    @property
    def minor_version(self) -> int:
        return self.base.minor

    @_guard
    def key(self, path: str = "") -> Key:
        """The key at *path* (backslash-separated, case-insensitive, relative
        to the root; ``""`` is the root)."""
        k = self.root
        for part in split_path(path):
            k = k.subkey(part)
        return k

    def has_key(self, path: str) -> bool:
        try:
            self.key(path)
            return True
        except KeyNotFoundError:
            return False

    @_guard
    def walk(self, start: str = ""):
        """Yield (path, Key) depth-first in stored order; paths relative to
        the root, components joined by backslash.  Detects cycles."""
        first = self.key(start)
        seen = set()
        stack = [(split_path(start), first)]
        count = 0
        while stack:
            parts, k = stack.pop()
            if k.offset in seen:
                raise RegfCorruptError("loop in the key tree at cell 0x%x" % k.offset)
            seen.add(k.offset)
            count += 1
            if len(parts) > _MAX_DEPTH:
                raise RegfCorruptError("key tree deeper than %d levels" % _MAX_DEPTH)
            yield "\\".join(parts), k
            subs = k.subkeys()
            for sk in reversed(subs):
                stack.append((parts + [sk.name], sk))

    @_guard
    def dump(self, start: str = "") -> dict[str, dict[str, tuple[int, bytes]]]:
        """{key path: {value name: (type, raw data)}} of the whole tree."""
        out = {}
        for path, k in self.walk(start):
            out[path] = {v.name: (v.type, v.raw) for v in k.values()}
        return out

    # ---- allocator
    def _scan_free(self):
        """Build the free-cell index by walking every hive bin."""
        d = self._d
        n = len(d)
        self._free_start: dict[int, int] = {}
        self._free_end: dict[int, int] = {}
        self._free_by_size: dict[int, set] = {}
        self._free_sizes: list[int] = []
        self._free_idx = True
        unpack = I32.unpack_from
        pos = 0
        while pos < n:
            if d[pos:pos + 4] != b"hbin":
                raise RegfCorruptError("expected hive bin at 0x%x" % pos)
            bsize = U32.unpack_from(d, pos + 8)[0]
            if bsize < HBIN_ALIGN or bsize % HBIN_ALIGN or pos + bsize > n:
                raise RegfCorruptError("bad hive bin size %d at 0x%x" % (bsize, pos))
            end = pos + bsize
            c = pos + HBIN_HEADER_SIZE
            while c < end:
                sz = unpack(d, c)[0]
                if sz > 0:
                    if c + sz > end or sz & 7:
                        raise RegfCorruptError("bad free cell at 0x%x" % c)
                    # coalesce adjacent free cells while scanning
                    prev = self._free_end.get(c)
                    if prev is not None:
                        self._index_remove(prev)
                        sz2 = c + sz - prev
                        I32.pack_into(d, prev, sz2)
                        self._index_add(prev, sz2)
                    else:
                        self._index_add(c, sz)
                    c += sz
                elif sz < 0:
                    sz = -sz
                    if c + sz > end or sz < 8:
                        raise RegfCorruptError("bad cell at 0x%x" % c)
                    c += sz
                else:
                    raise RegfCorruptError("zero-sized cell at 0x%x" % c)
            pos = end

    def _index_add(self, off, size):
        self._free_start[off] = size
        self._free_end[off + size] = off
        b = self._free_by_size.get(size)
        if b is None:
            b = self._free_by_size[size] = set()
            bisect.insort(self._free_sizes, size)
        b.add(off)

    def _index_remove(self, off):
        size = self._free_start.pop(off)
        del self._free_end[off + size]
        b = self._free_by_size[size]
        b.discard(off)
        if not b:
            del self._free_by_size[size]
            i = bisect.bisect_left(self._free_sizes, size)
            del self._free_sizes[i]

    def _alloc(self, length: int) -> int:
        """Allocate a cell holding *length* bytes; returns its offset."""
        if self._free_idx is None:
            self._scan_free()
        need = (length + 4 + 7) & ~7
        i = bisect.bisect_left(self._free_sizes, need)
        if i == len(self._free_sizes):
            off = self._new_bin(need)
        else:
            size = self._free_sizes[i]
            off = next(iter(self._free_by_size[size]))
        size = self._free_start[off]
        self._index_remove(off)
        rest = size - need
        if rest >= 16:
            I32.pack_into(self._d, off + need, rest)
            self._index_add(off + need, rest)
        else:
            need = size
        I32.pack_into(self._d, off, -need)
        return off

    def _new_bin(self, need: int) -> int:
        d = self._d
        pos = len(d)
        bsize = (need + HBIN_HEADER_SIZE + HBIN_ALIGN - 1) // HBIN_ALIGN * HBIN_ALIGN
        d.extend(bytes(bsize))
        HBIN.pack_into(d, pos, b"hbin", pos, bsize, b"\0" * 8, filetime_now(), 0)
        off = pos + HBIN_HEADER_SIZE
        I32.pack_into(d, off, bsize - HBIN_HEADER_SIZE)
        self._index_add(off, bsize - HBIN_HEADER_SIZE)
        return off

    def _free(self, off: int) -> None:
        if off == NIL:
            return
        if self._free_idx is None:
            self._scan_free()
        d = self._d
        size = I32.unpack_from(d, off)[0]
        if size >= 0:
            raise RegfCorruptError("double free of cell 0x%x" % off)
        size = -size
        d[off + 4: off + size] = bytes(size - 4)     # scrub deleted data
        nxt = off + size
        if nxt in self._free_start:
            size += self._free_start[nxt]
            self._index_remove(nxt)
            U32.pack_into(d, nxt, 0)
        prev = self._free_end.get(off)
        if prev is not None:
            size += self._free_start[prev]
            self._index_remove(prev)
            U32.pack_into(d, off, 0)
            off = prev
        I32.pack_into(d, off, size)
        self._index_add(off, size)

    def _alloc_bytes(self, payload: bytes) -> int:
        off = self._alloc(len(payload))
        self._d[off + 4: off + 4 + len(payload)] = payload
        return off

    # ---- writing helpers
    def _store_data(self, raw: bytes) -> tuple[int, int]:
        """Store value data; returns (vk data size field, data offset field)."""
        n = len(raw)
        if n <= 4:
            return n | DATA_INLINE, U32.unpack(raw.ljust(4, b"\0"))[0]
        if self._is_big(n):
            segs = []
            for i in range(0, n, BIG_DATA_SEGMENT):
                # 4 spare bytes per segment cell: readers such as hivex take
                # (cell size - 8) as the segment length
                seg = raw[i:i + BIG_DATA_SEGMENT]
                off = self._alloc(len(seg) + 4)
                self._d[off + 4: off + 4 + len(seg)] = seg
                segs.append(off)
            segl = self._alloc_bytes(struct.pack("<%dI" % len(segs), *segs))
            db = self._alloc_bytes(DB.pack(b"db", len(segs), segl))
            return n, db
        return n, self._alloc_bytes(raw)

    def _free_data(self, vk: int) -> None:
        d = self._d
        dsize, doff = struct.unpack_from("<II", d, vk + 8)
        if dsize & DATA_INLINE or dsize == 0 or doff == NIL:
            return
        s, e = self._cell(doff)
        if self._is_big(dsize) and d[s:s + 2] == b"db":
            _, nseg, segl = DB.unpack_from(d, s)
            ss, se = self._cell(segl)
            segs = struct.unpack_from("<%dI" % nseg, d, ss)
            for seg in segs:
                self._free(seg)
            self._free(segl)
        self._free(doff)

    def _touch(self, nk: int) -> None:
        U64.pack_into(self._d, nk + NK_TIME, filetime_now())

    def _set_value(self, nk: int, name: str, vtype: int, raw: bytes) -> int:
        d = self._d
        o = self._find_value(nk, name)
        size_f, off_f = self._store_data(raw)
        if o is not None:
            self._free_data(o)
            struct.pack_into("<III", d, o + 8, size_f, off_f, vtype)
        else:
            nb, comp = encode_name(name)
            o = self._alloc(20 + len(nb))
            d[o + 4: o + VK_NAME] = VK.pack(b"vk", len(nb), size_f, off_f, vtype,
                                            VALUE_COMP_NAME if comp else 0, 0)
            d[o + VK_NAME: o + VK_NAME + len(nb)] = nb
            offs = self._value_offsets(nk) + [o]
            self._write_value_list(nk, offs)
            nl = len(nb)
            if nl > U32.unpack_from(d, nk + NK_MAXVALNAME)[0]:
                U32.pack_into(d, nk + NK_MAXVALNAME, nl)
        if len(raw) > U32.unpack_from(d, nk + NK_MAXVALDATA)[0]:
            U32.pack_into(d, nk + NK_MAXVALDATA, len(raw))
        self._touch(nk)
        return o

    def _write_value_list(self, nk: int, offs: list[int]) -> None:
        d = self._d
        old = U32.unpack_from(d, nk + NK_VALLIST)[0]
        n_old = U32.unpack_from(d, nk + NK_NVAL)[0]
        new = NIL
        if offs:
            payload = struct.pack("<%dI" % len(offs), *offs)
            if old != NIL and n_old:
                s, e = self._cell(old)
                if e - s >= len(payload) and e - s - len(payload) < 64:
                    d[s:s + len(payload)] = payload
                    new = old
            if new == NIL:
                new = self._alloc_bytes(payload)
        if old != NIL and new != old and n_old:
            self._free(old)
        U32.pack_into(d, nk + NK_VALLIST, new)
        U32.pack_into(d, nk + NK_NVAL, len(offs))

    def _delete_value(self, nk: int, vk: int) -> None:
        offs = self._value_offsets(nk)
        offs.remove(vk)
        self._free_data(vk)
        self._free(vk)
        self._write_value_list(nk, offs)
        self._touch(nk)

    def _free_sub_list(self, nk: int) -> None:
        d = self._d
        lst = U32.unpack_from(d, nk + NK_SUBLIST)[0]
        if lst == NIL or U32.unpack_from(d, nk + NK_NSUB)[0] == 0:
            return
        s, e = self._cell(lst, 4)
        sig, cnt = LIST_HDR.unpack_from(d, s)
        if sig == b"ri":
            for leaf in struct.unpack_from("<%dI" % cnt, d, s + 4):
                self._free(leaf)
        self._free(lst)

    def _write_sub_list(self, nk: int, kind: str | None, ents: list[tuple[int, int | None]]) -> None:
        """Replace the subkey list of *nk* by *ents* (already sorted)."""
        d = self._d
        self._free_sub_list(nk)
        want = "lh" if self.base.minor >= 5 else "lf"
        if ents and kind != want:
            fn = lh_hash if want == "lh" else lf_hint
            ents = [(o, fn(self._nk_name(o))) for o, _ in ents]
        else:
            fn = lh_hash if want == "lh" else lf_hint
            ents = [(o, h if h is not None else fn(self._nk_name(o))) for o, h in ents]
        new = NIL
        if ents:
            sig = want.encode()
            leaves = []
            for i in range(0, len(ents), LEAF_MAX):
                chunk = ents[i:i + LEAF_MAX]
                flat = [x for pair in chunk for x in pair]
                leaves.append(self._alloc_bytes(LIST_HDR.pack(sig, len(chunk))
                                                + struct.pack("<%dI" % len(flat), *flat)))
            if len(leaves) == 1:
                new = leaves[0]
            else:
                new = self._alloc_bytes(LIST_HDR.pack(b"ri", len(leaves))
                                        + struct.pack("<%dI" % len(leaves), *leaves))
        U32.pack_into(d, nk + NK_SUBLIST, new)
        U32.pack_into(d, nk + NK_NSUB, len(ents))

    def _insert_pos(self, ents, name: str) -> int:
        key = sort_key(name)
        lo, hi = 0, len(ents)
        while lo < hi:
            mid = (lo + hi) // 2
            if sort_key(self._nk_name(ents[mid][0])) < key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _new_nk(self, parent: int, name: str, class_name: str | None) -> int:
        d = self._d
        nb, comp = encode_name(name)
        if not name or len(nb) > 512 or "\\" in name:
            raise _harmless(RegfStateError("invalid key name %r" % name))
        sk = U32.unpack_from(d, parent + NK_SECURITY)[0]
        cls_off, cls_len = NIL, 0
        if class_name:
            cb = class_name.encode("utf-16-le", "surrogatepass")
            cls_off, cls_len = self._alloc_bytes(cb), len(cb)
        o = self._alloc(76 + len(nb))
        d[o + 4: o + NK_NAME] = NK.pack(b"nk", KEY_COMP_NAME if comp else 0, filetime_now(), 0,
                                        parent, 0, 0, NIL, NIL, 0, NIL, sk, cls_off,
                                        0, 0, 0, 0, 0, len(nb), cls_len)
        d[o + NK_NAME: o + NK_NAME + len(nb)] = nb
        if sk != NIL:
            self._cell(sk, 20, b"sk")
            rc = U32.unpack_from(d, sk + SK_REFCOUNT)[0]
            U32.pack_into(d, sk + SK_REFCOUNT, rc + 1)
        # parent bookkeeping
        kind, ents = self._sub_entries(parent)
        pos = self._insert_pos(ents, name)
        fn = lh_hash if kind == "lh" else (lf_hint if kind == "lf" else (lambda n: None))
        ents.insert(pos, (o, fn(name)))
        self._write_sub_list(parent, kind, ents)
        nl = len(nb) if comp else len(nb)
        if nl > (U32.unpack_from(d, parent + NK_MAXSUBNAME)[0] & 0xFFFF):
            cur = U32.unpack_from(d, parent + NK_MAXSUBNAME)[0]
            U32.pack_into(d, parent + NK_MAXSUBNAME, (cur & 0xFFFF0000) | nl)
        if cls_len > U32.unpack_from(d, parent + NK_MAXSUBNAME + 4)[0]:
            U32.pack_into(d, parent + NK_MAXSUBNAME + 4, cls_len)
        self._touch(parent)
        return o

    # ---- public editing API
    @_edit
    def _create_key_at(self, start: Key, path: str, class_name: str | None = None) -> Key:
        parts = split_path(path)
        if not parts:
            return start
        cur = start.offset
        for i, part in enumerate(parts):
            o = self._find_subkey(cur, part)
            if o is None:
                o = self._new_nk(cur, part, class_name if i == len(parts) - 1 else None)
            cur = o
        return Key(self, cur)

    def create_key(self, path: str, class_name: str | None = None) -> Key:
        """Create key *path* and any missing parents; returns the key (the
        existing one if it exists)."""
        return self._create_key_at(self.root, path, class_name)

    @_edit
    def _delete_key_at(self, start: Key, path: str) -> None:
        parts = split_path(path)
        if not parts:
            raise _harmless(RegfStateError("cannot delete the root key"))
        try:
            parent = start.open("\\".join(parts[:-1]))
            target = parent.subkey(parts[-1])
        except KeyNotFoundError as e:
            raise _harmless(e)
        kind, ents = self._sub_entries(parent.offset)
        ents = [(o, h) for o, h in ents if o != target.offset]
        self._write_sub_list(parent.offset, kind, ents)
        self._touch(parent.offset)
        self._delete_tree(target.offset)

    def delete_key(self, path: str) -> None:
        """Delete key *path* with all its subkeys and values."""
        self._delete_key_at(self.root, path)

    def _delete_tree(self, top: int) -> None:
        d = self._d
        order = []
        stack = [top]
        seen = set()
        while stack:
            o = stack.pop()
            if o in seen:
                raise RegfCorruptError("loop in the key tree at cell 0x%x" % o)
            seen.add(o)
            order.append(o)
            stack.extend(x for x, _ in self._sub_entries(o)[1])
        for o in reversed(order):
            self._free_sub_list(o)
            for vk in self._value_offsets(o):
                self._free_data(vk)
                self._free(vk)
            if U32.unpack_from(d, o + NK_NVAL)[0]:
                self._free(U32.unpack_from(d, o + NK_VALLIST)[0])
            cls = U32.unpack_from(d, o + NK_CLASS)[0]
            if cls != NIL and U16.unpack_from(d, o + NK_CLASSLEN)[0]:
                self._free(cls)
            self._release_sk(U32.unpack_from(d, o + NK_SECURITY)[0])
            self._free(o)

    def _release_sk(self, sk: int) -> None:
        if sk == NIL:
            return
        d = self._d
        self._cell(sk, 20, b"sk")
        rc = U32.unpack_from(d, sk + SK_REFCOUNT)[0]
        if rc > 1:
            U32.pack_into(d, sk + SK_REFCOUNT, rc - 1)
            return
        flink = U32.unpack_from(d, sk + SK_FLINK)[0]
        blink = U32.unpack_from(d, sk + SK_BLINK)[0]
        if flink != sk:
            self._cell(flink, 20, b"sk")
            self._cell(blink, 20, b"sk")
            U32.pack_into(d, blink + SK_FLINK, flink)
            U32.pack_into(d, flink + SK_BLINK, blink)
        self._free(sk)

    @_edit
    def rename_key(self, path: str, new_name: str) -> Key:
        """Rename the last component of *path*; returns the renamed Key."""
        parts = split_path(path)
        if not parts:
            raise _harmless(RegfStateError("cannot rename the root key"))
        try:
            parent = self.key("\\".join(parts[:-1]))
            old = parent.subkey(parts[-1])
        except KeyNotFoundError as e:
            raise _harmless(e)
        other = self._find_subkey(parent.offset, new_name)
        if other is not None and other != old.offset:
            raise _harmless(RegfStateError("key %r already exists" % new_name))
        nb, comp = encode_name(new_name)
        if not new_name or len(nb) > 512 or "\\" in new_name:
            raise _harmless(RegfStateError("invalid key name %r" % new_name))
        d = self._d
        o = old.offset
        fixed = bytearray(d[o + 4: o + NK_NAME])
        kind, ents = self._sub_entries(parent.offset)
        ents = [(x, h) for x, h in ents if x != o]
        n = self._alloc(76 + len(nb))
        fixed[2:4] = U16.pack((U16.unpack_from(fixed, 2)[0] & ~KEY_COMP_NAME)
                              | (KEY_COMP_NAME if comp else 0))
        fixed[72:74] = U16.pack(len(nb))
        d[n + 4: n + NK_NAME] = fixed
        d[n + NK_NAME: n + NK_NAME + len(nb)] = nb
        self._touch(n)
        # children point at their parent
        for c, _ in self._sub_entries(n)[1]:
            U32.pack_into(d, c + NK_PARENT, n)
        self._free(o)
        pos = self._insert_pos(ents, new_name)
        ents.insert(pos, (n, None))
        self._write_sub_list(parent.offset, kind, ents)
        if len(nb) > (U32.unpack_from(d, parent.offset + NK_MAXSUBNAME)[0] & 0xFFFF):
            cur = U32.unpack_from(d, parent.offset + NK_MAXSUBNAME)[0]
            U32.pack_into(d, parent.offset + NK_MAXSUBNAME, (cur & 0xFFFF0000) | len(nb))
        self._touch(parent.offset)
        return Key(self, n)

    # ---- commit
    def to_bytes(self) -> bytes:
        """The complete hive file as it would be committed."""
        b = BaseBlock(self.base.raw)
        seq = max(b.seq1, b.seq2) + 1 if self._modified else b.seq1
        b.seq1 = b.seq2 = seq & 0xFFFFFFFF
        b.timestamp = filetime_now()
        b.bins_size = len(self._d)
        b.root = self._root
        if b.file_type != 0:
            b.file_type = 0
        return b.pack() + bytes(self._d)

    def commit(self, path: str | os.PathLike | None = None) -> None:
        """Write the hive atomically (temporary file + rename in the same
        directory) and neutralise stale transaction logs."""
        self._check_writable()
        target = os.fspath(path) if path is not None else self.path
        if target is None:
            raise RegfStateError("no path to commit to")
        if not self._modified and target == self.path:
            return
        d = self._d
        b = self.base
        seq = (max(b.seq1, b.seq2) + 1) & 0xFFFFFFFF
        b.seq1 = b.seq2 = seq
        b.timestamp = filetime_now()
        b.bins_size = len(d)
        b.root = self._root
        header = b.pack()
        dirn = os.path.dirname(os.path.abspath(target))
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(target) + ".",
                                   suffix=".tmp", dir=dirn)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(header)
                f.write(d)
                f.flush()
                os.fsync(f.fileno())
            try:
                st = os.stat(target)
                os.chmod(tmp, st.st_mode & 0o7777)
            except FileNotFoundError:
                pass
            os.replace(tmp, target)
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise RegfError("cannot write %s: %s" % (target, e.strerror)) from None
        try:
            dfd = os.open(dirn, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
        # The primary is now clean (seq1 == seq2), so Windows ignores the logs;
        # truncate them anyway so no tool replays stale pages over the edit.
        for lp in _logs.find_logs(target):
            try:
                with open(lp, "r+b") as f:
                    f.truncate(0)
            except OSError:
                pass
        self._modified = False
        self.dirty = False
        self.path = target
