"""Every edition at once (`scripts/bench servicing --editions`).

A 6-image LZX WIM (about 300 MB of files per edition; the editions share all of them
but a SOFTWARE hive and a small edition folder each, so the WIM holds them once), and one
boot-critical driver added to every image:
  (a) one multi-image run on ``IMAGE.wim:all``;
  (b) a loop of mount-free runs on ``IMAGE.wim:N``, N = 1..6;
  (c) the wimlib loop: ``wimlib-imagex mountrw`` + copy the .sys + ``hivexsh -w`` (the
      service key and its CriticalDeviceDatabase entry) + ``unmount --commit``, 6 times.
When ``wimfs driver add`` exists, (a) and (b) use it; otherwise (the drivers branch not
merged) each run is ``wimfs reg ... import`` of the same service key and
CriticalDeviceDatabase entry plus ``wimfs update ... --add`` of the .sys file: two
commands, two commits, where ``driver add`` would be one.
Targets: (a) <= 0.3x (c) and <= 0.5x (b); the WIM after (a) no larger than after (b).
Writes bench/results/servicing-editions.json.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys

from bench import REPO, WORK_DIR, format_table, machine_info, median, now_iso, write_results
from bench.servicing import MiB, Case, run_timed, wimfs, windows_src

VERSION = "2"
SEED = 20261130
EDITIONS = ("Core", "Professional", "Education", "Enterprise", "ProfessionalWorkstation",
            "CoreSingleLanguage")
TARGETS = {"a_vs_c_max": 0.3, "a_vs_b_max": 0.5}
SERVICE = "ControlSet001\\Services\\contoso"
CDDB = "ControlSet001\\Control\\CriticalDeviceDatabase\\pci#ven_1234&dev_5678"
SCSI_CLASS = "{4D36E97B-E325-11CE-BFC1-08002BE10318}"
SYS_DEST = "Windows/System32/drivers/contoso.sys"


def _software(path: str, edition: str) -> None:
    """A Windows 7 SP1 SOFTWARE hive of *edition* (with the DevicePath driver add reads)."""
    from servicing.regf import REG_EXPAND_SZ, REG_SZ, Hive
    h = Hive.create(path)
    k = h.create_key("Microsoft\\Windows NT\\CurrentVersion")
    for name, value in (("CurrentVersion", "6.1"), ("CurrentBuildNumber", "7601"),
                        ("EditionID", edition), ("ProductName", f"Windows 7 {edition}"),
                        ("InstallationType", "Client")):
        k.set_value(name, REG_SZ, value)
    h.create_key("Microsoft\\Windows\\CurrentVersion").set_value(
        "DevicePath", REG_EXPAND_SZ, "%SystemRoot%\\inf")
    h.commit()


def base_wim(work: str, size: int) -> str:
    """The 6-image WIM, built once with wimlib-imagex capture + append."""
    wim = os.path.join(work, "editions.wim")
    if os.path.exists(wim):
        return wim
    src = os.path.join(work, "src")
    cfg = windows_src(src, size)
    r = random.Random(SEED)
    tmp = wim + ".tmp"
    for i, edition in enumerate(EDITIONS, 1):
        software = os.path.join(cfg, "SOFTWARE")
        if os.path.exists(software):
            os.unlink(software)
        _software(software, edition)
        ed = os.path.join(src, "Windows", "Edition")
        shutil.rmtree(ed, ignore_errors=True)
        os.makedirs(ed)
        with open(os.path.join(ed, f"{edition}.bin"), "wb") as f:
            f.write(r.randbytes(1 * MiB))
        verb = "capture" if i == 1 else "append"
        extra = ["--compress=LZX"] if i == 1 else []
        subprocess.run(["wimlib-imagex", verb, src, tmp, f"Windows 7 {edition}", *extra],
                       check=True, capture_output=True)
    os.replace(tmp, wim)
    return wim


def inputs(work: str) -> dict:
    """The driver: its .sys, an INF, the .reg of its keys and the same as a hivexsh
    script."""
    d = os.path.join(work, "driver")
    os.makedirs(d, exist_ok=True)
    pkg = os.path.join(work, "driver_pkg")
    try:                    # the drivers branch's package maker (scripts/demo_windows.py)
        sys.path.insert(0, os.path.join(REPO, "scripts"))
        from demo_windows import make_package
        if not os.path.exists(pkg):
            import pathlib
            make_package(pathlib.Path(pkg), "contoso", decoration="NTx86")
    except ImportError:
        pkg = None
    sys_path = os.path.join(d, "contoso.sys")
    with open(sys_path, "wb") as f:
        f.write(b"MZ" + random.Random(SEED + 1).randbytes(256 * 1024 - 2))
    reg = os.path.join(work, "driver.reg")
    with open(reg, "w", encoding="utf-8") as f:
        f.write("Windows Registry Editor Version 5.00\n\n"
                f"[HKEY_LOCAL_MACHINE\\SYSTEM\\{SERVICE}]\n"
                '"Type"=dword:00000001\n"Start"=dword:00000000\n'
                '"ErrorControl"=dword:00000001\n"Group"="SCSI miniport"\n'
                '"ImagePath"="\\\\SystemRoot\\\\System32\\\\drivers\\\\contoso.sys"\n\n'
                f"[HKEY_LOCAL_MACHINE\\SYSTEM\\{CDDB}]\n"
                f'"Service"="contoso"\n"ClassGUID"="{SCSI_CLASS}"\n')
    hx = os.path.join(work, "driver.hivexsh")
    with open(hx, "w", encoding="utf-8") as f:
        f.write(f"cd \\{SERVICE.rpartition(chr(92))[0]}\nadd contoso\ncd contoso\nsetval 5\n"
                "Type\ndword:0x00000001\nStart\ndword:0x00000000\n"
                "ErrorControl\ndword:0x00000001\nGroup\nstring:SCSI miniport\n"
                "ImagePath\nstring:\\SystemRoot\\System32\\drivers\\contoso.sys\n"
                f"cd \\{CDDB.rpartition(chr(92))[0]}\nadd {CDDB.rpartition(chr(92))[2]}\n"
                f"cd {CDDB.rpartition(chr(92))[2]}\nsetval 2\nService\nstring:contoso\n"
                f"ClassGUID\nstring:{SCSI_CLASS}\ncommit\n")
    return {"dir": pkg, "sys": sys_path, "reg": reg, "hx": hx}


def has_driver_add(env: dict) -> bool:
    return subprocess.run(wimfs("driver", "add", "--help"), env=env, cwd=REPO,
                          capture_output=True).returncode == 0


def service(c: Case, spec: str, inp: dict, driver_add: bool) -> None:
    if driver_add:
        c.run(wimfs("driver", "add", spec, inp["dir"], "--recurse"))
        return
    c.run(wimfs("reg", spec, "import", inp["reg"]))
    c.run(wimfs("update", spec, "--add", inp["sys"], "/" + SYS_DEST))


def case_a(c: Case, wim: str, mnt: str, inp: dict, driver_add: bool) -> None:
    service(c, f"{wim}:all", inp, driver_add)


def case_b(c: Case, wim: str, mnt: str, inp: dict, driver_add: bool) -> None:
    for i in range(1, len(EDITIONS) + 1):
        service(c, f"{wim}:{i}", inp, driver_add)


def case_c(c: Case, wim: str, mnt: str, inp: dict, driver_add: bool) -> None:
    for i in range(1, len(EDITIONS) + 1):
        c.run(["wimlib-imagex", "mountrw", wim, str(i), mnt])
        try:
            shutil.copyfile(inp["sys"], os.path.join(mnt, SYS_DEST))
            c.run(["hivexsh", "-w", "-f", inp["hx"],
                   os.path.join(mnt, "Windows/System32/config/SYSTEM")])
            c.daemon_hwm(mnt)
        finally:
            c.wimlib_unmount(mnt)


CASES = {"a_all_one_run": case_a, "b_loop_mount_free": case_b, "c_wimlib_mountrw_loop": case_c}


def _check(wim: str, env: dict) -> bool:
    """wimlib-imagex verify, and every image holds the driver file and its service key."""
    if subprocess.run(["wimlib-imagex", "verify", wim], capture_output=True).returncode:
        return False
    for i in range(1, len(EDITIONS) + 1):
        r = subprocess.run(wimfs("reg", f"{wim}:{i}", "query",
                                 f"HKLM\\SYSTEM\\{SERVICE}", "/v", "Start"),
                           env=env, cwd=REPO, capture_output=True, text=True)
        x = subprocess.run(["wimlib-imagex", "dir", wim, str(i), "--path=/" + SYS_DEST],
                           capture_output=True)
        if r.returncode or "0x0" not in r.stdout or x.returncode:
            return False
    return True


def measure(name: str, work: str, base: str, inp: dict, env: dict, driver_add: bool) -> dict:
    c, seconds, wim = run_timed(work, base, name, env,
                                lambda c, wim, mnt: CASES[name](c, wim, mnt, inp, driver_add))
    size = os.path.getsize(wim)
    ok = _check(wim, env)
    os.unlink(wim)
    return {"seconds": seconds, "peak_rss_mib": round(c.peak_kib / 1024, 1),
            "wim_bytes": size, "verified": ok}


def main(argv: list[str], *, repeat: int, quick: bool) -> int:
    work = os.path.join(WORK_DIR, f"editions-v{VERSION}-{'quick' if quick else 'full'}")
    os.makedirs(work, exist_ok=True)
    env = dict(os.environ, WIMFS_STATE_DIR=os.path.join(work, "state"), PYTHONPATH=REPO)
    sys.path.insert(0, REPO)
    base = base_wim(work, (8 if quick else 300) * MiB)
    inp = inputs(work)
    driver_add = inp["dir"] is not None and has_driver_add(env)
    runs: dict[str, list[dict]] = {n: [] for n in CASES}
    for _ in range(repeat):
        for name in CASES:
            runs[name].append(measure(name, work, base, inp, env, driver_add))
    res = {n: {"seconds": median([r["seconds"] for r in rs]),
               "peak_rss_mib": max(r["peak_rss_mib"] for r in rs),
               "wim_bytes": rs[-1]["wim_bytes"],
               "verified": all(r["verified"] for r in rs), "runs": rs}
           for n, rs in runs.items()}
    a, b, c = (res[n]["seconds"] for n in CASES)
    ratios = {"a_vs_c": a / c, "a_vs_b": a / b}
    rows = [[n, f"{r['seconds']:.2f} s", f"{r['peak_rss_mib']} MiB",
             f"{r['wim_bytes'] / MiB:.1f} MiB", r["verified"]] for n, r in res.items()]
    print(f"operation: {'wimfs driver add' if driver_add else 'wimfs reg import + update --add'}"
          f"; base WIM {os.path.getsize(base) / MiB:.1f} MiB, {len(EDITIONS)} images")
    print(format_table(["case", "median time", "peak RSS", "WIM after", "verified"], rows))
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}x (target <= {TARGETS[k + '_max']}x: "
              f"{'met' if v <= TARGETS[k + '_max'] else 'missed'})")
    smaller = res["a_all_one_run"]["wim_bytes"] <= res["b_loop_mount_free"]["wim_bytes"]
    print(f"WIM after (a) no larger than after (b): {'met' if smaller else 'missed'}")
    write_results("servicing-editions-quick" if quick else "servicing-editions", {
        "when": now_iso(), "machine": machine_info(), "base_wim_bytes": os.path.getsize(base),
        "images": len(EDITIONS), "operation": "driver add" if driver_add else
        "reg import + update --add", "repeat": repeat, "results": res, "ratios": ratios,
        "targets": TARGETS})
    return 0
