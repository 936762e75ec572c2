"""A Windows 10 tree for the international-settings tests.

The corpus has no real SOFTWARE hive, so the tree's SOFTWARE (windows_trees.software_hive)
gets the ``Time Zones`` keys of ReactOS 0.4.13 ``boot/bootdata/hivesft.inf`` (its AddReg
lines: ``Display``/``Std``/``Dlt`` strings, ``Index`` and the 44-byte ``TZI`` of every
zone, the names Windows uses), written with our regf writer. SYSTEM, DEFAULT and the
default NTUSER.DAT are the real corpus hives (windows_trees, "10clean"); a second UI
language, ``MUI\\UILanguages\\de-DE`` with ``Type`` 1 (bit 0 = fully localized,
dism-reference.md 2.2.1) and ``LCID`` 0x407, is added so that /Set-UILang has one to
switch to.
"""

from __future__ import annotations

from pathlib import Path

from servicing.regf import REG_BINARY, REG_DWORD, REG_SZ, Hive

HIVESFT = Path("inf/reactos-0.4.13/boot/bootdata/hivesft.inf")
TZ_PREFIX = "SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Time Zones\\"
#: setupapi AddReg flags: FLG_ADDREG_BINVALUETYPE (1), TYPE_DWORD (0x10001), else REG_SZ
FLAG_TYPES = {0x00000000: REG_SZ, 0x00010001: REG_DWORD, 0x00000001: REG_BINARY}


def reactos_time_zones(corpus: Path) -> dict[str, dict[str, tuple[int, object]]]:
    """Zone key name -> value name -> (type, data) from hivesft.inf's AddReg lines."""
    from servicing.formats.inf import parse_inf

    inf = parse_inf((corpus / HIVESFT).read_bytes(), "hivesft.inf")
    zones: dict[str, dict[str, tuple[int, object]]] = {}
    for line in inf.lines("AddReg"):
        f = line.fields
        if len(f) < 5 or f[0].upper() != "HKLM" or not f[1].startswith(TZ_PREFIX):
            continue
        zone = f[1][len(TZ_PREFIX):]
        if "\\" in zone:
            continue
        vtype = FLAG_TYPES.get(int(f[3], 16) & 0xFFFF0001)     # 0x2 = NOCLOBBER
        if vtype is None:
            raise ValueError(f"hivesft.inf line {line.lineno}: flags {f[3]}")
        if vtype == REG_BINARY:
            data: object = bytes(int(b, 16) for b in f[4:])
        elif vtype == REG_DWORD:
            data = int(f[4], 0)
        else:
            data = f[4]
        zones.setdefault(zone, {})[f[2]] = (vtype, data)
    return zones


def intl_tree(root: Path, corpus: Path) -> Path:
    from tests.servicing.windows_trees import windows_tree

    tree = windows_tree(root, corpus / "hives", "10clean")
    cfg = tree / "Windows" / "System32" / "config"
    with Hive.open(cfg / "SOFTWARE", write=True) as h:
        for zone, values in reactos_time_zones(corpus).items():
            k = h.create_key(TZ_PREFIX.removeprefix("SOFTWARE\\") + zone)
            for name, (vtype, data) in values.items():
                k.set_value(name, vtype, data)
    with Hive.open(cfg / "SYSTEM", write=True) as h:
        k = h.create_key("ControlSet001\\Control\\MUI\\UILanguages\\de-DE")
        k.set_value("LCID", REG_DWORD, 0x407)
        k.set_value("Type", REG_DWORD, 1)
    return tree


DATA = Path(__file__).resolve().parents[2] / "scripts" / "data"


def microsoft_table(name: str) -> list[dict[str, str]]:
    """The rows of a saved Microsoft table (scripts/data/*.csv, extracted from the pages
    named in its header lines), read here without the package's generated module."""
    import csv

    with open(DATA / name, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def geoid_by_short_name() -> dict[str, int]:
    """Microsoft's "Table of Geographical Locations": short name -> GEOID (decimal)."""
    return {r["short_name"]: int(r["geoid"]) for r in microsoft_table("geoids.csv")}


def default_time_zone_by_country() -> dict[str, str]:
    """Microsoft's "Default Time Zones": ISO 3166 code -> time zone key name."""
    return {r["iso3166"]: r["time_zone"] for r in microsoft_table("default_time_zones.csv")}
