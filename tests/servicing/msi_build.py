"""Compound files for the hostile-input tests, built by libgsf (``gsf createole``) from a
real patch's streams (``gsf list`` / ``gsf cat``), with a summary-information property
set written here (the OLE property-set layout: byte order 0xFFFE, one section of
FMTID_SummaryInformation, (PID, offset) pairs, typed values). ``gsf props`` reads the
result back, so the bytes are checked by a reader that is not ours."""

from __future__ import annotations

import re
import struct
import subprocess
import uuid
from pathlib import Path

FMTID_SUMMARY = uuid.UUID("F29F85E0-4FF9-1068-AB91-08002B27B3D9").bytes_le
VT_I2, VT_I4, VT_LPSTR, VT_FILETIME = 2, 3, 30, 64


def property_set(props: dict[int, tuple[int, object]]) -> bytes:
    """*props*: PID -> (VT_*, value)."""
    bodies = []
    for pid, (vt, v) in sorted(props.items()):
        if vt == VT_I2:
            body = struct.pack("<HHhH", vt, 0, v, 0)
        elif vt == VT_I4:
            body = struct.pack("<HHi", vt, 0, v)
        elif vt == VT_FILETIME:
            body = struct.pack("<HHQ", vt, 0, v)
        else:
            s = str(v).encode("cp1252") + b"\0"
            body = struct.pack("<HHI", vt, 0, len(s)) + s + b"\0" * (-len(s) % 4)
        bodies.append((pid, body))
    offset = 8 + 8 * len(bodies)
    table, data = b"", b""
    for pid, body in bodies:
        table += struct.pack("<II", pid, offset + len(data))
        data += body
    section = struct.pack("<II", offset + len(data), len(bodies)) + table + data
    head = struct.pack("<HHI16sI", 0xFFFE, 0, 0x00020006, b"\0" * 16, 1)
    return head + FMTID_SUMMARY + struct.pack("<I", 48) + section


def patch_summary(targets: str, patch_code: str, transforms: str) -> bytes:
    return property_set({1: (VT_I2, 1252), 2: (VT_LPSTR, "Hostile"),
                         7: (VT_LPSTR, targets), 8: (VT_LPSTR, transforms),
                         9: (VT_LPSTR, patch_code), 15: (VT_I4, 5), 19: (VT_I4, 4)})


_LINE = re.compile(r"^([fd])\s+(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+)?(\d+) (.+)$")


def rebuild(src: Path, out: Path, work: Path, replace: dict[str, bytes]) -> Path:
    """A copy of compound file *src* with the streams named in *replace* (``a/b`` paths,
    raw names) given new contents; libgsf writes it."""
    listing = subprocess.run(["gsf", "list", str(src)], check=True, capture_output=True,
                             text=True).stdout.splitlines()
    tree = work / "tree"
    tree.mkdir(parents=True)
    top = []
    for line in listing[1:]:
        m = _LINE.match(line)
        if not m or m.group(3) == "*root*":
            continue
        kind, name = m.group(1), m.group(3)
        if "/" not in name:
            top.append(name)
        if kind == "d":
            (tree / name).mkdir()
            continue
        data = replace.get(name)
        if data is None:
            data = subprocess.run(["gsf", "cat", str(src), name], check=True,
                                  capture_output=True).stdout
        (tree / name).write_bytes(data)
    subprocess.run(["gsf", "createole", str(out.resolve()), *top], cwd=tree, check=True,
                   capture_output=True)
    return out


def gsf_prop(path: Path, name: str) -> str:
    text = subprocess.run(["gsf", "props", str(path), name], check=True,
                          capture_output=True, text=True).stdout.strip()
    return re.sub(r'^.*?=\s*"?|"$', "", text)
