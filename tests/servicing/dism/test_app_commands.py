"""DISM's application servicing commands on /Image:TARGET (a Windows tree with the real
MSIs registered, as a directory and as IMAGE.wim:1): DISM's labels (dism-reference.md
1.9, 3.3), records equal to `wimfs app ... --json`, DISM's codes."""

from __future__ import annotations

import json

import pytest

from tests.servicing.conftest import TargetCase
from tests.servicing.dism.conftest import dism, native_json
from tests.servicing.msi_fixture import MSPS, PRODUCT_MSI
from tests.servicing.test_msi_apps import app_tree

pytestmark = pytest.mark.skipif(not PRODUCT_MSI.exists(), reason="MSI corpus not found")

OK = "The operation completed successfully.\n"
INFO_LABELS = ["Product Code", "Product Name", "Product State", "Package Code",
               "Product Version", "Assignment Type", "Publisher", "Language",
               "Install Source", "Package Name", "Help Link", "Transforms", "Local Package",
               "Install Date"]
PATCH_LABELS = ["Patch Code", "Product Code", "Patch Name", "Patch State",
                "Patch Uninstallable", "Help Link", "Transforms", "Local Package",
                "Install Date"]


def body(out: str) -> str:
    return out.split("Image Version: 10.0.16299.125\n\n", 1)[1]


def labels(text: str) -> list[list[str]]:
    return [[ln.split(" : ")[0] for ln in block.splitlines()]
            for block in text.removesuffix(OK).strip("\n").split("\n\n") if block]


@pytest.fixture(params=["dir", "wim"])
def apps(request, hives, tmp_path):
    tree, facts, pfacts = app_tree(tmp_path, hives, version="1.0.1.0")
    return TargetCase(request.param, tree, tmp_path), facts, pfacts


# (DISM options, native `wimfs app` arguments, the labels of each record)
TABLE = [
    (["/Get-Apps"], ["list"], ["Product Code", "Product Name"]),
    (["/Get-AppInfo"], ["info"], INFO_LABELS),
    (["/Get-AppInfo", "/ProductCode:{pc}"], ["info", "--product-code", "{pc}"], INFO_LABELS),
    (["/Get-AppPatches"], ["patches"], ["Patch Code", "Product Code", "Patch Name"]),
    (["/Get-AppPatches", "/ProductCode:{pc}"], ["patches", "--product-code", "{pc}"],
     ["Patch Code", "Product Code", "Patch Name"]),
    (["/Get-AppPatchInfo"], ["patch-info"], PATCH_LABELS),
    (["/Get-AppPatchInfo", "/PatchCode:{x}", "/ProductCode:{pc}"],
     ["patch-info", "--patch-code", "{x}", "--product-code", "{pc}"], PATCH_LABELS),
]


def test_app_commands(apps):
    t, facts, pfacts = apps
    img = f"/Image:{t.spec}"
    values = {"pc": facts[0]["product_code"], "x": pfacts[0]["patch_code"]}
    for opts, native, want in TABLE:
        opts = [o.format(**values) for o in opts]
        rc, out = dism(img, *opts)
        assert rc == 0, out
        records = native_json("app", *[a.format(**values) for a in native], t.spec)
        assert records and labels(body(out)) == [want] * len(records), opts
        assert json.loads(dism(img, *opts, "--json")[1]) == records
        assert body(out).endswith(OK)
    rc, out = dism(img, "/Get-AppInfo", f"/ProductCode:{values['pc']}")
    assert f"Product Version : {facts[0]['version']}\n" in out
    assert "Assignment Type : 1 (Per-Machine)\n" in out
    rc, out = dism(img, "/Format:Table", "/Get-Apps")
    header = [ln for ln in out.splitlines() if ln.startswith("Product Code")]
    assert [c.strip() for c in header[0].split(" | ")] == ["Product Code", "Product Name"]


def test_check_app_patch(apps):
    t, facts, _ = apps
    img = f"/Image:{t.spec}"
    patches = [MSPS[n] for n in ("rtmldr", "gdr1", "ldr2")]
    args = [f"/PatchLocation:{p}" for p in patches]
    rc, out = dism(img, "/Check-AppPatch", *args)
    assert rc == 0, out
    records = native_json("app", "check-patch", t.spec, *patches)
    assert json.loads(dism(img, "/Check-AppPatch", *args, "--json")[1]) == records
    shown = [r for r in records if r["applicable"]]
    assert shown and len(shown) < len(records)
    assert body(out) == "".join(f"Patch Code : {r['patch_code']}\nProduct Code : "
                                f"{r['product_code']}\nPatch Name : {r['patch_name']}\n\n"
                                for r in shown) + OK


@pytest.mark.parametrize("args,code", [
    (["/Get-AppInfo", "/ProductCode:not-a-guid"], "87"),
    (["/Get-AppInfo", "/ProductCode:{00000000-0000-0000-0000-000000000001}"], "1605"),
    (["/Get-AppPatchInfo", "/PatchCode:{00000000-0000-0000-0000-000000000001}"], "1647"),
    (["/Check-AppPatch"], "87"),
    (["/Check-AppPatch", "/PatchLocation:PRODUCT_MSI"], "1636"),
    (["/Get-Apps", "/ProductCode:{00000000-0000-0000-0000-000000000001}"], "87"),
])
def test_app_command_errors(apps, args, code):
    t, _, _ = apps
    before = t.fingerprint()
    rc, out = dism(f"/Image:{t.spec}", *[a.replace("PRODUCT_MSI", str(PRODUCT_MSI)) for a in args])
    assert rc != 0 and f"\nError: {code}\n\n" in out and "Traceback" not in out, out
    assert t.fingerprint() == before
