"""The value codec (servicing/regf/values.py): Python values and reg.exe
``/d`` text to raw data.  Expected bytes are written out by hand from the
[MS-RRP] 2.2.5 layouts (UTF-16LE strings with a NUL, REG_MULTI_SZ ended by
an empty string, little-endian DWORD/QWORD, big-endian
REG_DWORD_BIG_ENDIAN) and reg.exe's rules for ``add /d``."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from servicing.regf import (REG_BINARY, REG_DWORD, REG_DWORD_BIG_ENDIAN, REG_EXPAND_SZ,
                            REG_LINK, REG_MULTI_SZ, REG_NONE, REG_QWORD, REG_SZ, RegfDataError)
from servicing.regf.values import decode_value, encode_value, parse_value_text

ENCODED = [
    (REG_SZ, "Ab", b"A\0b\0\0\0"),
    (REG_SZ, "", b"\0\0"),
    (REG_SZ, "é€", b"\xe9\x00\xac\x20\0\0"),
    (REG_EXPAND_SZ, "%W%", b"%\0W\0%\0\0\0"),
    (REG_LINK, "\\R", b"\\\0R\0"),                       # no terminating NUL
    (REG_MULTI_SZ, ["a", "bc"], b"a\0\0\0b\0c\0\0\0\0\0"),
    (REG_MULTI_SZ, [], b"\0\0"),
    (REG_MULTI_SZ, "x", b"x\0\0\0\0\0"),
    (REG_DWORD, 0x12345678, b"\x78\x56\x34\x12"),
    (REG_DWORD, -1, b"\xff\xff\xff\xff"),
    (REG_DWORD_BIG_ENDIAN, 0x12345678, b"\x12\x34\x56\x78"),
    (REG_QWORD, 0x0102030405060708, b"\x08\x07\x06\x05\x04\x03\x02\x01"),
    (REG_BINARY, b"\x00\xff", b"\x00\xff"),
    (REG_DWORD, b"\x01\x02", b"\x01\x02"),               # bytes are always raw
    (REG_NONE, None, b""),
]


@pytest.mark.parametrize("vtype,value,raw", ENCODED)
def test_encode_value(vtype, value, raw):
    assert encode_value(vtype, value) == raw


def test_encode_value_refuses_non_bytes_for_opaque_types():
    with pytest.raises(TypeError):
        encode_value(REG_BINARY, 5)


@pytest.mark.parametrize("vtype,raw,value", [
    (REG_SZ, b"A\0b\0\0\0junk", "Ab"),                   # cut at the first NUL
    (REG_SZ, b"A\0b", "A"),                              # odd length: last byte ignored
    (REG_LINK, b"\\\0R\0", "\\R"),
    (REG_MULTI_SZ, b"a\0\0\0b\0\0\0\0\0\0\0", ["a", "b"]),
    (REG_DWORD, b"\x78\x56\x34\x12", 0x12345678),
    (REG_DWORD, b"\x78\x56\x34", b"\x78\x56\x34"),       # wrong length: bytes
    (REG_DWORD_BIG_ENDIAN, b"\x12\x34\x56\x78", 0x12345678),
    (REG_QWORD, b"\x01" + bytes(7), 1),
    (REG_BINARY, b"\x01\x02", b"\x01\x02"),
])
def test_decode_value(vtype, raw, value):
    assert decode_value(vtype, raw) == value


TEXT = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)))


@given(st.sampled_from([REG_SZ, REG_EXPAND_SZ, REG_LINK]), TEXT)
def test_text_round_trip(vtype, s):
    assert decode_value(vtype, encode_value(vtype, s)) == s


@given(st.lists(TEXT.filter(bool)))
def test_multi_sz_round_trip(items):
    assert decode_value(REG_MULTI_SZ, encode_value(REG_MULTI_SZ, items)) == items


@given(st.sampled_from([(REG_DWORD, 32), (REG_DWORD_BIG_ENDIAN, 32), (REG_QWORD, 64)]),
       st.data())
def test_int_round_trip(kind, data):
    vtype, bits = kind
    n = data.draw(st.integers(0, (1 << bits) - 1))
    raw = encode_value(vtype, n)
    assert len(raw) == bits // 8 and decode_value(vtype, raw) == n
    assert parse_value_text(vtype, str(n)) == raw == parse_value_text(vtype, hex(n))


@pytest.mark.parametrize("vtype,text,sep,raw", [
    (REG_SZ, "C:\\Windows", "\\0", b"C\0:\0\\\0W\0i\0n\0d\0o\0w\0s\0\0\0"),
    (REG_SZ, None, "\\0", b"\0\0"),                       # /d omitted: empty string
    (REG_EXPAND_SZ, "%SystemRoot%", "\\0",
     b"%\0S\0y\0s\0t\0e\0m\0R\0o\0o\0t\0%\0\0\0"),
    (REG_MULTI_SZ, "a\\0b", "\\0", b"a\0\0\0b\0\0\0\0\0"),  # the two characters \ and 0
    (REG_MULTI_SZ, "a#b#c", "#", b"a\0\0\0b\0\0\0c\0\0\0\0\0"),
    (REG_MULTI_SZ, "a\\0b", "#", b"a\0\\\x000\0b\0\0\0\0\0"),
    (REG_MULTI_SZ, "", "\\0", b"\0\0"),
    (REG_DWORD, "16", "\\0", b"\x10\0\0\0"),
    (REG_DWORD, "0x10", "\\0", b"\x10\0\0\0"),
    (REG_DWORD, "0XfF", "\\0", b"\xff\0\0\0"),
    (REG_DWORD, "4294967295", "\\0", b"\xff\xff\xff\xff"),
    (REG_DWORD, "", "\\0", b"\0\0\0\0"),
    (REG_DWORD_BIG_ENDIAN, "0x01020304", "\\0", b"\x01\x02\x03\x04"),
    (REG_QWORD, "0x100000000", "\\0", b"\0\0\0\0\x01\0\0\0"),
    (REG_QWORD, "18446744073709551615", "\\0", b"\xff" * 8),
    (REG_BINARY, "00ff10Ab", "\\0", b"\x00\xff\x10\xab"),
    (REG_BINARY, "00 ff", "\\0", b"\x00\xff"),
    (REG_BINARY, "", "\\0", b""),
    (REG_NONE, "0102", "\\0", b"\x01\x02"),
    (0x12345, "beef", "\\0", b"\xbe\xef"),
])
def test_parse_value_text(vtype, text, sep, raw):
    assert parse_value_text(vtype, text, sep) == raw


@pytest.mark.parametrize("vtype,text,sep", [
    (REG_DWORD, "4294967296", "\\0"),                     # out of range
    (REG_DWORD, "-1", "\\0"),
    (REG_DWORD, "12x", "\\0"),
    (REG_QWORD, "0x10000000000000000", "\\0"),
    (REG_BINARY, "abc", "\\0"),                           # odd number of digits
    (REG_BINARY, "zz", "\\0"),
    (REG_NONE, "0g", "\\0"),
    (REG_MULTI_SZ, "a", ""),                              # empty separator
])
def test_parse_value_text_errors(vtype, text, sep):
    with pytest.raises(RegfDataError) as ei:
        parse_value_text(vtype, text, sep)
    assert ei.value.exit_code == 2 and "\n" not in str(ei.value)
