"""`wimfs package add|remove` and `wimfs feature enable|disable` through the image's first
boot (servicing.features.firstboot), on a directory and on IMAGE.wim:1, and on every
edition of a multi-edition WIM.

Expected values are written out from the documented command lines (DISM's
/Online /Add-Package /PackagePath, /Remove-Package /PackageName, /Enable-Feature
/FeatureName, /Disable-Feature; the package copied under <windir>\\wimfs\\Packages) and
read back from the image with wimlib-imagex (WIM) or from the directory."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from cbs_fixture import (FOUNDATION, NEW_KB, PERMANENT, PKT, WIN10_PACKAGES, Pkg,
                         add_cbs_state, msu, package_cab, write_cbs)
from tests.servicing.conftest import TargetCase
from test_packages import FOUND_PARENT, wimfs, wimfs_json
from windows_trees import SOFTWARE_10, software_hive, windows_tree

PENDING_ADD = "Install Pending (first boot)"


@pytest.fixture(params=["dir", "wim"])
def cbs(request, hives, tmp_path) -> TargetCase:
    tree = add_cbs_state(windows_tree(tmp_path / "tree", hives, "10clean"),
                         [p for p in WIN10_PACKAGES if p.state != 0x60])  # none pending
    return TargetCase(request.param, tree, tmp_path)


def _kb(n: int, **kw) -> Pkg:
    return Pkg(f"Package_for_KB{n}", "10.0.1.0", 0, **({"parents": FOUND_PARENT} | kw))


def _state(spec: str, identity: str) -> str | None:
    return next((p["state"] for p in wimfs_json("package", "list", spec)
                 if p["identity"] == identity), None)


def _action(tree, n: int) -> str:
    return (tree / f"Windows/wimfs/firstboot/{n:06d}/action.cmd").read_text()


def test_add_list_remove(cbs, tmp_path):
    pkg = _kb(5000001)
    cab = package_cab(tmp_path / "in" / "windows10.0-kb5000001-x64.cab", pkg)
    doc = wimfs_json("package", "add", cbs.spec, str(cab))
    assert [(p["identity"], p["status"]) for p in doc["packages"]] == [
        (pkg.identity, "scheduled")]
    assert _state(cbs.spec, pkg.identity) == PENDING_ADD
    info = wimfs_json("package", "info", cbs.spec, pkg.identity)    # from the copied cab
    assert (info["state"], info["display_name"], info["manifest"]) == (
        PENDING_ADD, f"{pkg.name} display", True)
    tree = cbs.tree()
    dest = tree / "Windows/wimfs/Packages" / pkg.identity / cab.name
    assert dest.read_bytes() == cab.read_bytes()
    assert (f'dism.exe /Online /Add-Package "/PackagePath:%SystemRoot%\\wimfs\\Packages\\'
            f'{pkg.identity}\\{cab.name}" /Quiet /NoRestart') in _action(tree, 1)
    # the same package again: it is installed (pending) already
    r = wimfs("package", "add", cbs.spec, str(cab))
    assert r.returncode == 8 and "already" in r.stderr
    # take it back
    doc = wimfs_json("package", "remove", cbs.spec, pkg.identity)
    assert doc["packages"][0]["status"] == "unscheduled"
    assert _state(cbs.spec, pkg.identity) is None
    assert not (cbs.tree() / "Windows/wimfs/Packages" / pkg.identity).exists()


def test_remove_installed_permanent_unknown(cbs):
    doc = wimfs_json("package", "remove", cbs.spec, NEW_KB.identity)
    assert doc["packages"][0]["status"] == "scheduled"
    assert _state(cbs.spec, NEW_KB.identity) == "Uninstall Pending (first boot)"
    assert (f"dism.exe /Online /Remove-Package /PackageName:{NEW_KB.identity} /Quiet "
            "/NoRestart") in _action(cbs.tree(), 1)
    r = wimfs("package", "remove", cbs.spec, NEW_KB.identity)
    assert r.returncode == 9 and "already scheduled" in r.stderr
    r = wimfs("package", "remove", cbs.spec, PERMANENT.identity)
    assert r.returncode == 9 and "permanent" in r.stderr
    r = wimfs("package", "remove", cbs.spec, f"Nope~{PKT}~amd64~~1.0.0.0")
    assert r.returncode == 4


def test_not_applicable_changes_nothing_unless_ignore_check(cbs, tmp_path):
    cab = package_cab(tmp_path / "x86.cab", _kb(5000002, arch="x86"))
    before = cbs.fingerprint()
    r = wimfs("package", "add", cbs.spec, str(cab))
    assert r.returncode == 8 and "for x86, the image is amd64" in r.stderr
    assert cbs.fingerprint() == before
    doc = wimfs_json("package", "add", cbs.spec, str(cab), "--ignore-check")
    assert doc["packages"][0]["status"] == "scheduled"


def test_folder_and_msu(cbs, tmp_path):
    folder = tmp_path / "updates"
    good, bad = _kb(5000003), _kb(5000004, language="de-DE")
    package_cab(folder / "a.cab", good)
    package_cab(folder / "b.cab", bad)
    inner = [package_cab(tmp_path / "m" / f"Windows10.0-KB50000{n}-x64.cab", _kb(5000000 + n))
             for n in (5, 6)]
    m = msu(tmp_path / "windows10.0-kb5000005-x64.msu", inner)
    doc = wimfs_json("package", "add", cbs.spec, str(folder), str(m))
    got = {p["identity"]: p["status"] for p in doc["packages"]}
    assert got == {good.identity: "scheduled", bad.identity: "skipped",
                   _kb(5000005).identity: "scheduled", _kb(5000006).identity: "scheduled"}
    tree = cbs.tree()
    for c, n in zip(inner, (5, 6)):
        ident = _kb(5000000 + n).identity
        assert (tree / "Windows/wimfs/Packages" / ident / c.name).read_bytes() == \
            c.read_bytes()
        assert _state(cbs.spec, ident) == PENDING_ADD


KINDS = pytest.mark.parametrize("kind", ["dir", "wim"])


@KINDS
def test_prevent_pending(hives, tmp_path, kind):
    tree = add_cbs_state(windows_tree(tmp_path / "tree", hives, "10clean"))  # has 0x60
    t = TargetCase(kind, tree, tmp_path)
    cab = package_cab(tmp_path / "a.cab", _kb(5000007))
    before = t.fingerprint()
    r = wimfs("package", "add", t.spec, str(cab), "--prevent-pending")
    assert r.returncode == 10 and t.fingerprint() == before
    assert wimfs("package", "add", t.spec, str(cab)).returncode == 0


@KINDS
def test_windows_pe_is_refused(hives, tmp_path, kind):
    tree = windows_tree(tmp_path / "pe", hives, "10clean")
    software_hive(tree / "Windows/System32/config/SOFTWARE", SOFTWARE_10, winpe=True)
    t = TargetCase(kind, add_cbs_state(tree), tmp_path)
    cab = package_cab(tmp_path / "a.cab", _kb(5000008))
    before = t.fingerprint()
    for args in (["package", "add", t.spec, str(cab)],
                 ["feature", "enable", t.spec, "TelnetClient"],
                 ["package", "remove", t.spec, NEW_KB.identity]):
        r = wimfs(*args)
        assert r.returncode == 9 and "Windows PE" in r.stderr, r.stderr
    assert t.fingerprint() == before


def test_feature_enable_disable(cbs):
    doc = wimfs_json("feature", "enable", cbs.spec, "TelnetClient", "--all")
    assert doc["features"] == [{"name": "TelnetClient", "status": "scheduled",
                                "state": "Enable Pending (first boot)"}]
    assert ("dism.exe /Online /Enable-Feature /FeatureName:TelnetClient /All /Quiet "
            "/NoRestart") in _action(cbs.tree(), 1)
    feats = {f["name"]: f["state"] for f in wimfs_json("feature", "list", cbs.spec)}
    assert feats["TelnetClient"] == "Enable Pending (first boot)"
    assert wimfs_json("feature", "enable", cbs.spec, "SMB1Protocol")["features"][0][
        "status"] == "unchanged"
    doc = wimfs_json("feature", "disable", cbs.spec, "TelnetClient")
    assert doc["features"][0]["status"] == "unscheduled"
    assert wimfs_json("feature", "info", cbs.spec, "TelnetClient")["state"] == "Disabled"
    doc = wimfs_json("feature", "disable", cbs.spec, "SMB1Protocol", "--remove")
    assert doc["features"][0]["state"] == "Disable Pending (first boot)"
    r = wimfs("feature", "enable", cbs.spec, "NoSuchFeature")
    assert r.returncode == 4 and "unknown" in r.stderr


@KINDS
def test_windows7_foundation_features_and_8_only_options(hives, tmp_path, kind):
    tree = windows_tree(tmp_path / "w7", hives, "7")
    foundation = Pkg("Microsoft-Windows-Foundation-Package", "6.1.7601.17514", 0x70,
                     arch="x86", release_type="Foundation", features={"TelnetClient": 0x40},
                     mum_features={"TelnetClient": "staged"})
    other = Pkg("Microsoft-Windows-Other-Package", "6.1.7601.17514", 0x70, arch="x86",
                features={"NotListedOn7": 0x70}, mum_features={"NotListedOn7": "installed"})
    add_cbs_state(tree, [foundation, other])
    t = TargetCase(kind, tree, tmp_path)
    assert [f["name"] for f in wimfs_json("feature", "list", t.spec)] == ["TelnetClient"]
    r = wimfs("feature", "enable", t.spec, "TelnetClient", "--all")
    assert r.returncode == 9 and "Windows 8" in r.stderr
    assert wimfs("feature", "enable", t.spec, "TelnetClient").returncode == 0
    assert ("dism.exe /Online /Enable-Feature /FeatureName:TelnetClient /Quiet /NoRestart"
            in _action(t.tree(), 1))


def _editions_wim(tmp_path, hives):
    """editions_fixture's four-image WIM whose Enterprise images have the Enterprise
    edition package installed (0x70) and Professional ones the Professional package."""
    from editions_fixture import EDITIONS, PRODUCT, edition_tree
    from servicing.regf import REG_SZ
    from tests.helpers import wimlib_append, wimlib_capture
    wim = tmp_path / "install.wim"
    for index, edition in EDITIONS.items():
        soft = tmp_path / f"{edition}.hive"
        if not soft.exists():
            software_hive(soft, {**SOFTWARE_10, "EditionID": (REG_SZ, edition),
                                 "ProductName": (REG_SZ, PRODUCT[edition])})
            write_cbs(soft, [FOUNDATION, Pkg(f"Microsoft-Windows-{edition}Edition",
                                             "10.0.16299.15", 0x70)])
        tree = edition_tree(tmp_path / f"src{index}", hives, edition, soft)
        name = f"{PRODUCT[edition]} #{index}"
        if index == 1:
            wimlib_capture(tree, wim, compress="xpress", name=name)
        else:
            wimlib_append(tree, wim, name=name)
        shutil.rmtree(tree)
    return wim, EDITIONS


def test_add_to_every_edition(hives, tmp_path):
    wim, editions = _editions_wim(tmp_path, hives)
    ent_only = Pkg("Package_for_KB5000009", "10.0.1.0", 0, parents=[
        ("Microsoft-Windows-EnterpriseEdition", "10.0.16299.15", "EQ", "GE")])
    cab = package_cab(tmp_path / "ent.cab", ent_only)
    original = wim.read_bytes()
    r = wimfs("package", "add", f"{wim}:all", str(cab))
    assert r.returncode == 8, r.stderr
    assert wim.read_bytes() == original
    r = wimfs("package", "add", f"{wim}:all", str(cab), "--skip-not-applicable", "--json")
    assert r.returncode == 0, r.stderr
    for i, edition in editions.items():
        listed = wimfs_json("package", "list", f"{wim}:{i}")
        states = {p["identity"]: p["state"] for p in listed}
        assert states.get(ent_only.identity) == (PENDING_ADD if edition == "Enterprise"
                                                 else None), i
        x = subprocess.run(["wimlib-imagex", "extract", str(wim), str(i),
                            f"/Windows/wimfs/Packages/{ent_only.identity}/ent.cab",
                            "--to-stdout"], capture_output=True)
        assert (x.returncode == 0 and x.stdout == cab.read_bytes()) == \
            (edition == "Enterprise"), i
    assert subprocess.run(["wimlib-imagex", "verify", str(wim)],
                          capture_output=True).returncode == 0
    doc = json.loads(r.stdout)
    assert [im["result"] for im in doc["images"]] == [
        "done" if editions[i] == "Enterprise" else "skipped" for i in sorted(editions)]


def test_expanded_folder_and_a_parent_added_in_the_same_run(cbs, tmp_path):
    """An expanded package folder (update.mum at its top) is copied file by file; a package
    whose parent is added earlier in the same run applies."""
    from cbs_fixture import manifest
    base = _kb(5000010)
    child = Pkg("Package_for_KB5000011", "10.0.1.0", 0,
                parents=[(base.name, base.version, "EQ", "GE")])
    folder = tmp_path / "expanded"
    (folder / "sub").mkdir(parents=True)
    (folder / "update.mum").write_bytes(manifest(base))
    (folder / "sub" / "payload.bin").write_bytes(b"\x00\x01payload")
    child_cab = package_cab(tmp_path / "child.cab", child)
    r = wimfs("package", "add", cbs.spec, str(child_cab))
    assert r.returncode == 8 and "parent-missing" not in r.stderr and base.name in r.stderr
    doc = wimfs_json("package", "add", cbs.spec, str(folder), str(child_cab))
    assert [p["status"] for p in doc["packages"]] == ["scheduled", "scheduled"]
    tree = cbs.tree()
    dest = tree / "Windows/wimfs/Packages" / base.identity
    assert (dest / "sub" / "payload.bin").read_bytes() == b"\x00\x01payload"
    assert (dest / "update.mum").read_bytes() == manifest(base)
    assert (f'"/PackagePath:%SystemRoot%\\wimfs\\Packages\\{base.identity}"'
            in _action(tree, 1))


@pytest.mark.parametrize("layout,verb,expected", [
    ("7", "add-package", ["dism.exe", "/Online", "/Add-Package", "/PackagePath:X.cab",
                          "/Quiet", "/NoRestart"]),
    ("8+", "disable-feature", ["dism.exe", "/Online", "/Disable-Feature", "/FeatureName:X",
                               "/Quiet", "/NoRestart"]),
    # Vista has no DISM: pkgmgr /ip /m:<package>, /up:<identity>, /iu: /uu:<feature>
    ("vista", "add-package", ["pkgmgr.exe", "/ip", "/m:X.cab", "/quiet", "/norestart"]),
    ("vista", "remove-package", ["pkgmgr.exe", "/up:X.cab", "/quiet", "/norestart"]),
    ("vista", "enable-feature", ["pkgmgr.exe", "/iu:X", "/quiet", "/norestart"]),
])
def test_servicing_tool_of_the_running_image(layout, verb, expected):
    from servicing.features.image_info import ImageInfo
    from servicing.features.packages import dism_command
    value = "X.cab" if "package" in verb else "X"
    assert dism_command(ImageInfo(layout=layout), verb, value) == expected
