"""The journal's typed records and the system.ntfs_* codec, without an image."""

from __future__ import annotations

import errno
import json
import struct

import pytest

from tests.helpers.ntfs import SD_DIR_INHERITABLE
from wimfs.image import Inode
from wimfs.overlay import FsError
from wimfs.overlay import journal as J
from wimfs.overlay import ntfs_xattrs as nx


def test_every_record_round_trips_through_json():
    samples = [
        J.Base("/x.wim", 2, "ab:10"), J.CommitMark("ab:20"), J.Stage("/f", "", "0a1b"),
        J.Create("/d/f", "file", 0o100644, 0, 0, None, "0100", [1, 2, 3], 4),
        J.Unlink("/f", 5), J.Rmdir("/d"), J.Rename("/a", "/b", 2, 6), J.Link("/a", "/b", 7),
        J.Meta("/f", 0x20, [1, 2, 3], None, [0, 0, 0o100644, 0], ["F~1"]),
        J.RmStream("/f", "s"), J.Reparse("/f", 0xA000000C, 0, "0c"), J.Unreparse("/f"),
    ]
    assert {type(r) for r in samples} == set(J.RECORDS.values())
    for r in samples:
        line = r.to_json()
        assert json.loads(line)["op"] == r.op
        assert J.parse_record(line, "t") == r


def test_journal_written_by_the_old_format_still_reads():
    """Records keep the keys journals of earlier versions wrote (remount after upgrade)."""
    line = ('{"op":"create","path":"/n","kind":"dir","mode":493,"uid":0,"gid":0,'
            '"target":null,"sd":null,"times":[1,2,3],"t":9}')
    assert J.parse_record(line, "t") == J.Create("/n", "dir", 493, 0, 0, None, None,
                                                 [1, 2, 3], 9)
    assert J.parse_record('{"op":"unlink","path":"/n"}', "t") == J.Unlink("/n", None)


@pytest.mark.parametrize("line", [
    '{"op":"rename","old":"/a","new":"/b"}',                  # a field missing
    '{"op":"unlink","path":"/a","bogus":1}',                  # a field too many
    '{"op":"frobnicate","path":"/a"}',                        # no such record
    '{"op":"create","path":"/n","kind":"fifo","mode":0,"uid":0,"gid":0,'
    '"target":null,"sd":null,"times":[1,2,3]}',              # no such kind
    '["op","unlink"]',
])
def test_a_record_that_does_not_fit_is_an_error(line):
    with pytest.raises(J.JournalError, match="t:7"):
        J.parse_record(line, "t:7")


def test_a_torn_last_line_ends_the_journal(tmp_path):
    p = tmp_path / "journal"
    p.write_text(J.Base("/x.wim", 1, "g").to_json() + "\n" + J.Unlink("/a").to_json()
                 + "\n" + '{"op":"unl')
    assert J.Journal(str(p)).read() == [J.Base("/x.wim", 1, "g"), J.Unlink("/a")]
    p.write_text(J.Unlink("/a").to_json() + "\n")
    with pytest.raises(J.JournalError, match="not a wimfs journal"):
        J.Journal(str(p)).read()


def _inode(attributes=0x20) -> Inode:
    return Inode.new(5, attributes, -1, 111, 222, 333)


def test_ntfs_xattrs_encode_as_ntfs3g_does():
    ino = _inode(0x21)
    assert nx.encode(nx.ATTRIB, ino) == b"\x21\0\0\0"
    assert nx.encode(nx.ATTRIB_BE, ino) == b"\0\0\0\x21"
    # creation, last write, last access, change (= last write: a WIM stores no change time)
    assert nx.encode(nx.TIMES, ino) == struct.pack("<4Q", 111, 333, 222, 333)
    assert nx.encode(nx.TIMES_BE, ino) == struct.pack(">4Q", 111, 333, 222, 333)
    assert nx.encode(nx.ACL, ino, SD_DIR_INHERITABLE) == SD_DIR_INHERITABLE
    assert nx.encode(nx.DOS_NAME, ino) is None
    assert nx.encode(nx.REPARSE, ino) is None
    rp = _inode(0x400)
    rp.reparse_tag, rp.rp_reserved = 0xA000000C, 0
    assert nx.encode(nx.REPARSE, rp, reparse_data=b"abc") == \
        struct.pack("<IHH", 0xA000000C, 3, 0) + b"abc"


def test_ntfs_xattrs_decode():
    assert nx.decode(nx.ATTRIB_BE, b"\0\0\0\x02") == nx.SetAttributes(2)
    assert nx.decode(nx.TIMES, struct.pack("<2Q", 7, 8)) == nx.SetTimes(7, 8, None)
    assert nx.decode(nx.DOS_NAME, b"abc~1.txt\0") == nx.SetDosName("ABC~1.TXT")
    assert nx.decode(nx.ACL, SD_DIR_INHERITABLE) == nx.SetSecurity(SD_DIR_INHERITABLE)
    assert nx.decode(nx.REPARSE, struct.pack("<IHH", 0x80000017, 2, 5) + b"xy") == \
        nx.SetReparse(0x80000017, 5, b"xy")
    for name, bad in ((nx.ATTRIB, b"\0"), (nx.TIMES, b"\0" * 9), (nx.ACL, b"\1\0"),
                      (nx.DOS_NAME, b"a.b.c"), (nx.DOS_NAME, b"toolongname.txt"),
                      (nx.REPARSE, struct.pack("<IHH", 1, 5, 0) + b"xy")):
        with pytest.raises(FsError) as ei:
            nx.decode(name, bad)
        assert ei.value.errno == errno.EINVAL, (name, bad)
    with pytest.raises(FsError) as ei:
        nx.decode("system.ntfs_crtime", b"")
    assert ei.value.errno == errno.EOPNOTSUPP
    # what one side writes, the other reads back
    ino = _inode()
    for name in (nx.ATTRIB, nx.ATTRIB_BE):
        assert nx.decode(name, nx.encode(name, ino)) == nx.SetAttributes(ino.attributes)
