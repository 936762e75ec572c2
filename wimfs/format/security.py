"""Self-relative security descriptors: parsing, building, and the ACL inheritance
Windows applies when a file or directory is created ([MS-DTYP] 2.4.6, 2.5.3.4.x
"CreateSecurityDescriptor"/"ComputeACL" with a parent and no creator descriptor).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from wimfs.errors import WimCorruptError

# Control flags
SE_DACL_PRESENT = 0x0004
SE_SACL_PRESENT = 0x0010
SE_DACL_AUTO_INHERITED = 0x0400
SE_SACL_AUTO_INHERITED = 0x0800
SE_DACL_PROTECTED = 0x1000
SE_SACL_PROTECTED = 0x2000
SE_SELF_RELATIVE = 0x8000

# ACE flags
OBJECT_INHERIT_ACE = 0x01
CONTAINER_INHERIT_ACE = 0x02
NO_PROPAGATE_INHERIT_ACE = 0x04
INHERIT_ONLY_ACE = 0x08
INHERITED_ACE = 0x10
INHERIT_FLAGS = OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE | NO_PROPAGATE_INHERIT_ACE | \
    INHERIT_ONLY_ACE

# ACE types whose body is ACCESS_MASK followed by a SID
SIMPLE_ACE_TYPES = {0, 1, 2, 3, 9, 10, 11, 13}

CREATOR_OWNER = b"\x01\x01\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00"   # S-1-3-0
CREATOR_GROUP = b"\x01\x01\x00\x00\x00\x00\x00\x03\x01\x00\x00\x00"   # S-1-3-1

GENERIC_MAP = {0x80000000: 0x00120089,  # GENERIC_READ -> FILE_GENERIC_READ
               0x40000000: 0x00120116,  # GENERIC_WRITE -> FILE_GENERIC_WRITE
               0x20000000: 0x001200A0,  # GENERIC_EXECUTE -> FILE_GENERIC_EXECUTE
               0x10000000: 0x001F01FF}  # GENERIC_ALL -> FILE_ALL_ACCESS
GENERIC_BITS = 0xF0000000


@dataclass(slots=True)
class Ace:
    type: int
    flags: int
    body: bytes          # everything after the 4-byte header

    @property
    def mask(self) -> int | None:
        return struct.unpack_from("<I", self.body)[0] if self.type in SIMPLE_ACE_TYPES else None

    @property
    def sid(self) -> bytes | None:
        if self.type not in SIMPLE_ACE_TYPES:
            return None
        return _sid_at(self.body, 4)

    def with_(self, flags: int | None = None, mask: int | None = None,
              sid: bytes | None = None) -> Ace:
        body = self.body
        if self.type in SIMPLE_ACE_TYPES and (mask is not None or sid is not None):
            old_sid = self.sid or b""
            m = self.mask if mask is None else mask
            body = struct.pack("<I", m) + (sid if sid is not None else old_sid) + \
                body[4 + len(old_sid):]
        return Ace(self.type, self.flags if flags is None else flags, body)

    def build(self) -> bytes:
        size = 4 + len(self.body)
        pad = (-size) & 3
        return struct.pack("<BBH", self.type, self.flags, size + pad) + self.body + bytes(pad)


@dataclass(slots=True)
class SecurityDescriptor:
    control: int
    owner: bytes | None
    group: bytes | None
    sacl: list[Ace] | None
    dacl: list[Ace] | None

    @classmethod
    def parse(cls, data: bytes) -> SecurityDescriptor:
        if len(data) < 20:
            raise WimCorruptError("security descriptor too short")
        rev, _sbz, control, o_owner, o_group, o_sacl, o_dacl = struct.unpack_from("<BBHIIII",
                                                                                   data)
        if rev != 1:
            raise WimCorruptError(f"security descriptor revision {rev}")
        owner = _sid_at(data, o_owner) if o_owner else None
        group = _sid_at(data, o_group) if o_group else None
        sacl = _acl_at(data, o_sacl) if control & SE_SACL_PRESENT and o_sacl else None
        dacl = _acl_at(data, o_dacl) if control & SE_DACL_PRESENT and o_dacl else None
        return cls(control, owner, group, sacl, dacl)

    def build(self) -> bytes:
        """Self-relative form, laid out as Windows does: SACL, DACL, owner, group."""
        out = bytearray(20)
        offs = {"sacl": 0, "dacl": 0, "owner": 0, "group": 0}
        control = self.control | SE_SELF_RELATIVE
        if self.sacl is not None:
            offs["sacl"] = len(out)
            out += _build_acl(self.sacl)
            control |= SE_SACL_PRESENT
        if self.dacl is not None:
            offs["dacl"] = len(out)
            out += _build_acl(self.dacl)
            control |= SE_DACL_PRESENT
        if self.owner is not None:
            offs["owner"] = len(out)
            out += self.owner
        if self.group is not None:
            offs["group"] = len(out)
            out += self.group
        struct.pack_into("<BBHIIII", out, 0, 1, 0, control, offs["owner"], offs["group"],
                         offs["sacl"], offs["dacl"])
        return bytes(out)


def _sid_at(data: bytes, off: int) -> bytes:
    if off + 8 > len(data):
        raise WimCorruptError("SID outside the security descriptor")
    n = data[off + 1]
    end = off + 8 + 4 * n
    if data[off] != 1 or n > 15 or end > len(data):
        raise WimCorruptError("invalid SID")
    return bytes(data[off:end])


def _acl_at(data: bytes, off: int) -> list[Ace]:
    if off + 8 > len(data):
        raise WimCorruptError("ACL outside the security descriptor")
    _rev, _s1, size, count, _s2 = struct.unpack_from("<BBHHH", data, off)
    end = off + size
    if end > len(data) or size < 8:
        raise WimCorruptError("ACL size out of range")
    aces = []
    p = off + 8
    for _ in range(count):
        if p + 4 > end:
            raise WimCorruptError("ACE outside its ACL")
        t, f, s = struct.unpack_from("<BBH", data, p)
        if s < 4 or p + s > end:
            raise WimCorruptError("invalid ACE size")
        aces.append(Ace(t, f, bytes(data[p + 4:p + s])))
        p += s
    return aces


def _build_acl(aces: list[Ace]) -> bytes:
    body = b"".join(a.build() for a in aces)
    # Revision 4 is needed for object ACEs (types 5-8), 2 otherwise.
    rev = 4 if any(5 <= a.type <= 8 for a in aces) else 2
    return struct.pack("<BBHHH", rev, 0, 8 + len(body), len(aces), 0) + body


def _map_generic(mask: int) -> int:
    out = mask & ~GENERIC_BITS
    for bit, specific in GENERIC_MAP.items():
        if mask & bit:
            out |= specific
    return out


def inherit_acl(parent: list[Ace], is_dir: bool, owner: bytes | None,
                group: bytes | None) -> list[Ace]:
    """The ACEs a new child gets from its parent's inheritable ACEs."""
    out: list[Ace] = []
    for ace in parent:
        f = ace.flags
        oi, ci, np_ = f & OBJECT_INHERIT_ACE, f & CONTAINER_INHERIT_ACE, \
            f & NO_PROPAGATE_INHERIT_ACE
        if is_dir:
            if ci:
                effective = True
                propagate = not np_
            elif oi and not np_:
                effective = False          # only passed on to files further down
                propagate = True
            else:
                continue
        else:
            if not oi:
                continue
            effective, propagate = True, False
        sid = ace.sid
        creator = sid in (CREATOR_OWNER, CREATOR_GROUP)
        mask = ace.mask
        needs_mapping = mask is not None and bool(mask & GENERIC_BITS)
        if effective and propagate and (creator or needs_mapping):
            # Split: an effective ACE for this object, an inherit-only one to pass on.
            eff_sid = (owner if sid == CREATOR_OWNER else group) if creator else None
            out.append(ace.with_(flags=INHERITED_ACE, mask=_map_generic(mask),
                                 sid=eff_sid if eff_sid is not None else None))
            out.append(ace.with_(flags=(f & ~NO_PROPAGATE_INHERIT_ACE) | INHERIT_ONLY_ACE |
                                 INHERITED_ACE))
        elif effective and propagate:
            out.append(ace.with_(flags=(f & ~INHERIT_ONLY_ACE) | INHERITED_ACE))
        elif effective:
            eff_sid = None
            if creator:
                eff_sid = owner if sid == CREATOR_OWNER else group
            new_mask = _map_generic(mask) if needs_mapping else None
            out.append(ace.with_(flags=(f & ~INHERIT_FLAGS) | INHERITED_ACE, mask=new_mask,
                                 sid=eff_sid))
        else:
            out.append(ace.with_(flags=f | INHERIT_ONLY_ACE | INHERITED_ACE))
    return out


SID_LOCAL_SYSTEM = b"\x01\x01\x00\x00\x00\x00\x00\x05\x12\x00\x00\x00"            # S-1-5-18
SID_ADMINISTRATORS = b"\x01\x02\x00\x00\x00\x00\x00\x05\x20\x00\x00\x00\x20\x02\x00\x00"  # S-1-5-32-544
FILE_ALL_ACCESS = 0x001F01FF


def default_dacl() -> list[Ace]:
    """What a new object gets when its parent passes nothing on: Windows uses the
    creating token's default DACL; offline servicing runs as SYSTEM, whose default DACL
    grants SYSTEM and Administrators full control. (An empty DACL would deny everyone.)"""
    return [Ace(0, 0, struct.pack("<I", FILE_ALL_ACCESS) + SID_LOCAL_SYSTEM),
            Ace(0, 0, struct.pack("<I", FILE_ALL_ACCESS) + SID_ADMINISTRATORS)]


def inherit(parent_sd: bytes, is_dir: bool) -> bytes:
    """Security descriptor for a new child of a directory with `parent_sd`. Owner and
    group are the parent's (offline, there is no creator token)."""
    p = SecurityDescriptor.parse(parent_sd)
    control = SE_SELF_RELATIVE
    dacl = sacl = None
    if p.dacl is not None:
        dacl = inherit_acl(p.dacl, is_dir, p.owner, p.group)
        if dacl:
            control |= SE_DACL_PRESENT | (p.control & SE_DACL_AUTO_INHERITED)
        else:
            dacl = default_dacl()
            control |= SE_DACL_PRESENT
    if p.sacl is not None:
        sacl = inherit_acl(p.sacl, is_dir, p.owner, p.group)
        control |= SE_SACL_PRESENT | (p.control & SE_SACL_AUTO_INHERITED)
    return SecurityDescriptor(control, p.owner, p.group, sacl, dacl).build()
