"""Windows PE settings of an image (DISM /Get-PESettings, /Set-ScratchSpace,
/Set-TargetPath) and the script PE runs at start (wimlib's mkwinpeimg ``--start-script``).

Where each value lives (dism-reference.md sections 1.6 and 2.1):

* scratch space: ``SYSTEM\\<current control set>\\Services\\FBWF\\WinPECacheThreshold``,
  REG_DWORD, in MB; DISM accepts 32, 64, 128, 256 and 512;
* target path: ``SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\WinPE\\InstRoot``,
  REG_SZ (``X:\\`` by default);
* the PE version: ``...\\WinPE\\Version``;
* what PE starts: ``<windir>\\System32\\winpeshl.ini`` ``[LaunchApps]`` (one program a
  line, ``program, arguments``, run in order), else ``cmd /k startnet.cmd``.

An image is Windows PE when SOFTWARE has the ``WinPE`` key (image_info); every function
here refuses other images with :class:`NotWinPEError`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from servicing.errors import RefusedError, ServicingError, TargetPathError
from servicing.errors import ERROR_INVALID_PARAMETER
from servicing.features.image_info import ImageInfo, image_info, require_serviceable
from servicing.regf import REG_DWORD, REG_SZ, RegfError
from servicing.registry.edits import transaction
from servicing.registry.hives import ImageRegistry
from servicing.target import Target, join

WINPE_KEY = "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\WinPE"
FBWF_KEY = "HKLM\\SYSTEM\\CurrentControlSet\\Services\\FBWF"
SCRATCH_VALUE = "WinPECacheThreshold"
TARGET_VALUE = "InstRoot"
SCRATCH_SIZES = (32, 64, 128, 256, 512)
WINPESHL = "System32/winpeshl.ini"
STARTNET = "System32/startnet.cmd"
SCRIPT_SUFFIXES = (".cmd", ".bat")
# Characters Windows forbids in a path component ("Naming Files, Paths, and Namespaces")
# besides the quotes and blanks DISM names.
_BAD_PATH_CHARS = set('<>|*?/')


class NotWinPEError(RefusedError):
    """A Windows PE command on an image that is not Windows PE (DISM: Error 50)."""


class PESettingError(ServicingError):
    """A PE setting DISM would refuse (DISM: Error 87, the parameter is incorrect)."""

    exit_code = 2
    hresult = None
    win32 = ERROR_INVALID_PARAMETER


@dataclass
class PESettings:
    version: str | None                  # WinPE\Version
    profiling: bool | None               # None: cannot tell (PE 3.x, storage undocumented)
    scratch_space: int | None            # MB
    target_path: str | None
    launch_apps: list[str] = field(default_factory=list)   # winpeshl.ini [LaunchApps]
    startnet: list[str] = field(default_factory=list)      # startnet.cmd's commands

    def to_json(self) -> dict:
        return asdict(self)


def require_winpe(target: Target) -> ImageInfo:
    info = require_serviceable(image_info(target))
    if not info.winpe:
        raise NotWinPEError(f"{target.description} is not a Windows PE image (no "
                            "SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\WinPE key); "
                            "the Windows PE commands apply to Windows PE images only")
    return info


def _value(reg: ImageRegistry, key: str, name: str):
    try:
        return reg.key(key).get(name)
    except RegfError:
        return None


def _text(data: bytes) -> str:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _read(target: Target, rel: str) -> str | None:
    path = target.resolve(target.system_path(rel))
    if path is None or target.is_dir(path):
        return None
    return _text(target.read_file(path))


def launch_apps(text: str) -> list[str]:
    """The ``[LaunchApps]`` lines of a winpeshl.ini (comments and blanks dropped)."""
    apps, inside = [], False
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("["):
            inside = s.lower() == "[launchapps]"
        elif inside and s and not s.startswith(";"):
            apps.append(s)
    return apps


def _commands(text: str | None) -> list[str]:
    if text is None:
        return []
    return [s for s in (ln.strip() for ln in text.splitlines())
            if s and not s.lower().startswith(("rem ", "::")) and s.lower() != "rem"]


def pe_settings(target: Target) -> PESettings:
    info = require_winpe(target)
    reg = ImageRegistry(target)
    scratch = _value(reg, FBWF_KEY, SCRATCH_VALUE)
    inst = _value(reg, WINPE_KEY, TARGET_VALUE)
    version = _value(reg, WINPE_KEY, "Version")
    mm = info.major_minor()
    # Profiling (/Enable-Profiling) was removed in Windows PE 5.0 (6.3); where PE 3.x/4.0
    # kept its state is not documented, so older images report "cannot tell".
    profiling = False if mm is not None and mm >= (6, 3) else None
    ini = _read(target, WINPESHL)
    return PESettings(version=version if isinstance(version, str) else None,
                      profiling=profiling,
                      scratch_space=scratch if isinstance(scratch, int) else None,
                      target_path=inst if isinstance(inst, str) else None,
                      launch_apps=launch_apps(ini) if ini is not None else [],
                      startnet=_commands(_read(target, STARTNET)))


def check_scratch_space(mb: int) -> int:
    if mb not in SCRATCH_SIZES:
        raise PESettingError(f"scratch space {mb} MB is not valid; use one of "
                             f"{', '.join(map(str, SCRATCH_SIZES))} (MB)")
    return mb


def check_target_path(path: str) -> str:
    """DISM's /Set-TargetPath rules (W7:dd799261): 3 to 32 characters, a drive letter C to
    Z then ``:\\``, absolute, no ``.``/``..``, no blanks, quotes or non-ASCII."""
    def bad(why: str) -> PESettingError:
        return PESettingError(f"target path {path!r} is not valid: {why}")

    if not 3 <= len(path) <= 32:
        raise bad("it must be 3 to 32 characters long")
    if not path.isascii():
        raise bad("it must be ASCII")
    if any(c.isspace() or c in "\"'" or ord(c) < 32 for c in path):
        raise bad("it cannot contain blanks or quotes")
    if not ("C" <= path[0].upper() <= "Z" and path[1:3] == ":\\"):
        raise bad("it must start with a drive letter C to Z followed by :\\")
    if any(c in _BAD_PATH_CHARS for c in path[3:]) or ":" in path[3:]:
        raise bad("it contains a character Windows does not allow in a path")
    if any(part in (".", "..") for part in path[3:].split("\\")):
        raise bad("it must be absolute (no . or .. components)")
    return path


def _start_entries(windir: str, script: str, current: list[str]) -> list[str]:
    """The new [LaunchApps]: what PE ran before (startnet.cmd when there was no
    winpeshl.ini, so wpeinit still runs), then the script, once."""
    base = f"%SYSTEMDRIVE%\\{windir}\\System32"
    cmd = f"{base}\\cmd.exe"
    entries = list(current) or [f"{cmd}, /c {base}\\startnet.cmd"]
    ours = f"{cmd}, /c {base}\\{script}"
    return [e for e in entries if e.lower() != ours.lower()] + [ours]


def install_start_script(target: Target, local_path: str) -> str:
    """Copy *local_path* to ``<windir>\\System32`` and make PE run it at start after what
    it ran before (as mkwinpeimg's ``--start-script``, which rewrites winpeshl.ini; here
    the existing startnet.cmd and [LaunchApps] entries are kept). Returns the image path."""
    name = os.path.basename(local_path)
    if not name.lower().endswith(SCRIPT_SUFFIXES):
        raise PESettingError(f"start script {name!r}: must be a .cmd or .bat file "
                             "(PE runs it with cmd.exe /c)")
    if name.lower() in ("startnet.cmd", "winpeshl.ini") or not name.isascii() or " " in name:
        raise PESettingError(f"start script {name!r}: choose another file name (it must "
                             "not replace startnet.cmd and needs no quoting)")
    if not os.path.isfile(local_path):
        raise TargetPathError(f"start script not found: {local_path}")
    dest = target.system_path("System32", name)
    target.copy_in(target.resolve(dest) or dest, local_path)
    ini = _read(target, WINPESHL)
    entries = _start_entries(target.windir.replace("/", "\\"), name,
                             launch_apps(ini) if ini is not None else [])
    text = "[LaunchApps]\r\n" + "".join(e + "\r\n" for e in entries)
    # ASCII as Microsoft's samples; an entry kept from the old file that is not ASCII
    # needs Unicode, which the INI reader takes as UTF-16 with a BOM.
    data = text.encode("ascii") if text.isascii() else b"\xff\xfe" + text.encode("utf-16-le")
    path = target.system_path(WINPESHL)
    target.write_file(target.resolve(path) or path, data)
    return dest


def add_overlay(target: Target, folder: str) -> int:
    """Add every file under the local *folder* to the image root (mkwinpeimg
    ``--overlay``); existing files and folders are matched case-insensitively (their
    spelling kept) and files replaced. Returns the number of files."""
    n = 0
    where = {folder: ""}                 # local folder -> its path in the target
    for dirpath, dirs, files in os.walk(folder):
        dirs.sort()
        here = where[dirpath]
        for name in dirs:
            sub = target.resolve(join(here, name)) or join(here, name)
            target.mkdirs(sub)
            where[os.path.join(dirpath, name)] = sub
        for name in sorted(files):
            dest = join(here, name)
            target.copy_in(target.resolve(dest) or dest, os.path.join(dirpath, name))
            n += 1
    return n


def set_pe_settings(target: Target, *, scratch_space: int | None = None,
                    target_path: str | None = None,
                    start_script: str | None = None) -> PESettings:
    """Validate everything first, then write; returns the settings as they now are."""
    if scratch_space is not None:
        check_scratch_space(scratch_space)
    if target_path is not None:
        check_target_path(target_path)
    require_winpe(target)
    if scratch_space is not None or target_path is not None:
        with transaction(target) as reg:
            if scratch_space is not None:
                reg.set_value(FBWF_KEY, SCRATCH_VALUE, REG_DWORD, scratch_space)
            if target_path is not None:
                reg.set_value(WINPE_KEY, TARGET_VALUE, REG_SZ, target_path)
    if start_script is not None:
        install_start_script(target, start_script)
    return pe_settings(target)
