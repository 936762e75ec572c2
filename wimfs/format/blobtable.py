"""The blob table: where each blob (content addressed by SHA-1) is stored.

A normal entry describes one blob stored in its own resource. In solid WIMs
(version 0xE00), a run of consecutive entries flagged SOLID describes a set of
solid resources (entries whose uncompressed size is SOLID_RESOURCE_MAGIC_NUMBER)
and blobs inside them; a blob's offset counts through the uncompressed data of
the run's resources in order, and its size is in the size_in_wim field.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
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
                     read_at: Callable[[int, int], bytes]) -> BlobTable:
    """Parse the blob table bytes. `read_at(offset, size)` reads the WIM file
    (needed for the headers of solid resources)."""
    if len(data) % S.BLOB_DESCRIPTOR_DISK_SIZE:
        log.warning("blob table size %d is not a multiple of %d", len(data),
                    S.BLOB_DESCRIPTOR_DISK_SIZE)
        data = data[: len(data) - len(data) % S.BLOB_DESCRIPTOR_DISK_SIZE]
    entries = list(S.BLOB_DESCRIPTOR_STRUCT.iter_unpack(data))
    blobs: dict[bytes, BlobDescriptor] = {}
    metadata: list[BlobDescriptor] = []
    solid_all: list[ResourceDescriptor] = []
    run: list[ResourceDescriptor] | None = None
    duplicates = 0
    default_ctype = hdr.compression_type
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
            if not flags & S.RESHDR_FLAG_COMPRESSED and size_in_wim != usize:
                raise WimCorruptError(f"blob table entry {i}: uncompressed resource with "
                                      f"size_in_wim {size_in_wim} != size {usize}")
            ctype = default_ctype if flags & S.RESHDR_FLAG_COMPRESSED else S.COMPRESSION_NONE
            if flags & S.RESHDR_FLAG_COMPRESSED and ctype == S.COMPRESSION_NONE:
                raise WimCorruptError(f"blob table entry {i}: compressed resource in a WIM "
                                      "without a compression type")
            rdesc = ResourceDescriptor(offset, size_in_wim, usize, flags, ctype,
                                       hdr.chunk_size, part)
            blob = BlobDescriptor(hash_, usize, refcnt, rdesc)
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
