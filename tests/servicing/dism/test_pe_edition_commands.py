"""DISM's Windows PE and edition commands on fixture trees (test_winpe.pe_tree,
test_edition.edition_tree), as a directory and as IMAGE.wim:1: DISM's labels, the records
equal to the native command's --json, the values read back with hivexget, and DISM's
validation one rule at a time (Error 87), refusals (Error 50) and not-applicable editions
(0x800f081e)."""

from __future__ import annotations

import json

import pytest

from servicing.dism.codes import exit_status
from tests.servicing.conftest import TargetCase
from tests.servicing.dism.conftest import dism, native_json
from tests.servicing.test_edition import CV, edition_tree
from tests.servicing.test_winpe import FBWF, WINPE, hivexget, pe_tree

OK = "The operation completed successfully.\n"


def body(out: str) -> str:
    return out.split("\n", 6)[6]           # after the banner and "Image Version:"


@pytest.fixture(params=["dir", "wim"])
def pe(request, hives, tmp_path) -> TargetCase:
    return TargetCase(request.param, pe_tree(tmp_path / "tree", hives), tmp_path)


@pytest.fixture(params=["dir", "wim"])
def win10(request, hives, tmp_path) -> TargetCase:
    return TargetCase(request.param, edition_tree(tmp_path / "tree", hives), tmp_path)


def test_get_pe_settings(pe):
    rc, out = dism(f"/Image:{pe.spec}", "/Get-PESettings")
    assert rc == 0, out
    # pe_tree: WinPECacheThreshold 32, InstRoot X:\ (dism-reference.md 3.3 labels)
    assert body(out) == ("Windows PE settings:\n\nProfiling : Disabled\n"
                         "Scratch Space : 32MB\nTarget Path : X:\\\n\n" + OK)
    rc, js = dism(f"/Image:{pe.spec}", "/Get-PESettings", "--json")
    assert json.loads(js) == native_json("pe", "get", pe.spec)
    out = dism(f"/Image:{pe.spec}", "/Get-ScratchSpace")[1]
    assert body(out) == "Windows PE settings:\n\nScratch Space : 32MB\n\n" + OK
    # fs:19033380260 parses the value from line 9 of DISM's output
    assert out.split("\n")[8] == "Scratch Space : 32MB"
    assert body(dism(f"/Image:{pe.spec}", "/Get-TargetPath")[1]) == \
        "Windows PE settings:\n\nTarget Path : X:\\\n\n" + OK


def test_set_scratch_space_and_target_path(pe):
    rc, out = dism(f"/Image:{pe.spec}", "/Set-ScratchSpace:256")
    assert rc == 0 and body(out) == "Scratch Space : 256MB\n\n" + OK, out
    rc, out = dism(f"/Image:{pe.spec}", "/Set-TargetPath:X:\\$Windows.~bt")
    assert rc == 0, out
    cfg = pe.tree() / "Windows/System32/config"
    assert hivexget(cfg / "SYSTEM", FBWF, "WinPECacheThreshold") == "256"
    assert hivexget(cfg / "SOFTWARE", WINPE, "InstRoot") == "X:\\$Windows.~bt"


@pytest.mark.parametrize("args,code", [
    (["/Set-ScratchSpace:100"], 87), (["/Set-ScratchSpace:1024"], 87),
    (["/Set-ScratchSpace:big"], 87), (["/Set-ScratchSpace"], 87),
    (["/Set-TargetPath:A:\\"], 87), (["/Set-TargetPath:X:"], 87),
    (["/Set-TargetPath:X:\\a b"], 87), (["/Set-TargetPath:X:\\..\\x"], 87),
    (["/Set-TargetPath:X:\\" + "a" * 30], 87), (["/Set-TargetPath:X:\\\u00e9"], 87),
    (["/Set-TargetPath"], 87),
])
def test_pe_validation(pe, args, code):
    before = pe.fingerprint()
    rc, out = dism(f"/Image:{pe.spec}", *args)
    assert rc == code and f"\nError: {code}\n\n" in out and "Traceback" not in out
    assert pe.fingerprint() == before


@pytest.mark.parametrize("cmd", ["/Get-PESettings", "/Get-ScratchSpace", "/Get-TargetPath",
                                 "/Set-ScratchSpace:64", "/Set-TargetPath:X:\\"])
def test_pe_commands_on_normal_windows(target, cmd):
    rc, out = dism(f"/Image:{target.spec}", cmd)
    assert rc == 50 and "\nError: 50\n\n" in out and "not a Windows PE image" in out


def test_edition_commands(win10):
    rc, out = dism(f"/Image:{win10.spec}", "/Get-TargetEditions")
    assert rc == 0, out
    targets = native_json("edition", "targets", win10.spec)["targets"]
    assert body(out) == ("Editions that can be upgraded to:\n\n" +
                         "".join(f"Target Edition : {t}\n" for t in targets) + "\n" + OK)
    rc, out = dism(f"/Image:{win10.spec}", "/Set-Edition:Education",
                   "/ProductKey:VK7JG-NPHTM-C97JM-9MPGT-3V66T")
    assert rc == 0, out
    tree = win10.tree()
    assert hivexget(tree / "Windows/System32/config/SOFTWARE", CV, "EditionID") == "Education"
    assert b"VK7JG-NPHTM-C97JM-9MPGT-3V66T" in \
        (tree / "Windows/Panther/unattend.xml").read_bytes()
    rc, out = dism(f"/Image:{win10.spec}", "/Get-CurrentEdition")
    assert "Current Edition : Education\n" in out
    rc, out = dism(f"/Image:{win10.spec}", "/Set-ProductKey:NPPR9-FWDCX-D2C8J-H872K-2YT43")
    assert rc == 0 and "Finished installing the product key." in out


@pytest.mark.parametrize("args,code,text", [
    (["/Set-Edition:Ultimate"], 0x800F081E, "0x800f081e"),
    (["/Set-Edition:Professional"], 0x800F081E, "0x800f081e"),
    (["/Set-Edition"], 87, "87"),
    (["/Set-ProductKey:AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"], 87, "87"),
    (["/Set-ProductKey:VK7JG-NPHTM"], 87, "87"),
    (["/Set-Edition:Education", "/ProductKey:VK7JG"], 87, "87"),
])
def test_edition_errors(win10, args, code, text):
    before = win10.fingerprint()
    rc, out = dism(f"/Image:{win10.spec}", *args)
    assert f"\nError: {text}\n\n" in out and "Traceback" not in out, out
    assert rc == exit_status(code)
    assert win10.fingerprint() == before
