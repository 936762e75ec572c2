"""`wimfs intl get|set|lang-ini` on a Windows 10 tree as a directory and as IMAGE.wim:1
(tests/servicing/intl_fixture.py says what the tree rests on). Oracles: regipy for `get`,
hivexget for every value `set` writes, Microsoft's REG_TZI_FORMAT layout decoded here,
Python's codecs and the real hive's ``Nls\\CodePage`` for code pages, configparser for
lang.ini."""

from __future__ import annotations

import codecs
import configparser
import io
import json
import locale
import struct
import subprocess
from contextlib import redirect_stdout

import pytest

from tests.servicing.conftest import TargetCase, require_corpus

CCS = "ControlSet001"
# Japanese's default input profile, the Microsoft IME (Microsoft's "Default input profiles
# (input locales) in Windows" table)
JA_IME = "{03B5835F-F03C-411B-9CE2-AA23E1171E36}{A76C93D9-5523-4E90-AAFA-4DB112F9AC76}"


@pytest.fixture(params=["dir", "wim"])
def tgt(request, tmp_path) -> TargetCase:
    from tests.servicing.intl_fixture import intl_tree
    corpus = require_corpus().parent
    return TargetCase(request.param, intl_tree(tmp_path / "tree", corpus), tmp_path)


def wimfs(*args) -> tuple[int, str]:
    from wimfs.cli import main
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main([*map(str, args)])
    return rc, buf.getvalue()


def get_json(spec: str) -> dict:
    rc, out = wimfs("intl", "get", spec, "--json")
    assert rc == 0
    return json.loads(out)


def hivexget(hive, key: str, name: str) -> str:
    return subprocess.run(["hivexget", str(hive), key, name], capture_output=True, text=True,
                          check=True).stdout.rstrip("\n")


def hivex_values(hive, key: str) -> dict[str, str]:
    out = subprocess.run(["hivexget", str(hive), key], capture_output=True, text=True,
                         check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def paths(tree):
    cfg = tree / "Windows" / "System32" / "config"
    return cfg / "SYSTEM", cfg / "DEFAULT", tree / "Users" / "Default" / "NTUSER.DAT"


def win_name(lcid_hex: str) -> str:
    """[MS-LCID] name of a LANGID/LCID, by Python's own table."""
    return locale.windows_locale[int(lcid_hex, 16)].replace("_", "-")


def test_get_agrees_with_regipy(tgt):
    from regipy.registry import RegistryHive

    system, _, ntuser = paths(tgt.tree())
    sy, nt = RegistryHive(str(system)), RegistryHive(str(ntuser))

    def val(h, key, name):
        return next((v.value for v in h.get_key(key).iter_values() if v.name == name), None)

    nls = f"\\{CCS}\\Control\\Nls"
    intl = "\\Control Panel\\International"
    preload = {v.name: v.value for v in nt.get_key("\\Keyboard Layout\\Preload").iter_values()}
    subs = {v.name: v.value for v in nt.get_key("\\Keyboard Layout\\Substitutes").iter_values()}
    kbds = [f"{preload[n][-4:]}:{subs.get(preload[n], preload[n])}"
            for n in sorted(preload, key=int)]
    ui = sy.get_key(f"\\{CCS}\\Control\\MUI\\UILanguages")
    expected = {
        "ui_language": win_name(val(sy, nls + "\\Language", "InstallLanguage")),
        "system_locale": win_name(val(sy, nls + "\\Language", "Default")),
        "time_zone": val(sy, f"\\{CCS}\\Control\\TimeZoneInformation", "TimeZoneKeyName"),
        "user_locale": val(nt, intl, "LocaleName"),
        "geoid": int(val(nt, intl + "\\Geo", "Nation")),
        "keyboards": kbds,
        "installed": sorted(s.name for s in ui.iter_subkeys()),
    }
    got = get_json(tgt.spec)
    got["installed"] = sorted(i["name"] for i in got["installed"])
    assert {k: got[k] for k in expected} == expected
    assert expected["time_zone"] == "W. Europe Standard Time"     # not a default: real data
    from tests.servicing.intl_fixture import geoid_by_short_name
    assert got["location"] == next(n for n, g in geoid_by_short_name().items()
                                   if g == expected["geoid"])     # Microsoft's short name
    ident = val(sy, f"\\{CCS}\\Services\\i8042prt\\Parameters", "OverrideKeyboardIdentifier")
    assert ident == "PCAT_101KEY" and got["layered_driver"] == 1


def decode_tzi(data: bytes) -> dict:
    """REG_TZI_FORMAT (learn.microsoft.com, TIME_ZONE_INFORMATION's registry form): LONG
    Bias, LONG StandardBias, LONG DaylightBias, SYSTEMTIME StandardDate, SYSTEMTIME
    DaylightDate; a SYSTEMTIME is eight WORDs."""
    bias, std, dlt = struct.unpack("<3l", data[:12])
    return {"Bias": bias, "StandardBias": std, "DaylightBias": dlt,
            "StandardStart": struct.unpack("<8H", data[12:28]),
            "DaylightStart": struct.unpack("<8H", data[28:44])}


def test_set_every_value_with_hivexget(tgt):
    from tests.servicing.intl_fixture import reactos_time_zones

    zone = reactos_time_zones(require_corpus().parent)["Tokyo Standard Time"]
    rc, out = wimfs("intl", "set", tgt.spec, "--ui-lang", "de-de", "--ui-lang-fallback",
                    "en-US", "--sys-locale", "ja-JP", "--user-locale", "de-DE",
                    "--input-locale", "0407:00000407;0409:00010409;ja-JP",
                    "--time-zone", "tokyo standard time", "--layered-driver", "6")
    assert rc == 0, out
    system, default, ntuser = paths(tgt.tree())
    nls = f"{CCS}\\Control\\Nls"
    assert hivexget(system, f"{CCS}\\Control\\MUI\\Settings", "PreferredUILanguages") == "de-DE"
    assert hivexget(system, nls + "\\Language", "InstallLanguageFallback") == "en-US"
    # Japanese: ANSI and OEM 932, Mac 10001 (Microsoft, "Code Page Identifiers")
    assert hivexget(system, nls + "\\Language", "Default") == "0411"
    assert hivexget(system, nls + "\\Locale", "") == "00000411"
    cps = hivex_values(system, nls + "\\CodePage")
    assert (cps['"ACP"'], cps['"OEMCP"'], cps['"MACCP"']) == ('"932"', '"932"', '"10001"')
    assert cps['"932"'] == '"c_932.nls"' and cps['"10001"'] == '"c_10001.nls"'
    for hive in (default, ntuser):
        intl = hivex_values(hive, "Control Panel\\International")
        assert intl == {'"Locale"': '"00000407"', '"LocaleName"': '"de-DE"'}  # overrides gone
        assert hivex_values(hive, "Keyboard Layout\\Preload") == {
            '"1"': '"00000407"', '"2"': '"00000409"', '"3"': '"00000411"'}
        assert hivex_values(hive, "Keyboard Layout\\Substitutes") == {
            '"00000409"': '"00010409"'}
        ctf = "Software\\Microsoft\\CTF\\Assemblies\\0x00000411\\" \
              "{34745C63-B2F0-4784-8B67-5E12C8701A31}"
        assert hivexget(hive, ctf, "Default") + hivexget(hive, ctf, "Profile") == JA_IME
        profile = "Control Panel\\International\\User Profile"
        assert hivexget(hive, profile, "Languages").split("\n") == ["de-DE", "en-US", "ja-JP"]
        assert hivex_values(hive, profile + "\\en-US") == {'"0409:00010409"': "dword:00000001"}
        assert hivex_values(hive, profile + "\\ja-JP") == {f'"0411:{JA_IME}"': "dword:00000001"}
    tz = f"{CCS}\\Control\\TimeZoneInformation"
    want = decode_tzi(zone["TZI"][1])
    for name in ("Bias", "StandardBias", "DaylightBias"):
        assert int(hivexget(system, tz, name)) & 0xFFFFFFFF == want[name] & 0xFFFFFFFF
    assert hivexget(system, tz, "TimeZoneKeyName") == "Tokyo Standard Time"
    assert hivexget(system, tz, "StandardName") == zone["Std"][1]
    assert hivexget(system, tz, "DaylightName") == zone["Dlt"][1]
    i8042 = hivex_values(system, f"{CCS}\\Services\\i8042prt\\Parameters")
    assert i8042['"OverrideKeyboardIdentifier"'] == '"PCAT_106KEY"'
    assert i8042['"LayerDriver JPN"'] == '"kbd106.dll"'
    assert i8042['"OverrideKeyboardType"'] == "dword:00000007"
    assert i8042['"OverrideKeyboardSubtype"'] == "dword:00000002"
    got = get_json(tgt.spec)
    assert (got["ui_language"], got["ui_language_fallback"], got["system_locale"],
            got["user_locale"], got["time_zone"], got["layered_driver"]) == \
        ("de-DE", ["en-US"], "ja-JP", "de-DE", "Tokyo Standard Time", 6)
    assert got["keyboards"] == ["0407:00000407", "0409:00010409", f"0411:{JA_IME}"]


def test_every_time_zone_and_every_system_locale(tgt):
    """One operation sets every zone of SOFTWARE's Time Zones and every locale of the table
    as system locale; each is read back right after it is set."""
    from servicing.features.intl import NLS, TZ_INFO, IntlRefusedError, Reader
    from servicing.features.intl_locales import LOCALES
    from servicing.features.intl_set import IntlRequest, set_intl
    from servicing.registry.hives import ImageRegistry
    from servicing.session import CommonOptions, operation
    from tests.servicing.intl_fixture import reactos_time_zones

    zones = reactos_time_zones(require_corpus().parent)
    real_cps = hivex_values(paths(tgt.tree())[0], f"{CCS}\\Control\\Nls\\CodePage")
    with operation(tgt.spec, CommonOptions(), command="test", write=True) as target:
        for name, values in zones.items():
            set_intl(target, IntlRequest(time_zone=name))
            r = Reader(ImageRegistry(target))
            want = decode_tzi(values["TZI"][1])
            for v in ("Bias", "StandardBias", "DaylightBias"):
                assert r.get(TZ_INFO, v) == want[v] & 0xFFFFFFFF, (name, v)
            for v in ("StandardStart", "DaylightStart"):
                assert struct.unpack("<8H", r.get(TZ_INFO, v)) == want[v], (name, v)
            assert r.get(TZ_INFO, "TimeZoneKeyName") == name
        refused = []
        for loc in LOCALES:
            try:
                set_intl(target, IntlRequest(sys_locale=loc.name))
            except IntlRefusedError:
                refused.append(loc.name)
                continue
            r = Reader(ImageRegistry(target))
            for v in ("ACP", "OEMCP", "MACCP"):
                cp = r.get(NLS + "\\CodePage", v)
                # a code page Windows 10 has an NLS file for
                assert real_cps.get(f'"{cp}"', "").lower().startswith('"c_'), (loc, v, cp)
            for v in ("ACP", "OEMCP"):      # Python knows every ANSI and OEM code page
                codecs.lookup(f"cp{r.get(NLS + chr(92) + 'CodePage', v)}")
            assert r.get(NLS + "\\Language", "Default") == f"{loc.lcid:04x}"
    # what landed: the last zone and the last locale, read by hivexget from the result
    system = paths(tgt.tree())[0]
    tz, last = f"{CCS}\\Control\\TimeZoneInformation", list(zones)[-1]
    assert hivexget(system, tz, "TimeZoneKeyName") == last
    assert int(hivexget(system, tz, "Bias")) & 0xFFFFFFFF == \
        decode_tzi(zones[last]["TZI"][1])["Bias"] & 0xFFFFFFFF
    final = [loc for loc in LOCALES if not loc.unicode_only][-1]
    assert hivexget(system, f"{CCS}\\Control\\Nls\\Language", "Default") == f"{final.lcid:04x}"
    assert sorted(refused) == sorted(loc.name for loc in LOCALES if loc.unicode_only)
    assert {"hi-IN", "ka-GE", "hy-AM"} <= set(refused)     # the doc's examples


@pytest.mark.parametrize("args, code, text", [
    (["--ui-lang", "fr-FR"], 9, "the UI language fr-FR is not installed"),
    (["--ui-lang-fallback", "xx-YY"], 9, "not installed"),
    (["--sys-locale", "hi-IN"], 9, "Unicode-only locale"),
    (["--sys-locale", "xx-YY"], 2, "not a valid locale name"),
    (["--user-locale", "english"], 2, "not a valid locale name"),
    (["--input-locale", "0409:0409"], 2, "is neither LANGID:KLID"),
    (["--input-locale", "klingon"], 2, "not a valid locale name"),
    (["--input-locale", "0407:99999999"], 9, "keyboard layout 99999999"),
    (["--time-zone", "Mars Standard Time"], 9, "is not a key of SOFTWARE"),
    (["--all", "fr-FR"], 9, "not installed"),
    (["--layered-driver", "7"], 2, "invalid choice"),
    ([], 2, "needs at least one setting"),
])
def test_validation_errors(tgt, capsys, args, code, text):
    before = tgt.fingerprint()
    # with a valid setting beside the bad one: nothing of either lands
    extra = ["--time-zone" if "--time-zone" not in args else "--user-locale",
             "Tokyo Standard Time" if "--time-zone" not in args else "de-DE"] if args else []
    rc, out = wimfs("intl", "set", tgt.spec, *args, *extra)
    err = capsys.readouterr().err
    assert rc == code and text in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and out == ""
    assert tgt.fingerprint() == before


def test_sku_defaults_and_all(tgt):
    rc, out = wimfs("intl", "set", tgt.spec, "--sku-defaults", "de-DE", "--user-locale",
                    "fr-FR")
    assert rc == 0, out
    got = get_json(tgt.spec)
    assert (got["ui_language"], got["system_locale"], got["user_locale"]) == \
        ("de-DE", "de-DE", "fr-FR")
    assert got["keyboards"] == ["0407:00000407"]      # intl.inf's first profile of 0407


def test_lang_ini(tmp_path):
    dist = tmp_path / "dist"
    for d in ("sources/en-us", "sources/de-de", "sources/boot", "Langpacks/fr-FR"):
        (dist / d).mkdir(parents=True)
    rc, out = wimfs("intl", "lang-ini", dist, "--json")
    assert rc == 0
    ini = configparser.ConfigParser()
    ini.optionxform = str
    ini.read(dist / "sources" / "lang.ini")
    assert dict(ini["Available UI Languages"]) == {"de-DE": "0", "en-US": "3", "fr-FR": "0"}
    assert dict(ini["Fallback Languages"]) == {"en-US": "en-us"}
    rc, _ = wimfs("intl", "lang-ini", dist, "--setup-ui-lang", "fr-fr")
    ini.read(dist / "sources" / "lang.ini")
    assert rc == 0 and ini["Available UI Languages"]["fr-FR"] == "3"
    assert ini["Available UI Languages"]["en-US"] == "0"
    before = (dist / "sources" / "lang.ini").read_bytes()
    rc, _ = wimfs("intl", "lang-ini", dist, "--setup-ui-lang", "ja-JP")
    assert rc == 9 and (dist / "sources" / "lang.ini").read_bytes() == before


@pytest.mark.parametrize("kind", ["dir", "wim"])
def test_vista_is_refused(kind, tmp_path):
    """Windows Vista SP2 is 6.0 build 6002 (Microsoft's version table); DISM refuses the
    intl commands for Vista and Server 2008 images (dism-reference.md)."""
    from tests.servicing.windows_trees import SOFTWARE_7, software_hive, windows_tree

    tree = windows_tree(tmp_path / "tree", require_corpus(), "7")
    software_hive(tree / "Windows/System32/config/SOFTWARE.new", SOFTWARE_7 | {
        "CurrentVersion": (1, "6.0"), "CurrentBuildNumber": (1, "6002"),
        "CurrentBuild": (1, "6002")})
    (tree / "Windows/System32/config/SOFTWARE.new").replace(
        tree / "Windows/System32/config/SOFTWARE")
    t = TargetCase(kind, tree, tmp_path)
    before = t.fingerprint()
    for args in (["get"], ["set", "--sys-locale", "de-DE"]):
        rc, out = wimfs("intl", args[0], t.spec, *args[1:])
        assert rc == 9 and out == ""
    assert t.fingerprint() == before


def test_language_types(tgt):
    """``UILanguages\\<lang>\\Type``: bit 0 fully localized, 1 partially localized (MUI),
    2 LIP (dism-reference.md 2.2.1); a partial language shows the UI fallback."""
    ui = "HKLM\\SYSTEM\\ControlSet001\\Control\\MUI\\UILanguages"
    for lang, bits in (("ca-ES", 4), ("eu-ES", 2)):
        rc, _ = wimfs("reg", tgt.spec, "add", f"{ui}\\{lang}", "/v", "Type", "/t",
                      "REG_DWORD", "/d", str(bits), "/f")
        assert rc == 0
    assert wimfs("intl", "set", tgt.spec, "--ui-lang", "ca-ES", "--ui-lang-fallback",
                 "en-US")[0] == 0
    rc, out = wimfs("intl", "get", tgt.spec)
    assert rc == 0
    assert "Default system UI language : ca-ES\nThe UI language fallback is : en-US\n" in out
    assert ("Installed language(s): ca-ES\n      Type : Partially localized language, LIP "
            "type.\n      Fallback Languages en-US\n") in out
    assert "Installed language(s): eu-ES\n      Type : Partially localized language, MUI " \
           "type.\n" in out
    assert "Installed language(s): de-DE\n      Type : Fully localized language.\n" \
           "Installed language(s): en-US" in out
    assert wimfs("intl", "set", tgt.spec, "--ui-lang", "de-DE")[0] == 0
    rc, out = wimfs("intl", "get", tgt.spec)       # full language: no fallback line
    assert "Default system UI language : de-DE\nSystem locale : " in out


@pytest.mark.parametrize("kind", ["dir", "wim"])
def test_service_profiles_get_the_user_settings(kind, tmp_path):
    """The LocalService profile (S-1-5-19) gets the user locale and input locales like
    .DEFAULT. No real LocalService hive is in the corpus: the corpus DEFAULT hive (the
    same kind of hive: a system account's user hive) stands in for it."""
    import shutil

    from tests.servicing.intl_fixture import intl_tree

    tree = intl_tree(tmp_path / "tree", require_corpus().parent)
    prof = tree / "Windows" / "ServiceProfiles" / "LocalService"
    prof.mkdir(parents=True)
    for ext in ("", ".LOG1", ".LOG2"):       # the corpus DEFAULT is dirty: logs too
        shutil.copyfile(tree / f"Windows/System32/config/DEFAULT{ext}", prof / f"NTUSER.DAT{ext}")
    t = TargetCase(kind, tree, tmp_path)
    rc, _ = wimfs("intl", "set", t.spec, "--user-locale", "sv-SE", "--input-locale", "sv-SE")
    assert rc == 0
    hive = t.tree() / "Windows" / "ServiceProfiles" / "LocalService" / "NTUSER.DAT"
    assert hivex_values(hive, "Control Panel\\International") == {
        '"Locale"': '"0000041d"', '"LocaleName"': '"sv-SE"'}
    assert hivex_values(hive, "Keyboard Layout\\Preload") == {'"1"': '"0000041d"'}


def test_damaged_user_hive_is_an_error(tmp_path, capsys):
    from tests.servicing.intl_fixture import intl_tree

    tree = intl_tree(tmp_path / "tree", require_corpus().parent)
    (tree / "Users/Default/NTUSER.DAT").write_bytes(b"regf" + b"\0" * 100)
    t = TargetCase("dir", tree, tmp_path)
    before = t.fingerprint()
    rc, _ = wimfs("intl", "set", t.spec, "--user-locale", "de-DE")
    err = capsys.readouterr().err
    assert rc == 3 and "NTUSER.DAT" in err and len(err.strip().splitlines()) == 1, err
    assert t.fingerprint() == before
