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
    (["/Image:{d}/missing", "/Get-Packages"], "87"),        # not built: unknown option first
])
def test_image_errors(tmp_path, args, code):
    rc, out = dism(*[a.format(d=tmp_path) for a in args])
    assert rc == int(code) and f"\nError: {code}\n\n" in out
    assert "Traceback" not in out
