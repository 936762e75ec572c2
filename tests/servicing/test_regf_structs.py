"""Precompiled struct.Struct tables of the regf engine agree with their
construct declarations (servicing/regf/structs.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from servicing.regf import format as F
from servicing.regf import structs as S


def _values(parsed):
    """Leaf field values of a parsed construct in declaration order."""
    out = []
    for k, v in parsed.items():
        if k.startswith("_"):
            continue
        if hasattr(v, "items"):
            out.extend(_values(v))
        else:
            out.append(v)
    return out


def test_precompiled_sizes_match_construct():
    for name, (compiled, declared) in S.PRECOMPILED.items():
        assert compiled.size == declared.sizeof(), name


def test_documented_sizes():
    assert S.BaseBlock.sizeof() == F.BASE_BLOCK_SIZE == 4096
    assert S.LogBaseBlock.sizeof() == 512
    assert S.HbinHeader.sizeof() == F.HBIN_HEADER_SIZE == 32
    assert S.KeyNode.sizeof() == F.NK_NAME - 4 == 76
    assert S.KeyValue.sizeof() == F.VK_NAME - 4 == 20
    assert S.KeySecurity.sizeof() == F.SK_DESC - 4 == 20
    assert S.HvLEHeader.sizeof() == 40


def test_field_offsets_match_construct():
    """The NK_*/SK_* offsets used by the engine are where construct puts
    the fields (+4 for the cell size)."""
    def off(st_, field):
        n = 0
        for sc in st_.subcons:
            if sc.name == field:
                return n
            n += sc.sizeof()
        raise KeyError(field)
    nk = {"flags": F.NK_FLAGS, "last_written": F.NK_TIME, "parent": F.NK_PARENT,
          "subkeys": F.NK_NSUB, "subkeys_list": F.NK_SUBLIST, "values": F.NK_NVAL,
          "values_list": F.NK_VALLIST, "security": F.NK_SECURITY, "class_name": F.NK_CLASS,
          "max_subkey_name": F.NK_MAXSUBNAME, "max_subkey_class": F.NK_MAXSUBCLASS,
          "max_value_name": F.NK_MAXVALNAME, "max_value_data": F.NK_MAXVALDATA,
          "name_length": F.NK_NAMELEN, "class_length": F.NK_CLASSLEN}
    for field, o in nk.items():
        assert off(S.KeyNode, field) + 4 == o, field
    for field, o in {"flink": F.SK_FLINK, "blink": F.SK_BLINK,
                     "reference_count": F.SK_REFCOUNT}.items():
        assert off(S.KeySecurity, field) + 4 == o, field
    assert off(S.BaseBlock, "checksum") == 508
    assert off(S.BaseBlock, "fields") == 4


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_fields_match_on_random_bytes(data):
    for name, (compiled, declared) in S.PRECOMPILED.items():
        raw = data.draw(st.binary(min_size=compiled.size, max_size=compiled.size), label=name)
        assert tuple(_values(declared.parse(raw))) == compiled.unpack(raw), name
        # and building the construct from the unpacked fields gives the bytes back
        assert compiled.pack(*compiled.unpack(raw)) == raw, name


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=508, max_size=508))
def test_base_block_class_matches_construct(head):
    raw = b"regf" + head[4:] + bytes(4096 - 508)
    bb = F.BaseBlock(raw)
    c = S.BaseBlock.parse(raw)
    f = c.fields
    assert (bb.seq1, bb.seq2, bb.timestamp, bb.major, bb.minor, bb.file_type, bb.file_format,
            bb.root, bb.bins_size, bb.clustering) == \
        (f.primary_seq, f.secondary_seq, f.last_written, f.major, f.minor, f.file_type,
         f.file_format, f.root_cell, f.hive_bins_size, f.clustering_factor)
    assert bb.checksum_ok == (c.checksum == F.checksum(raw))


def test_lists_parse_engine_output(tmp_path):
    """construct parses the list and db cells the engine writes."""
    from servicing.regf import REG_BINARY, Hive
    h = Hive.create(tmp_path / "h")
    for i in range(1100):
        h.create_key("Many\\k%04d" % i)
    h.root.set_value("big", REG_BINARY, b"x" * 40000)
    d = h._d
    many = h.key("Many").offset
    nk = S.KeyNode.parse(bytes(d[many + 4: many + 80]))
    assert nk.signature == b"nk" and nk.subkeys == 1100
    ri = S.IndexRoot.parse(bytes(d[nk.subkeys_list + 4:]))
    assert ri.header.signature == b"ri" and ri.header.count == 2
    leaves = [S.HashLeaf.parse(bytes(d[o + 4:])) for o in ri.subkeys_lists]
    assert sum(lf.header.count for lf in leaves) == 1100
    assert all(e.name_hash == F.lh_hash(h._nk_name(e.key_node)) for lf in leaves for e in lf.elements)
    vk_off = h.root.value("big").offset
    vk = S.KeyValue.parse(bytes(d[vk_off + 4: vk_off + 24]))
    db = S.BigData.parse(bytes(d[vk.data_offset + 4: vk.data_offset + 12]))
    assert db.signature == b"db" and db.segments == 3
