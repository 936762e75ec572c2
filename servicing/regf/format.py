"""On-disk structures of the Windows registry file format (regf).

References are to M. Suhanov, "Windows registry file format specification"
(github.com/msuhanov/regf, "Windows registry file format specification.md"),
abbreviated *[regf]* with its section names.  Layout summary, all integers
little-endian:

* Base block ([regf] "Base block"), 4096 bytes at file offset 0: ``regf``,
  primary/secondary sequence numbers, FILETIME, major/minor version, file type,
  file format, root cell offset, hive bins data size, clustering factor, file
  name (UTF-16LE, 64 bytes) and at 508 the XOR checksum of the first 508 bytes.
* Hive bins ([regf] "Hive bin"): ``hbin`` header of 32 bytes, size a multiple
  of 4096; they follow the base block.  Cell offsets are relative to the start
  of the hive bins data (file offset 4096).
* Cells ([regf] "Cell"): int32 size (negative = allocated), 8-byte aligned.
  Cell types: ``nk`` key node, ``vk`` key value, ``sk`` key security, ``li``
  ``lf`` ``lh`` ``ri`` subkeys lists, ``db`` big data, plus raw data cells.
"""

from __future__ import annotations

import struct

from wimfs.format.upcase import upcase, upcase_char  # noqa: F401  (re-exported)

from .errors import RegfCorruptError, RegfUnsupportedError

BASE_BLOCK_SIZE = 4096
HBIN_HEADER_SIZE = 32
HBIN_ALIGN = 4096
CELL_ALIGN = 8

#: [regf] "Big data": values longer than this are stored as db records on
#: hives of minor version >= 4.
BIG_DATA_THRESHOLD = 16344
BIG_DATA_SEGMENT = 16344
#: Entries per lf/lh/li leaf before the list is split under an ri index root.
LEAF_MAX = 1012

# nk flags ([regf] "Key node" -> Flags)
KEY_VOLATILE = 0x0001
KEY_HIVE_EXIT = 0x0002
KEY_HIVE_ENTRY = 0x0004
KEY_NO_DELETE = 0x0008
KEY_SYM_LINK = 0x0010
KEY_COMP_NAME = 0x0020
# vk flags
VALUE_COMP_NAME = 0x0001
# vk data size: MSB set -> data stored in the data offset field
DATA_INLINE = 0x80000000

# Value types (winnt.h)
REG_NONE = 0
REG_SZ = 1
REG_EXPAND_SZ = 2
REG_BINARY = 3
REG_DWORD = 4
REG_DWORD_LITTLE_ENDIAN = 4
REG_DWORD_BIG_ENDIAN = 5
REG_LINK = 6
REG_MULTI_SZ = 7
REG_RESOURCE_LIST = 8
REG_FULL_RESOURCE_DESCRIPTOR = 9
REG_RESOURCE_REQUIREMENTS_LIST = 10
REG_QWORD = 11
REG_QWORD_LITTLE_ENDIAN = 11

TYPE_NAMES = {
    REG_NONE: "REG_NONE", REG_SZ: "REG_SZ", REG_EXPAND_SZ: "REG_EXPAND_SZ",
    REG_BINARY: "REG_BINARY", REG_DWORD: "REG_DWORD",
    REG_DWORD_BIG_ENDIAN: "REG_DWORD_BIG_ENDIAN", REG_LINK: "REG_LINK",
    REG_MULTI_SZ: "REG_MULTI_SZ", REG_RESOURCE_LIST: "REG_RESOURCE_LIST",
    REG_FULL_RESOURCE_DESCRIPTOR: "REG_FULL_RESOURCE_DESCRIPTOR",
    REG_RESOURCE_REQUIREMENTS_LIST: "REG_RESOURCE_REQUIREMENTS_LIST",
    REG_QWORD: "REG_QWORD",
}
TYPE_BY_NAME = {v: k for k, v in TYPE_NAMES.items()}

# Precompiled structures for the hot paths; each is checked against its
# construct declaration in servicing/regf/structs.py by
# tests/servicing/test_regf_structs.py.
#: base block fields at offset 4: sequence numbers, FILETIME, major, minor,
#: file type, file format, root cell, bins size, clustering factor
BASE_FIELDS = struct.Struct("<IIQIIIIIII")
U16 = struct.Struct("<H")
U32 = struct.Struct("<I")
I32 = struct.Struct("<i")
U64 = struct.Struct("<Q")
#: hbin header: signature, offset, size, reserved(8), timestamp, spare
HBIN = struct.Struct("<4sII8sQI")
#: nk fixed part after the cell size (76 bytes): sig, flags, lastwritten,
#: access bits, parent, subkeys, volatile subkeys, subkeys list,
#: volatile subkeys list, values, values list, security, class, max subkey
#: name len, max subkey class len, max value name len, max value data len,
#: workvar, name length, class length
NK = struct.Struct("<2sHQIIIIIIIIIIIIIIIHH")
#: vk fixed part (20 bytes): sig, name length, data size, data offset, type,
#: flags, spare
VK = struct.Struct("<2sHIIIHH")
#: the data fields of a vk at VK_DSIZE: data size, data offset, type
VK_DATA = struct.Struct("<III")
#: sk fixed part (20 bytes): sig, reserved, flink, blink, refcount, size
SK = struct.Struct("<2sHIIII")
#: list header: sig, count
LIST_HDR = struct.Struct("<2sH")
#: db: sig, segments, segment list offset
DB = struct.Struct("<2sHI")

#: the int32 size field in front of every cell's data
CELL_SIZE_FIELD = 4

# Field offsets inside an nk cell *including* the 4-byte size field.
NK_FLAGS = 4 + 2
NK_TIME = 4 + 4
NK_PARENT = 4 + 16
NK_NSUB = 4 + 20
NK_SUBLIST = 4 + 28
NK_NVAL = 4 + 36
NK_VALLIST = 4 + 40
NK_SECURITY = 4 + 44
NK_CLASS = 4 + 48
NK_MAXSUBNAME = 4 + 52
NK_MAXSUBCLASS = 4 + 56
NK_MAXVALNAME = 4 + 60
NK_MAXVALDATA = 4 + 64
NK_NAMELEN = 4 + 72
NK_CLASSLEN = 4 + 74
NK_NAME = 4 + 76
# ... inside a vk cell
VK_NAMELEN = 4 + 2
VK_DSIZE = 4 + 4
VK_DOFF = 4 + 8         # the data offset field, or the data itself when DATA_INLINE
VK_TYPE = 4 + 12
VK_FLAGS = 4 + 16
VK_NAME = 4 + 20
# ... inside an sk cell
SK_FLINK = 4 + 4
SK_BLINK = 4 + 8
SK_REFCOUNT = 4 + 12
SK_DESCLEN = 4 + 16
SK_DESC = 4 + 20
#: a hive bin header's size field
HBIN_SIZE = 8
#: longest key or value name, in bytes as stored
MAX_NAME_BYTES = 512

# Base block offsets
BASE_FILE_NAME = 48
BASE_FILE_NAME_SIZE = 64
BASE_CHECKSUM = 508
#: the part of the base block a transaction log carries (and the checksum covers)
LOG_BASE_SIZE = 512

NIL = 0xFFFFFFFF


def checksum(base: bytes | bytearray) -> int:
    """[regf] "Base block" -> Checksum: XOR of the 127 dwords before offset
    508; 0xFFFFFFFF becomes 0xFFFFFFFE and 0 becomes 1."""
    x = 0
    for (d,) in struct.iter_unpack("<I", bytes(base[:BASE_CHECKSUM])):
        x ^= d
    if x == 0xFFFFFFFF:
        return 0xFFFFFFFE
    if x == 0:
        return 1
    return x


def sort_key(name: str) -> bytes:
    """Collation key of subkey lists: upper-cased name compared as UTF-16
    code units ([regf] "Subkeys list": "sorted ... by an uppercase name")."""
    return upcase(name).encode("utf-16-be", "surrogatepass")


def lh_hash(name: str) -> int:
    """[regf] "Hash leaf" -> Name hash: h = 37*h + upcase(unit) per UTF-16
    code unit of the name, modulo 2**32."""
    h = 0
    data = upcase(name).encode("utf-16-le", "surrogatepass")
    for (u,) in struct.iter_unpack("<H", data):
        h = (h * 37 + u) & 0xFFFFFFFF
    return h


def lf_hint(name: str) -> int:
    """[regf] "Fast leaf" -> Name hint: the first 4 characters of the name
    (one byte each, 0 for non-Latin-1 characters and padding)."""
    b = bytearray(4)
    for i, c in enumerate(name[:4]):
        o = ord(c)
        b[i] = o if o < 256 else 0
    return U32.unpack(bytes(b))[0]


def encode_name(name: str) -> tuple[bytes, bool]:
    """Encode a key or value name: (bytes, compressed).  Compressed (one byte
    per character) only for ASCII names; everything else as UTF-16LE."""
    if name.isascii():
        return name.encode("ascii"), True
    return name.encode("utf-16-le", "surrogatepass"), False


def decode_name(raw: bytes, compressed: bool) -> str:
    if compressed:
        return raw.decode("latin-1")
    if len(raw) % 2:
        raw = raw[:-1]
    return raw.decode("utf-16-le", "surrogatepass")


# --------------------------------------------------------------------------
# Base block

class BaseBlock:
    """Parsed base block ([regf] "Base block"); keeps the raw 4096 bytes so
    fields we do not interpret (Windows 10 RmId/LogId/TmId, OfRg) survive."""

    __slots__ = ("raw", "seq1", "seq2", "timestamp", "major", "minor",
                 "file_type", "file_format", "root", "bins_size",
                 "clustering", "checksum_ok")

    def __init__(self, raw: bytes | bytearray):
        if len(raw) < LOG_BASE_SIZE:
            raise RegfCorruptError(f"truncated base block ({len(raw)} bytes)")
        sig = bytes(raw[:4])
        if sig == b"CREG":
            raise RegfUnsupportedError("Windows 9x/ME CREG registry file, not a regf hive")
        if sig != b"regf":
            raise RegfCorruptError(f"bad base block signature {sig!r} (expected b'regf')")
        self.raw = bytearray(raw[:BASE_BLOCK_SIZE].ljust(BASE_BLOCK_SIZE, b"\0"))
        (self.seq1, self.seq2, self.timestamp, self.major, self.minor,
         self.file_type, self.file_format, self.root, self.bins_size,
         self.clustering) = BASE_FIELDS.unpack_from(self.raw, 4)
        self.checksum_ok = U32.unpack_from(self.raw, BASE_CHECKSUM)[0] == checksum(self.raw)
        if self.major == 1 and self.minor < 2:
            # NT 3.1/3.5 hives (1.0, 1.1) use another cell layout; hivex refuses them too,
            # and servicing never needs them (Windows XP and older are not serviceable).
            raise RegfUnsupportedError(
                f"regf format {self.major}.{self.minor} (Windows NT 3.x) is not supported")

    @property
    def file_name(self) -> str:
        raw = self.raw[BASE_FILE_NAME:BASE_FILE_NAME + BASE_FILE_NAME_SIZE]
        return raw.decode("utf-16-le", "replace").split("\0", 1)[0]

    def pack(self) -> bytes:
        BASE_FIELDS.pack_into(self.raw, 4, self.seq1, self.seq2,
                         self.timestamp, self.major, self.minor, self.file_type,
                         self.file_format, self.root, self.bins_size,
                         self.clustering)
        U32.pack_into(self.raw, BASE_CHECKSUM, checksum(self.raw))
        self.checksum_ok = True
        return bytes(self.raw)

    @classmethod
    def new(cls, root: int, bins_size: int, minor: int = 5, name: str = "") -> BaseBlock:
        raw = bytearray(BASE_BLOCK_SIZE)
        raw[0:4] = b"regf"
        BASE_FIELDS.pack_into(raw, 4, 1, 1, 0, 1, minor, 0, 1, root,
                         bins_size, 1)
        nm = name.encode("utf-16-le")[:BASE_FILE_NAME_SIZE]
        raw[BASE_FILE_NAME:BASE_FILE_NAME + len(nm)] = nm
        U32.pack_into(raw, BASE_CHECKSUM, checksum(raw))
        return cls(raw)


# --------------------------------------------------------------------------
# Security descriptor used for new hives

def _sid(auth: int, *subs: int) -> bytes:
    return struct.pack("<BB", 1, len(subs)) + auth.to_bytes(6, "big") + b"".join(
        U32.pack(s) for s in subs)


def _ace(mask: int, sid: bytes, flags: int = 0x02) -> bytes:
    # ACCESS_ALLOWED_ACE, CONTAINER_INHERIT_ACE
    return struct.pack("<BBHI", 0, flags, 8 + len(sid), mask) + sid


def default_security_descriptor() -> bytes:
    """A self-relative security descriptor for the root key of a new hive:
    owner BUILTIN\\Administrators, group SYSTEM, DACL granting KEY_ALL_ACCESS
    to SYSTEM and Administrators and KEY_READ to Everyone (inheritable)."""
    admins = _sid(5, 32, 544)
    system = _sid(5, 18)
    everyone = _sid(1, 0)
    aces = [_ace(0xF003F, system), _ace(0xF003F, admins), _ace(0x20019, everyone)]
    body = b"".join(aces)
    acl = struct.pack("<BBHHH", 2, 0, 8 + len(body), len(aces), 0) + body
    # revision, sbz1, control (SE_SELF_RELATIVE | SE_DACL_PRESENT), owner,
    # group, sacl, dacl offsets
    off_dacl = 20
    off_owner = off_dacl + len(acl)
    off_group = off_owner + len(admins)
    hdr = struct.pack("<BBHIIII", 1, 0, 0x8004, off_owner, off_group, 0, off_dacl)
    return hdr + acl + admins + system


# --------------------------------------------------------------------------
# Marvin32 ([regf] "New format" of transaction logs: log entry hashes)

MARVIN_SEED = 0x82EF4D887A4E55C5
_M = 0xFFFFFFFF


def _rotl(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & _M


def marvin32(data: bytes, seed: int = MARVIN_SEED) -> int:
    """Marvin32 checksum (64-bit result, p1 << 32 | p0)."""
    lo = seed & _M
    hi = seed >> 32
    n = len(data) & ~3
    for (b,) in struct.iter_unpack("<I", data[:n]):
        lo = (lo + b) & _M
        hi ^= lo
        lo = (((lo << 20) | (lo >> 12)) + hi) & _M
        hi = ((hi << 9) | (hi >> 23)) & _M
        hi ^= lo
        lo = (((lo << 27) | (lo >> 5)) + hi) & _M
        hi = ((hi << 19) | (hi >> 13)) & _M
    rem = data[n:]
    final = 0x80 << (8 * len(rem))
    for i, c in enumerate(rem):
        final |= c << (8 * i)
    lo = (lo + (final & _M)) & _M
    for _ in range(2):
        hi ^= lo
        lo = (_rotl(lo, 20) + hi) & _M
        hi = _rotl(hi, 9)
        hi ^= lo
        lo = (_rotl(lo, 27) + hi) & _M
        hi = _rotl(hi, 19)
    return (hi << 32) | lo
