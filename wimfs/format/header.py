"""The WIM header and resource headers (in-memory forms and their codecs)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from wimfs.errors import NotAWimError, UnsupportedWimError, WimCorruptError
from wimfs.format import structs as S


@dataclass(slots=True)
class ResourceHeader:
    """Location of a resource: where it is, how big it is stored and unpacked."""

    size_in_wim: int = 0
    flags: int = 0
    offset_in_wim: int = 0
    uncompressed_size: int = 0

    @classmethod
    def parse(cls, data: bytes) -> ResourceHeader:
        return cls(int.from_bytes(data[0:7], "little"), data[7],
                   int.from_bytes(data[8:16], "little"), int.from_bytes(data[16:24], "little"))

    @classmethod
    def from_construct(cls, c) -> ResourceHeader:
        return cls(int.from_bytes(c.size_in_wim, "little"), c.flags, c.offset_in_wim,
                   c.uncompressed_size)

    def build(self) -> bytes:
        return S.RESHDR_STRUCT.pack(self.size_in_wim.to_bytes(7, "little"), self.flags,
                                    self.offset_in_wim, self.uncompressed_size)

    @property
    def is_compressed(self) -> bool:
        return bool(self.flags & S.RESHDR_FLAG_COMPRESSED)

    @property
    def is_solid(self) -> bool:
        return bool(self.flags & S.RESHDR_FLAG_SOLID)

    @property
    def end(self) -> int:
        return self.offset_in_wim + self.size_in_wim


@dataclass(slots=True)
class WimHeader:
    wim_version: int = S.WIM_VERSION_DEFAULT
    flags: int = 0
    chunk_size: int = 32768
    guid: bytes = field(default_factory=lambda: uuid.uuid4().bytes)
    part_number: int = 1
    total_parts: int = 1
    image_count: int = 0
    blob_table_reshdr: ResourceHeader = field(default_factory=ResourceHeader)
    xml_data_reshdr: ResourceHeader = field(default_factory=ResourceHeader)
    boot_metadata_reshdr: ResourceHeader = field(default_factory=ResourceHeader)
    boot_idx: int = 0
    integrity_table_reshdr: ResourceHeader = field(default_factory=ResourceHeader)
    pipable: bool = False

    @classmethod
    def parse(cls, data: bytes, file_size: int | None = None) -> WimHeader:
        if len(data) < 8 or data[:8] not in (S.WIM_MAGIC, S.PWM_MAGIC):
            if data[:4] == b"MSCF":
                raise NotAWimError("not a WIM file (this is a CAB archive)")
            raise NotAWimError("not a WIM file (no MSWIM header)")
        if len(data) < S.WIM_HEADER_DISK_SIZE:
            raise WimCorruptError("truncated WIM header")
        (magic, hdr_size, wim_version, flags, chunk_size, guid, part_number, total_parts,
         image_count, blob_table, xml_data, boot_metadata, boot_idx, integrity,
         _unused) = S.HEADER_STRUCT.unpack_from(data)
        if hdr_size != S.WIM_HEADER_DISK_SIZE:
            raise WimCorruptError(f"bad WIM header size {hdr_size}")
        if wim_version not in (S.WIM_VERSION_DEFAULT, S.WIM_VERSION_SOLID):
            if wim_version == 0x10E00:
                raise UnsupportedWimError("encrypted ESD files are not supported "
                                          "(decrypt it first)")
            raise UnsupportedWimError(f"unsupported WIM version {wim_version:#x}")
        hdr = cls(
            wim_version=wim_version, flags=flags, chunk_size=chunk_size, guid=guid,
            part_number=part_number, total_parts=total_parts, image_count=image_count,
            blob_table_reshdr=ResourceHeader.parse(blob_table),
            xml_data_reshdr=ResourceHeader.parse(xml_data),
            boot_metadata_reshdr=ResourceHeader.parse(boot_metadata),
            boot_idx=boot_idx,
            integrity_table_reshdr=ResourceHeader.parse(integrity),
            pipable=magic == S.PWM_MAGIC,
        )
        hdr.validate(file_size)
        return hdr

    def validate(self, file_size: int | None) -> None:
        if self.pipable:
            raise UnsupportedWimError("pipable WIMs (wimlib's WLPWM format) are not supported")
        if self.part_number == 0 or self.part_number > self.total_parts:
            raise WimCorruptError(f"bad part number {self.part_number}/{self.total_parts}")
        if self.flags & S.HDR_FLAG_COMPRESSION:
            cs = self.chunk_size
            if cs == 0 or cs & (cs - 1) or cs > (1 << 30):
                raise WimCorruptError(f"bad chunk size {cs}")
        if self.image_count > 1 << 20:
            raise WimCorruptError(f"implausible image count {self.image_count}")
        if file_size is not None:
            for name in ("blob_table_reshdr", "xml_data_reshdr", "integrity_table_reshdr"):
                rh = getattr(self, name)
                if rh.size_in_wim and rh.end > file_size:
                    raise WimCorruptError(f"WIM is truncated: {name.split('_reshdr')[0]} "
                                          f"ends at {rh.end} but the file has {file_size} bytes")

    @property
    def compression_type(self) -> int:
        if not self.flags & S.HDR_FLAG_COMPRESSION:
            return S.COMPRESSION_NONE
        if self.flags & S.HDR_FLAG_COMPRESS_LZX:
            return S.COMPRESSION_LZX
        if self.flags & (S.HDR_FLAG_COMPRESS_XPRESS | S.HDR_FLAG_COMPRESS_XPRESS_2):
            return S.COMPRESSION_XPRESS
        if self.flags & S.HDR_FLAG_COMPRESS_LZMS:
            return S.COMPRESSION_LZMS
        raise UnsupportedWimError(f"unknown compression flags {self.flags:#x}")

    @property
    def flag_names(self) -> list[str]:
        return [n for bit, n in S.HDR_FLAG_NAMES.items() if self.flags & bit]

    def build(self) -> bytes:
        return S.HEADER_STRUCT.pack(
            S.PWM_MAGIC if self.pipable else S.WIM_MAGIC, S.WIM_HEADER_DISK_SIZE,
            self.wim_version, self.flags, self.chunk_size, self.guid, self.part_number,
            self.total_parts, self.image_count, self.blob_table_reshdr.build(),
            self.xml_data_reshdr.build(), self.boot_metadata_reshdr.build(), self.boot_idx,
            self.integrity_table_reshdr.build(), bytes(60))
