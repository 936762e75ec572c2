"""The XML WINDOWS element of a captured Windows tree, against wimlib's capture."""

from __future__ import annotations

import struct

import pytest
from lxml import etree

from tests.helpers.wimlib import wimlib_capture, wimlib_xml
from tests.image.conftest import wimfs

pytestmark = pytest.mark.usefixtures("need_wimlib")


def _pe(machine: int) -> bytes:
    mz = bytearray(0x40)
    mz[0:2] = b"MZ"
    struct.pack_into("<I", mz, 0x3C, 0x40)
    return bytes(mz) + b"PE\0\0" + struct.pack("<H", machine) + bytes(200)


def _windows_tree(root, *, legacy: bool = False):
    regf = pytest.importorskip("servicing.regf")
    s32 = root / "Windows" / "System32"
    (s32 / "config").mkdir(parents=True)
    (s32 / "kernel32.dll").write_bytes(_pe(0x8664))
    (root / "Program Files").mkdir()
    (root / "Program Files" / "x.txt").write_text("x")
    with regf.Hive.create(s32 / "config" / "SOFTWARE") as h:
        k = h.root.create_key("Microsoft\\Windows NT\\CurrentVersion")
        k.set_value("ProductName", regf.REG_SZ, "Windows 10 Pro")
        k.set_value("EditionID", regf.REG_SZ, "Professional")
        k.set_value("InstallationType", regf.REG_SZ, "Client")
        if legacy:
            k.set_value("CurrentVersion", regf.REG_SZ, "6.1")
            k.set_value("CurrentBuild", regf.REG_SZ, "1.511.1 () (Obsolete data - do not use)")
            k.set_value("CurrentBuildNumber", regf.REG_SZ, "7601")
        else:
            k.set_value("CurrentVersion", regf.REG_SZ, "6.3")
            k.set_value("CurrentMajorVersionNumber", regf.REG_DWORD, 10)
            k.set_value("CurrentMinorVersionNumber", regf.REG_DWORD, 0)
            k.set_value("CurrentBuild", regf.REG_SZ, "19041")
    with regf.Hive.create(s32 / "config" / "SYSTEM") as h:
        h.root.create_key("Select").set_value("Current", regf.REG_DWORD, 1)
        c = "ControlSet001\\Control"
        w = h.root.create_key(c + "\\Windows")
        w.set_value("CSDBuildNumber", regf.REG_DWORD, 1)
        w.set_value("CSDVersion", regf.REG_DWORD, 0x100 if legacy else 0)
        po = h.root.create_key(c + "\\ProductOptions")
        po.set_value("ProductType", regf.REG_SZ, "WinNT")
        po.set_value("ProductSuite", regf.REG_MULTI_SZ, ["Terminal Server"])
        h.root.create_key(c + "\\Class\\{4D36E966-E325-11CE-BFC1-08002BE10318}\\0000") \
            .set_value("MatchingDeviceId", regf.REG_SZ, "acpiapic")
        h.root.create_key(c + "\\MUI\\UILanguages\\en-US")
        h.root.create_key(c + "\\MUI\\UILanguages\\de-DE")
        h.root.create_key(c + "\\Nls\\Language").set_value("InstallLanguage", regf.REG_SZ,
                                                          "0409")
    return root


def _image_el(xml: str):
    root = etree.fromstring(xml.encode())
    return root.find("IMAGE")


def _canon(el) -> dict:
    def walk(e, prefix=""):
        out = {}
        for c in e:
            key = prefix + c.tag
            if len(c):
                out.update(walk(c, key + "/"))
            else:
                out.setdefault(key, []).append((c.text or "").strip())
        return out
    return walk(el)


@pytest.mark.parametrize("legacy", [False, True], ids=["win10", "win7"])
def test_windows_element_matches_wimlib(tmp_path, legacy):
    src = _windows_tree(tmp_path / "src", legacy=legacy)
    ours, theirs = tmp_path / "ours.wim", tmp_path / "theirs.wim"
    wimfs("capture", src, ours, "--name", "W", "-q")
    wimlib_capture(src, theirs, name="W")
    a, b = _image_el(wimlib_xml(ours)), _image_el(wimlib_xml(theirs))
    wa, wb = a.find("WINDOWS"), b.find("WINDOWS")
    assert wb is not None and wa is not None
    ca, cb = _canon(wa), _canon(wb)
    # LANGUAGE order follows the hive's subkey order in both
    ca["LANGUAGES/LANGUAGE"] = sorted(ca.get("LANGUAGES/LANGUAGE", []))
    cb["LANGUAGES/LANGUAGE"] = sorted(cb.get("LANGUAGES/LANGUAGE", []))
    assert ca == cb
    for tag in ("FLAGS", "DISPLAYNAME", "DISPLAYDESCRIPTION"):
        assert a.findtext(tag) == b.findtext(tag), tag


def test_no_windows_element_for_plain_trees(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("x")
    wimfs("capture", tmp_path / "src", tmp_path / "p.wim", "-q")
    assert _image_el(wimlib_xml(tmp_path / "p.wim")).find("WINDOWS") is None


def test_commit_keeps_the_element_unless_its_files_change(tmp_path):
    """A commit re-reads the WINDOWS element only when kernel32.dll, SOFTWARE or SYSTEM
    changed: a sentinel set with wimlib-imagex survives an unrelated edit and is replaced
    by the hive's value once SOFTWARE is edited (wimlib's capture of the edited tree is
    the oracle for the rebuilt element)."""
    import subprocess

    src = _windows_tree(tmp_path / "src")
    wim = tmp_path / "w.wim"
    wimfs("capture", src, wim, "--name", "W", "-q")
    subprocess.run(["wimlib-imagex", "info", str(wim), "1", "--image-property",
                    "WINDOWS/EDITIONID=Sentinel"], check=True, capture_output=True)
    (tmp_path / "new.txt").write_text("unrelated")
    wimfs("update", f"{wim}:1", "--add", tmp_path / "new.txt", "/Program Files/new.txt")
    assert _image_el(wimlib_xml(wim)).findtext("WINDOWS/EDITIONID") == "Sentinel"

    key = "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion"
    wimfs("reg", f"{wim}:1", "add", key, "/v", "EditionID", "/t", "REG_SZ", "/d",
          "Enterprise", "/f")
    regf = pytest.importorskip("servicing.regf")
    with regf.Hive.open(src / "Windows/System32/config/SOFTWARE", write=True) as h:
        h.key("Microsoft\\Windows NT\\CurrentVersion").set_value(
            "EditionID", regf.REG_SZ, "Enterprise")
    theirs = tmp_path / "theirs.wim"
    wimlib_capture(src, theirs, name="W")
    ours_el = _image_el(wimlib_xml(wim)).find("WINDOWS")
    theirs_el = _image_el(wimlib_xml(theirs)).find("WINDOWS")
    assert ours_el.findtext("EDITIONID") == "Enterprise"
    assert _canon(ours_el) == _canon(theirs_el) | {
        "LANGUAGES/LANGUAGE": _canon(ours_el)["LANGUAGES/LANGUAGE"]}
    assert sorted(_canon(ours_el)["LANGUAGES/LANGUAGE"]) == \
        sorted(_canon(theirs_el)["LANGUAGES/LANGUAGE"])


def test_editions_sharing_a_hive_read_it_once_and_each_get_its_own_element(tmp_path,
                                                                          monkeypatch):
    """Two editions (SOFTWARE EditionID differs, SYSTEM the same): one SYSTEM edit on
    `IMAGE.wim:all` gives both images the same new SYSTEM hive; the commit reads its
    fields once, and each image's WINDOWS element still equals wimlib's capture of that
    edition's edited tree."""
    from servicing.features import windows_info as wi
    regf = pytest.importorskip("servicing.regf")
    trees = []
    for n, edition in enumerate(("Professional", "Enterprise")):
        t = _windows_tree(tmp_path / f"src{n}")
        with regf.Hive.open(t / "Windows/System32/config/SOFTWARE", write=True) as h:
            h.key("Microsoft\\Windows NT\\CurrentVersion").set_value(
                "EditionID", regf.REG_SZ, edition)
        trees.append(t)
    system = "Windows/System32/config/SYSTEM"
    (trees[1] / system).write_bytes((trees[0] / system).read_bytes())   # shared by both
    wim = tmp_path / "two.wim"
    wimfs("capture", trees[0], wim, "--name", "A", "-q")
    wimfs("append", trees[1], wim, "--name", "B", "-q")
    calls = []
    real = wi._from_system

    def counting(p, data):
        calls.append(len(data))
        return real(p, data)

    monkeypatch.setattr(wi, "_from_system", counting)
    from servicing.cli import reg_main
    assert reg_main([f"{wim}:all", "add", "HKLM\\SYSTEM\\ControlSet001\\Control\\Windows",
                     "/v", "CSDVersion", "/t", "REG_DWORD", "/d", "512", "/f"]) == 0
    for n, t in enumerate(trees):
        with regf.Hive.open(t / "Windows/System32/config/SYSTEM", write=True) as h:
            h.key("ControlSet001\\Control\\Windows").set_value("CSDVersion", regf.REG_DWORD,
                                                              512)
        theirs = tmp_path / f"theirs{n}.wim"
        wimlib_capture(t, theirs, name="X")
        ours_el = etree.fromstring(wimlib_xml(wim).encode()).findall("IMAGE")[n]
        wa, wb = ours_el.find("WINDOWS"), _image_el(wimlib_xml(theirs)).find("WINDOWS")
        ca, cb = _canon(wa), _canon(wb)
        ca["LANGUAGES/LANGUAGE"] = sorted(ca["LANGUAGES/LANGUAGE"])
        cb["LANGUAGES/LANGUAGE"] = sorted(cb["LANGUAGES/LANGUAGE"])
        assert ca == cb and ca["VERSION/SPLEVEL"] == ["2"]
    assert len(calls) == 1           # the one edited SYSTEM hive, read for both images
