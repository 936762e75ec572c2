"""POSIX rules of the FUSE adapter, kernel-free (the pjdfstest failures of issue 18, each
pinned in seconds): one name limit, advertised and enforced with ENAMETOOLONG; a change
time (st_ctime) per inode; ordinary errno replies logged at debug level, faults at error."""

from __future__ import annotations

import errno
import logging
import os
import time

import pyfuse3
import pytest

from tests.ops.test_operations import CTX, ROOT, FakeOverlay, fields, fuse_errno
from wimfs.fuse.ops import WimOperations
from wimfs.fuse.rwops import RwOperations
from wimfs.overlay import FsError, Overlay
from wimfs.wim import Wim

# 255 UTF-16 code units is the limit (NTFS, Windows); UTF-8 bytes do not count.
FITS = ["n" * 255, "é" * 255, "\U0001F600" * 127 + "x"]        # 255 units each
TOO_LONG = ["n" * 256, "é" * 256, "\U0001F600" * 128]           # 256 units each


@pytest.fixture
async def rw(wim, tmp_path):
    ov = Overlay(str(wim), 1, str(tmp_path / "st"))
    ov.start_journal(resume=False)
    try:
        yield RwOperations(ov), ov
    finally:
        ov.close()


async def test_statfs_advertises_the_enforced_limit(wim, rw):
    ops, _ov = rw
    assert (await ops.statfs(CTX)).f_namemax == 255
    with Wim(str(wim)) as w:
        assert (await WimOperations(w, [w.image(1)]).statfs(CTX)).f_namemax == 255


@pytest.mark.parametrize("name", FITS, ids=["ascii", "2-byte", "surrogate-pairs"])
async def test_a_name_of_255_units_works_everywhere(rw, name):
    ops, _ov = rw
    b = name.encode()
    fi, a = await ops.create(ROOT, b, 0o644, os.O_RDWR, CTX)
    await ops.release(fi.fh)
    assert (await ops.lookup(ROOT, b, CTX)).st_ino == a.st_ino
    await ops.rename(ROOT, b, ROOT, b"short", 0, CTX)
    await ops.link(a.st_ino, ROOT, b, CTX)
    await ops.unlink(ROOT, b, CTX)
    d = await ops.mkdir(ROOT, b, 0o755, CTX)
    assert (await ops.lookup(ROOT, b, CTX)).st_ino == d.st_ino
    await ops.rmdir(ROOT, b, CTX)
    await ops.symlink(ROOT, b, b"short", CTX)
    await ops.unlink(ROOT, b, CTX)


@pytest.mark.parametrize("name", TOO_LONG, ids=["ascii", "2-byte", "surrogate-pairs"])
async def test_a_longer_name_is_enametoolong_in_every_operation(wim, rw, name):
    ops, _ov = rw
    b = name.encode()
    fi, a = await ops.create(ROOT, b"file", 0o644, os.O_RDWR, CTX)
    await ops.release(fi.fh)
    calls = [ops.lookup(ROOT, b, CTX), ops.create(ROOT, b, 0o644, os.O_RDWR, CTX),
             ops.mkdir(ROOT, b, 0o755, CTX), ops.mknod(ROOT, b, 0o100644, 0, CTX),
             ops.symlink(ROOT, b, b"file", CTX), ops.link(a.st_ino, ROOT, b, CTX),
             ops.rename(ROOT, b"file", ROOT, b, 0, CTX), ops.rename(ROOT, b, ROOT, b"x", 0,
                                                                    CTX),
             ops.unlink(ROOT, b, CTX), ops.rmdir(ROOT, b, CTX)]
    for c in calls:
        assert await fuse_errno(c) == errno.ENAMETOOLONG, c.cr_code.co_name
    with Wim(str(wim)) as w:            # the read-only adapter too
        assert await fuse_errno(WimOperations(w, [w.image(1)]).lookup(ROOT, b, CTX)) == \
            errno.ENAMETOOLONG


# -- change time ----------------------------------------------------------------------------

OLD = 0x01D0000000000000        # a FILETIME in 2014: "before the change"


def _recent(ns: int) -> bool:
    return abs(ns - time.time_ns()) < 10 * 10**9


async def _ctime_after(ops, ino, change) -> int:
    """st_ctime of inode `ino` after `change` ran, with its change time first set old."""
    ops.inodes[ino].change_time = OLD
    before = await ops.getattr(ino, CTX)
    await change
    after = await ops.getattr(ino, CTX)
    assert before.st_ctime_ns < after.st_ctime_ns and _recent(after.st_ctime_ns)
    return after.st_ctime_ns


async def test_ctime_starts_as_the_last_write_time(wim, rw):
    ops, _ov = rw
    a = await ops.lookup(ROOT, b"hardlinks", CTX)
    assert a.st_ctime_ns == a.st_mtime_ns
    with Wim(str(wim)) as w:
        r = await WimOperations(w, [w.image(1)]).lookup(ROOT, b"hardlinks", CTX)
        assert r.st_ctime_ns == r.st_mtime_ns


async def test_metadata_changes_move_ctime_not_mtime(rw):
    ops, _ov = rw
    fi, a = await ops.create(ROOT, b"f", 0o644, os.O_RDWR, CTX)
    ino = a.st_ino
    mtime = (await ops.getattr(ino, CTX)).st_mtime_ns
    mode = pyfuse3.EntryAttributes()
    mode.st_mode = 0o444
    await _ctime_after(ops, ino, ops.setattr(ino, mode, fields(update_mode=True), None, CTX))
    await _ctime_after(ops, ino, ops.setxattr(ino, b"user.s", b"v", CTX))
    await _ctime_after(ops, ino, ops.removexattr(ino, b"user.s", CTX))
    await _ctime_after(ops, ino, ops.setxattr(ino, b"system.ntfs_attrib",
                                              b"\x20\0\0\0", CTX))
    assert (await ops.getattr(ino, CTX)).st_mtime_ns == mtime
    times = pyfuse3.EntryAttributes()
    times.st_atime_ns = times.st_mtime_ns = 10**18
    c = await _ctime_after(ops, ino, ops.setattr(ino, times, fields(update_atime=True,
                                                                    update_mtime=True),
                                                 None, CTX))
    assert (await ops.getattr(ino, CTX)).st_mtime_ns == 10**18 != c
    c = await _ctime_after(ops, ino, ops.write(fi.fh, 0, b"data"))
    assert (await ops.getattr(ino, CTX)).st_mtime_ns == c       # data: both move
    await ops.release(fi.fh)


async def test_link_count_changes_move_ctime(rw):
    ops, _ov = rw
    fi, a = await ops.create(ROOT, b"f", 0o644, os.O_RDWR, CTX)
    await ops.release(fi.fh)
    ino = a.st_ino
    await _ctime_after(ops, ino, ops.link(ino, ROOT, b"g", CTX))
    await _ctime_after(ops, ino, ops.unlink(ROOT, b"g", CTX))    # the other link's ctime
    await _ctime_after(ops, ino, ops.rename(ROOT, b"f", ROOT, b"h", 0, CTX))
    await ops.link(ino, ROOT, b"i", CTX)
    fi, b = await ops.create(ROOT, b"other", 0o644, os.O_RDWR, CTX)
    await ops.release(fi.fh)
    await _ctime_after(ops, ino, ops.rename(ROOT, b"other", ROOT, b"i", 0, CTX))
    parent = (await ops.mkdir(ROOT, b"d", 0o755, CTX)).st_ino
    await _ctime_after(ops, parent, ops.mkdir(parent, b"sub", 0o755, CTX))
    await _ctime_after(ops, parent, ops.rmdir(parent, b"sub", CTX))


# -- log levels of error replies ----------------------------------------------------------

@pytest.mark.parametrize(("exc", "level"), [
    (FsError(errno.ENAMETOOLONG), logging.DEBUG), (FsError(errno.ENOTEMPTY), logging.DEBUG),
    (OSError(errno.EFBIG, "File too large"), logging.DEBUG),
    (FsError(errno.EEXIST), logging.DEBUG),
    (OSError(errno.ENOSPC, "No space left"), logging.ERROR),
    (OSError(errno.EIO, "I/O error"), logging.ERROR)], ids=lambda v: str(v))
async def test_answers_log_at_debug_faults_at_error(wim, caplog, exc, level):
    caplog.set_level(logging.DEBUG, logger="wimfs.fuse.ops")
    with Wim(str(wim)) as w:
        ops = RwOperations(FakeOverlay(w, exc))
        assert await fuse_errno(ops.mkdir(ROOT, b"d", 0o755, CTX)) == exc.errno
    recs = [r for r in caplog.records if r.name == "wimfs.fuse.ops"]
    assert [r.levelno for r in recs] == [level]
    assert "mkdir" in recs[0].getMessage()
