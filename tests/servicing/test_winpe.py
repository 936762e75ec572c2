"""`wimfs pe get|set` on Windows PE trees, as a directory and as IMAGE.wim:1.

The PE fixture is the clean Windows 10 tree of windows_trees.py (real dissect.regf SYSTEM
hive, SOFTWARE written by our regf writer) made PE by the documented values
(dism-reference.md 2.1): ``SOFTWARE\\...\\CurrentVersion\\WinPE`` with ``Version`` and
``InstRoot`` = ``X:\\`` (the default DISM shows), ``SYSTEM\\ControlSet001\\Services\\FBWF\\
WinPECacheThreshold`` = 32 (MB, the PE default; winpe2.blogspot.com's dword:00000020), and
``System32\\startnet.cmd`` = ``wpeinit`` (the ADK's startnet.cmd). Every value set is read
back with hivexget (libhivex-bin), an independent reader."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from servicing.regf import REG_DWORD, REG_SZ, Hive
from tests.servicing.conftest import TargetCase
from windows_trees import SOFTWARE_10, software_hive, windows_tree

WINPE = "\\Microsoft\\Windows NT\\CurrentVersion\\WinPE"
FBWF = "\\ControlSet001\\Services\\FBWF"


def wimfs(*argv):
    return subprocess.run([sys.executable, "-m", "wimfs", *map(str, argv)],
                          capture_output=True, text=True)


def hivexget(hive, key, name) -> str:
    r = subprocess.run(["hivexget", str(hive), key, name], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.rstrip("\n")


def pe_tree(root, hives):
    tree = windows_tree(root, hives, "10clean")
    cfg = tree / "Windows/System32/config"
    software_hive(cfg / "SOFTWARE", SOFTWARE_10, winpe=True)
    with Hive.open(cfg / "SOFTWARE", write=True) as h:
        h.key(WINPE[1:]).set_value("InstRoot", REG_SZ, "X:\\")
    with Hive.open(cfg / "SYSTEM", write=True) as h:
        h.create_key(FBWF[1:]).set_value("WinPECacheThreshold", REG_DWORD, 32)
    (tree / "Windows/System32/startnet.cmd").write_bytes(b"wpeinit\r\n")
    return tree


@pytest.fixture(params=["dir", "wim"])
def pe(request, hives, tmp_path) -> TargetCase:
    return TargetCase(request.param, pe_tree(tmp_path / "tree", hives), tmp_path)


def _get(spec) -> dict:
    r = wimfs("pe", "get", spec, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_get(pe):
    doc = _get(pe.spec)
    assert doc == {"version": "10.0", "profiling": False, "scratch_space": 32,
                   "target_path": "X:\\", "launch_apps": [], "startnet": ["wpeinit"]}


@pytest.mark.parametrize("mb", [32, 64, 128, 256, 512])
def test_set_scratch_space(pe, mb):
    r = wimfs("pe", "set", pe.spec, "--scratch-space", mb, "--target-path", "Y:\\PE")
    assert r.returncode == 0, r.stderr
    tree = pe.tree()
    cfg = tree / "Windows/System32/config"
    assert hivexget(cfg / "SYSTEM", FBWF, "WinPECacheThreshold") == str(mb)
    assert hivexget(cfg / "SOFTWARE", WINPE, "InstRoot") == "Y:\\PE"
    doc = _get(pe.spec)
    assert doc["scratch_space"] == mb and doc["target_path"] == "Y:\\PE"


BAD_PATHS = {
    "X:": "3 to 32", "X:\\" + "a" * 30: "3 to 32", "A:\\": "drive letter C to Z",
    "B:\\pe": "drive letter C to Z", "1:\\": "drive letter", "X:pe": "followed by :\\",
    "X:\\a b": "blanks", "X:\\\"pe\"": "quotes", "X:\\'pe'": "quotes",
    "X:\\pé": "ASCII", "X:\\..\\pe": "absolute", "X:\\pe\\.": "absolute",
    "X:\\a|b": "character",
}


@pytest.mark.parametrize("path", list(BAD_PATHS))
def test_target_path_rules(pe, path):
    before = pe.fingerprint()
    r = wimfs("pe", "set", pe.spec, "--target-path", path)
    assert r.returncode == 2, r.stderr
    assert BAD_PATHS[path] in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert pe.fingerprint() == before


@pytest.mark.parametrize("path", ["C:\\", "Z:\\", "x:\\", "X:\\$Windows.~bt",
                                  "X:\\$Windows.~bt\\",
                                  "X:\\" + "a" * 29])
def test_target_path_accepted(pe, path):
    r = wimfs("pe", "set", pe.spec, "--target-path", path)
    assert r.returncode == 0, r.stderr
    assert hivexget(pe.tree() / "Windows/System32/config/SOFTWARE", WINPE, "InstRoot") == path


@pytest.mark.parametrize("mb", [0, 16, 33, 1024, 4095])
def test_scratch_space_rules(pe, mb):
    before = pe.fingerprint()
    r = wimfs("pe", "set", pe.spec, "--scratch-space", mb, "--target-path", "Y:\\")
    assert r.returncode == 2 and "32, 64, 128, 256, 512" in r.stderr
    assert pe.fingerprint() == before


def test_start_script_keeps_startnet(pe, tmp_path):
    script = tmp_path / "deploy.cmd"
    script.write_bytes(b"echo deploying\r\n")
    r = wimfs("pe", "set", pe.spec, "--start-script", script, "--json")
    assert r.returncode == 0, r.stderr
    tree = pe.tree()
    s32 = tree / "Windows/System32"
    assert (s32 / "deploy.cmd").read_bytes() == script.read_bytes()
    assert (s32 / "startnet.cmd").read_bytes() == b"wpeinit\r\n"
    ini = (s32 / "winpeshl.ini").read_bytes().decode("ascii").split("\r\n")
    assert ini == ["[LaunchApps]",
                   "%SYSTEMDRIVE%\\Windows\\System32\\cmd.exe, /c "
                   "%SYSTEMDRIVE%\\Windows\\System32\\startnet.cmd",
                   "%SYSTEMDRIVE%\\Windows\\System32\\cmd.exe, /c "
                   "%SYSTEMDRIVE%\\Windows\\System32\\deploy.cmd", ""]
    # a second run replaces the script and does not repeat its line
    script.write_bytes(b"echo v2\r\n")
    assert wimfs("pe", "set", pe.spec, "--start-script", script).returncode == 0
    doc = _get(pe.spec)
    assert doc["launch_apps"] == ini[1:3] and doc["startnet"] == ["wpeinit"]


def test_start_script_refusals(pe, tmp_path):
    before = pe.fingerprint()
    for name in ("startnet.cmd", "run.exe", "my script.cmd"):
        (tmp_path / name).write_bytes(b"x")
        r = wimfs("pe", "set", pe.spec, "--start-script", tmp_path / name)
        assert r.returncode == 2 and "start script" in r.stderr, r.stderr
    r = wimfs("pe", "set", pe.spec, "--start-script", tmp_path / "missing.cmd")
    assert r.returncode == 4
    assert pe.fingerprint() == before


def test_normal_windows_refused(target):
    """The corpus Windows 10 tree (no WinPE key) is not PE: DISM's refusal, exit 9."""
    before = target.fingerprint()
    for argv in (["get", target.spec], ["set", target.spec, "--scratch-space", "64"]):
        r = wimfs("pe", *argv)
        assert r.returncode == 9, r.stderr
        assert "is not a Windows PE image" in r.stderr
    assert target.fingerprint() == before


def test_minint_is_not_enough(hives, tmp_path):
    """The regipy Windows 10 1709 SYSTEM has Control\\MiniNT but no WinPE key: refused."""
    tree = windows_tree(tmp_path / "t", hives, "10")
    hivexget(tree / "Windows/System32/config/SYSTEM", "\\ControlSet001\\Control\\MiniNT",
             "AllowRefsFormatOverNoMirrorVolume")
    assert wimfs("pe", "get", tree).returncode == 9


def test_pe_refuses_first_boot_actions(pe):
    """Windows PE keeps no state across boots: first-boot actions (and what goes through
    them, e.g. a Windows 7 edition change) are refused on the PE fixture, nothing written."""
    before = pe.fingerprint()
    r = wimfs("firstboot", "add", pe.spec, "--name", "x", "--", "cmd.exe", "/c", "echo")
    assert r.returncode == 9 and "Windows PE" in r.stderr, r.stderr
    r = wimfs("edition", "set", pe.spec, "Education")
    assert r.returncode == 9 and "Windows PE" in r.stderr, r.stderr
    assert pe.fingerprint() == before


def test_overlay_merges_case_insensitively(pe, tmp_path):
    """mkwinpeimg's --overlay: the files land under the image's own spelling of existing
    folders (Windows\\System32), no second folder differing in case."""
    from servicing.features.winpe import add_overlay
    from servicing.target import open_target

    overlay = tmp_path / "overlay"
    (overlay / "windows/system32").mkdir(parents=True)
    (overlay / "windows/system32/extra.txt").write_bytes(b"extra")
    (overlay / "Tools").mkdir()
    (overlay / "Tools/a.exe").write_bytes(b"MZ")
    with open_target(pe.spec, write=True) as t:
        assert add_overlay(t, str(overlay)) == 2
    tree = pe.tree()
    assert (tree / "Windows/System32/extra.txt").read_bytes() == b"extra"
    assert (tree / "Tools/a.exe").read_bytes() == b"MZ"
    assert sorted(p.name for p in tree.iterdir()) == ["Tools", "Users", "Windows"]


def test_start_script_keeps_a_unicode_winpeshl(pe, tmp_path):
    """An existing UTF-16 winpeshl.ini with a non-ASCII entry: its entry is kept and the
    file stays UTF-16 (with BOM), which Windows' INI reader takes."""
    from servicing.target import open_target

    entry = "%SYSTEMDRIVE%\\Outils\\démarrer.exe"
    with open_target(pe.spec, write=True) as t:
        t.write_file("Windows/System32/winpeshl.ini",
                     ("\ufeff[LaunchApps]\r\n" + entry + "\r\n").encode("utf-16-le"))
    script = tmp_path / "go.cmd"
    script.write_bytes(b"echo go\r\n")
    r = wimfs("pe", "set", pe.spec, "--start-script", script)
    assert r.returncode == 0, r.stderr
    data = (pe.tree() / "Windows/System32/winpeshl.ini").read_bytes()
    assert data.startswith(b"\xff\xfe")
    lines = data[2:].decode("utf-16-le").split("\r\n")
    assert lines[:2] == ["[LaunchApps]", entry]
    assert lines[2].endswith("\\System32\\go.cmd")
