"""Read-ahead across small files (wimfs.fuse.prefetch), in process: the read-only adapter
over a lazily loaded image, its `store` (pyfuse3.notify_store on a mount) replaced by a
recorder. The oracle of what is stored is the captured source tree: every (inode, data)
pushed must be the whole content of the file that inode is, at offset 0. The same code
on a real mount, and the READ requests it saves: tests/mount/test_readahead.py."""

from __future__ import annotations

import errno
import logging
import os
import random
import shutil

import pyfuse3
import pytest

from tests.helpers import require_tool, wimlib_capture
from wimfs.fuse import prefetch
from wimfs.fuse.ops import WimOperations
from wimfs.wim import Wim

ROOT = pyfuse3.ROOT_INODE
CTX = None
EMPTY, BIG, SUB = "f10.bin", "f20.bin", "f15sub"


def make_source(root, n: int = 40) -> None:
    """Directory `many`: n files of 1 B - 30 KiB (half random, half text), one of them
    empty, one of 100 KiB (above prefetch.MAX_SIZE), a subdirectory among them; and a
    directory `other` of a few files."""
    r = random.Random(7)
    many = root / "many"
    many.mkdir(parents=True)
    for k in range(n):
        size = r.randrange(1, 30000)
        data = r.randbytes(size) if k % 2 else (b"line %d of text\n" % k) * (size // 16 + 1)
        (many / f"f{k:02d}.bin").write_bytes(data[:size])
    (many / EMPTY).write_bytes(b"")
    (many / BIG).write_bytes(r.randbytes(100 * 1024))
    (many / SUB).mkdir()
    (many / SUB / "inner.txt").write_bytes(b"inner")
    (root / "other").mkdir()
    for k in range(5):
        (root / "other" / f"o{k}.txt").write_bytes(b"other %d\n" % k * 50)


@pytest.fixture(scope="module")
def wim(tmp_path_factory):
    require_tool("wimlib-imagex")
    base = tmp_path_factory.mktemp("prefetch")
    make_source(base / "src")
    return base / "src", wimlib_capture(base / "src", base / "p.wim")


class Recorder:
    def __init__(self, fail: BaseException | None = None) -> None:
        self.stored: dict[int, bytes] = {}
        self.fail = fail

    def __call__(self, ino: int, offset: int, data: bytes) -> None:
        if self.fail is not None:
            raise self.fail
        assert offset == 0
        assert ino not in self.stored, "a file pushed twice"
        self.stored[ino] = bytes(data)


def _ops(path) -> tuple[WimOperations, Recorder]:
    w = Wim(path)
    ops = WimOperations(w, [w.image(1, lazy=True)])
    rec = Recorder()
    ops.prefetch.store = rec
    return ops, rec


async def _listing(ops: WimOperations, d: str) -> list[tuple[str, int]]:
    """(name, inode) of directory `d`'s entries, in listing order (readdir's)."""
    dino = (await ops.lookup(ROOT, d.encode(), CTX)).st_ino
    fh = await ops.opendir(dino, CTX)
    names = [ops._single.name_at(o << 3) for o in ops.handles[fh].offsets]
    await ops.releasedir(fh)
    return [(n, (await ops.lookup(dino, n.encode(), CTX)).st_ino) for n in names]


def drain(ops: WimOperations) -> int:
    n = 0
    while ops.prefetch.pending:
        ops.prefetch.step()
        n += 1
    return n


def _check_stored(ops: WimOperations, rec: Recorder, src) -> None:
    tree = ops._single
    for ino, data in rec.stored.items():
        assert data == (src / tree.path(ino).lstrip("/")).read_bytes(), tree.path(ino)


async def test_opening_files_in_order_pushes_the_small_files_after_them(wim):
    src, path = wim
    ops, rec = _ops(path)
    entries = await _listing(ops, "many")
    opened = []
    for k, (name, ino) in enumerate(entries):
        if name == SUB:
            continue
        fi = await ops.open(ino, os.O_RDONLY, CTX)
        opened.append(ino)
        if k == 0:
            assert len(ops.prefetch.queue) == prefetch.FIRST_AHEAD
        drain(ops)
        await ops.release(fi.fh)
    _check_stored(ops, rec, src)
    small = {ino for name, ino in entries
             if name not in (EMPTY, BIG, SUB)}
    # every small file after the first one opened was pushed before its own open
    assert set(rec.stored) == small - {entries[0][1]}
    assert ops.prefetch.stats["skipped"] >= 3         # the empty, the big, the directory
    assert not ops.open_counts                        # every handle released


async def test_an_open_file_is_never_pushed(wim):
    """The deadlock guard: a READ of an open file may hold the page a store needs."""
    _src, path = wim
    ops, rec = _ops(path)
    entries = [e for e in await _listing(ops, "many") if e[0] not in (EMPTY, BIG, SUB)]
    first = await ops.open(entries[0][1], os.O_RDONLY, CTX)       # queues the next ones
    held = await ops.open(entries[1][1], os.O_RDONLY, CTX)        # one of them, opened
    drain(ops)
    assert entries[1][1] not in rec.stored
    assert entries[2][1] in rec.stored
    for fi in (first, held):
        await ops.release(fi.fh)


async def test_an_open_elsewhere_starts_over(wim):
    src, path = wim
    ops, rec = _ops(path)
    many = [e for e in await _listing(ops, "many") if e[0] not in (EMPTY, BIG, SUB)]
    other = await _listing(ops, "other")
    await ops.open(many[0][1], os.O_RDONLY, CTX)
    await ops.open(other[0][1], os.O_RDONLY, CTX)       # before anything was pushed
    drain(ops)
    assert set(rec.stored) == {ino for _n, ino in other[1:1 + prefetch.FIRST_AHEAD]}
    _check_stored(ops, rec, src)


async def test_a_single_open_costs_at_most_the_first_window(wim):
    _src, path = wim
    ops, rec = _ops(path)
    many = await _listing(ops, "many")
    await ops.open(many[5][1], os.O_RDONLY, CTX)
    assert drain(ops) == prefetch.FIRST_AHEAD
    assert len(rec.stored) <= prefetch.FIRST_AHEAD


async def test_a_corrupt_file_is_not_pushed_and_its_read_fails_as_before(wim, tmp_path):
    src, path = wim
    bad = tmp_path / "bad.wim"
    shutil.copy(path, bad)
    ops, _ = _ops(path)
    many = [e for e in await _listing(ops, "many") if e[0] not in (EMPTY, BIG, SUB)]
    victim = many[2][1]
    rdesc = ops._single.plain_data(victim)[1].blob.rdesc
    with open(bad, "r+b") as f:               # one byte in the middle of its resource
        f.seek(rdesc.offset_in_wim + rdesc.size_in_wim // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0xFF]))
    ops, rec = _ops(bad)
    assert [e for e in await _listing(ops, "many") if e[0] not in (EMPTY, BIG, SUB)] == many
    await ops.open(many[0][1], os.O_RDONLY, CTX)
    drain(ops)
    assert victim not in rec.stored
    assert ops.prefetch.stats["failed"] == 1
    assert {many[1][1], many[3][1]} <= set(rec.stored)
    _check_stored(ops, rec, src)
    fi = await ops.open(victim, os.O_RDONLY, CTX)
    with pytest.raises(pyfuse3.FUSEError) as e:
        await ops.read(fi.fh, 0, 1 << 20)
    assert e.value.errno == errno.EIO


@pytest.mark.parametrize("fail,stays_on", [(OSError(errno.ENOENT, "forgotten"), True),
                                           (OSError(errno.ENOSYS, "no store"), False),
                                           (RuntimeError("a bug"), False)])
async def test_a_failing_store_never_raises(wim, fail, stays_on, caplog):
    _src, path = wim
    ops, _ = _ops(path)
    ops.prefetch.store = Recorder(fail)
    many = [e for e in await _listing(ops, "many") if e[0] not in (EMPTY, BIG, SUB)]
    await ops.open(many[0][1], os.O_RDONLY, CTX)
    with caplog.at_level(logging.ERROR, logger="wimfs.fuse.prefetch"):
        drain(ops)
    assert ops.prefetch.enabled is stays_on
    assert ops.prefetch.stats["pushed"] == 0
    if stays_on:
        assert ops.prefetch.stats["failed"] == prefetch.FIRST_AHEAD
    else:
        await ops.open(many[1][1], os.O_RDONLY, CTX)
        assert not ops.prefetch.pending                # off for the rest of the mount
    assert ("read-ahead failed" in caplog.text) is isinstance(fail, RuntimeError)
