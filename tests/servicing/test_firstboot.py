"""First-boot actions (servicing.features.firstboot) on a directory and on IMAGE.wim:1.

Fixture trees are the real Windows 10 SYSTEM hive of the corpus (installed: its
``Setup`` key holds ``SetupType`` 0, an empty ``CmdLine`` and ``SystemSetupInProgress`` 0, as
hivexget shows) plus a SOFTWARE hive written by the tests. The generalized variant rests on
Microsoft's "Windows Setup States": a generalized image records
``ImageState`` = IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE in
``SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Setup\\State`` and in
``%WINDIR%\\Setup\\State\\State.ini`` (section [State]). Registry values are read back with
hivexget; script text is compared with lines written out here from the rules in
test_firstboot_batch.py.
"""

from __future__ import annotations

import json
import pathlib

import pytest

from servicing.errors import EXIT_REFUSED, RefusedError
from servicing.features.firstboot import (
    FirstbootExistsError, FirstbootNotFoundError, Mechanism, entries, mechanism, schedule,
    unschedule)
from servicing.features import firstboot_scripts as scripts
from servicing.formats.cmdline import CommandLineError
from servicing.regf import REG_DWORD, REG_SZ, Hive
from servicing.target import open_target
from tests.servicing.conftest import TargetCase
from tests.servicing.drivers_helpers import hivexget
from wimfs.cli import main
from windows_trees import SOFTWARE_10, software_hive, windows_tree

CMDLINE = "cmd.exe /d /c %SystemRoot%\\wimfs\\firstboot.cmd cmdline"
BLOCK = ("@rem wimfs first-boot actions: begin (wimfs firstboot remove takes this block out)"
         "\r\n@call \"%SystemRoot%\\wimfs\\firstboot.cmd\" setupcomplete\r\n"
         "@rem wimfs first-boot actions: end\r\n")
GENERALIZED = "IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE"


def _setup_values(tree: pathlib.Path) -> str:
    return hivexget(tree / "Windows/System32/config/SYSTEM", "\\Setup")


def _value(tree: pathlib.Path, name: str) -> str:
    return hivexget(tree / "Windows/System32/config/SYSTEM", "\\Setup", name)


def _files(tree: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(tree)): p.read_bytes() for p in sorted(tree.rglob("*"))
            if p.is_file() and "config" not in p.parts}


def _case(request, tmp_path, *, state: str | None = None, ini: bool = False,
          setup: dict | None = None, complete: bytes | None = None,
          winpe: bool = False) -> TargetCase:
    hives = pathlib.Path(request.getfixturevalue("hives"))
    tree = windows_tree(tmp_path / "tree", hives, "10clean")
    cfg = tree / "Windows/System32/config"
    software_hive(cfg / "SOFTWARE", SOFTWARE_10, winpe=winpe)
    if state and not ini:
        h = Hive.open(cfg / "SOFTWARE", write=True)
        h.create_key("Microsoft\\Windows\\CurrentVersion\\Setup\\State").set_value(
            "ImageState", REG_SZ, state)
        h.commit()
    if state and ini:
        d = tree / "Windows/Setup/State"
        d.mkdir(parents=True)
        (d / "State.ini").write_bytes(f"[State]\r\nImageState={state}\r\n".encode())
    if setup:
        h = Hive.open(cfg / "SYSTEM", write=True)
        for name, (vtype, data) in setup.items():
            h.key("Setup").set_value(name, vtype, data)
        h.commit()
    if complete is not None:
        d = tree / "Windows/Setup/Scripts"
        d.mkdir(parents=True)
        (d / "SetupComplete.cmd").write_bytes(complete)
    return TargetCase(request.param, tree, tmp_path)


@pytest.fixture(params=["dir", "wim"])
def kind(request):
    return request


def test_installed_image_uses_cmdline(target, tmp_path):
    before = target.tree()
    assert _value(before, "CmdLine") == "" and _value(before, "SetupType") == "0"
    local = tmp_path / "update.cab"
    local.write_bytes(b"MSCF payload bytes")
    with open_target(target.spec, write=True) as t:
        assert mechanism(t) == Mechanism.CMDLINE
        first = schedule(t, name="R&D 100%", command=["dism", "/online", "/add-package",
                         "/packagepath:%SystemRoot%\\wimfs\\Packages\\K 1\\update.cab"],
                         payload={"Packages\\K 1\\update.cab": str(local)})
        second = schedule(t, name="second", command='"C:\\Program Files\\t.exe" /x',
                          reboot=True)
    tree = target.tree()
    assert _value(tree, "CmdLine") == CMDLINE
    assert "\"SetupType\"=dword:00000002" in _setup_values(tree).splitlines()
    q = tree / "Windows/wimfs/firstboot"
    assert (q / "000001/action.cmd").read_bytes() == (
        "@echo off\r\necho(wimfs first-boot action: R^&D 100%%\r\n"
        "dism /online /add-package \"/packagepath:%SystemRoot%\\wimfs\\Packages\\K 1\\"
        "update.cab\"\r\n").encode()
    assert (q / "000001/cleanup.cmd").read_bytes() == (
        "@echo off\r\ndel /f /q \"%SystemRoot%\\wimfs\\Packages\\K 1\\update.cab\"\r\n"
        "rd \"%SystemRoot%\\wimfs\\Packages\\K 1\" 2>nul\r\n"
        "rd \"%SystemRoot%\\wimfs\\Packages\" 2>nul\r\n").encode()
    assert not (q / "000001/reboot").exists() and (q / "000002/reboot").exists()
    assert (q / "000002/action.cmd").read_bytes() == (
        "@echo off\r\necho(wimfs first-boot action: second\r\n"
        "\"C:\\Program Files\\t.exe\" /x\r\n").encode()
    assert (tree / "Windows/wimfs/Packages/K 1/update.cab").read_bytes() == local.read_bytes()
    assert (tree / "Windows/wimfs/firstboot.cmd").read_bytes() == \
        scripts.runner().encode("ascii")
    assert not (tree / "Windows/Setup/Scripts/SetupComplete.cmd").exists()
    assert not (q / "chain.cmd").exists() and not (q / "chain.json").exists()
    with open_target(target.spec) as t:
        listed = entries(t)
    assert [e.to_json() for e in listed] == [first.to_json(), second.to_json()]
    assert [(e.name, e.reboot, e.id) for e in listed] == [("R&D 100%", False, "000001"),
                                                          ("second", True, "000002")]
    assert listed[0].payload == ["Windows/wimfs/Packages/K 1/update.cab"]
    with open_target(target.spec, write=True) as t:
        unschedule(t, "r&d 100%")
    tree = target.tree()
    assert not (tree / "Windows/wimfs/Packages").exists()
    assert _value(tree, "CmdLine") == CMDLINE           # one action left
    with open_target(target.spec, write=True) as t:
        unschedule(t, "second")
    tree = target.tree()
    assert _setup_values(tree) == _setup_values(before)
    assert _files(tree) == _files(before)


def test_existing_cmdline_is_kept_and_chained(kind, tmp_path):
    old = 'C:\\tools\\setup hook.exe /go "50%"'
    case = _case(kind, tmp_path, setup={"CmdLine": (REG_SZ, old),
                                        "SetupType": (REG_DWORD, 1)})
    before = case.tree()
    with open_target(case.spec, write=True) as t:
        schedule(t, name="x", command="whoami")
        schedule(t, name="z", command="ver")     # sees the values the first one staged
    tree = case.tree()
    assert _value(tree, "CmdLine") == CMDLINE and _value(tree, "SetupType") == "2"
    chain = (tree / "Windows/wimfs/firstboot/chain.cmd").read_bytes().decode()
    assert chain.split("\r\n") == [
        "@echo off",
        'reg add HKLM\\SYSTEM\\Setup /v CmdLine /t REG_SZ /d "C:\\tools\\setup hook.exe '
        '/go \\"50%%\\"" /f >nul',
        "reg add HKLM\\SYSTEM\\Setup /v SetupType /t REG_DWORD /d 1 /f >nul",
        'C:\\tools\\setup hook.exe /go "50%%"', ""]
    with open_target(case.spec, write=True) as t:     # a second action: chain unchanged
        schedule(t, name="y", command="hostname")
    assert (case.tree() / "Windows/wimfs/firstboot/chain.cmd").read_bytes().decode() == chain
    with open_target(case.spec, write=True) as t:
        unschedule(t, "x")
        unschedule(t, "y")
    assert _value(case.tree(), "CmdLine") == CMDLINE
    with open_target(case.spec, write=True) as t:
        unschedule(t, "Z")
    tree = case.tree()
    assert _value(tree, "CmdLine") == old and _value(tree, "SetupType") == "1"
    assert _files(tree) == _files(before)


@pytest.mark.parametrize("ini", [False, True], ids=["registry", "state.ini"])
def test_generalized_image_uses_setupcomplete(kind, tmp_path, ini):
    case = _case(kind, tmp_path, state=GENERALIZED, ini=ini)
    before = case.tree()
    with open_target(case.spec, write=True) as t:
        assert mechanism(t) == Mechanism.SETUP_COMPLETE
        schedule(t, name="a", command=["cmd", "/c", "echo hi"])
        schedule(t, name="b", command="hostname")
    tree = case.tree()
    assert (tree / "Windows/Setup/Scripts/SetupComplete.cmd").read_bytes() == BLOCK.encode()
    assert _setup_values(tree) == _setup_values(before)      # Setup owns CmdLine here
    with open_target(case.spec, write=True) as t:
        unschedule(t, "a")
        unschedule(t, "b")
    tree = case.tree()
    assert _files(tree) == _files(before)
    assert _setup_values(tree) == _setup_values(before)


def test_existing_setupcomplete_is_kept(kind, tmp_path):
    old = b"@echo off\r\nnet user admin /active:yes\r\nexit /b 0\r\n"
    case = _case(kind, tmp_path, state=GENERALIZED, complete=old)
    before = case.tree()
    with open_target(case.spec, write=True) as t:
        schedule(t, name="a", command="hostname")
    path = case.tree() / "Windows/Setup/Scripts/SetupComplete.cmd"
    assert path.read_bytes() == BLOCK.encode() + old
    with open_target(case.spec, write=True) as t:
        unschedule(t, "a")
    assert _files(case.tree()) == _files(before)


def test_complete_state_means_installed(kind, tmp_path):
    case = _case(kind, tmp_path, state="IMAGE_STATE_COMPLETE",
                 setup={"SystemSetupInProgress": (REG_DWORD, 1)})
    with open_target(case.spec) as t:
        assert mechanism(t) == Mechanism.CMDLINE


def test_setup_in_progress_without_state(kind, tmp_path):
    case = _case(kind, tmp_path, setup={"SystemSetupInProgress": (REG_DWORD, 1)})
    with open_target(case.spec) as t:
        assert mechanism(t) == Mechanism.SETUP_COMPLETE


def test_errors_change_nothing(kind, tmp_path):
    case = _case(kind, tmp_path)
    with open_target(case.spec, write=True) as t:
        schedule(t, name="Job", command="hostname")
    before = case.fingerprint()
    for name, command, exc in [("job", "whoami", FirstbootExistsError),
                               ("bad", "a\r\nb", CommandLineError),
                               ("", "x", CommandLineError), ("lbl", ":x", CommandLineError)]:
        with pytest.raises(exc), open_target(case.spec, write=True) as t:
            schedule(t, name=name, command=command)
    with pytest.raises(FirstbootNotFoundError) as e, open_target(case.spec, write=True) as t:
        unschedule(t, "nope")
    assert e.value.exit_code == 4 and "Job" in str(e.value)
    with pytest.raises(CommandLineError), open_target(case.spec, write=True) as t:
        schedule(t, name="p", command="x", payload={"..\\evil": str(tmp_path)})
    with pytest.raises(FirstbootNotFoundError), open_target(case.spec, write=True) as t:
        schedule(t, name="p", command="x", payload={"x.cab": str(tmp_path / "none")})
    assert case.fingerprint() == before


def test_windows_pe_refused(kind, tmp_path):
    case = _case(kind, tmp_path, winpe=True)
    before = case.fingerprint()
    with pytest.raises(RefusedError) as e, open_target(case.spec, write=True) as t:
        schedule(t, name="x", command="hostname")
    assert "Windows PE keeps no state across boots" in str(e.value)
    assert e.value.exit_code == EXIT_REFUSED
    assert case.fingerprint() == before


def test_batch_files_in_the_oem_code_page(target):
    """cmd.exe reads batch files in the OEM code page: OEMCP of the image's SYSTEM hive
    (read here with hivexget) decides the bytes; what it cannot hold is refused."""
    system = target.tree() / "Windows/System32/config/SYSTEM"
    current = int(hivexget(system, "\\Select", "Current"))
    oem = hivexget(system, f"\\ControlSet{current:03d}\\Control\\Nls\\CodePage", "OEMCP")
    with open_target(target.spec, write=True) as t:
        schedule(t, name="Café", command=["C:\\Données\\ré.exe", "ü"])
    action = (target.tree() / "Windows/wimfs/firstboot/000001/action.cmd").read_bytes()
    assert action == ("@echo off\r\necho(wimfs first-boot action: Café\r\n"
                      "C:\\Données\\ré.exe ü\r\n").encode(f"cp{oem}")
    before = target.fingerprint()
    with pytest.raises(CommandLineError, match="OEM code page"), \
            open_target(target.spec, write=True) as t:
        schedule(t, name="x", command="echo 日本")
    assert target.fingerprint() == before


def test_cli(target, tmp_path, capsys):
    local = tmp_path / "a b.txt"
    local.write_text("data")
    assert main(["firstboot", "add", target.spec, "--name", "one", "--reboot", "--file",
                 f"Files\\a b.txt={local}", "--json", "--", "notepad",
                 "%SystemRoot%\\wimfs\\Files\\a b.txt"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["mechanism"] == "SYSTEM\\Setup\\CmdLine"
    assert doc["entry"] == {"name": "one", "reboot": True, "id": "000001",
                            "command": 'notepad "%SystemRoot%\\wimfs\\Files\\a b.txt"',
                            "payload": ["Windows/wimfs/Files/a b.txt"]}
    assert main(["firstboot", "add", target.spec, "--name", "one", "--", "x"]) == 1
    assert "already scheduled" in capsys.readouterr().err
    assert main(["firstboot", "list", target.spec, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in listed["entries"]] == ["one"]
    assert main(["firstboot", "remove", target.spec, "two"]) == 4
    assert main(["firstboot", "remove", target.spec, "one"]) == 0
    assert main(["firstboot", "list", target.spec]) == 0
    assert "No first-boot actions." in capsys.readouterr().out
