"""Crash safety: kill -9 the mount daemon at random moments of a large commit.

Every trial: stage ~40 MB of incompressible data (+ small edits), start ``wimfs commit``, kill
the daemon after a random delay within the measured commit time (x1.2, so some kills land after
it finished), then: ``wimlib-imagex verify`` passes, the image is exactly the old or the new
tree, ``wimfs mounts`` says "needs remount", ``wimfs remount`` brings the overlay back (the
mount shows the new tree, the staged data intact). The next trial builds on that state; at the
end a normal commit succeeds and ``wimlib-imagex apply`` matches the mount.

Two tests x 10 trials (so xdist runs them side by side), each with its own WIM and mount.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import time

import pytest

from tests.helpers import assert_same_tree, run, snapshot, wimlib_apply, wimlib_capture, \
    wimlib_verify
from tests.helpers.rwmount import is_mountpoint

pytestmark = [pytest.mark.mount]

BIG = 40 << 20
TRIALS = 10


def wim_paths(wim) -> set[str]:
    out = run(["wimlib-imagex", "dir", str(wim), "1"]).stdout.decode("utf-8", "replace")
    return {line for line in out.splitlines() if line.startswith("/")}


def mount_paths(root) -> set[str]:
    out = {"/"}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            out.add("/" + os.path.relpath(os.path.join(dirpath, n), root))
    return out


def write_big(path, seed: int) -> str:
    data = random.Random(seed).randbytes(BIG)
    with open(path, "wb") as f:
        for off in range(0, BIG, 1 << 20):
            f.write(data[off:off + (1 << 20)])
    return hashlib.sha1(data).hexdigest()


def sha1(path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


@pytest.mark.parametrize("seed", [1, 2])
def test_kill9_during_commit(seed, tmp_path, rw_factory):
    src = tmp_path / "src"
    (src / "keep").mkdir(parents=True)
    for i in range(30):
        (src / "keep" / f"f{i}").write_bytes(os.urandom(1000 + i))
    wim = wimlib_capture(src, tmp_path / "c.wim", compress="lzx", name="crash")
    rng = random.Random(seed)
    m = rw_factory(wim)
    # measure a full commit of the same size
    write_big(m.mnt / "big_0", seed * 1000)
    t0 = time.monotonic()
    m.commit()
    duration = time.monotonic() - t0
    assert wimlib_verify(wim).returncode == 0
    outcomes = {"old": 0, "new": 0}
    big_sha = {}
    for trial in range(1, TRIALS + 1):
        # the pending change: drop the last big file, add a new one, small edits
        for n in os.listdir(m.mnt):
            if n.startswith("big_"):
                os.unlink(m.mnt / n)
        big_sha[trial] = write_big(m.mnt / f"big_{trial}", seed * 1000 + trial)
        (m.mnt / "keep" / f"small_{trial}").write_bytes(b"small %d\n" % trial)
        os.rename(m.mnt / "keep" / f"f{trial}", m.mnt / f"moved_{trial}")
        old, new = wim_paths(wim), mount_paths(m.mnt)
        assert old != new
        pid = m.pid
        delay = rng.uniform(0, duration * 1.2)
        cli = subprocess.Popen(m_cmd(m, "commit", m.mnt), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=m_env(m))
        time.sleep(delay)
        os.kill(pid, 9)
        cli.communicate(timeout=60)
        v = wimlib_verify(wim)
        assert v.returncode == 0, f"trial {trial} (delay {delay:.3f}s): verify failed: " \
                                  f"{v.stdout!r} {v.stderr!r}"
        now = wim_paths(wim)
        assert now in (old, new), f"trial {trial}: the WIM holds neither the old nor the new " \
                                  f"tree: extra {sorted(now - old - new)[:10]}, " \
                                  f"missing {sorted((old & new) - now)[:10]}"
        outcomes["old" if now == old else "new"] += 1
        rec = m.record()
        assert rec is not None and rec["status"] == "needs remount", rec
        r = m.remount(check=False)
        assert r.returncode == 0, f"trial {trial}: remount failed: {r.stderr}\n{m.log()[-3000:]}"
        assert is_mountpoint(m.mnt) and m.record()["status"] == "ok"
        assert mount_paths(m.mnt) == new, f"trial {trial}: overlay not restored: " \
            f"{sorted(mount_paths(m.mnt) ^ new)[:10]}"
        assert sha1(m.mnt / f"big_{trial}") == big_sha[trial]
    # a final commit succeeds and matches the mount
    (m.mnt / "final").write_bytes(b"final\n")
    seen = snapshot(m.mnt, xattrs=False)
    m.unmount("--commit")
    assert wimlib_verify(wim).returncode == 0
    wimlib_apply(wim, 1, tmp_path / "out")
    assert_same_tree(seen, snapshot(tmp_path / "out", xattrs=False), "mount", "apply")
    print(f"crash trials (seed {seed}): commit {duration:.2f}s, outcomes {outcomes}")


def m_cmd(m, *args):
    import sys
    return [sys.executable, "-m", "wimfs", *map(str, args)]


def m_env(m):
    from tests.helpers.rwmount import wimfs_env
    return wimfs_env(m.state)
