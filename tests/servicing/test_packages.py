"""CBS packages and features, read side and applicability: `wimfs package list|info|check`
and `wimfs feature list|info` on a Windows 10 tree (directory and IMAGE.wim:1) holding the
CBS state of cbs_fixture (see that module for the documented facts it rests on).

Expected values come from the oracles: regipy's and hivexml's view of the SOFTWARE hive's
``Component Based Servicing\\Packages`` keys, mapped with the state chart written out
below (Microsoft's "CBS Servicing States Chart"), and the manifests the test wrote."""

from __future__ import annotations

import datetime
import io
import json
import subprocess
from contextlib import redirect_stderr, redirect_stdout

import pytest

from cbs_fixture import (BROKEN, FOUNDATION, NEW_KB, OLD_KB, Pkg, add_cbs_state, manifest,
                         msu, package_cab)
from tests.servicing.conftest import TargetCase
from drivers_helpers import regipy_tree
from oracles import hivexml
from windows_trees import windows_tree

CBS = "\\Microsoft\\Windows\\CurrentVersion\\Component Based Servicing\\Packages"
# Microsoft's chart (registry hex -> state); negative codes are invalid states.
CHART = {0x40: "Staged", 0x50: "Superseded", 0x60: "Install Pending", 0x70: "Installed",
         0x80: "Permanent"}
FOUND_PARENT = [("Microsoft-Windows-Foundation-Package", "10.0.16299.15", "EQ", "GE")]


def wimfs(*args: str) -> subprocess.CompletedProcess:
    """`wimfs ARGS` in process: exit status, stdout, stderr."""
    from wimfs.cli import main
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(list(args))
    return subprocess.CompletedProcess(args, rc, out.getvalue(), err.getvalue())


def wimfs_json(*args: str):
    r = wimfs(*args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture(params=["dir", "wim"])
def cbs(request, hives, tmp_path) -> TargetCase:
    tree = add_cbs_state(windows_tree(tmp_path / "tree", hives, "10clean"))
    return TargetCase(request.param, tree, tmp_path)


def _expected_state(code: int) -> str:
    if code & 0x80000000:
        return f"Broken ({CHART[(1 << 32) - code]})"
    return CHART[code]


def _filetime(high: int, low: int) -> str:
    t = datetime.datetime(1601, 1, 1) + datetime.timedelta(microseconds=((high << 32) | low)
                                                           // 10)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_package_list_agrees_with_regipy_and_hivexml(cbs):
    listed = wimfs_json("package", "list", cbs.spec)
    software = cbs.tree() / "Windows/System32/config/SOFTWARE"
    reg = regipy_tree(software, CBS)
    hx = hivexml(str(software))
    hx_prefix = CBS.lstrip("\\")
    idents = sorted((k for k in reg if k and "\\" not in k), key=str.lower)
    assert [p["identity"] for p in listed] == idents
    for p in listed:
        vals = reg[p["identity"]]
        hv = hx[f"{hx_prefix}\\{p['identity']}"]
        code = vals["CurrentState"][1]
        assert hv["CurrentState"][1] == code
        assert p["state"] == _expected_state(code)
        if "InstallTimeHigh" in vals:
            assert p["install_time"] == _filetime(vals["InstallTimeHigh"][1],
                                                  vals["InstallTimeLow"][1])
        else:
            assert p["install_time"] is None
        assert p["install_client"] == vals["InstallClient"][1]
    by_id = {p["identity"]: p for p in listed}
    # release type from each package's .mum (written by the test); none without one
    assert by_id[FOUNDATION.identity]["release_type"] == "Foundation"
    assert by_id[BROKEN.identity]["release_type"] == ""
    assert by_id[BROKEN.identity]["state"] == "Broken (Installed)"


def test_package_list_text_and_info(cbs):
    r = wimfs("package", "list", cbs.spec)
    assert r.returncode == 0
    block = (f"Package Identity : {FOUNDATION.identity}\nState : Installed\n"
             f"Release Type : Foundation\nInstall Time : ")
    assert block in r.stdout
    info = wimfs_json("package", "info", cbs.spec, FOUNDATION.identity)
    assert info["release_type"] == "Foundation" and info["state"] == "Installed"
    assert info["company"] == "Microsoft Corporation"
    assert info["support_information"] == "http://support.microsoft.com/?kbid=1"
    names = [f["name"] for f in info["features"]]
    assert names == list(FOUNDATION.mum_features)
    r = wimfs("package", "info", cbs.spec, "Package_for_KB9~31bf3856ad364e35~amd64~~1.0.0.0")
    assert r.returncode == 4 and "no package" in r.stderr and "Traceback" not in r.stderr


def test_feature_list_agrees_with_the_updates_key(cbs):
    feats = wimfs_json("feature", "list", cbs.spec)
    software = cbs.tree() / "Windows/System32/config/SOFTWARE"
    updates = regipy_tree(software, f"{CBS}\\{FOUNDATION.identity}\\Updates")[""]
    words = {0x00: "Disabled with Payload Removed", 0x40: "Disabled", 0x60: "Enable Pending",
             0x70: "Enabled"}
    by_name = {f["name"]: f for f in feats}
    for name, (_, code) in updates.items():
        assert by_name[name]["state"] == words[code]
        assert by_name[name]["package"] == FOUNDATION.identity
    # selectable updates of the .mum missing from the key: the manifest's default
    for name, disposition in FOUNDATION.mum_features.items():
        if name not in updates:
            assert by_name[name]["state"] == ("Enabled" if disposition == "installed"
                                              else "Disabled")
    assert set(by_name) == set(FOUNDATION.mum_features)
    info = wimfs_json("feature", "info", cbs.spec, "TelnetClient")
    assert (info["display_name"], info["state"]) == ("TelnetClient feature", "Disabled")
    r = wimfs("feature", "info", cbs.spec, "telnetclient")     # names are case-sensitive
    assert r.returncode == 4 and "unknown" in r.stderr


def _reasons(results: list[dict], identity: str) -> list[str]:
    [r] = [r for r in results if r["identity"] == identity]
    assert r["applicable"] is (not r["reasons"])
    return [x["code"] for x in r["reasons"]]


def test_check_gives_each_reason(cbs, tmp_path):
    d = tmp_path / "updates"
    cases = {
        "ok": (Pkg("Package_for_KB5000001", "10.0.1.0", 0, parents=FOUND_PARENT), []),
        "arch": (Pkg("Package_for_KB5000002", "10.0.1.0", 0, arch="x86"), ["architecture"]),
        "lang": (Pkg("Package_for_KB5000003", "10.0.1.0", 0, language="de-DE"),
                 ["language"]),
        "parent": (Pkg("Package_for_KB5000004", "10.0.1.0", 0, parents=[
            ("Microsoft-Windows-Absent-Package", "10.0.16299.15", "EQ", "GE")]),
            ["parent-missing"]),
        "version": (Pkg("Package_for_KB5000005", "10.0.1.0", 0, parents=[
            ("Microsoft-Windows-Foundation-Package", "10.0.17134.1", "EQ", "GE")]),
            ["version"]),
        "os": (Pkg("Package_for_KB5000006", "6.1.1.0", 0), ["version"]),
        "installed": (NEW_KB, ["installed"]),
        "superseded": (Pkg(OLD_KB.name, "10.0.0.5", 0), ["superseded"]),
    }
    for name, (pkg, _) in cases.items():
        package_cab(d / "sub" / f"{name}.cab", pkg)
    results = wimfs_json("package", "check", cbs.spec, str(d / "sub"))
    for name, (pkg, reasons) in cases.items():
        assert _reasons(results, pkg.identity) == reasons, name
    r = wimfs("package", "check", cbs.spec, str(d / "sub" / "arch.cab"))
    assert r.returncode == 0 and "architecture: for x86, the image is amd64" in r.stdout


@pytest.mark.parametrize("kind", ["dir", "wim"])
def test_check_reboot_pending_and_restart(hives, tmp_path, kind):
    tree = add_cbs_state(windows_tree(tmp_path / "tree", hives, "10clean"),
                         reboot_pending=True)
    t = TargetCase(kind, tree, tmp_path)
    cab = package_cab(tmp_path / "kb.cab", Pkg("Package_for_KB5000007", "10.0.1.0", 0,
                                               restart="required"))
    [r] = wimfs_json("package", "check", t.spec, str(cab))
    assert [x["code"] for x in r["reasons"]] == ["reboot-pending"]
    assert r["restart_required"] is True


def test_msu_inner_cabs_are_checked(cbs, tmp_path):
    a = package_cab(tmp_path / "a" / "Windows10.0-KB5000008-x64.cab",
                    Pkg("Package_for_KB5000008", "10.0.1.0", 0, parents=FOUND_PARENT))
    b = package_cab(tmp_path / "b" / "Windows10.0-KB5000009-x64.cab",
                    Pkg("Package_for_KB5000009", "10.0.1.0", 0, arch="arm64"))
    m = msu(tmp_path / "windows10.0-kb5000008-x64.msu", [a, b])
    results = wimfs_json("package", "check", cbs.spec, str(m))
    assert [(r["source"].rsplit(":", 1)[1], r["applicable"]) for r in results] == [
        (a.name, True), (b.name, False)]
    info = wimfs_json("package", "info", cbs.spec, str(a))
    assert info["applicable"] is True and info["state"] == "Not Present"
    assert info["identity"] == "Package_for_KB5000008~31bf3856ad364e35~amd64~~10.0.1.0"


@pytest.mark.parametrize("bad,message", [
    (b"<assembly/>", "not a CBS manifest"),
    (b"<?xml version='1.0'?><!DOCTYPE a [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
     b"<assembly xmlns='urn:schemas-microsoft-com:asm.v3'>&x;</assembly>",
     "assemblyIdentity"),
    (b"<assembly xmlns='urn:schemas-microsoft-com:asm.v3'><assemblyIdentity name='a' "
     b"version='x.y'/><package/></assembly>", "bad version"),
    (b"not xml", "not well-formed"),
])
def test_bad_manifests_are_one_clear_error(cbs, tmp_path, bad, message):
    from cbs_fixture import build_cab
    cab = build_cab(tmp_path / "bad.cab", {"update.mum": bad})
    before = cbs.fingerprint()
    r = wimfs("package", "check", cbs.spec, str(cab))
    assert r.returncode == 3 and message in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and "root:" not in r.stderr
    assert cbs.fingerprint() == before


def test_manifest_fields_and_key_form():
    from servicing.formats.cbs_manifest import Identity, parse
    m = parse(manifest(FOUNDATION, custom={"ProductName": "Windows", "Kind": "x"}))
    assert m.identity.key == FOUNDATION.identity
    assert m.release_type == "Foundation" and m.restart == "possible"
    assert m.custom_properties == {"ProductName": "Windows", "Kind": "x"}
    assert m.product_name == "Windows"
    assert [u.name for u in m.features] == list(FOUNDATION.mum_features)
    assert m.updates[0].components[0].name == "Microsoft-Windows-TelnetClient"
    # cbs-docs CBSInternals.md's own example of the truncation
    ident = Identity("Microsoft-Windows-NetworkDiagnosticsFrameworkCore", "31bf3856ad364e35",
                     "amd64", "", "6.1.7601.17514")
    assert ident.component_key("0123") == ("amd64_microsoft-windows-n..osticsframeworkcore_"
                                           "31bf3856ad364e35_6.1.7601.17514_none_0123")
