"""Mount records and the client side of the control channel.

Every wimfs mount daemon writes a record `<state>/mounts/<key>.json` (WIM path,
image index, mount directory, read-only or read-write, staging directory, pid);
read-write ones also have a control socket in their staging directory. A record
whose daemon is gone but whose overlay remains is a mount that needs `remount`
(DISM's "Needs Remount"); one whose WIM or staging directory is gone is invalid.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time

from wimfs.errors import MountError, WimfsError
from wimfs.paths import find_mount, state_dir


def _records_dir() -> str:
    d = os.path.join(state_dir(), "mounts")
    os.makedirs(d, mode=0o700, exist_ok=True)
    return d


def record_key(mountdir: str) -> str:
    return hashlib.sha1(os.path.realpath(mountdir).encode("utf-8", "surrogateescape")
                        ).hexdigest()[:16]


def record_path(mountdir: str) -> str:
    return os.path.join(_records_dir(), record_key(mountdir) + ".json")


def write_record(rec: dict, path: str | None = None) -> None:
    """Write a record. A daemon passes `path` computed before it mounted: resolving
    the mount directory afterwards would send a request to itself (deadlock)."""
    path = path or record_path(rec["mountdir"])
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(rec, f, indent=1)
    os.replace(tmp, path)


def remove_record(mountdir: str, path: str | None = None) -> None:
    try:
        os.unlink(path or record_path(mountdir))
    except FileNotFoundError:
        pass


def read_record(mountdir: str) -> dict | None:
    try:
        with open(record_path(mountdir), encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def all_records() -> list[dict]:
    out = []
    d = _records_dir()
    for n in sorted(os.listdir(d)):
        if n.endswith(".json"):
            try:
                with open(os.path.join(d, n), encoding="utf-8") as f:
                    out.append(json.load(f))
            except (OSError, json.JSONDecodeError):
                continue
    return out


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie or a recycled pid: check it is still a wimfs daemon.
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"wimfs" in f.read()
    except OSError:
        return False


def mount_alive(mountdir: str) -> bool:
    """Mounted and answering (not 'Transport endpoint is not connected')."""
    m = find_mount(mountdir)
    if m is None or m["fstype"] != "fuse.wimfs":
        return False
    try:
        # statvfs, not stat: the kernel answers stat from its attribute cache for a while
        # after the daemon died; statfs always reaches the daemon (ENOTCONN if it is gone).
        os.statvfs(mountdir)
    except OSError:
        return False
    return True


def status_of(rec: dict) -> str:
    """ok, needs remount, or invalid (DISM's DismMountStatus)."""
    if not os.path.exists(rec.get("wim", "")):
        return "invalid"
    alive = pid_alive(rec.get("pid", -1))
    if alive and mount_alive(rec["mountdir"]):
        return "ok"
    if rec.get("rw"):
        if rec.get("staging") and os.path.isdir(rec["staging"]):
            return "needs remount"
        return "invalid"
    return "invalid"


def staging_size(path: str | None) -> int:
    total = 0
    if path and os.path.isdir(path):
        for root, _dirs, files in os.walk(path):
            for n in files:
                try:
                    total += os.lstat(os.path.join(root, n)).st_size
                except OSError:
                    pass
    return total


def control_path(staging: str) -> str:
    return os.path.join(staging, "control.sock")


# sun_path holds 108 bytes; a deep state or staging directory makes a longer socket path.
_SUN_PATH_MAX = 100


@contextlib.contextmanager
def unix_socket_path(path: str):
    """A path to bind()/connect() `path` by: itself, or (when too long for sun_path) the
    same file reached through /proc/self/fd/<fd of its directory>."""
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        yield path
        return
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{os.path.basename(path)}"
    finally:
        os.close(fd)


def request(rec: dict, req: dict, on_progress=None, timeout: float | None = None) -> dict:
    """Send one control request to the daemon of a read-write mount."""
    if not rec.get("rw"):
        raise MountError(f"{rec['mountdir']} is mounted read-only")
    path = control_path(rec["staging"])
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if timeout is not None:
        s.settimeout(timeout)
    try:
        try:
            with unix_socket_path(path) as p:
                s.connect(p)
        except OSError as exc:
            raise MountError(f"cannot reach the mount daemon of {rec['mountdir']} "
                             f"({exc.strerror}); try 'wimfs remount'") from None
        s.sendall((json.dumps(req) + "\n").encode())
        with s.makefile("rb") as f:
            for line in f:
                msg = json.loads(line)
                if msg.get("done"):
                    if not msg.get("ok"):
                        err = WimfsError(msg.get("error", "failed"))
                        err.exit_code = msg.get("code", 1)
                        raise err
                    return msg
                if on_progress and "progress" in msg:
                    on_progress(msg["progress"])
        raise MountError("the mount daemon closed the control connection")
    finally:
        s.close()


def wait_gone(mountdir: str, pid: int | None, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    rec = record_path(mountdir)
    delay = 0.002
    while time.monotonic() < end:
        if find_mount(mountdir) is None and (pid is None or not os.path.exists(rec)
                                             or not pid_alive(pid)):
            return True
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return False
