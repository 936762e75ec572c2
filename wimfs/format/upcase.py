"""Windows' case-insensitive name comparison: names are upper-cased one UTF-16 code unit at a
time with the simple 1:1 mapping (RtlUpcaseUnicodeChar never changes a name's length, so
'ß' stays 'ß' and 'Straße' does not match 'STRASSE'). Used by NTFS-style lookups in images
and directories and by the registry's subkey ordering: one rule everywhere."""

from __future__ import annotations


def upcase_char(c: str) -> str:
    """Windows upcase of one UTF-16 code unit: simple 1:1 case mapping only
    (RtlUpcaseUnicodeChar never changes the length, so 'ß' stays 'ß')."""
    u = c.upper()
    if len(u) == 1 and ord(u) <= 0xFFFF:
        return u
    return c


_upcase_cache: dict[str, str] = {}


def upcase(name: str) -> str:
    """Upper-case a key name by Windows rules (per code unit, no expansion)."""
    if name.isascii():
        return name.upper()
    r = _upcase_cache.get(name)
    if r is None:
        r = "".join(upcase_char(c) for c in name)
        if len(_upcase_cache) < 65536:
            _upcase_cache[name] = r
    return r
