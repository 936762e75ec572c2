"""`wimfs app list|info|patches|patch-info|check-patch` on Windows trees (a directory and
IMAGE.wim:1) whose SOFTWARE hive holds the Installer registration of the real MSIs and
MSPs of the corpus, written from msitools' values (tests/servicing/msi_fixture.py).

check-patch's expectations are derived here from msitools' view of each patch (``msiinfo
suminfo``: the target product codes and the transforms) and libgsf's reading of each
transform's summary information (PID 16 and PID 9), with the transform validation rules
of Microsoft's documentation (flags in the high word of PID 16, see NOTES-h-msi.md)."""

from __future__ import annotations

import json
import shutil
import uuid

import pytest

from tests.servicing.conftest import TargetCase
from tests.servicing.msi_fixture import (
    HELLO_MSI, MSPS, PRODUCT_MSI, VIGEM_MSI, gsf_transform, msiinfo_properties,
    msiinfo_suminfo, register_patch, register_product, software_of)
from wimfs.cli import main

pytestmark = pytest.mark.skipif(not PRODUCT_MSI.exists(), reason="MSI corpus not found")


def app_tree(tmp_path, hives, *, version=None, language=None, upgrade=True,
             patches=True, cached=False) -> tuple:
    """A Windows 10 tree with product.msi (at *version*), ViGEmBus x64 and hello_world
    installed; rtmldr and ldr2 applied and gdr1 superseded on product.msi. *upgrade*
    False: product.msi's UpgradeCodes entry missing; *cached*: its cached package (the
    MSI itself) in Windows\\Installer, where its upgrade code can be read instead."""
    from windows_trees import windows_tree

    tree = windows_tree(tmp_path / "tree", hives, "10clean")
    sw = software_of(tree)
    facts = [register_product(sw, PRODUCT_MSI, version=version),
             register_product(sw, VIGEM_MSI, cache="77aa.msi", date="20231201"),
             register_product(sw, HELLO_MSI, cache="88bb.msi")]
    if language is not None or not upgrade:
        _rewrite(sw, facts[0], language, upgrade)
    if cached:
        name = facts[0]["local_package"].rpartition("\\")[2]
        (tree / "Windows" / "Installer").mkdir()
        shutil.copyfile(PRODUCT_MSI, tree / "Windows" / "Installer" / name)
        facts[0]["upgrade_code"] = msiinfo_properties(PRODUCT_MSI)["UpgradeCode"]
    pfacts = []
    if patches:
        pc = facts[0]["product_code"]
        pfacts = [register_patch(sw, MSPS["rtmldr"], pc),
                  register_patch(sw, MSPS["ldr2"], pc, cache="99cc.msp"),
                  register_patch(sw, MSPS["gdr1"], pc, state=2, cache="aadd.msp")]
    return tree, facts, pfacts


def _rewrite(sw, fact, language, upgrade) -> None:
    from servicing.regf import REG_DWORD, Hive
    from tests.servicing.msi_fixture import CLASSES, USERDATA, packed

    h = Hive.open(sw, write=True)
    p = packed(fact["product_code"])
    if language is not None:
        fact["language"] = language
        h.key(f"{CLASSES}\\Products\\{p}").set_value("Language", REG_DWORD, language)
        h.key(f"{USERDATA}\\Products\\{p}\\InstallProperties").set_value(
            "Language", REG_DWORD, language)
    if not upgrade:
        h.delete_key(f"{CLASSES}\\UpgradeCodes\\{packed(fact['upgrade_code'])}")
        fact["upgrade_code"] = ""
    h.commit()
    h.close()


@pytest.fixture(params=["dir", "wim"])
def kind(request):
    return request.param


def run_json(capsys, *args):
    rc = main([*map(str, args), "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return json.loads(out.out)


def one_line_error(capsys, args, code):
    assert main([*map(str, args)]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


PRODUCT_FIELDS = ("product_code", "name", "version", "language", "publisher",
                  "upgrade_code", "package_code", "package_name", "help_link",
                  "install_date", "install_source", "local_package")


def test_list_info_patches(hives, tmp_path, kind, capsys):
    tree, facts, pfacts = app_tree(tmp_path, hives)
    t = TargetCase(kind, tree, tmp_path)
    before = t.fingerprint()
    listed = run_json(capsys, "app", "list", t.spec)
    assert listed == sorted(({"product_code": f["product_code"], "name": f["name"]}
                             for f in facts), key=lambda r: r["product_code"])
    info = {p["product_code"]: p for p in run_json(capsys, "app", "info", t.spec)}
    for f in facts:
        got = info[f["product_code"]]
        assert {k: got[k] for k in PRODUCT_FIELDS} == {k: f[k] for k in PRODUCT_FIELDS}
        assert (got["state"], got["state_name"]) == (5, "Installed")
        assert (got["assignment"], got["assignment_name"]) == (1, "Per-Machine")
    pc = facts[0]["product_code"]
    [one] = run_json(capsys, "app", "info", t.spec, "--product-code", pc.lower())
    assert one == info[pc]
    assert main(["app", "info", t.spec, "--product-code", pc]) == 0
    text = capsys.readouterr().out
    assert f"Product Code : {pc}\nProduct Name : {facts[0]['name']}\n" \
           f"Product State : 5 (Installed)\nPackage Code : {facts[0]['package_code']}\n" in text
    patches = run_json(capsys, "app", "patches", t.spec)
    want = {(p["patch_code"], p["product_code"], p["name"]) for p in pfacts}
    assert {(p["patch_code"], p["product_code"], p["name"]) for p in patches} == want
    assert run_json(capsys, "app", "patches", t.spec, "--product-code",
                    facts[1]["product_code"]) == []
    for f in pfacts:
        [got] = run_json(capsys, "app", "patch-info", t.spec, "--patch-code", f["patch_code"],
                         "--product-code", pc)
        assert got["state"] == f["state"] and got["uninstallable"] == f["uninstallable"]
        assert got["state_name"] == {1: "Applied", 2: "Superseded"}[f["state"]]
        for k in ("name", "help_link", "transforms", "local_package", "install_date"):
            assert got[k] == f[k], k
    assert t.fingerprint() == before                     # read-only
    missing = "{00000000-0000-0000-0000-000000000001}"
    assert "not installed" in one_line_error(
        capsys, ["app", "info", t.spec, "--product-code", missing], 4)
    assert "not registered" in one_line_error(
        capsys, ["app", "patch-info", t.spec, "--patch-code", missing], 4)
    for bad in ("FB94421B-7FA3-4495-A9D7-212099C19147", "{FB94421B-7FA3-4495-A9D7-21209}",
                "{ZB94421B-7FA3-4495-A9D7-212099C19147}"):
        assert "is not a GUID" in one_line_error(
            capsys, ["app", "info", t.spec, "--product-code", bad], 2)


def expected_applicability(msp, product: dict, tmp) -> bool:
    """Whether *msp* applies to *product*, from msitools'/libgsf's view of the patch."""
    si = msiinfo_suminfo(msp)
    if product["product_code"] not in si["Template"].split(";"):
        return False
    installed = tuple(int(x) for x in product["version"].split("."))
    for name in [t[1:] for t in si["Last author"].split(";") if not t.startswith(":#")]:
        g = gsf_transform(msp, name, tmp / msp.stem / name)
        flags, errors = int(g["gsf:character-count"]) >> 16, int(g["gsf:character-count"]) \
            & 0xFFFF
        # Only these flags occur in the corpus (an unknown one would make this oracle
        # incomplete): product, language, update version, equal base version, upgrade
        # code (Microsoft's MSITRANSFORM_VALIDATE_* values).
        assert flags & ~(0x1 | 0x2 | 0x20 | 0x100 | 0x800) == 0 and errors == 0x1F
        from_part, _, upgrade = g["meta:editing-cycles"].split(";")
        base = tuple(int(x) for x in from_part[38:].split("."))
        platform_lang = g["meta:template"].split(";")
        ok = True
        if flags & 0x2:
            ok &= product["product_code"] == from_part[:38]
        if flags & 0x20 and flags & 0x100:
            ok &= installed[:3] == base[:3]
        if flags & 0x1:
            ok &= product["language"] == int(platform_lang[1])
        if flags & 0x800:
            ok &= product["upgrade_code"] == upgrade
        if ok:
            return True
    return False


@pytest.mark.parametrize("version,language,upgrade,cached", [
    ("1.0.0.0", None, True, False),    # the RTM product the patches were built against
    ("1.0.1.0", None, True, False),    # after the LDR baseline patch
    ("0.9.0.0", None, True, False),    # older
    ("1.1.0.0", None, True, False),    # newer
    ("1.0.0.0", 1031, True, False),    # other language (the corpus' transforms ignore it)
    ("1.0.1.0", None, False, False),   # no upgrade code registered
    ("1.0.1.0", None, False, True),    # ... but the cached package has one
])
def test_check_patch_real_msps(hives, tmp_path, kind, capsys, version, language, upgrade,
                               cached):
    tree, facts, _ = app_tree(tmp_path, hives, version=version, language=language,
                              upgrade=upgrade, patches=False, cached=cached)
    t = TargetCase(kind, tree, tmp_path)
    msps = list(MSPS.values())
    records = run_json(capsys, "app", "check-patch", t.spec, *msps)
    assert [(r["patch"], r["product_code"]) for r in records] == \
        [(str(m), f["product_code"]) for m in msps
         for f in sorted(facts, key=lambda f: f["product_code"])]
    by_product = {f["product_code"]: f for f in facts}
    verdicts = {}
    for r in records:
        msp = next(m for m in msps if str(m) == r["patch"])
        want = expected_applicability(msp, by_product[r["product_code"]], tmp_path / "gsf")
        assert r["applicable"] is want, r
        assert r["patch_code"] == msiinfo_suminfo(msp)["Revision number (UUID)"][:38]
        if r["product_code"] != facts[0]["product_code"]:
            assert "is not a target" in r["reason"]
        else:
            verdicts[msp.stem] = want
            assert r["reason"].startswith("transform :" if want else "no transform")
    # the cases must tell versions apart: some patch applies exactly at the two versions
    # the patches were built for, none at the others (the oracle says which)
    assert any(verdicts.values()) is (version in ("1.0.0.0", "1.0.1.0") and
                                      (upgrade or cached))
    text = capsys.readouterr().out
    assert main(["app", "check-patch", t.spec, str(MSPS["gdr1"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(facts) and text == ""


def test_check_patch_hostile_inputs(hives, tmp_path, kind, capsys):
    from tests.servicing.msi_build import patch_summary, rebuild

    tree, facts, _ = app_tree(tmp_path, hives, patches=False)
    t = TargetCase(kind, tree, tmp_path)
    before = t.fingerprint()
    truncated = tmp_path / "truncated.msp"
    truncated.write_bytes(MSPS["gdr1"].read_bytes()[:4096])
    line = one_line_error(capsys, ["app", "check-patch", t.spec, str(truncated)], 3)
    assert str(truncated) in line and "compound file" in line
    line = one_line_error(capsys, ["app", "check-patch", t.spec, str(tmp_path / "no.msp")], 4)
    assert "no such patch file" in line
    line = one_line_error(capsys, ["app", "check-patch", t.spec, str(PRODUCT_MSI)], 3)
    assert "a Windows Installer package (.msi), not a patch" in line
    # 10,000 target product codes, the real one last: read in time, one record per product
    real = msiinfo_suminfo(MSPS["gdr1"])
    many = ";".join(f"{{{uuid.UUID(int=i)}}}".upper() for i in range(1, 10_000))
    si = patch_summary(many + ";" + real["Template"], real["Revision number (UUID)"],
                       ":rtm.2;:#rtm.2")
    msp = rebuild(MSPS["gdr1"], tmp_path / "many.msp", tmp_path / "w",
                  {"\x05SummaryInformation": si})
    records = run_json(capsys, "app", "check-patch", t.spec, msp)
    assert [(r["product_code"], r["applicable"]) for r in records] == \
        [(f["product_code"], f["product_code"] == facts[0]["product_code"])
         for f in sorted(facts, key=lambda f: f["product_code"])]
    assert t.fingerprint() == before


# Microsoft's MSITRANSFORM_VALIDATE_* table (Character Count Summary): the field flags
# name how much of the version is compared, the comparison flags how ("installed version
# < base version" ...). The corpus only has UPDATEVERSION | NEWEQUALBASEVERSION.
@pytest.mark.parametrize("flags,installed,base,ok", [
    (0x08, "1.9.9.9", "1.0.0.0", True),           # major only, equal by default
    (0x08, "2.0.0.0", "1.0.0.0", False),
    (0x10 | 0x100, "1.2.7.0", "1.2.0.0", True),   # major.minor equal
    (0x10 | 0x100, "1.3.0.0", "1.2.0.0", False),
    (0x20 | 0x40, "1.2.2.0", "1.2.3.0", True),    # installed < base
    (0x20 | 0x40, "1.2.3.0", "1.2.3.0", False),
    (0x20 | 0x80, "1.2.3.9", "1.2.3.0", True),    # <= (the 4th field is not compared)
    (0x20 | 0x200, "1.2.3.0", "1.2.3.0", True),   # >=
    (0x20 | 0x200, "1.2.2.0", "1.2.3.0", False),
    (0x20 | 0x400, "1.3.0.0", "1.2.3.0", True),   # >
    (0x20 | 0x400, "1.2.3.0", "1.2.3.0", False),
    (0x100, "5.0.0.0", "1.0.0.0", True),          # a comparison without a field: no check
    (0x20 | 0x100, "x.y", "1.0.0.0", False),      # not a version
])
def test_version_validation(flags, installed, base, ok):
    from servicing.features.msi_apps import Product
    from servicing.features.msi_patch import validate
    from servicing.formats.msp import Transform

    pc = "{FB94421B-7FA3-4495-A9D7-212099C19147}"
    t = Transform("t", flags, 0x1F, pc, base, pc, base, "", "Intel", ())
    _, problem = validate(t, Product(pc, version=installed, state=5))
    assert (problem is None) is ok, problem


def test_image_without_installer_registration(target, capsys):
    """windows_trees' SOFTWARE hive has no Classes\\Installer: nothing is listed."""
    assert run_json(capsys, "app", "list", target.spec) == []
    assert run_json(capsys, "app", "patches", target.spec) == []
    assert run_json(capsys, "app", "check-patch", target.spec, MSPS["gdr1"]) == []
    assert main(["app", "list", target.spec]) == 0
    assert capsys.readouterr().out == "No Windows Installer products are installed.\n"
    assert "not installed" in one_line_error(
        capsys, ["app", "info", target.spec, "--product-code",
                 "{FB94421B-7FA3-4495-A9D7-212099C19147}"], 4)
