"""Read-write mount benchmark: wimfs `mount --rw` vs `wimlib-imagex mountrw`, side by side.

Scenarios (each run on a fresh copy of the same LZX base WIM, for both implementations):
  (a) copy-commit: `cp -R --preserve=timestamps,links` a 200 MiB tree into the mount, then unmount --commit;
  (b) modify-commit: rewrite 100 bytes in place in each of 1,000 small files of the image,
      then unmount --commit;
  (c) write: one 1 GiB file with `dd bs=1M` (time to close), then discard.

Reported: wall times of the edit step and of the commit (unmount --commit: it includes
wimlib's whole commit and our commit + daemon exit), write throughput, ratios wimfs/wimlib.
Between edit and commit, `sync` flushes the staged data (timed separately as sync_s): without
it the commit of whichever implementation runs it pays for the edit step's writeback. Note that
wimfs fsyncs the WIM before and after the header write (crash safety); wimlib-imagex does not.
Targets: commit ratio <= 1.0 for (a) and (b); write throughput ratio >= 0.8 for (c).

Work files live in bench/work/rw-v<N>/ (the source tree and the base WIM are reused).
`--profile a|b|c` runs the wimfs daemon under cProfile for that scenario and prints the top
functions (output kept in bench/work/rw-v<N>/profile-<s>.out).
"""

from __future__ import annotations

import argparse
import os
import pstats
import random
import shutil
import subprocess
import sys
import time

from bench import (REPO, WORK_DIR, format_table, machine_info, median, now_iso, wimlib_version,
                   write_results)

VERSION = "1"
SEED = 20250311
MiB = 1 << 20
TARGETS = {"commit_ratio_max": 1.0, "write_throughput_ratio_min": 0.8}


def _work(quick: bool) -> str:
    d = os.path.join(WORK_DIR, f"rw-v{VERSION}-{'quick' if quick else 'full'}")
    os.makedirs(d, exist_ok=True)
    return d


# -- corpus ---------------------------------------------------------------------------------

def _binary_pool() -> bytes:
    """Compressible, realistic bytes: concatenated /usr/bin executables (up to 64 MiB)."""
    out = bytearray()
    for n in sorted(os.listdir("/usr/bin")):
        p = os.path.join("/usr/bin", n)
        try:
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    out += f.read(4 * MiB)
        except OSError:
            continue
        if len(out) >= 64 * MiB:
            break
    return bytes(out) or random.Random(1).randbytes(MiB) * 8


def build_tree(root: str, total: int) -> None:
    """~`total` bytes: half random (incompressible), half executable code; file sizes
    from 1 KiB to 4 MiB (log-uniform), 20-40 files per directory."""
    if os.path.isdir(root) and os.path.exists(os.path.join(root, ".done")):
        return
    shutil.rmtree(root, ignore_errors=True)
    r = random.Random(SEED)
    pool = _binary_pool()
    done, n, d = 0, 0, 0
    cur = os.path.join(root, "d000")
    os.makedirs(cur)
    while done < total:
        if n and n % r.randint(20, 40) == 0:
            d += 1
            cur = os.path.join(root, f"d{d // 10:02d}", f"d{d:03d}")
            os.makedirs(cur, exist_ok=True)
        size = min(int(2 ** r.uniform(10, 22)), total - done)
        if r.random() < 0.5:
            data = r.randbytes(size)
        else:
            off = r.randrange(0, max(1, len(pool) - size))
            data = pool[off:off + size]
        with open(os.path.join(cur, f"f{n:05d}.bin"), "wb") as f:
            f.write(data)
        done += len(data)
        n += 1
    open(os.path.join(root, ".done"), "w").close()


def build_small(root: str, count: int) -> None:
    if os.path.exists(os.path.join(root, ".done")):
        return
    shutil.rmtree(root, ignore_errors=True)
    r = random.Random(SEED + 1)
    for i in range(count):
        d = os.path.join(root, f"s{i // 50:02d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"small{i:04d}.txt"), "wb") as f:
            f.write(b"".join(b"line %d of small file %d %s\n" % (j, i, r.randbytes(4).hex().encode())
                             for j in range(r.randint(40, 300))))
    open(os.path.join(root, ".done"), "w").close()


def base_wim(work: str, small_count: int) -> str:
    wim = os.path.join(work, "base.wim")
    if not os.path.exists(wim):
        src = os.path.join(work, "base_src")
        build_small(src, small_count)
        subprocess.run(["wimlib-imagex", "capture", src, wim, "base", "--compress=LZX"],
                       check=True, capture_output=True)
    return wim


# -- the two implementations ------------------------------------------------------------------

def _run(cmd, **kw) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    dt = time.perf_counter() - t
    if r.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({r.returncode}): {r.stderr[-2000:]}")
    return dt


class Impl:
    name = ""

    def __init__(self, work: str):
        self.work = work

    def mount(self, wim: str, mnt: str) -> None: ...
    def commit_unmount(self, mnt: str) -> float: ...
    def discard_unmount(self, mnt: str) -> None: ...


class Wimfs(Impl):
    name = "wimfs"

    def __init__(self, work: str, profile: str | None = None):
        super().__init__(work)
        self.env = dict(os.environ, WIMFS_STATE_DIR=os.path.join(work, "wimfs-state"),
                        PYTHONPATH=REPO)
        self.profile = profile
        self.proc = None

    def mount(self, wim, mnt):
        if self.profile:
            argv = [sys.executable, "-m", "cProfile", "-o", self.profile, "-m", "wimfs",
                    "mount", "--foreground", "--rw", wim, mnt]
            self.proc = subprocess.Popen(argv, env=self.env, cwd=REPO,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            end = time.monotonic() + 30
            while not os.path.ismount(mnt):
                if time.monotonic() > end or self.proc.poll() is not None:
                    raise RuntimeError("profiled wimfs mount did not come up")
                time.sleep(0.05)
            return
        _run([sys.executable, "-m", "wimfs", "mount", "--rw", wim, mnt], env=self.env, cwd=REPO)

    def commit_unmount(self, mnt):
        dt = _run([sys.executable, "-m", "wimfs", "unmount", mnt, "--commit"], env=self.env,
                  cwd=REPO)
        if self.proc is not None:
            self.proc.wait(timeout=60)
            self.proc = None
        return dt

    def discard_unmount(self, mnt):
        _run([sys.executable, "-m", "wimfs", "unmount", mnt, "--discard"], env=self.env, cwd=REPO)
        if self.proc is not None:
            self.proc.wait(timeout=60)
            self.proc = None


class Wimlib(Impl):
    name = "wimlib"

    def mount(self, wim, mnt):
        staging = os.path.join(self.work, "wimlib-staging")
        os.makedirs(staging, exist_ok=True)
        _run(["wimlib-imagex", "mountrw", wim, "1", mnt, f"--staging-dir={staging}"])

    def commit_unmount(self, mnt):
        return _run(["wimlib-imagex", "unmount", mnt, "--commit"])

    def discard_unmount(self, mnt):
        _run(["wimlib-imagex", "unmount", mnt])


# -- scenarios ----------------------------------------------------------------------------------

def _fresh(work: str, base: str, impl: Impl) -> tuple[str, str]:
    wim = os.path.join(work, f"run-{impl.name}.wim")
    shutil.copyfile(base, wim)
    mnt = os.path.join(work, f"mnt-{impl.name}")
    os.makedirs(mnt, exist_ok=True)
    return wim, mnt


def _cleanup_mount(mnt: str) -> None:
    if os.path.ismount(mnt):
        subprocess.run(["fusermount3", "-uz", mnt], capture_output=True)


def scenario_a(work, base, impl: Impl, tree: str) -> dict:
    wim, mnt = _fresh(work, base, impl)
    impl.mount(wim, mnt)
    try:
        t = time.perf_counter()
        # cp -a fails on wimlib's mount (no ACL xattrs): copy data, links and times only
        subprocess.run(["cp", "-R", "--preserve=timestamps,links", tree,
                        os.path.join(mnt, "copied")], check=True)
        copy_s = time.perf_counter() - t
        sync_s = _sync()
        commit_s = impl.commit_unmount(mnt)
    finally:
        _cleanup_mount(mnt)
    verify(wim)
    return {"edit_s": copy_s, "sync_s": sync_s, "commit_s": commit_s,
            "wim_bytes": os.path.getsize(wim)}


def scenario_b(work, base, impl: Impl, count: int) -> dict:
    wim, mnt = _fresh(work, base, impl)
    impl.mount(wim, mnt)
    try:
        t = time.perf_counter()
        n = 0
        for dirpath, _dirs, files in os.walk(mnt):
            for f in sorted(x for x in files if x.startswith("small")):
                with open(os.path.join(dirpath, f), "r+b") as fh:
                    fh.seek(10)
                    fh.write(b"M" * 100)
                n += 1
        edit_s = time.perf_counter() - t
        assert n == count, (n, count)
        sync_s = _sync()
        commit_s = impl.commit_unmount(mnt)
    finally:
        _cleanup_mount(mnt)
    verify(wim)
    return {"edit_s": edit_s, "sync_s": sync_s, "commit_s": commit_s, "files": n}


def scenario_c(work, base, impl: Impl, size_mib: int) -> dict:
    wim, mnt = _fresh(work, base, impl)
    impl.mount(wim, mnt)
    try:
        t = time.perf_counter()
        subprocess.run(["dd", "if=/dev/zero", f"of={os.path.join(mnt, 'big.bin')}", "bs=1M",
                        f"count={size_mib}", "status=none"], check=True)
        write_s = time.perf_counter() - t
        impl.discard_unmount(mnt)
    finally:
        _cleanup_mount(mnt)
    return {"write_s": write_s, "mb_per_s": size_mib * MiB / write_s / 1e6}


def _sync() -> float:
    """Flush the edit phase's dirty pages (the staged data of either implementation) so the
    commit is timed on its own, not on writeback of what the edit step left behind."""
    t = time.perf_counter()
    os.sync()
    return time.perf_counter() - t


def verify(wim: str) -> None:
    r = subprocess.run(["wimlib-imagex", "verify", wim], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"wimlib-imagex verify {wim} failed: {r.stderr[-1000:]}")


# -- main ----------------------------------------------------------------------------------------

def _ratio(a, b):
    return round(a / b, 2) if a is not None and b else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/bench rw", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="20 MiB tree, 200 files, 128 MiB dd")
    ap.add_argument("--repeat", type=int, default=1, help="repetitions (medians reported)")
    ap.add_argument("--only", choices=["a", "b", "c"], action="append",
                    help="run only these scenarios")
    ap.add_argument("--profile", choices=["a", "b", "c"],
                    help="run the wimfs daemon of this scenario under cProfile (no results file)")
    args = ap.parse_args(argv)
    tree_bytes, small, dd_mib = (20 * MiB, 200, 128) if args.quick else (200 * MiB, 1000, 1024)
    work = _work(args.quick)
    tree = os.path.join(work, "tree")
    print(f"bench rw: preparing corpus in {work}", flush=True)
    build_tree(tree, tree_bytes)
    base = base_wim(work, small)
    scen = args.only or ["a", "b", "c"]
    runs = {"a": lambda i: scenario_a(work, base, i, tree),
            "b": lambda i: scenario_b(work, base, i, small),
            "c": lambda i: scenario_c(work, base, i, dd_mib)}

    if args.profile:
        out = os.path.join(work, f"profile-{args.profile}.out")
        res = runs[args.profile](Wimfs(work, profile=out))
        print(res)
        st = pstats.Stats(out)
        st.sort_stats("cumulative").print_stats(30)
        st.sort_stats("tottime").print_stats(20)
        return 0

    results: dict = {s: {"wimfs": [], "wimlib": []} for s in scen}
    for _ in range(args.repeat):
        for s in scen:
            for impl in (Wimlib(work), Wimfs(work)):
                print(f"  scenario {s}: {impl.name} ...", flush=True)
                results[s][impl.name].append(runs[s](impl))

    def med(s, impl, key):
        return median([r[key] for r in results[s][impl]]) if s in results else None

    rows, summary = [], {}
    labels = {"a": f"(a) copy {tree_bytes // MiB} MiB tree + commit",
              "b": f"(b) modify {small} small files + commit",
              "c": f"(c) dd {dd_mib} MiB write"}
    for s in scen:
        if s in ("a", "b"):
            e_fs, e_wl = med(s, "wimfs", "edit_s"), med(s, "wimlib", "edit_s")
            c_fs, c_wl = med(s, "wimfs", "commit_s"), med(s, "wimlib", "commit_s")
            ratio = _ratio(c_fs, c_wl)
            ok = ratio is not None and ratio <= TARGETS["commit_ratio_max"]
            rows.append([labels[s] + ": edit s", f"{e_fs:.2f}", f"{e_wl:.2f}",
                         _ratio(e_fs, e_wl), "", ""])
            rows.append([labels[s] + ": commit s", f"{c_fs:.2f}", f"{c_wl:.2f}", ratio,
                         f"<= {TARGETS['commit_ratio_max']}", "ok" if ok else "MISS"])
            summary[s] = {"edit_s": {"wimfs": e_fs, "wimlib": e_wl},
                          "commit_s": {"wimfs": c_fs, "wimlib": c_wl},
                          "commit_ratio": ratio, "target_met": ok}
        else:
            t_fs, t_wl = med(s, "wimfs", "mb_per_s"), med(s, "wimlib", "mb_per_s")
            ratio = _ratio(t_fs, t_wl)
            ok = ratio is not None and ratio >= TARGETS["write_throughput_ratio_min"]
            rows.append([labels[s] + ": MB/s", f"{t_fs:.0f}", f"{t_wl:.0f}", ratio,
                         f">= {TARGETS['write_throughput_ratio_min']}", "ok" if ok else "MISS"])
            summary[s] = {"mb_per_s": {"wimfs": t_fs, "wimlib": t_wl},
                          "throughput_ratio": ratio, "target_met": ok}
    print(format_table(["measure", "wimfs", "wimlib", "wimfs/wimlib", "target", ""], rows))
    path = write_results("rw" + ("-quick" if args.quick else ""), {
        "suite": "rw", "when": now_iso(), "machine": machine_info(), "wimlib": wimlib_version(),
        "quick": args.quick, "repeat": args.repeat, "targets": TARGETS,
        "sizes": {"tree_bytes": tree_bytes, "small_files": small, "dd_mib": dd_mib},
        "summary": summary, "runs": results})
    print(f"results: {path}")
    return 0 if all(v["target_met"] for v in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
