"""On-disk structures of the regf format, declared with construct.

Source: M. Suhanov, "Windows registry file format specification"
(github.com/msuhanov/regf), sections "Base block", "Hive bin", "Cell",
"Key node", "Key value", "Key security", "Index leaf", "Fast leaf", "Hash
leaf", "Index root", "Big data", and "Format of transaction log files".
All integers are little-endian; cell structures start *after* the 4-byte
cell size field.

These declarations are the reference layout.  The engine's hot paths use
the precompiled ``struct.Struct`` objects of :mod:`servicing.regf.format`
(and :data:`servicing.regf.logs.HVLE_HDR`); :data:`PRECOMPILED` pairs each
of them with its construct declaration, and tests/servicing/test_regf_structs.py
checks sizes and field-by-field agreement on random bytes.  Signatures are
declared as plain ``Bytes`` (their expected values are in :data:`SIGNATURES`)
so that arbitrary bytes parse.
"""

from __future__ import annotations

from construct import Array, Bytes, Int16ul, Int32sl, Int32ul, Int64ul, Struct, this

from . import format as F
from . import logs as L

# --- Base block ([regf] "Base block"), 4096 bytes at file offset 0 ---------

BaseBlockFields = Struct(            # the part at offset 4 read by BaseBlock
    "primary_seq" / Int32ul,
    "secondary_seq" / Int32ul,
    "last_written" / Int64ul,         # FILETIME
    "major" / Int32ul,
    "minor" / Int32ul,
    "file_type" / Int32ul,            # 0 primary, 1/2 log, 6 log (new format)
    "file_format" / Int32ul,          # 1 direct memory load
    "root_cell" / Int32ul,
    "hive_bins_size" / Int32ul,
    "clustering_factor" / Int32ul,
)

BaseBlock = Struct(
    "signature" / Bytes(4),           # b"regf"
    "fields" / BaseBlockFields,
    "file_name" / Bytes(64),          # UTF-16LE, partial path
    "reserved1" / Bytes(396),         # RmId, LogId, flags, TmId, GUID signature, ...
    "checksum" / Int32ul,             # XOR of the 127 dwords before it
    "reserved2" / Bytes(3576),
    "boot_type" / Int32ul,
    "boot_recover" / Int32ul,
)

# --- Hive bin header ([regf] "Hive bin"), 32 bytes ---------------------------

HbinHeader = Struct(
    "signature" / Bytes(4),           # b"hbin"
    "offset" / Int32ul,               # of this bin, relative to the bins data
    "size" / Int32ul,                 # multiple of 4096
    "reserved" / Bytes(8),
    "timestamp" / Int64ul,            # FILETIME (first bin only, meaningful)
    "spare" / Int32ul,
)

# --- Cells ----------------------------------------------------------------

CellHeader = Struct("size" / Int32sl)      # negative = allocated

KeyNode = Struct(                     # nk, 76 bytes + name
    "signature" / Bytes(2),
    "flags" / Int16ul,
    "last_written" / Int64ul,
    "access_bits" / Int32ul,
    "parent" / Int32ul,
    "subkeys" / Int32ul,
    "volatile_subkeys" / Int32ul,
    "subkeys_list" / Int32ul,
    "volatile_subkeys_list" / Int32ul,
    "values" / Int32ul,
    "values_list" / Int32ul,
    "security" / Int32ul,
    "class_name" / Int32ul,
    "max_subkey_name" / Int32ul,      # low 16 bits; high bits: virtualization flags
    "max_subkey_class" / Int32ul,
    "max_value_name" / Int32ul,
    "max_value_data" / Int32ul,
    "work_var" / Int32ul,
    "name_length" / Int16ul,
    "class_length" / Int16ul,
)

KeyValue = Struct(                    # vk, 20 bytes + name
    "signature" / Bytes(2),
    "name_length" / Int16ul,
    "data_size" / Int32ul,            # MSB set: data inline in data_offset
    "data_offset" / Int32ul,
    "data_type" / Int32ul,
    "flags" / Int16ul,
    "spare" / Int16ul,
)

KeyValueData = Struct(                # the data fields of a vk, rewritten together
    "data_size" / Int32ul,
    "data_offset" / Int32ul,
    "data_type" / Int32ul,
)

KeySecurity = Struct(                 # sk, 20 bytes + descriptor
    "signature" / Bytes(2),
    "reserved" / Int16ul,
    "flink" / Int32ul,
    "blink" / Int32ul,
    "reference_count" / Int32ul,
    "descriptor_size" / Int32ul,
)

ListHeader = Struct(                  # li / lf / lh / ri
    "signature" / Bytes(2),
    "count" / Int16ul,
)

IndexLeaf = Struct(                   # li
    "header" / ListHeader,
    "elements" / Array(this.header.count, Int32ul),
)

FastLeafElement = Struct("key_node" / Int32ul, "name_hint" / Bytes(4))
HashLeafElement = Struct("key_node" / Int32ul, "name_hash" / Int32ul)

FastLeaf = Struct("header" / ListHeader, "elements" / Array(this.header.count, FastLeafElement))
HashLeaf = Struct("header" / ListHeader, "elements" / Array(this.header.count, HashLeafElement))
IndexRoot = Struct("header" / ListHeader, "subkeys_lists" / Array(this.header.count, Int32ul))

BigData = Struct(                     # db
    "signature" / Bytes(2),
    "segments" / Int16ul,
    "segments_list" / Int32ul,
)

# --- Transaction logs ([regf] "Format of transaction log files") -----------

LogBaseBlock = Struct(                # first 512 bytes of a base block
    "signature" / Bytes(4),
    "fields" / BaseBlockFields,
    "file_name" / Bytes(64),
    "reserved1" / Bytes(396),
    "checksum" / Int32ul,
)

DirtyVectorHeader = Struct(           # old format, at log offset 512
    "signature" / Bytes(4),           # b"DIRT"
    # followed by a bitmap, one bit per 512-byte page of the bins data
)

HvLEHeader = Struct(                  # new format log entry, 40 bytes
    "signature" / Bytes(4),           # b"HvLE"
    "size" / Int32ul,                 # of the entry, multiple of 512
    "flags" / Int32ul,
    "sequence" / Int32ul,
    "hive_bins_size" / Int32ul,
    "dirty_pages" / Int32ul,
    "hash1" / Int64ul,                # Marvin32 of the entry from offset 40
    "hash2" / Int64ul,                # Marvin32 of the first 32 bytes
)

DirtyPageRef = Struct("offset" / Int32ul, "size" / Int32ul)

SIGNATURES = {
    "BaseBlock": b"regf", "HbinHeader": b"hbin", "KeyNode": b"nk", "KeyValue": b"vk",
    "KeySecurity": b"sk", "IndexLeaf": b"li", "FastLeaf": b"lf", "HashLeaf": b"lh",
    "IndexRoot": b"ri", "BigData": b"db", "DirtyVectorHeader": b"DIRT", "HvLEHeader": b"HvLE",
}

#: precompiled struct -> construct declaration it must agree with
PRECOMPILED = {
    "BASE_FIELDS": (F.BASE_FIELDS, BaseBlockFields),
    "HBIN": (F.HBIN, HbinHeader),
    "NK": (F.NK, KeyNode),
    "VK": (F.VK, KeyValue),
    "VK_DATA": (F.VK_DATA, KeyValueData),
    "SK": (F.SK, KeySecurity),
    "LIST_HDR": (F.LIST_HDR, ListHeader),
    "DB": (F.DB, BigData),
    "HVLE_HDR": (L.HVLE_HDR, HvLEHeader),
    "I32": (F.I32, CellHeader),
    "DIRTY_REF": (L.DIRTY_REF, DirtyPageRef),
}

__all__ = ["BaseBlock", "BaseBlockFields", "HbinHeader", "CellHeader", "KeyNode", "KeyValue",
           "KeyValueData",
           "KeySecurity", "ListHeader", "IndexLeaf", "FastLeaf", "HashLeaf", "IndexRoot",
           "BigData", "LogBaseBlock", "DirtyVectorHeader", "HvLEHeader", "DirtyPageRef",
           "SIGNATURES", "PRECOMPILED"]
