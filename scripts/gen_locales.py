#!/usr/bin/env python3
"""Generate servicing/features/intl_locales.py, the one locale table of `wimfs intl`.

Sources (all machine-read; nothing is typed by hand except MAC_BY_ANSI below):

* ``--csv``: ``windows_locales_extended.csv`` of github.com/lovasoa/lcid-to-codepage
  (public domain; commit a0d5480, data of f30b9e1, 2024-11-02): every locale Windows
  enumerates (EnumSystemLocalesEx) with its LCID (LocaleNameToLCID) and its ANSI and OEM
  code pages (GetLocaleInfoW LOCALE_IDEFAULTANSICODEPAGE / LOCALE_IDEFAULTCODEPAGE),
  produced on a Windows runner. Locales whose ANSI code page is 0 (Unicode-only) are
  left out of that file by its generator.
* Python's ``locale.windows_locale`` (LCID -> name, from [MS-LCID]): LCIDs Windows knows
  that the CSV lacks are the Unicode-only locales (ANSI 0, OEM 1, MAC 2: CP_ACP, CP_OEMCP,
  CP_MACCP, what GetLocaleInfo returns for them).
* ``--intl-inf``: ReactOS 0.4.13 ``media/inf/intl.inf`` ``[Locales]``: the language group
  and the input profiles (``LANGID:KLID``, first = default) of each LCID. IMM32 IME
  layouts (``e0xxxxxx``) are dropped: Windows 8+ uses TSF profiles instead.
* ``IME_DEFAULTS`` below: the default TSF input profiles of eight languages (Microsoft's
  default input profiles table).
* ``--system``: a real Windows 10 SYSTEM hive (the corpus's dissect.regf SYSTEM.gz):
  ``Control\\Nls\\CodePage`` maps each installed code page to its NLS file.

MAC code pages: Windows' LOCALE_IDEFAULTMACCODEPAGE is not in any of these sources. It is
derived from the ANSI code page by the Mac code page of the same script, from Microsoft's
"Code Page Identifiers" table (learn.microsoft.com/windows/win32/intl/code-page-identifiers),
with the four languages that table gives a Mac code page of their own (Icelandic 10079,
Croatian 10082, Romanian 10010, Ukrainian 10017).

Run: python3 scripts/gen_locales.py --csv PATH --intl-inf PATH --system PATH
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import locale
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "servicing" / "features" / "intl_locales.py"

MAC_BY_ANSI = {1250: 10029, 1251: 10007, 1252: 10000, 1253: 10006, 1254: 10081,
               1255: 10005, 1256: 10004, 1257: 10029, 1258: 10000, 874: 10021,
               932: 10001, 936: 10008, 949: 10003, 950: 10002}
MAC_BY_LANGUAGE = {"is": 10079, "hr": 10082, "ro": 10010, "uk": 10017}
#: The default input profile of the languages whose default is a TSF input method, from
#: Microsoft's "Default input profiles (input locales) in Windows" table
#: (learn.microsoft.com/windows-hardware/manufacture/desktop/
#: default-input-locales-for-windows-language-packs), as UniStuttgart-VISUS's
#: DeploymentToolkit InputProfiles.cs (MIT) transcribes it. ReactOS lists IMM32 IMEs
#: (e0010411) for these, which Windows 8+ no longer has. Typed here: eight entries.
IME_DEFAULTS = {
    "ja-JP": "0411:{03B5835F-F03C-411B-9CE2-AA23E1171E36}{A76C93D9-5523-4E90-AAFA-4DB112F9AC76}",
    "ko-KR": "0412:{A028AE76-01B1-46C2-99C4-ACD9858AE02F}{B5FE1F02-D5F2-4445-9C03-C568F23C99A1}",
    "zh-CN": "0804:{81D4E9C9-1D3B-41BC-9E6C-4B40BF79E35E}{FA550B04-5AD7-411F-A5AC-CA038EC515D7}",
    "zh-TW": "0404:{B115690A-EA02-48D5-A231-E3578D2FDF80}{B2F9C502-1742-11D4-9790-0080C882687E}",
    "vi-VN": "042a:{C2CB2CF0-AF47-413E-9780-8BC3A3C16068}{5FB02EC5-0A77-4684-B4FA-DEF8A2195628}",
    "am-ET": "045e:{7C472071-36A7-4709-88CC-859513E583A9}{9A4E8FC7-76BF-4A63-980D-FADDADF7E987}",
    "ti-ET": "0473:{E429B25A-E5D3-4D1F-9BE3-0C608477E3A1}{3CAB88B7-CC3E-46A6-9765-B772AD7761FF}",
    "ii-CN": "0478:{E429B25A-E5D3-4D1F-9BE3-0C608477E3A1}{409C8376-007B-4357-AE8E-26316EE3FB0D}",
}
#: Python's windows_locale spellings that are not the names Windows uses for the LCID
#: (LCIDToLocaleName). ``-SP`` (Serbia and Montenegro, 0x081a/0x0c1a) entries are left
#: out: Windows enumerates those LCIDs under other names with code pages the CSV lacks.
PYTHON_NAMES = {"kh_KH": "km-KH", "div_MV": "dv-MV", "iu_CA": "iu-Cans-CA",
                "mn_CN": "mn-Mong-CN"}


def read_csv(path: Path) -> dict[int, tuple[str, int, int]]:
    """LCID -> (name, ANSI, OEM) for locale names that carry a region (``en-US``)."""
    out: dict[int, tuple[str, int, int]] = {}
    with open(path, encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            name, lcid = row["Locale Name"], int(row["LCID"], 16)
            if not name or "-" not in name or lcid in (0x0C00, 0x1000):
                continue
            prev = out.get(lcid)
            # One LCID can be enumerated under several names (zh-Hans-CN and zh-CN,
            # uz-Latn and uz-Latn-UZ): keep the one LCIDToLocaleName gives, a name
            # ending in a region with the fewest parts.
            if prev is None or _rank(name) < _rank(prev[0]):
                out[lcid] = (name, int(row["ANSI CodePage"]), int(row["OEM CodePage"]))
    return out


def _rank(name: str) -> tuple[int, int]:
    region = re.fullmatch(r"[A-Z]{2}|[0-9]{3}", name.split("-")[-1]) is not None
    return (0 if region else 1, name.count("-"))


def read_intl_inf(path: Path) -> dict[int, tuple[int, list[str]]]:
    """LCID -> (language group, input profiles) from intl.inf [Locales]."""
    out = {}
    section = None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.split(";", 1)[0].strip()
        if line.startswith("["):
            section = line.strip("[]").lower()
            continue
        if section != "locales" or "=" not in line:
            continue
        key, value = (p.strip() for p in line.split("=", 1))
        fields = [f.strip() for f in value.split(",")]
        profiles = [f.lower() for f in fields[4:]
                    if re.fullmatch(r"[0-9a-fA-F]{4}:[0-9a-fA-F]{8}", f)
                    and not f.lower().split(":")[1].startswith("e0")]
        group = int(fields[2]) if fields[2].isdigit() else 0
        out[int(key, 16)] = (group, list(dict.fromkeys(profiles)))
    return out


def read_codepages(path: Path) -> dict[int, str]:
    sys.path.insert(0, str(REPO))
    from servicing.regf import Hive

    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    h = Hive.from_bytes(data)
    cur = h.key("Select").value("Current").data
    key = h.key(f"ControlSet{cur:03d}\\Control\\Nls\\CodePage")
    return {int(v.name): v.data for v in key.values() if v.name.isdigit() and v.data}


def mac_codepage(name: str, ansi: int) -> int:
    if ansi == 0:
        return 2
    return MAC_BY_LANGUAGE.get(name.split("-")[0].lower(), MAC_BY_ANSI.get(ansi, 10000))


def build(csv_path: Path, inf_path: Path, system_path: Path) -> str:
    known = read_csv(csv_path)
    inf = read_intl_inf(inf_path)
    files = read_codepages(system_path)
    rows = {}
    for lcid, (name, ansi, oem) in known.items():
        rows[lcid] = (name, ansi, oem, mac_codepage(name, ansi), False)
    for lcid, pyname in locale.windows_locale.items():
        name = PYTHON_NAMES.get(pyname, pyname.replace("_", "-"))
        if lcid in rows or not re.fullmatch(r"[a-z]{2,3}(-[A-Z][a-z]{3})?-[A-Z]{2}", name) \
                or name.endswith("-SP"):
            continue
        rows[lcid] = (name, 0, 1, 2, True)
    buf = io.StringIO()
    buf.write(HEADER)
    buf.write("LOCALES: tuple[Locale, ...] = (\n")
    for lcid in sorted(rows):
        name, ansi, oem, mac, uonly = rows[lcid]
        group, profiles = inf.get(lcid, (0, []))
        if name in IME_DEFAULTS:
            profiles = [IME_DEFAULTS[name]] + [p for p in profiles
                                               if p != IME_DEFAULTS[name]]
        buf.write(f"    Locale({name!r}, 0x{lcid:04x}, {ansi}, {oem}, {mac}, {uonly}, {group}, "
                  f"{tuple(profiles)!r}),\n")
    buf.write(")\n\n#: code page -> its NLS file (Control\\Nls\\CodePage of Windows 10)\n")
    buf.write("CODEPAGE_FILES: dict[int, str] = {\n")
    for cp in sorted(files):
        buf.write(f"    {cp}: {files[cp]!r},\n")
    buf.write("}\n")
    return buf.getvalue()


HEADER = '''"""The locale table of `wimfs intl` (GENERATED by scripts/gen_locales.py: do not edit).

Sources (see that script): lovasoa/lcid-to-codepage windows_locales_extended.csv (LCIDs,
names, ANSI and OEM code pages as GetLocaleInfoW reports them on Windows), Python's
locale.windows_locale ([MS-LCID]; the LCIDs missing from that file are Unicode-only),
ReactOS 0.4.13 intl.inf [Locales] (language group, default input profiles), a real
Windows 10 SYSTEM hive (Control\\\\Nls\\\\CodePage: NLS file of each code page), and
Microsoft's "Code Page Identifiers" table (Mac code page of each script).
"""

from __future__ import annotations

from typing import NamedTuple


class Locale(NamedTuple):
    name: str
    lcid: int
    ansi: int            # 0 = Unicode-only (no ANSI code page)
    oem: int             # 1 = CP_OEMCP for a Unicode-only locale
    mac: int             # 2 = CP_MACCP for a Unicode-only locale
    unicode_only: bool
    group: int           # language group (Control\\\\Nls\\\\Language Groups), 0 unknown
    keyboards: tuple[str, ...]   # default input profiles, LANGID:KLID, first = default


'''


def main() -> int:
    mirror = Path("/work/.mirror/lovasoa+lcid-to-codepage/repo/windows_locales_extended.csv")
    corpus = REPO.parent / "shared" / "corpus"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--csv", type=Path, default=mirror)
    p.add_argument("--intl-inf", type=Path,
                   default=corpus / "inf/reactos-0.4.13/media/inf/intl.inf")
    p.add_argument("--system", type=Path, default=corpus / "hives/dissect.regf/SYSTEM.gz")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    args.out.write_text(build(args.csv, args.intl_inf, args.system), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
