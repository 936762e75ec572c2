"""Mount benchmark: wimfs vs `wimlib-imagex mount`, side by side, cold mounts.

Corpus (built once under bench/work/, keyed by CORPUS_VERSION):
  * tree "mixed": the system python's stdlib (no __pycache__, no site-packages),
    a seeded 64 MiB random file and 128 MiB of concatenated /usr/bin binaries;
    captured with --compress=none, XPRESS, LZX and --solid (LZMS).
  * tree "small": 1000 dirs x 100 files of 0-2 KiB (seeded), captured with LZX.

For every image and implementation, each repetition does two cold cycles
(drop caches -> mount -> workload -> read daemon VmHWM -> unmount): one runs the
stat walk, one the whole-tree read. Mount latency is measured in both cycles.
Medians are reported.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass

from bench import (WORK_DIR, drop_caches, format_table, machine_info, median, now_iso,
                   wimlib_version, write_results)

CORPUS_VERSION = "1"       # bump when the corpus or capture options change
SEED = 20240607
MiB = 1 << 20

READ_CMD = 'find "$1" -type f -print0 | xargs -0 cat > /dev/null'
STAT_CMD = "find \"$1\" -type f -printf '%s\\n' > /dev/null"

# name -> (tree, capture options)
IMAGES = {
    "none": ("mixed", ["--compress=none"]),
    "xpress": ("mixed", ["--compress=XPRESS"]),
    "lzx": ("mixed", ["--compress=LZX"]),
    "lzms-solid": ("mixed", ["--solid"]),
    "small100k-lzx": ("small", ["--compress=LZX"]),
}

TARGETS = {
    "read_ratio_max": 1.0,          # none, xpress, lzx: wimfs read time <= wimlib's
    "solid_read_mbps_min": 100.0,   # lzms-solid: wimfs whole-tree read throughput
    "small_mount_s_max": 2.0,       # small100k: wimfs mount latency
    "small_mount_ratio_max": 1.5,
    "rss_ratio_max": 2.0,           # every image: peak daemon RSS
}


# -- corpus -------------------------------------------------------------------------------

@dataclass
class Sizes:
    random_bytes: int
    bin_bytes: int
    small_dirs: int
    small_files: int
    stdlib_filter: tuple[str, ...] | None   # top-level stdlib entries to keep (quick)


FULL = Sizes(64 * MiB, 128 * MiB, 1000, 100, None)
QUICK = Sizes(4 * MiB, 8 * MiB, 20, 100, ("json", "email", "asyncio", "os.py", "typing.py"))


def work_dir(quick: bool) -> str:
    py = sysconfig.get_python_version()
    return os.path.join(WORK_DIR, f"mount-v{CORPUS_VERSION}-{'quick' if quick else 'full'}-py{py}")


def system_stdlib() -> str:
    out = subprocess.run(["python3", "-c", 'import sysconfig;print(sysconfig.get_paths()["stdlib"])'],
                         capture_output=True, text=True, check=True).stdout.strip()
    return out


def _build_mixed(dst: str, sz: Sizes) -> None:
    src = system_stdlib()
    keep = sz.stdlib_filter

    def ignore(d: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n in ("__pycache__", "site-packages")}
        if keep is not None and os.path.samefile(d, src):
            skip |= {n for n in names if n not in keep}
        return skip

    shutil.copytree(src, os.path.join(dst, "stdlib"), symlinks=True, ignore=ignore)
    rng = random.Random(SEED)
    with open(os.path.join(dst, "random.bin"), "wb") as f:
        left = sz.random_bytes
        while left:
            n = min(left, 8 * MiB)
            f.write(rng.randbytes(n))
            left -= n
    # Regular files of /usr/bin in name order, truncated/padded (by repeating) to the size.
    names = sorted(os.listdir("/usr/bin"))
    want = sz.bin_bytes
    with open(os.path.join(dst, "usrbin.bin"), "wb") as out:
        written = 0
        while written < want:
            progress = written
            for name in names:
                p = os.path.join("/usr/bin", name)
                try:
                    if not stat.S_ISREG(os.lstat(p).st_mode):
                        continue
                    with open(p, "rb") as f:
                        data = f.read(want - written)
                except OSError:
                    continue
                out.write(data)
                written += len(data)
                if written >= want:
                    break
            if written == progress:    # nothing readable: pad with zeros
                out.write(bytes(want - written))
                written = want


def _build_small(dst: str, sz: Sizes) -> None:
    rng = random.Random(SEED + 1)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"wim", b"fuse", b"chunk", b"blob",
             b"dentry", b"inode", b"\n"]
    for d in range(sz.small_dirs):
        dd = os.path.join(dst, f"d{d:04d}")
        os.makedirs(dd)
        for i in range(sz.small_files):
            n = rng.randint(0, 2048)
            # half text-like (compressible), half random; unique per file (no dedup)
            text = b" ".join(rng.choice(words) for _ in range(n // 12))
            data = (f"{d}/{i} ".encode() + text)[: n // 2] + rng.randbytes(n - n // 2)
            with open(os.path.join(dd, f"f{i:03d}.dat"), "wb") as f:
                f.write(data[:n])


def tree_bytes(path: str) -> tuple[int, int]:
    """(regular files, their total size) under path."""
    files = total = 0
    for dirpath, _dirs, names in os.walk(path):
        for n in names:
            st = os.lstat(os.path.join(dirpath, n))
            if stat.S_ISREG(st.st_mode):
                files += 1
                total += st.st_size
    return files, total


def build_corpus(quick: bool, log=print) -> dict:
    """Build (or reuse) the trees and WIMs. Returns {image: {path, files, bytes, ...}}."""
    wd = work_dir(quick)
    sz = QUICK if quick else FULL
    os.makedirs(wd, exist_ok=True)
    trees = {}
    for tree, builder in (("mixed", _build_mixed), ("small", _build_small)):
        path = os.path.join(wd, f"tree-{tree}")
        if not os.path.isdir(path):
            log(f"building tree {tree} ...")
            tmp = path + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            builder(tmp, sz)
            os.rename(tmp, path)
        trees[tree] = path
    info = {}
    for name, (tree, opts) in IMAGES.items():
        wim = os.path.join(wd, f"{name}.wim")
        if not os.path.isfile(wim):
            log(f"capturing {name}.wim ({' '.join(opts)}) ...")
            tmp = wim + ".tmp"
            if os.path.exists(tmp):
                os.unlink(tmp)
            t0 = time.monotonic()
            subprocess.run(["wimlib-imagex", "capture", trees[tree], tmp, name, *opts],
                           check=True, stdout=subprocess.DEVNULL)
            os.rename(tmp, wim)
            log(f"  {time.monotonic() - t0:.1f} s")
        files, total = tree_bytes(trees[tree])
        info[name] = {"path": wim, "tree": tree, "capture_options": opts, "files": files,
                      "bytes": total, "wim_bytes": os.path.getsize(wim)}
    return info


# -- mounting -----------------------------------------------------------------------------

def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def proc_status(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmHWM", "VmRSS", "Threads"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def proc_cpu_s(pid: int) -> float | None:
    """utime+stime of the process (all threads), seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class Impl:
    name = ""

    def env_cwd(self) -> tuple[dict | None, str | None]:
        return None, None

    def mount_cmd(self, image: str, mnt: str) -> list[str]:
        raise NotImplementedError

    def is_daemon(self, argv: list[str], mnt: str) -> bool:
        raise NotImplementedError

    def find_daemon(self, mnt: str) -> int | None:
        for d in os.listdir("/proc"):
            if d.isdigit():
                argv = _cmdline(int(d))
                if argv and self.is_daemon(argv, mnt):
                    return int(d)
        return None


class Wimfs(Impl):
    name = "wimfs"

    def __init__(self, extra: list[str] | None = None, src: str | None = None):
        self.extra = extra or []
        self.src = src          # directory holding the wimfs package (None: the repo)

    def env_cwd(self) -> tuple[dict | None, str | None]:
        if not self.src:
            return None, None
        return dict(os.environ, PYTHONPATH=self.src), self.src

    def mount_cmd(self, image, mnt):
        return [sys.executable, "-m", "wimfs", "mount", image, mnt, *self.extra]

    def is_daemon(self, argv, mnt):
        # The daemon is the `wimfs mount IMAGE MNT` process forked (same command line),
        # or a `mount --foreground` started by a caller with threads.
        return "wimfs" in argv and "mount" in argv and mnt in argv


class Wimlib(Impl):
    name = "wimlib"

    def mount_cmd(self, image, mnt):
        return ["wimlib-imagex", "mount", image, "1", mnt]

    def is_daemon(self, argv, mnt):
        return os.path.basename(argv[0]) == "wimlib-imagex" and "mount" in argv and mnt in argv


def unmount(mnt: str, pid: int | None, timeout: float = 60.0) -> None:
    """fusermount3 -u, falling back to -uz; then wait for the daemon (started by us) to exit."""
    if os.path.ismount(mnt):
        r = subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
        if r.returncode != 0:
            subprocess.run(["fusermount3", "-uz", mnt], capture_output=True)
    if pid is None:
        return
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
        except OSError:
            break
        time.sleep(0.02)
    else:
        if os.path.exists(f"/proc/{pid}"):
            print(f"bench: daemon {pid} did not exit after unmount; SIGTERM", file=sys.stderr)
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


class Mounted:
    """Context manager: cold mount (timed); always unmounts."""

    def __init__(self, impl: Impl, image: str, mnt: str, cold: bool = True):
        self.impl, self.image, self.mnt, self.cold = impl, image, mnt, cold
        self.pid: int | None = None
        self.mount_s: float | None = None

    def __enter__(self) -> Mounted:
        os.makedirs(self.mnt, exist_ok=True)
        if os.path.ismount(self.mnt):
            unmount(self.mnt, self.impl.find_daemon(self.mnt))
        if self.cold:
            drop_caches()
        try:
            env, cwd = self.impl.env_cwd()
            t0 = time.perf_counter()
            r = subprocess.run(self.impl.mount_cmd(self.image, self.mnt), capture_output=True,
                               text=True, timeout=600, env=env, cwd=cwd)
            while not os.path.ismount(self.mnt) and r.returncode == 0:
                if time.perf_counter() - t0 > 60:
                    break
                time.sleep(0.001)
            self.mount_s = time.perf_counter() - t0
            if r.returncode != 0 or not os.path.ismount(self.mnt):
                raise RuntimeError(f"{self.impl.name} mount of {self.image} failed "
                                   f"(rc {r.returncode}): {(r.stderr or r.stdout).strip()}")
            self.pid = self.impl.find_daemon(self.mnt)
        except BaseException:
            self.__exit__()
            raise
        return self

    def status(self) -> dict[str, int]:
        return proc_status(self.pid) if self.pid else {}

    def __exit__(self, *exc) -> None:
        if self.pid is None and os.path.ismount(self.mnt):
            self.pid = self.impl.find_daemon(self.mnt)
        unmount(self.mnt, self.pid)


def run_timed(cmd: str, mnt: str) -> tuple[float, str | None]:
    t0 = time.perf_counter()
    r = subprocess.run(["bash", "-c", cmd, "_", mnt], capture_output=True, text=True)
    dt = time.perf_counter() - t0
    err = None
    if r.returncode != 0:
        lines = r.stderr.strip().splitlines()
        err = f"rc {r.returncode}: {lines[0] if lines else ''} ({len(lines)} error lines)"
    return dt, err


def run_read_capped(mnt: str, cap_s: float) -> tuple[float, int, bool]:
    """The whole-tree read through a pipe, stopped after cap_s. (seconds, bytes, complete)."""
    cmd = 'find "$1" -type f -print0 | xargs -0 cat'
    t0 = time.perf_counter()
    p = subprocess.Popen(["bash", "-c", cmd, "_", mnt], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    assert p.stdout is not None
    fd = p.stdout.fileno()
    os.set_blocking(fd, False)
    got = 0
    done = False
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    while True:
        left = cap_s - (time.perf_counter() - t0)
        if left <= 0:
            break
        if not sel.select(timeout=min(left, 0.5)):
            continue
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            continue
        if not chunk:
            done = True
            break
        got += len(chunk)
    dt = time.perf_counter() - t0
    if not done:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    p.wait()
    p.stdout.close()
    return dt, got, done


# -- the benchmark --------------------------------------------------------------------------

def measure(impl: Impl, name: str, img: dict, mnt: str, repeat: int, cap_s: float | None,
            log=print) -> dict:
    res: dict = {"mount_s": [], "read_s": [], "read_bytes": [], "read_complete": [],
                 "stat_s": [], "rss_kib": [], "rss_after_stat_kib": [],
                 "daemon_cpu_read_s": [], "daemon_cpu_stat_s": [], "threads": [], "errors": []}
    for rep in range(repeat):
        # cycle 1: stat walk
        with Mounted(impl, img["path"], mnt) as m:
            res["mount_s"].append(m.mount_s)
            c0 = proc_cpu_s(m.pid) if m.pid else None
            dt, err = run_timed(STAT_CMD, mnt)
            c1 = proc_cpu_s(m.pid) if m.pid else None
            st = m.status()
            res["stat_s"].append(dt)
            res["rss_after_stat_kib"].append(st.get("VmHWM"))
            res["daemon_cpu_stat_s"].append(c1 - c0 if c0 is not None and c1 is not None
                                            else None)
            if err:
                res["errors"].append(f"stat: {err}")
        # cycle 2: whole-tree read
        with Mounted(impl, img["path"], mnt) as m:
            res["mount_s"].append(m.mount_s)
            c0 = proc_cpu_s(m.pid) if m.pid else None
            if cap_s is None:
                dt, err = run_timed(READ_CMD, mnt)
                nbytes, complete = img["bytes"], True
            else:
                dt, nbytes, complete = run_read_capped(mnt, cap_s)
                err = None
            c1 = proc_cpu_s(m.pid) if m.pid else None
            st = m.status()
            res["read_s"].append(dt)
            res["read_bytes"].append(nbytes)
            res["read_complete"].append(complete)
            res["rss_kib"].append(max(st.get("VmHWM") or 0, res["rss_after_stat_kib"][-1] or 0)
                                  or None)
            res["threads"].append(st.get("Threads"))
            res["daemon_cpu_read_s"].append(c1 - c0 if c0 is not None and c1 is not None
                                            else None)
            if err:
                res["errors"].append(f"read: {err}")
        log(f"  {name:14} {impl.name:6} rep {rep + 1}: mount {res['mount_s'][-2]:.3f}/"
            f"{res['mount_s'][-1]:.3f} s, stat {res['stat_s'][-1]:.2f} s, read "
            f"{res['read_s'][-1]:.2f} s ({res['read_bytes'][-1] / MiB / res['read_s'][-1]:.1f}"
            f" MiB/s{'' if res['read_complete'][-1] else ', capped'}), "
            f"VmHWM {(res['rss_kib'][-1] or 0) / 1024:.1f} MiB")
    mbps = [b / 1e6 / t for b, t in zip(res["read_bytes"], res["read_s"])]
    res["median"] = {
        "mount_s": median(res["mount_s"]),
        "read_s": median(res["read_s"]) if all(res["read_complete"]) else None,
        "read_mbps": median(mbps),
        "stat_s": median(res["stat_s"]),
        "rss_mib": (median(res["rss_kib"]) or 0) / 1024 or None,
        "daemon_cpu_read_s": median(res["daemon_cpu_read_s"]),
        "daemon_cpu_stat_s": median(res["daemon_cpu_stat_s"]),
    }
    res["read_capped"] = not all(res["read_complete"])
    return res


def _ratio(a, b):
    return a / b if a is not None and b else None


def evaluate(images: dict, results: dict) -> list[dict]:
    """Rows of (image, metric, wimfs, wimlib, ratio, target, pass)."""
    rows = []
    for name, img in images.items():
        f = results[name]["wimfs"]["median"]
        w = results[name]["wimlib"]["median"]
        capped = results[name]["wimlib"]["read_capped"]
        # wimlib read capped: estimate its full time from the measured rate
        w_read = w["read_s"] if not capped else img["bytes"] / 1e6 / w["read_mbps"]

        def row(metric, fv, wv, ratio, target=None, ok=None, note=""):
            rows.append({"image": name, "metric": metric, "wimfs": fv, "wimlib": wv,
                         "ratio": ratio, "target": target, "pass": ok, "note": note})

        row("mount_s", f["mount_s"], w["mount_s"], _ratio(f["mount_s"], w["mount_s"]),
            *((f"<= {TARGETS['small_mount_s_max']} s and <= "
               f"{TARGETS['small_mount_ratio_max']}x",
               f["mount_s"] <= TARGETS["small_mount_s_max"]
               and _ratio(f["mount_s"], w["mount_s"]) <= TARGETS["small_mount_ratio_max"])
              if img["tree"] == "small" else ()))
        r = _ratio(f["read_s"], w_read)
        if name in ("none", "xpress", "lzx"):
            row("read_s", f["read_s"], w_read, r, f"<= {TARGETS['read_ratio_max']}x",
                r is not None and r <= TARGETS["read_ratio_max"])
        else:
            row("read_s", f["read_s"], w_read, r,
                note="wimlib estimated from a capped read" if capped else "")
        if name == "lzms-solid":
            row("read_MB/s", f["read_mbps"], w["read_mbps"],
                _ratio(f["read_mbps"], w["read_mbps"]),
                f">= {TARGETS['solid_read_mbps_min']:g} MB/s",
                f["read_mbps"] >= TARGETS["solid_read_mbps_min"],
                "wimlib: capped read" if capped else "")
        else:
            row("read_MB/s", f["read_mbps"], w["read_mbps"],
                _ratio(f["read_mbps"], w["read_mbps"]))
        row("stat_s", f["stat_s"], w["stat_s"], _ratio(f["stat_s"], w["stat_s"]))
        rr = _ratio(f["rss_mib"], w["rss_mib"])
        row("rss_MiB", f["rss_mib"], w["rss_mib"], rr, f"<= {TARGETS['rss_ratio_max']}x",
            rr is not None and rr <= TARGETS["rss_ratio_max"])
    return rows


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "PASS" if v else "FAIL"
    if isinstance(v, float):
        return f"{v:.3f}" if v < 10 else f"{v:.1f}"
    return str(v)


def table(rows: list[dict]) -> str:
    return format_table(
        ["image", "metric", "wimfs", "wimlib", "ratio", "target", "pass/fail"],
        [[r["image"], r["metric"], _fmt(r["wimfs"]), _fmt(r["wimlib"]),
          (_fmt(r["ratio"]) + "x") if r["ratio"] is not None else "-", r["target"] or "",
          _fmt(r["pass"]) if r["pass"] is not None else ""] for r in rows])


def parse_args(argv):
    p = argparse.ArgumentParser(prog="scripts/bench mount", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small corpus, for smoke testing")
    p.add_argument("--repeat", type=int, default=None,
                   help="repetitions per measurement (default 3, --quick: 1)")
    p.add_argument("--images", default=",".join(IMAGES),
                   help=f"comma-separated subset of {','.join(IMAGES)}")
    p.add_argument("--impls", default="wimfs,wimlib", help="comma-separated subset")
    p.add_argument("--solid-cap", type=float, default=30.0, metavar="S",
                   help="stop wimlib's whole-tree read of the solid image after S seconds and "
                        "report its rate (it reads solid images at < 1 MB/s); 0: no cap")
    p.add_argument("--wimfs-args", default="", help="extra args for `wimfs mount` "
                   "(e.g. '--threads 2 --cache-size 512')")
    p.add_argument("--wimfs-src", default=None, metavar="DIR",
                   help="benchmark the wimfs package in DIR (e.g. a `git worktree` or "
                        "`git archive REV wimfs | tar -x -C DIR`) instead of the working tree")
    p.add_argument("--output", default=None, help="results file (default bench/results/mount.json)")
    return p.parse_args(argv)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    args = parse_args(argv)
    # Background jobs start with SIGINT ignored, and SIGTERM kills without unwinding:
    # turn both into KeyboardInterrupt so every `with Mounted(...)` unmounts.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    if os.geteuid() != 0:
        print("bench mount: must run as root (drop_caches, FUSE)", file=sys.stderr)
        return 2
    repeat = args.repeat or (1 if args.quick else 3)
    names = [n for n in args.images.split(",") if n]
    bad = [n for n in names if n not in IMAGES]
    if bad:
        print(f"bench mount: unknown image(s) {bad}; choose from {list(IMAGES)}", file=sys.stderr)
        return 2
    src = os.path.abspath(args.wimfs_src) if args.wimfs_src else None
    if src and not os.path.isfile(os.path.join(src, "wimfs", "__main__.py")):
        print(f"bench mount: {src}/wimfs/__main__.py not found", file=sys.stderr)
        return 2
    impls = {"wimfs": Wimfs(args.wimfs_args.split(), src), "wimlib": Wimlib()}
    impl_names = [i for i in args.impls.split(",") if i]
    t_start = time.monotonic()
    machine = machine_info()           # before the run: loadavg shows concurrent load
    images = {n: i for n, i in build_corpus(args.quick).items() if n in names}
    mnt_root = os.path.join(work_dir(args.quick), "mnt")
    results: dict = {n: {} for n in images}
    for name, img in images.items():
        print(f"{name}: {img['files']} files, {img['bytes'] / MiB:.1f} MiB, "
              f"WIM {img['wim_bytes'] / MiB:.1f} MiB", flush=True)
        for iname in impl_names:
            cap = (args.solid_cap or None) if (iname == "wimlib" and name == "lzms-solid") \
                else None
            results[name][iname] = measure(impls[iname], name, img,
                                           os.path.join(mnt_root, iname), repeat, cap,
                                           log=lambda s: print(s, flush=True))
    rows = evaluate(images, results) if set(impl_names) == {"wimfs", "wimlib"} else []
    data = {
        "suite": "mount",
        "date": now_iso(),
        "machine": machine,
        "wimlib_version": wimlib_version(),
        "corpus_version": CORPUS_VERSION,
        "quick": args.quick,
        "repeat": repeat,
        "wimfs_args": args.wimfs_args,
        "wimfs_src": src,
        "solid_cap_s": args.solid_cap,
        "commands": {"read": READ_CMD, "stat": STAT_CMD,
                     "mount": {k: v.mount_cmd("IMAGE", "MNT") for k, v in impls.items()}},
        "targets": TARGETS,
        "images": {n: {k: v for k, v in i.items() if k != "path"} | {"file": os.path.basename(i["path"])}
                   for n, i in images.items()},
        "raw": results,
        "rows": rows,
        "all_pass": all(r["pass"] for r in rows if r["pass"] is not None) if rows else None,
        "elapsed_s": round(time.monotonic() - t_start, 1),
        "loadavg_end": os.getloadavg()[0],
    }
    if rows:
        print()
        print(table(rows))
        fails = [f"{r['image']}/{r['metric']}" for r in rows if r["pass"] is False]
        print(f"\ntargets: {'all pass' if not fails else 'FAIL: ' + ', '.join(fails)}")
    out = args.output or ("mount-quick" if args.quick else "mount")
    path = write_results(out, data) if not os.path.isabs(out) else _write_abs(out, data)
    print(f"results: {os.path.relpath(path)}")
    return 0


def _write_abs(path: str, data: dict) -> str:
    import json
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    return path


if __name__ == "__main__":
    sys.exit(main())
