"""On-disk structures of the WIM format, declared with construct.

Sources: Microsoft's "Windows Imaging File Format (WIM)" white paper (WIMGAPI),
and wimlib's documentation of the same structures (include/wimlib/header.h,
resource.h, blob_table.c, dentry.c). Field names follow wimlib's vocabulary.

Hot tables (blob table entries, the fixed part of dentries) are also given as
precompiled `struct.Struct` objects; tests/unit/test_structs.py checks that
each has the same size and field layout as its construct declaration.
All integers are little-endian.
"""

from __future__ import annotations

import struct

# --- Header ------------------------------------------------------------------

WIM_MAGIC = b"MSWIM\x00\x00\x00"
PWM_MAGIC = b"WLPWM\x00\x00\x00"      # wimlib's pipable WIM
WIM_HEADER_DISK_SIZE = 208

WIM_VERSION_DEFAULT = 0x10D00
WIM_VERSION_SOLID = 0xE00

# Header flags (dwFlags)
HDR_FLAG_RESERVED = 0x00000001
HDR_FLAG_COMPRESSION = 0x00000002
HDR_FLAG_READONLY = 0x00000004
HDR_FLAG_SPANNED = 0x00000008
HDR_FLAG_RESOURCE_ONLY = 0x00000010
HDR_FLAG_METADATA_ONLY = 0x00000020
HDR_FLAG_WRITE_IN_PROGRESS = 0x00000040
HDR_FLAG_RP_FIX = 0x00000080
HDR_FLAG_COMPRESS_RESERVED = 0x00010000
HDR_FLAG_COMPRESS_XPRESS = 0x00020000
HDR_FLAG_COMPRESS_LZX = 0x00040000
HDR_FLAG_COMPRESS_LZMS = 0x00080000
HDR_FLAG_COMPRESS_XPRESS_2 = 0x00200000

HDR_FLAG_NAMES = {
    HDR_FLAG_RESERVED: "RESERVED",
    HDR_FLAG_COMPRESSION: "COMPRESSION",
    HDR_FLAG_READONLY: "READONLY",
    HDR_FLAG_SPANNED: "SPANNED",
    HDR_FLAG_RESOURCE_ONLY: "RESOURCE_ONLY",
    HDR_FLAG_METADATA_ONLY: "METADATA_ONLY",
    HDR_FLAG_WRITE_IN_PROGRESS: "WRITE_IN_PROGRESS",
    HDR_FLAG_RP_FIX: "RP_FIX",
    HDR_FLAG_COMPRESS_RESERVED: "COMPRESS_RESERVED",
    HDR_FLAG_COMPRESS_XPRESS: "COMPRESS_XPRESS",
    HDR_FLAG_COMPRESS_LZX: "COMPRESS_LZX",
    HDR_FLAG_COMPRESS_LZMS: "COMPRESS_LZMS",
    HDR_FLAG_COMPRESS_XPRESS_2: "COMPRESS_XPRESS_2",
}

# Compression type numbers: the same in WIMGAPI, the solid-resource header and
# libwim's public API (enum wimlib_compression_type).
COMPRESSION_NONE = 0
COMPRESSION_XPRESS = 1
COMPRESSION_LZX = 2
COMPRESSION_LZMS = 3
COMPRESSION_NAMES = {COMPRESSION_NONE: "none", COMPRESSION_XPRESS: "xpress",
                     COMPRESSION_LZX: "lzx", COMPRESSION_LZMS: "lzms"}

# --- Resource header (reshdr) -----------------------------------------------

RESHDR_FLAG_FREE = 0x01
RESHDR_FLAG_METADATA = 0x02
RESHDR_FLAG_COMPRESSED = 0x04
RESHDR_FLAG_SPANNED = 0x08
RESHDR_FLAG_SOLID = 0x10

# A solid-run blob-table entry whose uncompressed size is this value describes
# a solid resource itself rather than a blob inside one.
SOLID_RESOURCE_MAGIC_NUMBER = 0x100000000

RESHDR_DISK_SIZE = 24
# Precompiled: size_in_wim(7s) flags(B) offset(Q) usize(Q)
RESHDR_STRUCT = struct.Struct("<7sBQQ")
# Precompiled: magic hdr_size wim_version flags chunk_size guid part total image_count,
# blob table, XML and boot metadata resource headers (24s each), boot_idx, integrity
# table resource header, unused
HEADER_STRUCT = struct.Struct("<8sIIII16sHHI24s24s24sI24s60s")


# --- Blob table ---------------------------------------------------------------

BLOB_DESCRIPTOR_DISK_SIZE = 50
# Precompiled: size_in_wim(7s) flags(B) offset(Q) usize(Q) part(H) refcnt(I) hash(20s)
BLOB_DESCRIPTOR_STRUCT = struct.Struct("<7sBQQHI20s")

# Solid resources begin with this header (then a table of compressed chunk sizes).
SOLID_HEADER_STRUCT = struct.Struct("<QII")

# --- Metadata resource --------------------------------------------------------

DENTRY_DISK_SIZE = 102
DENTRY_STRUCT = struct.Struct("<QIiQQQQQQ20sI8sHHH")
REPARSE_UNION_STRUCT = struct.Struct("<IHH")
LINK_UNION_STRUCT = struct.Struct("<Q")

EXTRA_STREAM_DISK_SIZE = 38
EXTRA_STREAM_STRUCT = struct.Struct("<QQ20sH")

TAG_OBJECT_ID = 0x00000001
TAG_XATTRS = 0x00000002
TAG_WIMLIB_UNIX_DATA = 0x337DD873
TAG_WIMLIB_LINUX_XATTRS = 0x337DD874

UNIX_DATA_STRUCT = struct.Struct("<IIII")

# --- Windows constants ----------------------------------------------------------

FILE_ATTRIBUTE_READONLY = 0x00000001
FILE_ATTRIBUTE_HIDDEN = 0x00000002
FILE_ATTRIBUTE_SYSTEM = 0x00000004
FILE_ATTRIBUTE_DIRECTORY = 0x00000010
FILE_ATTRIBUTE_ARCHIVE = 0x00000020
FILE_ATTRIBUTE_DEVICE = 0x00000040
FILE_ATTRIBUTE_NORMAL = 0x00000080
FILE_ATTRIBUTE_TEMPORARY = 0x00000100
FILE_ATTRIBUTE_SPARSE_FILE = 0x00000200
FILE_ATTRIBUTE_REPARSE_POINT = 0x00000400
FILE_ATTRIBUTE_COMPRESSED = 0x00000800
FILE_ATTRIBUTE_OFFLINE = 0x00001000
FILE_ATTRIBUTE_NOT_CONTENT_INDEXED = 0x00002000
FILE_ATTRIBUTE_ENCRYPTED = 0x00004000

IO_REPARSE_TAG_MOUNT_POINT = 0xA0000003
IO_REPARSE_TAG_SYMLINK = 0xA000000C
SYMBOLIC_LINK_RELATIVE = 0x00000001
RP_FLAG_NOT_FIXED = 0x0001   # wimlib: reparse target was not fixed at capture

# --- The construct declarations ------------------------------------------------
# Made on first use (module __getattr__): importing construct costs ~20 ms, paid by every
# start of `wimfs` otherwise, while at run time the precompiled structs above are used,
# and the header's (HEADER_STRUCT) too. Tests and `wimfs info --header` use these.

DECLARED = ('ResourceHeaderDisk', 'HeaderDisk', 'BlobDescriptorDisk', 'SolidResourceHeaderDisk', 'SecurityDataHeaderDisk', 'DentryDisk', 'ExtraStreamEntryDisk', 'TaggedItemHeaderDisk', 'UnixDataDisk', 'IntegrityTableHeaderDisk')


def _declare() -> dict:
    from construct import Bytes, Int8ul, Int16ul, Int32sl, Int32ul, Int64ul, Struct  # noqa: F401

    ResourceHeaderDisk = Struct(
        "size_in_wim" / Bytes(7),          # 56-bit little-endian
        "flags" / Int8ul,
        "offset_in_wim" / Int64ul,
        "uncompressed_size" / Int64ul,
    )
    HeaderDisk = Struct(
        "magic" / Bytes(8),
        "hdr_size" / Int32ul,
        "wim_version" / Int32ul,
        "flags" / Int32ul,
        "chunk_size" / Int32ul,
        "guid" / Bytes(16),
        "part_number" / Int16ul,
        "total_parts" / Int16ul,
        "image_count" / Int32ul,
        "blob_table_reshdr" / ResourceHeaderDisk,
        "xml_data_reshdr" / ResourceHeaderDisk,
        "boot_metadata_reshdr" / ResourceHeaderDisk,
        "boot_idx" / Int32ul,
        "integrity_table_reshdr" / ResourceHeaderDisk,
        "unused" / Bytes(60),
    )
    BlobDescriptorDisk = Struct(
        "reshdr" / ResourceHeaderDisk,
        "part_number" / Int16ul,
        "refcnt" / Int32ul,
        "hash" / Bytes(20),
    )
    SolidResourceHeaderDisk = Struct(
        "res_usize" / Int64ul,
        "chunk_size" / Int32ul,
        "compression_format" / Int32ul,
    )
    SecurityDataHeaderDisk = Struct(
        "total_length" / Int32ul,
        "num_entries" / Int32ul,
    )
    DentryDisk = Struct(
        "length" / Int64ul,
        "attributes" / Int32ul,
        "security_id" / Int32sl,
        "subdir_offset" / Int64ul,
        "unused_1" / Int64ul,
        "unused_2" / Int64ul,
        "creation_time" / Int64ul,
        "last_access_time" / Int64ul,
        "last_write_time" / Int64ul,
        "main_hash" / Bytes(20),
        "unknown_0x54" / Int32ul,
        # union: reparse (tag u32, rp_reserved u16, rp_flags u16) or hard_link_group_id u64
        "reparse_or_link" / Bytes(8),
        "num_extra_streams" / Int16ul,
        "short_name_nbytes" / Int16ul,
        "name_nbytes" / Int16ul,
    )
    ExtraStreamEntryDisk = Struct(
        "length" / Int64ul,
        "reserved" / Int64ul,
        "hash" / Bytes(20),
        "name_nbytes" / Int16ul,
    )
    TaggedItemHeaderDisk = Struct("tag" / Int32ul, "length" / Int32ul)
    UnixDataDisk = Struct("uid" / Int32ul, "gid" / Int32ul, "mode" / Int32ul, "rdev" / Int32ul)
    IntegrityTableHeaderDisk = Struct(
        "size" / Int32ul,
        "num_entries" / Int32ul,
        "chunk_size" / Int32ul,
    )
    return {name: value for name, value in locals().items() if name in DECLARED}


def __getattr__(name: str):
    if name in DECLARED or name == "PRECOMPILED":
        made = _declare()
        # Exported so tests can pair every precompiled struct with its declaration.
        made["PRECOMPILED"] = {
            "BLOB_DESCRIPTOR_STRUCT": (BLOB_DESCRIPTOR_STRUCT, made["BlobDescriptorDisk"]),
            "SOLID_HEADER_STRUCT": (SOLID_HEADER_STRUCT, made["SolidResourceHeaderDisk"]),
            "DENTRY_STRUCT": (DENTRY_STRUCT, made["DentryDisk"]),
            "EXTRA_STREAM_STRUCT": (EXTRA_STREAM_STRUCT, made["ExtraStreamEntryDisk"]),
            "UNIX_DATA_STRUCT": (UNIX_DATA_STRUCT, made["UnixDataDisk"]),
            "HEADER_STRUCT": (HEADER_STRUCT, made["HeaderDisk"]),
            "RESHDR_STRUCT": (RESHDR_STRUCT, made["ResourceHeaderDisk"]),
        }
        globals().update(made)
        return made[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [name for name in dir() if name.isupper()] + list(DECLARED)
