"""What is this image? Windows version, architecture, edition, Windows PE or not.

Sources, in order of trust:

* ``SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion``: ``CurrentMajorVersionNumber`` /
  ``CurrentMinorVersionNumber`` (Windows 10+; ``CurrentVersion`` "6.1" before),
  ``CurrentBuildNumber`` (``CurrentBuild``), ``UBR`` (the revision, Windows 10+),
  ``ProductName``, ``EditionID``, ``InstallationType``;
* the version resource and PE machine type of ``<windir>\\System32\\ntoskrnl.exe``
  (read with pefile) -- the revision when the registry has no UBR, and the architecture;
* ``SYSTEM\\<current control set>\\Control\\Session Manager\\Environment\\
  PROCESSOR_ARCHITECTURE`` for the architecture without a kernel file;
* Windows PE: the key ``SOFTWARE\\...\\CurrentVersion\\WinPE``. ``SYSTEM\\...\\Control\\
  MiniNT`` alone does not make an image PE: ordinary Windows 10 has it too (the corpus
  Windows 10 SYSTEM hive holds ``AllowRefsFormatOverNoMirrorVolume`` there);
* UI languages: the subkeys of ``SYSTEM\\...\\Control\\MUI\\UILanguages``, else
  ``Control\\Nls\\Language\\InstallLanguage``.

Every servicing command calls :func:`require_serviceable`, which refuses Windows XP and
older and an unknown architecture.
"""

from __future__ import annotations

import locale
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from servicing.errors import NoWindowsError, UnsupportedWindowsError
from servicing.regf import RegfError
from servicing.registry.hives import current_control_set
from servicing.target import Target

VERSION_KEY = "Microsoft\\Windows NT\\CurrentVersion"
MACHINES = {0x014C: "x86", 0x8664: "amd64", 0xAA64: "arm64", 0x0200: "ia64"}
ENV_ARCH = {"X86": "x86", "AMD64": "amd64", "ARM64": "arm64", "IA64": "ia64"}


class Layout(StrEnum):
    """The servicing layout a version implies (drivers, CBS, intl differ by it)."""

    VISTA = "vista"            # 6.0
    WIN7 = "7"                 # 6.1: Windows 7 / Server 2008 R2
    WIN8 = "8+"                # 6.2 and later


@dataclass
class ImageInfo:
    version: str | None = None                  # major.minor.build.revision
    kernel_version: str | None = None           # ntoskrnl.exe version resource
    architecture: str | None = None
    product_name: str | None = None
    edition_id: str | None = None
    installation_type: str | None = None
    winpe: bool = False
    system_root: str = "Windows"
    languages: list[str] = field(default_factory=list)
    layout: str | None = None

    def to_json(self) -> dict:
        return asdict(self)

    def major_minor(self) -> tuple[int, int] | None:
        if not self.version:
            return None
        major, minor = self.version.split(".")[:2]
        return int(major), int(minor)


def _get(hive, key: str, name: str):
    try:
        return hive.key(key).get(name)
    except RegfError:
        return None


def _open(target: Target, path: str):
    found = target.resolve(path)
    if found is None or target.is_dir(found):
        return None
    return target.open_hive(found, write=False)


def _kernel(target: Target, info: ImageInfo) -> tuple[int, ...] | None:
    path = target.resolve(target.system_path("System32", "ntoskrnl.exe"))
    if path is None:
        return None
    import pefile

    try:
        pe = pefile.PE(data=target.read_file(path), fast_load=True)
        info.architecture = MACHINES.get(pe.FILE_HEADER.Machine)
        pe.parse_data_directories(
            directories=[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_RESOURCE"]])
        fixed = pe.VS_FIXEDFILEINFO[0]
    except (pefile.PEFormatError, AttributeError, IndexError):
        return None
    ms, ls = fixed.FileVersionMS, fixed.FileVersionLS
    return ms >> 16, ms & 0xFFFF, ls >> 16, ls & 0xFFFF


def _from_software(hive, info: ImageInfo) -> tuple[int | None, int | None, int | None, int | None]:
    info.product_name = _get(hive, VERSION_KEY, "ProductName")
    info.edition_id = _get(hive, VERSION_KEY, "EditionID")
    info.installation_type = _get(hive, VERSION_KEY, "InstallationType")
    info.winpe = hive.has_key(VERSION_KEY + "\\WinPE")
    major = _get(hive, VERSION_KEY, "CurrentMajorVersionNumber")
    minor = _get(hive, VERSION_KEY, "CurrentMinorVersionNumber")
    if not (isinstance(major, int) and isinstance(minor, int)):
        major = minor = None
        cv = _get(hive, VERSION_KEY, "CurrentVersion")
        if isinstance(cv, str) and cv.count(".") == 1 and cv.replace(".", "").isdigit():
            major, minor = (int(x) for x in cv.split("."))
    build = _get(hive, VERSION_KEY, "CurrentBuildNumber") or _get(hive, VERSION_KEY,
                                                                    "CurrentBuild")
    build = int(build) if isinstance(build, str) and build.isdigit() else None
    ubr = _get(hive, VERSION_KEY, "UBR")
    return major, minor, build, ubr if isinstance(ubr, int) else None


def _from_system(hive, info: ImageInfo) -> None:
    try:
        control = current_control_set(hive) + "\\Control"
    except RegfError:
        control = "ControlSet001\\Control"
    if info.architecture is None:
        env = _get(hive, control + "\\Session Manager\\Environment", "PROCESSOR_ARCHITECTURE")
        info.architecture = ENV_ARCH.get(env.upper()) if isinstance(env, str) else None
    try:
        info.languages = sorted(k.name for k in hive.key(control + "\\MUI\\UILanguages")
                                .subkeys())
    except RegfError:
        lang = _get(hive, control + "\\Nls\\Language", "InstallLanguage")
        name = locale.windows_locale.get(int(lang, 16)) if isinstance(lang, str) \
            and lang.strip() and all(c in "0123456789abcdefABCDEF" for c in lang) else None
        info.languages = [name.replace("_", "-")] if name else []


def image_info(target: Target) -> ImageInfo:
    """Describe the Windows installation of *target*; NoWindowsError without one."""
    info = ImageInfo(system_root=target.windir)
    config = target.system_path("System32", "config")
    software = _open(target, config + "/SOFTWARE")
    system = _open(target, config + "/SYSTEM")
    if software is None and system is None:
        raise NoWindowsError(f"no Windows installation found in {target.description} "
                             f"(no {config}/SOFTWARE or SYSTEM hive; see --windir)")
    kernel = _kernel(target, info)
    major = minor = build = rev = None
    if software is not None:
        major, minor, build, rev = _from_software(software, info)
    if kernel is not None:
        info.kernel_version = ".".join(map(str, kernel))
        if major is None:
            major, minor, build = kernel[:3]
        if rev is None and kernel[:3] == (major, minor, build):
            rev = kernel[3]
    if system is not None:
        _from_system(system, info)
    if major is not None:
        info.version = f"{major}.{minor}.{build or 0}.{rev or 0}"
        info.layout = _layout(major, minor)
    if info.winpe:
        info.installation_type = "WindowsPE"
    return info


def _layout(major: int, minor: int) -> str | None:
    if major < 6:
        return None
    if (major, minor) == (6, 0):
        return Layout.VISTA
    if (major, minor) == (6, 1):
        return Layout.WIN7
    return Layout.WIN8


def require_serviceable(info: ImageInfo) -> ImageInfo:
    """Refuse images no servicing command can handle."""
    mm = info.major_minor()
    if mm is None:
        raise UnsupportedWindowsError("cannot tell the Windows version of the image "
                                      "(no version in SOFTWARE or ntoskrnl.exe)")
    if mm < (6, 0):
        raise UnsupportedWindowsError(f"Windows {info.version} (XP, Server 2003 or older) "
                                      "cannot be serviced; Vista and later can")
    if info.architecture is None:
        raise UnsupportedWindowsError("unknown architecture (no ntoskrnl.exe machine type "
                                      "or PROCESSOR_ARCHITECTURE)")
    return info


def image_version(target: Target, info: ImageInfo | None = None) -> str:
    """The version for the servicing log, from SOFTWARE alone (cheap: no kernel file, no
    SYSTEM hive): ``10.0.19041.1``, or why there is none. *info* gets SOFTWARE's fields
    (product name, edition) when given."""
    try:
        software = _open(target, target.system_path("System32", "config", "SOFTWARE"))
        if software is None:
            return "unknown (no SOFTWARE hive)"
        major, minor, build, rev = _from_software(software, info or ImageInfo())
    except RegfError as exc:
        return f"unknown ({exc})"
    if major is None:
        return "unknown"
    return f"{major}.{minor}.{build or 0}.{rev or 0}"
