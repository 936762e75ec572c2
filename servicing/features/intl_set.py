"""`intl set`: DISM's /Set-UILang ... /Set-LayeredDriver as registry edits of one
transaction over SYSTEM, SOFTWARE (read), DEFAULT and the default user's NTUSER.DAT.

Every value is validated before anything is written, as DISM does: the UI language and
its fallback must be installed (``MUI\\UILanguages``), the system locale must have an ANSI
code page (Unicode-only locales are refused), every code page written must have an NLS
file in the locale table, the time zone must be a key under SOFTWARE ``Time Zones``, an
input locale must be ``LANGID:KLID``, ``LANGID:{CLSID}{PROFILE}`` or a locale name.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from servicing.features.intl import (
    CONTROL, CTF_KEYBOARD, I8042, INTERNATIONAL, KEYBOARD, LAYERED_DRIVERS, MUI, NLS,
    NULL_GUID, TIME_ZONES, TZ_INFO, IntlRefusedError, IntlValueError, Reader, country_of,
    find_locale, geo_of, installed_languages, locale_of, require_intl)
from servicing.features.intl_geo import DEFAULT_TIME_ZONES, GEOID_BY_COUNTRY
from servicing.features.intl_locales import CODEPAGE_FILES, Locale
from servicing.regf import REG_BINARY, REG_DWORD, REG_MULTI_SZ, REG_SZ, encode_value
from servicing.registry.edits import EditKind, RegEdit, apply, transaction
from servicing.target import Target

#: values of ``Control Panel\\International`` that name the locale; every other value
#: there is a cached per-user format of the old locale and is removed, so that Windows
#: derives them from the new one (GetLocaleInfo falls back to the locale's own data
#: for a value the user has not overridden).
LOCALE_VALUES = ("Locale", "LocaleName")
IME_RE = re.compile(r"([0-9a-f]{4}):(\{[0-9a-f-]{36}\})(\{[0-9a-f-]{36}\})", re.I)
KLID_RE = re.compile(r"([0-9a-f]{4}):([0-9a-f]{8})", re.I)


@dataclass
class IntlRequest:
    ui_lang: str | None = None
    ui_lang_fallback: str | None = None
    sys_locale: str | None = None
    user_locale: str | None = None
    input_locale: str | None = None
    all: str | None = None
    time_zone: str | None = None
    sku_defaults: str | None = None
    layered_driver: int | None = None
    location: str | None = None
    #: the default time zone of the SKU defaults' country, set only if the image has it
    default_time_zone: str | None = None

    def resolved(self) -> tuple[IntlRequest, dict[str, str]]:
        """/Set-AllIntl and /Set-SKUIntlDefaults expanded (individual options win), and
        the defaults that could not be derived (setting -> reason)."""
        base = self.all or self.sku_defaults
        if base is None:
            return self, {}
        loc = locale_of(base)
        sys_locale = self.sys_locale
        if sys_locale is None and not (self.sku_defaults and loc.unicode_only):
            sys_locale = loc.name           # SKU defaults skip a Unicode-only one silently
        country, skipped = country_of(loc.name), {}
        location = self.location or (country if country in GEOID_BY_COUNTRY else None)
        if location is None:
            skipped["location"] = f"no GEOID is known for the country of {loc.name}"
        zone = None
        if self.sku_defaults and self.time_zone is None:
            zone = DEFAULT_TIME_ZONES.get(country or "")
            if zone is None:
                skipped["time_zone"] = f"no default time zone is known for {loc.name}"
        return IntlRequest(
            ui_lang=self.ui_lang or loc.name, ui_lang_fallback=self.ui_lang_fallback,
            sys_locale=sys_locale, user_locale=self.user_locale or loc.name,
            input_locale=self.input_locale or (loc.keyboards[0] if loc.keyboards else None),
            time_zone=self.time_zone, layered_driver=self.layered_driver,
            location=location, default_time_zone=zone), skipped


@dataclass(frozen=True)
class InputProfile:
    langid: str                     # 4 hex digits, lower case
    klid: str | None = None         # 8 hex digits
    ime: tuple[str, str] | None = None   # (CLSID, profile GUID)

    def text(self) -> str:
        return f"{self.langid}:{self.klid}" if self.ime is None else \
            f"{self.langid}:{self.ime[0]}{self.ime[1]}"


def parse_input_locales(text: str) -> list[InputProfile]:
    out = []
    for item in (p.strip() for p in text.split(";")):
        if not item:
            continue
        if m := IME_RE.fullmatch(item):
            out.append(InputProfile(m[1].lower(), ime=(m[2].upper(), m[3].upper())))
        elif m := KLID_RE.fullmatch(item):
            out.append(InputProfile(m[1].lower(), klid=m[2].lower()))
        elif ":" in item:
            raise IntlValueError(f"input locale {item!r} is neither LANGID:KLID "
                                 "(0409:00000409) nor LANGID:{CLSID}{PROFILE}")
        else:
            loc = locale_of(item)
            if not loc.keyboards:
                raise IntlValueError(f"no default keyboard is known for {loc.name}; give "
                                     "it as LANGID:KLID")
            out += parse_input_locales(loc.keyboards[0])
    if not out:
        raise IntlValueError("no input locale given")
    return list(dict.fromkeys(out))


def set_intl(target: Target, request: IntlRequest) -> dict:
    """Apply *request*; returns the settings written (name -> value)."""
    require_intl(target)
    req, skipped = request.resolved()
    with transaction(target) as reg:
        r = Reader(reg)
        edits, done = [], {}
        time_zone = req.time_zone
        if req.default_time_zone is not None:
            if _zone_key(r, req.default_time_zone) is not None:
                time_zone = req.default_time_zone
            else:
                skipped["time_zone"] = (f"the default time zone {req.default_time_zone!r} "
                                        "is not in this image's Time Zones")
        steps = ((req.ui_lang, _ui_lang, "ui_language"),
                 (req.ui_lang_fallback, _ui_fallback, "ui_language_fallback"),
                 (req.sys_locale, _sys_locale, "system_locale"),
                 (req.user_locale, _user_locale, "user_locale"),
                 (req.input_locale, _input_locale, "keyboards"),
                 (time_zone, _time_zone, "time_zone"),
                 (req.layered_driver, _layered, "layered_driver"),
                 (req.location, _location, "location"))
        for value, step, name in steps:
            if value is not None:
                done[name], more = step(r, value)
                edits += more
        apply(reg, edits)
    return done | ({"skipped": skipped} if skipped else {})


def _set(key: str, name: str, vtype: int, data) -> RegEdit:
    return RegEdit(EditKind.SET_VALUE, key, name, vtype,
                   data if isinstance(data, bytes) else encode_value(vtype, data))


def _installed(r: Reader, name: str) -> str:
    for lang in installed_languages(r):
        if lang.lower() == name.strip().lower():
            return lang
    raise IntlRefusedError(f"the UI language {name} is not installed in this image "
                           f"(installed: {', '.join(installed_languages(r)) or 'none'})")


def _ui_lang(r: Reader, name: str):
    lang = _installed(r, name)
    return lang, [_set(MUI + "\\Settings", "PreferredUILanguages", REG_MULTI_SZ, [lang])]


def _ui_fallback(r: Reader, name: str):
    lang = _installed(r, name)
    return lang, [_set(NLS + "\\Language", "InstallLanguageFallback", REG_MULTI_SZ, [lang])]


def _sys_locale(r: Reader, name: str):
    loc = locale_of(name)
    if loc.unicode_only:
        raise IntlRefusedError(f"{loc.name} is a Unicode-only locale and cannot be the "
                               "system locale (it has no ANSI code page)")
    edits = [_set(NLS + "\\Language", "Default", REG_SZ, f"{loc.lcid:04x}"),
             _set(NLS + "\\Locale", "", REG_SZ, f"{loc.lcid:08x}")]
    if r.get(NLS + "\\Locale", "(Default)") is not None:     # Windows 10 keeps both
        edits.append(_set(NLS + "\\Locale", "(Default)", REG_SZ, f"{loc.lcid:08x}"))
    return loc.name, edits + _codepages(r, loc)


def _codepages(r: Reader, loc: Locale) -> list[RegEdit]:
    key = NLS + "\\CodePage"
    edits = []
    for name, cp in (("ACP", loc.ansi), ("OEMCP", loc.oem), ("MACCP", loc.mac)):
        nls = CODEPAGE_FILES.get(cp)
        if nls is None:
            raise IntlRefusedError(f"code page {cp} of {loc.name} has no NLS file")
        edits.append(_set(key, name, REG_SZ, str(cp)))
        if not r.get(key, str(cp)):
            edits.append(_set(key, str(cp), REG_SZ, nls))
    if loc.group:
        groups = NLS + "\\Language Groups"
        if r.get(groups, f"{loc.group:x}") != "1":
            edits.append(_set(groups, f"{loc.group:x}", REG_SZ, "1"))
    return edits


def _user_hives(r: Reader) -> list[str]:
    hives = r.user_hives()
    if not hives:
        raise IntlRefusedError("the image has neither a DEFAULT hive nor a default user "
                               "profile (Users\\Default\\NTUSER.DAT)")
    return hives


def _user_locale(r: Reader, name: str):
    loc = locale_of(name)
    edits = []
    for hive in _user_hives(r):
        key = f"{hive}\\{INTERNATIONAL}"
        k = r.key(key)
        edits += [RegEdit(EditKind.DELETE_VALUE, key, v.name) for v in
                  (k.values() if k is not None else []) if v.name not in LOCALE_VALUES]
        edits += [_set(key, "Locale", REG_SZ, f"{loc.lcid:08x}"),
                  _set(key, "LocaleName", REG_SZ, loc.name)]
    return loc.name, edits


def _input_locale(r: Reader, text: str):
    profiles = parse_input_locales(text)
    layouts = r.key(CONTROL + "\\Keyboard Layouts")
    for p in profiles:
        if p.klid and layouts is not None and not layouts.has_subkey(p.klid):
            raise IntlRefusedError(f"keyboard layout {p.klid} ({p.text()}) is not in "
                                   "this image (Control\\Keyboard Layouts)")
    preload, subs = preload_entries(profiles)
    edits = []
    for hive in _user_hives(r):
        base = f"{hive}\\{KEYBOARD}"
        edits += [RegEdit(EditKind.DELETE_KEY, base + "\\Preload"),
                  RegEdit(EditKind.DELETE_KEY, base + "\\Substitutes"),
                  RegEdit(EditKind.CREATE_KEY, base + "\\Substitutes")]
        edits += [_set(base + "\\Preload", str(i), REG_SZ, hkl)
                  for i, hkl in enumerate(preload, 1)]
        edits += [_set(base + "\\Substitutes", hkl, REG_SZ, klid) for hkl, klid in subs]
        edits += _ctf(r, hive, profiles) + _user_profile(r, hive, profiles)
    return [p.text() for p in profiles], edits


def _user_profile(r: Reader, hive: str, profiles: list[InputProfile]) -> list[RegEdit]:
    """Windows 8+ keeps the user's languages and their input methods in ``Control Panel\\
    International\\User Profile`` (``Languages``, and per language ``LANGID:KLID`` =
    DWORD order) and rebuilds Preload from it at logon; rewritten when the hive has it."""
    key = f"{hive}\\{INTERNATIONAL}\\User Profile"
    k = r.key(key)
    if k is None:
        return []
    langs: dict[str, list[str]] = {}
    for p in profiles:
        loc = find_locale(p.langid)
        langs.setdefault(loc.name if loc else p.langid, []).append(p.text().upper())
    edits = [RegEdit(EditKind.DELETE_KEY, f"{key}\\{sub.name}") for sub in k.subkeys()]
    edits.append(_set(key, "Languages", REG_MULTI_SZ, list(langs)))
    for lang, texts in langs.items():
        edits += [_set(f"{key}\\{lang}", t, REG_DWORD, n) for n, t in enumerate(texts, 1)]
    return edits


def preload_entries(profiles: list[InputProfile]) -> tuple[list[str], list[tuple[str, str]]]:
    """Preload ids and Substitutes: a layout that is the language's own (``00000407`` for
    0407) is preloaded as itself; another layout gets the language's id (``00000407``)
    or, when taken, ``d001LLLL``, ``d002LLLL`` ..., mapped to the layout in Substitutes."""
    preload, subs = [], []
    for p in profiles:
        own = f"0000{p.langid}"
        if p.ime is not None or p.klid == own:
            if own not in preload:
                preload.append(own)
            continue
        hkl = own if own not in preload else next(
            f"d{n:03x}{p.langid}" for n in range(1, 0x1000) if f"d{n:03x}{p.langid}" not in preload)
        preload.append(hkl)
        subs.append((hkl, p.klid))
    return preload, subs


def _ctf(r: Reader, hive: str, profiles: list[InputProfile]) -> list[RegEdit]:
    """The TSF default profile per language: the IME given, else none (the keyboard)."""
    edits = []
    for langid in dict.fromkeys(p.langid for p in profiles):
        ime = next((p.ime for p in profiles if p.langid == langid and p.ime), None)
        key = f"{hive}\\Software\\Microsoft\\CTF\\Assemblies\\0x0000{langid}\\{CTF_KEYBOARD}"
        if ime is None and r.key(key) is None:
            continue
        clsid, profile = ime or (NULL_GUID, NULL_GUID)
        edits += [_set(key, "Default", REG_SZ, clsid), _set(key, "Profile", REG_SZ, profile)]
    return edits


def decode_tzi(data: bytes) -> tuple[int, int, int, bytes, bytes]:
    """REG_TZI_FORMAT: Bias, StandardBias, DaylightBias (LONG), StandardDate, DaylightDate
    (SYSTEMTIME, 16 bytes each)."""
    if not isinstance(data, bytes) or len(data) != 44:
        raise IntlRefusedError("the time zone's TZI value is not 44 bytes")
    bias, std, dlt = struct.unpack_from("<3i", data)
    return bias, std, dlt, data[12:28], data[28:44]


def _zone_key(r: Reader, name: str):
    """The key of a time zone under SOFTWARE ``Time Zones`` (any case), or None."""
    zones = r.key(TIME_ZONES)
    return next((k for k in (zones.subkeys() if zones is not None else [])
                 if k.name.lower() == name.strip().lower()), None)


def _time_zone(r: Reader, name: str):
    match = _zone_key(r, name)
    if match is None:
        raise IntlRefusedError(f"time zone {name!r} is not a key of SOFTWARE\\Microsoft\\"
                               "Windows NT\\CurrentVersion\\Time Zones in this image")
    bias, std, dlt, std_date, dlt_date = decode_tzi(match.get("TZI"))
    u32 = (lambda v: v & 0xFFFFFFFF)
    std_name = match.get("MUI_Std") or match.get("Std") or match.name
    dlt_name = match.get("MUI_Dlt") or match.get("Dlt") or match.name
    edits = [_set(TZ_INFO, "Bias", REG_DWORD, u32(bias)),
             _set(TZ_INFO, "StandardBias", REG_DWORD, u32(std)),
             _set(TZ_INFO, "DaylightBias", REG_DWORD, u32(dlt)),
             _set(TZ_INFO, "StandardStart", REG_BINARY, std_date),
             _set(TZ_INFO, "DaylightStart", REG_BINARY, dlt_date),
             _set(TZ_INFO, "StandardName", REG_SZ, std_name),
             _set(TZ_INFO, "DaylightName", REG_SZ, dlt_name),
             _set(TZ_INFO, "TimeZoneKeyName", REG_SZ, match.name),
             _set(TZ_INFO, "DynamicDaylightTimeDisabled", REG_DWORD, 0),
             # the bias in force until Windows' first boot recomputes it: standard time
             _set(TZ_INFO, "ActiveTimeBias", REG_DWORD, u32(bias + std))]
    return match.name, edits


def _layered(r: Reader, number: int):
    d = LAYERED_DRIVERS.get(number)
    if d is None:
        raise IntlValueError(f"layered driver {number} is not one of 1-6")
    return d.number, [_set(I8042, "OverrideKeyboardIdentifier", REG_SZ, d.identifier),
                      _set(I8042, "OverrideKeyboardType", REG_DWORD, d.type),
                      _set(I8042, "OverrideKeyboardSubtype", REG_DWORD, d.subtype),
                      _set(I8042, d.layer[0], REG_SZ, d.layer[1])]


def _location(r: Reader, text: str):
    """``Control Panel\\International\\Geo``: ``Nation`` = the GEOID (decimal) and, where
    the hive keeps it (Windows 10; Windows 7's Geo key has Nation only), ``Name`` = the
    ISO 3166 code, in every user hive, as SetUserGeoID/SetUserGeoName write them."""
    geoid, code = geo_of(text)
    edits = []
    for hive in _user_hives(r):
        key = f"{hive}\\{INTERNATIONAL}\\Geo"
        k = r.key(key)
        edits.append(_set(key, "Nation", REG_SZ, str(geoid)))
        if k is None or k.get("Name") is not None:
            edits.append(_set(key, "Name", REG_SZ, code))
    return {"geoid": geoid, "country": code}, edits
