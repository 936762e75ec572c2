"""`wimfs edition get|targets|set|product-key` on fixture trees, as a directory and as
IMAGE.wim:1; values read back with hivexget, the answer file with lxml, and the committed
WIM's XML with wimlib-imagex.

Facts the fixtures rest on:

* Windows 8+ keeps the editions an image can become as
  ``Windows\\servicing\\Editions\\<X>Edition.xml`` and the current edition's file as
  ``Windows\\<X>.xml`` (the virtual-edition scripts copy the one to the other:
  abbodi1406's uup-converter create_virtual_editions, and the EnterpriseG conversion
  scripts); the edition files' content does not matter here, only that it is copied;
* Windows 7 editions are CBS packages ``Microsoft-Windows-<X>Edition~31bf3856ad364e35~
  <arch>~~6.1.7601.17514`` in ``Component Based Servicing\\Packages`` with
  ``CurrentState`` 0x70 (installed) or 0x40 (staged) (dism-reference.md 2.3;
  Set-WindowsCbsEdition's package pattern).
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from lxml import etree

from servicing.regf import REG_DWORD, Hive
from tests.servicing.conftest import TargetCase
from tests.servicing.test_winpe import wimfs
from windows_trees import SOFTWARE_7, software_hive, windows_tree

CV = "\\Microsoft\\Windows NT\\CurrentVersion"
CBS = "Microsoft\\Windows\\CurrentVersion\\Component Based Servicing\\Packages"
EDITIONS = ["Professional", "Education", "Enterprise", "ProfessionalEducation",
            "ProfessionalWorkstation", "ServerRdsh"]
NS = "{urn:schemas-microsoft-com:unattend}"


def hivexget(hive, key, name) -> str | None:
    r = subprocess.run(["hivexget", str(hive), key, name], capture_output=True, text=True)
    return r.stdout.rstrip("\n") if r.returncode == 0 else None


def edition_tree(root, hives):
    tree = windows_tree(root, hives, "10clean")
    folder = tree / "Windows/servicing/Editions"
    folder.mkdir(parents=True)
    for e in EDITIONS:
        (folder / f"{e}Edition.xml").write_text(
            f'<?xml version="1.0"?>\n<unattend xmlns="urn:schemas-microsoft-com:unattend">'
            f"<!-- {e} --></unattend>\n")
    (folder / "UpgradeMatrix.xml").write_text("<TmiMatrix/>")
    (tree / "Windows/Professional.xml").write_bytes(
        (folder / "ProfessionalEdition.xml").read_bytes())
    return tree


@pytest.fixture(params=["dir", "wim"])
def win10(request, hives, tmp_path) -> TargetCase:
    return TargetCase(request.param, edition_tree(tmp_path / "tree", hives), tmp_path)


def _json(*argv) -> dict:
    r = wimfs(*argv, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_get_and_targets(win10):
    doc = _json("edition", "get", win10.spec)
    assert doc["edition"] == "Professional" and doc["layout"] == "8+"
    assert doc["composition_edition"] is None
    assert _json("edition", "targets", win10.spec)["targets"] == \
        sorted(e for e in EDITIONS if e != "Professional")


def _wim_info(wim) -> dict[str, str]:
    out = subprocess.run(["wimlib-imagex", "info", str(wim), "1"], capture_output=True,
                         text=True, check=True).stdout
    return dict(re.findall(r"^([A-Za-z ]+?):\s+(.*)$", out, re.M))


@pytest.mark.parametrize("new,name", [("Education", "Windows 10 Education"),
                                      ("ProfessionalWorkstation",
                                       "Windows 10 Pro for Workstations"),
                                      ("ServerRdsh", "Windows 10 Enterprise multi-session")])
def test_set(win10, new, name):
    editions = win10.tree() / "Windows/servicing/Editions"
    edition_file = (editions / f"{new}Edition.xml").read_bytes()
    r = wimfs("edition", "set", win10.spec, new.lower())
    assert r.returncode == 0, r.stderr
    tree = win10.tree()
    sw = tree / "Windows/System32/config/SOFTWARE"
    assert hivexget(sw, CV, "EditionID") == new
    assert hivexget(sw, CV, "ProductName") == name
    assert hivexget(sw, CV, "CompositionEditionID") == "Professional"
    assert (tree / f"Windows/{new}.xml").read_bytes() == edition_file
    assert not (tree / "Windows/Professional.xml").exists()
    doc = _json("edition", "get", win10.spec)
    assert doc["edition"] == new and "Professional" in doc["targets"]
    if win10.wim is not None:
        info = _wim_info(win10.wim)
        assert info["Flags"] == new and info["Edition ID"] == new
        assert info["Product Name"] == name, info


def test_composition_edition_kept(hives, tmp_path):
    tree = edition_tree(tmp_path / "t", hives)
    sw = tree / "Windows/System32/config/SOFTWARE"
    with Hive.open(sw, write=True) as h:
        h.key(CV[1:]).set_value("CompositionEditionID", 1, "Enterprise")
    assert wimfs("edition", "set", tree, "Education").returncode == 0
    assert hivexget(sw, CV, "CompositionEditionID") == "Enterprise"


def _product_key(tree) -> list[tuple[str, str, str]]:
    root = etree.parse(str(tree / "Windows/Panther/unattend.xml"),
                       etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
    return [(s.get("pass"), c.get("name"), c.findtext(f"{NS}ProductKey"))
            for s in root.iter(f"{NS}settings") for c in s.iter(f"{NS}component")]


KEY = "VK7JG-NPHTM-C97JM-9MPGT-3V66T"


def test_set_with_product_key(win10):
    r = wimfs("edition", "set", win10.spec, "Enterprise", "--product-key", KEY.lower())
    assert r.returncode == 0, r.stderr
    tree = win10.tree()
    assert _product_key(tree) == [("specialize", "Microsoft-Windows-Shell-Setup", KEY)]
    assert hivexget(tree / "Windows/System32/config/SOFTWARE", CV, "EditionID") == \
        "Enterprise"


def test_product_key_merges_into_answer_file(hives, tmp_path):
    tree = edition_tree(tmp_path / "t", hives)
    panther = tree / "Windows/Panther"
    panther.mkdir()
    (panther / "unattend.xml").write_text(
        '<?xml version="1.0"?><unattend xmlns="urn:schemas-microsoft-com:unattend">'
        '<settings pass="oobeSystem"><component name="Microsoft-Windows-Shell-Setup" '
        'processorArchitecture="amd64"><TimeZone>UTC</TimeZone></component></settings>'
        '<settings pass="specialize"><component name="Microsoft-Windows-Shell-Setup" '
        'processorArchitecture="amd64"><ProductKey>OLD</ProductKey><ComputerName>pc'
        '</ComputerName></component></settings></unattend>')
    assert wimfs("edition", "product-key", tree, KEY).returncode == 0
    assert _product_key(tree) == [("oobeSystem", "Microsoft-Windows-Shell-Setup", None),
                                  ("specialize", "Microsoft-Windows-Shell-Setup", KEY)]
    assert "<ComputerName>pc</ComputerName>" in (panther / "unattend.xml").read_text()


BAD_KEYS = ["VK7JG-NPHTM-C97JM-9MPGT", "VK7JG-NPHTM-C97JM-9MPGT-3V66",
            "VK7JGNPHTMC97JM9MPGT3V66T",
            "AK7JG-NPHTM-C97JM-9MPGT-3V66T", "VK7JG-NPHTM-C97JM-9MPGT-3V660",
            "VK7JG-NPHTM-C97JM-9MPGT-3V661", "VK7JG-NPHTM-C97JM-9MPGT-3V665",
            "VK7JG-LPHTM-C97JM-9MPGT-3V66T", "VK7JG-NPHTM-C97JM-9MPGT-3V66N",
            "VK7JG NPHTM C97JM 9MPGT 3V66T"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_product_keys(win10, key):
    before = win10.fingerprint()
    r = wimfs("edition", "set", win10.spec, "Education", "--product-key", key)
    assert r.returncode == 2 and "not a Windows product key" in r.stderr, r.stderr
    assert win10.fingerprint() == before


@pytest.mark.parametrize("edition", ["Ultimate", "Professional", "Core"])
def test_not_a_target(win10, edition):
    before = win10.fingerprint()
    r = wimfs("edition", "set", win10.spec, edition)
    assert r.returncode == 8 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert win10.fingerprint() == before


def test_winpe_refused(hives, tmp_path):
    tree = edition_tree(tmp_path / "t", hives)
    software_hive(tree / "Windows/System32/config/SOFTWARE",
                  {"CurrentVersion": (1, "6.3"), "CurrentMajorVersionNumber": (4, 10),
                   "CurrentMinorVersionNumber": (4, 0), "CurrentBuildNumber": (1, "16299"),
                   "EditionID": (1, "Professional")}, winpe=True)
    for argv in (["get", tree], ["set", tree, "Education"]):
        r = wimfs("edition", *argv)
        assert r.returncode == 9 and "Windows PE" in r.stderr


def win7_tree(root, hives, installed="Professional", staged=("Ultimate", "Enterprise")):
    tree = windows_tree(root, hives, "7")
    sw = tree / "Windows/System32/config/SOFTWARE"
    software_hive(sw, SOFTWARE_7 | {"EditionID": (1, installed),
                                    "ProductName": (1, f"Windows 7 {installed}")})
    with Hive.open(sw, write=True) as h:
        for e, state in [(installed, 0x70)] + [(s, 0x40) for s in staged]:
            h.create_key(f"{CBS}\\Microsoft-Windows-{e}Edition~31bf3856ad364e35~x86~~"
                         "6.1.7601.17514").set_value("CurrentState", REG_DWORD, state)
        h.create_key(f"{CBS}\\Package_for_KB976902~31bf3856ad364e35~x86~~6.1.1.17514") \
            .set_value("CurrentState", REG_DWORD, 0x70)
    return tree


@pytest.mark.parametrize("kind", ["dir", "wim"])
def test_windows7_get_and_targets(hives, tmp_path, kind):
    case = TargetCase(kind, win7_tree(tmp_path / "t", hives), tmp_path)
    doc = _json("edition", "get", case.spec)
    assert doc["edition"] == "Professional" and doc["layout"] == "7"
    assert doc["package"] == ("Microsoft-Windows-ProfessionalEdition~31bf3856ad364e35~x86~~"
                              "6.1.7601.17514")
    assert _json("edition", "targets", case.spec)["targets"] == ["Enterprise", "Ultimate"]


@pytest.mark.parametrize("kind", ["dir", "wim"])
def test_windows7_set_runs_at_first_boot(hives, tmp_path, kind):
    """The package switch is a servicing answer file that the image's DISM applies online
    at first boot: install the staged target package, remove the installed one."""
    case = TargetCase(kind, win7_tree(tmp_path / "t", hives), tmp_path)
    doc = _json("edition", "set", case.spec, "ultimate")
    assert doc["edition"]["pending"] == ["Ultimate"]
    actions = _json("firstboot", "list", case.spec)
    actions = actions if isinstance(actions, list) else actions["entries"]
    [entry] = [a for a in actions if a["name"] == "edition-Ultimate"]
    assert "Dism.exe /Online /NoRestart /Apply-Unattend:" in entry["command"]
    assert entry["reboot"] is True
    tree = case.tree()
    xml = etree.parse(str(tree / "Windows/wimfs/Edition/Ultimate.xml"),
                      etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
    got = [(p.get("action"), dict(p.find(f"{NS}assemblyIdentity").attrib))
           for p in xml.iter(f"{NS}package")]

    def identity(e):
        return {"name": f"Microsoft-Windows-{e}Edition", "version": "6.1.7601.17514",
                "processorArchitecture": "x86", "publicKeyToken": "31bf3856ad364e35",
                "language": "neutral"}
    assert got == [("install", identity("Ultimate")), ("remove", identity("Professional"))]
    # the registry is left to the servicing stack: EditionID still the old one
    assert hivexget(tree / "Windows/System32/config/SOFTWARE", CV, "EditionID") == \
        "Professional"


@pytest.mark.parametrize("kind", ["dir", "wim"])
def test_edition_matrix_limits_targets(hives, tmp_path, kind):
    """With an EditionMatrix.xml (Edition ID -> Target IDs), only the targets it lists for
    the current edition that have an edition file are offered; others are refused (8)."""
    tree = edition_tree(tmp_path / "t", hives)
    (tree / "Windows/servicing/Editions/EditionMatrix.xml").write_text(
        '<?xml version="1.0"?><TmiMatrix><Edition ID="Core"><Target ID="Professional"/>'
        '</Edition><Edition ID="Professional"><Target ID="Education"/>'
        '<Target ID="ProfessionalWorkstation"/><Target ID="Ultimate"/></Edition>'
        '</TmiMatrix>')
    case = TargetCase(kind, tree, tmp_path)
    assert _json("edition", "targets", case.spec)["targets"] == \
        ["Education", "ProfessionalWorkstation"]
    before = case.fingerprint()
    assert wimfs("edition", "set", case.spec, "Enterprise").returncode == 8
    assert case.fingerprint() == before


LAUGHS = ('<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa">' +
          "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'
                  for i in range(8)) + ']>')


@pytest.mark.parametrize("doc", [
    LAUGHS + '<TmiMatrix><Edition ID="Professional"><Target ID="&i;"/></Edition></TmiMatrix>',
    '<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    '<TmiMatrix><Edition ID="Professional"><Target ID="Education"/></Edition></TmiMatrix>',
    "<TmiMatrix><Edition",
])
def test_hostile_edition_matrix(hives, tmp_path, doc):
    tree = edition_tree(tmp_path / "t", hives)
    (tree / "Windows/servicing/Editions/EditionMatrix.xml").write_text(doc)
    r = wimfs("edition", "targets", tree)
    assert r.returncode == 1 and "EditionMatrix.xml" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_hostile_answer_file(hives, tmp_path):
    tree = edition_tree(tmp_path / "t", hives)
    (tree / "Windows/Panther").mkdir()
    (tree / "Windows/Panther/unattend.xml").write_text(
        LAUGHS + '<unattend xmlns="urn:schemas-microsoft-com:unattend">&i;</unattend>')
    from windows_trees import tree_fingerprint
    before = tree_fingerprint(tree)
    r = wimfs("edition", "product-key", tree, KEY)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert tree_fingerprint(tree) == before
