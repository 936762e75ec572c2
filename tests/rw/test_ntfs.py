"""Windows metadata on a read-write mount of the NTFS-rich image (mkntfs + ntfs-3g fixture):
named streams, security descriptors (inherited and set), DOS names, attributes, reparse
points and hard links. After the commit, ``wimlib-imagex apply`` onto a fresh NTFS volume read
through ntfs-3g must show exactly what the mount showed."""

from __future__ import annotations

import os
import struct

import pytest

from tests.helpers import (NTFS_PROBE_XATTRS, assert_same_tree, make_ntfs_wim, require_tool,
                           snapshot, wimlib_apply, wimlib_verify)
from tests.helpers.ntfs import (SD_DIR_INHERITABLE, SD_USER_RO_DENY_GUESTS, mkntfs,
                                ntfs3g_mounted, ntfs_snapshot)
from tests.helpers.wimlib import wimlib_dir_detailed
from wimfs.format.security import inherit

pytestmark = [pytest.mark.mount]

ARCHIVE, HIDDEN, READONLY, DIRECTORY = 0x20, 0x2, 0x1, 0x10


def test_ntfs_metadata_roundtrip(tmp_path, rw_factory):
    require_tool("mkntfs", "ntfs-3g")
    nw = make_ntfs_wim(tmp_path / "fx")
    wim = nw.wim
    m = rw_factory(wim)
    mnt = m.mnt
    # new files/dirs in a directory with inheritable ACEs get the inherited SD
    (mnt / "acl_dir" / "new_file.txt").write_bytes(b"new in acl_dir\n")
    (mnt / "acl_dir" / "new_dir").mkdir()
    (mnt / "acl_dir" / "new_dir" / "nested.txt").write_bytes(b"nested\n")
    parent_sd = os.getxattr(mnt / "acl_dir", "system.ntfs_acl")
    assert parent_sd == SD_DIR_INHERITABLE
    f_sd = os.getxattr(mnt / "acl_dir" / "new_file.txt", "system.ntfs_acl")
    d_sd = os.getxattr(mnt / "acl_dir" / "new_dir", "system.ntfs_acl")
    assert f_sd == inherit(parent_sd, False)
    assert d_sd == inherit(parent_sd, True)
    assert os.getxattr(mnt / "acl_dir" / "new_dir" / "nested.txt",
                       "system.ntfs_acl") == inherit(d_sd, False)
    assert struct.unpack("<I", os.getxattr(mnt / "acl_dir" / "new_file.txt",
                                           "system.ntfs_attrib"))[0] == ARCHIVE
    # named streams: add to an existing file, replace, remove, on a directory
    os.setxattr(mnt / "plain.txt", "user.added", b"added stream\n")
    os.setxattr(mnt / "streams.txt", "user.stream1", b"replaced first stream\n")
    os.removexattr(mnt / "streams.txt", "user.binary")
    os.setxattr(mnt / "dir_with_stream", "user.second", b"second dir stream")
    with open(mnt / "big_with_stream.bin", "r+b") as fh:      # data changes, stream stays
        fh.seek(1000)
        fh.write(b"patched")
    # security descriptor, attributes, DOS name set explicitly
    os.setxattr(mnt / "plain.txt", "system.ntfs_acl", SD_USER_RO_DENY_GUESTS)
    os.setxattr(mnt / "hidden.txt", "system.ntfs_attrib", struct.pack("<I", ARCHIVE))
    os.chmod(mnt / "plain.txt", 0o444)
    (mnt / "Brand New Long Name.txt").write_bytes(b"dos\n")
    os.setxattr(mnt / "Brand New Long Name.txt", "system.ntfs_dos_name", b"BRANDN~1.TXT")
    # hard links and renames that keep streams and SDs with the file
    os.link(mnt / "streams.txt", mnt / "hl" / "streams_link.txt")
    os.rename(mnt / "acl_user.txt", mnt / "acl_dir" / "moved_acl_user.txt")
    os.unlink(mnt / "hl" / "triple_2")
    os.symlink("plain.txt", mnt / "new_symlink")

    seen = ntfs_snapshot(mnt, raw_xattrs=True)
    m.unmount("--commit")
    v = wimlib_verify(wim)
    assert v.returncode == 0, v.stderr

    det = wimlib_dir_detailed(wim, 1)
    assert det["acl_dir/new_file.txt"]["sd"] == f_sd.hex()
    assert det["plain.txt"]["sd"] == SD_USER_RO_DENY_GUESTS.hex()
    assert det["plain.txt"]["streams"] == {"": 11, "added": 13}
    assert det["Brand New Long Name.txt"]["short_name"] == "BRANDN~1.TXT"

    vol = mkntfs(tmp_path / "out.img")
    wimlib_apply(wim, 1, vol)
    with ntfs3g_mounted(vol, tmp_path / "out_mnt") as om:
        got = ntfs_snapshot(om, raw_xattrs=True)
    assert_same_tree(seen, got, "rw mount", "ntfs-3g after apply")
    _ = (snapshot, NTFS_PROBE_XATTRS, HIDDEN, READONLY, DIRECTORY)
