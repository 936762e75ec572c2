"""DISM's package and feature commands on /Image:TARGET (a Windows tree with CBS state as a
directory and as IMAGE.wim:1): DISM's labels (dism-reference.md 1.4, 3.3), records equal
to `wimfs package|feature ... --json`, DISM's codes (3.4)."""

from __future__ import annotations

import json

import pytest

from tests.servicing.cbs_fixture import FOUNDATION, Pkg, add_cbs_state, package_cab
from tests.servicing.conftest import TargetCase
from tests.servicing.dism.conftest import dism, native_json
from tests.servicing.windows_trees import windows_tree

OK = "The operation completed successfully.\n"
FOUND_PARENT = [("Microsoft-Windows-Foundation-Package", "10.0.16299.15", "EQ", "GE")]


@pytest.fixture(params=["dir", "wim"])
def cbs(request, hives, tmp_path) -> TargetCase:
    tree = add_cbs_state(windows_tree(tmp_path / "tree", hives, "10clean"))
    return TargetCase(request.param, tree, tmp_path)


def labels(out: str) -> list[str]:
    text = out.split("Image Version: 10.0.16299.125\n\n", 1)[1]
    return list(dict.fromkeys(ln.split(" : ")[0] for ln in text.splitlines()
                              if " : " in ln))


# (DISM arguments, the native command, the labels DISM prints, in order)
READ = [
    (["/Get-Packages"], ["package", "list"],
     ["Package Identity", "State", "Release Type", "Install Time"]),
    (["/Get-PackageInfo", f"/PackageName:{FOUNDATION.identity}"],
     ["package", "info", FOUNDATION.identity],
     ["Package Identity", "Applicable", "Copyright", "Company", "Creation Time",
      "Description", "Install Client", "Install Package Name", "Install Time",
      "Last Update Time", "Name", "Product Name", "Product Version", "Release Type",
      "Restart Required", "Support Information", "State", "Features listing for package",
      "Feature Name"]),
    (["/Get-Features"], ["feature", "list"],
     ["Features listing for package", "Feature Name", "State"]),
    (["/Get-Features", f"/PackageName:{FOUNDATION.identity}"],
     ["feature", "list", "--package", FOUNDATION.identity],
     ["Features listing for package", "Feature Name", "State"]),
    (["/Get-FeatureInfo", "/FeatureName:TelnetClient"], ["feature", "info", "TelnetClient"],
     ["Feature Name", "Display Name", "Description", "Restart Required", "State"]),
]


@pytest.mark.parametrize("args,native,expected", READ, ids=lambda v: str(v)[:30])
def test_read_commands(cbs, args, native, expected):
    img = f"/Image:{cbs.spec}"
    rc, out = dism(img, *args)
    assert rc == 0, out
    assert out.endswith(OK) and labels(out) == expected
    want = native_json(native[0], native[1], cbs.spec, *native[2:])
    assert json.loads(dism(img, *args, "--json")[1]) == want


def test_get_packages_table_and_package_path(cbs, tmp_path):
    img = f"/Image:{cbs.spec}"
    rc, out = dism(img, "/Format:Table", "/Get-Packages")
    header = [ln for ln in out.splitlines() if ln.startswith("Package Identity")]
    assert [c.strip() for c in header[0].split(" | ")] == ["Package Identity", "State",
                                                             "Release Type", "Install Time"]
    cab = package_cab(tmp_path / "kb.cab", Pkg("Package_for_KB5000001", "10.0.1.0", 0,
                                               parents=FOUND_PARENT))
    rc, out = dism(img, "/Get-PackageInfo", f"/PackagePath:{cab}")
    assert rc == 0 and "Applicable : Yes\n" in out and "State : Not Present\n" in out


@pytest.mark.parametrize("args,status,code,message", [
    (["/Get-FeatureInfo", "/FeatureName:Nope"], 111, "0x800f080c", "is unknown"),
    (["/Get-PackageInfo", "/PackageName:X~31bf3856ad364e35~amd64~~1.0.0.0"], 103, "1168",
     "no package"),
    (["/Get-PackageInfo"], 87, "87", "/PackageName or /PackagePath"),
    (["/Get-PackageInfo", "/PackagePath:{cab}"], 110, "0x800f0805", "unsafe member name"),
    (["/Add-Package"], 87, "87", "/PackagePath option is required"),
    (["/Enable-Feature"], 87, "87", "/FeatureName option is required"),
    (["/Remove-Package", "/PackagePath:x.cab"], 50, "50", "not supported"),
    (["/Get-Features", "/PackagePath:x.cab"], 50, "50", ""),
])
def test_errors(cbs, args, status, code, message):
    from tests.servicing.conftest import corpus_dir
    vuln = corpus_dir() / "cab" / "cabextract-tests" / "dirwalk-vulns.cab"
    rc, out = dism(f"/Image:{cbs.spec}", *[a.format(cab=vuln) for a in args])
    assert rc == status, out
    assert f"\nError: {code}\n\n" in out and message in out and "Traceback" not in out


# add, remove, enable, disable: through the first boot
def test_add_remove_enable_disable(cbs, tmp_path):
    img = f"/Image:{cbs.spec}"
    pkg = Pkg("Package_for_KB5000001", "10.0.1.0", 0, parents=FOUND_PARENT)
    cab = package_cab(tmp_path / "kb.cab", pkg)
    bad = package_cab(tmp_path / "x86.cab", Pkg("Package_for_KB5000002", "10.0.1.0", 0,
                                                arch="x86"))
    rc, out = dism(img, "/Add-Package", f"/PackagePath:{bad}")
    assert rc == 112 and "\nError: 0x800f081e\n\n" in out          # CBS_E_NOT_APPLICABLE
    rc, out = dism(img, "/Add-Package", f"/PackagePath:{cab}")
    assert rc == 0, out
    assert (f"Processing 1 of 1 - Adding package {pkg.identity}: Install Pending (first "
            "boot)\n") in out and out.endswith(OK)
    states = {p["identity"]: p["state"] for p in native_json("package", "list", cbs.spec)}
    assert states[pkg.identity] == "Install Pending (first boot)"
    rc, out = dism(img, "/Remove-Package", f"/PackageName:{pkg.identity}")
    assert rc == 0 and "taken back" in out
    rc, out = dism(img, "/Enable-Feature", "/FeatureName:TelnetClient", "/All",
                   "/Source:D:\\sources\\sxs", "/LimitAccess")
    assert rc == 0 and "Enabling feature TelnetClient: Enable Pending (first boot)" in out
    f = native_json("feature", "info", cbs.spec, "TelnetClient")
    assert f["state"] == "Enable Pending (first boot)"
    rc, out = dism(img, "/Disable-Feature", "/FeatureName:SMB1Protocol")
    assert rc == 0 and "Disable Pending (first boot)" in out
