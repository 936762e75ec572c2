"""Image-management benchmark: wimfs vs wimlib-imagex, side by side.

Tree: the mount benchmark's "mixed" tree (system python stdlib without __pycache__,
a seeded 64 MiB random file, 128 MiB of concatenated /usr/bin binaries), built once
under bench/work/ (shared with `scripts/bench mount`).

Operations, each timed for both tools (wall clock, warm page cache, both on all cores):
  capture-lzx     capture the tree with LZX
  capture-xpress  capture the tree with XPRESS
  apply-lzx       apply wimlib's LZX image to an empty directory
  export-solid    export wimlib's LZX image to a new solid LZMS WIM (ESD style)

Targets: wimfs time <= 1.2x wimlib's; output size within 2% of wimlib's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

from bench import (WORK_DIR, format_table, machine_info, median, now_iso, wimlib_version,
                   write_results)

MiB = 1 << 20
TIME_RATIO_MAX = 1.2
SIZE_RATIO_MAX = 1.02


def tree_path(quick: bool) -> str:
    """The mixed tree: reuse/build the mount benchmark's, else build our own."""
    try:
        from bench import mount as bm

        path = os.path.join(bm.work_dir(quick), "tree-mixed")
        if not os.path.isdir(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = path + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            bm._build_mixed(tmp, bm.QUICK if quick else bm.FULL)
            os.rename(tmp, path)
        return path
    except ImportError:  # pragma: no cover - the mount benchmark is another module
        raise SystemExit("bench image: bench/mount.py (the corpus builder) is missing")


def wimfs_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "wimfs", *args]


def run_timed(cmd: list[str]) -> float:
    t0 = time.monotonic()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit(f"bench image: {' '.join(cmd)} failed ({r.returncode}): "
                         f"{r.stderr.decode(errors='replace')[-2000:]}")
    return dt


def _rm(p: str) -> None:
    if os.path.isdir(p):
        shutil.rmtree(p)
    elif os.path.exists(p):
        os.unlink(p)


def warm(tree: str) -> None:
    subprocess.run(f'find "{tree}" -type f -print0 | xargs -0 cat > /dev/null', shell=True,
                   check=False)


def operations(tree: str, wd: str) -> dict[str, dict[str, tuple[list[str], str]]]:
    """op -> impl -> (command, output path)."""
    o = lambda n: os.path.join(wd, n)  # noqa: E731
    src = o("src-lzx.wim")
    return {
        "capture-lzx": {
            "wimfs": (wimfs_cmd("capture", tree, o("f-lzx.wim"), "--name", "b",
                                "--compress", "lzx", "-q"), o("f-lzx.wim")),
            "wimlib": (["wimlib-imagex", "capture", tree, o("l-lzx.wim"), "b",
                        "--compress=LZX"], o("l-lzx.wim")),
        },
        "capture-xpress": {
            "wimfs": (wimfs_cmd("capture", tree, o("f-xp.wim"), "--name", "b",
                                "--compress", "xpress", "-q"), o("f-xp.wim")),
            "wimlib": (["wimlib-imagex", "capture", tree, o("l-xp.wim"), "b",
                        "--compress=XPRESS"], o("l-xp.wim")),
        },
        "apply-lzx": {
            "wimfs": (wimfs_cmd("apply", src, o("f-apply"), "-q"), o("f-apply")),
            "wimlib": (["wimlib-imagex", "apply", src, "1", o("l-apply")], o("l-apply")),
        },
        "export-solid": {
            "wimfs": (wimfs_cmd("export", src + ":1", o("f-solid.esd"), "--solid", "-q"),
                      o("f-solid.esd")),
            "wimlib": (["wimlib-imagex", "export", src, "1", o("l-solid.esd"), "--solid"],
                       o("l-solid.esd")),
        },
    }


def _size(p: str) -> int | None:
    if os.path.isfile(p):
        return os.path.getsize(p)
    return None


def parse_args(argv):
    p = argparse.ArgumentParser(prog="scripts/bench image", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small tree, for smoke testing")
    p.add_argument("--repeat", type=int, default=None, help="runs per measurement "
                   "(default 3, --quick 1); the median is reported")
    p.add_argument("--export-repeat", type=int, default=1,
                   help="runs of the (slow) solid export (default 1)")
    p.add_argument("--ops", default="capture-lzx,capture-xpress,apply-lzx,export-solid")
    p.add_argument("--output", default=None)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    t_start = time.monotonic()
    tree = tree_path(args.quick)
    wd = os.path.join(WORK_DIR, f"image-{'quick' if args.quick else 'full'}")
    os.makedirs(wd, exist_ok=True)
    env_repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.environ["PYTHONPATH"] = env_repo + os.pathsep + os.environ.get("PYTHONPATH", "")
    src = os.path.join(wd, "src-lzx.wim")
    if not os.path.isfile(src):
        print("capturing the LZX source image (wimlib) ...", flush=True)
        subprocess.run(["wimlib-imagex", "capture", tree, src + ".tmp", "src",
                        "--compress=LZX"], check=True, stdout=subprocess.DEVNULL)
        os.rename(src + ".tmp", src)
    warm(tree)
    ops = operations(tree, wd)
    chosen = [o for o in args.ops.split(",") if o]
    raw: dict = {}
    rows = []
    for op in chosen:
        raw[op] = {impl: {"times_s": [], "size": None, "cmd": ops[op][impl][0]}
                   for impl in ("wimlib", "wimfs")}
        n = min(repeat, args.export_repeat) if op == "export-solid" else repeat
        for _ in range(n):                 # interleaved: both see the same machine load
            for impl in ("wimlib", "wimfs"):
                cmd, out = ops[op][impl]
                _rm(out)
                raw[op][impl]["times_s"].append(round(run_timed(cmd), 3))
                raw[op][impl]["size"] = _size(out)
        for impl in ("wimlib", "wimfs"):
            r = raw[op][impl]
            size = "" if r["size"] is None else f"{r['size'] / MiB:.1f} MiB"
            print(f"{op:15} {impl:7} {median(r['times_s']):7.2f} s  {size}", flush=True)
        tf, tl = median(raw[op]["wimfs"]["times_s"]), median(raw[op]["wimlib"]["times_s"])
        sf, sl = raw[op]["wimfs"]["size"], raw[op]["wimlib"]["size"]
        tr = tf / tl if tl else None
        sr = sf / sl if sf and sl else None
        rows.append({"op": op, "wimfs_s": round(tf, 3), "wimlib_s": round(tl, 3),
                     "time_ratio": round(tr, 3) if tr else None,
                     "time_pass": tr is not None and tr <= TIME_RATIO_MAX,
                     "wimfs_bytes": sf, "wimlib_bytes": sl,
                     "size_ratio": round(sr, 4) if sr else None,
                     "size_pass": None if sr is None else sr <= SIZE_RATIO_MAX})
    for op in chosen:          # leave the big outputs out of bench/work
        for impl in ("wimlib", "wimfs"):
            _rm(ops[op][impl][1])

    def fmt_size(b):
        return "-" if b is None else f"{b / MiB:.2f} MiB"

    table = format_table(
        ["operation", "wimfs s", "wimlib s", "time ratio (<=1.2)", "wimfs size",
         "wimlib size", "size ratio (<=1.02)"],
        [[r["op"], f"{r['wimfs_s']:.2f}", f"{r['wimlib_s']:.2f}",
          f"{r['time_ratio']:.2f}x {'PASS' if r['time_pass'] else 'FAIL'}",
          fmt_size(r["wimfs_bytes"]), fmt_size(r["wimlib_bytes"]),
          "-" if r["size_ratio"] is None else
          f"{r['size_ratio']:.3f} {'PASS' if r['size_pass'] else 'FAIL'}"] for r in rows])
    print()
    print(table)
    files = sum(len(f) for _, _, f in os.walk(tree))
    data = {
        "suite": "image", "date": now_iso(), "machine": machine_info(),
        "wimlib_version": wimlib_version(), "quick": args.quick, "repeat": repeat,
        "tree": {"path": tree, "files": files}, "targets": {
            "time_ratio_max": TIME_RATIO_MAX, "size_ratio_max": SIZE_RATIO_MAX},
        "raw": raw, "rows": rows, "table": table, "loadavg_end": os.getloadavg()[0],
        "all_pass": all(r["time_pass"] and r["size_pass"] is not False for r in rows),
        "elapsed_s": round(time.monotonic() - t_start, 1),
    }
    out = args.output or ("image-quick" if args.quick else "image")
    if os.path.isabs(out):
        with open(out, "w") as f:
            import json

            json.dump(data, f, indent=1)
        print(f"results: {out}")
    else:
        print(f"results: {write_results(out, data)}")
    return 0
