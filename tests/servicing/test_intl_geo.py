"""Location (GEOID) and the SKU default time zone of `wimfs intl` on the intl fixture tree
as a directory and as IMAGE.wim:1. Expected GEOIDs and time zones come from Microsoft's
saved tables (scripts/data, parsed in intl_fixture, not through servicing.features), the
GEOID picked by the Microsoft short name of the locale's country given here; written values
are read with hivexget."""

from __future__ import annotations

import json

import pytest

from tests.servicing.conftest import TargetCase, require_corpus
from tests.servicing.intl_fixture import default_time_zone_by_country, geoid_by_short_name
from tests.servicing.test_intl import get_json, hivexget, paths, wimfs

CCS = "ControlSet001"
GEO = "Control Panel\\International\\Geo"
#: locale -> the Microsoft short name of its country (Table of Geographical Locations)
COUNTRY_NAMES = {"de-DE": "Germany", "ja-JP": "Japan", "pt-BR": "Brazil",
                 "sr-Latn-RS": "Serbia", "ko-KR": "Korea", "fr-CA": "Canada"}


@pytest.fixture(params=["dir", "wim"])
def tgt(request, tmp_path) -> TargetCase:
    from tests.servicing.intl_fixture import intl_tree
    return TargetCase(request.param, intl_tree(tmp_path / "tree", require_corpus().parent),
                      tmp_path)


def user_geo(tree) -> list[tuple[str, str]]:
    _, default, ntuser = paths(tree)
    return [(hivexget(h, GEO, "Nation"), hivexget(h, GEO, "Name")) for h in (default, ntuser)]


def test_get_shows_the_location(tgt):
    geoids = geoid_by_short_name()
    (nation, code), _ = user_geo(tgt.tree())
    name = next(n for n, g in geoids.items() if g == int(nation))
    got = get_json(tgt.spec)
    assert (got["geoid"], got["location"], got["location_code"]) == (int(nation), name, code)
    rc, out = wimfs("intl", "get", tgt.spec)
    assert rc == 0 and f"Location : {name} (GEOID = {nation})\n" in out


@pytest.mark.parametrize("loc", sorted(COUNTRY_NAMES))
def test_all_writes_the_locales_country(tgt, loc):
    geoid = geoid_by_short_name()[COUNTRY_NAMES[loc]]
    country = loc.rsplit("-", 1)[1]
    rc, out = wimfs("intl", "set", tgt.spec, "--all", loc, "--ui-lang", "en-US")
    assert rc == 0, out
    assert user_geo(tgt.tree()) == [(str(geoid), country)] * 2
    got = get_json(tgt.spec)
    assert (got["geoid"], got["location"], got["location_code"]) == \
        (geoid, COUNTRY_NAMES[loc], country)


@pytest.mark.parametrize("loc", ["en-US", "ja-JP", "fr-FR"])
def test_sku_defaults_time_zone(tgt, loc):
    zone = default_time_zone_by_country()[loc[-2:]]
    rc, out = wimfs("intl", "set", tgt.spec, "--sku-defaults", loc, "--ui-lang", "en-US",
                    "--json")
    assert rc == 0, out
    assert json.loads(out)["settings"]["time_zone"] == zone
    system, _, _ = paths(tgt.tree())
    assert hivexget(system, f"{CCS}\\Control\\TimeZoneInformation", "TimeZoneKeyName") == zone
    assert get_json(tgt.spec)["time_zone"] == zone


def test_sku_defaults_without_the_zone_keeps_the_time_zone(tgt):
    from tests.servicing.intl_fixture import reactos_time_zones

    zone = default_time_zone_by_country()["TR"]
    assert zone not in reactos_time_zones(require_corpus().parent)     # the fixture lacks it
    before = get_json(tgt.spec)["time_zone"]
    rc, out = wimfs("intl", "set", tgt.spec, "--sku-defaults", "tr-TR", "--ui-lang", "en-US",
                    "--json")
    assert rc == 0, out
    settings = json.loads(out)["settings"]
    assert "time_zone" not in settings and zone in settings["skipped"]["time_zone"]
    assert get_json(tgt.spec)["time_zone"] == before
    tr = next(g for n, g in geoid_by_short_name().items() if n in ("Türkiye", "Turkey"))
    assert user_geo(tgt.tree()) == [(str(tr), "TR")] * 2


def test_location_option(tgt, capsys):
    jp = geoid_by_short_name()["Japan"]
    assert wimfs("intl", "set", tgt.spec, "--location", str(jp))[0] == 0
    assert user_geo(tgt.tree()) == [(str(jp), "JP")] * 2
    assert wimfs("intl", "set", tgt.spec, "--location", "br")[0] == 0
    assert get_json(tgt.spec)["location"] == "Brazil"
    before = tgt.fingerprint()
    world = geoid_by_short_name()["World"]          # a region, no country code
    for bad in ("XX", str(world), "0"):
        assert wimfs("intl", "set", tgt.spec, "--location", bad)[0] == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert tgt.fingerprint() == before


def test_locale_without_a_country_keeps_the_location(tgt):
    before = user_geo(tgt.tree())
    rc, out = wimfs("intl", "set", tgt.spec, "--sku-defaults", "es-419", "--ui-lang", "en-US",
                    "--json")
    assert rc == 0, out
    settings = json.loads(out)["settings"]
    assert set(settings["skipped"]) == {"location", "time_zone"} and "location" not in settings
    assert user_geo(tgt.tree()) == before


def test_generated_table_is_reproducible(tmp_path):
    """scripts/gen_geo.py from the saved inputs and Debian's iso-codes writes exactly the
    committed servicing/features/intl_geo.py."""
    import subprocess
    import sys
    from pathlib import Path

    iso = Path("/usr/share/iso-codes/json/iso_3166-1.json")
    if not iso.is_file():
        pytest.skip("iso-codes is not installed (scripts/setup TEST_PKGS)")
    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "intl_geo.py"
    subprocess.run([sys.executable, str(repo / "scripts" / "gen_geo.py"), "--out", str(out)],
                   check=True, capture_output=True)
    assert out.read_text() == (repo / "servicing" / "features" / "intl_geo.py").read_text()
