"""Servicing benchmark (`scripts/bench servicing`), side by side in one run.

Registry: set 1,000 values in the SYSTEM hive of a ~300 MB LZX image and commit,
  (a) mount-free: `wimfs reg IMAGE.wim:1 import bench.reg`;
  (b) through a wimfs read-write mount: `wimfs mount --rw` + `wimfs reg MNT import` +
      `wimfs unmount --commit`;
  (c) today's Linux way: `wimlib-imagex mountrw` + `hivexsh -w` (1,000 setval) +
      `wimlib-imagex unmount --commit`.
Update: add a 50 MB tree with `wimfs update` vs `wimlib-imagex update`.
Drivers (the same base image, Windows 7 x86 identity): one boot-critical driver package,
and 50 packages from a folder (`--recurse`), added
  (a) mount-free: `wimfs driver add IMAGE.wim:1 PKG`;
  (b) through a wimfs read-write mount: `wimfs driver add MNT PKG`;
  (c) today's Linux way: `wimlib-imagex mountrw` + copying the same files (store folder,
      published INF, the .sys into System32\drivers) + `hivexsh -w` setting the same
      service and CriticalDeviceDatabase values + `wimlib-imagex unmount --commit`.
`--editions`: one driver added to every image of a 6-image WIM (bench/editions.py).
`--packages`: `package list` / `feature list` against regipy (bench/packages.py).

Each case runs on a fresh copy of the same base WIM; wall time of the whole case, median of
`--repeat` runs. Peak RSS: the largest VmHWM/ru_maxrss of the processes of a case (the
mount daemons' VmHWM is read just before the unmount; the others' from GNU time's %M). Every result WIM is verified with
`wimlib-imagex verify`. Targets: (a) <= 0.5x (c); (b) <= 1.0x (c); update <= 1.0x wimlib's.
Driver targets: (a) <= 0.5x (c), (b) <= 1.0x (c). Writes bench/results/servicing.json.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

from bench import REPO, WORK_DIR, format_table, machine_info, median, now_iso, write_results
from bench.rw import build_tree

VERSION = "2"
SEED = 20261130
MiB = 1 << 20
VALUES = 1000
TARGETS = {"a_vs_c_max": 0.5, "b_vs_c_max": 1.0, "update_vs_wimlib_max": 1.0,
           "drv1_a_vs_c_max": 0.5, "drv1_b_vs_c_max": 1.0,
           "drv50_a_vs_c_max": 0.5, "drv50_b_vs_c_max": 1.0}
DRIVER_PACKAGES = 50
CORPUS = os.path.join(os.path.dirname(REPO), "shared", "corpus", "hives", "regipy", "SYSTEM")


def _work(quick: bool) -> str:
    d = os.path.join(WORK_DIR, f"servicing-v{VERSION}-{'quick' if quick else 'full'}")
    os.makedirs(d, exist_ok=True)
    return d


def base_wim(work: str, size: int) -> str:
    """A Windows-like tree (the corpus Windows 7 SYSTEM hive + ~size bytes of files),
    captured once with wimlib-imagex as LZX."""
    wim = os.path.join(work, "base.wim")
    if os.path.exists(wim):
        return wim
    src = os.path.join(work, "base_src")
    cfg = windows_src(src, size)
    software_7(os.path.join(cfg, "SOFTWARE"))
    subprocess.run(["wimlib-imagex", "capture", src, wim, "base", "--compress=LZX"],
                   check=True, capture_output=True)
    return wim


def windows_src(src: str, size: int) -> str:
    """A Windows-like source tree: ~size bytes of files under Program Files, the corpus
    Windows 7 SYSTEM hive, empty drivers and INF folders. Returns the config folder."""
    build_tree(os.path.join(src, "Program Files"), size)
    cfg = os.path.join(src, "Windows", "System32", "config")
    os.makedirs(cfg, exist_ok=True)
    for sub in ("System32/drivers", "INF"):
        os.makedirs(os.path.join(src, "Windows", sub), exist_ok=True)
    shutil.copyfile(CORPUS, os.path.join(cfg, "SYSTEM"))
    os.chmod(os.path.join(cfg, "SYSTEM"), 0o644)
    return cfg


def software_7(path: str) -> None:
    """The SOFTWARE values that make the corpus SYSTEM hive a Windows 7 SP1 image."""
    from servicing.regf import REG_EXPAND_SZ, REG_SZ, Hive
    with Hive.create(path, name="SOFTWARE") as h:
        cv = h.create_key("Microsoft\\Windows NT\\CurrentVersion")
        for name, value in (("CurrentVersion", "6.1"), ("CurrentBuildNumber", "7601"),
                            ("ProductName", "Windows 7 Ultimate")):
            cv.set_value(name, REG_SZ, value)
        h.create_key("Microsoft\\Windows\\CurrentVersion").set_value(
            "DevicePath", REG_EXPAND_SZ, "%SystemRoot%\\inf")


def driver_inputs(work: str) -> tuple[str, str]:
    """One boot-critical package, and a folder of DRIVER_PACKAGES of them (x86)."""
    sys.path.insert(0, os.path.join(REPO, "scripts"))
    from demo_windows import make_package
    import pathlib
    one = os.path.join(work, "drv1")
    many = os.path.join(work, "drv50")
    if not os.path.exists(one):
        make_package(pathlib.Path(one), "benchstor", decoration="NTx86")
    if not os.path.exists(many):
        for i in range(DRIVER_PACKAGES):
            make_package(pathlib.Path(many) / f"p{i:02d}", f"bstor{i:02d}", decoration="NTx86",
                         device=0x2000 + i)
    return one, many


def inputs(work: str) -> tuple[str, str, str]:
    reg = os.path.join(work, "bench.reg")
    with open(reg, "w", encoding="utf-8") as f:
        f.write("Windows Registry Editor Version 5.00\n\n[HKEY_LOCAL_MACHINE\\SYSTEM\\Bench]\n")
        f.writelines(f'"v{i:04d}"=dword:{i:08x}\n' for i in range(VALUES))
    hx = os.path.join(work, "bench.hivexsh")
    with open(hx, "w", encoding="utf-8") as f:
        f.write(f"add Bench\ncd Bench\nsetval {VALUES}\n")
        f.writelines(f"v{i:04d}\ndword:0x{i:08x}\n" for i in range(VALUES))
        f.write("commit\n")
    tree = os.path.join(work, "add50")
    build_add_tree(tree, 50 * MiB)
    return reg, hx, tree


def build_add_tree(root: str, total: int) -> None:
    """~`total` bytes that the base image does not hold (no dedup): half random, half
    Python standard library source; 1 KiB to 1 MiB files, 30 per directory."""
    if os.path.exists(os.path.join(root, ".done")):
        return
    shutil.rmtree(root, ignore_errors=True)
    text = bytearray()
    for dirpath, _, names in os.walk(os.path.dirname(os.__file__)):
        for n in sorted(names):
            if n.endswith(".py") and len(text) < 16 * MiB:
                with open(os.path.join(dirpath, n), "rb") as f:
                    text += f.read()
    r = random.Random(SEED)
    done = n = 0
    while done < total:
        d = os.path.join(root, f"dir{n // 30:03d}")
        os.makedirs(d, exist_ok=True)
        size = min(int(2 ** r.uniform(10, 20)), total - done)
        off = r.randrange(0, len(text) - size)
        data = r.randbytes(size) if n % 2 else bytes(text[off:off + size])
        with open(os.path.join(d, f"f{n:05d}.dat"), "wb") as f:
            f.write(data)
        done += size
        n += 1
    open(os.path.join(root, ".done"), "w").close()


class Case:
    """Runs commands, timing the whole case and tracking the peak RSS of its processes."""

    def __init__(self, env: dict) -> None:
        self.env = env
        self.peak_kib = 0

    def run(self, cmd: list[str]) -> None:
        """Run `cmd` under GNU time, whose %M is the command's own peak RSS (a child of
        this Python process would inherit our high-water mark through fork/exec)."""
        fd, out = tempfile.mkstemp(prefix="rss-")
        os.close(fd)
        try:
            r = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out, *cmd], env=self.env,
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if r.returncode:
                raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr[-2000:]!r}")
            with open(out) as f:
                self.peak_kib = max(self.peak_kib, int(f.read().split()[-1]))
        finally:
            os.unlink(out)

    def daemon_hwm(self, mnt: str) -> None:
        """VmHWM of the FUSE daemon serving `mnt` (found by its command line)."""
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read().split(b"\0")
                if mnt.encode() not in cmdline or b"umount" in cmdline[0]:
                    continue
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            self.peak_kib = max(self.peak_kib, int(line.split()[1]))
            except OSError:
                continue

    def wimlib_unmount(self, mnt: str) -> None:
        """`wimlib-imagex unmount --commit`, then wait until the FUSE connection of *mnt* is
        gone: the command can return while the kernel still tears the connection down, and
        mounting again then fails with ECONNABORTED. The wait is part of the case's time (a
        script must wait too)."""
        self.run(["wimlib-imagex", "unmount", mnt, "--commit"])
        end = time.monotonic() + 10.0
        while time.monotonic() < end:
            try:
                os.stat(mnt)
                if not os.path.ismount(mnt):
                    return
            except OSError:
                pass
            time.sleep(0.01)


def run_timed(work: str, base: str, name: str, env: dict, run) -> tuple[Case, float, str]:
    """A fresh copy of *base* (``run-NAME.wim``, synced to disk) and a mount point, then
    ``run(case, wim, mnt)`` timed; returns the case, the seconds and the WIM's path."""
    wim = os.path.join(work, f"run-{name}.wim")
    mnt = os.path.join(work, f"mnt-{name}")
    os.makedirs(mnt, exist_ok=True)
    shutil.copyfile(base, wim)
    subprocess.run(["sync"], check=False)
    c = Case(env)
    t0 = time.perf_counter()
    run(c, wim, mnt)
    return c, time.perf_counter() - t0, wim


def wimfs(*args: str) -> list[str]:
    return [sys.executable, "-m", "wimfs", *args]


def case_a(c: Case, wim, mnt, reg, hx, tree) -> None:
    c.run(wimfs("reg", f"{wim}:1", "import", reg))


def case_b(c: Case, wim, mnt, reg, hx, tree) -> None:
    c.run(wimfs("mount", "--rw", wim, mnt))
    try:
        c.run(wimfs("reg", mnt, "import", reg))
        c.daemon_hwm(mnt)
    finally:
        c.run(wimfs("unmount", mnt, "--commit"))


def case_c(c: Case, wim, mnt, reg, hx, tree) -> None:
    c.run(["wimlib-imagex", "mountrw", wim, "1", mnt])
    try:
        c.run(["hivexsh", "-w", "-f", hx, os.path.join(mnt, "Windows/System32/config/SYSTEM")])
        c.daemon_hwm(mnt)
    finally:
        c.wimlib_unmount(mnt)


def case_update(c: Case, wim, mnt, reg, hx, tree) -> None:
    c.run(wimfs("update", f"{wim}:1", "--add", tree, "/Bench"))


def case_wimlib_update(c: Case, wim, mnt, reg, hx, tree) -> None:
    c.run(["wimlib-imagex", "update", wim, "1", f"--command=add {tree} /Bench"])


def _packages(folder: str) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs
                  if f.endswith(".inf"))


def _driver_a(folder: str):
    def case(c: Case, wim, mnt, *args) -> None:
        c.run(wimfs("driver", "add", f"{wim}:1", folder, "--recurse"))
    return case


def _driver_b(folder: str):
    def case(c: Case, wim, mnt, *args) -> None:
        c.run(wimfs("mount", "--rw", wim, mnt))
        try:
            c.run(wimfs("driver", "add", mnt, folder, "--recurse"))
            c.daemon_hwm(mnt)
        finally:
            c.run(wimfs("unmount", mnt, "--commit"))
    return case


def _hivexsh_script(infs: list[str], path: str) -> None:
    """Services\\<name> and CriticalDeviceDatabase values as the INF says (what a
    hand-written hivexsh pipeline sets)."""
    with open(path, "w", encoding="utf-8") as f:
        for i, inf in enumerate(infs):
            name = os.path.basename(inf)[:-4]
            f.write(f"cd \\ControlSet001\\Services\nadd {name}\ncd {name}\nsetval 5\n"
                    "Type\ndword:0x1\nStart\ndword:0x0\nErrorControl\ndword:0x1\n"
                    f"ImagePath\nexpandstring:System32\\drivers\\{name}.sys\n"
                    "Group\nstring:SCSI miniport\n")
            f.write(f"cd \\ControlSet001\\Control\\CriticalDeviceDatabase\n"
                    f"add pci#ven_1af4&dev_{0x2000 + i if len(infs) > 1 else 0x1001:04x}"
                    "&subsys_00021af4\n"
                    f"cd pci#ven_1af4&dev_{0x2000 + i if len(infs) > 1 else 0x1001:04x}"
                    f"&subsys_00021af4\nsetval 2\nService\nstring:{name}\n"
                    "ClassGUID\nstring:{4D36E97B-E325-11CE-BFC1-08002BE10318}\n")
        f.write("commit\n")


def _driver_c(folder: str):
    def case(c: Case, wim, mnt, *args) -> None:
        infs = _packages(folder)
        script = os.path.join(os.path.dirname(wim), "drivers.hivexsh")
        _hivexsh_script(infs, script)
        c.run(["wimlib-imagex", "mountrw", wim, "1", mnt])
        try:
            win = os.path.join(mnt, "Windows")
            for i, inf in enumerate(infs):
                name = os.path.basename(inf)[:-4]
                store = os.path.join(win, "System32/DriverStore/FileRepository",
                                     f"{name}.inf_x86_neutral_{i:016x}")
                c.run(["mkdir", "-p", store])
                c.run(["cp", inf, inf[:-4] + ".sys", store])
                c.run(["cp", inf, os.path.join(win, "INF", f"oem{i}.inf")])
                c.run(["cp", inf[:-4] + ".sys", os.path.join(win, "System32/drivers")])
            c.run(["hivexsh", "-w", "-f", script, os.path.join(win, "System32/config/SYSTEM")])
            c.daemon_hwm(mnt)
        finally:
            c.wimlib_unmount(mnt)
    return case


CASES = {"a_mount_free_reg": case_a, "b_wimfs_rw_mount_reg": case_b,
         "c_wimlib_mountrw_hivexsh": case_c, "update_wimfs": case_update,
         "update_wimlib": case_wimlib_update}


def add_driver_cases(work: str) -> None:
    one, many = driver_inputs(work)
    for label, folder in (("drv1", one), ("drv50", many)):
        CASES[f"{label}_a_mount_free"] = _driver_a(folder)
        CASES[f"{label}_b_wimfs_rw_mount"] = _driver_b(folder)
        CASES[f"{label}_c_wimlib_mountrw_cp_hivexsh"] = _driver_c(folder)


def measure(name: str, work: str, base: str, args: tuple, env: dict) -> dict:
    c, seconds, wim = run_timed(work, base, name, env,
                                lambda c, wim, mnt: CASES[name](c, wim, mnt, *args))
    ok = subprocess.run(["wimlib-imagex", "verify", wim], capture_output=True).returncode == 0
    os.unlink(wim)
    return {"seconds": seconds, "peak_rss_mib": round(c.peak_kib / 1024, 1), "verified": ok}


RATIOS = {"a_vs_c": ("a_mount_free_reg", "c_wimlib_mountrw_hivexsh"),
          "b_vs_c": ("b_wimfs_rw_mount_reg", "c_wimlib_mountrw_hivexsh"),
          "update_vs_wimlib": ("update_wimfs", "update_wimlib"),
          **{f"{d}_{x}_vs_c": (f"{d}_{x}_{name}", f"{d}_c_wimlib_mountrw_cp_hivexsh")
             for d in ("drv1", "drv50")
             for x, name in (("a", "mount_free"), ("b", "wimfs_rw_mount"))}}


def _ratios(res: dict) -> dict:
    return {k: res[a]["seconds"] / res[b]["seconds"] for k, (a, b) in RATIOS.items()
            if a in res and b in res}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="scripts/bench servicing")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="an 8 MiB base image (smoke test)")
    p.add_argument("--editions", action="store_true",
                   help="the every-edition benchmark instead (bench/editions.py)")
    p.add_argument("--only", metavar="PREFIX", help="run only the cases whose name starts "
                                                     "with PREFIX (e.g. drv)")
    p.add_argument("--packages", action="store_true",
                   help="the package/feature listing benchmark instead (bench/packages.py)")
    a = p.parse_args(argv)
    if a.packages:
        from bench import packages
        return packages.main(argv, repeat=a.repeat, quick=a.quick)
    if a.editions:
        from bench import editions
        return editions.main(argv, repeat=a.repeat, quick=a.quick)
    work = _work(a.quick)
    base = base_wim(work, (8 if a.quick else 300) * MiB)
    args = inputs(work)
    add_driver_cases(work)
    env = dict(os.environ, WIMFS_STATE_DIR=os.path.join(work, "state"), PYTHONPATH=REPO)
    runs: dict[str, list[dict]] = {n: [] for n in CASES if n.startswith(a.only or "")}
    for _ in range(a.repeat):                 # interleaved, so load shifts hit every case
        for name in runs:
            runs[name].append(measure(name, work, base, args, env))
    res = {n: {"seconds": median([r["seconds"] for r in rs]),
               "peak_rss_mib": max(r["peak_rss_mib"] for r in rs),
               "verified": all(r["verified"] for r in rs), "runs": rs} for n, rs in runs.items()}
    ratios = _ratios(res)
    rows = [[n, f"{r['seconds']:.2f} s", f"{r['peak_rss_mib']} MiB", r["verified"]]
            for n, r in res.items()]
    print(format_table(["case", "median time", "peak RSS", "verified"], rows))
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}x (target <= {TARGETS[k + '_max']}x: "
              f"{'met' if v <= TARGETS[k + '_max'] else 'missed'})")
    size = os.path.getsize(base)
    suite = "servicing" + ("-quick" if a.quick else "") + (f"-{a.only}" if a.only else "")
    write_results(suite, {"when": now_iso(), "machine": machine_info(),
                                "base_wim_bytes": size, "values": VALUES, "repeat": a.repeat,
                                "results": res, "ratios": ratios, "targets": TARGETS})
    return 0
