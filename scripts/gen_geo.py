#!/usr/bin/env python3
"""Generate servicing/features/intl_geo.py: the GEOID and default time zone tables of
`wimfs intl` (Location of /Get-Intl, Geo\\Nation of /Set-SKUIntlDefaults).

Inputs (saved under scripts/data/, each with its source in its header lines):

* ``geoids.csv``: Microsoft's "Table of Geographical Locations"
  (learn.microsoft.com/windows/win32/intl/table-of-geographical-locations): GEOID (decimal),
  short name (GetGeoInfo GEO_FRIENDLYNAME), long name (GEO_OFFICIALNAME).
* ``default_time_zones.csv``: Microsoft's "Default Time Zones"
  (learn.microsoft.com/windows-hardware/manufacture/desktop/default-time-zones): the
  ISO 3166 code, name and default time zone (key name) of every country/region.
* ``--iso-codes``: Debian's iso-codes ``iso_3166-1.json`` (package iso-codes): the
  alpha-2 code of every country with its ISO name, official and common name.

The GEOID table has no ISO codes: a row is matched to a code by its short or long name
against the iso-codes names, else against the Microsoft country names of the time zone
page (which carry their ISO code). Rows that match no code (regions such as "Caribbean",
and names of neither list) or more than one are listed, never guessed.

Run: python3 scripts/gen_geo.py                    (writes the module from scripts/data)
     python3 scripts/gen_geo.py --extract-geo MD   (re-extracts geoids.csv from the page's
         markdown, github.com/MicrosoftDocs/win32 desktop-src/Intl/table-of-geographical-
         locations.md); --extract-tz MD likewise for default_time_zones.csv
         (MicrosoftDocs/commercialization-public manufacture/desktop/default-time-zones.md)
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import unicodedata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "scripts" / "data"
GEO_CSV = DATA / "geoids.csv"
TZ_CSV = DATA / "default_time_zones.csv"
OUT = REPO / "servicing" / "features" / "intl_geo.py"
ISO_JSON = Path("/usr/share/iso-codes/json/iso_3166-1.json")

GEO_HEADER = """\
# Microsoft, "Table of Geographical Locations",
# https://learn.microsoft.com/windows/win32/intl/table-of-geographical-locations
# extracted by scripts/gen_geo.py --extract-geo from github.com/MicrosoftDocs/win32
# desktop-src/Intl/table-of-geographical-locations.md (commit {commit})
"""
TZ_HEADER = """\
# Microsoft, "Default Time Zones",
# https://learn.microsoft.com/windows-hardware/manufacture/desktop/default-time-zones
# extracted by scripts/gen_geo.py --extract-tz from github.com/MicrosoftDocs/
# commercialization-public manufacture/desktop/default-time-zones.md (commit {commit})
"""


def table_rows(md: Path) -> list[list[str]]:
    """The cells of every markdown table row that is not a header separator."""
    rows = []
    for line in md.read_text(encoding="utf-8").splitlines():
        if line.startswith("|") and not re.fullmatch(r"[|\-: ]+", line):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def write_csv(path: Path, header: str, fields: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(header)
        w = csv.writer(f, lineterminator="\n")
        w.writerow(fields)
        w.writerows(rows)


def extract_geo(md: Path, commit: str) -> None:
    rows = [[r[1], r[2], r[3].rstrip('"')] for r in table_rows(md)
            if len(r) >= 4 and r[1].isdigit()]
    write_csv(GEO_CSV, GEO_HEADER.format(commit=commit), ["geoid", "short_name", "long_name"],
              rows)


def extract_tz(md: Path, commit: str) -> None:
    rows = [[r[1], r[0], r[2]] for r in table_rows(md)
            if len(r) >= 3 and re.fullmatch(r"[A-Z]{2}", r[1])]
    write_csv(TZ_CSV, TZ_HEADER.format(commit=commit), ["iso3166", "country", "time_zone"],
              rows)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def norm(name: str) -> str:
    """A name for matching: no accents, case, punctuation, leading/trailing "the"."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = re.sub(r"[^a-z0-9]+", " ", text.replace("&", " and ")).strip()
    return re.sub(r"^the |(?<= )the$", "", text).strip()


def iso_names(iso_json: Path, tz_rows: list[dict[str, str]]) -> tuple[dict, dict]:
    """(normalized iso-codes name -> codes, normalized Microsoft country name -> codes)."""
    iso: dict[str, set[str]] = {}
    for e in json.loads(iso_json.read_text(encoding="utf-8"))["3166-1"]:
        for key in ("name", "official_name", "common_name"):
            if e.get(key):       # "Falkland Islands (Malvinas)" also as "Falkland Islands"
                for name in {e[key], re.sub(r"\s*\(.*?\)", "", e[key])}:
                    iso.setdefault(norm(name), set()).add(e["alpha_2"])
    ms: dict[str, set[str]] = {}
    for r in tz_rows:
        ms.setdefault(norm(r["country"]), set()).add(r["iso3166"])
    return iso, ms


def match(geo_rows, iso, ms) -> tuple[dict[str, int], list[str]]:
    """ISO2 -> GEOID, and the report lines of the rows left without a code. A row is
    matched by the first of: short name, long name in iso-codes; short name, long name
    among the Microsoft country names."""
    by_code: dict[str, list[int]] = {}
    report = []
    for r in geo_rows:
        if r["short_name"].endswith("(Former)"):     # a former country: no current code
            report.append(f"{r['geoid']} {r['short_name']}: former")
            continue
        codes: set[str] = set()
        for table in (iso, ms):
            for name in (norm(r["short_name"]), norm(r["long_name"])):
                if name and not codes:
                    codes = table.get(name, set())
        if len(codes) == 1:
            by_code.setdefault(codes.pop(), []).append(int(r["geoid"]))
        else:
            why = "no ISO 3166 code" if not codes else f"several codes {sorted(codes)}"
            report.append(f"{r['geoid']} {r['short_name']}: {why}")
    out = {}
    for code, geoids in sorted(by_code.items()):
        if len(geoids) == 1:
            out[code] = geoids[0]
        else:
            report.append(f"{code}: matched by several GEOIDs {geoids}, left out")
    return out, report


def time_zones(tz_rows, report: list[str]) -> dict[str, str]:
    """ISO code -> default time zone; a code listed with two different zones is left out
    (SJ is listed twice, as Jan Mayen and as Svalbard, with the same zone)."""
    zones: dict[str, set[str]] = {}
    for r in tz_rows:
        zones.setdefault(r["iso3166"], set()).add(r["time_zone"])
    for code, names in zones.items():
        if len(names) > 1:
            report.append(f"{code}: several default time zones {sorted(names)}, left out")
    return {code: names.pop() for code, names in sorted(zones.items()) if len(names) == 1}


def render(geo_rows, by_code: dict[str, int], zones: dict[str, str], report) -> str:
    lines = ['"""GENERATED by scripts/gen_geo.py from scripts/data/geoids.csv (Microsoft\'s',
             "Table of Geographical Locations), scripts/data/default_time_zones.csv",
             "(Microsoft's Default Time Zones) and Debian iso-codes' iso_3166-1.json. Do not edit.",
             "",
             "Left out (GEOIDs matching no single ISO 3166-1 code stay in GEO_NAMES only):",
             ""]
    lines += [f"* {r}" for r in report] + ['"""', "", "from __future__ import annotations", "",
                                           "#: GEOID -> its friendly (short) name",
                                           "GEO_NAMES: dict[int, str] = {"]
    lines += [f"    {int(r['geoid'])}: {r['short_name']!r}," for r in geo_rows]
    lines += ["}", "", "#: ISO 3166-1 alpha-2 code -> GEOID",
              "GEOID_BY_COUNTRY: dict[str, int] = {"]
    lines += [f"    {code!r}: {geoid}," for code, geoid in by_code.items()]
    lines += ["}", "", "#: ISO 3166-1 alpha-2 code -> default time zone (key name)",
              "DEFAULT_TIME_ZONES: dict[str, str] = {"]
    lines += [f"    {code!r}: {zone!r}," for code, zone in zones.items()]
    return "\n".join(lines + ["}", ""])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extract-geo", type=Path, metavar="MD")
    ap.add_argument("--extract-tz", type=Path, metavar="MD")
    ap.add_argument("--commit", default="unknown",
                    help="the source repository's commit, for the extracted CSV's header")
    ap.add_argument("--iso-codes", type=Path, default=ISO_JSON, metavar="JSON")
    ap.add_argument("--out", type=Path, default=OUT, help="the module to write")
    a = ap.parse_args(argv)
    if a.extract_geo:
        extract_geo(a.extract_geo, a.commit)
    if a.extract_tz:
        extract_tz(a.extract_tz, a.commit)
    geo_rows, tz_rows = read_csv(GEO_CSV), read_csv(TZ_CSV)
    iso, ms = iso_names(a.iso_codes, tz_rows)
    by_code, report = match(geo_rows, iso, ms)
    zones = time_zones(tz_rows, report)
    a.out.write_text(render(geo_rows, by_code, zones, report), encoding="utf-8")
    print(f"{a.out}: {len(geo_rows)} GEOIDs, {len(by_code)} with an ISO code, "
          f"{len(zones)} default time zones")
    print("left out:", *report, sep="\n  ", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
