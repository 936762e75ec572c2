"""The Hive facade: opening (file or memory), reading, editing, committing.

Memory: the hive bins data is held in one ``bytearray`` (:mod:`.cells`;
read through a sliding 8 MiB mapping, so a 120 MB hive costs ~120 MB of
RSS and no zero-fill); cells are read and edited in place.  Nothing is
parsed at open beyond the base block and the root key.  Allocation is lazy
and bounded (:mod:`.alloc`); per-key name indexes (values and subkeys, built
on first lookup and maintained by the edits) make ``set_value`` /
``create_key`` O(1) instead of a scan of the key's list, and value lists
grow with spare entries (:mod:`.valuecells`), so building or editing a
500,000-value hive is linear.

Storage: :meth:`Hive.open` reads a hive file (replaying its ``.LOG1`` /
``.LOG2`` when dirty); :meth:`Hive.commit` writes it back crash-safely
through a write-ahead log (:mod:`.commit`).  :meth:`Hive.from_bytes` holds a
hive in memory (e.g. one inside a WIM image, whose overlay gives crash
safety) and :meth:`Hive.to_bytes` gives it back as a clean file image.

``with Hive.open(p, write=True) as h:`` commits on a clean exit and discards
everything if an exception escapes.  An edit either completes or leaves the
handle unusable: errors found before anything changed (missing key, bad
name, bad type) leave the hive as it was; an error once the edit started
changing cells (:attr:`Hive._changing`) marks the handle broken, so a
half-applied edit can never be committed.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Sequence

from wimfs.format.xmlinfo import filetime_now

from . import alloc as _alloc
from . import commit as _commit
from . import lists
from . import logs as _logs
from .cells import Cells
from .edits import CellEditor
from .errors import (LOWLEVEL_ERRORS, KeyNotFoundError, RegfCorruptError, RegfDirtyError,
                     RegfError, RegfNotFoundError, RegfStateError, RegfUnsupportedError,
                     ValueNotFoundError, corrupt, guard)
from .format import (BASE_BLOCK_SIZE, CELL_ALIGN, CELL_SIZE_FIELD, HBIN, HBIN_ALIGN,
                     HBIN_HEADER_SIZE, I32, KEY_COMP_NAME, KEY_HIVE_ENTRY, KEY_NO_DELETE,
                     MAX_NAME_BYTES, NIL, NK, NK_SECURITY, SK, SK_DESC, BaseBlock,
                     default_security_descriptor, encode_name)
from .keys import Key, Value, split_path
from .names import NameIndex
from .valuecells import ValueCells
from .values import encode_value

__all__ = ["Hive", "Key", "Value", "split_path"]

_MAX_DEPTH = 512        # key nesting bound for walks (Windows allows 512 levels)
_SCAN_BUDGET = _alloc.SCAN_BUDGET       # (read here by the tests)
_SEQ_MASK = 0xFFFFFFFF


def _edit(fn):
    """Wrapper of editing methods: checks the handle is writable and
    converts low-level errors like :func:`~.errors.guard`; the method puts
    its changes inside :attr:`Hive._changing`."""
    @functools.wraps(fn)
    def wrapper(self: Hive, *a, **kw):
        self._check_writable()
        try:
            return fn(self, *a, **kw)
        except RegfError:
            raise
        except LOWLEVEL_ERRORS as e:
            raise corrupt(e) from None
    return wrapper


class _Changing:
    """The context manager :attr:`Hive._changing` (one per hive, reused: it
    runs for every edit, and a generator-based one would cost more than the
    edit's bookkeeping)."""

    __slots__ = ("hive",)

    def __init__(self, hive: Hive):
        self.hive = hive

    def __enter__(self) -> None:
        pass

    def __exit__(self, et, ev, tb) -> bool:
        if et is not None:
            self.hive._broken = True
        elif self.hive.cells.dirty:
            self.hive._modified = True
        return False


def _check_name(name: str) -> None:
    """RegfStateError unless *name* is a valid new key name."""
    if not name or len(encode_name(name)[0]) > MAX_NAME_BYTES or "\\" in name:
        raise RegfStateError(f"invalid key name {name!r}")


class Hive:
    """A registry hive.  Use :meth:`open`, :meth:`from_bytes` or :meth:`create`."""

    #: set by the test-suite: after every commit, re-read the file and check
    #: it equals the in-memory hive (guards the in-place page diff)
    _VERIFY_COMMIT = False

    def __init__(self, path: str | None, base: BaseBlock, data: bytearray, *,
                 writable: bool, dirty: bool = False, replayed: bool = False,
                 new: bool = False):
        self.path = path
        self.base = base
        self.writable = writable
        self.dirty = dirty              # dirty and NOT recovered (read-only open)
        self.replayed_logs = replayed   # logs were applied at open
        self.cells = Cells(data)
        self._alloc = _alloc.Allocator(self.cells)
        self._value_cells = ValueCells(self.cells, self._alloc, base.minor)
        self._root = base.root
        self._broken = False
        self._modified = new or replayed
        self._closed = False
        self._discarded = False         # an exception left the ``with`` block
        #: ``with self._changing:`` -- scope of an edit's changes: an exception
        #: inside it may leave a half-applied edit, so the handle becomes unusable
        self._changing = _Changing(self)
        self._names = NameIndex(self.cells)
        self._editor = CellEditor(self.cells, self._alloc, self._value_cells, self._names,
                                  lists.leaf_for(base.minor))
        #: bins size of the clean file at self.path that holds this hive, else None
        self._clean_bins: int | None = None
        if len(data) < HBIN_HEADER_SIZE or data[:4] != b"hbin":
            raise RegfCorruptError("no hive bin at the start of the hive bins data")
        if not 0 <= self._root < len(data):
            raise RegfCorruptError(f"root cell offset {self._root:#x} outside the hive bins")
        self.cells.nk(self._root)

    @property
    def _d(self) -> bytearray:
        """The hive bins data."""
        return self.cells.data

    @property
    def _scanned(self) -> set[int]:
        """Bins whose free cells the allocator indexed."""
        return self._alloc.scanned

    # ---- construction
    @classmethod
    def open(cls, path: str | os.PathLike, write: bool = False, *, replay_logs: bool = True,
             ignore_dirty: bool = False) -> Hive:
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
            raise RegfNotFoundError(f"hive file not found: {path}") from None
        except OSError as e:
            raise RegfError(f"cannot open {path}: {e.strerror}") from None
        with f:
            # shared lock while reading: an in-place commit by another Hive
            # holds the exclusive lock, so we never read half of one
            _commit.flock(f.fileno(), exclusive=False)
            head = f.read(BASE_BLOCK_SIZE)
            base = BaseBlock(head)
            if len(head) < BASE_BLOCK_SIZE:
                raise RegfCorruptError(f"truncated hive: {len(head)} bytes")
            cls._check_base(base)
            size = os.fstat(f.fileno()).st_size - BASE_BLOCK_SIZE
            data = _commit.read_bins(f.fileno(), min(base.bins_size, size))
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

    def share_name_indexes(self, shared: tuple[dict, dict]) -> None:
        """Share the name indexes of unchanged keys with other hives opened from the
        same bytes (``shared`` starts as two empty dicts); call before any lookup."""
        self._names.share(shared)

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
        if path is not None and not replayed:
            h._clean_bins = clean_bins
        return h

    @classmethod
    def create(cls, path: str | os.PathLike | None, *, minor: int = 5, name: str = "") -> Hive:
        """A new empty hive (root key and one security cell), open for
        writing; nothing is written until :meth:`commit` (never, for a hive
        without *path*: see :meth:`to_bytes`)."""
        d = bytearray(HBIN_ALIGN)
        HBIN.pack_into(d, 0, b"hbin", 0, HBIN_ALIGN, bytes(8), 0, 0)
        root, root_name = HBIN_HEADER_SIZE, b"ROOT"
        cell = NK.pack(b"nk", KEY_HIVE_ENTRY | KEY_NO_DELETE | KEY_COMP_NAME, filetime_now(), 0,
                       0, 0, 0, NIL, NIL, 0, NIL, NIL, NIL, 0, 0, 0, 0, 0, len(root_name),
                       0) + root_name
        size = (len(cell) + CELL_SIZE_FIELD + CELL_ALIGN - 1) & ~(CELL_ALIGN - 1)
        I32.pack_into(d, root, -size)
        d[root + CELL_SIZE_FIELD: root + CELL_SIZE_FIELD + len(cell)] = cell
        I32.pack_into(d, root + size, HBIN_ALIGN - HBIN_HEADER_SIZE - size)
        base = BaseBlock.new(root, HBIN_ALIGN, minor=minor, name=name)
        h = cls(os.fspath(path) if path is not None else None, base, d, writable=True, new=True)
        desc = default_security_descriptor()
        sk = h._alloc.alloc(SK_DESC + len(desc))
        h.cells.put(sk, SK.pack(b"sk", 0, sk, sk, 1, len(desc)) + desc)
        h.cells.put_u32(root + NK_SECURITY, sk)
        return h

    # ---- context manager / lifecycle
    def __enter__(self) -> Hive:
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
        return bool(self.cells.dirty)

    def close(self) -> None:
        """Drop the handle without writing."""
        self._closed = True

    def _check_writable(self) -> None:
        if self._closed:
            raise RegfStateError("hive is closed")
        if not self.writable:
            raise RegfStateError("hive is open read-only")
        if self._broken:
            raise RegfStateError("an earlier edit failed; the hive handle is unusable")

    # ---- public reading API
    @property
    def root(self) -> Key:
        return Key(self, self._root)

    @property
    def minor_version(self) -> int:
        return self.base.minor

    @guard
    def key(self, path: str = "") -> Key:
        """The key at *path* (backslash-separated, case-insensitive, relative
        to the root; ``""`` is the root)."""
        return self.root.open(path)

    def has_key(self, path: str) -> bool:
        try:
            self.key(path)
            return True
        except KeyNotFoundError:
            return False

    @guard
    def walk(self, start: str = "") -> Iterator[tuple[str, Key]]:
        """Yield (path, Key) depth-first in stored order; paths relative to
        the root, components joined by backslash.  Detects cycles."""
        seen = set()
        stack = [(split_path(start), self.key(start))]
        while stack:
            parts, k = stack.pop()
            if k.offset in seen:
                raise RegfCorruptError(f"loop in the key tree at cell {k.offset:#x}")
            seen.add(k.offset)
            if len(parts) > _MAX_DEPTH:
                raise RegfCorruptError(f"key tree deeper than {_MAX_DEPTH} levels")
            yield "\\".join(parts), k
            for sk in reversed(k.subkeys()):
                stack.append((parts + [sk.name], sk))

    @guard
    def dump(self, start: str = "") -> dict[str, dict[str, tuple[int, bytes]]]:
        """{key path: {value name: (type, raw data)}} of the whole tree."""
        return {path: {v.name: (v.type, v.raw) for v in k.values()}
                for path, k in self.walk(start)}

    # ---- name lookups (cached per key)
    def _subkey_entries(self, nk: int) -> tuple[type[lists.Leaf] | None, list[lists.Entry]]:
        return lists.read(self.cells, nk)

    def _sub_entries(self, nk: int) -> tuple[str | None, list[lists.Entry]]:
        """(leaf signature as text, entries) of the subkey list of *nk*
        (for inspection: tests check the hashes Windows wrote)."""
        kind, ents = lists.read(self.cells, nk)
        return (kind.kind if kind else None), ents

    def _nk_name(self, off: int) -> str:
        return self.cells.nk_name(off)

    def _find_subkey(self, nk: int, name: str) -> int | None:
        return self._names.subkey(nk, name)

    def _find_value(self, nk: int, name: str) -> int | None:
        return self._names.value(nk, name)

    # ---- public editing API
    def create_key(self, path: str, class_name: str | None = None) -> Key:
        """Create key *path* and any missing parents; returns the key (the
        existing one if it exists)."""
        return self._create_key_at(self.root, path, class_name)

    def delete_key(self, path: str) -> None:
        """Delete key *path* with all its subkeys and values."""
        self._delete_key_at(self.root, path)

    @_edit
    def _create_key_at(self, start: Key, path: str, class_name: str | None = None) -> Key:
        parts = split_path(path)
        for part in parts:
            _check_name(part)
        cur = start.offset
        for i, part in enumerate(parts):
            o = self._find_subkey(cur, part)
            if o is None:
                with self._changing:
                    for j in range(i, len(parts)):
                        last = j == len(parts) - 1
                        cur = self._editor.new_key(cur, parts[j], class_name if last else None)
                break
            cur = o
        return Key(self, cur)

    @_edit
    def _delete_key_at(self, start: Key, path: str) -> None:
        parts = split_path(path)
        if not parts:
            raise RegfStateError("cannot delete the root key")
        parent = start.open("\\".join(parts[:-1]))
        target = parent.subkey(parts[-1])
        with self._changing:
            self._editor.delete_key(parent.offset, target.offset)

    @_edit
    def rename_key(self, path: str, new_name: str) -> Key:
        """Rename the last component of *path*; returns the renamed Key."""
        parts = split_path(path)
        if not parts:
            raise RegfStateError("cannot rename the root key")
        parent = self.key("\\".join(parts[:-1]))
        old = parent.subkey(parts[-1])
        other = self._find_subkey(parent.offset, new_name)
        if other is not None and other != old.offset:
            raise RegfStateError(f"key {new_name!r} already exists")
        _check_name(new_name)
        with self._changing:
            return Key(self, self._editor.rename_key(parent.offset, old.offset, new_name))

    @_edit
    def _set_value_at(self, key: Key, name: str, vtype: int, data) -> Value:
        if not isinstance(vtype, int) or not 0 <= vtype <= 0xFFFFFFFF:
            raise RegfStateError(f"bad value type {vtype!r}")
        try:
            raw = encode_value(vtype, data)
        except TypeError as e:
            raise RegfStateError(str(e)) from None
        with self._changing:
            return Value(self, self._editor.set_value(key.offset, name, vtype, raw))

    @_edit
    def _delete_value_at(self, key: Key, name: str) -> None:
        o = self._find_value(key.offset, name)
        if o is None:
            raise ValueNotFoundError(f"no value {name!r} in key {key.name!r}")
        with self._changing:
            self._editor.delete_value(key.offset, o)

    # ---- storage
    def to_bytes(self) -> bytes:
        """The whole hive as a clean, valid file image: sequence numbers
        equal (incremented when the hive was edited or recovered), checksum
        and hive bins size right, file type primary.  Nothing is written;
        an unchanged clean hive comes back byte for byte."""
        if self._discarded or self._broken:
            raise RegfStateError("the hive was discarded after a failed edit")
        b = BaseBlock(self.base.raw)
        if self._modified or self.dirty:
            b.seq1 = b.seq2 = (max(b.seq1, b.seq2) + 1) & _SEQ_MASK
            b.timestamp = filetime_now()
        b.bins_size = len(self.cells.data)
        b.root = self._root
        b.file_type = 0
        return b.pack() + bytes(self.cells.data)

    def commit(self, path: str | os.PathLike | None = None) -> None:
        """Write the hive crash-safely and neutralise stale transaction logs.

        Committing back to the clean file it was read from patches only the
        changed pages, through a write-ahead transaction log; anything else
        (a new hive, another target, a hive recovered from its logs) is
        written whole to a temporary file renamed over the target (see
        :mod:`.commit`).
        """
        self._check_writable()
        target = os.fspath(path) if path is not None else self.path
        if target is None:
            raise RegfStateError("no path to commit to")
        if not self._modified and target == self.path:
            return
        data = self.cells.data
        b = self.base
        old_seq = b.seq2
        b.seq1 = b.seq2 = (max(b.seq1, b.seq2) + 1) & _SEQ_MASK
        b.timestamp = filetime_now()
        b.bins_size = len(data)
        b.root = self._root
        clean = self._clean_bins
        if not (target == self.path and clean is not None and not self.replayed_logs
                and len(data) >= clean and _commit.commit_in_place(
                    target, b, data, self.cells.dirty, clean, old_seq)):
            _commit.write_full(target, b.pack(), data)
        if self._VERIFY_COMMIT:
            with open(target, "rb") as f:
                got = f.read(BASE_BLOCK_SIZE + len(data))
            if got != bytes(b.raw) + bytes(data):
                raise AssertionError("committed file differs from the in-memory hive")
        self._modified = False
        self.dirty = False
        self.path = target
        self._clean_bins = len(data)
        self.cells.dirty.clear()
