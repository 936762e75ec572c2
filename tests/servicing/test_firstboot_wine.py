"""The first-boot scripts run by a real cmd.exe: Wine's (Debian wine64), an independent
implementation of cmd's batch parser, `reg.exe` and the C runtime's argument splitting.

The scripts wimfs writes into an image are copied into a Wine prefix's C:\\windows\\wimfs,
HKLM\\SYSTEM\\Setup gets the values the offline hive holds (read with hivexget), and the
runner is started with the exact CmdLine value Winlogon would start. Each action is
``reg add HKCU\\Software\\wimfstest /v caseN /d ARG /f``: `reg query` afterwards shows
whether ARG (spaces, %, &, ^, quotes, backslashes) reached the program unchanged.

Wine is not Windows: this proves the scripts' syntax and flow with a second cmd
implementation, not Winlogon's behaviour (SetupType, SetupShutdownRequired)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from servicing.features.firstboot import schedule
from servicing.target import open_target
from tests.servicing.drivers_helpers import hivexget
from windows_trees import windows_tree

WINE = shutil.which("wine64") or ("/usr/lib/wine/wine64"
                                  if os.path.exists("/usr/lib/wine/wine64") else None)
pytestmark = pytest.mark.skipif(WINE is None and not os.environ.get("CI"),
                                reason="wine64 not installed (scripts/setup installs it)")
KEY = "HKCU\\Software\\wimfstest"
ARGS = ["plain", "two words", "100%", "%SystemRoot%\\x", "R&D", "a^b|c<d>e", 'say "hi"',
        'a"b&c', "dir with space\\", "(x)", "!bang!", "Café"]


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    if WINE is None:
        pytest.fail("wine64 is required under CI (scripts/setup installs it)")
    p = tmp_path_factory.mktemp("wine") / "prefix"
    env = {**os.environ, "WINEPREFIX": str(p), "WINEDEBUG": "-all"}
    subprocess.run([WINE, "cmd", "/c", "ver"], env=env, capture_output=True, timeout=300)
    yield env
    subprocess.run([WINE.replace("wine64", "wineserver"), "-k"], env=env,
                   capture_output=True)


def wine(env, *args: str) -> str:
    out = subprocess.run([WINE, *args], env=env, capture_output=True, timeout=300)
    return out.stdout.decode("cp437")        # a console program writes a pipe in OEMCP


def query(env, key: str) -> dict[str, str]:
    values = {}
    for line in wine(env, "reg", "query", key).splitlines():
        parts = line.strip().split("    ")
        if len(parts) == 3:
            values[parts[0]] = parts[2]
    return values


def _install(env, tree, setup: dict[str, tuple[str, str]]) -> None:
    dest = os.path.join(env["WINEPREFIX"], "drive_c", "windows", "wimfs")
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(tree / "Windows" / "wimfs", dest)
    for name, (vtype, data) in setup.items():
        wine(env, "reg", "add", "HKLM\\SYSTEM\\Setup", "/v", name, "/t", vtype, "/d", data,
             "/f")


def _setup(tree) -> dict[str, tuple[str, str]]:
    system = tree / "Windows/System32/config/SYSTEM"
    return {"CmdLine": ("REG_SZ", hivexget(system, "\\Setup", "CmdLine")),
            "SetupType": ("REG_DWORD", hivexget(system, "\\Setup", "SetupType"))}


def test_actions_reach_programs_unchanged(prefix, hives, tmp_path):
    tree = windows_tree(tmp_path / "tree", hives, "10clean")
    with open_target(str(tree), write=True) as t:
        for n, arg in enumerate(ARGS):
            schedule(t, name=f"case {n} & more", command=["reg", "add", KEY, "/v",
                                                          f"case{n}", "/d", arg, "/f"])
    setup = _setup(tree)
    _install(prefix, tree, setup)
    wine(prefix, "reg", "delete", KEY, "/f")
    wine(prefix, "cmd", "/d", "/c", setup["CmdLine"][1].split(" /c ", 1)[1])
    got = query(prefix, KEY)
    assert got == {f"case{n}": arg.replace("%SystemRoot%", "C:\\windows")
                   for n, arg in enumerate(ARGS)}
    log = open(os.path.join(prefix["WINEPREFIX"], "drive_c/windows/wimfs/firstboot.log"),
               "rb").read().decode("cp437")
    assert "wimfs first-boot action: case 11 & more" in log
    assert log.count("exit code 0") == len(ARGS) and "all actions done" in log
    queue = os.path.join(prefix["WINEPREFIX"], "drive_c/windows/wimfs/firstboot")
    assert not os.path.exists(queue)                  # every action removed itself
    setup_now = query(prefix, "HKLM\\SYSTEM\\Setup")
    assert setup_now["SetupType"] == "0x0" and setup_now.get("CmdLine", "") == ""


def test_restart_request_and_payload(prefix, hives, tmp_path):
    tree = windows_tree(tmp_path / "tree", hives, "10clean")
    local = tmp_path / "data 50%.txt"
    local.write_text("payload")
    with open_target(str(tree), write=True) as t:
        schedule(t, name="first", command=["cmd", "/c", "exit 3010"])
        schedule(t, name="second", command=["reg", "add", KEY, "/v", "second", "/d",
                                            "%SystemRoot%\\wimfs\\P\\data 50%.txt", "/f"],
                 payload={"P\\data 50%.txt": str(local)})
    setup = _setup(tree)
    _install(prefix, tree, setup)
    wine(prefix, "reg", "delete", KEY, "/f")
    runner = setup["CmdLine"][1].split(" /c ", 1)[1]
    root = os.path.join(prefix["WINEPREFIX"], "drive_c/windows/wimfs")
    wine(prefix, "cmd", "/d", "/c", runner)
    after = query(prefix, "HKLM\\SYSTEM\\Setup")
    assert after["SetupShutdownRequired"] == "0x1" and after["SetupType"] == "0x2"
    assert after["CmdLine"] == setup["CmdLine"][1]
    assert sorted(os.listdir(os.path.join(root, "firstboot"))) == ["000002"]
    assert query(prefix, KEY) == {}
    wine(prefix, "cmd", "/d", "/c", runner)           # the next start
    assert query(prefix, KEY) == {"second": "C:\\windows\\wimfs\\P\\data 50%.txt"}
    assert not os.path.exists(os.path.join(root, "P"))        # payload removed
    after = query(prefix, "HKLM\\SYSTEM\\Setup")
    assert after["SetupType"] == "0x0" and "SetupShutdownRequired" not in after


def test_chained_start_up_command_runs_after(prefix, hives, tmp_path):
    from servicing.regf import REG_DWORD, REG_SZ, Hive
    tree = windows_tree(tmp_path / "tree", hives, "10clean")
    old = f"reg add {KEY} /v chained /d \"was here 5%\" /f"
    h = Hive.open(tree / "Windows/System32/config/SYSTEM", write=True)
    h.key("Setup").set_value("CmdLine", REG_SZ, old)
    h.key("Setup").set_value("SetupType", REG_DWORD, 1)
    h.commit()
    with open_target(str(tree), write=True) as t:
        schedule(t, name="mine", command=["reg", "add", KEY, "/v", "mine", "/d", "1", "/f"])
    setup = _setup(tree)
    _install(prefix, tree, setup)
    wine(prefix, "reg", "delete", KEY, "/f")
    wine(prefix, "cmd", "/d", "/c", setup["CmdLine"][1].split(" /c ", 1)[1])
    assert query(prefix, KEY) == {"mine": "1", "chained": "was here 5%"}
    after = query(prefix, "HKLM\\SYSTEM\\Setup")
    assert after["CmdLine"] == old and after["SetupType"] == "0x1"


def test_setupcomplete_mode_keeps_setup_values_and_old_script(prefix, hives, tmp_path):
    from servicing.regf import REG_SZ, Hive
    tree = windows_tree(tmp_path / "tree", hives, "10clean")
    h = Hive.open(tree / "Windows/System32/config/SOFTWARE", write=True)
    h.create_key("Microsoft\\Windows\\CurrentVersion\\Setup\\State").set_value(
        "ImageState", REG_SZ, "IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE")
    h.commit()
    scripts_dir = tree / "Windows/Setup/Scripts"
    scripts_dir.mkdir(parents=True)
    (scripts_dir / "SetupComplete.cmd").write_bytes(
        f"@echo off\r\nreg add {KEY} /v old /d kept /f\r\nexit /b 0\r\n".encode())
    with open_target(str(tree), write=True) as t:
        schedule(t, name="mine", command=["reg", "add", KEY, "/v", "mine", "/d", "1", "/f"])
    windeploy = {"CmdLine": ("REG_SZ", "oobe\\windeploy.exe"), "SetupType": ("REG_DWORD", "2")}
    _install(prefix, tree, windeploy)
    dest = os.path.join(prefix["WINEPREFIX"], "drive_c/windows/Setup/Scripts")
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(scripts_dir, dest)
    wine(prefix, "reg", "delete", KEY, "/f")
    wine(prefix, "cmd", "/d", "/c", "C:\\windows\\Setup\\Scripts\\SetupComplete.cmd")
    assert query(prefix, KEY) == {"mine": "1", "old": "kept"}
    after = query(prefix, "HKLM\\SYSTEM\\Setup")
    assert after["CmdLine"] == "oobe\\windeploy.exe" and after["SetupType"] == "0x2"
