"""Windows Installer files: packages (.msi), patches (.msp) and the transforms inside
patches, read from bytes (no Target, no registry).

A Windows Installer file is an OLE compound file (read with ``olefile``) holding:

* ``\\005SummaryInformation``: an OLE property set. Packages: PID 7 Template
  (``platform;langid``), PID 9 Revision Number (the package code). Patches: PID 7 = the
  ``;``-separated target product codes, PID 8 = the transform substorages in application
  order (``:name;:#name``), PID 9 = the patch code followed by the codes it obsoletes.
  Transforms: PID 7 = target ``platform;langid``, PID 9 =
  ``{fromPC}fromVersion;{toPC}toVersion;{UpgradeCode}``, PID 16 (PID_CHARCOUNT) = the
  validation flags (high word) and the error-condition flags (low word), see
  :data:`VALIDATION_WORD`.
* tables, stored column by column in streams whose names are packed in a base-64 code
  (:func:`decode_stream_name`), with their strings in ``_StringPool``/``_StringData``
  (:class:`Database`).

Every damaged input (truncated or cyclic compound file, broken string pool, oversized
stream, a GUID of the wrong shape) is a :class:`MsiError` naming the file.
"""

from __future__ import annotations

import io
import logging
import re
import struct
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag

from wimfs.errors import EXIT_BAD_IMAGE, WimfsError

ERROR_INSTALL_PACKAGE_INVALID = 1620
ERROR_PATCH_PACKAGE_INVALID = 1636

GUID_RE = re.compile(r"\{[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
                     r"[0-9A-Fa-f]{12}\}")
SUMMARY = "\x05SummaryInformation"
MAX_STRINGS = 1 << 22          # string-pool entries we accept (4 M; real pools: thousands)


class MsiError(WimfsError):
    """A Windows Installer file that cannot be read; the message names the file."""

    exit_code = EXIT_BAD_IMAGE
    hresult = None
    win32 = ERROR_INSTALL_PACKAGE_INVALID


class PatchError(MsiError):
    """A patch (.msp) whose summary information is not that of a patch."""

    win32 = ERROR_PATCH_PACKAGE_INVALID


class PID(IntEnum):
    """Summary-information property ids (Windows Installer's use of the OLE ones)."""

    CODEPAGE = 1
    TITLE = 2
    SUBJECT = 3
    AUTHOR = 4
    KEYWORDS = 5
    COMMENTS = 6
    TEMPLATE = 7
    LAST_SAVED_BY = 8
    REVISION = 9
    CREATED = 12
    LAST_SAVED = 13
    PAGE_COUNT = 14
    WORD_COUNT = 15
    CHAR_COUNT = 16
    APPNAME = 18
    SECURITY = 19


class Validate(IntFlag):
    """MSITRANSFORM_VALIDATE_*: what a transform checks about the installed product."""

    LANGUAGE = 0x0001
    PRODUCT = 0x0002
    PLATFORM = 0x0004
    MAJORVERSION = 0x0008
    MINORVERSION = 0x0010
    UPDATEVERSION = 0x0020
    NEWLESSBASEVERSION = 0x0040
    NEWLESSEQUALBASEVERSION = 0x0080
    NEWEQUALBASEVERSION = 0x0100
    NEWGREATEREQUALBASEVERSION = 0x0200
    NEWGREATERBASEVERSION = 0x0400
    UPGRADECODE = 0x0800


#: Which 16-bit half of a transform's PID 16 holds the validation flags. Microsoft's
#: documentation ("Character Count Summary") says the high word; Wine's msi masks the low
#: word. Every transform of the real patches in the corpus (WiX-built, 4 patches, 10
#: transforms) has 0x0922001F or 0x0920001F. The low word 0x001F is exactly the five
#: "ignore" error conditions (add existing row ... update missing row) that patch
#: transforms set; the high word is PRODUCT (on the GDR/LDR transforms, not on the
#: baseline one) + UPDATEVERSION + NEWEQUALBASEVERSION + UPGRADECODE, a coherent "same
#: product, same upgrade code, version equal to the base on major.minor.update". Read the
#: other way round the error flags would hold 0x0800 (undefined) and VIEWTRANSFORM, and
#: every transform would validate language, platform and version with no comparison.
#: So the high word it is (Microsoft's documentation).
VALIDATION_WORD = "high"


def validation_flags(char_count: int) -> tuple[int, int]:
    """(validation flags, error-condition flags) of a transform's PID 16."""
    value = char_count & 0xFFFFFFFF
    if VALIDATION_WORD == "high":
        return value >> 16, value & 0xFFFF
    return value & 0xFFFF, value >> 16


def normal_guid(text: str, what: str = "GUID") -> str:
    """``{...}`` in upper case; ValueError for anything else (the message says why)."""
    s = text.strip()
    if not GUID_RE.fullmatch(s):
        shown = s if len(s) <= 60 else s[:57] + "..."
        raise ValueError(f"{what} {shown!r} is not a GUID of the form "
                         "{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}")
    return s.upper()


# -- stream names -------------------------------------------------------------------------

_MIME = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz._"


def decode_stream_name(name: str) -> str:
    """The name of a stream as Windows Installer sees it: characters 0x3800-0x47FF hold
    two base-64 characters, 0x4800-0x483F one, 0x4840 marks a table (``!`` here)."""
    out = []
    for ch in name:
        c = ord(ch)
        if 0x3800 <= c < 0x4800:
            c -= 0x3800
            out.append(_MIME[c & 0x3F] + _MIME[c >> 6])
        elif 0x4800 <= c < 0x4840:
            out.append(_MIME[c - 0x4800])
        elif c == 0x4840:
            out.append("!")
        else:
            out.append(ch)
    return "".join(out)


# -- the compound file --------------------------------------------------------------------

@dataclass(frozen=True)
class SummaryInfo:
    """A summary-information property set: PID -> value (strings decoded)."""

    values: dict[int, object] = field(default_factory=dict)

    def text(self, pid: int) -> str:
        v = self.values.get(pid)
        return v if isinstance(v, str) else ""

    def number(self, pid: int) -> int | None:
        v = self.values.get(pid)
        return v if isinstance(v, int) else None


class CompoundFile:
    """A compound file in memory; streams are size-checked before they are read, so a
    cyclic sector chain or a claimed size beyond the file cannot make us loop or
    allocate more than the file holds."""

    def __init__(self, data: bytes, name: str) -> None:
        import olefile

        self.name = name
        self.size = len(data)
        try:
            self.ole = olefile.OleFileIO(io.BytesIO(data), raise_defects=olefile.DEFECT_INCORRECT)
            self._paths = {tuple(p) for p in self.ole.listdir(streams=True, storages=True)}
            _check_chains(self.ole, name)
        except MsiError:
            raise
        except RecursionError:
            raise MsiError(f"{name}: damaged compound file (cyclic directory)") from None
        except Exception as exc:          # noqa: BLE001 - olefile raises many kinds
            raise MsiError(f"{name}: not a readable compound file ({_why(exc)})") from None
        self.clsid = (self.ole.root.clsid or "").upper()

    def storages(self, under: tuple[str, ...] = ()) -> list[str]:
        n = len(under)
        return sorted(p[n] for p in self._paths if len(p) == n + 1 and p[:n] == under
                      and self.ole.get_type(list(p)) == 1)

    def streams(self, under: tuple[str, ...] = ()) -> list[str]:
        n = len(under)
        return sorted(p[n] for p in self._paths if len(p) == n + 1 and p[:n] == under
                      and self.ole.get_type(list(p)) == 2)

    def has(self, path: tuple[str, ...]) -> bool:
        return path in self._paths

    def read(self, path: tuple[str, ...]) -> bytes:
        shown = "/".join(decode_stream_name(p) for p in path).replace("\x05", "\\005")
        if path not in self._paths:
            raise MsiError(f"{self.name}: no stream {shown}")
        size = self.ole.get_size(list(path))
        if size > self.size:
            raise MsiError(f"{self.name}: stream {shown} claims {size} bytes, more than the "
                           f"file's {self.size}")
        try:
            data = self.ole.openstream(list(path)).read()
        except Exception as exc:          # noqa: BLE001
            raise MsiError(f"{self.name}: damaged stream {shown} ({_why(exc)})") from None
        if len(data) != size:
            raise MsiError(f"{self.name}: stream {shown} is truncated")
        return data

    def summary(self, under: tuple[str, ...] = ()) -> SummaryInfo:
        path = under + (SUMMARY,)
        self.read(path)                   # size and chain checks first
        try:
            raw = self.ole.getproperties(list(path), convert_time=False)
        except Exception as exc:          # noqa: BLE001
            raise MsiError(f"{self.name}: damaged summary information ({_why(exc)})") from None
        codepage = raw.get(PID.CODEPAGE)
        encoding = _encoding(codepage if isinstance(codepage, int) else 1252)
        values: dict[int, object] = {}
        for pid, v in raw.items():
            if isinstance(v, bytes):
                v = v.split(b"\0", 1)[0].decode(encoding, "replace")
            values[pid] = v
        return SummaryInfo(values)


_END = 0xFFFFFFFE           # ENDOFCHAIN
_MAXREG = 0xFFFFFFFA        # the last regular sector number


def _walk(table, start: int, count: int, used: set[int], what: str, name: str) -> None:
    """Follow the first *count* sectors of a chain; a chain that loops, leaves the
    table, ends early or shares a sector with another chain is damage (a chain longer
    than its stream is tolerated, as readers of the format do)."""
    s = start
    for _ in range(count):
        if s > _MAXREG or s >= len(table):
            raise MsiError(f"{name}: damaged compound file ({what}: chain ends after a "
                           "sector it needs, or points outside the file)")
        if s in used:
            raise MsiError(f"{name}: damaged compound file ({what}: cyclic or shared "
                           "sector chain)")
        used.add(s)
        s = table[s]


def _check_chains(ole, name: str) -> None:
    """Every sector chain of the file (directory, MiniFAT, mini stream, each stream) once
    over, in time linear in the file: no loops, no sector in two chains."""
    ss, mss = ole.sector_size, ole.mini_sector_size
    fat, used = ole.fat, set()
    s = ole.first_dir_sector
    while s <= _MAXREG and s < len(fat) and s not in used:    # the directory has no size
        used.add(s)
        s = fat[s]
    if s != _END:
        raise MsiError(f"{name}: damaged compound file (directory: cyclic or broken chain)")
    if ole.num_mini_fat_sectors:
        _walk(fat, ole.first_mini_fat_sector, ole.num_mini_fat_sectors, used, "MiniFAT", name)
    root = ole.root
    _walk(fat, root.isectStart, -(-root.size // ss), used, "mini stream", name)
    entries = [e for e in ole.direntries if e is not None and e.entry_type == 2]
    small = [e for e in entries if e.size < ole.minisectorcutoff]
    for e in entries:
        if e.size >= ole.minisectorcutoff:
            _walk(fat, e.isectStart, -(-e.size // ss), used, f"stream {e.name!r}", name)
    if small and root.size:
        if ole.minifat is None:
            ole.loadminifat()
        mused: set[int] = set()
        for e in small:
            if e.size:
                _walk(ole.minifat, e.isectStart, -(-e.size // mss), mused,
                      f"stream {e.name!r}", name)


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:120] if text and text[0] else type(exc).__name__


def _encoding(codepage: int) -> str:
    cp = codepage & 0xFFFF
    if cp in (0, 1200, 0xFFFF):
        return "cp1252"
    if cp == 65001:
        return "utf-8"
    try:
        import codecs
        return codecs.lookup(f"cp{cp}").name
    except LookupError:
        return "cp1252"


logging.getLogger("olefile").setLevel(logging.ERROR)


# -- tables -------------------------------------------------------------------------------

TYPE_STRING = 0x0800
TYPE_VALID = 0x0100
TYPE_NULLABLE = 0x1000
TYPE_KEY = 0x2000


@dataclass(frozen=True)
class Column:
    name: str
    type: int

    @property
    def is_string(self) -> bool:
        return bool(self.type & TYPE_STRING)

    @property
    def is_binary(self) -> bool:
        """A stream column: its cell holds no string; the stream is ``Table.Key1.Key2``."""
        return self.type & ~TYPE_NULLABLE & ~TYPE_KEY == TYPE_STRING | TYPE_VALID

    @property
    def is_key(self) -> bool:
        return bool(self.type & TYPE_KEY)


class Database:
    """The tables of a package, patch or transform storage: string pool, ``_Tables``,
    ``_Columns``, and any table's rows (column-wise streams)."""

    def __init__(self, cf: CompoundFile, under: tuple[str, ...] = ()) -> None:
        self.cf = cf
        self.under = under
        self._names = {decode_stream_name(s): s for s in cf.streams(under)}
        self.strings, self.long_refs, self.codepage = self._string_pool()

    def _stream(self, name: str) -> bytes | None:
        raw = self._names.get(name)
        return None if raw is None else self.cf.read(self.under + (raw,))

    def _string_pool(self) -> tuple[list[str | None], bool, int]:
        pool = self._stream("!_StringPool")
        data = self._stream("!_StringData")
        if pool is None or data is None:
            raise MsiError(f"{self.cf.name}: no string pool (not a Windows Installer "
                           "database)")
        if len(pool) < 4:
            return [None], False, 1252
        lo, hi = struct.unpack_from("<HH", pool)
        long_refs = bool(hi & 0x8000)
        codepage = lo | (hi & 0x7FFF) << 16
        enc = _encoding(codepage)
        words = struct.unpack_from(f"<{(len(pool) - 4) // 2 & ~1}H", pool, 4)
        if len(words) // 2 > MAX_STRINGS:
            raise MsiError(f"{self.cf.name}: string pool of {len(words) // 2} entries")
        strings: list[str | None] = [None]
        i, offset = 0, 0
        while i < len(words):
            length, refs = words[i], words[i + 1]
            if length == 0 and refs == 0:
                strings.append(None)
                i += 2
                continue
            if length == 0:               # a string over 64 KiB: the next entry has its size
                if i + 3 >= len(words):
                    break
                length = words[i + 2] | words[i + 3] << 16
                i += 4
            else:
                i += 2
            if offset + length > len(data):
                raise MsiError(f"{self.cf.name}: damaged string pool (string "
                               f"{len(strings)} runs past _StringData)")
            strings.append(data[offset:offset + length].decode(enc, "replace"))
            offset += length
        return strings, long_refs, codepage

    def string(self, ref: int) -> str | None:
        if ref == 0:
            return None
        if ref >= len(self.strings):
            raise MsiError(f"{self.cf.name}: string reference {ref} outside the pool")
        return self.strings[ref]

    def tables(self) -> list[str]:
        data = self._stream("!_Tables") or b""
        width = 3 if self.long_refs else 2
        return [self.string(_ref(data, i * width, width)) or ""
                for i in range(len(data) // width)]

    def columns(self, table: str) -> list[Column]:
        data = self._stream("!_Columns") or b""
        sw = 3 if self.long_refs else 2
        rows = _columns(data, [sw, 2, sw, 2], self.cf.name)
        cols = []
        for t, num, name, typ in rows:
            if self.string(t) == table:
                cols.append((num - 0x8000, Column(self.string(name) or "", typ - 0x8000)))
        return [c for _, c in sorted(cols, key=lambda x: x[0])]

    def rows(self, table: str) -> list[dict[str, object]]:
        """The rows of *table* as dicts (missing table: no rows); integers are ints,
        strings str, NULL None, a stream column the stream's name (``Table.Key``)."""
        cols = self.columns(table)
        data = self._stream("!" + table)
        if not cols or data is None:
            return []
        sw = 3 if self.long_refs else 2
        widths = [sw if c.is_string else (4 if (c.type & 0xFF) == 4 else 2) for c in cols]
        out = []
        for raw in _columns(data, widths, self.cf.name):
            row: dict[str, object] = {}
            for c, w, v in zip(cols, widths, raw):
                if c.is_string:
                    row[c.name] = self.string(v)
                else:
                    row[c.name] = None if v == 0 else v - (0x80000000 if w == 4 else 0x8000)
            for c in cols:
                if c.is_binary:
                    keys = [str(row[k.name]) for k in cols if k.is_key and not k.is_binary]
                    row[c.name] = ".".join([table] + keys)
            out.append(row)
        return out


def _ref(data: bytes, at: int, width: int) -> int:
    return int.from_bytes(data[at:at + width], "little")


def _columns(data: bytes, widths: list[int], name: str) -> list[tuple[int, ...]]:
    """Column-wise table data -> rows of raw integers."""
    row_size = sum(widths)
    if row_size == 0 or len(data) % row_size:
        raise MsiError(f"{name}: damaged table ({len(data)} bytes is no whole number of "
                       f"{row_size}-byte rows)")
    n = len(data) // row_size
    cols, at = [], 0
    for w in widths:
        cols.append([_ref(data, at + i * w, w) for i in range(n)])
        at += n * w
    return list(zip(*cols))
