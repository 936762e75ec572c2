"""Reader and writer of regf hives.

Memory: the hive bins data is held in one ``bytearray`` (read through a
sliding 8 MiB mapping, so a 120 MB hive costs ~120 MB of RSS and no
zero-fill); cells are read and edited in place.  Nothing is parsed at open
beyond the base block and the root key.

Allocation ([regf] "Cell": positive size = unallocated): a free-cell index
by size, built lazily one hive bin at a time -- bin headers are hopped only
as far as needed, a bin's free cells are indexed when the allocator's
sequential scan reaches it (at most ``_SCAN_BUDGET`` bins per allocation
miss, then a new 4 KiB-multiple bin is appended) or when one of its cells is
freed.  Free cells are coalesced within their bin.  Per-key name indexes
(values and subkeys, built on first lookup and maintained by the edits) make
``set_value``/``create_key`` O(1) instead of a scan of the key's list, and
value lists grow with ~25 % spare entries, so building or editing a
500,000-value hive is linear.

Commit (crash safety).  Every edit records the 4 KiB pages it changes
(:meth:`Hive._mark`).  :meth:`Hive.commit` then either

* patches the file in place -- when committing to the clean file the hive
  was opened from -- with the Windows write-ahead protocol: (1) stale logs
  truncated, an old-format transaction log (base block copy, ``DIRT``
  bitmap, the changed pages) written to ``<hive>.LOG1`` and fsynced; (2)
  the primary base block rewritten *dirty* (sequence numbers differ),
  fsynced; (3) the changed pages (and appended bins) written in place,
  fsynced; (4) the base block rewritten clean with the new bins size and
  checksum, fsynced, and the log truncated (removed if we created it).  A
  crash before (2) leaves the old clean hive, whose logs are ignored because
  it is clean; a crash after (2) leaves a dirty primary plus a complete,
  durable log, which :meth:`Hive.open` (like Windows) replays into the new
  hive.  An exclusive ``flock`` is held meanwhile (opening takes a shared
  one).  Cost: a few small writes and four fsyncs instead of rewriting
  100+ MB;
* or, for a new hive, another target path, a hive that was dirty or
  recovered from logs at open, or a file that changed under us, writes the
  whole hive to a temporary file in the same directory, fsyncs it, renames
  it over the target, fsyncs the directory and truncates stale logs.

``with Hive.open(p, write=True) as h:`` commits on a clean exit and discards
everything if an exception escapes.
"""

from __future__ import annotations

import bisect
import functools
import mmap
import os
import struct
import tempfile
from collections.abc import Callable, Sequence

try:
    import fcntl
except ImportError:          # not POSIX
    fcntl = None

from wimfs.format.xmlinfo import filetime_now
from wimfs.fsutil import fsync_dir

from . import logs as _logs
from .errors import (KeyNotFoundError, RegfCorruptError, RegfNotFoundError, RegfDirtyError, RegfError,
                     RegfStateError, RegfUnsupportedError, ValueNotFoundError)
from .format import (BASE_BLOCK_SIZE, BIG_DATA_SEGMENT, BIG_DATA_THRESHOLD, DATA_INLINE,
                     DB, HBIN, HBIN_ALIGN, HBIN_HEADER_SIZE, I32, KEY_COMP_NAME,
                     KEY_HIVE_ENTRY, KEY_NO_DELETE, LEAF_MAX, LIST_HDR, NIL, NK, NK_CLASS,
                     NK_CLASSLEN, NK_FLAGS, NK_MAXSUBNAME, NK_MAXVALDATA, NK_MAXVALNAME,
                     NK_NAME, NK_NAMELEN, NK_NSUB, NK_NVAL, NK_PARENT, NK_SECURITY,
                     NK_SUBLIST, NK_TIME, NK_VALLIST, REG_DWORD,
                     REG_DWORD_BIG_ENDIAN, REG_EXPAND_SZ, REG_LINK, REG_MULTI_SZ, REG_QWORD,
                     REG_SZ, SK, SK_BLINK, SK_DESC, SK_FLINK, SK_REFCOUNT, TYPE_NAMES, U16,
                     U32, U64, VALUE_COMP_NAME, VK, VK_NAME, BaseBlock, decode_name,
                     default_security_descriptor, encode_name, lf_hint, lh_hash, sort_key,
                     upcase)

_LOWLEVEL = (IndexError, struct.error, ValueError, UnicodeError, OverflowError,
             RecursionError, KeyError)

_SCAN_BUDGET = 64       # bins scanned per allocation miss (see the allocator)
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
        if hive._dirty:
            hive._modified = True
        return r
    return wrapper


def _harmless(exc: RegfError) -> RegfError:
    """Mark an exception raised before any byte was changed."""
    exc._harmless = True
    return exc


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
        self._discarded = False         # an exception left the ``with`` block
        self._free_idx = None           # built lazily by _bins_init
        self._vidx: dict[int, dict[str, int]] = {}   # nk -> {upcase name: vk}
        self._kidx: dict[int, dict[str, int]] = {}   # nk -> {upcase name: subkey nk}
        self._opened_clean = False      # the file at self.path is this clean hive
        self._opened_bins = 0
        self._dirty: set[int] = set()   # 4 KiB pages of the bins data changed since open/commit
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
            # shared lock while reading: an in-place commit by another Hive
            # holds the exclusive lock, so we never read half of one
            _flock(f.fileno(), fcntl.LOCK_SH if fcntl else 0)
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
            data = _read_bins(f.fileno(), want_read)
        return cls._finish_open(path, base, data, write=write, ignore_dirty=ignore_dirty,
                                load_logs=lambda: _logs.read_logs(
                                    _logs.find_logs(path) if replay_logs else []))

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, *, write: bool = False,
                   logs: Sequence[bytes] = ()) -> Hive:
        """A hive held in memory: *data* is the whole hive file, *logs* the
        contents of its ``.LOG1``/``.LOG2`` (or ``.LOG``) files.

        A dirty hive is replayed from *logs* exactly as :meth:`open` replays
        the files; if it cannot be, ``write=True`` raises
        :class:`RegfDirtyError`.  Edits work as on a file-backed hive, but
        nothing is ever written to a file: ``with Hive.from_bytes(data,
        write=True) as h:`` only discards the hive if an exception escapes;
        the caller takes :meth:`to_bytes` afterwards (and :attr:`changed`
        says whether to).  :meth:`commit` with a path writes it to a file.
        """
        mv = memoryview(data)
        try:
            base = BaseBlock(bytes(mv[:BASE_BLOCK_SIZE]))
            if len(mv) < BASE_BLOCK_SIZE:
                raise RegfCorruptError(f"truncated hive: {len(mv)} bytes")
            cls._check_base(base)
            bins = bytearray(mv[BASE_BLOCK_SIZE:BASE_BLOCK_SIZE + base.bins_size])
        finally:
            mv.release()
        return cls._finish_open(None, base, bins, write=write, ignore_dirty=False,
                                load_logs=lambda: [bytes(x) for x in logs])

    @staticmethod
    def _check_base(base: BaseBlock) -> None:
        if base.major != 1 or base.minor > 6:
            raise RegfUnsupportedError(f"unsupported regf version {base.major}.{base.minor}")
        if base.file_type != 0:
            raise RegfUnsupportedError(
                f"not a primary hive file (file type {base.file_type}: a transaction log?)")
        if base.file_format != 1:
            raise RegfUnsupportedError(f"unsupported regf file format {base.file_format}")
        if base.bins_size % HBIN_ALIGN or base.bins_size == 0:
            raise RegfCorruptError(f"bad hive bins data size {base.bins_size}")

    @classmethod
    def _finish_open(cls, path: str | None, base: BaseBlock, data: bytearray, *, write: bool,
                     ignore_dirty: bool, load_logs: Callable[[], list[bytes]]) -> Hive:
        dirty = base.seq1 != base.seq2 or not base.checksum_ok
        clean_bins = None if dirty else base.bins_size
        replayed = False
        if dirty:
            try:
                logs = load_logs()
                if logs:
                    base, data, _ = _logs.replay(base, data, logs)
                    replayed = True
                    dirty = False
            except RegfDirtyError:
                if write and not ignore_dirty:
                    raise
        if dirty and write and not ignore_dirty:
            bad = "" if base.checksum_ok else ", bad checksum"
            raise RegfDirtyError(
                f"hive {path or '(in memory)'} is dirty (sequence numbers {base.seq1}/"
                f"{base.seq2}{bad}) and has no transaction logs to replay; refusing to edit it")
        if len(data) < base.bins_size:
            raise RegfCorruptError(f"truncated hive: {len(data)} bytes of hive bins, header "
                                   f"says {base.bins_size}")
        h = cls(path, base, data, writable=write, dirty=dirty, replayed=replayed)
        if clean_bins is not None and not replayed:
            h._opened_clean = True
            h._opened_bins = clean_bins
        return h

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
        """Commit a writable file-backed hive on a clean exit; an in-memory
        hive (no path) is left for :meth:`to_bytes`.  On an exception the
        edits are discarded and the handle becomes unusable."""
        try:
            if et is not None:
                self._discarded = True
            elif self.writable and not self._closed and self.path is not None:
                self.commit()
        finally:
            self.close()
        return False

    @property
    def changed(self) -> bool:
        """Whether an edit changed the hive since it was opened (or last
        committed); a new hive is changed."""
        return bool(self._dirty)

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
    def _mark(self, off: int, n: int) -> None:
        """Record that bytes [off, off+n) of the bins data were changed
        (the in-place commit writes exactly these pages)."""
        a = off >> 12
        b = (off + n - 1) >> 12
        if a == b:
            self._dirty.add(a)
        else:
            self._dirty.update(range(a, b + 1))

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
        idx = self._kidx.get(nk)
        if idx is None:
            idx = self._subkey_index(nk)
        return idx.get(upcase(name))

    def _subkey_index(self, nk: int) -> dict[str, int]:
        """{upcase(name): nk offset} of the subkeys of *nk* (first one in
        stored order wins); cached per key, kept up to date by
        :meth:`_new_nk`, dropped when the list is rewritten otherwise or the
        nk cell is freed.  Names are compared, not lh hashes, so hives with
        wrong hashes (hivex writes them for non-ASCII names) still work."""
        idx: dict[str, int] = {}
        for o, _ in self._sub_entries(nk)[1]:
            self._nk(o)
            idx.setdefault(upcase(self._nk_name(o)), o)
        self._kidx[nk] = idx
        return idx

    def _find_subkey_linear(self, nk: int, name: str) -> int | None:
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
        idx = self._vidx.get(nk)
        if idx is None:
            idx = self._value_index(nk)
        return idx.get(upcase(name))

    def _value_index(self, nk: int) -> dict[str, int]:
        """{upcase(name): vk offset} of the values of *nk* (first one wins,
        as a linear search in stored order would); cached per key and kept
        up to date by the editing code, dropped when the nk cell is freed."""
        idx: dict[str, int] = {}
        d = self._d
        for o in self._value_offsets(nk):
            s, e = self._cell(o, 20, b"vk")
            nlen, flags = U16.unpack_from(d, o + 6)[0], U16.unpack_from(d, o + 4 + 16)[0]
            if VK_NAME + nlen > e - o:
                raise RegfCorruptError("value name of cell 0x%x overruns the cell" % o)
            vn = decode_name(bytes(d[o + VK_NAME: o + VK_NAME + nlen]), bool(flags & VALUE_COMP_NAME))
            idx.setdefault(upcase(vn), o)
        self._vidx[nk] = idx
        return idx

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
    #
    # When no indexed free cell fits, at most _SCAN_BUDGET further bins are
    # scanned before a new bin is appended, so the cost of an allocation is
    # bounded; the scan cursor still sweeps the whole hive over many
    # allocations, so free space anywhere is eventually reused.
    #
    # The free-cell index is built lazily, one hive bin at a time: opening a
    # 100 MB hive and allocating a few cells must not walk a million cells
    # (nor hop 30,000 bin headers).  ``_bins``/``_bin_sizes`` (offsets and
    # sizes of the bins) grow by hopping headers only as far as needed; a
    # bin's free cells enter the index when the allocator's sequential scan
    # reaches it or a cell of it is freed (free cells never span bins, so
    # coalescing stays inside one bin and a bin's cells are indexed all or
    # nothing).  New bins are indexed when appended.
    def _bins_init(self):
        self._free_start: dict[int, int] = {}
        self._free_end: dict[int, int] = {}
        self._free_by_size: dict[int, set] = {}
        self._free_sizes: list[int] = []
        self._bins: list[int] = []          # starts of the bins hopped so far
        self._bin_sizes: list[int] = []
        self._hop = 0                       # next bin header not yet hopped
        self._scanned: set[int] = set()     # starts of bins whose free cells are indexed
        self._cursor = 0                    # index in _bins of the sequential scan
        self._free_idx = True

    def _hop_one(self) -> None:
        """Read the next hive bin header (bins are contiguous from 0)."""
        d = self._d
        pos = self._hop
        if d[pos:pos + 4] != b"hbin":
            raise RegfCorruptError("expected hive bin at 0x%x" % pos)
        bsize = U32.unpack_from(d, pos + 8)[0]
        if bsize < HBIN_ALIGN or bsize % HBIN_ALIGN or pos + bsize > len(d):
            raise RegfCorruptError("bad hive bin size %d at 0x%x" % (bsize, pos))
        self._bins.append(pos)
        self._bin_sizes.append(bsize)
        self._hop = pos + bsize

    def _scan_free(self):
        """Index the free cells of every hive bin (eager variant, kept for
        callers that want the whole index)."""
        if self._free_idx is None:
            self._bins_init()
        while self._hop < len(self._d):
            self._hop_one()
        for i, pos in enumerate(self._bins):
            if pos not in self._scanned:
                self._scan_bin(i)

    def _scan_bin(self, i: int) -> None:
        """Add the free cells of hive bin number *i* to the index."""
        d = self._d
        unpack = I32.unpack_from
        pos = self._bins[i]
        self._scanned.add(pos)
        end = pos + self._bin_sizes[i]
        c = pos + HBIN_HEADER_SIZE
        prev = None                 # offset of a free cell ending at c
        while c < end:
            sz = unpack(d, c)[0]
            if sz > 0:
                if c + sz > end or sz & 7:
                    raise RegfCorruptError("bad free cell at 0x%x" % c)
                if prev is not None:
                    # coalesce adjacent free cells while scanning
                    self._index_remove(prev)
                    sz2 = c + sz - prev
                    I32.pack_into(d, prev, sz2)
                    self._mark(prev, 4)
                    self._index_add(prev, sz2)
                else:
                    self._index_add(c, sz)
                    prev = c
                c += sz
            elif sz < 0:
                sz = -sz
                if c + sz > end or sz < 8:
                    raise RegfCorruptError("bad cell at 0x%x" % c)
                prev = None
                c += sz
            else:
                raise RegfCorruptError("zero-sized cell at 0x%x" % c)

    def _bin_of(self, off: int) -> int:
        """Number of the hive bin holding *off* (hopping headers as far as
        needed)."""
        while self._hop <= off and self._hop < len(self._d):
            self._hop_one()
        i = bisect.bisect_right(self._bins, off) - 1
        if i < 0 or off >= self._bins[i] + self._bin_sizes[i]:
            raise RegfCorruptError("cell offset 0x%x outside the hive bins" % off)
        return i

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

    def _find_free(self, need: int) -> int | None:
        """Offset of an indexed free cell of at least *need* bytes, scanning
        up to _SCAN_BUDGET more bins (in file order) into the index; None
        if none fits."""
        sizes = self._free_sizes
        i = bisect.bisect_left(sizes, need)
        if i < len(sizes):
            return next(iter(self._free_by_size[sizes[i]]))
        budget = _SCAN_BUDGET
        n = len(self._d)
        while budget > 0:
            if self._cursor == len(self._bins):
                if self._hop >= n:
                    break
                self._hop_one()
            j = self._cursor
            self._cursor += 1
            if self._bins[j] in self._scanned:
                continue
            budget -= 1
            if self._bin_sizes[j] - HBIN_HEADER_SIZE < need:
                continue                 # cannot hold it; left for _free
            self._scan_bin(j)
            if sizes and sizes[-1] >= need:
                return next(iter(self._free_by_size[sizes[bisect.bisect_left(sizes, need)]]))
        return None

    def _alloc(self, length: int) -> int:
        """Allocate a cell holding *length* bytes; returns its offset."""
        if self._free_idx is None:
            self._bins_init()
        need = (length + 4 + 7) & ~7
        off = self._find_free(need)
        if off is None:
            off = self._new_bin(need)
        size = self._free_start[off]
        self._index_remove(off)
        rest = size - need
        if rest >= 16:
            I32.pack_into(self._d, off + need, rest)
            self._index_add(off + need, rest)
            self._mark(off, need + 4)
        else:
            need = size
            self._mark(off, need)
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
        self._mark(pos, bsize)
        self._scanned.add(pos)          # hopped into _bins when reached
        self._index_add(off, bsize - HBIN_HEADER_SIZE)
        return off

    def _free(self, off: int) -> None:
        if off == NIL:
            return
        if self._free_idx is None:
            self._bins_init()
        i = self._bin_of(off)
        if self._bins[i] not in self._scanned:
            self._scan_bin(i)
        self._vidx.pop(off, None)
        self._kidx.pop(off, None)
        d = self._d
        size = I32.unpack_from(d, off)[0]
        if size >= 0:
            raise RegfCorruptError("double free of cell 0x%x" % off)
        size = -size
        if off + size > self._bins[i] + self._bin_sizes[i]:
            raise RegfCorruptError("cell 0x%x overruns its hive bin" % off)
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
        self._mark(off, size)
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
        self._mark(nk, NK_NAME)

    def _set_value(self, nk: int, name: str, vtype: int, raw: bytes) -> int:
        d = self._d
        o = self._find_value(nk, name)
        size_f, off_f = self._store_data(raw)
        if o is not None:
            self._free_data(o)
            struct.pack_into("<III", d, o + 8, size_f, off_f, vtype)
            self._mark(o + 8, 12)
        else:
            nb, comp = encode_name(name)
            o = self._alloc(20 + len(nb))
            d[o + 4: o + VK_NAME] = VK.pack(b"vk", len(nb), size_f, off_f, vtype,
                                            VALUE_COMP_NAME if comp else 0, 0)
            d[o + VK_NAME: o + VK_NAME + len(nb)] = nb
            self._append_value(nk, o)
            idx = self._vidx.get(nk)
            if idx is not None:
                idx[upcase(name)] = o
            nl = len(nb)
            if nl > U32.unpack_from(d, nk + NK_MAXVALNAME)[0]:
                U32.pack_into(d, nk + NK_MAXVALNAME, nl)
                self._mark(nk, NK_NAME)
        if len(raw) > U32.unpack_from(d, nk + NK_MAXVALDATA)[0]:
            U32.pack_into(d, nk + NK_MAXVALDATA, len(raw))
            self._mark(nk, NK_NAME)
        self._touch(nk)
        return o

    def _append_value(self, nk: int, vk: int) -> None:
        """Append *vk* to the value list of *nk*: in place when the list
        cell has room, else into a new cell with ~25 % spare entries so that
        adding n values one by one costs O(n) rather than O(n^2)."""
        d = self._d
        n = U32.unpack_from(d, nk + NK_NVAL)[0]
        lst = U32.unpack_from(d, nk + NK_VALLIST)[0]
        if n and lst != NIL:
            s, e = self._cell(lst)
            if 4 * n > e - s:
                raise RegfCorruptError("value list of key 0x%x overruns its cell" % nk)
            if 4 * (n + 1) <= e - s:
                U32.pack_into(d, s + 4 * n, vk)
                U32.pack_into(d, nk + NK_NVAL, n + 1)
                self._mark(s + 4 * n, 4)
                self._mark(nk, NK_NAME)
                return
            offs = d[s:s + 4 * n]
        else:
            offs = b""
        cap = n + 1 + (n >> 2)
        new = self._alloc(4 * cap)
        d[new + 4: new + 4 + 4 * n] = offs
        U32.pack_into(d, new + 4 + 4 * n, vk)
        if n and lst != NIL:
            self._free(lst)
        U32.pack_into(d, nk + NK_VALLIST, new)
        U32.pack_into(d, nk + NK_NVAL, n + 1)
        self._mark(nk, NK_NAME)

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
                    self._mark(s, len(payload))
                    new = old
            if new == NIL:
                new = self._alloc_bytes(payload)
        if old != NIL and new != old and n_old:
            self._free(old)
        U32.pack_into(d, nk + NK_VALLIST, new)
        U32.pack_into(d, nk + NK_NVAL, len(offs))
        self._mark(nk, NK_NAME)

    def _delete_value(self, nk: int, vk: int) -> None:
        offs = self._value_offsets(nk)
        offs.remove(vk)
        self._vidx.pop(nk, None)
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
        self._kidx.pop(nk, None)
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
        self._mark(nk, NK_NAME)

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
            self._mark(sk + SK_REFCOUNT, 4)
        # parent bookkeeping
        idx = self._kidx.get(parent)
        kind, ents = self._sub_entries(parent)
        pos = self._insert_pos(ents, name)
        fn = lh_hash if kind == "lh" else (lf_hint if kind == "lf" else (lambda n: None))
        ents.insert(pos, (o, fn(name)))
        self._write_sub_list(parent, kind, ents)
        if idx is not None:
            idx.setdefault(upcase(name), o)
            self._kidx[parent] = idx
        nl = len(nb) if comp else len(nb)
        if nl > (U32.unpack_from(d, parent + NK_MAXSUBNAME)[0] & 0xFFFF):
            cur = U32.unpack_from(d, parent + NK_MAXSUBNAME)[0]
            U32.pack_into(d, parent + NK_MAXSUBNAME, (cur & 0xFFFF0000) | nl)
            self._mark(parent, NK_NAME)
        if cls_len > U32.unpack_from(d, parent + NK_MAXSUBNAME + 4)[0]:
            U32.pack_into(d, parent + NK_MAXSUBNAME + 4, cls_len)
            self._mark(parent, NK_NAME)
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
            self._mark(sk + SK_REFCOUNT, 4)
            return
        flink = U32.unpack_from(d, sk + SK_FLINK)[0]
        blink = U32.unpack_from(d, sk + SK_BLINK)[0]
        if flink != sk:
            self._cell(flink, 20, b"sk")
            self._cell(blink, 20, b"sk")
            U32.pack_into(d, blink + SK_FLINK, flink)
            U32.pack_into(d, flink + SK_BLINK, blink)
            self._mark(blink + SK_FLINK, 4)
            self._mark(flink + SK_BLINK, 4)
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
            self._mark(c + NK_PARENT, 4)
        self._free(o)
        pos = self._insert_pos(ents, new_name)
        ents.insert(pos, (n, None))
        self._write_sub_list(parent.offset, kind, ents)
        if len(nb) > (U32.unpack_from(d, parent.offset + NK_MAXSUBNAME)[0] & 0xFFFF):
            cur = U32.unpack_from(d, parent.offset + NK_MAXSUBNAME)[0]
            U32.pack_into(d, parent.offset + NK_MAXSUBNAME, (cur & 0xFFFF0000) | len(nb))
            self._mark(parent.offset, NK_NAME)
        self._touch(parent.offset)
        return Key(self, n)

    # ---- commit
    def to_bytes(self) -> bytes:
        """The whole hive as a clean, valid file image: sequence numbers
        equal (incremented when the hive was edited or recovered), checksum
        and hive bins size right, file type primary.  Nothing is written;
        an unchanged clean hive comes back byte for byte."""
        if self._discarded or self._broken:
            raise RegfStateError("the hive was discarded after a failed edit")
        b = BaseBlock(self.base.raw)
        if self._modified or self.dirty:
            b.seq1 = b.seq2 = (max(b.seq1, b.seq2) + 1) & 0xFFFFFFFF
            b.timestamp = filetime_now()
        b.bins_size = len(self._d)
        b.root = self._root
        b.file_type = 0
        return b.pack() + bytes(self._d)

    #: set by the test-suite: after every commit, re-read the file and check
    #: it equals the in-memory hive (guards the in-place page diff)
    _VERIFY_COMMIT = False

    def commit(self, path: str | os.PathLike | None = None) -> None:
        """Write the hive crash-safely and neutralise stale transaction logs.

        Committing back to the clean file it was opened from patches only
        the changed pages, through a write-ahead transaction log
        (:meth:`_commit_in_place`); anything else (a new hive, another
        target, a hive recovered from its logs) is written whole to a
        temporary file that is renamed over the target (:meth:`_commit_full`).
        """
        self._check_writable()
        target = os.fspath(path) if path is not None else self.path
        if target is None:
            raise RegfStateError("no path to commit to")
        if not self._modified and target == self.path:
            return
        b = self.base
        old_seq = b.seq2
        seq = (max(b.seq1, b.seq2) + 1) & 0xFFFFFFFF
        b.seq1 = b.seq2 = seq
        b.timestamp = filetime_now()
        b.bins_size = len(self._d)
        b.root = self._root
        done = False
        if (target == self.path and self._opened_clean and not self.replayed_logs
                and len(self._d) >= self._opened_bins):
            done = self._commit_in_place(target, old_seq)
        if not done:
            self._commit_full(target)
        if self._VERIFY_COMMIT:
            with open(target, "rb") as f:
                got = f.read(BASE_BLOCK_SIZE + len(self._d))
            if got != bytes(b.raw) + bytes(self._d):
                raise AssertionError("committed file differs from the in-memory hive")
        self._modified = False
        self.dirty = False
        self.path = target
        self._opened_clean = True
        self._opened_bins = len(self._d)
        self._dirty.clear()

    def _commit_full(self, target: str) -> None:
        d = self._d
        header = self.base.pack()
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
        fsync_dir(dirn)
        # The primary is now clean (seq1 == seq2), so Windows ignores the logs;
        # truncate them anyway so no tool replays stale pages over the edit.
        for lp in _logs.find_logs(target):
            try:
                with open(lp, "r+b") as f:
                    f.truncate(0)
            except OSError:
                pass

    def _dirty_runs(self, old_bins: int) -> list[tuple[int, int]]:
        """(offset, length) runs of the hive bins data to write: the 4 KiB
        pages marked by :meth:`_mark` below *old_bins* (the file's bins
        size), merged, and everything from *old_bins* on."""
        runs: list[list[int]] = []
        page = HBIN_ALIGN
        for p in sorted(self._dirty):
            a = p * page
            if a >= old_bins:
                break
            n = min(page, old_bins - a)
            if runs and runs[-1][0] + runs[-1][1] == a:
                runs[-1][1] += n
            else:
                runs.append([a, n])
        if old_bins < len(self._d):
            if runs and runs[-1][0] + runs[-1][1] == old_bins:
                runs[-1][1] += len(self._d) - old_bins
            else:
                runs.append([old_bins, len(self._d) - old_bins])
        return [(a, n) for a, n in runs]

    def _commit_in_place(self, target: str, old_seq: int) -> bool:
        """Write-ahead commit of the changed pages into the primary file.

        Crash safety follows the Windows protocol ([regf] "Dirty state of a
        hive", "New format" of transaction logs):

        1. every other transaction log of the hive is truncated (the primary
           is clean, so they are stale), and an old-format log (base block
           copy, ``DIRT`` bitmap, the changed pages) is written to
           ``<hive>.LOG1`` and fsynced (with its directory if created) --
           old format rather than HvLE because it needs no Marvin32 hash,
           which costs ~1 s per 4 MB in pure Python; a torn log cannot be
           used because the primary is only marked dirty once it is durable;
        2. the primary base block is rewritten *dirty* (sequence numbers
           new/old) and fsynced;
        3. the changed pages are written in place and fsynced;
        4. the base block is rewritten clean (both sequence numbers new,
           new bins size, checksum) and fsynced; the log is then truncated
           (or removed if we created it).

        A crash before 2 leaves the old clean hive (logs are only consulted
        for a dirty primary); a crash after 2 leaves a dirty primary whose
        complete, durable log recovers the new hive (``Hive.open`` replays
        it, as Windows does); after 4 the new hive is clean.  Returns False (nothing
        written) when the file is not the clean hive we opened, so that the
        caller falls back to the full temp-file + rename write.
        """
        try:
            fd = os.open(target, os.O_RDWR)
        except OSError:
            return False
        try:
            _flock(fd, fcntl.LOCK_EX if fcntl else 0)
            head = os.pread(fd, BASE_BLOCK_SIZE, 0)
            try:
                disk = BaseBlock(head)
            except RegfError:
                return False
            if (len(head) < BASE_BLOCK_SIZE or disk.seq1 != disk.seq2 or not disk.checksum_ok
                    or disk.seq2 != old_seq or disk.bins_size != self._opened_bins
                    or os.fstat(fd).st_size < BASE_BLOCK_SIZE + disk.bins_size):
                return False
            runs = self._dirty_runs(disk.bins_size)
            b = self.base
            new_seq = b.seq1
            # -- 1. write-ahead log
            logs = _logs.find_logs(target)
            dirn = os.path.dirname(os.path.abspath(target))
            log1 = None
            want = os.path.basename(target).upper() + ".LOG1"
            try:
                names = os.listdir(dirn)
            except OSError:
                names = []
            for nm in names:
                if nm.upper() == want:
                    log1 = os.path.join(dirn, nm)
            created = log1 is None
            if created:
                log1 = target + ".LOG1"
            for lp in logs:
                if lp != log1:
                    with open(lp, "r+b") as f:
                        f.truncate(0)
                        os.fsync(f.fileno())
            lb = BaseBlock(b.raw)
            lb.seq1 = lb.seq2 = new_seq
            lb.file_type = 1
            lb.bins_size = len(self._d)
            lraw = lb.pack()[:512]
            log = _logs.build_old_log(lraw, self._d, runs)
            lfd = os.open(log1, os.O_RDWR | os.O_CREAT, 0o644 if created else 0o666)
            try:
                os.ftruncate(lfd, 0)
                os.pwrite(lfd, log, 0)
                os.fsync(lfd)
            finally:
                os.close(lfd)
            if created:
                fsync_dir(dirn)
            # -- 2. primary dirty
            dirty = BaseBlock(disk.raw)
            dirty.seq1 = new_seq
            dirty.seq2 = old_seq
            os.pwrite(fd, dirty.pack(), 0)
            os.fsync(fd)
            # -- 3. pages in place
            mv = memoryview(self._d)
            try:
                for a, n in runs:
                    os.pwrite(fd, mv[a:a + n], BASE_BLOCK_SIZE + a)
            finally:
                mv.release()
            os.fsync(fd)
            # -- 4. primary clean, log neutralised
            os.pwrite(fd, b.pack(), 0)
            os.fsync(fd)
        except OSError as e:
            raise RegfError("cannot write %s: %s" % (target, e.strerror)) from None
        finally:
            os.close(fd)
        try:
            if created:
                os.unlink(log1)
            else:
                with open(log1, "r+b") as f:
                    f.truncate(0)
        except OSError:
            pass
        return True


def _read_bins(fd: int, n: int) -> bytearray:
    """The *n* bytes after the base block, read through a sliding 8 MiB
    read-only mapping appended to a bytearray: no zero-fill of a 100+ MB
    buffer first (``bytearray(n)`` + ``readinto`` touch every page twice),
    and at most one window of the file is mapped (resident) at a time."""
    try:
        return _read_bins_mapped(fd, n)
    except (OSError, ValueError):         # a file system without mmap
        data = bytearray(n)
        got = os.preadv(fd, [data], BASE_BLOCK_SIZE) if n else 0
        del data[got:]
        return data


def _read_bins_mapped(fd: int, n: int) -> bytearray:
    data = bytearray()
    win = 1 << 23
    pos = 0
    while pos < n:
        ln = min(win, n - pos)
        off = BASE_BLOCK_SIZE + pos
        base = off - off % mmap.ALLOCATIONGRANULARITY
        mm = mmap.mmap(fd, ln + off - base, access=mmap.ACCESS_READ, offset=base)
        try:
            mv = memoryview(mm)
            try:
                data += mv[off - base:]
            finally:
                mv.release()
        finally:
            mm.close()
        pos += ln
    return data


def _flock(fd: int, op: int) -> None:
    """Advisory lock (released when *fd* is closed); a no-op where flock is
    unavailable or unsupported by the file system."""
    if fcntl is None or not op:
        return
    try:
        fcntl.flock(fd, op)
    except OSError:
        pass


