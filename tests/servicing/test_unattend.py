"""Answer files: `unattend check` and `unattend apply` (servicing.formats.unattend,
servicing.features.unattend) on a directory and on IMAGE.wim:1.

Expectations come from the answer files themselves, read here with the standard library's
xml.etree (passes, components, the offlineServicing settings and their lines), from the
corpus driver package (its INF lands in the driver store), and from the registry values
Microsoft documents for the offline settings, read back with hivexget:
EnableLUA -> SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Policies\\System EnableLUA
REG_DWORD ([MS-GPSB] 2.2.11.6); SanPolicy -> SYSTEM\\<control set>\\Services\\partmgr\\
Parameters SanPolicy REG_DWORD (where the corpus SYSTEM hives keep it; VDS_SAN_POLICY).
"""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import xml.etree.ElementTree as ET

import pytest

from servicing.errors import RefusedError, TargetPathError
from servicing.features.unattend import apply_answer_file, parse_path_maps, plan
from servicing.formats.unattend import MAX_FILE, UnattendError, parse
from servicing.target import open_target
from tests.servicing.conftest import TargetCase, corpus_dir
from tests.servicing.drivers_helpers import hivexget
from wimfs.cli import main
from windows_trees import windows_tree

NS = "urn:schemas-microsoft-com:unattend"
HEAD = (f'<?xml version="1.0" encoding="utf-8"?>\n<unattend xmlns="{NS}" '
        'xmlns:wcm="http://schemas.microsoft.com/WMIConfig/2002/State">\n')
COMP = ('<component name="{name}" processorArchitecture="{arch}" '
        'publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS">')
POLICIES = "\\Microsoft\\Windows\\CurrentVersion\\Policies\\System"


def corpus_files() -> list[pathlib.Path]:
    base = corpus_dir()
    return sorted((base.parent / "corpus" / "unattend").rglob("*.*")) if base else []


def answer(*components: tuple[str, str, str], servicing: str = "",
           pass_name: str = "offlineServicing") -> bytes:
    body = "".join(f'<settings pass="{pass_name}">{COMP.format(name=n, arch=a)}{x}'
                   "</component></settings>\n" for n, a, x in components)
    return (HEAD + servicing + body + "</unattend>\n").encode()


def _system(tree: pathlib.Path) -> pathlib.Path:
    return tree / "Windows/System32/config/SYSTEM"


def _software(tree: pathlib.Path) -> pathlib.Path:
    return tree / "Windows/System32/config/SOFTWARE"


def _apply(spec: str, data: bytes, tmp_path, **kw):
    with open_target(spec, write=True) as t:
        return apply_answer_file(t, data, "a.xml", base_dir=str(tmp_path), **kw)


def _current(system: pathlib.Path) -> str:
    return f"ControlSet{int(hivexget(system, chr(92) + 'Select', 'Current')):03d}"


def _stdlib_view(data: bytes):
    root = ET.fromstring(data)
    passes = [s.get("pass") for s in root.findall(f"{{{NS}}}settings")]
    offline = [c.get("name") for s in root.findall(f"{{{NS}}}settings")
               if s.get("pass") == "offlineServicing" for c in s]
    return list(dict.fromkeys(passes)), offline


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_files_pass_check(path, capsys):
    data = path.read_bytes()
    a = parse(data, str(path))
    passes, offline = _stdlib_view(data)
    assert a.passes == passes and a.errors == []
    assert [c.name for c in a.components if c.pass_name == "offlineServicing"] == offline
    text = data.decode("utf-8")
    for c in a.components:
        for s in c.settings:
            leaf = s.path.rsplit("/", 1)[-1].split("[")[0]
            line = text.splitlines()[s.line - 1]
            assert f"<{leaf}" in line, (s, line)
    assert main(["unattend", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.endswith("0 error(s)\n")


def _driver_folder(tmp_path) -> pathlib.Path:
    base = tmp_path / "configset" / "Drivers" / "Offline"
    shutil.copytree(corpus_dir() / "drivers" / "ViGEmBus" / "x64", base / "amd64")
    return tmp_path / "configset"


def _offline_expectations(data: bytes) -> tuple[list[tuple[str, str]], bool]:
    """(setting, value) of the amd64 offlineServicing components, and whether a component
    for another architecture is there (xml.etree)."""
    root = ET.fromstring(data)
    settings, other = [], False
    for s in root.findall(f"{{{NS}}}settings"):
        if s.get("pass") != "offlineServicing":
            continue
        for c in s:
            if c.get("processorArchitecture") != "amd64":
                other = True
                continue
            for el in c.iter():
                if len(el) == 0 and el is not c:
                    settings.append((el.tag.split("}")[1], (el.text or "").strip()))
    return settings, other


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_files_apply(target, tmp_path, path):
    data = path.read_bytes()
    configset = _driver_folder(tmp_path)
    maps = parse_path_maps([f"%configsetroot%={configset}"])
    result = _apply(target.spec, data, tmp_path, path_maps=maps)
    tree = target.tree()
    applied = [(i.setting.rsplit("/", 1)[-1], i.value) for i in result.items
               if i.status == "applied"]
    settings, other = _offline_expectations(data)
    assert applied == settings
    assert any(i.status == "other architecture" for i in result.items) == other
    for name, value in settings:
        if name == "Path":
            [added] = result.drivers
            assert added["status"] == "added" and added["original_name"] == "ViGEmBus.inf"
            store = tree / "Windows/System32/DriverStore/FileRepository" / added["store"]
            assert (store / "ViGEmBus.inf").read_bytes() == \
                (configset / "Drivers/Offline/amd64/ViGEmBus.inf").read_bytes()
        else:
            assert name == "EnableLUA"
            expected = {"true": "1", "false": "0"}[value.lower()]
            assert hivexget(_software(tree), POLICIES, "EnableLUA") == expected
    assert not (tree / "Windows/Panther").exists()        # not cached in the image


def _tree(tmp_path, hives) -> pathlib.Path:
    return windows_tree(tmp_path / "tree", hives, "10clean")


def test_directory_and_wim_give_the_same_result(hives, tmp_path):
    data = answer(("Microsoft-Windows-LUA-Settings", "amd64", "<EnableLUA>false</EnableLUA>"),
                  ("Microsoft-Windows-PartitionManager", "amd64", "<SanPolicy>4</SanPolicy>"))
    results = []
    for kind in ("dir", "wim"):
        case = TargetCase(kind, _tree(tmp_path / kind, hives), tmp_path / kind)
        _apply(case.spec, data, tmp_path, place=True)
        tree = case.tree()
        files = {str(p.relative_to(tree)): p.read_bytes() for p in sorted(tree.rglob("*"))
                 if p.is_file() and "config" not in p.parts}
        system = _system(tree)
        san = f"\\{_current(system)}\\Services\\partmgr\\Parameters"
        results.append((files, hivexget(_software(tree), POLICIES),
                        hivexget(system, san)))
    assert results[0] == results[1]
    files, policies, san = results[0]
    assert files["Windows/Panther/unattend.xml"] == data
    assert policies == '"EnableLUA"=dword:00000000'
    assert san == '"SanPolicy"=dword:00000004'


@pytest.mark.parametrize("value,dword", [("true", "1"), ("FALSE", "0")])
def test_enable_lua_values(target, tmp_path, value, dword):
    data = answer(("Microsoft-Windows-LUA-Settings", "amd64", f"<EnableLUA>{value}</EnableLUA>"))
    _apply(target.spec, data, tmp_path)
    assert hivexget(_software(target.tree()), POLICIES, "EnableLUA") == dword


def test_driver_paths_mapping(target, tmp_path):
    pkgs = tmp_path / "srv"
    shutil.copytree(corpus_dir() / "drivers" / "ViGEmBus" / "x64", pkgs / "deep" / "ViGEm")
    (tmp_path / "rel").mkdir()
    shutil.copytree(corpus_dir() / "drivers" / "ViGEmBus" / "x64", tmp_path / "rel" / "v")
    items = ('<DriverPaths>'
             '<PathAndCredentials wcm:action="add" wcm:keyValue="1"><Path>C:\\Drivers\\Deep'
             '</Path></PathAndCredentials>'
             '<PathAndCredentials wcm:action="add" wcm:keyValue="2"><Path>rel</Path>'
             '<Credentials><Domain>d</Domain><Username>u</Username><Password>p</Password>'
             '</Credentials></PathAndCredentials></DriverPaths>')
    data = answer(("Microsoft-Windows-PnpCustomizationsNonWinPE", "amd64", items))
    maps = parse_path_maps(["C:\\=/nonexistent", f"c:\\drivers={pkgs}"])
    result = _apply(target.spec, data, tmp_path, path_maps=maps)
    statuses = [(i.setting, i.status) for i in result.items]
    assert statuses[:2] == [("DriverPaths/PathAndCredentials[1]/Path", "applied"),
                            ("DriverPaths/PathAndCredentials[2]/Path", "applied")]
    assert {s for s, st in statuses[2:]} == {
        f"DriverPaths/PathAndCredentials[2]/Credentials/{n}"
        for n in ("Domain", "Username", "Password")}
    # the same package twice: added once, then found present
    assert [d["status"] for d in result.drivers] == ["added", "present"]
    before = target.fingerprint()
    with pytest.raises(TargetPathError, match=r"D:\\x has no --path-map"):
        _apply(target.spec, data.replace(b"C:\\Drivers\\Deep", b"D:\\x"), tmp_path,
               path_maps=maps)
    assert target.fingerprint() == before


def test_not_applied_listed_and_strict(target, tmp_path):
    accounts = ("<OfflineUserAccounts><OfflineLocalAccounts><LocalAccount wcm:action=\"add\">"
                "<Name>u</Name><Group>Users</Group></LocalAccount></OfflineLocalAccounts>"
                "</OfflineUserAccounts>")
    servicing = ('<servicing><package action="stage"><assemblyIdentity name="Pkg" '
                 'version="1.0" processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35"'
                 ' language="neutral"/><source location="C:\\p\\x.cab"/></package></servicing>')
    data = answer(("Microsoft-Windows-Shell-Setup", "amd64", accounts),
                  ("Microsoft-Windows-LUA-Settings", "amd64", "<EnableLUA>false</EnableLUA>"),
                  servicing=servicing)
    items = plan(parse(data))
    assert [(i.component, i.setting, i.status) for i in items] == [
        ("Microsoft-Windows-Shell-Setup",
         "OfflineUserAccounts/OfflineLocalAccounts/LocalAccount/Name", "not applied"),
        ("Microsoft-Windows-Shell-Setup",
         "OfflineUserAccounts/OfflineLocalAccounts/LocalAccount/Group", "not applied"),
        ("Microsoft-Windows-LUA-Settings", "EnableLUA", "applied"),
        ("package", "stage", "not applied")]
    before = target.fingerprint()
    with pytest.raises(RefusedError, match="--strict: not applied offline"):
        _apply(target.spec, data, tmp_path, strict=True)
    assert target.fingerprint() == before
    _apply(target.spec, data, tmp_path)
    assert hivexget(_software(target.tree()), POLICIES, "EnableLUA") == "0"


HOSTILE = {
    "billion laughs": b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
                      b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
                      b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>\n'
                      b'<unattend xmlns="' + NS.encode() + b'"><x>&lol3;</x></unattend>',
    "external entity": b'<?xml version="1.0"?>\n<!DOCTYPE u [<!ENTITY xxe SYSTEM '
                       b'"file:///etc/passwd">]>\n<unattend xmlns="' + NS.encode() +
                       b'"><x>&xxe;</x></unattend>',
    "external DTD": b'<?xml version="1.0"?>\n<!DOCTYPE unattend SYSTEM '
                    b'"http://127.0.0.1:9/unattend.dtd">\n<unattend xmlns="' + NS.encode() +
                    b'"/>',
    "50 MB attribute": HEAD.encode() + b'<settings pass="' + b"A" * (50 << 20) +
                       b'"/></unattend>',
    "wrong namespace": b'<unattend xmlns="urn:example:other"><settings pass="specialize"/>'
                       b"</unattend>",
    "asm.v3 namespace": b'<unattend xmlns="urn:schemas-microsoft-com:asm.v3">'
                        b'<settings pass="offlineServicing"/></unattend>',
    "unknown pass": HEAD.encode() + b'<settings pass="lateServicing"/></unattend>',
    "not xml": b"<unattend",
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_xml_one_error_nothing_changed(target, tmp_path, capsys, name):
    path = tmp_path / "hostile.xml"
    path.write_bytes(HOSTILE[name])
    before = target.fingerprint()
    rc = main(["unattend", "apply", target.spec, str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 3 and len(err) == 1, err
    assert "Traceback" not in err[0] and "/etc/passwd" not in err[0]
    assert target.fingerprint() == before
    with pytest.raises(UnattendError):
        with open_target(target.spec, write=True) as t:
            apply_answer_file(t, HOSTILE[name], "h.xml", base_dir=str(tmp_path))


def test_check_reports_problems_with_lines(tmp_path, capsys):
    text = (HEAD + '<settings pass="offlineServicing">\n'
            + COMP.format(name="Microsoft-Windows-PnpCustomizationsNonWinPE", arch="amd64")
            + '\n<DriverPaths>\n<PathAndCredentials wcm:action="add">\n<Path>C:\\d</Path>\n'
            '</PathAndCredentials>\n</DriverPaths>\n</component>\n</settings>\n'
            '<settings pass="bogusPass"/>\n</unattend>\n')
    path = tmp_path / "bad.xml"
    path.write_text(text)
    lines = text.splitlines()
    item = next(n for n, ln in enumerate(lines, 1) if "<PathAndCredentials" in ln)
    bogus = next(n for n, ln in enumerate(lines, 1) if "bogusPass" in ln)
    assert main(["unattend", "check", str(path), "--json"]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert [(p["line"], p["error"]) for p in doc["problems"]] == [(item, True), (bogus, True)]
    assert "without wcm:keyValue" in doc["problems"][0]["message"]
    assert "bogusPass" in doc["problems"][1]["message"]
    assert MAX_FILE < 50 << 20


def test_bad_setting_value_is_an_error(target, tmp_path):
    data = answer(("Microsoft-Windows-PartitionManager", "amd64", "<SanPolicy>9</SanPolicy>"))
    before = target.fingerprint()
    with pytest.raises(UnattendError, match=r"SanPolicy='9': expected 1, 2, 3 or 4"):
        _apply(target.spec, data, tmp_path)
    assert target.fingerprint() == before


def test_cli_apply_json_and_place(target, tmp_path, capsys):
    data = answer(("Microsoft-Windows-LUA-Settings", "amd64", "<EnableLUA>true</EnableLUA>"))
    path = tmp_path / "u.xml"
    path.write_bytes(data)
    assert main(["unattend", "apply", target.spec, str(path), "--place", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["placed"] == "Windows/Panther/unattend.xml"
    assert [i["status"] for i in doc["items"]] == ["applied"]
    assert (target.tree() / "Windows/Panther/unattend.xml").read_bytes() == data
    assert re.search(r"EnableLUA", json.dumps(doc["changes"]))


@pytest.mark.parametrize("kind", ["dir", "wim"])
def test_servicing_package_actions(hives, tmp_path, kind):
    """<servicing> through the package feature: each action becomes the first-boot entry
    the package commands make (names and commands derived here from the identities)."""
    from cbs_fixture import FOUNDATION, NEW_KB, PKT, Pkg, add_cbs_state, package_cab

    from servicing.features.firstboot import entries
    tree = add_cbs_state(_tree(tmp_path, hives))
    case = TargetCase(kind, tree, tmp_path)
    new = Pkg("Package_for_KB5000007", "10.0.1.0", 0)
    updates = tmp_path / "updates"
    package_cab(updates / "kb5000007.cab", new)

    def ident(p, action, inner=""):
        return (f'<package action="{action}"><assemblyIdentity name="{p.name}" '
                f'version="{p.version}" processorArchitecture="amd64" publicKeyToken="{PKT}" '
                f'language="neutral"/>{inner}</package>')
    servicing = ("<servicing>"
                 + ident(new, "install", '<source location="C:\\Updates\\kb5000007.cab"/>')
                 + ident(NEW_KB, "remove")
                 + ident(FOUNDATION, "configure", '<selection name="TelnetClient" '
                         'state="true"/><selection name="SMB1Protocol" state="false"/>')
                 + ident(new, "stage") + "</servicing>")
    data = answer(servicing=servicing)
    result = _apply(case.spec, data, tmp_path,
                    path_maps=parse_path_maps([f"C:\\Updates={updates}"]))
    assert [(i.component, i.setting, i.status) for i in result.items] == [
        ("package", "install", "applied"), ("package", "remove", "applied"),
        ("package", "configure", "applied"), ("selection", "TelnetClient", "applied"),
        ("selection", "SMB1Protocol", "applied"), ("package", "stage", "not applied")]
    with open_target(case.spec) as t:
        scheduled = [(e.name, e.command) for e in entries(t)]
    assert scheduled == [
        (f"package-add {new.identity}",
         f'dism.exe /Online /Add-Package "/PackagePath:%SystemRoot%\\wimfs\\Packages\\'
         f'{new.identity}\\kb5000007.cab" /Quiet /NoRestart'),
        (f"package-remove {NEW_KB.identity}",
         f"dism.exe /Online /Remove-Package /PackageName:{NEW_KB.identity} /Quiet "
         "/NoRestart"),
        ("feature-enable TelnetClient",
         "dism.exe /Online /Enable-Feature /FeatureName:TelnetClient "
         f"/PackageName:{FOUNDATION.identity} /Quiet /NoRestart"),
        ("feature-disable SMB1Protocol",
         "dism.exe /Online /Disable-Feature /FeatureName:SMB1Protocol "
         f"/PackageName:{FOUNDATION.identity} /Quiet /NoRestart")]
    cab = case.tree() / f"Windows/wimfs/Packages/{new.identity}/kb5000007.cab"
    assert cab.read_bytes() == (updates / "kb5000007.cab").read_bytes()
