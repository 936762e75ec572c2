"""Read-write mounts driven through the CLI, the way users run them.

``RwMount(wim, mountdir, state_dir)`` runs ``python -m wimfs mount --rw`` (daemonized) with
``WIMFS_STATE_DIR`` pointing at a private state directory, and offers commit / unmount /
status / kill -9 / remount. ``close()`` always tears everything down (discard, then lazy
unmount and SIGKILL of the daemon as a last resort), so a failing test leaves no mount behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .env import REPO_ROOT, require_fuse


def wimfs_env(state_dir) -> dict:
    return dict(os.environ, WIMFS_STATE_DIR=str(state_dir), PYTHONPATH=str(REPO_ROOT))


def wimfs_rw(state_dir, *args, timeout=300, check=False) -> subprocess.CompletedProcess:
    """``python -m wimfs ARGS`` with a private state directory; text output captured."""
    cmd = [sys.executable, "-m", "wimfs", *map(str, args)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, cwd=REPO_ROOT, env=wimfs_env(state_dir),
                          stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        log = daemon_log(state_dir)
        raise AssertionError(f"wimfs {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                             f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-4000:]}\n"
                             f"--- daemon log (tail) ---\n{log[-3000:]}")
    return proc


def daemon_log(state_dir) -> str:
    p = Path(state_dir) / "log" / "mount.log"
    try:
        return p.read_text(errors="replace")
    except OSError:
        return ""


def is_mountpoint(path) -> bool:
    path = os.path.abspath(os.fspath(path))
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == path:
                return True
    return False


class RwMount:
    def __init__(self, wim, mountdir, state_dir, *mount_args):
        require_fuse()
        self.wim = Path(wim)
        self.mnt = Path(os.path.abspath(mountdir))
        self.state = Path(state_dir)
        self.mount_args = [str(a) for a in mount_args]
        self.mnt.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(parents=True, exist_ok=True)

    # -- CLI ---------------------------------------------------------------------------

    def cli(self, *args, check=False, timeout=300) -> subprocess.CompletedProcess:
        return wimfs_rw(self.state, *args, check=check, timeout=timeout)

    def mount(self, *extra, check=True) -> subprocess.CompletedProcess:
        return self.cli("mount", "--rw", self.wim, self.mnt, *self.mount_args, *extra,
                        check=check)

    def commit(self, *args, check=True) -> subprocess.CompletedProcess:
        return self.cli("commit", self.mnt, *args, check=check)

    def unmount(self, *args, check=True) -> subprocess.CompletedProcess:
        return self.cli("unmount", self.mnt, *args, check=check)

    def remount(self, check=True) -> subprocess.CompletedProcess:
        return self.cli("remount", self.mnt, check=check)

    def status(self) -> dict:
        return json.loads(self.cli("status", self.mnt, "--json", check=True).stdout)

    def record(self) -> dict | None:
        rows = json.loads(self.cli("mounts", "--json", check=True).stdout)
        for r in rows:
            if os.path.realpath(r["mountdir"]) == os.path.realpath(self.mnt):
                return r
        return None

    @property
    def pid(self) -> int | None:
        r = self.record()
        pid = r and r.get("pid")
        return pid if isinstance(pid, int) and pid > 0 else None

    def kill9(self) -> int:
        pid = self.pid
        assert pid, "no daemon pid in the mount record"
        os.kill(pid, signal.SIGKILL)
        wait_pid_gone(pid)
        return pid

    def log(self) -> str:
        return daemon_log(self.state)

    # -- teardown ----------------------------------------------------------------------

    def close(self) -> None:
        """Best effort: discard, else lazy unmount + SIGKILL the daemon."""
        pid = None
        try:
            pid = self.pid
        except Exception:
            pass
        if is_mountpoint(self.mnt):
            try:
                r = self.cli("unmount", self.mnt, "--discard", "--force", timeout=60)
                ok = r.returncode == 0
            except subprocess.TimeoutExpired:
                ok = False
            if not ok or is_mountpoint(self.mnt):
                subprocess.run(["fusermount3", "-uz", str(self.mnt)], capture_output=True)
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_pid_gone(pid)
        if is_mountpoint(self.mnt):
            subprocess.run(["umount", "-l", str(self.mnt)], capture_output=True)

    def __enter__(self):
        self.mount()
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def wait_pid_gone(pid: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ", 1)[1].startswith("Z"):
                    return   # zombie (its parent has not reaped it): gone for our purposes
        except (OSError, IndexError):
            return
        time.sleep(0.02)
