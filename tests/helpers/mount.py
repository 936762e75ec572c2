"""Running the command under test: ``python -m wimfs mount/info``.

``WIMFS_TEST_MOUNT_IMPL=wimlib`` swaps the mount for ``wimlib-imagex mount`` so the mount tests
can be validated against wimlib's own FUSE mount.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .env import REPO_ROOT, mount_impl, require_fuse


class MountFailed(AssertionError):
    """The mount did not come up. ``returncode`` (None if still running/timeout), ``log`` (its output)."""

    def __init__(self, msg, returncode=None, log=""):
        super().__init__(msg)
        self.returncode = returncode
        self.log = log


def wimfs_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "wimfs", *map(str, args)]


def run_wimfs(*args, timeout=120, check=False) -> subprocess.CompletedProcess:
    """Run ``python -m wimfs ARGS`` (cwd = repo root), capture text output."""
    proc = subprocess.run(wimfs_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout, cwd=REPO_ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"wimfs {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                             f"{proc.stderr[-4000:]}")
    return proc


def wimfs_info_json(image, *args) -> dict:
    proc = run_wimfs("info", image, *args, "--json", check=True)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"wimfs info --json printed invalid JSON ({e}):\n{proc.stdout[:2000]}")


def _wimlib_mount_cmd(image, mountdir, args) -> list[str]:
    """Translate our mount options to ``wimlib-imagex mount``; skip what wimlib cannot do."""
    index = "1"
    args = list(map(str, args))
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("--index", "--name"):
            index = args[i + 1]
            i += 2
            continue
        if a.startswith("--index=") or a.startswith("--name="):
            index = a.split("=", 1)[1]
        elif a == "-o":
            opts = args[i + 1].split(",")
            if "case_insensitive" in opts:
                pytest.skip("wimlib-imagex mount has no case-insensitive mode")
            i += 2
            continue
        elif a.startswith("--cache-size"):
            if "=" not in a:
                i += 1
        i += 1
    if index == "all":
        pytest.skip("wimlib-imagex mount cannot mount all images at once")
    return ["wimlib-imagex", "mount", str(image), index, str(mountdir), "--unix-data"]


def _force_unmount(mountdir: str, impl: str) -> list[str]:
    notes = []
    if impl == "wimlib" and os.path.ismount(mountdir):
        r = subprocess.run(["wimlib-imagex", "unmount", mountdir], capture_output=True, text=True,
                           timeout=60)
        if r.returncode:
            notes.append(f"wimlib-imagex unmount: {r.stderr.strip()}")
    for cmd in (["fusermount3", "-u", mountdir], ["fusermount3", "-uz", mountdir]):
        if not os.path.ismount(mountdir):
            break
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if r.returncode:
            notes.append(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return notes


def abort_fuse(mountdir) -> bool:
    """Abort the FUSE connection behind `mountdir` (fusectl), found from
    /proc/self/mountinfo without touching the mount: a hung mount's processes then get
    ENOTCONN instead of waiting for good. True if a connection was aborted."""
    mountdir = os.path.abspath(os.fspath(mountdir))
    minor = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == mountdir and " - fuse" in line:
                minor = fields[2].split(":")[1]
    if minor is None:
        return False
    ctl = "/sys/fs/fuse/connections"
    if not os.listdir(ctl):
        subprocess.run(["mount", "-t", "fusectl", "none", ctl], capture_output=True)
    try:
        with open(os.path.join(ctl, minor, "abort"), "w") as f:
            f.write("1")
    except OSError:
        return False
    return True


@contextlib.contextmanager
def mounted(image, mountdir, *args, timeout: float = 30, log_path=None, impl: str | None = None,
            debug: bool = False):
    """Mount ``image`` at ``mountdir`` for the duration of the ``with`` block; yields the Popen
    (None for the wimlib implementation, which daemonizes).

    Fails early with the log if the mount process exits before the mount appears.
    Always unmounts: fusermount3 -u, then -uz, wait up to 10 s, terminate, kill.
    `debug`: the daemon runs with --debug (its log, at `log_path`, has the debug lines).
    """
    require_fuse()
    impl = impl or mount_impl()
    mountdir = os.path.abspath(os.fspath(mountdir))
    os.makedirs(mountdir, exist_ok=True)
    if os.path.ismount(mountdir):
        raise MountFailed(f"{mountdir} is already a mount point")
    log_path = Path(log_path or (mountdir.rstrip("/") + ".log"))
    logf = open(log_path, "wb")
    proc = None
    try:
        if impl == "wimlib":
            cmd = _wimlib_mount_cmd(image, mountdir, args)
        else:
            cmd = wimfs_cmd(*(["--debug"] if debug else []), "mount", "--foreground", image,
                            mountdir, *args)
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=REPO_ROOT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not os.path.ismount(mountdir):
            rc = proc.poll()
            if rc is not None and (impl != "wimlib" or rc != 0):
                logf.flush()
                log = log_path.read_text(errors="replace")
                raise MountFailed(f"mount process exited with {rc} before {mountdir} was mounted:\n"
                                  f"cmd: {' '.join(map(str, cmd))}\n{log[-4000:]}", rc, log)
            if time.monotonic() > deadline:
                log = log_path.read_text(errors="replace")
                raise MountFailed(f"{mountdir} not mounted after {timeout}s:\n{log[-4000:]}", None, log)
            time.sleep(0.05)
        yield proc if impl != "wimlib" else None
    finally:
        notes = _force_unmount(mountdir, impl)
        if proc is not None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        logf.close()
        if os.path.ismount(mountdir):  # pragma: no cover - last resort
            subprocess.run(["umount", "-l", mountdir], capture_output=True)
        if notes and os.path.ismount(mountdir):
            raise MountFailed(f"could not unmount {mountdir}: {notes}")


class MountPool:
    """Lazily mounts images and keeps them until ``close()`` (one per module fixture)."""

    def __init__(self, base: Path):
        self.base = Path(base)
        self.stack = contextlib.ExitStack()
        self.mounts: dict[tuple, Path] = {}
        self.procs: dict[tuple, subprocess.Popen | None] = {}
        self.errors: dict[tuple, BaseException] = {}

    def get(self, image, *args) -> Path:
        key = (str(image), *map(str, args))
        if key in self.errors:
            raise self.errors[key]
        if key not in self.mounts:
            mp = self.base / f"m{len(self.mounts) + len(self.errors)}"
            try:
                self.procs[key] = self.stack.enter_context(mounted(image, mp, *args))
            except BaseException as e:  # remember so every dependent test reports it fast
                if not isinstance(e, pytest.skip.Exception):
                    self.errors[key] = e
                raise
            self.mounts[key] = mp
        return self.mounts[key]

    def close(self) -> None:
        self.stack.close()


def tool_available(name: str) -> bool:
    return shutil.which(name) is not None
