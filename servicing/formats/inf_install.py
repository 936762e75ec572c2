"""Install sections of an INF: files to copy, registry lines, services.

Pure: parsed INFs in, dataclasses out. ``install(inf, "X", platform)`` reads the
decorated DDInstall section Windows would use and its ``.HW`` and ``.Services``
sections, follows ``Needs`` (also into INFs named by ``Include``, loaded through a
callback) and resolves every ``CopyFiles`` entry to its source in the package
(``[SourceDisksNames]``/``[SourceDisksFiles]``, arch-decorated first) and its
destination (``[DestinationDirs]``, a DIRID and a subdirectory). Names that climb out
(``..``), absolute names and drive letters are refused with the INF's line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from servicing.formats.inf import Inf, InfError, InfLine, parse_inf
from servicing.formats.inf_driver import (
    _TYPES, FLG_ADDREG_BINVALUETYPE, FLG_ADDREG_DELVAL, FLG_ADDREG_KEYONLY,
    FLG_ADDREG_TYPE_MASK, REG_BINARY, REG_DWORD, REG_EXPAND_SZ, REG_MULTI_SZ, REG_NONE,
    REG_QWORD, REG_SZ, Platform, decorated_section, number)

# DIRIDs (using-dirids.md) as paths below the image root; "{sys}" is the Windows folder.
_DIRIDS = {
    10: "{sys}", 11: "{sys}/System32", 12: "{sys}/System32/drivers", 17: "{sys}/INF",
    18: "{sys}/Help", 20: "{sys}/Fonts", 23: "{sys}/System32/spool/drivers/color",
    24: "", 25: "{sys}", 30: "", 50: "{sys}/System", 51: "{sys}/System32/spool",
    54: "", 16419: "ProgramData", 16422: "Program Files",
    16427: "Program Files/Common Files",
}
_PRINT_ARCH = {"x86": "W32X86", "amd64": "x64", "arm64": "ARM64", "ia64": "IA64"}
DIRID_DRIVER_STORE = 13
DIRID_ABSOLUTE = -1


def safe_relative(inf_name: str, text: str, lineno: int | None, what: str, *,
                  rooted: bool = False) -> str:
    """A relative path inside its base ('/'-separated), or InfError naming the line.
    ``rooted``: a leading backslash means the base itself (source media paths)."""
    parts = [p for p in re.split(r"[\\/]", text.strip()) if p not in ("", ".")]
    if re.match(r"^[A-Za-z]:", text.strip()) or not rooted and \
            text.strip().startswith(("\\", "/")) and parts:
        raise InfError(inf_name, f"{what} is an absolute path: {text!r}", lineno)
    if ".." in parts:
        raise InfError(inf_name, f"{what} climbs out of its folder: {text!r}", lineno)
    if any(":" in p or any(ord(c) < 32 or c in '<>"|?*' for c in p) for p in parts):
        raise InfError(inf_name, f"{what} is not a valid Windows name: {text!r}", lineno)
    return "/".join(parts)


def dirid_path(dirid: int, *, platform: Platform, system_root: str = "Windows",
               store_dir: str | None = None) -> str | None:
    """The image-relative folder of a DIRID, or None for one an image cannot hold."""
    if dirid == DIRID_DRIVER_STORE:
        return store_dir
    if dirid == 16425:            # SysWOW64 on 64-bit Windows, System32 on x86
        return f"{system_root}/SysWOW64" if platform.arch != "x86" else \
            f"{system_root}/System32"
    if dirid == 16426:
        return "Program Files (x86)" if platform.arch != "x86" else "Program Files"
    if dirid == 16428:
        return "Program Files (x86)/Common Files" if platform.arch != "x86" else \
            "Program Files/Common Files"
    if dirid == 52:
        return f"{system_root}/System32/spool/drivers/{_PRINT_ARCH.get(platform.arch, 'x64')}"
    if dirid == 55:
        return f"{system_root}/System32/spool/prtprocs/{_PRINT_ARCH.get(platform.arch, 'x64')}"
    base = _DIRIDS.get(dirid)
    return None if base is None else base.format(sys=system_root)


def split_dirid(text: str) -> tuple[int | None, str]:
    """``%12%\\x.sys`` -> (12, "x.sys"); a text without a leading DIRID -> (None, text)."""
    m = re.fullmatch(r"\s*%(-?\d+)%\s*[\\/]?(.*)", text, re.S)
    return (int(m.group(1)), m.group(2)) if m else (None, text)


@dataclass
class FileCopy:
    inf: str                    # the INF whose section names the file
    name: str                   # destination file name
    source: str                 # file name on the source media
    source_path: str | None     # '/'-path in the package folder; None: not listed
    dirid: int
    subdir: str                 # '/'-path below the DIRID
    section: str
    lineno: int


@dataclass
class RegLine:
    """One AddReg/DelReg line: ``root, subkey, value name, flags, data...``."""

    inf: str
    root: str
    subkey: str
    name: str | None            # None: the key's default value
    flags: int
    data: list[str]
    lineno: int
    delete: bool = False        # from a DelReg section

    @property
    def key_only(self) -> bool:
        return bool(self.flags & FLG_ADDREG_KEYONLY) or (self.name is None and not self.data
                                                        and not self.delete)

    @property
    def vtype(self) -> int:
        t = self.flags & FLG_ADDREG_TYPE_MASK
        if t in _TYPES:
            return _TYPES[t]
        return (t >> 16) if t & FLG_ADDREG_BINVALUETYPE else REG_SZ

    def value(self):
        """The python value for the regf value codec (str, list[str], int, bytes)."""
        vt, data = self.vtype, self.data
        if vt in (REG_SZ, REG_EXPAND_SZ):
            return data[0] if data else ""
        if vt == REG_MULTI_SZ:
            return list(data)
        if vt in (REG_DWORD, REG_QWORD) and len(data) <= 1:
            return number(self.inf, data[0], self.lineno, "registry number") \
                if data and data[0] else 0
        try:
            raw = bytes(int(b, 16) for b in data if b != "")
        except ValueError:
            raise InfError(self.inf, f"bad hex byte in registry data {data!r}",
                           self.lineno) from None
        if vt == REG_DWORD:
            return int.from_bytes(raw[:4].ljust(4, b"\0"), "little")
        if vt == REG_QWORD:
            return int.from_bytes(raw[:8].ljust(8, b"\0"), "little")
        return raw


@dataclass
class ServiceInstall:
    name: str
    flags: int
    display_name: str = ""
    display_name_raw: str = ""  # as written, e.g. "%Svc.Desc%"
    description: str = ""
    service_type: int = 1
    start_type: int = 3
    error_control: int = 1
    binary: str = ""            # ServiceBinary as written (with its DIRID)
    group: str = ""
    dependencies: list[str] = field(default_factory=list)
    start_name: str = ""
    add_reg: list[RegLine] = field(default_factory=list)
    del_reg: list[RegLine] = field(default_factory=list)
    lineno: int = 0


@dataclass
class Install:
    section: str | None                      # the decorated DDInstall section used
    copy_files: list[FileCopy] = field(default_factory=list)
    add_reg: list[RegLine] = field(default_factory=list)
    del_reg: list[RegLine] = field(default_factory=list)
    hw_add_reg: list[RegLine] = field(default_factory=list)
    services: list[ServiceInstall] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)


Loader = Callable[[str], bytes | None]


class _Context:
    """The INF being installed and the INFs its Include lines brought in."""

    def __init__(self, inf: Inf, platform: Platform, loader: Loader | None):
        self.infs = [inf]
        self.platform = platform
        self.loader = loader
        self.names = {inf.name.lower()}
        self.unresolved = False           # Include lines seen while no loader was given

    def include(self, owner: Inf, line: InfLine, chain: tuple[str, ...]) -> list[str]:
        names = [f for f in line.fields if f]
        for name in names:
            key = name.lower()
            if key in chain:
                raise InfError(owner.name, f"Include loop: {' -> '.join(chain + (key,))}",
                               line.lineno)
            if key in self.names:
                continue
            data = self.loader(name) if self.loader is not None else None
            if data is None:              # not readable here: its sections are skipped
                self.unresolved = True
                continue
            inc = parse_inf(data, name, langid=owner.langid)
            self.names.add(key)
            self.infs.append(inc)
            for sub in inc.lines("Version") + _all_include_lines(inc):
                if sub.key_ci == "include":
                    self.include(inc, sub, chain + (key,))
        return names

    def find(self, section: str, owner: Inf | None = None) -> tuple[Inf, str] | None:
        for inf in ([owner] if owner else []) + self.infs:
            if inf.has(section):
                return inf, inf.section(section).name
        return None

    def owner_of(self, inf: Inf, section: str, lineno: int, what: str) -> Inf | None:
        """The INF holding a section named by ``inf``; None when it may be in an
        Include we could not read; InfError when it is nowhere."""
        found = self.find(section, inf)
        if found is not None:
            return found[0]
        if self.unresolved:
            return None
        raise InfError(inf.name, f"{what} section [{section}] not found", lineno)


def _all_include_lines(inf: Inf) -> list[InfLine]:
    return [ln for sec in inf.sections.values() for ln in sec.lines if ln.key_ci == "include"]


def _directives(ctx: _Context, inf: Inf, section: str, stack: tuple, out: list,
                includes: list[str]) -> None:
    """Collect (owner INF, line) of a section and of the sections it Needs."""
    sec = inf.section(section)
    if sec is None:
        return
    for ln in sec.lines:
        if ln.key_ci == "include":
            includes += ctx.include(inf, ln, (inf.name.lower(),))
    for ln in sec.lines:
        if ln.key_ci != "needs":
            out.append((inf, ln))
            continue
        for need in (f for f in ln.fields if f):
            ident = need.lower()
            if ident in stack:
                raise InfError(inf.name, f"Needs loop: {' -> '.join(stack + (ident,))}",
                               ln.lineno)
            owner = ctx.owner_of(inf, need, ln.lineno, "Needs")
            if owner is not None:
                _directives(ctx, owner, need, stack + (ident,), out, includes)


def install(inf: Inf, base: str, platform: Platform, *, loader: Loader | None = None,
            system_root: str = "Windows") -> Install:
    """What installing DDInstall section ``base`` on ``platform`` does."""
    ctx = _Context(inf, platform, loader)
    section = decorated_section(inf, base, platform)
    result = Install(section)
    if section is None:
        return result
    main: list = []
    _directives(ctx, inf, section, (section.lower(),), main, result.includes)
    for owner, ln in main:
        key = ln.key_ci
        if key == "copyfiles":
            result.copy_files += copy_files(ctx, owner, ln)
        elif key == "addreg":
            result.add_reg += reg_lines(ctx, owner, ln)
        elif key == "delreg":
            result.del_reg += reg_lines(ctx, owner, ln, delete=True)
    hw: list = []
    _directives(ctx, inf, f"{section}.HW", (f"{section}.hw".lower(),), hw, result.includes)
    for owner, ln in hw:
        if ln.key_ci == "addreg":
            result.hw_add_reg += reg_lines(ctx, owner, ln)
    svc: list = []
    _directives(ctx, inf, f"{section}.Services", (f"{section}.services".lower(),), svc,
                result.includes)
    for owner, ln in svc:
        if ln.key_ci == "addservice":
            result.services.append(service(ctx, owner, ln))
    return result


def copy_files(ctx: _Context, inf: Inf, line: InfLine) -> list[FileCopy]:
    """The files one ``CopyFiles=`` line names (``@file`` or file-list sections)."""
    out, platform = [], ctx.platform
    for entry in (f for f in line.fields if f):
        if entry.startswith("@"):
            dirid, sub = destination(inf, None)
            out.append(_file(inf, entry[1:], entry[1:], dirid, sub, "", line.lineno,
                             platform))
            continue
        owner = ctx.owner_of(inf, entry, line.lineno, "CopyFiles")
        if owner is None:
            continue
        inf = owner
        dirid, sub = destination(inf, entry)
        for fl in inf.lines(entry):
            if fl.key is not None or not fl.field(0):
                continue
            out.append(_file(inf, fl.field(0), fl.field(1) or fl.field(0), dirid, sub,
                             entry, fl.lineno, platform))
    return out


def destination(inf: Inf, section: str | None) -> tuple[int, str]:
    """(DIRID, subdir) of a file-list section from [DestinationDirs]; default DIRID 11."""
    dd = inf.section("DestinationDirs")
    line = None
    if dd is not None:
        line = (dd.first(section) if section else None) or dd.first("DefaultDestDir")
    if line is None:
        return 11, ""
    dirid = number(inf.name, line.field(0), line.lineno, "DestinationDirs DIRID")
    sub = line.field(1)
    if dirid == DIRID_ABSOLUTE:
        raise InfError(inf.name, f"absolute destination directory (DIRID -1) {sub!r}",
                       line.lineno)
    return dirid, safe_relative(inf.name, sub, line.lineno, "destination subdirectory")


def _file(inf: Inf, name: str, source: str, dirid: int, sub: str, section: str,
          lineno: int, platform: Platform) -> FileCopy:
    name_rel = safe_relative(inf.name, name, lineno, "destination file name")
    source_rel = safe_relative(inf.name, source, lineno, "source file name")
    if "/" in name_rel or not name_rel:
        raise InfError(inf.name, f"destination file name is not a plain name: {name!r}",
                       lineno)
    return FileCopy(inf.name, name_rel, source_rel,
                    source_location(inf, source_rel, platform), dirid, sub, section, lineno)


def source_location(inf: Inf, source: str, platform: Platform) -> str | None:
    """The package-relative path of a source file, or None when it is not listed."""
    arch = platform.arch
    for suffix in (f".{arch}", ""):
        for ln in inf.lines(f"SourceDisksFiles{suffix}"):
            if ln.key is None or ln.key.lower() != source.lower():
                continue
            disk = ln.field(0)
            disk_path = _disk_path(inf, disk, arch, ln.lineno)
            if disk_path is None:
                return None
            sub = safe_relative(inf.name, ln.field(1), ln.lineno, "source subdirectory")
            return "/".join(p for p in (disk_path, sub, source) if p)
    return None


def _disk_path(inf: Inf, disk: str, arch: str, lineno: int) -> str | None:
    """The folder of a source disk; None when [SourceDisksNames] does not list it
    (system INFs take it from a LayoutFile)."""
    for suffix in (f".{arch}", ""):
        for ln in inf.lines(f"SourceDisksNames{suffix}"):
            if ln.key is not None and ln.key.strip() == disk.strip():
                return safe_relative(inf.name, ln.field(3), ln.lineno, "source disk path",
                                     rooted=True)
    return None


def package_sources(inf: Inf, platform: Platform) -> dict[str, str]:
    """Every file [SourceDisksFiles] lists for the platform: lower name -> package path."""
    found: dict[str, str] = {}
    for suffix in ("", f".{platform.arch}"):
        for ln in inf.lines(f"SourceDisksFiles{suffix}"):
            if ln.key is None or not ln.key.strip():
                continue
            name = safe_relative(inf.name, ln.key, ln.lineno, "source file name")
            disk_path = _disk_path(inf, ln.field(0), platform.arch, ln.lineno)
            if disk_path is None:
                raise InfError(inf.name, f"source disk {ln.field(0)!r} is not in "
                               "[SourceDisksNames]", ln.lineno)
            sub = safe_relative(inf.name, ln.field(1), ln.lineno, "source subdirectory")
            found[name.lower()] = "/".join(p for p in (disk_path, sub, name) if p)
    return found


def reg_lines(ctx: _Context, owner: Inf, line: InfLine, *,
              delete: bool = False) -> list[RegLine]:
    """The lines of the AddReg (or DelReg) sections one directive names."""
    out = []
    for name in (s for s in line.fields if s):
        inf = ctx.owner_of(owner, name, line.lineno, "registry")
        if inf is None:
            continue
        for ln in inf.lines(name):
            if ln.key is not None:            # "HKR,..." never has '='; skip odd lines
                continue
            root = ln.field(0).upper()
            if root not in ("HKR", "HKLM", "HKCU", "HKCR", "HKU"):
                raise InfError(inf.name, f"unknown registry root {ln.field(0)!r}",
                               ln.lineno)
            flags = number(inf.name, ln.field(3), ln.lineno, "registry flags") if ln.field(3) else 0
            if delete and len(ln.fields) < 4:
                flags = 0
            value_name = ln.field(2) if len(ln.fields) > 2 and ln.fields[2] != "" else None
            line = RegLine(inf.name, root, ln.field(1), value_name, flags, ln.fields[4:],
                           ln.lineno, delete or bool(flags & FLG_ADDREG_DELVAL))
            line.value() if not (line.delete or line.key_only) else None
            out.append(line)
    return out


def service(ctx: _Context, inf: Inf, line: InfLine) -> ServiceInstall:
    """An ``AddService=name,flags,section`` line and its service-install section."""
    name = line.field(0)
    flags = number(inf.name, line.field(1), line.lineno, "AddService flags") if line.field(1) else 0
    svc = ServiceInstall(name, flags, lineno=line.lineno)
    section = line.field(2)
    if not section:
        return svc
    if ctx.owner_of(inf, section, line.lineno, "service install") is not inf:
        raise InfError(inf.name, f"service install section [{section}] not found",
                       line.lineno)
    if not name or safe_relative(inf.name, name, line.lineno, "service name") != name:
        raise InfError(inf.name, f"bad service name {name!r}", line.lineno)
    for ln in inf.lines(section):
        _service_value(ctx, inf, svc, ln)
    return svc


_SVC_NUMBERS = {"servicetype": "service_type", "starttype": "start_type",
                "errorcontrol": "error_control"}
_SVC_TEXTS = {"displayname": "display_name", "description": "description",
              "servicebinary": "binary", "loadordergroup": "group",
              "startname": "start_name"}


def _service_value(ctx: _Context, inf: Inf, svc: ServiceInstall, ln: InfLine) -> None:
    key = ln.key_ci
    if key in _SVC_NUMBERS:
        setattr(svc, _SVC_NUMBERS[key], number(inf.name, ln.field(0), ln.lineno, ln.key))
    elif key in _SVC_TEXTS:
        setattr(svc, _SVC_TEXTS[key], ",".join(ln.fields))
        if key == "displayname":
            svc.display_name_raw = ",".join(ln.raw_fields or ln.fields)
    elif key == "dependencies":
        svc.dependencies += [f for f in ln.fields if f]
    elif key == "addreg":
        svc.add_reg += reg_lines(ctx, inf, ln)
    elif key == "delreg":
        svc.del_reg += reg_lines(ctx, inf, ln, delete=True)


__all__ = ["FileCopy", "Install", "RegLine", "ServiceInstall", "dirid_path", "install",
           "package_sources", "safe_relative", "source_location", "split_dirid",
           "REG_BINARY", "REG_NONE", "REG_QWORD", "FLG_ADDREG_DELVAL"]
