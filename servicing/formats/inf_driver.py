"""What a driver INF says: [Version], models for a platform, install sections.

Pure like :mod:`servicing.formats.inf`: parsed INFs in, dataclasses out. The rules are
windows-driver-docs' "INF Version Section", "INF Manufacturer Section", "INF Models
Section", "INF DDInstall Section", "INF CopyFiles/AddReg/AddService/DestinationDirs/
SourceDisksNames/SourceDisksFiles", "Using DIRIDs" and "Source Media for INFs".

Platform choice as Windows makes it: among a models line's decorations
``NT[arch][.major[.minor[.producttype[.suitemask[.build]]]]]`` those whose architecture is
absent or the image's and whose version is not above the image's are candidates; the
closest version wins, an architecture-specific one over a plain ``NT`` of equal version.
The undecorated section is used only on x86 (64-bit Windows requires a decoration).
Install sections are looked up the same way (``X.NTamd64``, ``X.NT``, then ``X``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from servicing.formats.inf import Inf, InfError, InfLine, InfTemplateError, parse_inf

ARCHES = ("x86", "amd64", "arm64", "ia64", "arm")

# AddReg flags (inf-addreg-directive.md)
FLG_ADDREG_BINVALUETYPE = 0x1
FLG_ADDREG_NOCLOBBER = 0x2
FLG_ADDREG_DELVAL = 0x4
FLG_ADDREG_APPEND = 0x8
FLG_ADDREG_KEYONLY = 0x10
FLG_ADDREG_OVERWRITEONLY = 0x20
FLG_ADDREG_TYPE_MASK = 0xFFFF0000 | FLG_ADDREG_BINVALUETYPE
REG_SZ, REG_EXPAND_SZ, REG_BINARY, REG_DWORD, REG_MULTI_SZ, REG_QWORD, REG_NONE = \
    1, 2, 3, 4, 7, 11, 0
_TYPES = {0x00000000: REG_SZ, 0x00010000: REG_MULTI_SZ, 0x00020000: REG_EXPAND_SZ,
          0x00010001: REG_DWORD, 0x00020001: REG_NONE, 0x00000001: REG_BINARY}


@dataclass(frozen=True)
class Platform:
    """The image an INF is read for: ``arch`` as in :data:`ARCHES`, NT version, build."""

    arch: str
    major: int = 10
    minor: int = 0
    build: int = 0
    product_type: int | None = None     # 1 workstation, 2 domain controller, 3 server


@dataclass(frozen=True)
class Decoration:
    text: str
    arch: str = ""
    major: int | None = None
    minor: int | None = None
    product_type: int | None = None
    build: int | None = None

    def matches(self, p: Platform) -> bool:
        if self.arch and self.arch != p.arch:
            return False
        if self.major is not None and (self.major, self.minor or 0) > (p.major, p.minor):
            return False
        if (self.major, self.minor or 0) == (p.major, p.minor) and self.build and \
                self.build > p.build:
            return False
        return self.product_type is None or p.product_type in (None, self.product_type)

    def rank(self) -> tuple:
        return (self.major or 0, self.minor or 0, self.build or 0, bool(self.arch),
                self.product_type is not None)


def parse_decoration(text: str) -> Decoration | None:
    """``NTamd64.10.0...16299`` -> Decoration; None when it is not an NT decoration."""
    parts = text.split(".")
    head = parts[0].lower()
    if not head.startswith("nt") or head[2:] not in ("", *ARCHES):
        return None
    nums = []
    for p in (parts[1:] + [""] * 5)[:5]:
        p = p.strip()
        if p and not re.fullmatch(r"0x[0-9a-f]+|\d+", p, re.I):
            return None
        nums.append(int(p, 0) if p else None)
    return Decoration(text, head[2:], nums[0], nums[1], nums[2], nums[4])


def best_decoration(decorations, platform: Platform) -> Decoration | None:
    found = [d for d in decorations if d is not None and d.matches(platform)]
    return max(found, key=Decoration.rank) if found else None


@dataclass
class DriverVersion:
    date: tuple[int, int, int] | None        # (year, month, day)
    version: tuple[int, int, int, int]

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))

    @property
    def date_text(self) -> str:
        return "" if self.date is None else "%d/%d/%d" % self.date


@dataclass
class VersionInfo:
    signature: str
    class_name: str
    class_guid: str
    provider: str
    catalogs: dict[str, str]             # "" (undecorated), "nt", "ntamd64", ... -> file
    driver_ver: DriverVersion | None
    pnp_lockdown: bool
    package_type: str

    def catalog(self, arch: str) -> str | None:
        return self.catalogs.get(f"nt{arch}") or self.catalogs.get("nt") or \
            self.catalogs.get("")


def number(inf_name: str, text: str, lineno: int | None, what: str) -> int:
    """An INF number: decimal or 0x-hex; InfError naming the line otherwise."""
    t = text.strip()
    try:
        return int(t, 16) if t.lower().startswith("0x") else int(t)
    except ValueError:
        raise InfError(inf_name, f"{what}: not a number: {text!r}", lineno) from None


def parse_driver_ver(inf: Inf, line: InfLine) -> DriverVersion:
    date_text, ver_text = line.field(0), line.field(1)
    m = re.fullmatch(r"(\d{1,2})[/-](\d{1,2})[/-](\d{4})", date_text.strip())
    if not m:
        raise InfError(inf.name, f"DriverVer date is not mm/dd/yyyy: {date_text!r}",
                       line.lineno)
    month, day, year = map(int, m.groups())
    parts = [p for p in ver_text.strip().split(".") if p != ""] if ver_text else []
    if len(parts) > 4 or not all(p.isdigit() and int(p) < 65536 for p in parts):
        raise InfError(inf.name, f"DriverVer version is not w.x.y.z: {ver_text!r}",
                       line.lineno)
    nums = [int(p) for p in parts] + [0] * (4 - len(parts))
    return DriverVersion((year, month, day), tuple(nums))


def version_info(inf: Inf) -> VersionInfo:
    sec = inf.section("Version")
    if sec is None:
        raise InfError(inf.name, "no [Version] section")
    get = {}
    catalogs = {}
    for ln in sec.lines:
        if ln.key_ci is None:
            continue
        if ln.key_ci == "catalogfile" or ln.key_ci.startswith("catalogfile."):
            catalogs[ln.key_ci[12:]] = ln.field(0)
        get.setdefault(ln.key_ci, ln)
    drv = get.get("driverver")
    return VersionInfo(
        signature=get["signature"].field(0) if "signature" in get else "",
        class_name=get["class"].field(0) if "class" in get else "",
        class_guid=get["classguid"].field(0).upper() if "classguid" in get else "",
        provider=get["provider"].field(0) if "provider" in get else "",
        catalogs=catalogs,
        driver_ver=parse_driver_ver(inf, drv) if drv else None,
        pnp_lockdown=bool("pnplockdown" in get and get["pnplockdown"].field(0).strip()
                          not in ("", "0")),
        package_type=get["driverpackagetype"].field(0) if "driverpackagetype" in get
        else "")


def check_signature(inf: Inf) -> None:
    sig = version_info(inf).signature.lower()
    if sig not in ("$windows nt$", "$chicago$", "$windows 95$"):
        line = inf.section("Version").first("Signature")
        raise InfError(inf.name, "[Version] Signature is not \"$Windows NT$\"",
                       line.lineno if line else inf.section("Version").lineno)


@dataclass
class HardwareEntry:
    manufacturer: str
    models_section: str
    description: str
    install_section: str
    hardware_id: str
    compatible_ids: list[str]
    lineno: int


def models(inf: Inf, platform: Platform) -> list[HardwareEntry]:
    """Every hardware entry of every manufacturer that applies to ``platform``."""
    entries = []
    for ln in inf.lines("Manufacturer"):
        manufacturer = ln.key if ln.key is not None else ln.field(0)
        fields = ln.fields if ln.key is not None else ln.fields[:1]
        if not fields or not fields[0]:
            continue
        section = _models_section(inf, fields[0], fields[1:], platform)
        if section is None:
            continue
        for m in inf.lines(section):
            if m.key is None or not m.field(0):
                continue
            ids = [f for f in m.fields[1:] if f]   # none: installed by name (printers)
            entries.append(HardwareEntry(manufacturer, section, m.key, m.field(0),
                                         ids[0] if ids else "", ids[1:], m.lineno))
    return entries


def _models_section(inf: Inf, base: str, decorations: list[str],
                    platform: Platform) -> str | None:
    best = best_decoration([parse_decoration(d) for d in decorations], platform)
    if best is not None:
        return f"{base}.{best.text}"
    if platform.arch == "x86" and inf.has(base):
        return base
    return None


def decorated_section(inf: Inf, base: str, platform: Platform) -> str | None:
    """The install section Windows uses for ``base``: best ``base.NT...``, else ``base``."""
    prefix = base.lower() + "."
    cands = []
    for key, sec in inf.sections.items():
        if key.startswith(prefix):
            rest = sec.name[len(prefix):]
            deco = parse_decoration(rest)
            if deco is not None:
                cands.append(deco)
    best = best_decoration(cands, platform)
    if best is not None:
        return f"{base}.{best.text}"
    return base if inf.has(base) else None


def exclude_ids(inf: Inf, platform: Platform) -> set[str]:
    found = set()
    for name in ("ControlFlags", f"ControlFlags.NT{platform.arch}", "ControlFlags.NT"):
        for ln in inf.lines(name):
            if ln.key_ci == "excludefromselect":
                found.update(f.upper() for f in ln.fields if f and f != "*")
    return found


def load_inf(data: bytes, name: str, *, langid: int | None = None) -> Inf:
    """Parse a driver INF and check it is one (not a template, right Signature)."""
    inf = parse_inf(data, name, langid=langid)
    if inf.template:
        raise InfTemplateError(name, "a stampinf template ($ARCH$ placeholders), not an INF")
    check_signature(inf)
    return inf

