"""DISM's international commands on /Image:TARGET (the intl fixture tree as a directory and
as IMAGE.wim:1): /Get-Intl's labels (dism-reference.md 2.2.1, servicing-facts.md 4) with
the values of `wimfs intl get --json`, the /Set-* commands alone and combined on one line
(one `wimfs intl set`), DISM's code 87 for a refused value, /Gen-LangINI and
/Set-SetupUILang."""

from __future__ import annotations

import json

import pytest

from tests.servicing.conftest import TargetCase, require_corpus
from tests.servicing.dism.conftest import dism, native_json

OK = "The operation completed successfully.\n"


@pytest.fixture(params=["dir", "wim"])
def tgt(request, tmp_path) -> TargetCase:
    from tests.servicing.intl_fixture import intl_tree
    corpus = require_corpus().parent
    return TargetCase(request.param, intl_tree(tmp_path / "tree", corpus), tmp_path)


def body(out: str) -> str:
    return out.split("Image Version: 10.0.16299.125\n\n", 1)[1]


def test_get_intl(tgt):
    doc = native_json("intl", "get", tgt.spec)
    rc, out = dism(f"/Image:{tgt.spec}", "/Get-Intl")
    assert rc == 0
    assert body(out) == (
        "Reporting offline international settings.\n\n"
        f"Default system UI language : {doc['ui_language']}\n"
        f"System locale : {doc['system_locale']}\n"
        f"Default time zone : {doc['time_zone']}\n"
        f"User locale for default user : {doc['user_locale']}\n"
        f"Location : {doc['location']} (GEOID = {doc['geoid']})\n"
        f"Active keyboard(s) : {', '.join(doc['keyboards'])}\n"
        "Keyboard layered driver : PC/AT Enhanced Keyboard (101/102-Key)\n\n"
        "Installed language(s): de-DE\n      Type : Fully localized language.\n"
        "Installed language(s): en-US\n      Type : Fully localized language.\n\n" + OK)
    assert json.loads(dism(f"/Image:{tgt.spec}", "/Get-Intl", "--json")[1]) == doc


def test_set_commands_alone_and_combined(tgt):
    img = f"/Image:{tgt.spec}"
    rc, out = dism(img, "/Set-SysLocale:fr-FR")
    assert rc == 0 and body(out) == OK
    assert native_json("intl", "get", tgt.spec)["system_locale"] == "fr-FR"
    rc, out = dism(img, "/Set-AllIntl:de-DE", "/Set-UserLocale:fr-CA",
                   "/Set-TimeZone:Tokyo Standard Time", "/Set-LayeredDriver:2",
                   "/Set-InputLocale:0407:00000407;0c0c:00011009")
    assert rc == 0, out
    got = native_json("intl", "get", tgt.spec)
    assert (got["ui_language"], got["system_locale"], got["user_locale"], got["time_zone"],
            got["layered_driver"], got["keyboards"]) == \
        ("de-DE", "de-DE", "fr-CA", "Tokyo Standard Time", 2,
         ["0407:00000407", "0c0c:00011009"])
    rc, out = dism(img, "/Set-UILangFallback:en-US", "/Set-SKUIntlDefaults:en-US")
    assert rc == 0, out
    got = native_json("intl", "get", tgt.spec)
    assert got["ui_language_fallback"] == ["en-US"]
    # the SKU defaults set the country's location and default time zone (Microsoft's
    # Table of Geographical Locations and Default Time Zones, saved in scripts/data)
    from tests.servicing.intl_fixture import default_time_zone_by_country, geoid_by_short_name
    assert (got["time_zone"], got["geoid"], got["location"]) == \
        (default_time_zone_by_country()["US"], geoid_by_short_name()["United States"],
         "United States")


def test_get_intl_location_line(tgt):
    """/Get-Intl's ``Location : <name> (GEOID = n)`` (dism-reference.md 2.2.1): the GEOID
    of the default user's ``Geo\\Nation`` (hivexget) and its short name in Microsoft's
    table."""
    import subprocess

    from tests.servicing.intl_fixture import geoid_by_short_name
    ntuser = tgt.tree() / "Users" / "Default" / "NTUSER.DAT"
    nation = subprocess.run(["hivexget", str(ntuser), "Control Panel\\International\\Geo",
                             "Nation"], capture_output=True, text=True, check=True).stdout
    name = next(n for n, g in geoid_by_short_name().items() if g == int(nation))
    rc, out = dism(f"/Image:{tgt.spec}", "/Get-Intl")
    assert rc == 0 and f"\nLocation : {name} (GEOID = {int(nation)})\n" in out, out


@pytest.mark.parametrize("args, message", [
    (["/Set-SysLocale:hi-IN"], "Unicode-only"),
    (["/Set-UILang:ja-JP"], "not installed"),
    (["/Set-TimeZone:Nowhere Time"], "Time Zones"),
    (["/Set-SysLocale"], "requires a value"),
    (["/Set-SysLocale:de-DE", "/Set-SysLocale:fr-FR"], "more than once"),
    (["/Set-LayeredDriver:9"], "invalid choice"),
])
def test_set_errors(tgt, args, message):
    before = tgt.fingerprint()
    rc, out = dism(f"/Image:{tgt.spec}", *args)
    assert rc == 87 and "\nError: 87\n\n" in out and message in out, out
    assert tgt.fingerprint() == before


def test_lang_ini_commands(tgt, tmp_path):
    dist = tmp_path / "dist"
    for d in ("sources/en-us", "Langpacks/de-DE"):
        (dist / d).mkdir(parents=True)
    img = f"/Image:{tgt.spec}"
    rc, out = dism(img, "/Gen-LangINI", f"/Distribution:{dist}")
    assert rc == 0 and body(out) == OK
    rc, out = dism(img, "/Set-SetupUILang:de-DE", f"/Distribution:{dist}")
    assert rc == 0
    rc, out = dism(img, "/Get-Intl", f"/Distribution:{dist}")
    assert body(out).endswith("Reporting distribution languages.\n\n"
                              "The default language in the distribution is:\nde-DE\n\n"
                              "The other available languages in the distribution are:\n"
                              "en-US\n\n" + OK)
    rc, out = dism(img, "/Gen-LangINI")
    assert rc == 87 and "The /distribution option is required for /Gen-LangINI." in out
