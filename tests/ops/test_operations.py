"""The FUSE Operations classes driven directly under pytest-trio (no mount, no kernel):
duck-typed request contexts and SetattrFields (s3ql t3), a FakeOverlay that raises
(borg's FakeVFS) to pin the errno each error becomes, and the structural check that every
pyfuse3 handler goes through the one error boundary."""

from __future__ import annotations

import errno
import os
import struct
from types import SimpleNamespace

import pyfuse3
import pytest

from tests.helpers import wimlib_apply, wimlib_verify
from tests.helpers.overlay import check_overlay
from wimfs.errors import BusyError, PathNotFoundError, WimCorruptError, WimfsError
from wimfs.fuse.ops import HANDLERS, UNGUARDED, WimOperations
from wimfs.fuse.rwops import RwOperations
from wimfs.overlay import FsError, Overlay
from wimfs.wim import Wim

ROOT = pyfuse3.ROOT_INODE
CTX = SimpleNamespace(uid=os.getuid(), gid=os.getgid(), pid=os.getpid(), umask=0o022)


def fields(**set_) -> SimpleNamespace:
    names = ("update_atime", "update_mtime", "update_ctime", "update_mode", "update_uid",
             "update_gid", "update_size")
    return SimpleNamespace(**{n: set_.get(n, False) for n in names})


async def fuse_errno(coro) -> int:
    with pytest.raises(pyfuse3.FUSEError) as ei:
        await coro
    return ei.value.errno


# -- the error boundary is structural ------------------------------------------------------

@pytest.mark.parametrize("cls", [WimOperations, RwOperations])
def test_every_handler_is_guarded(cls):
    checked = 0
    for name in HANDLERS:
        owner = next(k for k in cls.__mro__ if name in k.__dict__)
        if owner is pyfuse3.Operations:
            continue            # pyfuse3's default: raises FUSEError(ENOSYS) itself
        fn = owner.__dict__[name]
        assert getattr(fn, "guarded", False) or name in UNGUARDED, f"{owner.__name__}.{name}"
        checked += 1
    assert checked >= 15


async def test_a_new_handler_cannot_miss_the_guard(wim):
    class Extended(WimOperations):
        async def statfs(self, ctx):
            raise ValueError("a bug")

        async def poll(self, fh, *args):
            raise FsError(errno.EAGAIN)

    with Wim(str(wim)) as w:
        ops = Extended(w, [w.image(1)])
        assert await fuse_errno(ops.statfs(CTX)) == errno.EIO
        assert await fuse_errno(ops.poll(1, None)) == errno.EAGAIN


# -- errors from the overlay become errnos ---------------------------------------------------

class FakeOverlay:
    """The interface RwOperations uses, every edit raising `exc`."""

    def __init__(self, wim: Wim, exc: BaseException) -> None:
        self.wim = wim
        self.image = wim.image(1)
        self.inodes = {i.ino: i for i in self.image.inodes}
        self.unix_mode = False
        self.staging = "/nonexistent"
        self.exc = exc

    def _raise(self, *args, **kw):
        raise self.exc

    create = unlink = rmdir = rename = link = chmod = chown = set_times = _raise
    set_named_stream = remove_named_stream = set_ntfs_xattr = remove_ntfs_xattr = _raise
    copy_up = truncate_staged = write = fsync = read = _raise

    def is_staged(self, stream) -> bool:
        return False

    def forget_inode(self, ino) -> None:
        pass


ERRORS = [
    (PathNotFoundError("x"), errno.ENOENT),
    (BusyError("x"), errno.EBUSY),
    (WimCorruptError("x"), errno.EIO),
    (WimfsError("x"), errno.EIO),
    (FsError(errno.ENOTEMPTY), errno.ENOTEMPTY),
    (OSError(errno.ENOSPC, "full"), errno.ENOSPC),
    (OSError("no errno"), errno.EIO),
    (ValueError("bug"), errno.EIO),
    (KeyError("bug"), errno.EIO),
    (TypeError("bug"), errno.EIO),
    (pyfuse3.FUSEError(errno.EXDEV), errno.EXDEV),
]


@pytest.mark.parametrize(("exc", "want"), ERRORS, ids=lambda v: type(v).__name__
                         if isinstance(v, BaseException) else str(v))
async def test_overlay_errors_map_to_errno(wim, exc, want):
    with Wim(str(wim)) as w:
        ops = RwOperations(FakeOverlay(w, exc))
        sub = (await ops.lookup(ROOT, b"hardlinks", CTX)).st_ino
        f = (await ops.lookup(sub, b"a", CTX)).st_ino
        f = (await ops.lookup(f, b"pair_1", CTX)).st_ino
        attr = pyfuse3.EntryAttributes()
        attr.st_mode = 0o600
        calls = [
            ops.mkdir(ROOT, b"d", 0o755, CTX),
            ops.create(ROOT, b"f", 0o644, os.O_WRONLY, CTX),
            ops.symlink(ROOT, b"l", b"target", CTX),
            ops.unlink(sub, b"x", CTX),
            ops.rmdir(ROOT, b"hardlinks", CTX),
            ops.rename(ROOT, b"hardlinks", ROOT, b"h2", 0, CTX),
            ops.link(f, ROOT, b"ln", CTX),
            ops.setattr(f, attr, fields(update_mode=True), None, CTX),
            ops.setxattr(f, b"user.s", b"v", CTX),
            ops.setxattr(f, b"system.ntfs_attrib", b"\0\0\0\0", CTX),
            ops.removexattr(f, b"user.s", CTX),
            ops.removexattr(f, b"system.ntfs_acl", CTX),
        ]
        for c in calls:
            assert await fuse_errno(c) == want, c.cr_code.co_name


async def test_requests_for_unknown_inodes_and_handles(wim):
    with Wim(str(wim)) as w:
        ops = WimOperations(w, [w.image(1)])
        assert await fuse_errno(ops.getattr(999_999, CTX)) == errno.ENOENT
        assert await fuse_errno(ops.lookup(ROOT, b"nope", CTX)) == errno.ENOENT
        assert await fuse_errno(ops.read(12345, 0, 10)) == errno.EBADF
        assert await fuse_errno(ops.readdir(12345, 0, None)) == errno.EBADF


# -- the read-only adapter over a real image ------------------------------------------------

async def test_read_only_operations(wim, ov_src):
    with Wim(str(wim)) as w:
        ops = WimOperations(w, [w.image(1)])
        a = await ops.lookup(ROOT, b"hardlinks", CTX)
        a = await ops.lookup(a.st_ino, b"a", CTX)
        f = await ops.lookup(a.st_ino, b"triple_1", CTX)
        want = (ov_src / "hardlinks/a/triple_1").read_bytes()
        assert (f.st_size, f.st_nlink) == (len(want), 3)
        fi = await ops.open(f.st_ino, os.O_RDONLY, CTX)
        assert await ops.read(fi.fh, 1000, 5000) == want[1000:6000]
        await ops.release(fi.fh)
        attrib = await ops.getxattr(f.st_ino, b"system.ntfs_attrib", CTX)
        assert struct.unpack("<I", attrib)[0] == w.image(1).lookup_path(
            "hardlinks/a/triple_1").inode.attributes
        assert await fuse_errno(ops.open(f.st_ino, os.O_WRONLY, CTX)) == errno.EROFS
        assert await fuse_errno(ops.setattr(f.st_ino, None, fields(), None, CTX)) == \
            errno.EROFS
        assert await fuse_errno(ops.setxattr(f.st_ino, b"user.x", b"", CTX)) == errno.EROFS
        assert await fuse_errno(ops.getxattr(f.st_ino, b"user.none", CTX)) == pyfuse3.ENOATTR
        assert await fuse_errno(ops.access(f.st_ino, os.W_OK, CTX)) == errno.EROFS
        link = await ops.lookup((await ops.lookup(ROOT, b"symlinks", CTX)).st_ino,
                                b"rel_link", CTX)
        assert await ops.readlink(link.st_ino, CTX) == b"target.txt"


# -- the read-write adapter over a real Overlay ------------------------------------------------

async def test_read_write_operations(wim, tmp_path):
    ov = Overlay(str(wim), 1, str(tmp_path / "st"))
    ov.start_journal(resume=False)
    try:
        ops = RwOperations(ov)
        fi, attr = await ops.create(ROOT, b"new.txt", 0o644, os.O_RDWR, CTX)
        assert await ops.write(fi.fh, 0, b"hello world") == 11
        assert await ops.read(fi.fh, 6, 100) == b"world"
        await ops.fsync(fi.fh, False)
        await ops.release(fi.fh)
        size = pyfuse3.EntryAttributes()
        size.st_size = 5
        a = await ops.setattr(attr.st_ino, size, fields(update_size=True), None, CTX)
        assert a.st_size == 5
        d = await ops.mkdir(ROOT, b"dir", 0o755, CTX)
        await ops.rename(ROOT, b"new.txt", d.st_ino, b"moved.txt", 0, CTX)
        assert await fuse_errno(ops.rename(d.st_ino, b"moved.txt", ROOT, b"hardlinks",
                                           1, CTX)) == errno.EEXIST       # NOREPLACE
        ln = await ops.link(attr.st_ino, ROOT, b"second", CTX)
        assert ln.st_nlink == 2
        await ops.setxattr(attr.st_ino, b"user.ads", b"stream", CTX)
        assert await ops.getxattr(attr.st_ino, b"user.ads", CTX) == b"stream"
        await ops.setxattr(attr.st_ino, b"system.ntfs_attrib", struct.pack("<I", 0x2), CTX)
        assert await ops.getxattr(attr.st_ino, b"system.ntfs_attrib", CTX) == \
            struct.pack("<I", 0x2)
        assert await fuse_errno(ops.rmdir(ROOT, b"dir", CTX)) == errno.ENOTEMPTY
        await ops.unlink(ROOT, b"second", CTX)
        await ops.symlink(ROOT, b"sl", b"dir/moved.txt", CTX)
        check_overlay(ov)
        result = await ops.commit()
        assert result.written_bytes > 0 and ops.wim is ov.wim
        assert wimlib_verify(wim).returncode == 0
        check_overlay(ov)
    finally:
        ov.close()


def _applied(wim, tmp_path, *names: str) -> dict[str, bytes]:
    """The named files (default: late.txt) as `wimlib-imagex apply` gives them, after
    `wimlib-imagex verify` passed."""
    assert wimlib_verify(wim).returncode == 0
    out = tmp_path / "applied"
    wimlib_apply(wim, 1, out)
    return {n: (out / n).read_bytes() for n in names or ("late.txt",)}


async def test_commit_waits_for_a_change_in_flight(wim, tmp_path, monkeypatch):
    """A write whose copy-up is still running on a worker thread when a commit is asked
    for: the commit starts only after the write has landed, and the WIM holds it (found
    by the concurrency test: without the wait, the commit ran beside the write and the
    file committed empty)."""
    import threading

    import trio

    from wimfs.fuse import rwops

    monkeypatch.setattr(rwops, "INLINE_COPY_UP", -1)    # every copy-up on a worker thread
    ov = Overlay(str(wim), 1, str(tmp_path / "st"))
    ov.start_journal(resume=False)
    entered, go = threading.Event(), threading.Event()
    real_copy_up, real_commit = ov.copy_up, ov.commit
    order: list[str] = []

    def slow_copy_up(*a, **kw):
        entered.set()
        go.wait(10)
        return real_copy_up(*a, **kw)

    def commit(*a, **kw):
        order.append("commit")
        return real_commit(*a, **kw)

    ov.copy_up, ov.commit = slow_copy_up, commit
    try:
        ops = RwOperations(ov)
        fi, _attr = await ops.create(ROOT, b"late.txt", 0o644, os.O_RDWR, CTX)

        async def writer():
            assert await ops.write(fi.fh, 0, b"written while a commit was asked") == 32
            order.append("write")

        async with trio.open_nursery() as n:
            n.start_soon(writer)
            await trio.to_thread.run_sync(entered.wait, 10)
            n.start_soon(ops.commit, True)
            await trio.sleep(0.2)
            assert order == []           # the commit waits for the write in flight
            go.set()
        assert order == ["write", "commit"]
        await ops.release(fi.fh)
    finally:
        ov.close()
    assert _applied(wim, tmp_path) == {"late.txt": b"written while a commit was asked"}


async def test_closed_files_are_compressed_before_the_commit(wim, tmp_path):
    """wimfs.chunkmemo: a file whose last writer closed it is compressed on an idle
    thread, and the commit takes those chunks instead of compressing them again. A file
    changed after its chunks were compressed misses (the memo is keyed by content) and is
    compressed at the commit. wimlib applies both files exactly."""
    from wimfs.chunkmemo import ChunkMemo, chunk_key

    ov = Overlay(str(wim), 1, str(tmp_path / "st"))
    ov.start_journal(resume=False)
    early = b"".join(b"line %d of a file closed long before the commit\n" % i
                     for i in range(4000))                       # 7 chunks of 32 KiB
    first = b"".join(b"row %d, as first written and compressed\n" % i for i in range(900))
    late = b"".join(b"ROW %d, AS WRITTEN AGAIN JUST BEFORE COMMIT\n" % i for i in range(900))
    try:
        ops = RwOperations(ov)
        for name, data in ((b"early.txt", early), (b"late.txt", first)):
            fi, _a = await ops.create(ROOT, name, 0o644, os.O_RDWR, CTX)
            assert await ops.write(fi.fh, 0, data) == len(data)
            await ops.release(fi.fh)
        pre = ov.precompressor
        pre.drain()
        assert len(pre.memo) == 7 + 2
        ino = (await ops.lookup(ROOT, b"late.txt", CTX)).st_ino
        fi = await ops.open(ino, os.O_RDWR, CTX)
        assert await ops.write(fi.fh, 0, late) == len(late)
        hits = pre.memo.hits
        await ops.commit(force=True)      # late.txt still open: its new bytes miss
        assert pre.memo.hits - hits == 7          # early.txt's chunks, no more
        await ops.release(fi.fh)
    finally:
        ov.close()
    assert _applied(wim, tmp_path, "early.txt", "late.txt") == \
        {"early.txt": early, "late.txt": late}
    memo = ChunkMemo(limit=100)
    memo.put(chunk_key(2, 32768, 0, b"a"), b"x" * 60)
    memo.put(chunk_key(2, 32768, 0, b"b"), b"y" * 60)         # evicts the oldest
    assert memo.get(chunk_key(2, 32768, 0, b"a")) == (False, None)
    assert memo.get(chunk_key(2, 32768, 0, b"b")) == (True, b"y" * 60)
    assert memo.get(chunk_key(3, 32768, 0, b"b"))[0] is False   # another codec: a miss


async def test_truncate_waits_for_a_copy_up_in_flight(wim, ov_src, tmp_path):
    """Small copy-ups run inline on the event loop (`INLINE_COPY_UP`), but not while a
    worker thread copies the same stream up: a truncate to 0 that came in meanwhile
    would stage an empty file that the worker's copy then replaced."""
    import threading

    import trio

    big = next(p for p in sorted(ov_src.rglob("*")) if p.is_file() and not p.is_symlink()
               and p.stat().st_size > 64 << 10 and p.stat().st_nlink == 1)
    ov = Overlay(str(wim), 1, str(tmp_path / "st"))
    ov.start_journal(resume=False)
    entered, go = threading.Event(), threading.Event()
    real_copy_up = ov.copy_up

    def slow_copy_up(*a, **kw):
        entered.set()
        go.wait(10)
        return real_copy_up(*a, **kw)

    ov.copy_up = slow_copy_up
    try:
        ops = RwOperations(ov)
        ino = ROOT
        for part in big.relative_to(ov_src).parts:
            ino = (await ops.lookup(ino, part.encode(), CTX)).st_ino
        fi = await ops.open(ino, os.O_RDWR, CTX)
        zero = pyfuse3.EntryAttributes()
        zero.st_size = 0

        async with trio.open_nursery() as n:
            n.start_soon(ops.write, fi.fh, 0, b"abc")          # copies up on a thread
            await trio.to_thread.run_sync(entered.wait, 10)
            n.start_soon(ops.setattr, ino, zero, fields(update_size=True), None, CTX)
            await trio.sleep(0.1)
            go.set()
        assert (await ops.getattr(ino, CTX)).st_size == 0
        assert await ops.write(fi.fh, 0, b"x") == 1
        assert await ops.read(fi.fh, 0, 100) == b"x"
        await ops.release(fi.fh)
    finally:
        ov.close()
