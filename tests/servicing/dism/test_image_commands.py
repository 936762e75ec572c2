"""DISM's /Image commands on a Windows tree built from the corpus hives, as a directory
and mount-free as IMAGE.wim:1 (the `target` fixture): `Image Version:` under the banner,
DISM's labels, the records equal to `wimfs image-info --json`, the servicing log."""

from __future__ import annotations

import json

import pytest

from tests.servicing.dism.conftest import dism, native_json

BANNER = "\nDeployment Image Servicing and Management tool\nVersion: "


def test_get_current_edition(target, tmp_path):
    log = tmp_path / "dism.log"
    rc, out = dism(f"/Image:{target.spec}", "/Get-CurrentEdition", f"/LogPath:{log}")
    assert rc == 0, out
    # windows_trees.SOFTWARE_10: CurrentMajor/Minor 10.0, build 16299, UBR 125,
    # EditionID Professional; dism-reference.md 2.3 and 3.1 for the layout.
    assert out.startswith(BANNER)
    assert out.split("\n", 4)[4] == ("Image Version: 10.0.16299.125\n\nCurrent edition is:\n\n"
                                     "Current Edition : Professional\n\n"
                                     "The operation completed successfully.\n")
    rc, js = dism(f"/Image:{target.spec}", "/Get-CurrentEdition", "--json")
    assert json.loads(js) == native_json("image-info", target.spec)
    text = log.read_text()
    assert "image-info" in text and "command line: " in text


def test_windir(hives, tmp_path):
    from windows_trees import windows_tree

    tree = windows_tree(tmp_path / "t", hives, "10", windir="WINNT")
    rc, out = dism(f"/Image:{tree}", "/WinDir:WINNT", "/Get-CurrentEdition")
    assert rc == 0 and "Current Edition : Professional\n" in out
    rc, out = dism(f"/Image:{tree}", "/Get-CurrentEdition")
    assert rc == 50 and "\nError: 50\n\n" in out       # no Windows folder: not supported


@pytest.mark.parametrize("args,code", [
    (["/Get-CurrentEdition"], "87"),                        # needs /Image
    (["/Online", "/Get-CurrentEdition"], "50"),
    (["/Image:{d}/missing", "/Get-CurrentEdition"], "2"),
    (["/Image:{d}/missing", "/Get-ProvisionedAppxPackages"], "87"),  # not built: unknown
])
def test_image_errors(tmp_path, args, code):
    rc, out = dism(*[a.format(d=tmp_path) for a in args])
    assert rc == int(code) and f"\nError: {code}\n\n" in out
    assert "Traceback" not in out


def test_get_imageinfo_windows_fields(hives, tmp_path):
    """The detail labels of /Get-ImageInfo /Index read the WINDOWS element that wimlib
    reads back from the WIM's XML (anchors.md 2.3 label -> XML field)."""
    from lxml import etree

    from tests.helpers import wimlib_xml
    from tests.servicing.dism.conftest import dism as run
    from windows_trees import windows_tree

    tree = windows_tree(tmp_path / "t", hives, "10")
    wim = tmp_path / "w.wim"
    from wimfs.cli import main
    assert main(["capture", str(tree), str(wim), "--name", "Win", "-q"]) == 0
    win = etree.fromstring(wimlib_xml(wim).encode()).find("IMAGE/WINDOWS")

    def x(path):
        return win.findtext(path)

    rc, out = run("/Get-ImageInfo", f"/ImageFile:{wim}", "/Index:1")
    assert rc == 0
    expected = [
        "Hal : " + x("HAL"),
        f"Version : {x('VERSION/MAJOR')}.{x('VERSION/MINOR')}.{x('VERSION/BUILD')}",
        "ServicePack Build : " + x("VERSION/SPBUILD"),
        "ServicePack Level : " + x("VERSION/SPLEVEL"), "Edition : " + x("EDITIONID"),
        "Installation : " + x("INSTALLATIONTYPE"), "ProductType : " + x("PRODUCTTYPE"),
        "ProductSuite : " + x("PRODUCTSUITE"), "System Root : " + x("SYSTEMROOT"),
        f"Languages :\n        {x('LANGUAGES/LANGUAGE')} (Default)"]
    assert x("LANGUAGES/DEFAULT") == x("LANGUAGES/LANGUAGE")
    for line in expected:
        assert f"\n{line}\n" in out, line
