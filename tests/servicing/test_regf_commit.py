"""In-place (write-ahead logged) commit: only changed pages are written, a
crash at any step leaves a hive that opens as the old or the new one, and
the lazy allocator / name indexes do not walk the whole hive."""

from __future__ import annotations

import os

import pytest

from servicing.regf import REG_BINARY, REG_DWORD, Hive
from servicing.regf import hive as H

import oracles


class Crash(BaseException):
    """Simulated power loss (not an OSError, so nothing catches it)."""


@pytest.fixture
def big(tmp_path):
    p = tmp_path / "SOFTWARE"
    with Hive.create(p, name="SOFTWARE") as h:
        for k in range(40):
            key = h.create_key("K%02d\\Sub" % k)
            for v in range(60):
                key.set_value("v%02d" % v, REG_BINARY, bytes([v]) * 150)
    return p


def _edit(h):
    for k in (3, 17, 35):
        key = h.key("K%02d\\Sub" % k)
        key.set_value("v05", REG_DWORD, 7)
        for i in range(30):
            key.set_value("new%d" % i, REG_BINARY, b"n" * (i * 9))
        key.delete_value("v10")
    h.create_key("K05\\Added").set_value("", REG_DWORD, 1)
    h.delete_key("K20")


def test_in_place_commit_writes_only_changed_pages(big, monkeypatch):
    ino = os.stat(big).st_ino
    before = Hive.open(big).dump()
    written = []
    real = os.pwrite
    monkeypatch.setattr(H.os, "pwrite", lambda fd, b, o: written.append(len(b)) or real(fd, b, o))
    with Hive.open(big, write=True) as h:
        _edit(h)
        want = h.dump()
    assert os.stat(big).st_ino == ino                       # no rename: patched in place
    assert sum(written) < os.path.getsize(big) // 2
    assert not [f for f in os.listdir(big.parent) if f != "SOFTWARE"]   # log removed
    assert Hive.open(big).dump() == want != before
    assert oracles.same_as_hivexml(oracles.ours(str(big)), oracles.hivexml(big)) == []


def test_existing_logs_truncated_and_kept(big):
    for suf in (".LOG1", ".LOG2"):
        (big.parent / ("SOFTWARE" + suf)).write_bytes(b"stale" * 1000)
    with Hive.open(big, write=True) as h:
        h.key("K01\\Sub").set_value("x", REG_DWORD, 1)
    for suf in (".LOG1", ".LOG2"):
        assert os.path.getsize(big.parent / ("SOFTWARE" + suf)) == 0
    assert Hive.open(big).key("K01\\Sub").get("x") == 1


@pytest.mark.parametrize("crash_at", range(1, 7))
def test_crash_at_each_fsync_leaves_old_or_new(big, monkeypatch, crash_at):
    old = Hive.open(big).dump()
    h = Hive.open(big, write=True)
    _edit(h)
    new = h.dump()
    calls = [0]
    real = os.fsync

    def fsync(fd):
        calls[0] += 1
        if calls[0] == crash_at:
            raise Crash()
        real(fd)
    monkeypatch.setattr(H.os, "fsync", fsync)
    if crash_at <= 5:
        with pytest.raises(Crash):
            h.commit()
    else:
        h.commit()                  # fewer than 6 fsyncs: completed
    monkeypatch.undo()
    r = Hive.open(big)              # replays the log when the primary is dirty
    got = r.dump()
    assert got in (old, new)
    # writes issued before the crash are on disk: from the dirty marker on
    # (fsync 3) the log must carry the new hive
    assert got == (old if crash_at <= 2 else new)
    assert not r.dirty
    # and it can be edited and committed afterwards
    with Hive.open(big, write=True) as w:
        w.key("K00\\Sub").set_value("after", REG_DWORD, crash_at)
    assert Hive.open(big).key("K00\\Sub").get("after") == crash_at


def test_crash_during_page_writes(big, monkeypatch):
    h = Hive.open(big, write=True)
    _edit(h)
    new = h.dump()
    n = [0]
    real = os.pwrite

    def pwrite(fd, b, o):
        n[0] += 1
        if n[0] == 4:                   # log, dirty base, 1st page run, then crash
            real(fd, bytes(b)[:100], o)  # torn write
            raise Crash()
        return real(fd, b, o)
    monkeypatch.setattr(H.os, "pwrite", pwrite)
    with pytest.raises(Crash):
        h.commit()
    monkeypatch.undo()
    with open(big, "rb") as f:
        from servicing.regf.format import BaseBlock
        bb = BaseBlock(f.read(4096))
    assert bb.seq1 != bb.seq2                       # primary is marked dirty
    assert Hive.open(big).dump() == new             # recovered from the log
    assert Hive.open(big, replay_logs=False).dirty


def test_dirty_primary_falls_back_to_full_write(big):
    with Hive.open(big, write=True) as h:
        h.key("K01\\Sub").set_value("x", REG_DWORD, 1)
    raw = bytearray(big.read_bytes())
    raw[8] ^= 1                                      # seq2 differs: dirty, no logs
    big.write_bytes(raw)
    ino = os.stat(big).st_ino
    with Hive.open(big, write=True, ignore_dirty=True) as h:
        h.key("K01\\Sub").set_value("y", REG_DWORD, 2)
    assert os.stat(big).st_ino != ino                # temp file + rename
    assert Hive.open(big).key("K01\\Sub").get("y") == 2


def test_lazy_allocator_scans_few_bins(big):
    h = Hive.open(big, write=True)
    h.key("K39\\Sub").set_value("z", REG_DWORD, 1)
    h.key("K39\\Sub").set_value("zz", REG_BINARY, b"q" * 100)
    assert len(h._scanned) <= H._SCAN_BUDGET + 2
    assert len(h._scanned) < os.path.getsize(big) // 4096 - 40
    h.commit()
    assert Hive.open(big).key("K39\\Sub").get("zz") == b"q" * 100


def test_full_scan_reuses_free_space(big):
    h = Hive.open(big, write=True)
    h.delete_key("K00")                  # frees space in the first bins
    h.commit()
    size = os.path.getsize(big)
    h = Hive.open(big, write=True)
    k = h.key("K01\\Sub")
    for i in range(80):                 # ~7 KB of cells; K00 freed ~11 KB
        k.set_value("r%d" % i, REG_BINARY, b"r" * 40)
    h.commit()
    assert os.path.getsize(big) == size      # fitted into freed cells
