"""The metadata resource of an image: security data and the dentry tree.

Layout (uncompressed metadata resource):
  security data   u32 total_length, u32 num_entries, u64 sizes[num_entries],
                  then the self-relative security descriptors; padded to 8.
  root dentry     at the 8-aligned end of the security data.
  dentry lists    each directory's children are a run of dentries at the
                  directory's subdir_offset, ended by an 8-byte zero length.
Each dentry is followed (8-aligned) by its extra stream entries.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field

from wimfs.errors import WimCorruptError
from wimfs.format import structs as S

log = logging.getLogger(__name__)

_u32 = struct.Struct("<I")
_u64 = struct.Struct("<Q")
_dentry = S.DENTRY_STRUCT
_stream = S.EXTRA_STREAM_STRUCT
_reparse = S.REPARSE_UNION_STRUCT
_link = S.LINK_UNION_STRUCT
DIR_ATTRS = S.FILE_ATTRIBUTE_DIRECTORY


def align8(n: int) -> int:
    return (n + 7) & ~7


@dataclass(slots=True)
class ExtraStream:
    name: str
    hash: bytes


@dataclass(slots=True, eq=False)
class DiskDentry:
    """One dentry as stored, before hard links are grouped into inodes."""

    name: str
    short_name: str
    attributes: int
    security_id: int
    subdir_offset: int
    creation_time: int
    last_access_time: int
    last_write_time: int
    main_hash: bytes
    unknown_0x54: int
    reparse_tag: int
    rp_reserved: int
    rp_flags: int
    hard_link_group_id: int
    tagged_items: bytes
    extra_streams: list[ExtraStream]
    offset: int
    children: list[DiskDentry] = field(default_factory=list)

    @property
    def is_directory(self) -> bool:
        return bool(self.attributes & DIR_ATTRS) and \
            not self.attributes & S.FILE_ATTRIBUTE_REPARSE_POINT


def parse_security_data(buf: bytes | memoryview) -> tuple[list[bytes], int]:
    """Return (descriptors, offset of the root dentry)."""
    if len(buf) < 8:
        raise WimCorruptError("metadata resource too short for its security data")
    total_length, num_entries = struct.unpack_from("<II", buf, 0)
    if total_length == 0:
        total_length = 8  # some writers leave it 0 for an empty table
    if total_length < 8 or total_length > len(buf) or num_entries > (total_length - 8) // 8:
        raise WimCorruptError(f"bad security data (length {total_length}, "
                              f"{num_entries} entries)")
    sizes = struct.unpack_from(f"<{num_entries}Q", buf, 8)
    pos = 8 + 8 * num_entries
    sds: list[bytes] = []
    for size in sizes:
        if size > total_length - pos:
            raise WimCorruptError("security descriptor runs past the security data")
        sds.append(bytes(buf[pos:pos + size]))
        pos += size
    return sds, align8(total_length)


def _utf16(raw: bytes | memoryview, where: int) -> str:
    try:
        return bytes(raw).decode("utf-16-le")
    except UnicodeDecodeError:
        # Unpaired surrogates occur in real images; keep them round-trippable.
        return bytes(raw).decode("utf-16-le", "surrogatepass")


_NO_STREAMS: tuple[int, ...] = ()


def _checked(buf: bytes | memoryview, off: int) -> tuple[tuple | None, int, int, tuple | list]:
    """(fixed fields, end of the names, offset after the entry and its extra stream
    entries, offsets of those stream entries) of the dentry at `off`, its lengths checked
    against the resource (WimCorruptError); fields None at a list end."""
    end_buf = len(buf)
    if off + 8 > end_buf:
        raise WimCorruptError(f"dentry at {off} is outside the metadata resource")
    length = _u64.unpack_from(buf, off)[0]
    if length == 0:
        return None, 0, off + 8, _NO_STREAMS
    if length < S.DENTRY_DISK_SIZE or off + length > end_buf:
        raise WimCorruptError(f"dentry at {off} has invalid length {length}")
    f = _dentry.unpack_from(buf, off)
    num_extra, short_nbytes, name_nbytes = f[12], f[13], f[14]
    names_end = off + S.DENTRY_DISK_SIZE + (name_nbytes + 2 if name_nbytes else 0) + \
        (short_nbytes + 2 if short_nbytes else 0)
    if names_end > off + length or name_nbytes & 1 or short_nbytes & 1:
        raise WimCorruptError(f"dentry at {off}: names do not fit in the entry")
    nxt = off + align8(length)
    if not num_extra:
        return f, names_end, nxt, _NO_STREAMS
    streams = []
    for _ in range(num_extra):
        if nxt + S.EXTRA_STREAM_DISK_SIZE > end_buf:
            raise WimCorruptError(f"dentry at {off}: stream entries run past the resource")
        slen, _res, _shash, snbytes = _stream.unpack_from(buf, nxt)
        if slen < S.EXTRA_STREAM_DISK_SIZE + snbytes or nxt + slen > end_buf or snbytes & 1:
            raise WimCorruptError(f"dentry at {off}: invalid stream entry")
        streams.append(nxt)
        nxt += align8(slen)
    return f, names_end, nxt, streams


def _read_dentry(buf: bytes | memoryview, off: int) -> tuple[DiskDentry | None, int]:
    """Read the dentry at `off`; return it (None at a list end) and the offset after it
    and its extra stream entries."""
    f, names_end, nxt, stream_at = _checked(buf, off)
    if f is None:
        return None, nxt
    (length, attributes, security_id, subdir_offset, _u1, _u2, ctime, atime, mtime, main_hash,
     unknown, rp_union, _num_extra, short_nbytes, name_nbytes) = f
    p = off + S.DENTRY_DISK_SIZE
    name = _utf16(buf[p:p + name_nbytes], off) if name_nbytes else ""
    if name_nbytes:
        p += name_nbytes + 2
    short_name = _utf16(buf[p:p + short_nbytes], off) if short_nbytes else ""
    tag_start = align8(names_end)
    tagged = bytes(buf[tag_start:off + length]) if tag_start < off + length else b""
    if attributes & S.FILE_ATTRIBUTE_REPARSE_POINT:
        rp_tag, rp_reserved, rp_flags = _reparse.unpack(rp_union)
        link_id = 0
    else:
        rp_tag = rp_reserved = rp_flags = 0
        link_id = _link.unpack(rp_union)[0]
    streams: list[ExtraStream] = []
    for sp in stream_at:
        _slen, _res, shash, snbytes = _stream.unpack_from(buf, sp)
        sp += S.EXTRA_STREAM_DISK_SIZE
        streams.append(ExtraStream(_utf16(buf[sp:sp + snbytes], off) if snbytes else "", shash))
    d = DiskDentry(name, short_name, attributes, security_id, subdir_offset, ctime, atime, mtime,
                   main_hash, unknown, rp_tag, rp_reserved, rp_flags, link_id, tagged, streams,
                   off)
    return d, nxt


class DentryTreeReader:
    """Reads the tree one directory at a time (a directory's children are one list at its
    subdir_offset), so a caller can build its own objects without holding every on-disk
    dentry at once. Detects cycles and runaway lists."""

    def __init__(self, buf: bytes | memoryview, root_offset: int) -> None:
        self.buf = buf
        self.root_offset = root_offset
        self.seen_lists: set[int] = set()
        self.max_entries = len(buf) // 8 + 1
        self.count = 0

    def root(self) -> DiskDentry:
        root, _ = _read_dentry(self.buf, self.root_offset)
        if root is None:
            raise WimCorruptError("image has no root directory")
        return root

    def children(self, d: DiskDentry) -> list[DiskDentry]:
        if not d.is_directory or d.subdir_offset == 0:
            return []
        off = d.subdir_offset
        if off in self.seen_lists:
            raise WimCorruptError(f"directory {d.name!r} is cyclic (its entries at {off} "
                                  "are reachable twice)")
        self.seen_lists.add(off)
        return self.entries_at(off)

    def entries_at(self, off: int) -> list[DiskDentry]:
        """The dentries of the list at `off` (a directory's children); WimCorruptError when
        the lists read so far hold more entries than the resource can."""
        out = []
        while True:
            child, off = _read_dentry(self.buf, off)
            if child is None:
                return out
            self.count += 1
            if self.count > self.max_entries:
                raise WimCorruptError("dentry tree does not terminate")
            out.append(child)

    def heads_at(self, off: int) -> list[tuple[int, str, int]]:
        """(offset, name, attributes) of each dentry of the list at `off`, checked as
        `entries_at` checks them (the same errors) without making DiskDentry objects."""
        buf, out = self.buf, []
        while True:
            f, _names_end, nxt, _streams = _checked(buf, off)
            if f is None:
                return out
            n = f[14]
            p = off + S.DENTRY_DISK_SIZE
            self.count += 1
            if self.count > self.max_entries:
                raise WimCorruptError("dentry tree does not terminate")
            out.append((off, _utf16(buf[p:p + n], off) if n else "", f[1]))
            off = nxt


def parse_dentry_tree(buf: bytes | memoryview, root_offset: int) -> DiskDentry:
    """Parse the whole tree into DiskDentry.children lists. Raises WimCorruptError on
    cycles or out-of-range entries."""
    reader = DentryTreeReader(buf, root_offset)
    root = reader.root()
    stack = [root]
    while stack:
        d = stack.pop()
        d.children = reader.children(d)
        stack.extend(d.children)
    return root


def parse_tagged_items(data: bytes) -> dict[int, bytes]:
    """Tagged metadata items: u32 tag, u32 length, data, padded to 8."""
    items: dict[int, bytes] = {}
    p = 0
    while p + 8 <= len(data):
        tag, length = struct.unpack_from("<II", data, p)
        full = 8 + align8(length)
        if p + 8 + length > len(data):
            break
        items.setdefault(tag, data[p + 8:p + 8 + length])
        p += full
    return items


def tagged_item(tag: int, data: bytes) -> bytes:
    """One tagged item: u32 tag, u32 length, data padded to 8."""
    return struct.pack("<II", tag, len(data)) + data + bytes(align8(len(data)) - len(data))


def set_tagged_item(tagged: bytes, tag: int, data: bytes) -> bytes:
    """`tagged` with its items of type `tag` replaced by one holding `data` (at the end)."""
    out = bytearray()
    p = 0
    while p + 8 <= len(tagged):
        t, length = struct.unpack_from("<II", tagged, p)
        full = 8 + align8(length)
        if t != tag:
            out += tagged[p:p + full]
        p += full
    return bytes(out) + tagged_item(tag, data)


def unix_data_item(uid: int, gid: int, mode: int, rdev: int) -> bytes:
    """wimlib's UNIX data (owner, group, mode, device) as a tagged item."""
    return tagged_item(S.TAG_WIMLIB_UNIX_DATA, S.UNIX_DATA_STRUCT.pack(
        uid & 0xFFFFFFFF, gid & 0xFFFFFFFF, mode & 0xFFFFFFFF, rdev & 0xFFFFFFFF))


def set_unix_data(tagged: bytes, uid: int, gid: int, mode: int, rdev: int) -> bytes:
    """`tagged` with its UNIX data item replaced (or added)."""
    return set_tagged_item(tagged, S.TAG_WIMLIB_UNIX_DATA,
                           unix_data_item(uid, gid, mode, rdev)[8:])


# --- Writing ---------------------------------------------------------------------
#
# The serializer takes duck-typed trees (wimfs.image.Dentry/Inode satisfy it):
#   dentry: .name, .short_name, .inode, .children (dict name -> dentry, or None)
#   inode:  .attributes, .security_id, .creation_time, .last_access_time,
#           .last_write_time, .reparse_tag, .rp_reserved, .rp_flags, .tagged_items,
#           .nlink, .ino, .stream_hashes() -> (data_hash, reparse_hash, [(name, hash)])


def _encode_name(name: str) -> bytes:
    return name.encode("utf-16-le", "surrogatepass")


def build_security_data(sds: list[bytes]) -> bytes:
    body = b"".join(sds)
    total = 8 + 8 * len(sds) + len(body)
    out = struct.pack(f"<II{len(sds)}Q", total, len(sds), *(len(s) for s in sds)) + body
    return out + bytes(align8(total) - total)


def _dentry_bytes(d, subdir_offset: int, is_root: bool) -> bytes:
    ino = d.inode
    name = b"" if is_root else _encode_name(d.name)
    short = _encode_name(d.short_name) if d.short_name else b""
    if ino.attributes & S.FILE_ATTRIBUTE_REPARSE_POINT:
        union = _reparse.pack(ino.reparse_tag, ino.rp_reserved, ino.rp_flags)
    else:
        union = _link.pack(ino.ino if ino.nlink > 1 and not ino.attributes & DIR_ATTRS else 0)
    data_hash, reparse_hash, named = ino.stream_hashes()
    unnamed: list[bytes] = []
    if ino.attributes & S.FILE_ATTRIBUTE_REPARSE_POINT:
        unnamed.append(reparse_hash)
    if not ino.attributes & DIR_ATTRS:
        unnamed.append(data_hash)
    extra: list[tuple[str, bytes]] = []
    if len(unnamed) <= 1 and not named:
        main_hash = unnamed[0] if unnamed else bytes(20)
    else:
        main_hash = bytes(20)
        extra = [("", h) for h in unnamed] + list(named)
    var = b""
    if name:
        var += name + b"\0\0"
    if short:
        var += short + b"\0\0"
    fixed_len = S.DENTRY_DISK_SIZE + len(var)
    pad = align8(fixed_len) - fixed_len
    tagged = ino.tagged_items or b""
    tagged += bytes(align8(len(tagged)) - len(tagged))
    length = fixed_len + pad + len(tagged)
    head = _dentry.pack(length, ino.attributes, ino.security_id, subdir_offset, 0, 0,
                        ino.creation_time, ino.last_access_time, ino.last_write_time,
                        main_hash, 0, union, len(extra), len(short), len(name))
    parts = [head, var, bytes(pad), tagged]
    for sname, h in extra:
        n = _encode_name(sname)
        slen = S.EXTRA_STREAM_DISK_SIZE + (len(n) + 2 if n else 0)
        parts.append(_stream.pack(align8(slen), 0, h, len(n)))
        if n:
            parts.append(n + b"\0\0")
        parts.append(bytes(align8(slen) - slen))
    return b"".join(parts)


class RawEntry:
    """A directory's dentry copied through as stored (with its extra stream entries):
    `raw`, its bytes, whose subdirectory offset the writer sets; `pending`, what gives its
    entries (`.raw_children()`: RawEntry objects for directories, bytes for the others,
    copied as they are). A directory nobody parsed is written this way, without objects
    for its subtree."""

    __slots__ = ("raw", "pending")

    def __init__(self, raw: bytearray, pending) -> None:
        self.raw = raw
        self.pending = pending


def _entries(d) -> list | None:
    """The entries of directory `d` to write (None: `d` is not a directory)."""
    pending = getattr(d, "pending", None)       # a directory whose entries are not parsed
    if pending is not None:
        return pending.raw_children()
    if d.__class__ is RawEntry:
        return None
    children = d.children
    return None if children is None else list(children.values())


def build_metadata(security: list[bytes], root) -> bytes:
    """Serialise security data and the dentry tree: the root, an end marker, then each
    directory's children in breadth-first order, each list ended by 8 zero bytes.
    Subtrees not parsed into objects are copied through from their raw entries."""
    sec = build_security_data(security)
    root_raw = bytearray(_dentry_bytes(root, 0, True))
    raw_of: dict[int, bytearray] = {id(root): root_raw}    # what may be a directory
    lists: list[tuple[object, list]] = []
    queue = [root]
    while queue:
        nxt = []
        for d in queue:
            kids = _entries(d)
            if kids is None:
                continue
            raws: list = []
            for c in kids:
                cls = c.__class__
                if cls is bytes:                # a file's entry as stored
                    raws.append(c)
                    continue
                r = c.raw if cls is RawEntry else bytearray(_dentry_bytes(c, 0, False))
                raws.append(r)
                raw_of[id(c)] = r
                nxt.append(c)
            lists.append((d, raws))
        queue = nxt
    pos = len(sec) + len(root_raw) + 8
    for d, raws in lists:
        struct.pack_into("<Q", raw_of[id(d)], 16, pos)     # subdir_offset
        pos += sum(map(len, raws)) + 8
    out = [sec, root_raw, bytes(8)]
    for _d, raws in lists:
        out.extend(raws)
        out.append(bytes(8))
    data = b"".join(out)
    assert len(data) == pos, (len(data), pos)
    return data
