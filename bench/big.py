"""Big-image benchmark (issue 15): what a mount costs before and while a tree is visited.

Uses the mount suite's `small100k-lzx` image (1,000 dirs x 100 files) and its source tree,
and builds `editions10.wim`: ten images of that tree (the same files, each image with its
own directory names, so the images share every blob, as editions do).

Measured, wimfs vs `wimlib-imagex mount` side by side in one run, cold caches:
  * rss curve: mount small100k, then `stat` the files of 0, 1, 10, 100, 1000 directories
    (cumulative) and read one file, recording the daemon's VmRSS after each step
    (PNG plot when matplotlib is installed);
  * whole-tree read (`find -type f -print0 | xargs -0 cat`) of the mount, and of the same
    tree from a directory on the local disk (the physical reference), both cold;
  * editions10 with `--index all` (wimfs only: wimlib mounts one image): mount ready,
    daemon RSS after mount and after walking one image (stat of every file), against a
    mount of that image alone walked the same way;
  * rw: a read-write mount of small100k (a fresh copy each round), one file rewritten,
    `unmount --commit`: mount ready, the commit's time and the daemon's peak RSS, wimfs
    against `wimlib-imagex mountrw` (and the result verified by wimlib).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from bench import RESULTS_DIR, drop_caches, format_table, machine_info, median, now_iso, \
    write_results
from bench.mount import (READ_CMD, Impl, Mounted, Wimfs, Wimlib, build_corpus, proc_status,
                         run_timed, work_dir)

STEPS = (0, 1, 10, 100, 1000)          # directories whose files are stat'ed (cumulative)
EDITIONS = 10


def _vm(pid: int | None, key: str = "VmRSS") -> float | None:
    v = proc_status(pid).get(key) if pid else None
    return v / 1024 if v else None


def rss_curve(impl: Impl, wim: str, mnt: str) -> dict:
    out: dict = {"files": [], "rss_mib": []}
    with Mounted(impl, wim, mnt) as m:
        out["mount_s"] = m.mount_s
        dirs = sorted(os.listdir(mnt)) if STEPS[-1] else []
        done = 0
        for n in STEPS:
            for d in dirs[done:n]:
                for f in os.listdir(os.path.join(mnt, d)):
                    os.stat(os.path.join(mnt, d, f))
            done = n
            out["files"].append(n * 100)
            out["rss_mib"].append(_vm(m.pid))
        with open(os.path.join(mnt, dirs[-1], sorted(os.listdir(os.path.join(mnt, dirs[-1])))[0]),
                  "rb") as f:
            f.read()
        out["hwm_mib"] = _vm(m.pid, "VmHWM")
    with Mounted(impl, wim, mnt) as m:        # one file read on a fresh mount
        with open(os.path.join(mnt, "d0500", "f050.dat"), "rb") as f:
            f.read()
        out["one_file_hwm_mib"] = _vm(m.pid, "VmHWM")
    return out


def disk_read(tree: str) -> float:
    drop_caches()
    dt, err = run_timed(READ_CMD, tree)
    if err:
        raise RuntimeError(f"disk read: {err}")
    return dt


def mount_read(impl: Impl, wim: str, mnt: str) -> float:
    with Mounted(impl, wim, mnt):
        dt, err = run_timed(READ_CMD, mnt)
        if err:
            raise RuntimeError(f"{impl.name} read: {err}")
    return dt


def build_editions(small_tree: str, wd: str, log=print) -> str:
    wim = os.path.join(wd, f"editions{EDITIONS}.wim")
    if os.path.isfile(wim):
        return wim
    tmp = wim + ".tmp"
    if os.path.exists(tmp):
        os.unlink(tmp)
    for k in range(1, EDITIONS + 1):
        tree = os.path.join(wd, f"edition-{k}")
        shutil.rmtree(tree, ignore_errors=True)
        subprocess.run(["cp", "-al", small_tree, tree], check=True)
        for d in os.listdir(tree):
            os.rename(os.path.join(tree, d), os.path.join(tree, f"e{k}{d}"))
        log(f"capturing edition {k} ...")
        subprocess.run(["wimlib-imagex", "capture" if k == 1 else "append", tree, tmp,
                        f"Edition {k}"], check=True, stdout=subprocess.DEVNULL)
        shutil.rmtree(tree)
    os.rename(tmp, wim)
    return wim


def walk_stat(top: str) -> int:
    n = 0
    for dirpath, _dirs, files in os.walk(top):
        for f in files:
            os.stat(os.path.join(dirpath, f))
            n += 1
    return n


def editions(wim: str, mnt: str, src: str | None) -> dict:
    out: dict = {}
    with Mounted(_AllImages(src=src), wim, mnt) as m:
        out["all_mount_s"] = m.mount_s
        out["all_rss_after_mount_mib"] = _vm(m.pid)
        out["all_files_walked"] = walk_stat(os.path.join(mnt, "3"))
        out["all_rss_after_walk_mib"] = _vm(m.pid)
        out["all_hwm_mib"] = _vm(m.pid, "VmHWM")
    with Mounted(_OneImage(src, 3), wim, mnt) as m:
        out["one_mount_s"] = m.mount_s
        out["one_files_walked"] = walk_stat(mnt)
        out["one_rss_after_walk_mib"] = _vm(m.pid)
        out["one_hwm_mib"] = _vm(m.pid, "VmHWM")
    return out


class _AllImages(Wimfs):
    def mount_cmd(self, image, mnt):
        return [sys.executable, "-m", "wimfs", "mount", image, mnt, "--index", "all"]


class _OneImage(Wimfs):
    def __init__(self, src, index):
        super().__init__(src=src)
        self.index = index

    def mount_cmd(self, image, mnt):
        return [sys.executable, "-m", "wimfs", "mount", image, mnt, "--index", str(self.index)]


def plot(curves: dict, path: str) -> str | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, c in curves.items():
        ax.plot(c["files"], c["rss_mib"], marker="o", label=name)
    ax.set_xscale("symlog", linthresh=100)
    ax.set_xlabel("files stat'ed (cumulative, 100k-file image)")
    ax.set_ylabel("daemon RSS (MiB)")
    ax.set_title("RSS against files visited")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def with_before(curves: dict, before: str | None) -> dict:
    """`curves` and, first, the wimfs curve of the results file `before`."""
    if not before:
        return curves
    with open(before) as f:
        old = json.load(f).get("rss_curve")
    if not old:                 # a --before run that skipped the curve
        return curves
    return {"wimfs before": old["wimfs"], **curves}


def rw_edit(impl, wim: str, mnt: str, work: str) -> dict:
    """Mount `wim` read-write, rewrite one file, commit (see the module doc)."""
    from bench.rw import _run, verify

    t = time.perf_counter()
    impl.mount(wim, mnt)
    mount_s = time.perf_counter() - t
    try:
        with open(os.path.join(mnt, "d0500", "f050.dat"), "r+b") as f:
            f.write(b"rewritten by bench big rw")
        pid = _mount_pid(mnt)
        hwm = _vm(pid, "VmHWM")
        commit_s = impl.commit_unmount(mnt)
    finally:
        if os.path.ismount(mnt):
            _run(["fusermount3", "-uz", mnt])
    verify(wim)
    return {"mount_s": mount_s, "commit_s": commit_s, "hwm_before_commit_mib": hwm}


def _mount_pid(mnt: str) -> int | None:
    """The pid of the process serving `mnt`: it holds /dev/fuse and names `mnt`."""
    want = {os.fsencode(mnt), os.fsencode(os.path.realpath(mnt))}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if not want & set(f.read().split(b"\0")):
                    continue
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/fuse" for fd in fds):
                return int(pid)
        except OSError:
            continue
    return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="scripts/bench big", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--wimfs-src", default=None, metavar="DIR")
    p.add_argument("--skip", default="", help="comma-separated: curve,read,editions,rw")
    p.add_argument("--output", default="big")
    p.add_argument("--before", metavar="JSON", default=None,
                   help="a results file of an earlier run: its wimfs curve is plotted too, "
                        "as 'wimfs before'")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("bench big: must run as root (drop_caches, FUSE)", file=sys.stderr)
        return 2
    skip = set(args.skip.split(","))
    src = os.path.abspath(args.wimfs_src) if args.wimfs_src else None
    machine = machine_info()
    img = build_corpus(False)["small100k-lzx"]
    wd = work_dir(False)
    tree = os.path.join(wd, "tree-small")
    mnt = os.path.join(wd, "mnt", "big")
    impls = {"wimfs": Wimfs(src=src), "wimlib": Wimlib()}
    data: dict = {"suite": "big", "date": now_iso(), "machine": machine, "wimfs_src": src}
    rows = []
    if "curve" not in skip:
        curves = {n: rss_curve(i, img["path"], mnt) for n, i in impls.items()}
        data["rss_curve"] = curves
        png = plot(with_before(curves, args.before),
                   os.path.join(RESULTS_DIR, f"{args.output}-rss.png"))
        data["plot"] = png and os.path.relpath(png, os.path.dirname(RESULTS_DIR))
        f, w = curves["wimfs"], curves["wimlib"]
        rows += [["rss after stat of every file (MiB)", f["rss_mib"][-1], w["rss_mib"][-1]],
                 ["peak rss, stat walk + 1 read (MiB)", f["hwm_mib"], w["hwm_mib"]],
                 ["peak rss, mount + 1 file (MiB)", f["one_file_hwm_mib"],
                  w["one_file_hwm_mib"]],
                 ["mount ready (s)", f["mount_s"], w["mount_s"]]]
    if "read" not in skip:
        reads: dict = {"disk": [], "wimfs": [], "wimlib": []}
        for _ in range(args.repeat):
            reads["disk"].append(disk_read(tree))
            for n, i in impls.items():
                reads[n].append(mount_read(i, img["path"], mnt))
        data["reads"] = reads
        rows.append(["whole-tree read, cold (s)", median(reads["wimfs"]), median(reads["wimlib"]),
                     median(reads["disk"])])
    if "editions" not in skip:
        ed = editions(build_editions(tree, wd), mnt, src)
        data["editions"] = ed
        rows += [[f"{EDITIONS} images --index all: mount ready (s)", ed["all_mount_s"]],
                 ["  rss after mount (MiB)", ed["all_rss_after_mount_mib"]],
                 ["  rss after walking image 3 (MiB)", ed["all_rss_after_walk_mib"]],
                 ["image 3 alone, rss after walking it (MiB)", ed["one_rss_after_walk_mib"]]]
    if "rw" not in skip:
        from bench.rw import Wimfs as RwWimfs
        from bench.rw import Wimlib as RwWimlib

        rwd = os.path.join(wd, "big-rw")
        os.makedirs(rwd, exist_ok=True)
        runs: dict = {"wimfs": [], "wimlib": []}
        for _ in range(args.repeat):
            for impl in (RwWimfs(rwd), RwWimlib(rwd)):
                wim = os.path.join(rwd, f"{impl.name}.wim")
                shutil.copyfile(img["path"], wim)
                m = os.path.join(rwd, f"mnt-{impl.name}")
                os.makedirs(m, exist_ok=True)
                drop_caches()
                runs[impl.name].append(rw_edit(impl, wim, m, rwd))
                os.unlink(wim)
        data["rw"] = runs

        def med(name, key):
            vals = [r[key] for r in runs[name] if r[key] is not None]
            return median(vals) if vals else None
        rows += [["rw: mount ready (s)", med("wimfs", "mount_s"), med("wimlib", "mount_s")],
                 ["rw: one file rewritten, unmount --commit (s)", med("wimfs", "commit_s"),
                  med("wimlib", "commit_s")],
                 ["rw: daemon peak rss before the commit (MiB)",
                  med("wimfs", "hwm_before_commit_mib"), med("wimlib", "hwm_before_commit_mib")]]
    data["rows"] = rows
    data["loadavg_end"] = os.getloadavg()[0]
    path = write_results(args.output, data)
    print(format_table(["metric", "wimfs", "wimlib", "disk"],
                       [[r[0]] + [f"{v:.3f}" if isinstance(v, float) else ("" if v is None else v)
                                  for v in r[1:]] + [""] * (4 - len(r)) for r in rows]))
    print(f"results: {os.path.relpath(path)} (load average {machine['loadavg']:.1f} at the "
          f"start, {data['loadavg_end']:.1f} at the end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
