"""wimfs benchmarks (not timed tests): `scripts/bench [SUITE] [options]`.

Each suite is a module `bench.<suite>` with `main(argv=None) -> int`. It writes
`bench/results/<suite>.json` and prints a table. Work files (corpus trees, WIMs)
live under `bench/work/` (git-ignored) and are reused between runs.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
WORK_DIR = os.path.join(BENCH_DIR, "work")
RESULTS_DIR = os.path.join(BENCH_DIR, "results")

# Suites in the order `all` runs them; a suite whose module does not exist yet is skipped.
SUITES = ("mount", "reg", "rw", "image", "servicing", "big")


def _out(cmd: Sequence[str]) -> str:
    try:
        return subprocess.run(list(cmd), capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def wimlib_version() -> str:
    line = _out(["wimlib-imagex", "--version"]).splitlines()
    return line[0] if line else "unknown"


def machine_info() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = 0
    try:
        with open("/proc/meminfo") as f:
            mem_kb = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return {
        "hostname": platform.node(),
        "kernel": platform.release(),
        "arch": platform.machine(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "mem_gib": round(mem_kb / (1 << 20), 1),
        "python": sys.version.split()[0],
        "wimlib": wimlib_version(),
        "fuse": _out(["fusermount3", "--version"]),
        "wimfs_git": _out(["git", "-C", REPO, "describe", "--always", "--dirty"]),
        "loadavg": os.getloadavg()[0],
    }


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def write_results(suite: str, data: dict) -> str:
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f"{suite}.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)
    return path


def median(xs: Sequence[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def drop_caches() -> None:
    """Make the next mount cold: flush dirty data, drop page/dentry/inode caches."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError as exc:
        print(f"bench: warning: cannot drop caches ({exc}); results are not cold",
              file=sys.stderr)


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in header]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for n, r in enumerate(cells):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
