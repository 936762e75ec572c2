"""``wimfs image-info`` on trees built from the real corpus hives (Windows 7 and 10
SYSTEM, Windows 10 DEFAULT/NTUSER.DAT, a SOFTWARE hive written by our regf writer from
documented values, see windows_trees.py), on a directory and on ``IMAGE.wim:1``, and on
the corpus WIMs, which hold no Windows."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from servicing.errors import EXIT_REFUSED, UnsupportedWindowsError
from servicing.features.image_info import ImageInfo, image_info, require_serviceable
from servicing.regf import REG_SZ
from servicing.target.directory import DirTarget
from tests.helpers import corpus_dir, wimlib_capture
from windows_trees import SOFTWARE_7, SOFTWARE_10, software_hive, windows_tree

EXPECTED = {
    "7": {"version": "6.1.7601.17514", "kernel_version": "6.1.7601.17514",
          "architecture": "x86", "product_name": "Windows 7 Ultimate",
          "edition_id": "Ultimate", "installation_type": "Client", "winpe": False,
          "system_root": "Windows", "languages": ["en-US"], "layout": "7"},
    "10": {"version": "10.0.16299.125", "kernel_version": "10.0.16299.125",
           "architecture": "amd64", "product_name": "Windows 10 Pro",
           "edition_id": "Professional", "installation_type": "Client", "winpe": False,
           "system_root": "Windows", "languages": ["en-US"], "layout": "8+"},
}


def wimfs(*argv):
    return subprocess.run([sys.executable, "-m", "wimfs", *map(str, argv)],
                          capture_output=True, text=True)


def as_target(tree, kind, tmp_path):
    if kind == "dir":
        return str(tree)
    return str(wimlib_capture(tree, tmp_path / "x.wim", compress="xpress")) + ":1"


@pytest.mark.parametrize("kind", ["dir", "wim"])
@pytest.mark.parametrize("flavor", ["7", "10"])
def test_image_info(hives, tmp_path, kind, flavor):
    tree = windows_tree(tmp_path / "t", hives, flavor)
    r = wimfs("image-info", as_target(tree, kind, tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == EXPECTED[flavor]


def test_minint_alone_is_not_winpe(hives, tmp_path):
    """The corpus Windows 10 SYSTEM hive has Control\\MiniNT; the image is still not PE."""
    tree = windows_tree(tmp_path / "t", hives, "10")
    system = tree / "Windows/System32/config/SYSTEM"
    r = subprocess.run(["hivexget", system, "\\ControlSet001\\Control\\MiniNT",
                        "AllowRefsFormatOverNoMirrorVolume"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    info = json.loads(wimfs("image-info", tree, "--json").stdout)
    assert info["winpe"] is False and info["installation_type"] == "Client"


@pytest.mark.parametrize("kind", ["dir", "wim"])
def test_winpe_and_no_kernel(hives, tmp_path, kind):
    tree = windows_tree(tmp_path / "t", hives, "10clean", kernel=False)
    software_hive(tree / "Windows/System32/config/SOFTWARE", SOFTWARE_10, winpe=True)
    r = wimfs("image-info", as_target(tree, kind, tmp_path), "--json")
    info = json.loads(r.stdout)
    assert info["winpe"] is True and info["installation_type"] == "WindowsPE"
    # no ntoskrnl.exe: version from SOFTWARE, architecture from PROCESSOR_ARCHITECTURE
    assert info["version"] == "10.0.16299.125" and info["kernel_version"] is None
    assert info["architecture"] == "amd64"


def test_windir_and_text_output(hives, tmp_path):
    tree = windows_tree(tmp_path / "t", hives, "7", windir="WINNT")
    r = wimfs("image-info", tree)
    assert r.returncode == 9 and "no Windows installation found" in r.stderr
    r = wimfs("image-info", tree, "--windir", "winnt")
    assert r.returncode == 0, r.stderr
    assert "Version : 6.1.7601.17514" in r.stdout and "System root : WINNT" in r.stdout


def test_refuses_xp_and_unknown_architecture(hives, tmp_path):
    tree = windows_tree(tmp_path / "t", hives, "7", kernel=False)
    xp = dict(SOFTWARE_7, CurrentVersion=(REG_SZ, "5.1"), CurrentBuildNumber=(REG_SZ, "2600"))
    software_hive(tree / "Windows/System32/config/SOFTWARE", xp)
    with DirTarget(str(tree)) as t:
        info = image_info(t)
    assert info.version == "5.1.2600.0" and info.layout is None
    with pytest.raises(UnsupportedWindowsError, match="XP"):
        require_serviceable(info)
    with pytest.raises(UnsupportedWindowsError, match="architecture") as e:
        require_serviceable(ImageInfo(version="6.1.7601.0"))
    assert e.value.exit_code == EXIT_REFUSED
    assert require_serviceable(ImageInfo(version="6.0.6002.0", architecture="x86"))


CORPUS_WIMS = ["sevenzipjbinding/simple_simple1.dat.0.wim", "pebakery/LZX.wim",
               "pebakery/XPRESS.wim", "macpacker/defaultArchive.wim"]


@pytest.mark.parametrize("name", CORPUS_WIMS)
def test_corpus_wims_hold_no_windows(name):
    wim = corpus_dir() / "wim" / name
    if not wim.exists():
        pytest.skip(f"{wim} not in the corpus")
    r = wimfs("image-info", f"{wim}:1")
    assert r.returncode == EXIT_REFUSED
    assert r.stderr.startswith("wimfs: error: no Windows installation found")
    assert r.stderr.count("\n") == 1
