"""Mount-free servicing needs no FUSE, creates files exactly as the FUSE path does, and
survives ``kill -9`` at any point (the WIM holds the old or the new state)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.helpers import REPO_ROOT, corpus_dir, wimlib_apply, wimlib_capture, wimlib_verify
from tests.helpers.rwmount import RwMount
from tests.helpers.wimlib import wimlib_dir_detailed
from windows_trees import windows_tree

CFG = "Windows/System32/config"

# Runs `wimfs ARGV` in a mount namespace whose /dev is a fresh tmpfs holding only null,
# zero and urandom -- no /dev/fuse -- with pyfuse3 made unimportable.
NO_FUSE = textwrap.dedent("""
    set -e
    mount -t tmpfs none /dev
    mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5
    mknod -m 666 /dev/urandom c 1 9
    exec "$0" -c '
    import os, sys
    assert not os.path.exists("/dev/fuse")
    sys.modules["pyfuse3"] = None
    from wimfs.cli import main
    sys.exit(main(sys.argv[1:]))
    ' "$@"
""")


def no_fuse_wimfs(*argv):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.fail("this test needs root and unshare(1) to hide /dev/fuse")
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           NO_FUSE, sys.executable, *map(str, argv)], capture_output=True,
                          text=True, cwd=REPO_ROOT)


def hivexget(hive, key, name):
    r = subprocess.run(["hivexget", str(hive), key, name], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


@pytest.fixture
def win_wim(hives, tmp_path):
    tree = windows_tree(tmp_path / "tree", hives, "10clean")
    return wimlib_capture(tree, tmp_path / "install.wim", compress="lzx")


def test_reg_and_update_without_fuse(win_wim, tmp_path):
    reg = tmp_path / "x.reg"
    reg.write_text('REGEDIT4\n\n[HKEY_LOCAL_MACHINE\\SYSTEM\\Contoso]\n"A"=dword:00000007\n')
    (tmp_path / "payload.txt").write_text("payload")
    r = no_fuse_wimfs("reg", f"{win_wim}:1", "import", reg)
    assert r.returncode == 0, r.stderr
    r = no_fuse_wimfs("update", f"{win_wim}:1", "--add", tmp_path / "payload.txt",
                      "/Windows/payload.txt")
    assert r.returncode == 0, r.stderr
    assert wimlib_verify(win_wim).returncode == 0
    wimlib_apply(win_wim, 1, tmp_path / "out")
    assert hivexget(tmp_path / "out" / CFG / "SYSTEM", "\\Contoso", "A") == "7"
    assert (tmp_path / "out/Windows/payload.txt").read_text() == "payload"


def test_busy_when_mounted_read_write_elsewhere(win_wim, tmp_path):
    import fcntl
    with open(win_wim, "rb+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)           # what a read-write mount holds
        before = win_wim.read_bytes()
        r = subprocess.run([sys.executable, "-m", "wimfs", "reg", f"{win_wim}:1", "add",
                            "HKLM\\SOFTWARE\\X", "/f"], capture_output=True, text=True)
    assert r.returncode == 7 and "already mounted read-write" in r.stderr
    assert win_wim.read_bytes() == before


@pytest.mark.mount
def test_new_files_inherit_as_through_fuse(tmp_path):
    """On a WIM made by Microsoft imagex (real NTFS security descriptors), a file added
    mount-free gets the same security descriptor and attributes as one created through
    a read-write FUSE mount."""
    src = corpus_dir() / "wim" / "sevenzipjbinding" / "multiple-files_archive1.zip.0.wim"
    if not src.exists():
        pytest.skip("corpus WIM missing")
    a, b = tmp_path / "a.wim", tmp_path / "b.wim"
    shutil.copyfile(src, a)
    shutil.copyfile(src, b)
    (tmp_path / "new.txt").write_text("new")
    r = subprocess.run([sys.executable, "-m", "wimfs", "update", a, "--add",
                        tmp_path / "new.txt", "/a/new.txt", "--add", tmp_path / "new.txt",
                        "/a/sub/new.txt"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with RwMount(b, tmp_path / "mnt", tmp_path / "state") as m:
        (tmp_path / "mnt/a/sub").mkdir()
        shutil.copyfile(tmp_path / "new.txt", tmp_path / "mnt/a/new.txt")
        shutil.copyfile(tmp_path / "new.txt", tmp_path / "mnt/a/sub/new.txt")
        m.unmount("--commit")
    da, db = wimlib_dir_detailed(a), wimlib_dir_detailed(b)
    for path in ("a/new.txt", "a/sub", "a/sub/new.txt"):
        assert da[path]["sd"] and da[path]["sd"] == db[path]["sd"], path
        assert da[path]["attributes"] == db[path]["attributes"], path
    assert da["a/new.txt"]["sd"] != da["a"]["sd"]       # inherited, not copied


def _state(wim, tmp_path, n) -> tuple:
    out = tmp_path / f"k{n}"
    wimlib_apply(wim, 1, out)
    system = out / CFG / "SYSTEM"
    regs = (hivexget(system, "\\Contoso", "A"), hivexget(system, "\\Contoso", "V299"))
    payload = out / "Windows/payload.bin"
    got = payload.read_bytes() if payload.exists() else None
    shutil.rmtree(out)
    return regs, got


def _timed(cmd) -> float:
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.monotonic() - t0


@pytest.mark.slow
def test_kill_minus_9_leaves_old_or_new_state(win_wim, tmp_path):
    """20 trials: a mount-free reg import or update killed at a random point leaves a WIM
    that wimlib-imagex verifies, holding exactly the old or exactly the new state."""
    reg = tmp_path / "x.reg"
    reg.write_text("REGEDIT4\n\n[HKEY_LOCAL_MACHINE\\SYSTEM\\Contoso]\n\"A\"=dword:00000007\n"
                   + "".join(f'"V{i}"=dword:{i:08x}\n' for i in range(300)))
    payload = os.urandom(3 << 20)
    (tmp_path / "payload.bin").write_bytes(payload)
    trial = tmp_path / "trial.wim"
    cmds = [[sys.executable, "-m", "wimfs", "update", f"{trial}:1", "--add",
             str(tmp_path / "payload.bin"), "/Windows/payload.bin"],
            [sys.executable, "-m", "wimfs", "reg", f"{trial}:1", "import", str(reg)]]
    whole = []
    for cmd in cmds:                  # how long a whole run takes, so kills land anywhere
        shutil.copyfile(win_wim, trial)
        whole.append(_timed(cmd))
    rng = random.Random(1234)
    outcomes = set()
    for n in range(20):
        shutil.copyfile(win_wim, trial)
        p = subprocess.Popen(cmds[n % 2], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, whole[n % 2] * 1.1))
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert wimlib_verify(trial).returncode == 0, f"trial {n}"
        regs, got = _state(trial, tmp_path, n)
        if n % 2:
            assert regs in ((None, None), ("7", "299")), f"trial {n}: {regs}"
            done = regs[0] is not None
            outcomes.add(("reg", done))
        else:
            assert regs == (None, None) and got in (None, payload), f"trial {n}"
            done = got is not None
            outcomes.add(("update", done))
        if done:        # finished before the kill (a busy machine): kill sooner next time
            whole[n % 2] *= 0.7
    assert ("update", False) in outcomes and ("reg", False) in outcomes
