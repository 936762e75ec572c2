"""International settings of an image: what DISM /Get-Intl reports, read from the places
Windows keeps them (dism-reference.md 2.2.1), and the lookups `intl set` validates with.

* SYSTEM ``Control\\MUI\\Settings\\PreferredUILanguages`` (else ``Control\\Nls\\Language\\
  InstallLanguage``): the default system UI language; ``Nls\\Language\\
  InstallLanguageFallback``: its fallback; ``Control\\MUI\\UILanguages\\<lang>\\Type``:
  the installed languages (bit 0 fully localized, 1 partially localized MUI, 2 LIP);
* SYSTEM ``Control\\Nls\\Language\\Default`` (LANGID; else ``Control\\Nls\\Locale``'s
  default value): the system locale;
* SYSTEM ``Control\\TimeZoneInformation\\TimeZoneKeyName``: the time zone;
* the default user's ``Users\\Default\\NTUSER.DAT`` (else the DEFAULT hive):
  ``Control Panel\\International`` ``LocaleName``/``Locale`` (user locale), ``\\Geo``
  ``Nation`` (GEOID; else ``Name``, the ISO 3166 code; named by intl_geo's table of
  Microsoft's friendly names, GetGeoInfo GEO_FRIENDLYNAME), ``Keyboard Layout\\Preload`` through ``Substitutes`` (active
  keyboards, ``LANGID:KLID``), ``Software\\Microsoft\\CTF\\Assemblies`` (a TSF input
  profile that replaces a language's keyboard, ``LANGID:{CLSID}{profile}``);
* SYSTEM ``Services\\i8042prt\\Parameters`` ``OverrideKeyboardIdentifier``: the keyboard
  layered driver.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from servicing.errors import (
    ERROR_INVALID_PARAMETER, RefusedError, ServicingError, UnsupportedWindowsError)
from servicing.features.intl_geo import GEO_NAMES, GEOID_BY_COUNTRY
from servicing.features.intl_locales import LOCALES, Locale
from servicing.regf import RegfError
from servicing.registry.hives import ImageRegistry
from servicing.target import Target
from wimfs.errors import EXIT_USAGE

CONTROL = "HKLM\\SYSTEM\\CurrentControlSet\\Control"
NLS = CONTROL + "\\Nls"
MUI = CONTROL + "\\MUI"
TZ_INFO = CONTROL + "\\TimeZoneInformation"
I8042 = "HKLM\\SYSTEM\\CurrentControlSet\\Services\\i8042prt\\Parameters"
TIME_ZONES = "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Time Zones"
#: the user hives a user-level setting is written to, those the image has: the default
#: profile new users copy, the DEFAULT hive (.DEFAULT: the system account and the logon
#: screen), and the LocalService and NetworkService profiles (the "copy settings to the
#: system accounts" set, dism-reference.md 2.2: intl writes span these five hives).
USER_HIVES = ("HKU\\DefaultUser", "HKU\\.DEFAULT", "HKU\\S-1-5-19", "HKU\\S-1-5-20")
INTERNATIONAL = "Control Panel\\International"
KEYBOARD = "Keyboard Layout"
#: the TSF category GUID of keyboard input profiles (GUID_TFCAT_TIP_KEYBOARD)
CTF_KEYBOARD = "{34745C63-B2F0-4784-8B67-5E12C8701A31}"
NULL_GUID = "{00000000-0000-0000-0000-000000000000}"

LANGUAGE_TYPES = {1: "Fully localized language.", 2: "Partially localized language, MUI type.",
                  4: "Partially localized language, LIP type."}


@dataclass(frozen=True)
class LayeredDriver:
    number: int
    text: str
    identifier: str
    type: int
    subtype: int
    layer: tuple[str, str]          # ("LayerDriver JPN" | "LayerDriver KOR", DLL)


# DISM's /Set-LayeredDriver numbers and texts (the LayeredDriver setting of
# Microsoft-Windows-International-Core-WinPE). The registry values are the i8042prt
# overrides Windows uses for these keyboards; number 1 is what the corpus Windows 10
# SYSTEM hives hold for a 101/102-key keyboard (JPN kbd101.dll, PCAT_101KEY, 7, 0).
LAYERED_DRIVERS = {d.number: d for d in (
    LayeredDriver(1, "PC/AT Enhanced Keyboard (101/102-Key)", "PCAT_101KEY", 7, 0,
                  ("LayerDriver JPN", "kbd101.dll")),
    LayeredDriver(2, "Korean PC/AT 101-Key Compatible Keyboard/MS Natural Keyboard (Type 1)",
                  "PCAT_101AKEY", 8, 3, ("LayerDriver KOR", "kbd101a.dll")),
    LayeredDriver(3, "Korean PC/AT 101-Key Compatible Keyboard/MS Natural Keyboard (Type 2)",
                  "PCAT_101BKEY", 8, 4, ("LayerDriver KOR", "kbd101b.dll")),
    LayeredDriver(4, "Korean PC/AT 101-Key Compatible Keyboard/MS Natural Keyboard (Type 3)",
                  "PCAT_101CKEY", 8, 5, ("LayerDriver KOR", "kbd101c.dll")),
    LayeredDriver(5, "Korean Keyboard (103/106 Key)", "PCAT_103KEY", 8, 6,
                  ("LayerDriver KOR", "kbd103.dll")),
    LayeredDriver(6, "Japanese Keyboard (106/109 Key)", "PCAT_106KEY", 7, 2,
                  ("LayerDriver JPN", "kbd106.dll")),
)}


class IntlValueError(ServicingError):
    """A value DISM rejects as invalid (an unknown locale, a malformed input locale)."""

    exit_code = EXIT_USAGE
    hresult = None
    win32 = ERROR_INVALID_PARAMETER


class IntlRefusedError(RefusedError):
    """A valid value this image cannot take (a UI language it does not have, a time zone
    it does not know, a Unicode-only locale as system locale)."""

    win32 = ERROR_INVALID_PARAMETER


_BY_NAME = {loc.name.lower(): loc for loc in LOCALES}
_BY_LCID = {loc.lcid: loc for loc in LOCALES}


def find_locale(text: str) -> Locale | None:
    """A locale by name (``de-DE``, any case) or LCID (``0407``, ``00000407``)."""
    loc = _BY_NAME.get(text.strip().lower())
    if loc is None and re.fullmatch(r"(0x)?[0-9a-fA-F]{4,8}", text.strip()):
        loc = _BY_LCID.get(int(text.strip(), 16))
    return loc


def locale_of(text: str) -> Locale:
    loc = find_locale(text)
    if loc is None:
        raise IntlValueError(f"{text!r} is not a valid locale name (e.g. en-US, de-DE)")
    return loc


def locale_name(lcid_text) -> str | None:
    """``0409``/``00000409`` -> ``en-US`` (the hex text itself when unknown)."""
    if not isinstance(lcid_text, str) or not lcid_text.strip():
        return None
    try:
        loc = _BY_LCID.get(int(lcid_text, 16))
    except ValueError:
        return lcid_text
    return loc.name if loc else lcid_text


_COUNTRY_BY_GEOID = {geoid: code for code, geoid in GEOID_BY_COUNTRY.items()}


def country_of(locale_name: str) -> str | None:
    """The country of a locale name: its two-letter region subtag (``sr-Latn-RS`` -> RS;
    ``es-419`` has none)."""
    return next((t for t in reversed(locale_name.split("-")[1:])
                 if re.fullmatch(r"[A-Z]{2}", t)), None)


def geo_of(text: str) -> tuple[int, str]:
    """(GEOID, ISO 3166 alpha-2) of a GEOID (``244``) or a country code (``US``)."""
    text = text.strip()
    geoid = int(text) if text.isdigit() else GEOID_BY_COUNTRY.get(text.upper())
    code = _COUNTRY_BY_GEOID.get(geoid) if geoid is not None else None
    if code is None:
        raise IntlValueError(f"{text!r} is neither an ISO 3166 country code nor the GEOID "
                             "of a country (Microsoft's table of geographical locations)")
    return geoid, code


def read_location(r: Reader, user: str) -> tuple[int | None, str | None, str | None]:
    """(GEOID, friendly name, ISO code) of a user hive's ``Geo`` key (``Nation``, else
    ``Name`` through the GEOID table)."""
    key = f"{user}\\{INTERNATIONAL}\\Geo"
    nation, code = r.get(key, "Nation"), r.get(key, "Name")
    geoid = int(nation) if isinstance(nation, str) and nation.strip().isdigit() else None
    code = code if isinstance(code, str) and code else None
    if geoid is None and code is not None:
        geoid = GEOID_BY_COUNTRY.get(code.upper())
    if code is None and geoid is not None:
        code = _COUNTRY_BY_GEOID.get(geoid)
    return geoid, GEO_NAMES.get(geoid) if geoid is not None else None, code


@dataclass
class InstalledLanguage:
    name: str
    type: str
    fallback: list[str] = field(default_factory=list)


@dataclass
class IntlSettings:
    ui_language: str | None = None
    ui_language_fallback: list[str] = field(default_factory=list)
    system_locale: str | None = None
    time_zone: str | None = None
    user_locale: str | None = None
    geoid: int | None = None
    location: str | None = None         # the GEOID's friendly name ("United States")
    location_code: str | None = None    # ISO 3166 alpha-2 (Geo\\Name)
    keyboards: list[str] = field(default_factory=list)
    layered_driver: int | None = None
    layered_driver_text: str = "Not installed."
    installed: list[InstalledLanguage] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


class Reader:
    """Read-only access to the values of one image (a missing key or value is None)."""

    def __init__(self, reg: ImageRegistry) -> None:
        self.reg = reg

    def key(self, path: str):
        try:
            return self.reg.key(path)
        except RegfError:
            return None

    def get(self, path: str, name: str):
        k = self.key(path)
        return None if k is None else k.get(name)

    def user_hives(self) -> list[str]:
        """The user hives (USER_HIVES) the image has; a damaged one is an error, not
        skipped."""
        from servicing.registry.hives import split_key

        return [h for h in USER_HIVES
                if self.reg.hive_path(*split_key(h)[:2]) is not None]


def installed_languages(r: Reader) -> dict[str, int]:
    """Installed UI language -> its Type bits (``MUI\\UILanguages``)."""
    k = r.key(MUI + "\\UILanguages")
    out = {}
    for sub in k.subkeys() if k is not None else []:
        t = sub.get("Type")
        out[sub.name] = t if isinstance(t, int) else 1
    return out


def language_type(bits: int) -> str:
    for bit, text in LANGUAGE_TYPES.items():
        if bits & bit:
            return text
    return LANGUAGE_TYPES[1]


def keyboards(r: Reader, user: str) -> list[str]:
    """Active input profiles of a user hive, ``LANGID:KLID`` or ``LANGID:{CLSID}{GUID}``."""
    pre = r.key(f"{user}\\{KEYBOARD}\\Preload")
    subs = r.key(f"{user}\\{KEYBOARD}\\Substitutes")
    entries = sorted(((v.name, v.data) for v in (pre.values() if pre else [])
                      if v.name.isdigit() and isinstance(v.data, str)), key=lambda e: int(e[0]))
    out = []
    for _, hkl in entries:
        langid = hkl[-4:].lower()
        ime = ime_profile(r, user, langid)
        if ime is not None:
            out.append(f"{langid}:{ime}")
            continue
        klid = subs.get(hkl) if subs is not None else None
        out.append(f"{langid}:{(klid if isinstance(klid, str) else hkl).lower()}")
    return out


def ime_profile(r: Reader, user: str, langid: str) -> str | None:
    k = r.key(f"{user}\\Software\\Microsoft\\CTF\\Assemblies\\0x0000{langid}\\{CTF_KEYBOARD}")
    if k is None:
        return None
    clsid, profile = k.get("Default"), k.get("Profile")
    if not isinstance(clsid, str) or clsid.upper() == NULL_GUID:
        return None
    return f"{clsid.upper()}{(profile or NULL_GUID).upper()}"


def layered_driver(r: Reader) -> LayeredDriver | None:
    ident = r.get(I8042, "OverrideKeyboardIdentifier")
    for d in LAYERED_DRIVERS.values():
        if isinstance(ident, str) and ident.upper() == d.identifier:
            return d
    return None


def _ui_language(r: Reader) -> str | None:
    pref = r.get(MUI + "\\Settings", "PreferredUILanguages")
    if isinstance(pref, list) and pref:
        return pref[0]
    return locale_name(r.get(NLS + "\\Language", "InstallLanguage"))


def require_intl(target: Target) -> None:
    """Refuse images whose international settings DISM does not service: XP and older,
    and Vista / Server 2008 (dism-reference.md: "Intl commands are refused for them")."""
    from servicing.features.image_info import Layout, image_info, require_serviceable

    if require_serviceable(image_info(target)).layout == Layout.VISTA:
        raise UnsupportedWindowsError("the international settings of Windows Vista and "
                                      "Server 2008 images cannot be serviced (as in DISM)")


def get_intl(target: Target) -> IntlSettings:
    """DISM /Get-Intl's fields of the image."""
    require_intl(target)
    r = Reader(ImageRegistry(target))
    s = IntlSettings(ui_language=_ui_language(r))
    fallback = r.get(NLS + "\\Language", "InstallLanguageFallback")
    s.ui_language_fallback = fallback if isinstance(fallback, list) else []
    s.system_locale = locale_name(r.get(NLS + "\\Language", "Default")) or \
        locale_name(r.get(NLS + "\\Locale", ""))
    s.time_zone = r.get(TZ_INFO, "TimeZoneKeyName") or r.get(TZ_INFO, "StandardName")
    user = next(iter(r.user_hives()), None)
    if user is not None:
        intl = f"{user}\\{INTERNATIONAL}"
        s.user_locale = r.get(intl, "LocaleName") or locale_name(r.get(intl, "Locale"))
        s.geoid, s.location, s.location_code = read_location(r, user)
        s.keyboards = keyboards(r, user)
    d = layered_driver(r)
    if d is not None:
        s.layered_driver, s.layered_driver_text = d.number, d.text
    for name, bits in installed_languages(r).items():
        s.installed.append(InstalledLanguage(
            name, language_type(bits), s.ui_language_fallback if not bits & 1 else []))
    return s
