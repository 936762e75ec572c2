"""Profile the wimfs mount daemon during one workload on one bench image.

    .venv/bin/python -m bench.profile_mount IMAGE [--workload read|stat]
        [--tool pyspy|cprofile|strace|replies] [--quick] [--wimfs-args '...']

IMAGE is a bench/mount.py image name (none, xpress, lzx, lzms-solid, small100k-lzx);
the corpus is built if missing. The mount is cold (caches dropped). Tools:
  pyspy     py-spy record of every thread of the daemon (GIL holders and native
            code such as libwim), summarised as self and inclusive time per function
            (py-spy: $PYSPY, /tmp/pyspy-venv/bin/py-spy or PATH).
  cprofile  `python -m cProfile -m wimfs mount --foreground`: event-loop thread only;
            prints top functions and the number of calls of each FUSE handler.
  strace    `strace -c -f` of the daemon: syscall counts/times (each FUSE request is
            one read() of /dev/fuse, each reply one writev()).
  replies   strace of the daemon's writev() replies: request count and a histogram
            of reply sizes (READ replies show the kernel's read request size).
Also prints the FUSE connection's read-ahead (bdi read_ahead_kb) and the kernel's
max_pages limit. Output files go to bench/work/profile/.
"""

from __future__ import annotations

import argparse
import collections
import os
import pstats
import re
import shutil
import signal
import subprocess
import sys
import time

from bench import WORK_DIR, drop_caches
from bench.mount import (READ_CMD, STAT_CMD, build_corpus, proc_cpu_s, proc_status,
                         unmount, work_dir)


def find_pyspy() -> str | None:
    for p in (os.environ.get("PYSPY"), "/tmp/pyspy-venv/bin/py-spy", shutil.which("py-spy")):
        if p and os.access(p, os.X_OK):
            return p
    return None


def _wait_mount(mnt: str, proc: subprocess.Popen, timeout: float = 60) -> float:
    t0 = time.perf_counter()
    while not os.path.ismount(mnt):
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode} before mounting")
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError("mount did not appear")
        time.sleep(0.005)
    return time.perf_counter() - t0


def fuse_conn_info(mnt: str) -> dict:
    st = os.stat(mnt)
    maj, mnr = os.major(st.st_dev), os.minor(st.st_dev)
    info = {"bdi": f"{maj}:{mnr}"}
    for key, path in (("read_ahead_kb", f"/sys/class/bdi/{maj}:{mnr}/read_ahead_kb"),
                      ("max_ratio", f"/sys/class/bdi/{maj}:{mnr}/max_ratio"),
                      ("max_pages_limit", "/proc/sys/fs/fuse/max_pages_limit"),
                      ("conn_waiting", f"/sys/fs/fuse/connections/{mnr}/waiting"),
                      ("conn_max_background", f"/sys/fs/fuse/connections/{mnr}/max_background")):
        try:
            with open(path) as f:
                info[key] = f.read().strip()
        except OSError:
            pass
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if f" {mnt} " in line:
                info["mountinfo"] = line.strip().split(" - ", 1)[-1]
    return info


def summarize_pyspy(path: str, top: int = 25) -> str:
    """Collapsed stacks ("a;b;c N") -> per-thread totals, self and inclusive time."""
    self_t: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    threads: collections.Counter = collections.Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            n = int(n)
            total += n
            frames = stack.split(";")
            if frames and frames[0].startswith(("thread", "process")):
                threads[frames[0].split(" (")[0] + " " + frames[0].split('"')[1]
                        if '"' in frames[0] else frames[0]] += n
            frames = [re.sub(r" \((/.*?/)?([^/]*?)(:\d+)?\)$", r" (\2)", fr) for fr in frames
                      if not fr.startswith(("thread", "process"))]
            if frames:
                self_t[frames[-1]] += n
            for fr in set(frames):
                incl[fr] += n
    out = [f"samples: {total}"]
    out.append("per thread:")
    out += [f"  {n:7d} {100 * n / total:5.1f}%  {t}" for t, n in threads.most_common(10)]
    out.append(f"top {top} self:")
    out += [f"  {n:7d} {100 * n / total:5.1f}%  {fr}" for fr, n in self_t.most_common(top)]
    out.append(f"top {top} inclusive:")
    out += [f"  {n:7d} {100 * n / total:5.1f}%  {fr}" for fr, n in incl.most_common(top)]
    return "\n".join(out)


def summarize_cprofile(path: str, top: int = 25) -> str:
    import io
    buf = io.StringIO()
    st = pstats.Stats(path, stream=buf)
    st.sort_stats("tottime").print_stats(top)
    counts = []
    for (fn, line, name), (cc, nc, tt, ct, _callers) in st.stats.items():
        if fn.endswith(os.path.join("fuse", "ops.py")) and not name.startswith("_") \
                and name != "wrapper":
            counts.append((nc, name, tt, ct))
    buf.write("FUSE handler calls (coroutine resumptions count as calls):\n")
    for nc, name, tt, ct in sorted(counts, reverse=True):
        buf.write(f"  {name:12} {nc:9d} calls  tottime {tt:7.3f} s  cumtime {ct:7.3f} s\n")
    return buf.getvalue()


def summarize_replies(path: str) -> str:
    sizes: collections.Counter = collections.Counter()
    reads = 0
    rx = re.compile(r"writev\(\d+, .*\)\s+=\s+(\d+)")
    rr = re.compile(r"read\(\d+, .*\)\s+=\s+(\d+)")
    with open(path) as f:
        for line in f:
            m = rx.search(line)
            if m:
                sizes[int(m.group(1)) - 16] += 1
            elif rr.search(line):
                reads += 1
    total = sum(sizes.values())
    out = [f"requests read from /dev/fuse: {reads}, replies (writev): {total}"]
    big = {k: v for k, v in sizes.items() if k >= 4096}
    out.append(f"replies >= 4 KiB (READ data): {sum(big.values())}, "
               f"bytes {sum(k * v for k, v in big.items()) / 2**20:.1f} MiB")
    out.append("reply payload sizes (top 15): " + ", ".join(
        f"{k}B x{v}" for k, v in sizes.most_common(15)))
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_mount", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image")
    p.add_argument("--workload", choices=("read", "stat", "none"), default="read")
    p.add_argument("--tool", choices=("pyspy", "cprofile", "strace", "replies"), default="pyspy")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--native", action="store_true", help="py-spy --native (slower)")
    p.add_argument("--rate", type=int, default=250, help="py-spy samples/s")
    p.add_argument("--gil", action="store_true",
                   help="py-spy --gil: only samples of the thread holding the GIL")
    p.add_argument("--wimfs-args", default="")
    p.add_argument("--wimfs-src", default=None, metavar="DIR",
                   help="run the wimfs package in DIR instead of the working tree")
    args = p.parse_args(argv)

    images = build_corpus(args.quick)
    img = images[args.image]
    outdir = os.path.join(WORK_DIR, "profile")
    os.makedirs(outdir, exist_ok=True)
    tag = f"{args.image}-{args.workload}-{args.tool}"
    mnt = os.path.join(work_dir(args.quick), "mnt", "profile")
    os.makedirs(mnt, exist_ok=True)
    if os.path.ismount(mnt):
        unmount(mnt, None)
    daemon = [sys.executable, "-m", "wimfs", "mount", "--foreground", img["path"], mnt,
              *args.wimfs_args.split()]
    if args.tool == "cprofile":
        prof = os.path.join(outdir, tag + ".prof")
        daemon = [sys.executable, "-m", "cProfile", "-o", prof] + daemon[1:]
    drop_caches()
    t0 = time.perf_counter()
    src = os.path.abspath(args.wimfs_src) if args.wimfs_src else None
    proc = subprocess.Popen(daemon, stdin=subprocess.DEVNULL, start_new_session=True,
                            cwd=src, env=dict(os.environ, PYTHONPATH=src) if src else None)
    tool = None
    outfile = None
    try:
        mount_s = _wait_mount(mnt, proc)
        print(f"mounted in {mount_s:.3f} s (foreground daemon, "
              f"{time.perf_counter() - t0:.3f} s incl. start)")
        print("fuse:", fuse_conn_info(mnt))
        if args.tool == "pyspy":
            pyspy = find_pyspy()
            if not pyspy:
                raise SystemExit("py-spy not found (pip install py-spy into /tmp/pyspy-venv)")
            outfile = os.path.join(outdir, tag + ".collapsed")
            cmd = [pyspy, "record", "--pid", str(proc.pid), "--threads", "--rate",
                   str(args.rate), "--format", "raw", "--output", outfile, "--nonblocking"]
            if args.gil:
                cmd.append("--gil")
            if args.native:
                cmd.remove("--nonblocking")
                cmd.append("--native")
            tool = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(1.0)
        elif args.tool in ("strace", "replies"):
            outfile = os.path.join(outdir, tag + ".strace")
            cmd = ["strace", "-f", "-p", str(proc.pid), "-o", outfile]
            cmd += ["-c"] if args.tool == "strace" else ["-e", "trace=read,writev",
                                                          "-e", "abbrev=all", "-s", "0"]
            tool = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        st0 = proc_status(proc.pid)
        c0 = proc_cpu_s(proc.pid)
        cmd = {"read": READ_CMD, "stat": STAT_CMD, "none": "true"}[args.workload]
        t1 = time.perf_counter()
        r = subprocess.run(["bash", "-c", cmd, "_", mnt], capture_output=True, text=True)
        dt = time.perf_counter() - t1
        c1 = proc_cpu_s(proc.pid)
        st1 = proc_status(proc.pid)
        print(f"{args.workload}: {dt:.3f} s, rc {r.returncode}, {img['files']} files, "
              f"{img['bytes'] / dt / 1e6:.1f} MB/s; daemon CPU {c1 - c0:.2f} s "
              f"({100 * (c1 - c0) / dt:.0f}% of wall); VmHWM {st1.get('VmHWM', 0) / 1024:.1f} "
              f"MiB (before workload {st0.get('VmHWM', 0) / 1024:.1f}), threads "
              f"{st1.get('Threads')}")
        if r.returncode:
            print(r.stderr[:500])
        if tool is not None and args.tool == "pyspy":
            tool.send_signal(signal.SIGINT)
            tool.wait(timeout=60)
    finally:
        unmount(mnt, proc.pid)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        if tool is not None and tool.poll() is None:
            try:
                tool.wait(timeout=30)
            except subprocess.TimeoutExpired:
                tool.send_signal(signal.SIGINT)
                tool.wait(timeout=30)
    if args.tool == "pyspy" and outfile and os.path.exists(outfile):
        print(summarize_pyspy(outfile))
    elif args.tool == "cprofile":
        print(summarize_cprofile(prof))
    elif args.tool == "strace" and outfile:
        with open(outfile) as f:
            print(f.read())
    elif args.tool == "replies" and outfile:
        print(summarize_replies(outfile))
    print(f"raw output: {outfile or prof}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
