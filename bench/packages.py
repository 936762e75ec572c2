"""Package and feature listing (`scripts/bench servicing --packages`).

No real SOFTWARE hive exists in the corpus, so the image's SOFTWARE hive is written with our
regf writer at the size of a Windows 10 one: PACKAGES CBS package keys (the values DISM
writes: CurrentState, InstallTimeHigh/Low, InstallClient, InstallName, InstallLocation,
InstallUser, Visibility, SelfUpdate, plus an Owners subkey) and FEATURES selectable updates
under the Foundation package's ``Updates`` key, with a ``.mum`` per package in
``Windows\\servicing\\Packages``; the rest of the tree is bench/servicing's Windows-like
tree (the corpus SYSTEM hive) and 8 MiB of files.

Cases, each `package list --json` and `feature list --json`:
  (a) mount-free: ``wimfs package list IMAGE.wim:1``;
  (b) through a read-only wimfs mount: ``wimfs package list MNT`` (the mount and unmount
      are not timed);
  (c) regipy reading the same keys (every package key's values, the Updates values) from the
      SOFTWARE hive file through the same mount; it reads no .mum (wimfs also parses each
      package's manifest for its release type).
Time: wall time of the command, median of --repeat runs; peak RSS: GNU time's %M.
Target: each wimfs case under 1 s. Writes bench/results/servicing-packages.json.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench import WORK_DIR, format_table, machine_info, median, now_iso, write_results
from bench.servicing import MiB, Case, wimfs, windows_src

VERSION = "1"
PACKAGES = 800
FEATURES = 150
CBS = "Microsoft\\Windows\\CurrentVersion\\Component Based Servicing\\Packages"
PKT = "31bf3856ad364e35"
FOUNDATION = f"Microsoft-Windows-Foundation-Package~{PKT}~x86~~10.0.19041.1"
TARGET_SECONDS = 1.0
KEY = "\\" + CBS                   # regipy's absolute key path
REGIPY = f"""
import sys
from regipy.registry import RegistryHive
h = RegistryHive(sys.argv[1])
n = 0
for k in h.get_key({KEY!r}).iter_subkeys():
    vals = {{v.name: v.value for v in k.iter_values()}}
    n += len(vals)
    if sys.argv[2] == "features" and k.name == {FOUNDATION!r}:
        for u in k.get_subkey("Updates").iter_values():
            n += 1
print(n)
"""


def _identity(i: int) -> str:
    return FOUNDATION if i == 0 else f"Package_for_KB{5000000 + i}~{PKT}~x86~~10.0.{i}.1"


def _mum(ident: str, features: int) -> bytes:
    name, pkt, arch, _, ver = ident.split("~")
    updates = "".join(f'<update name="Feature{j:03d}"><selectable disposition="staged"/>'
                      f'</update>' for j in range(features)) or f'<update name="{name}"/>'
    return (f'<?xml version="1.0" encoding="utf-8"?><assembly xmlns="urn:schemas-microsoft-'
            f'com:asm.v3" manifestVersion="1.0" company="Microsoft Corporation">'
            f'<assemblyIdentity name="{name}" version="{ver}" processorArchitecture="{arch}" '
            f'language="neutral" publicKeyToken="{pkt}"/><package identifier="{name}" '
            f'releaseType="Update">{updates}</package></assembly>').encode()


def software(path: str) -> None:
    from servicing.regf import REG_DWORD, REG_SZ, Hive
    with Hive.create(path, name="SOFTWARE") as h:
        cv = h.create_key("Microsoft\\Windows NT\\CurrentVersion")
        for name, value in (("CurrentVersion", "6.3"), ("CurrentBuildNumber", "19041"),
                            ("ProductName", "Windows 10 Pro")):
            cv.set_value(name, REG_SZ, value)
        cv.set_value("CurrentMajorVersionNumber", REG_DWORD, 10)
        cv.set_value("CurrentMinorVersionNumber", REG_DWORD, 0)
        root = h.create_key(CBS)
        for i in range(PACKAGES):
            ident = _identity(i)
            k = root.create_key(ident)
            for name, vtype, value in (
                    ("CurrentState", REG_DWORD, 0x70), ("InstallTimeHigh", REG_DWORD, 0x01D6),
                    ("InstallTimeLow", REG_DWORD, i), ("SelfUpdate", REG_DWORD, 0),
                    ("Visibility", REG_DWORD, 1),
                    ("InstallClient", REG_SZ, "DISM Package Manager Provider"),
                    ("InstallName", REG_SZ, f"{ident}.mum"),
                    ("InstallLocation", REG_SZ, f"\\\\?\\C:\\Windows\\Temp\\{i}\\"),
                    ("InstallUser", REG_SZ, "S-1-5-18")):
                k.set_value(name, vtype, value)
            k.create_key("Owners").set_value(ident, REG_DWORD, 0x00020070)
        upd = root.create_key(FOUNDATION + "\\Updates")
        for j in range(FEATURES):
            upd.set_value(f"Feature{j:03d}", REG_DWORD, 0x70 if j % 3 else 0x40)


def base_wim(work: str) -> str:
    wim = os.path.join(work, "packages.wim")
    if os.path.exists(wim):
        return wim
    src = os.path.join(work, "packages_src")
    cfg = windows_src(src, 8 * MiB)
    software(os.path.join(cfg, "SOFTWARE"))
    mums = os.path.join(src, "Windows", "servicing", "Packages")
    os.makedirs(mums, exist_ok=True)
    for i in range(PACKAGES):
        ident = _identity(i)
        with open(os.path.join(mums, f"{ident}.mum"), "wb") as f:
            f.write(_mum(ident, FEATURES if i == 0 else 0))
    subprocess.run(["wimlib-imagex", "capture", src, wim, "packages", "--compress=LZX"],
                   check=True, capture_output=True)
    return wim


def _timed(c: Case, cmd: list[str]) -> float:
    t0 = time.perf_counter()
    c.run(cmd)
    return time.perf_counter() - t0


def run_cases(wim: str, mnt: str, env: dict) -> dict[str, tuple[float, int]]:
    """case name -> (seconds, peak KiB) for one round."""
    out = {}
    for what in ("package", "feature"):
        c = Case(env)
        out[f"{what}_a_mount_free"] = (_timed(c, wimfs(what, "list", f"{wim}:1", "--json")),
                                       c.peak_kib)
    Case(env).run(wimfs("mount", wim, mnt))
    try:
        hive = os.path.join(mnt, "Windows", "System32", "config", "SOFTWARE")
        for what in ("package", "feature"):
            c = Case(env)
            out[f"{what}_b_wimfs_mount"] = (_timed(c, wimfs(what, "list", mnt, "--json")),
                                            c.peak_kib)
            c = Case(env)
            out[f"{what}_c_regipy"] = (_timed(c, [sys.executable, "-c", REGIPY, hive,
                                                  what + "s"]), c.peak_kib)
    finally:
        Case(env).run(wimfs("unmount", mnt))
    return out


def main(argv=None, *, repeat: int = 3, quick: bool = False) -> int:
    work = os.path.join(WORK_DIR, f"packages-v{VERSION}")
    os.makedirs(work, exist_ok=True)
    wim = base_wim(work)
    mnt = os.path.join(work, "mnt")
    os.makedirs(mnt, exist_ok=True)
    from bench import REPO
    env = dict(os.environ, WIMFS_STATE_DIR=os.path.join(work, "state"), PYTHONPATH=REPO)
    runs: dict[str, list[tuple[float, int]]] = {}
    for _ in range(repeat):
        for name, r in run_cases(wim, mnt, env).items():
            runs.setdefault(name, []).append(r)
    res = {n: {"seconds": median([s for s, _ in rs]),
               "peak_rss_mib": round(max(k for _, k in rs) / 1024, 1),
               "runs": [s for s, _ in rs]} for n, rs in runs.items()}
    rows = [[n, f"{r['seconds']:.2f} s", f"{r['peak_rss_mib']} MiB"] for n, r in res.items()]
    print(format_table(["case", "median time", "peak RSS"], rows))
    slow = [n for n, r in res.items() if "regipy" not in n and r["seconds"] >= TARGET_SECONDS]
    print(f"target: every wimfs case < {TARGET_SECONDS} s: "
          f"{'met' if not slow else 'missed by ' + ', '.join(slow)}")
    write_results("servicing-packages", {
        "when": now_iso(), "machine": machine_info(), "packages": PACKAGES,
        "features": FEATURES, "wim_bytes": os.path.getsize(wim), "repeat": repeat,
        "results": res, "target_seconds": TARGET_SECONDS})
    return 0
