"""The `system.ntfs_*` extended attributes, as ntfs-3g names and encodes them: both
directions, for the FUSE getxattr (encode) and the session's setxattr (decode).

  system.ntfs_attrib / _be       FILE_ATTRIBUTE_* as a 32-bit integer (LE / BE)
  system.ntfs_acl                the self-relative security descriptor
  system.ntfs_dos_name           the DOS (8.3) name, upper case, UTF-8
  system.ntfs_reparse_data       the whole reparse buffer (tag, length, reserved, data)
  system.ntfs_times / _be        creation, last write, last access, change (FILETIMEs);
                                 a write may give the first 1 to 4 of them
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass

from wimfs.errors import WimfsError
from wimfs.format import structs as S
from wimfs.format.reparse import full_reparse_buffer
from wimfs.format.security import SecurityDescriptor
from wimfs.image import Inode
from wimfs.overlay.errors import FsError
from wimfs.xattrs import NTFS_ACL, NTFS_ATTRIB, NTFS_DOS_NAME, NTFS_REPARSE, NTFS_TIMES

ATTRIB, ACL, DOS_NAME, REPARSE, TIMES = NTFS_ATTRIB, NTFS_ACL, NTFS_DOS_NAME, NTFS_REPARSE, \
    NTFS_TIMES
ATTRIB_BE, TIMES_BE = NTFS_ATTRIB + "_be", NTFS_TIMES + "_be"
NAMES = frozenset({ATTRIB, ATTRIB_BE, ACL, DOS_NAME, REPARSE, TIMES, TIMES_BE})

# Attribute bits a system.ntfs_attrib write cannot change: they follow the file's type.
TYPE_BITS = S.FILE_ATTRIBUTE_DIRECTORY | S.FILE_ATTRIBUTE_REPARSE_POINT


@dataclass(frozen=True, slots=True)
class SetAttributes:
    attributes: int


@dataclass(frozen=True, slots=True)
class SetSecurity:
    sd: bytes


@dataclass(frozen=True, slots=True)
class SetDosName:
    name: str


@dataclass(frozen=True, slots=True)
class SetTimes:
    creation: int
    last_write: int | None = None
    last_access: int | None = None


@dataclass(frozen=True, slots=True)
class SetReparse:
    tag: int
    reserved: int
    data: bytes


NtfsChange = SetAttributes | SetSecurity | SetDosName | SetTimes | SetReparse


def _endian(name: str) -> str:
    return ">" if name.endswith("_be") else "<"


def encode(name: str, ino: Inode, sd: bytes | None = None,
           reparse_data: bytes = b"") -> bytes | None:
    """The value of xattr `name` (None: the inode has none). `sd` is the inode's security
    descriptor, `reparse_data` its reparse data (without the 8-byte header)."""
    if name in (ATTRIB, ATTRIB_BE):
        return struct.pack(_endian(name) + "I", ino.attributes)
    if name == ACL:
        return sd
    if name == DOS_NAME:
        # DOS names are upper case on NTFS (ntfs-3g returns them so), even where a
        # WIM stores one that differs from its long name only by case.
        for d in ino.dentries:
            if d.short_name:
                return d.short_name.upper().encode("utf-8", "surrogatepass")
        return None
    if name == REPARSE:
        if not ino.is_reparse_point:
            return None
        return full_reparse_buffer(ino.reparse_tag, ino.rp_reserved, reparse_data)
    if name in (TIMES, TIMES_BE):
        return struct.pack(_endian(name) + "4Q", ino.creation_time, ino.last_write_time,
                           ino.last_access_time, ino.last_write_time)
    return None


def decode(name: str, value: bytes) -> NtfsChange:
    """What writing `value` to xattr `name` asks for; FsError(EINVAL) for a bad value,
    FsError(EOPNOTSUPP) for a name ntfs-3g does not accept."""
    if name in (ATTRIB, ATTRIB_BE):
        if len(value) != 4:
            raise FsError(errno.EINVAL)
        return SetAttributes(struct.unpack(_endian(name) + "I", value)[0])
    if name == ACL:
        try:
            SecurityDescriptor.parse(value)
        except WimfsError:
            raise FsError(errno.EINVAL) from None
        return SetSecurity(bytes(value))
    if name == DOS_NAME:
        short = value.decode("utf-8", "surrogatepass").rstrip("\x00")
        if not valid_dos_name(short):
            raise FsError(errno.EINVAL)
        return SetDosName(short.upper())
    if name in (TIMES, TIMES_BE):
        if len(value) not in (8, 16, 24, 32):
            raise FsError(errno.EINVAL)
        t = struct.unpack(_endian(name) + f"{len(value) // 8}Q", value)
        return SetTimes(t[0], t[1] if len(t) > 1 else None, t[2] if len(t) > 2 else None)
    if name == REPARSE:
        if len(value) < 8:
            raise FsError(errno.EINVAL)
        tag, dlen, reserved = struct.unpack_from("<IHH", value)
        if dlen != len(value) - 8:
            raise FsError(errno.EINVAL)
        return SetReparse(tag, reserved, bytes(value[8:]))
    raise FsError(errno.EOPNOTSUPP)


def valid_dos_name(n: str) -> bool:
    if not n or len(n) > 12:
        return False
    base, _, ext = n.partition(".")
    if not base or len(base) > 8 or len(ext) > 3 or "." in ext:
        return False
    bad = set('"*+,/:;<=>?[\\]|')
    return all(32 < ord(c) < 127 and c not in bad for c in n)
