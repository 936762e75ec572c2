"""Where wimfs keeps state: logs, mount records, staging overlays."""

from __future__ import annotations

import os


def state_dir() -> str:
    """$XDG_STATE_HOME/wimfs, ~/.local/state/wimfs, or /var/lib/wimfs for root."""
    env = os.environ.get("WIMFS_STATE_DIR")
    if env:
        path = env
    elif os.environ.get("XDG_STATE_HOME"):
        path = os.path.join(os.environ["XDG_STATE_HOME"], "wimfs")
    elif os.getuid() == 0:
        path = "/var/lib/wimfs"
    else:
        path = os.path.join(os.path.expanduser("~"), ".local", "state", "wimfs")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def mount_table() -> list[dict]:
    """Mounts from /proc/self/mountinfo: mountpoint, fstype, source."""
    out = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields = left.split()
                rfields = right.split()
                if len(fields) < 5 or len(rfields) < 2:
                    continue
                out.append({"mountpoint": _unescape(fields[4]), "fstype": rfields[0],
                            "source": _unescape(rfields[1]),
                            "options": rfields[2] if len(rfields) > 2 else ""})
    except OSError:
        pass
    return out


def _unescape(s: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) + 0 and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def find_mount(mountdir: str) -> dict | None:
    real = os.path.realpath(mountdir)
    for m in reversed(mount_table()):
        if m["mountpoint"] == real:
            return m
    return None
