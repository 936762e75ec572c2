"""First-boot actions: commands Windows runs once, in order, as SYSTEM, before anyone logs
on, at the next start of the image (``wimfs firstboot``; package and feature changes that
need Windows' own servicing stack are scheduled through it).

Only start-up hooks Windows itself has are used, chosen by the image's state
(:func:`mechanism`):

* an image that will run Windows Setup (generalized by sysprep, or not finished): the
  runner is called from ``<windir>\\Setup\\Scripts\\SetupComplete.cmd``, which Setup runs
  with local system rights "after Windows is installed but before the logon screen
  appears" (Microsoft, "Add a Custom Script to Windows Setup"). Existing content of that
  file is kept; the wimfs block goes first, so an ``exit`` in the old content cannot skip
  it. Setup owns ``HKLM\\SYSTEM\\Setup\\CmdLine`` in such an image (it starts
  ``oobe\\windeploy.exe`` from there), so it is not touched.
* an installed image: ``HKLM\\SYSTEM\\Setup`` ``CmdLine`` (the process Winlogon starts before
  the logon screen while ``SetupType`` is not 0; Microsoft KB 939857) with ``SetupType`` 2,
  put back to 0 by the runner. A ``CmdLine``/``SetupType`` found there is kept in
  ``chain.cmd`` and runs after the actions.

Files (the scripts are in servicing.features.firstboot_scripts)::

    <windir>\\wimfs\\firstboot.cmd             the runner
    <windir>\\wimfs\\firstboot.log             what ran, with output and exit codes
    <windir>\\wimfs\\firstboot\\000001\\        one action: action.cmd, entry.json,
                                             reboot (marker), cleanup.cmd (payload)
    <windir>\\wimfs\\<payload path>            files an action needs (e.g. Packages\\...)
"""

from __future__ import annotations

import codecs
import json
import os
import re
from dataclasses import dataclass, field
from enum import StrEnum

from servicing.errors import RefusedError, ServicingError
from servicing.features import firstboot_scripts as scripts
from servicing.features.image_info import image_info, require_serviceable
from servicing.formats.cmdline import CommandLineError, batch_line, command_line
from servicing.regf import REG_DWORD, REG_EXPAND_SZ, REG_SZ, RegfError
from servicing.registry.edits import transaction
from servicing.registry.hives import ImageRegistry
from servicing.target import Target, join
from wimfs.errors import EXIT_NOT_FOUND

FOLDER = "wimfs"
RUNNER = "firstboot.cmd"
QUEUE = "firstboot"
LOG = "firstboot.log"
ENTRY_RE = re.compile(r"\d{6}")
#: characters Windows does not allow in file names, and what a payload path may not be
BAD_PATH_CHARS = set('<>:"|?*') | {chr(c) for c in range(32)}
STATE_KEY = "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Setup\\State"
SETUP_KEY = scripts.SETUP_KEY
NLS_KEY = "HKLM\\SYSTEM\\CurrentControlSet\\Control\\Nls\\CodePage"


class FirstbootExistsError(ServicingError, FileExistsError):
    """A first-boot action of that name is already scheduled."""


class FirstbootNotFoundError(ServicingError, FileNotFoundError):
    """No first-boot action of that name is scheduled."""

    exit_code = EXIT_NOT_FOUND
    hresult = None
    win32 = 2


class Mechanism(StrEnum):
    SETUP_COMPLETE = "SetupComplete.cmd"
    CMDLINE = "SYSTEM\\Setup\\CmdLine"


@dataclass
class FirstbootEntry:
    name: str
    command: str                          # the Windows command line
    reboot: bool = False
    payload: list[str] = field(default_factory=list)   # paths in the target
    id: str = ""                          # the action's folder (run order)

    def to_json(self) -> dict:
        return {"name": self.name, "command": self.command, "reboot": self.reboot,
                "payload": list(self.payload), "id": self.id}


def _paths(target: Target) -> tuple[str, str, str]:
    base = target.system_path(FOLDER)
    return base, join(base, RUNNER), join(base, QUEUE)


# -- the image's state -----------------------------------------------------------------------

def image_state(target: Target, reg: ImageRegistry) -> str | None:
    """Windows Setup's state of the image: ``ImageState`` in SOFTWARE's ``Setup\\State``
    or ``[State]`` in ``<windir>\\Setup\\State\\State.ini`` (Microsoft, "Windows Setup
    States"), e.g. IMAGE_STATE_COMPLETE or IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE."""
    try:
        value = reg.key(STATE_KEY).get("ImageState")
        if isinstance(value, str) and value.strip():
            return value.strip().upper()
    except RegfError:
        pass
    ini = target.resolve(target.system_path("Setup", "State", "State.ini"))
    if ini is None or target.is_dir(ini):
        return None
    data = target.read_file(ini)
    text = data.decode("utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else \
        data.decode("latin-1")
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip().lower() == "imagestate" and value.strip():
            return value.strip().upper()
    return None


def mechanism(target: Target, reg: ImageRegistry | None = None) -> Mechanism:
    """SetupComplete.cmd when Windows Setup will still run on the image, else CmdLine.

    The one place this choice is made. Evidence: every state but IMAGE_STATE_COMPLETE
    means Setup has a pass left to run at the next start ("Windows Setup States"). With
    no state recorded (images from before Vista's Setup or trees without SOFTWARE),
    ``SYSTEM\\Setup\\SystemSetupInProgress`` = 1 means Setup is under way; the installed
    corpus SYSTEM hives (Windows 7 and 10) all hold 0 there."""
    reg = reg or ImageRegistry(target)
    state = image_state(target, reg)
    if state is not None:
        return Mechanism.CMDLINE if state == "IMAGE_STATE_COMPLETE" else \
            Mechanism.SETUP_COMPLETE
    try:
        in_progress = reg.key(SETUP_KEY).get("SystemSetupInProgress")
    except RegfError:
        in_progress = None
    return Mechanism.SETUP_COMPLETE if in_progress == 1 else Mechanism.CMDLINE


def _require_image(target: Target) -> None:
    info = require_serviceable(image_info(target))
    if info.winpe:
        raise RefusedError("Windows PE keeps no state across boots: first-boot actions "
                           "cannot be scheduled in a Windows PE image")


def batch_encoding(target: Target, reg: ImageRegistry | None = None) -> str:
    """The encoding of the batch files: cmd.exe reads a batch file in the console's code
    page, which for a process started before logon is the system's OEM code page,
    ``SYSTEM\\CurrentControlSet\\Control\\Nls\\CodePage\\OEMCP`` (437 in the corpus hives).
    The one place this choice is made; a name or command the code page cannot hold is
    refused (CommandLineError)."""
    reg = reg or ImageRegistry(target)
    try:
        oem = reg.key(NLS_KEY).get("OEMCP")
    except RegfError:
        oem = None
    name = f"cp{oem.strip()}" if isinstance(oem, str) and oem.strip().isdigit() else "cp437"
    try:
        codecs.lookup(name)
    except LookupError:
        raise RefusedError(f"the image's OEM code page {oem} is unknown to wimfs") from None
    return name


def _encode(text: str, encoding: str) -> bytes:
    try:
        return text.encode(encoding)
    except UnicodeEncodeError as e:
        raise CommandLineError(f"{text[e.start:e.end]!r} cannot be written in the image's "
                               f"OEM code page ({encoding}), which cmd.exe reads batch "
                               "files in") from None


# -- reading ---------------------------------------------------------------------------------

def entries(target: Target) -> list[FirstbootEntry]:
    """The scheduled actions, in run order."""
    _, _, queue = _paths(target)
    real = target.resolve(queue)
    if real is None or not target.is_dir(real):
        return []
    out = []
    for name in sorted(n for n in target.listdir(real) if ENTRY_RE.fullmatch(n)):
        meta = target.resolve(join(real, name, "entry.json"))
        if meta is None:
            continue
        try:
            doc = json.loads(target.read_file(meta))
            out.append(FirstbootEntry(doc["name"], doc["command"], bool(doc["reboot"]),
                                      [_payload_path(target, p) for p in doc["payload"]],
                                      name))
        except (ValueError, KeyError, TypeError) as e:
            raise ServicingError(f"{meta}: damaged first-boot entry ({e})") from None
    return out


def _payload_path(target: Target, rel: str) -> str:
    return target.system_path(FOLDER, *rel.split("\\"))


def _find(items: list[FirstbootEntry], name: str) -> FirstbootEntry | None:
    return next((e for e in items if e.name.casefold() == name.casefold()), None)


# -- scheduling ------------------------------------------------------------------------------

def _check_name(name: str) -> str:
    if not name or not name.strip() or len(name) > 200 or \
            any(ord(c) < 32 or c == "\x7f" for c in name):
        raise CommandLineError(f"bad first-boot action name {name!r} (1-200 printable "
                               "characters)")
    return name


def _check_payload(payload: dict[str, str] | None) -> dict[str, str]:
    """Windows relative path under <windir>\\wimfs -> local file."""
    out: dict[str, str] = {}
    for key, local in (payload or {}).items():
        parts = [p for p in key.replace("/", "\\").split("\\") if p]
        if not parts or any(p in (".", "..") or set(p) & BAD_PATH_CHARS or
                            p != p.rstrip(" .") for p in parts):
            raise CommandLineError(f"bad payload path {key!r} (a relative Windows path "
                                   "under <windir>\\wimfs)")
        if parts[0].casefold() in (QUEUE, RUNNER, LOG):
            raise CommandLineError(f"payload path {key!r} is wimfs's own")
        if not os.path.isfile(local):
            raise FirstbootNotFoundError(f"payload file not found: {local}")
        rel = "\\".join(parts)
        if rel.casefold() in (k.casefold() for k in out):
            raise FirstbootExistsError(f"payload path given twice: {rel}")
        out[rel] = local
    return out


def schedule(target: Target, *, name: str, command: list[str] | str, reboot: bool = False,
             payload: dict[str, str] | None = None) -> FirstbootEntry:
    """Add one first-boot action at the end of the queue (see the module text)."""
    _require_image(target)
    line = command_line(command)
    batch_line(line)                       # refuses what a batch file cannot hold
    files = _check_payload(payload)
    current = entries(target)
    if _find(current, _check_name(name)) is not None:
        raise FirstbootExistsError(f"a first-boot action named {name!r} is already "
                                   "scheduled")
    for rel in files:
        dest = _payload_path(target, rel)
        if target.resolve(dest) is not None:
            raise FirstbootExistsError(f"payload {dest} exists in the image already")
    base, runner, queue = _paths(target)
    folder = f"{int(current[-1].id) + 1 if current else 1:06d}"
    entry = FirstbootEntry(name, line, reboot, [_payload_path(target, r) for r in files],
                           folder)
    _write_entry(target, join(queue, folder), entry, list(files), batch_encoding(target))
    for rel, local in files.items():
        dest = _payload_path(target, rel)
        target.mkdirs(dest.rpartition("/")[0])
        target.copy_in(dest, local)
    text = scripts.runner().encode("ascii")
    if target.resolve(runner) is None or target.read_file(runner) != text:
        target.write_file(runner, text)
    _install_hook(target)
    return entry


def _write_entry(target: Target, folder: str, entry: FirstbootEntry, rels: list[str],
                 encoding: str) -> None:
    action = _encode(scripts.action(entry.name, entry.command), encoding)
    clean = _encode(scripts.cleanup(rels), encoding) if rels else None
    target.mkdirs(folder)
    target.write_file(join(folder, "action.cmd"), action)
    if entry.reboot:
        target.write_file(join(folder, "reboot"), b"")
    if clean is not None:
        target.write_file(join(folder, "cleanup.cmd"), clean)
    doc = {"name": entry.name, "command": entry.command, "reboot": entry.reboot,
           "payload": rels}
    target.write_file(join(folder, "entry.json"),
                      json.dumps(doc, indent=1, ensure_ascii=False).encode("utf-8") + b"\n")


# -- the start-up hook -----------------------------------------------------------------------

def _setupcomplete(target: Target) -> str:
    found = target.resolve(target.system_path("Setup", "Scripts", "SetupComplete.cmd"))
    return found or target.system_path("Setup", "Scripts", "SetupComplete.cmd")


def _value(reg: ImageRegistry, name: str):
    try:
        return reg.key(SETUP_KEY).value(name)
    except RegfError:
        return None


def _ours(reg: ImageRegistry) -> bool:
    v = _value(reg, "CmdLine")
    return v is not None and isinstance(v.data, str) and \
        v.data.strip().casefold() == scripts.CMDLINE.casefold()


def _install_hook(target: Target) -> None:
    reg = ImageRegistry(target)
    if mechanism(target, reg) == Mechanism.SETUP_COMPLETE:
        path = _setupcomplete(target)
        old = target.read_file(path) if target.resolve(path) else b""
        if scripts.BEGIN.encode() not in old:
            target.mkdirs(path.rpartition("/")[0])
            target.write_file(path, scripts.setupcomplete_block().encode("ascii") + old)
        return
    if _ours(reg):
        return
    _keep_chain(target, reg)
    with transaction(target) as wreg:
        wreg.set_value(SETUP_KEY, "CmdLine", REG_SZ, scripts.CMDLINE)
        wreg.set_value(SETUP_KEY, "SetupType", REG_DWORD, 2)


def _keep_chain(target: Target, reg: ImageRegistry) -> None:
    """A start-up command already set (SetupType not 0, CmdLine not empty) is kept: its
    values are restored and it runs after the actions (chain.cmd), or, when every action
    is removed offline, the values are put back (chain.json)."""
    _, _, queue = _paths(target)
    for stale in ("chain.cmd", "chain.json"):
        if (p := target.resolve(join(queue, stale))) is not None:
            target.remove(p)
    cmd, setup_type = _value(reg, "CmdLine"), _value(reg, "SetupType")
    kind = setup_type.data if setup_type is not None and \
        isinstance(setup_type.data, int) else 0
    if cmd is None or not isinstance(cmd.data, str) or not cmd.data.strip() or kind == 0:
        return
    if cmd.type not in (REG_SZ, REG_EXPAND_SZ):
        raise RefusedError(f"HKLM\\SYSTEM\\Setup\\CmdLine has type {cmd.type}; only a "
                           "REG_SZ or REG_EXPAND_SZ start-up command can be kept")
    vtype = "REG_SZ" if cmd.type == REG_SZ else "REG_EXPAND_SZ"
    text = _encode(scripts.chain(cmd.data, vtype, kind), batch_encoding(target, reg))
    target.write_file(join(queue, "chain.cmd"), text)
    doc = {"CmdLine": cmd.data, "type": vtype, "SetupType": kind}
    target.write_file(join(queue, "chain.json"), json.dumps(doc).encode("utf-8") + b"\n")


def _remove_hook(target: Target) -> None:
    """Take the hook out again (no action left): the SetupComplete.cmd block (and the file
    when nothing else is in it) and the CmdLine values wimfs set (or the kept ones)."""
    path = _setupcomplete(target)
    if target.resolve(path) is not None:
        data = target.read_file(path)
        block = scripts.setupcomplete_block().encode("ascii")
        if block in data:
            rest = data.replace(block, b"", 1)
            if rest.strip():
                target.write_file(path, rest)
            else:
                target.remove(path)
    reg = ImageRegistry(target)
    if not _ours(reg):
        return
    _, _, queue = _paths(target)
    chain = target.resolve(join(queue, "chain.json"))
    doc = json.loads(target.read_file(chain)) if chain else None
    with transaction(target) as wreg:
        if doc:
            wreg.set_value(SETUP_KEY, "CmdLine",
                           REG_SZ if doc["type"] == "REG_SZ" else REG_EXPAND_SZ,
                           doc["CmdLine"])
            wreg.set_value(SETUP_KEY, "SetupType", REG_DWORD, int(doc["SetupType"]))
        else:
            wreg.set_value(SETUP_KEY, "CmdLine", REG_SZ, "")
            wreg.set_value(SETUP_KEY, "SetupType", REG_DWORD, 0)


# -- removing --------------------------------------------------------------------------------

def unschedule(target: Target, name: str) -> FirstbootEntry:
    """Remove a scheduled action and its payload; the last one takes the hook with it."""
    current = entries(target)
    entry = _find(current, name)
    if entry is None:
        known = ", ".join(e.name for e in current) or "none"
        raise FirstbootNotFoundError(f"no first-boot action named {name!r} (scheduled: "
                                     f"{known})")
    base, runner, queue = _paths(target)
    target.remove(target.resolve(join(queue, entry.id)), recursive=True)
    for path in entry.payload:
        real = target.resolve(path)
        if real is not None:
            target.remove(real)
            _prune(target, real.rpartition("/")[0], base)
    if len(current) == 1:
        _remove_hook(target)
        for p in (join(queue, "chain.cmd"), join(queue, "chain.json"), runner):
            if (real := target.resolve(p)) is not None:
                target.remove(real)
        _prune(target, target.resolve(queue) or queue, base)
    return entry


def _prune(target: Target, folder: str, base: str) -> None:
    """Remove empty folders from *folder* up to and including <windir>\\wimfs, stopping at
    the first one that holds something (the log of an earlier boot keeps wimfs)."""
    real_base = target.resolve(base) or base
    while folder and folder.startswith(real_base) and target.is_dir(folder) \
            and not target.listdir(folder):
        target.remove(folder)
        if folder == real_base:
            break
        folder = folder.rpartition("/")[0]
