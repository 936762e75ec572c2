"""Reparse point buffers (symbolic links and junctions).

WIMs store a reparse point's data without its 8-byte header; the tag lives in
the dentry and `rp_reserved` is the header's Reserved field.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from wimfs.format import structs as S

_hdr = struct.Struct("<IHH")


@dataclass(slots=True)
class LinkReparsePoint:
    tag: int
    substitute_name: str
    print_name: str
    flags: int = 0

    @property
    def is_relative(self) -> bool:
        return self.tag == S.IO_REPARSE_TAG_SYMLINK and bool(self.flags & S.SYMBOLIC_LINK_RELATIVE)


def full_reparse_buffer(tag: int, rp_reserved: int, data: bytes) -> bytes:
    return _hdr.pack(tag, len(data), rp_reserved) + data


def parse_link(tag: int, data: bytes) -> LinkReparsePoint | None:
    """Parse symlink/junction data; None if not a link or malformed."""
    if tag == S.IO_REPARSE_TAG_SYMLINK:
        fixed = 12
    elif tag == S.IO_REPARSE_TAG_MOUNT_POINT:
        fixed = 8
    else:
        return None
    if len(data) < fixed:
        return None
    so, sl, po, pl = struct.unpack_from("<HHHH", data, 0)
    flags = struct.unpack_from("<I", data, 8)[0] if fixed == 12 else 0
    buf = data[fixed:]
    if so + sl > len(buf) or po + pl > len(buf) or (so | sl | po | pl) & 1:
        return None
    try:
        sub = buf[so:so + sl].decode("utf-16-le")
        prn = buf[po:po + pl].decode("utf-16-le")
    except UnicodeDecodeError:
        return None
    return LinkReparsePoint(tag, sub, prn, flags)


_NT_PREFIXES = ("\\??\\", "\\DosDevices\\", "\\Device\\")


def link_target(link: LinkReparsePoint, rp_flags: int, altroot: str | None) -> str:
    """The UNIX form of a link target, as wimlib's mount presents it.

    Relative symlinks: backslashes become slashes. Absolute targets: the NT
    device part (``\\??\\C:``) is dropped; if the target was fixed at capture
    (rpfix) and `altroot` is given, the target is made to point inside it.
    """
    target = link.substitute_name
    rpfix_ok = False
    if not link.is_relative:
        for prefix in _NT_PREFIXES:
            if target.startswith(prefix):
                rest = target[len(prefix):].lstrip("\\")
                cut = rest.find("\\")
                target = rest[cut:] if cut >= 0 else ""
                break
        rpfix_ok = not rp_flags & S.RP_FLAG_NOT_FIXED
    # Swap separators: "\" is the NT separator, and a "/" in an NT name is kept as "\".
    target = target.translate({0x5C: 0x2F, 0x2F: 0x5C})
    if rpfix_ok and altroot:
        return altroot.rstrip("/") + target if target else altroot
    return target or "/"


def make_symlink(target: str, relative: bool) -> bytes:
    """Reparse data (without header) for a Windows symbolic link to `target` (UNIX form)."""
    nt = target.translate({0x2F: 0x5C, 0x5C: 0x2F})
    if not relative:
        nt = "\\??\\C:" + nt
    sub = nt.encode("utf-16-le")
    prn = (nt[6:] if not relative else nt).encode("utf-16-le")
    flags = S.SYMBOLIC_LINK_RELATIVE if relative else 0
    return struct.pack("<HHHHI", 0, len(sub), len(sub), len(prn), flags) + sub + prn
