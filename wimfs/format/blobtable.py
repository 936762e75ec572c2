"""The blob table: where each blob (content addressed by SHA-1) is stored.

A normal entry describes one blob stored in its own resource. In solid WIMs
(version 0xE00), a run of consecutive entries flagged SOLID describes a set of
solid resources (entries whose uncompressed size is SOLID_RESOURCE_MAGIC_NUMBER)
and blobs inside them; a blob's offset counts through the uncompressed data of
the run's resources in order, and its size is in the size_in_wim field.
"""

from __future__ import annotations

import logging
import struct
from array import array
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field

from wimfs.errors import WimCorruptError
from wimfs.format import structs as S
from wimfs.format.header import ResourceHeader, WimHeader

log = logging.getLogger(__name__)

ZERO_HASH = bytes(20)


@dataclass(slots=True, eq=False)
class ResourceDescriptor:
    """A stored resource: one blob, or many for a solid resource."""

    offset_in_wim: int
    size_in_wim: int
    uncompressed_size: int
    flags: int
    compression_type: int
    chunk_size: int
    part_number: int = 1
    # 0 for a plain resource; 16 for solid ones (their header precedes the chunk table).
    is_solid: bool = False

    @property
    def is_compressed(self) -> bool:
        """Stored as chunks (with a chunk table). Solid resources always are."""
        return self.is_solid or (bool(self.flags & S.RESHDR_FLAG_COMPRESSED)
                                 and self.compression_type != S.COMPRESSION_NONE)


@dataclass(slots=True, eq=False)
class BlobDescriptor:
    hash: bytes
    size: int
    refcnt: int
    rdesc: ResourceDescriptor
    offset_in_res: int = 0
    is_metadata: bool = False
    # Set once the blob's SHA-1 has been checked (True) or found wrong (False).
    verified: bool | None = field(default=None)

    @property
    def hex(self) -> str:
        return self.hash.hex()


@dataclass(slots=True)
class BlobTable:
    blobs: dict[bytes, BlobDescriptor]
    metadata: list[BlobDescriptor]      # in blob-table order: image 1, 2, ...
    solid_resources: list[ResourceDescriptor]
    duplicates: int = 0


def parse_blob_table(data: bytes, hdr: WimHeader,
                     read_at: Callable[[int, int], bytes], lazy: bool = False) -> BlobTable:
    """Parse the blob table bytes. `read_at(offset, size)` reads the WIM file
    (needed for the headers of solid resources). `lazy`: a table without solid resources
    keeps its bytes and makes each BlobDescriptor when first asked for (LazyBlobs)."""
    if len(data) % S.BLOB_DESCRIPTOR_DISK_SIZE:
        log.warning("blob table size %d is not a multiple of %d", len(data),
                    S.BLOB_DESCRIPTOR_DISK_SIZE)
        data = data[: len(data) - len(data) % S.BLOB_DESCRIPTOR_DISK_SIZE]
    if lazy and not any(f & S.RESHDR_FLAG_SOLID for f in data[7::S.BLOB_DESCRIPTOR_DISK_SIZE]):
        return _lazy_table(data, hdr)
    entries = list(S.BLOB_DESCRIPTOR_STRUCT.iter_unpack(data))
    blobs: dict[bytes, BlobDescriptor] = {}
    metadata: list[BlobDescriptor] = []
    solid_all: list[ResourceDescriptor] = []
    run: list[ResourceDescriptor] | None = None
    duplicates = 0
    solid_ok = hdr.wim_version == S.WIM_VERSION_SOLID

    for i, (csize, flags, offset, usize, part, refcnt, hash_) in enumerate(entries):
        size_in_wim = int.from_bytes(csize, "little")
        if not solid_ok:
            flags &= ~S.RESHDR_FLAG_SOLID
        if flags & S.RESHDR_FLAG_SOLID:
            if run is None:
                run = _load_solid_run(entries, i, read_at)
                solid_all.extend(run)
            if usize == S.SOLID_RESOURCE_MAGIC_NUMBER:
                continue                      # a resource entry, not a blob
            blob = _assign_to_solid(run, hash_, size_in_wim, offset, refcnt)
        else:
            run = None
            blob = _plain_blob(i, size_in_wim, flags, offset, usize, part, refcnt, hash_, hdr)
        if hash_ == ZERO_HASH or blob.size == 0:
            continue
        if part != hdr.part_number:
            continue
        if flags & S.RESHDR_FLAG_METADATA:
            if refcnt == 0:
                continue
            blob.is_metadata = True
            if flags & S.RESHDR_FLAG_SOLID:
                raise WimCorruptError("image metadata inside a solid resource is not supported")
            metadata.append(blob)
        elif hash_ in blobs:
            duplicates += 1
        else:
            blobs[hash_] = blob
    if duplicates:
        log.info("ignoring %d duplicate blob table entries", duplicates)
    return BlobTable(blobs, metadata, solid_all, duplicates)


def _plain_blob(i: int, size_in_wim: int, flags: int, offset: int, usize: int, part: int,
                refcnt: int, hash_: bytes, hdr: WimHeader) -> BlobDescriptor:
    """The blob of table entry `i`, stored in a resource of its own."""
    if not flags & S.RESHDR_FLAG_COMPRESSED and size_in_wim != usize:
        raise WimCorruptError(f"blob table entry {i}: uncompressed resource with "
                              f"size_in_wim {size_in_wim} != size {usize}")
    ctype = hdr.compression_type if flags & S.RESHDR_FLAG_COMPRESSED else S.COMPRESSION_NONE
    if flags & S.RESHDR_FLAG_COMPRESSED and ctype == S.COMPRESSION_NONE:
        raise WimCorruptError(f"blob table entry {i}: compressed resource in a WIM "
                              "without a compression type")
    rdesc = ResourceDescriptor(offset, size_in_wim, usize, flags, ctype, hdr.chunk_size, part)
    return BlobDescriptor(hash_, usize, refcnt, rdesc)


_ENTRY = S.BLOB_DESCRIPTOR_DISK_SIZE
_HASH_AT = _ENTRY - 20          # the SHA-1 ends each entry
_SLOT = struct.Struct("<Q")     # the first 8 bytes of a SHA-1: its slot in the index
_REFCNT = struct.Struct("<I")   # an entry's reference count ...
_REFCNT_AT = 7 + 1 + 8 + 8 + 2  # ... after size_in_wim, flags, offset, size, part


class LazyBlobs(MutableMapping):
    """hash -> BlobDescriptor over the bytes of a blob table without solid resources:
    a descriptor is made when first looked up (a mount touches the blobs of the files it
    reads, not all of them). The index is one open-addressing hash table of entry numbers
    (an array of 2-4 slots of 4 bytes per entry, made on the first lookup, in entry order
    so the first of duplicate entries is found first); the hashes stay in the table's
    bytes. Iterating, sizing or changing the map makes
    every descriptor once (the same objects lookups returned); from then on it is a
    plain dict."""

    def __init__(self, data: bytes, hdr: WimHeader) -> None:
        self._data = data
        self._hdr = hdr
        self._slots: array | None = None        # (made on the first lookup, not at open)
        self._mask = 0
        self._made: dict[bytes, BlobDescriptor | None] = {}
        self._all: dict[bytes, BlobDescriptor] | None = None

    def _fields(self, off: int) -> tuple | None:
        """The fields of the entry at `off`, None if the table's rules leave it out."""
        f = S.BLOB_DESCRIPTOR_STRUCT.unpack_from(self._data, off)
        _csize, flags, _offset, usize, part, _refcnt, hash_ = f
        if hash_ == ZERO_HASH or usize == 0 or part != self._hdr.part_number or \
                flags & S.RESHDR_FLAG_METADATA:
            return None
        return f

    def _kept(self) -> Iterator[tuple[int, tuple]]:
        """(offset, fields) of every entry the table's rules keep, in table order
        (duplicates of a hash included)."""
        for off in range(0, len(self._data), _ENTRY):
            f = self._fields(off)
            if f is not None:
                yield off, f

    def _entry(self, off: int) -> BlobDescriptor | None:
        """The blob of the entry at `off`, None if the table's rules leave it out."""
        f = self._fields(off)
        return None if f is None else self._blob(off, f)

    def _blob(self, off: int, f: tuple) -> BlobDescriptor:
        csize, flags, offset, usize, part, refcnt, hash_ = f
        return _plain_blob(off // _ENTRY, int.from_bytes(csize, "little"), flags, offset, usize,
                           part, refcnt, hash_, self._hdr)

    def _index(self) -> None:
        data, n = self._data, len(self._data) // _ENTRY
        bits = max(4, (2 * n).bit_length())
        mask = (1 << bits) - 1
        slots = array("I", bytes(4 << bits))
        slot_of = _SLOT.unpack_from
        for i in range(n):
            slot = slot_of(data, i * _ENTRY + _HASH_AT)[0] & mask
            while slots[slot]:
                slot = (slot + 1) & mask
            slots[slot] = i + 1
        self._slots, self._mask = slots, mask

    def _find(self, h: bytes) -> tuple[int, tuple] | None:
        """(offset, fields) of the first entry of blob `h` the table's rules keep."""
        if self._slots is None:
            self._index()
        if len(h) != 20:
            return None
        slots, mask, data = self._slots, self._mask, self._data
        slot = _SLOT.unpack_from(h)[0] & mask
        while j := slots[slot]:                  # type: ignore[index]
            off = (j - 1) * _ENTRY
            if data[off + _HASH_AT:off + _ENTRY] == h:
                f = self._fields(off)
                if f is not None:
                    return off, f
            slot = (slot + 1) & mask
        return None

    def _lookup(self, h: bytes) -> BlobDescriptor | None:
        b = self._made.get(h, self)
        if b is self:
            found = self._find(h)
            b = self._made[h] = None if found is None else self._blob(*found)
        return b        # type: ignore[return-value]

    def size_of(self, h: bytes) -> int | None:
        """The size of blob `h` (None if the table has none) without making its
        descriptor (attributes of a read-only mount's files)."""
        b = self._all.get(h) if self._all is not None else self._made.get(h, self)
        if b is not self:
            return None if b is None else b.size        # type: ignore[union-attr]
        found = self._find(h)
        return None if found is None else found[1][3]

    def get(self, h, default=None):
        if self._all is not None:
            return self._all.get(h, default)
        b = self._lookup(h)
        return default if b is None else b

    def __getitem__(self, h: bytes) -> BlobDescriptor:
        b = self.get(h)
        if b is None:
            raise KeyError(h)
        return b

    def __contains__(self, h) -> bool:
        return self.get(h) is not None

    def full(self) -> dict[bytes, BlobDescriptor]:
        """Every blob, in table order (the plain dict this map is from now on)."""
        if self._all is None:
            out: dict[bytes, BlobDescriptor] = {}
            duplicates = 0
            for off in range(0, len(self._data), _ENTRY):
                h = self._data[off + _HASH_AT:off + _ENTRY]
                if h in out:
                    duplicates += self._entry(off) is not None
                    continue
                b = self._lookup(h)
                if b is not None:
                    out[h] = b
            if duplicates:
                log.info("ignoring %d duplicate blob table entries", duplicates)
            self._all = out
            self._slots = None
            self._made = {}
        return self._all

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.full())

    def __len__(self) -> int:
        return len(self.full())

    def __setitem__(self, h: bytes, blob: BlobDescriptor) -> None:
        self.full()[h] = blob

    def __delitem__(self, h: bytes) -> None:
        del self.full()[h]

    @property
    def made_whole(self) -> bool:
        """Every descriptor is made (`full()`): the map is a plain dict now."""
        return self._all is not None

    def sizes(self) -> dict[bytes, int]:
        """{hash: size} of every blob, in one pass over the table (for counting many
        entries' sizes without a lookup each)."""
        if self._all is not None:
            return {h: b.size for h, b in self._all.items()}
        out: dict[bytes, int] = {}
        for _off, f in self._kept():
            out.setdefault(f[6], f[3])
        return out

    def table_rows(self, deltas: dict[bytes, int]) -> bytes:
        """The entries of every blob as stored, in table order, with `deltas` added to
        their reference counts (at least 0), without making descriptors: what `full()`
        keeps, for a writer carrying the table over (no solid resources)."""
        data, pack_into = self._data, _REFCNT.pack_into
        out = bytearray()
        seen: set[bytes] = set()
        for off, f in self._kept():
            h = f[6]
            if h in seen:
                continue
            seen.add(h)
            at = len(out)
            out += data[off:off + _ENTRY]
            d = deltas.get(h)
            if d:
                pack_into(out, at + _REFCNT_AT, max(0, f[5] + d))
        return bytes(out)

    def total_size(self) -> int:
        """The uncompressed size of every blob (without making descriptors)."""
        return sum(self.sizes().values())


def _lazy_table(data: bytes, hdr: WimHeader) -> BlobTable:
    metadata: list[BlobDescriptor] = []
    for off in range(0, len(data), _ENTRY):
        if data[off + 7] & S.RESHDR_FLAG_METADATA:
            csize, flags, offset, usize, part, refcnt, hash_ = \
                S.BLOB_DESCRIPTOR_STRUCT.unpack_from(data, off)
            if hash_ == ZERO_HASH or usize == 0 or part != hdr.part_number or refcnt == 0:
                continue
            blob = _plain_blob(off // _ENTRY, int.from_bytes(csize, "little"), flags, offset,
                               usize, part, refcnt, hash_, hdr)
            blob.is_metadata = True
            metadata.append(blob)
    return BlobTable(LazyBlobs(data, hdr), metadata, [], 0)  # type: ignore[arg-type]


def _load_solid_run(entries: list, start: int,
                    read_at: Callable[[int, int], bytes]) -> list[ResourceDescriptor]:
    run: list[ResourceDescriptor] = []
    for csize, flags, offset, usize, part, _refcnt, _hash in entries[start:]:
        if not flags & S.RESHDR_FLAG_SOLID:
            break
        if usize != S.SOLID_RESOURCE_MAGIC_NUMBER:
            continue
        size_in_wim = int.from_bytes(csize, "little")
        raw = read_at(offset, S.SOLID_HEADER_STRUCT.size)
        if len(raw) < S.SOLID_HEADER_STRUCT.size:
            raise WimCorruptError(f"solid resource at {offset} is truncated")
        res_usize, chunk_size, ctype = S.SOLID_HEADER_STRUCT.unpack(raw)
        if ctype not in S.COMPRESSION_NAMES:
            raise WimCorruptError(f"solid resource at {offset}: unknown compression {ctype}")
        if chunk_size == 0 or chunk_size & (chunk_size - 1) or chunk_size > 1 << 30:
            raise WimCorruptError(f"solid resource at {offset}: bad chunk size {chunk_size}")
        run.append(ResourceDescriptor(offset, size_in_wim, res_usize, flags, ctype, chunk_size,
                                      part, is_solid=True))
    return run


def _assign_to_solid(run: list[ResourceDescriptor], hash_: bytes, size: int, offset: int,
                     refcnt: int) -> BlobDescriptor:
    for rdesc in run:
        if offset + size <= rdesc.uncompressed_size:
            return BlobDescriptor(hash_, size, refcnt, rdesc, offset)
        offset -= rdesc.uncompressed_size
        if offset < 0:
            break
    raise WimCorruptError(f"blob {hash_.hex()} lies outside its solid resources")


def build_blob_table(entries: list[tuple[ResourceHeader, int, int, bytes]]) -> bytes:
    """Serialise (reshdr, part_number, refcnt, hash) tuples."""
    pack = S.BLOB_DESCRIPTOR_STRUCT.pack
    return b"".join(pack(rh.size_in_wim.to_bytes(7, "little"), rh.flags, rh.offset_in_wim,
                         rh.uncompressed_size, part, refcnt, hash_)
                    for rh, part, refcnt, hash_ in entries)
