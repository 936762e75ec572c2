"""Normalisers turning our dump, regipy's and hivexml's into one structure:
``{key path: {value name: (type tag, data)}}`` with paths relative to the
root key (root = "").

Data: REG_DWORD / REG_DWORD_BIG_ENDIAN / REG_QWORD -> int, REG_SZ /
REG_EXPAND_SZ / REG_LINK -> text up to the first NUL, REG_MULTI_SZ -> list
of strings, everything else -> the exact bytes.  Oracle quirks normalised
(each is a property of the oracle, not of the hive):

* hivexml and regipy decode string types, so strings are compared as text
  cut at the first NUL (the exact bytes of strings are checked against our
  own writer's input in the edit tests, and hivexml's binary output is exact).
* hivexml prints REG_QWORD as a signed int64 -> taken modulo 2**64.
* hivexml prints value types above 11 as "unknown" without the number, so
  types > 11 are compared as the tag "unknown".
* hivexml prints the REG_DWORD of a value whose data is not 4 bytes long in
  base64 with the type name -> compared as bytes (``_num`` falls back).
* regipy decodes compressed (ASCII-flag) names byte-wise as UTF-8 and
  replaces non-ASCII Latin-1 bytes; such names are compared after the same
  lossy decoding of our name.
* regipy returns binary data as bytes but strings/ints decoded (as above);
  it skips nothing on the hives compared here.
"""

from __future__ import annotations

import base64
import re
import struct
import subprocess
import xml.etree.ElementTree as ET

from servicing.regf import Hive

HIVEX_TYPES = {"none": 0, "string": 1, "expand": 2, "binary": 3, "int32": 4, "int32-be": 5,
               "link": 6, "string-list": 7, "resource-list": 8,
               "full-resource-description": 9, "resource-requirements-list": 10,
               "int64": 11}


def _tag(t: int):
    return t if 0 <= t <= 11 else "unknown"


def _text(raw: bytes) -> str:
    return raw[: len(raw) & ~1].decode("utf-16-le", "replace").split("\0", 1)[0]


def _multi(raw: bytes) -> list[str]:
    s = raw[: len(raw) & ~1].decode("utf-16-le", "replace")
    out = []
    for part in s.split("\0"):
        if part == "":
            break
        out.append(part)
    return out


def strip_multi(items):
    """quirk: hivexml keeps empty strings after the list terminator."""
    items = list(items)
    if "" in items:
        items = items[:items.index("")]
    return items


def ctl(s: str) -> str:
    # XML attribute normalisation turns a newline into a space
    return re.sub("[\x00-\x09\x0b-\x1f]", "?", s).replace("\n", " ")


SKIP = ("skip", None)


def same_as_hivexml(ours_norm: dict, hx: dict) -> list[str]:
    """Paths whose content differs between our dump and hivexml's."""
    a = for_hivexml(ours_norm)
    bad = []
    for p in set(a) | set(hx):
        x, y = a.get(p), hx.get(p)
        if x is None or y is None:
            bad.append(p)
            continue
        y = {n: (SKIP if x.get(n) == SKIP else v) for n, v in y.items()}
        if x != y:
            bad.append(p)
    return sorted(bad)


def for_hivexml(d: dict) -> dict:
    """Our normalised dump adjusted for hivexml's lossy output."""
    out = {}
    for p, vals in d.items():
        nv = {}
        for n, (t, data) in vals.items():
            if isinstance(data, str):
                data = ctl(data)
            elif isinstance(data, list):
                data = [ctl(x) for x in data]
            elif t in (4, 5, 11) and isinstance(data, bytes):
                # quirk: hivexml prints integer values whose data has the
                # wrong length inconsistently (-1, 0, type 5 as 4): skipped
                # here, compared against regipy instead
                nv[ctl(n.split("\0")[0])] = SKIP
                continue
            if t == 5:
                # quirk: hivexml labels REG_DWORD_BIG_ENDIAN "int32" (value decoded right)
                t = 4
            if t == 10:
                # quirk: hivexml has no name for REG_RESOURCE_REQUIREMENTS_LIST
                t = "unknown"
            # quirk: hivexml cuts names at an embedded NUL
            nv[ctl(n.split("\0")[0])] = (t, data)
        out["\\".join(ctl(x.split("\0")[0]) for x in p.split("\\"))] = nv
    return out


def norm_data(t: int, raw: bytes):
    if t in (1, 2, 6):
        return _text(raw)
    if t == 7:
        return _multi(raw)
    if t in (4, 5) and len(raw) == 4:
        return struct.unpack("<I" if t == 4 else ">I", raw)[0]
    if t == 11 and len(raw) == 8:
        return struct.unpack("<Q", raw)[0]
    return bytes(raw)


def ours(hive: Hive | str) -> dict:
    h = Hive.open(hive) if isinstance(hive, str) else hive
    return {p: {n: (_tag(t), norm_data(t, raw)) for n, (t, raw) in vals.items()}
            for p, vals in h.dump().items()}


def hivexml(path: str) -> dict:
    xml = subprocess.run(["hivexml", str(path)], capture_output=True, check=True,
                         timeout=120).stdout
    # quirk: hivexml emits control characters verbatim (not well-formed XML);
    # they become "?" here and in ``ctl()`` on our side.
    xml = re.sub(rb"[\x00-\x09\x0b-\x1f]", b"?", xml)
    root = ET.fromstring(xml)
    out: dict = {}

    def walk(node, parts):
        vals = {}
        for v in node.findall("value"):
            name = "" if v.get("default") == "1" else (v.get("key") or "")
            tname = v.get("type")
            t = HIVEX_TYPES.get(tname, "unknown")
            if v.get("encoding") == "base64":
                raw = base64.b64decode(v.get("value") or "")
                data = norm_data(t, raw) if isinstance(t, int) else raw
            elif t == 7:
                data = [ctl(x) for x in strip_multi(s.text or "" for s in v.findall("string"))]
            elif t in (4, 5):
                data = int(v.get("value")) & 0xFFFFFFFF
            elif t == 11:
                data = int(v.get("value")) & 0xFFFFFFFFFFFFFFFF
            else:
                data = ctl((v.get("value") or "").split("\0", 1)[0])
            vals[ctl(name)] = (t, data)
        out["\\".join(parts)] = vals
        for c in node.findall("node"):
            walk(c, parts + [ctl(c.get("name"))])

    walk(root.find("node"), [])
    return out


def _regipy_name(s: str) -> str:
    return s


def regipy_dump(path: str) -> dict:
    from regipy.registry import RegistryHive
    h = RegistryHive(str(path))
    out = {}
    for sk in h.recurse_subkeys(as_json=False):
        p = sk.path.lstrip("\\")
        vals = {}
        for v in sk.values:
            vals[v.name] = v
        out[p] = vals
    return out


def regipy_norm(path: str) -> dict:
    """regipy's view normalised; values by (type tag, data)."""
    from regipy.registry import RegistryHive
    h = RegistryHive(str(path))
    out = {"": {}}
    for v in h.root.iter_values(as_json=False, trim_values=False):
        out[""][_rname(v.name)] = _rval(v)
    for sk in h.recurse_subkeys(as_json=False):
        p = sk.path.lstrip("\\")
        d = out.setdefault(p, {})
        for v in sk.values:
            d[_rname(v.name)] = _rval(v)
    return out


def _rname(n: str) -> str:
    return "" if n == "(default)" else n


_RT = {"REG_NONE": 0, "REG_SZ": 1, "REG_EXPAND_SZ": 2, "REG_BINARY": 3, "REG_DWORD": 4,
       "REG_DWORD_BIG_ENDIAN": 5, "REG_LINK": 6, "REG_MULTI_SZ": 7, "REG_RESOURCE_LIST": 8,
       "REG_FULL_RESOURCE_DESCRIPTOR": 9, "REG_RESOURCE_REQUIREMENTS_LIST": 10, "REG_QWORD": 11}


def _rval(v):
    t = _RT.get(v.value_type, "unknown")
    data = v.value
    if t in (1, 2, 6) and isinstance(data, str):
        data = data.split("\0", 1)[0]
    elif t == 7 and isinstance(data, list):
        data = [x for x in data]
    return (t, data)
