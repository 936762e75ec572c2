"""Read-ahead across small files (wimfs.fuse.prefetch) on real read-only mounts: reading
a directory's files in listing order gives `wimlib-imagex apply`'s bytes while most files
need no READ request (their pages were stored ahead); readers going through the same
directory at once in different orders neither hang nor see wrong data. Readers run in a
child process with a time limit; a hung mount is aborted through fusectl, so a deadlock
fails the test instead of hanging the suite. The in-process side (what is pushed, the
open-file guard, failures): tests/ops/test_prefetch.py."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys

import pytest

from tests.helpers import mounted, require_tool, wimlib_apply, wimlib_capture
from tests.helpers.mount import abort_fuse
from tests.ops.test_prefetch import make_source

pytestmark = [pytest.mark.mount]

READER = r"""
import hashlib, json, os, random, sys, time
top, order, pause = sys.argv[1], sys.argv[2], float(sys.argv[3])
names = [e.name for e in os.scandir(top) if e.is_file(follow_symlinks=False)]
if order == "reverse":
    names.reverse()
elif order == "shuffled":
    random.Random(5).shuffle(names)
out = {}
for n in names:
    with open(os.path.join(top, n), "rb") as f:
        out[n] = hashlib.sha256(f.read()).hexdigest()
    time.sleep(pause)
print(json.dumps(out))
"""


def _digests(top) -> dict[str, str]:
    return {e.name: hashlib.sha256(open(e.path, "rb").read()).hexdigest()
            for e in os.scandir(top) if e.is_file(follow_symlinks=False)}


def _read_all(mp, orders: list[str], sub: str = "", timeout: float = 120, pause: float = 0
              ) -> list[dict[str, str]]:
    """Read the files of mp/sub/many in each order at once, a child process per order
    (`pause` seconds after each file)."""
    top = mp / sub / "many" if sub else mp / "many"
    procs = [subprocess.Popen([sys.executable, "-c", READER, str(top), order, str(pause)],
                              stdout=subprocess.PIPE, text=True) for order in orders]
    outs = []
    try:
        for p in procs:
            outs.append(json.loads(p.communicate(timeout=timeout)[0]))
    except subprocess.TimeoutExpired:
        abort_fuse(mp)
        for p in procs:
            p.kill()
        pytest.fail(f"readers of {mp} hung for {timeout} s (mount aborted)")
    return outs


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    require_tool("wimlib-imagex")
    base = tmp_path_factory.mktemp("readahead")
    make_source(base / "src", n=300)
    wim = wimlib_capture(base / "src", base / "r.wim")
    wimlib_apply(wim, 1, base / "applied")
    return base, wim, _digests(base / "applied" / "many")


def _log_counts(log: str) -> tuple[int, dict]:
    m = re.search(r"(\d+) READ requests; .*read-ahead (\{.*\})", log)
    assert m, log[-2000:]
    return int(m.group(1)), eval(m.group(2), {})     # (a dict's repr, from our own log)


@pytest.mark.parametrize("selector", ["", ":all"])
def test_files_read_in_listing_order_need_few_reads(images, tmp_path, selector):
    """One image, and the same image as folder 1 of an `all` mount (its own inode
    numbers, N << 32 + ...)."""
    _base, wim, want = images
    mp, log = tmp_path / "m", tmp_path / "m.log"
    with mounted(f"{wim}{selector}", mp, debug=True, log_path=log):
        # A 2 ms pause after each file: the pushes run when the daemon's loop is idle,
        # and on a machine loaded by other tests an unpaced reader could keep it busy
        # (seen once in a full -n 4 run: 161 READs for 299 files, all 294 pushed late).
        (got,) = _read_all(mp, ["listing"], sub="1" if selector else "", pause=0.002)
    assert got == want
    reads, stats = _log_counts(log.read_text())
    files = sum(1 for d in want.values() if d != hashlib.sha256(b"").hexdigest())
    # Without read-ahead every non-empty file is one READ (the big one: a few).
    assert reads < files // 4, (reads, files, stats)
    assert stats["pushed"] >= files - reads - 2


def test_readers_at_once_in_other_orders_see_the_right_bytes(images, tmp_path):
    _base, wim, want = images
    mp = tmp_path / "m"
    with mounted(wim, mp):
        outs = _read_all(mp, ["listing", "reverse", "shuffled", "listing"])
    assert all(o == want for o in outs)


def test_read_ahead_off_reads_every_file(images, tmp_path, monkeypatch):
    """The switch the benchmarks' A/B runs use (WIMFS_READAHEAD=0)."""
    _base, wim, want = images
    monkeypatch.setenv("WIMFS_READAHEAD", "0")
    mp, log = tmp_path / "m", tmp_path / "m.log"
    with mounted(wim, mp, debug=True, log_path=log):
        (got,) = _read_all(mp, ["listing"])
    assert got == want
    reads, stats = _log_counts(log.read_text())
    assert stats["pushed"] == 0
    assert reads >= sum(1 for d in want.values() if d != hashlib.sha256(b"").hexdigest())
