"""Import and export of ``.reg`` files (regedit format).

Two dialects exist:

* ``Windows Registry Editor Version 5.00`` -- usually UTF-16LE with a BOM
  (regedit's export), sometimes UTF-8; ``hex(2)``/``hex(7)`` data are
  UTF-16LE bytes.
* ``REGEDIT4`` -- ANSI (we read it as cp1252 / UTF-8); ``hex(2)``/``hex(7)``
  data are ANSI bytes, converted to UTF-16LE on import like regedit does.

Grammar handled: ``[KEY]`` creates a key (and parents), ``[-KEY]`` deletes a
key tree, ``"name"=...`` / ``@=...`` set a value, ``"name"=-`` deletes it;
data forms ``"string"`` (escapes ``\\\\`` and ``\\"``), ``dword:XXXXXXXX``,
``hex:..`` (REG_BINARY), ``hex(N):..`` (type N in hex); a trailing
backslash continues a line; ``;`` starts a comment line.

:func:`parse` returns a list of :class:`RegEdit`, applied by the caller
(:func:`servicing.registry.edits.apply`).  :func:`format_reg` produces
text that :func:`parse` reads back to the same (type, bytes).
"""

from __future__ import annotations

import codecs

from wimfs.errors import UsageError

from servicing.regf.format import REG_BINARY, REG_DWORD, REG_EXPAND_SZ, REG_MULTI_SZ, REG_SZ
from servicing.regf.values import decode_value, encode_value
from servicing.registry.edits import EditKind, RegEdit

HEADER5 = "Windows Registry Editor Version 5.00"
HEADER4 = "REGEDIT4"


class RegFileError(UsageError):
    """Syntax error in a .reg file (message includes the line number)."""


#: one .reg operation (kept under its old name)
Op = RegEdit


def decode_text(blob: bytes) -> str:
    """Decode a .reg file: UTF-16 (BOM), UTF-8 (with or without BOM), or
    cp1252 for REGEDIT4 files that are not valid UTF-8."""
    if blob.startswith(codecs.BOM_UTF16_LE) or blob.startswith(codecs.BOM_UTF16_BE):
        return blob.decode("utf-16")
    if blob.startswith(codecs.BOM_UTF8):
        return blob[3:].decode("utf-8")
    if len(blob) >= 2 and blob[1:2] == b"\0" and blob[0:1] != b"\0":
        return blob.decode("utf-16-le")
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError:
        return blob.decode("cp1252", "replace")


def _logical_lines(text: str):
    """Yield (line number, logical line) joining backslash continuations."""
    buf = ""
    start = 0
    for i, line in enumerate(text.splitlines(), 1):
        stripped = line.rstrip()
        if not buf:
            start = i
            cur = stripped
        else:
            cur = stripped.lstrip()
        if cur.endswith("\\") and ("=hex" in buf + cur or buf):
            buf += cur[:-1]
            continue
        buf += cur
        yield start, buf
        buf = ""
    if buf:
        yield start, buf


def _parse_string(s: str, pos: int, lineno: int) -> tuple[str, int]:
    """Parse a quoted string starting at s[pos] == '"'; returns (text, end)."""
    out = []
    i = pos + 1
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            out.append(s[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    raise RegFileError(f"line {lineno}: unterminated string")


def _hexbytes(s: str, lineno: int) -> bytes:
    s = s.replace(" ", "").replace("\t", "").rstrip(",")
    if not s:
        return b""
    try:
        return bytes(int(x, 16) for x in s.split(","))
    except ValueError:
        raise RegFileError(f"line {lineno}: bad hex data") from None


def parse(text: str) -> list[Op]:
    """Parse .reg text into operations."""
    lines = _logical_lines(text.lstrip("\ufeff"))
    header = None
    for lineno, line in lines:
        if line.strip():
            header = line.strip()
            break
    if header == HEADER5:
        v4 = False
    elif header == HEADER4:
        v4 = True
    else:
        raise RegFileError(f"not a .reg file (first line {header!r})")
    ops: list[Op] = []
    key = None
    for lineno, line in lines:
        st = line.strip()
        if not st or st.startswith(";"):
            continue
        if st.startswith("["):
            if not st.endswith("]"):
                raise RegFileError(f"line {lineno}: unterminated key name")
            inner = st[1:-1]
            if inner.startswith("-"):
                ops.append(Op(EditKind.DELETE_KEY, inner[1:].strip()))
                key = None
            else:
                key = inner.strip()
                ops.append(Op(EditKind.CREATE_KEY, key))
            continue
        if key is None:
            raise RegFileError(f"line {lineno}: value outside a key")
        if st.startswith("@"):
            name, rest = "", st[1:]
        elif st.startswith('"'):
            name, end = _parse_string(st, 0, lineno)
            rest = st[end:]
        else:
            raise RegFileError(f"line {lineno}: expected a value name")
        rest = rest.lstrip()
        if not rest.startswith("="):
            raise RegFileError(f"line {lineno}: expected '='")
        rest = rest[1:].strip()
        if rest == "-":
            ops.append(Op(EditKind.DELETE_VALUE, key, name))
            continue
        ops.append(Op(EditKind.SET_VALUE, key, name, *_parse_data(rest, lineno, v4)))
    return ops


def _parse_data(rest: str, lineno: int, v4: bool) -> tuple[int, bytes]:
    """(type, raw data) of the value data text after ``=``."""
    if rest.startswith('"'):
        s, end = _parse_string(rest, 0, lineno)
        if rest[end:].strip():
            raise RegFileError(f"line {lineno}: junk after string")
        return REG_SZ, encode_value(REG_SZ, s)
    low = rest.lower()
    if low.startswith("dword:"):
        try:
            v = int(rest[6:].strip(), 16)
        except ValueError:
            raise RegFileError(f"line {lineno}: bad dword") from None
        if not 0 <= v <= 0xFFFFFFFF:
            raise RegFileError(f"line {lineno}: dword out of range")
        return REG_DWORD, encode_value(REG_DWORD, v)
    if low.startswith("hex:"):
        return REG_BINARY, _hexbytes(rest[4:], lineno)
    if low.startswith("hex("):
        close = rest.find(")")
        if close < 0 or rest[close + 1:close + 2] != ":":
            raise RegFileError(f"line {lineno}: bad hex(N): prefix")
        try:
            t = int(rest[4:close], 16)
        except ValueError:
            raise RegFileError(f"line {lineno}: bad value type") from None
        data = _hexbytes(rest[close + 2:], lineno)
        if v4 and t in (REG_SZ, REG_EXPAND_SZ, REG_MULTI_SZ):
            # REGEDIT4 strings are ANSI bytes; the registry holds UTF-16LE
            data = data.decode("cp1252", "replace").encode("utf-16-le")
        return t, data
    raise RegFileError(f"line {lineno}: unrecognised value data {rest[:20]!r}")


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _hexdata(prefix: str, data: bytes) -> str:
    """hex data wrapped like regedit: lines under 80 columns, ``,\\``."""
    parts = [f"{b:02x}" for b in data]
    lines = []
    cur = prefix
    for i, p in enumerate(parts):
        piece = p + ("," if i < len(parts) - 1 else "")
        if len(cur) + len(piece) > 77 and cur.strip():
            lines.append(cur + "\\")
            cur = "  "
        cur += piece
    lines.append(cur)
    return "\n".join(lines)


def format_value(name: str, vtype: int, data: bytes) -> str:
    lhs = "@" if name == "" else _quote(name)
    if vtype == REG_SZ:
        # a quoted string only when it gives back exactly these bytes
        s = decode_value(REG_SZ, data)
        if "\r" not in s and "\n" not in s and encode_value(REG_SZ, s) == data:
            return f"{lhs}={_quote(s)}"
    if vtype == REG_DWORD and len(data) == 4:
        return f"{lhs}=dword:{decode_value(REG_DWORD, data):08x}"
    if vtype == REG_BINARY:
        return _hexdata(lhs + "=hex:", data)
    return _hexdata(f"{lhs}=hex({vtype:x}):", data)


def format_reg(keys) -> str:
    """.reg text (version 5) for an iterable of (full key path,
    [(name, type, bytes)])."""
    out = [HEADER5, ""]
    for path, values in keys:
        out.append(f"[{path}]")
        for name, vtype, data in values:
            out.append(format_value(name, vtype, data))
        out.append("")
    return "\r\n".join(out) + "\r\n"


def encode_file(text: str, encoding: str = "utf-16") -> bytes:
    """Bytes of a .reg file: UTF-16LE with BOM (regedit's choice) or UTF-8."""
    if encoding == "utf-16":
        return codecs.BOM_UTF16_LE + text.encode("utf-16-le", "surrogatepass")
    return text.encode("utf-8", "surrogatepass")
