"""The value codec: registry value data <-> Python values <-> reg.exe text.

Data layouts ([MS-RRP] 2.2.5 and winnt.h): REG_SZ / REG_EXPAND_SZ are
UTF-16LE text with a terminating NUL; REG_LINK is UTF-16LE text without one
(a symbolic link target such as ``\\Registry\\Machine\\...``); REG_MULTI_SZ
is a sequence of NUL-terminated UTF-16LE strings ended by an empty string;
REG_DWORD is 4 bytes little-endian, REG_DWORD_BIG_ENDIAN 4 bytes big-endian,
REG_QWORD 8 bytes little-endian; every other type is opaque bytes.
"""

from __future__ import annotations

from .errors import RegfDataError
from .format import (REG_DWORD, REG_DWORD_BIG_ENDIAN, REG_EXPAND_SZ, REG_LINK, REG_MULTI_SZ,
                     REG_QWORD, REG_SZ)

_TEXT = "utf-16-le"
#: integer types: (byte count, byte order)
_INTS = {REG_DWORD: (4, "little"), REG_DWORD_BIG_ENDIAN: (4, "big"), REG_QWORD: (8, "little")}


def _utf16(text: str) -> bytes:
    return text.encode(_TEXT, "surrogatepass")


def _decode_text(raw: bytes) -> str:
    return raw[: len(raw) & ~1].decode(_TEXT, "replace")


def encode_value(vtype: int, value) -> bytes:
    """Python value -> raw data of a value of type *vtype*: str for the
    string types, list[str] (or one str) for REG_MULTI_SZ, int for the
    integer types (taken modulo 2**bits); ``bytes`` are always the raw data
    and ``None`` is empty data for the other types."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if vtype in (REG_SZ, REG_EXPAND_SZ):
        return _utf16(f"{value}\0")
    if vtype == REG_LINK:
        return _utf16(str(value))
    if vtype == REG_MULTI_SZ:
        items = [value] if isinstance(value, str) else value
        return _utf16("".join(f"{s}\0" for s in items)) + b"\0\0"
    if vtype in _INTS:
        size, order = _INTS[vtype]
        return (int(value) & ((1 << 8 * size) - 1)).to_bytes(size, order)
    if value is None:
        return b""
    raise TypeError(f"data for value type {vtype} must be bytes")


def decode_value(vtype: int, raw: bytes):
    """Raw data -> Python value: str (cut at the first NUL) for the string
    types, list[str] for REG_MULTI_SZ, int for integer types of the right
    length; the bytes themselves otherwise."""
    if vtype in (REG_SZ, REG_EXPAND_SZ, REG_LINK):
        return _decode_text(raw).split("\0", 1)[0]
    if vtype == REG_MULTI_SZ:
        parts = _decode_text(raw).split("\0")
        while parts and parts[-1] == "":
            parts.pop()
        return parts
    if vtype in _INTS and len(raw) == _INTS[vtype][0]:
        return int.from_bytes(raw, _INTS[vtype][1])
    return bytes(raw)


def _parse_int(text: str, bits: int) -> int:
    try:
        v = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
    except ValueError:
        raise RegfDataError(f"bad number {text!r}") from None
    if not 0 <= v < (1 << bits):
        raise RegfDataError(f"number {text!r} out of range")
    return v


def parse_value_text(vtype: int, text: str | None, sep: str = "\\0") -> bytes:
    """Raw data from reg.exe ``add /d`` text: REG_SZ / REG_EXPAND_SZ the text
    itself; REG_MULTI_SZ items split on *sep* (default the two characters
    ``\\0``, reg.exe's ``/s``); REG_DWORD / REG_DWORD_BIG_ENDIAN / REG_QWORD
    a decimal or ``0x`` hexadecimal number (empty = 0); every other type
    (REG_BINARY, REG_NONE, ...) hex digits, spaces ignored.  Raises
    :class:`RegfDataError` for text that does not fit the type."""
    text = text or ""
    if vtype in (REG_SZ, REG_EXPAND_SZ):
        return encode_value(vtype, text)
    if vtype == REG_MULTI_SZ:
        if not sep:
            raise RegfDataError("empty REG_MULTI_SZ separator")
        return encode_value(vtype, text.split(sep) if text else [])
    if vtype in _INTS:
        return encode_value(vtype, _parse_int(text or "0", 8 * _INTS[vtype][0]))
    digits = text.replace(" ", "")
    if len(digits) % 2:
        raise RegfDataError("hex data must have an even number of digits")
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise RegfDataError(f"bad hex data {text!r}") from None
