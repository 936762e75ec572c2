"""Precompiled struct.Struct tables agree with their construct declarations."""

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from wimfs.format import structs as S
from wimfs.format.header import ResourceHeader, WimHeader


def test_precompiled_sizes_match_construct():
    for name, (compiled, declared) in S.PRECOMPILED.items():
        assert compiled.size == declared.sizeof(), name


def test_documented_sizes():
    assert S.HeaderDisk.sizeof() == S.WIM_HEADER_DISK_SIZE == 208
    assert S.ResourceHeaderDisk.sizeof() == S.RESHDR_DISK_SIZE == 24
    assert S.BlobDescriptorDisk.sizeof() == S.BLOB_DESCRIPTOR_DISK_SIZE == 50
    assert S.DentryDisk.sizeof() == S.DENTRY_DISK_SIZE == 102
    assert S.ExtraStreamEntryDisk.sizeof() == S.EXTRA_STREAM_DISK_SIZE == 38


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=50, max_size=50))
def test_blob_descriptor_fields_match(raw):
    c = S.BlobDescriptorDisk.parse(raw)
    size, flags, off, usize, part, refcnt, h = S.BLOB_DESCRIPTOR_STRUCT.unpack(raw)
    assert (c.reshdr.size_in_wim, c.reshdr.flags, c.reshdr.offset_in_wim,
            c.reshdr.uncompressed_size, c.part_number, c.refcnt, c.hash) == \
        (size, flags, off, usize, part, refcnt, h)


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=102, max_size=102))
def test_dentry_fields_match(raw):
    c = S.DentryDisk.parse(raw)
    t = S.DENTRY_STRUCT.unpack(raw)
    assert (c.length, c.attributes, c.security_id, c.subdir_offset, c.unused_1, c.unused_2,
            c.creation_time, c.last_access_time, c.last_write_time, c.main_hash,
            c.unknown_0x54, c.reparse_or_link, c.num_extra_streams, c.short_name_nbytes,
            c.name_nbytes) == t


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=38, max_size=38))
def test_stream_entry_fields_match(raw):
    c = S.ExtraStreamEntryDisk.parse(raw)
    assert (c.length, c.reserved, c.hash, c.name_nbytes) == S.EXTRA_STREAM_STRUCT.unpack(raw)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**56 - 1), st.integers(0, 255), st.integers(0, 2**64 - 1),
       st.integers(0, 2**64 - 1))
def test_reshdr_roundtrip(size, flags, off, usize):
    rh = ResourceHeader(size, flags, off, usize)
    raw = rh.build()
    assert len(raw) == 24
    assert ResourceHeader.parse(raw) == rh
    assert ResourceHeader.from_construct(S.ResourceHeaderDisk.parse(raw)) == rh


def test_header_roundtrip():
    h = WimHeader(flags=S.HDR_FLAG_COMPRESSION | S.HDR_FLAG_COMPRESS_LZX, image_count=2,
                  blob_table_reshdr=ResourceHeader(100, 2, 208, 100), boot_idx=1)
    raw = h.build()
    assert len(raw) == 208
    assert WimHeader.parse(raw) == h
    assert struct.unpack_from("<I", raw, 12)[0] == S.WIM_VERSION_DEFAULT


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=208, max_size=208))
def test_header_fields_match(raw):
    c = S.HeaderDisk.parse(raw)
    t = S.HEADER_STRUCT.unpack(raw)
    reshdrs = [S.ResourceHeaderDisk.build(r) for r in (
        c.blob_table_reshdr, c.xml_data_reshdr, c.boot_metadata_reshdr)]
    assert t == (c.magic, c.hdr_size, c.wim_version, c.flags, c.chunk_size, c.guid,
                 c.part_number, c.total_parts, c.image_count, *reshdrs, c.boot_idx,
                 S.ResourceHeaderDisk.build(c.integrity_table_reshdr), c.unused)
    # The resource headers inside it, field by field.
    for packed, r in zip(reshdrs, (c.blob_table_reshdr, c.xml_data_reshdr,
                                    c.boot_metadata_reshdr)):
        assert S.RESHDR_STRUCT.unpack(packed) == (r.size_in_wim, r.flags, r.offset_in_wim,
                                                  r.uncompressed_size)


def test_header_builds_as_declared():
    """The precompiled build and the construct build of the same header are equal."""
    h = WimHeader(flags=S.HDR_FLAG_COMPRESSION | S.HDR_FLAG_COMPRESS_XPRESS, image_count=3,
                  part_number=2, total_parts=3, chunk_size=1 << 15,
                  blob_table_reshdr=ResourceHeader(0x123456789ABC, 6, 0x1122334455, 77),
                  xml_data_reshdr=ResourceHeader(5, 2, 6, 7), boot_idx=2,
                  integrity_table_reshdr=ResourceHeader(9, 0, 10, 9))
    rh = lambda r: dict(size_in_wim=r.size_in_wim.to_bytes(7, "little"), flags=r.flags,  # noqa: E731
                        offset_in_wim=r.offset_in_wim, uncompressed_size=r.uncompressed_size)
    assert h.build() == S.HeaderDisk.build(dict(
        magic=S.WIM_MAGIC, hdr_size=208, wim_version=h.wim_version, flags=h.flags,
        chunk_size=h.chunk_size, guid=h.guid, part_number=2, total_parts=3, image_count=3,
        blob_table_reshdr=rh(h.blob_table_reshdr), xml_data_reshdr=rh(h.xml_data_reshdr),
        boot_metadata_reshdr=rh(h.boot_metadata_reshdr), boot_idx=2,
        integrity_table_reshdr=rh(h.integrity_table_reshdr), unused=bytes(60)))
