"""Security-descriptor inheritance for new files and directories (wimfs.format.security.inherit).

Hand-built parent SDs; the expected child SDs are written out ACE by ACE from the
[MS-DTYP] / Windows inheritance rules and compared byte for byte:

* a file inherits OI ACEs (inheritance flags cleared, INHERITED_ACE set);
* a directory inherits CI ACEs (keeping OI/CI, INHERIT_ONLY cleared), or, with NP, an
  effective-only ACE; OI-only ACEs become inherit-only (IO|OI) for files further down;
  OI|NP ACEs do not reach a directory;
* an ACE that is both effective and propagated and names CREATOR OWNER/GROUP or holds generic
  rights is split: an effective ACE (owner/group SID, mapped rights) followed by an
  inherit-only copy of the original;
* the parent's INHERIT_ONLY flag does not stop inheritance; non-inheritable ACEs are dropped;
* SE_DACL_AUTO_INHERITED carries over, SE_DACL_PROTECTED does not; owner and group are the
  parent's (offline there is no creator token); audit flags (SUCCESSFUL_ACCESS) are kept.

Expected bytes use Windows' self-relative layout: header, SACL, DACL, owner, group.
"""

from __future__ import annotations

import struct

import pytest

from tests.helpers.ntfs import ace, acl, sid
from wimfs.format.security import inherit

OI, CI, NP, IO, ID = 0x01, 0x02, 0x04, 0x08, 0x10
SUCCESSFUL_ACCESS = 0x40
ALLOWED, DENIED, AUDIT = 0, 1, 2
GENERIC_READ, GENERIC_WRITE, GENERIC_EXECUTE, GENERIC_ALL = 0x80000000, 0x40000000, \
    0x20000000, 0x10000000
FILE_ALL_ACCESS = 0x001F01FF
FILE_GENERIC_READ, FILE_GENERIC_WRITE, FILE_GENERIC_EXECUTE = 0x00120089, 0x00120116, 0x001200A0
READ_EXECUTE = 0x001200A9
MODIFY = 0x001301BF
DACL_PRESENT, SACL_PRESENT, DACL_AUTO_INHERITED, DACL_PROTECTED, SELF_RELATIVE = \
    0x0004, 0x0010, 0x0400, 0x1000, 0x8000

ADMINS, SYSTEM, USERS, EVERYONE = "S-1-5-32-544", "S-1-5-18", "S-1-5-32-545", "S-1-1-0"
AUTH_USERS, GUESTS, POWER_USERS = "S-1-5-11", "S-1-5-32-546", "S-1-5-32-547"
CREATOR_OWNER, CREATOR_GROUP = "S-1-3-0", "S-1-3-1"
USER = "S-1-5-21-1004336348-1177238915-682003330-1001"



def sd(owner, group, dacl=None, sacl=None, control=0) -> bytes:
    """Self-relative SD laid out header, SACL, DACL, owner, group."""
    out = b""
    off = 20
    o_sacl = o_dacl = 0
    ctrl = SELF_RELATIVE | control
    if sacl is not None:
        o_sacl, out, off = off, out + sacl, off + len(sacl)
        ctrl |= SACL_PRESENT
    if dacl is not None:
        o_dacl, out, off = off, out + dacl, off + len(dacl)
        ctrl |= DACL_PRESENT
    o_owner, out, off = off, out + sid(owner), off + len(sid(owner))
    o_group, out = off, out + sid(group)
    return struct.pack("<BBHIIII", 1, 0, ctrl, o_owner, o_group, o_sacl, o_dacl) + out


PARENT_ACES = [
    ace(ALLOWED, OI | CI, FILE_ALL_ACCESS, SYSTEM),                     # 1 files + dirs
    ace(ALLOWED, CI, READ_EXECUTE, USERS),                              # 2 dirs only
    ace(ALLOWED, OI, READ_EXECUTE, EVERYONE),                           # 3 files only
    ace(ALLOWED, OI | CI | IO, GENERIC_ALL, CREATOR_OWNER),             # 4 IO parent, CO, generic
    ace(ALLOWED, OI | CI | NP, MODIFY, AUTH_USERS),                     # 5 one level only
    ace(DENIED, 0, FILE_GENERIC_WRITE, GUESTS),                         # 6 not inheritable
    ace(ALLOWED, OI | CI, GENERIC_READ | GENERIC_EXECUTE, USER),        # 7 generic rights
    ace(ALLOWED, OI | NP, READ_EXECUTE, POWER_USERS),                   # 8 files, one level
    ace(ALLOWED, OI, GENERIC_WRITE, CREATOR_GROUP),                     # 9 CG, files only
]
PARENT = sd(ADMINS, SYSTEM, acl(*PARENT_ACES), control=DACL_AUTO_INHERITED)

FILE_CHILD = sd(ADMINS, SYSTEM, acl(
    ace(ALLOWED, ID, FILE_ALL_ACCESS, SYSTEM),                          # 1
    ace(ALLOWED, ID, READ_EXECUTE, EVERYONE),                           # 3
    ace(ALLOWED, ID, FILE_ALL_ACCESS, ADMINS),                          # 4 CO -> owner, mapped
    ace(ALLOWED, ID, MODIFY, AUTH_USERS),                               # 5
    ace(ALLOWED, ID, FILE_GENERIC_READ | FILE_GENERIC_EXECUTE, USER),   # 7 mapped
    ace(ALLOWED, ID, READ_EXECUTE, POWER_USERS),                        # 8
    ace(ALLOWED, ID, FILE_GENERIC_WRITE, SYSTEM),                       # 9 CG -> group, mapped
), control=DACL_AUTO_INHERITED)

DIR_CHILD = sd(ADMINS, SYSTEM, acl(
    ace(ALLOWED, OI | CI | ID, FILE_ALL_ACCESS, SYSTEM),                # 1
    ace(ALLOWED, CI | ID, READ_EXECUTE, USERS),                         # 2
    ace(ALLOWED, OI | IO | ID, READ_EXECUTE, EVERYONE),                 # 3 passed on to files
    ace(ALLOWED, ID, FILE_ALL_ACCESS, ADMINS),                          # 4 split: effective
    ace(ALLOWED, OI | CI | IO | ID, GENERIC_ALL, CREATOR_OWNER),        # 4 split: inheritable
    ace(ALLOWED, ID, MODIFY, AUTH_USERS),                               # 5 NP: effective only
    ace(ALLOWED, ID, FILE_GENERIC_READ | FILE_GENERIC_EXECUTE, USER),   # 7 split: effective
    ace(ALLOWED, OI | CI | IO | ID, GENERIC_READ | GENERIC_EXECUTE, USER),  # 7 inheritable
    ace(ALLOWED, OI | IO | ID, GENERIC_WRITE, CREATOR_GROUP),           # 9 passed on
), control=DACL_AUTO_INHERITED)                                         # 8: OI|NP: not a dir's

# A file two levels down (inheriting from DIR_CHILD).
GRANDCHILD_FILE = sd(ADMINS, SYSTEM, acl(
    ace(ALLOWED, ID, FILE_ALL_ACCESS, SYSTEM),
    ace(ALLOWED, ID, READ_EXECUTE, EVERYONE),
    ace(ALLOWED, ID, FILE_ALL_ACCESS, ADMINS),
    ace(ALLOWED, ID, FILE_GENERIC_READ | FILE_GENERIC_EXECUTE, USER),
    ace(ALLOWED, ID, FILE_GENERIC_WRITE, SYSTEM),
), control=DACL_AUTO_INHERITED)

GRANDCHILD_DIR = sd(ADMINS, SYSTEM, acl(
    ace(ALLOWED, OI | CI | ID, FILE_ALL_ACCESS, SYSTEM),
    ace(ALLOWED, CI | ID, READ_EXECUTE, USERS),
    ace(ALLOWED, OI | IO | ID, READ_EXECUTE, EVERYONE),
    ace(ALLOWED, ID, FILE_ALL_ACCESS, ADMINS),
    ace(ALLOWED, OI | CI | IO | ID, GENERIC_ALL, CREATOR_OWNER),
    ace(ALLOWED, ID, FILE_GENERIC_READ | FILE_GENERIC_EXECUTE, USER),
    ace(ALLOWED, OI | CI | IO | ID, GENERIC_READ | GENERIC_EXECUTE, USER),
    ace(ALLOWED, OI | IO | ID, GENERIC_WRITE, CREATOR_GROUP),
), control=DACL_AUTO_INHERITED)


def _diff(got: bytes, want: bytes) -> str:
    return f"\n got: {got.hex()}\nwant: {want.hex()}"


@pytest.mark.parametrize("parent,is_dir,want", [
    (PARENT, False, FILE_CHILD),
    (PARENT, True, DIR_CHILD),
    (DIR_CHILD, False, GRANDCHILD_FILE),
    (DIR_CHILD, True, GRANDCHILD_DIR),
], ids=["file", "dir", "grandchild-file", "grandchild-dir"])
def test_inherit_exact_bytes(parent, is_dir, want):
    got = inherit(parent, is_dir)
    assert got == want, _diff(got, want)


def test_ci_np_reaches_only_direct_child_dir():
    parent = sd(ADMINS, SYSTEM, acl(ace(ALLOWED, CI | NP, MODIFY, USERS)))
    child_dir = inherit(parent, True)
    assert child_dir == sd(ADMINS, SYSTEM, acl(ace(ALLOWED, ID, MODIFY, USERS))), \
        _diff(child_dir, b"")
    # Nothing reaches a file or a grandchild directory: they get the default DACL.
    default = acl(ace(ALLOWED, 0, FILE_ALL_ACCESS, SYSTEM), ace(ALLOWED, 0, FILE_ALL_ACCESS, ADMINS))
    assert inherit(parent, False) == sd(ADMINS, SYSTEM, default)
    assert inherit(child_dir, True) == sd(ADMINS, SYSTEM, default)


def test_ci_np_with_creator_owner_and_generic_maps_without_split():
    parent = sd(USER, USERS, acl(ace(ALLOWED, CI | NP | IO, GENERIC_ALL, CREATOR_OWNER)))
    want = sd(USER, USERS, acl(ace(ALLOWED, ID, FILE_ALL_ACCESS, USER)))
    got = inherit(parent, True)
    assert got == want, _diff(got, want)


def test_protected_not_inherited_auto_inherited_kept_only_if_set():
    aces = acl(ace(ALLOWED, OI | CI, FILE_ALL_ACCESS, SYSTEM))
    parent = sd(ADMINS, SYSTEM, aces, control=DACL_PROTECTED | DACL_AUTO_INHERITED)
    want = sd(ADMINS, SYSTEM, acl(ace(ALLOWED, ID, FILE_ALL_ACCESS, SYSTEM)),
              control=DACL_AUTO_INHERITED)
    assert inherit(parent, False) == want
    parent2 = sd(ADMINS, SYSTEM, aces)
    assert inherit(parent2, False) == sd(ADMINS, SYSTEM,
                                         acl(ace(ALLOWED, ID, FILE_ALL_ACCESS, SYSTEM)))


def test_sacl_inherited_with_audit_flags():
    dacl = acl(ace(ALLOWED, OI | CI, FILE_ALL_ACCESS, SYSTEM))
    sacl = acl(ace(AUDIT, OI | CI | SUCCESSFUL_ACCESS, FILE_GENERIC_WRITE, EVERYONE),
               ace(AUDIT, SUCCESSFUL_ACCESS, FILE_ALL_ACCESS, EVERYONE))
    parent = sd(ADMINS, SYSTEM, dacl, sacl)
    want_file = sd(ADMINS, SYSTEM, acl(ace(ALLOWED, ID, FILE_ALL_ACCESS, SYSTEM)),
                   acl(ace(AUDIT, SUCCESSFUL_ACCESS | ID, FILE_GENERIC_WRITE, EVERYONE)))
    want_dir = sd(ADMINS, SYSTEM, acl(ace(ALLOWED, OI | CI | ID, FILE_ALL_ACCESS, SYSTEM)),
                  acl(ace(AUDIT, OI | CI | SUCCESSFUL_ACCESS | ID, FILE_GENERIC_WRITE,
                          EVERYONE)))
    got = inherit(parent, False)
    assert got == want_file, _diff(got, want_file)
    got = inherit(parent, True)
    assert got == want_dir, _diff(got, want_dir)


def test_no_dacl_parent_gives_no_dacl():
    parent = sd(ADMINS, SYSTEM)
    assert inherit(parent, False) == sd(ADMINS, SYSTEM)


def test_parent_layout_owner_first_is_accepted():
    """ntfs-3g lays SDs out owner, group, DACL; the child is still in Windows layout."""
    from tests.helpers.ntfs import SD_DIR_INHERITABLE
    child = inherit(SD_DIR_INHERITABLE, False)
    rev, _, ctrl, o_owner, o_group, o_sacl, o_dacl = struct.unpack_from("<BBHIIII", child)
    assert rev == 1 and ctrl & DACL_PRESENT and o_sacl == 0
    assert o_dacl == 20 and o_owner > o_dacl and o_group > o_owner
    assert child[o_owner:o_group] == sid(ADMINS)


def test_nothing_inheritable_gives_default_dacl_not_an_empty_one():
    """A parent whose DACL passes nothing on: the child gets the default DACL of the
    SYSTEM token (SYSTEM and Administrators full control), never an empty DACL."""
    parent = sd(ADMINS, SYSTEM, acl(ace(ALLOWED, 0, FILE_ALL_ACCESS, EVERYONE)))
    want = sd(ADMINS, SYSTEM, acl(ace(ALLOWED, 0, FILE_ALL_ACCESS, SYSTEM),
                                  ace(ALLOWED, 0, FILE_ALL_ACCESS, ADMINS)))
    got = inherit(parent, False)
    assert got == want, _diff(got, want)
    assert inherit(parent, True) == want
