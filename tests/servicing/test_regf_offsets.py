"""The named field offsets of servicing/regf/format.py agree with the
construct declarations of servicing/regf/structs.py (field offsets computed
here from the declared field sizes)."""

from __future__ import annotations

import pytest

from servicing.regf import format as F
from servicing.regf import logs as L
from servicing.regf import structs as S


def field_offset(decl, name: str) -> int:
    """Offset of field *name* in a construct Struct: the sizes before it."""
    off = 0
    for sub in decl.subcons:
        if sub.name == name:
            return off
        off += sub.sizeof()
    raise KeyError(name)


CELL = {   # constant -> (declaration, field); offsets count the cell size field
    "NK_FLAGS": (S.KeyNode, "flags"), "NK_TIME": (S.KeyNode, "last_written"),
    "NK_PARENT": (S.KeyNode, "parent"), "NK_NSUB": (S.KeyNode, "subkeys"),
    "NK_SUBLIST": (S.KeyNode, "subkeys_list"), "NK_NVAL": (S.KeyNode, "values"),
    "NK_VALLIST": (S.KeyNode, "values_list"), "NK_SECURITY": (S.KeyNode, "security"),
    "NK_CLASS": (S.KeyNode, "class_name"), "NK_MAXSUBNAME": (S.KeyNode, "max_subkey_name"),
    "NK_MAXSUBCLASS": (S.KeyNode, "max_subkey_class"),
    "NK_MAXVALNAME": (S.KeyNode, "max_value_name"),
    "NK_MAXVALDATA": (S.KeyNode, "max_value_data"), "NK_NAMELEN": (S.KeyNode, "name_length"),
    "NK_CLASSLEN": (S.KeyNode, "class_length"),
    "VK_NAMELEN": (S.KeyValue, "name_length"), "VK_DSIZE": (S.KeyValue, "data_size"),
    "VK_DOFF": (S.KeyValue, "data_offset"), "VK_TYPE": (S.KeyValue, "data_type"),
    "VK_FLAGS": (S.KeyValue, "flags"),
    "SK_FLINK": (S.KeySecurity, "flink"), "SK_BLINK": (S.KeySecurity, "blink"),
    "SK_REFCOUNT": (S.KeySecurity, "reference_count"),
    "SK_DESCLEN": (S.KeySecurity, "descriptor_size"),
}


@pytest.mark.parametrize("const", sorted(CELL))
def test_cell_field_offsets(const):
    decl, field = CELL[const]
    assert getattr(F, const) == F.CELL_SIZE_FIELD + field_offset(decl, field)


def test_other_offsets():
    assert F.CELL_SIZE_FIELD == S.CellHeader.sizeof()
    assert F.NK_NAME == F.CELL_SIZE_FIELD + S.KeyNode.sizeof()
    assert F.VK_NAME == F.CELL_SIZE_FIELD + S.KeyValue.sizeof()
    assert F.SK_DESC == F.CELL_SIZE_FIELD + S.KeySecurity.sizeof()
    assert F.VK_DATA.size == S.KeyValueData.sizeof()
    assert F.VK_DOFF - F.VK_DSIZE == field_offset(S.KeyValueData, "data_offset")
    assert F.HBIN_SIZE == field_offset(S.HbinHeader, "size")
    assert F.BASE_FILE_NAME == field_offset(S.BaseBlock, "file_name")
    assert F.BASE_FILE_NAME_SIZE == S.BaseBlock.subcons[2].sizeof()
    assert F.BASE_CHECKSUM == field_offset(S.BaseBlock, "checksum")
    assert F.LOG_BASE_SIZE == L.ENTRIES == S.LogBaseBlock.sizeof()
