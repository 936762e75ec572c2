"""Answer files applied to an offline image, as DISM /Apply-Unattend does: the
``offlineServicing`` pass and the ``<servicing>`` section. The answer file is not copied
into the image ("When you apply an answer file by using DISM, the answer file is not cached
on the target computer", Microsoft, "DISM Unattended Servicing Command-Line Options");
``place`` copies it to ``<windir>\\Panther\\unattend.xml``, a place Windows Setup searches
(Microsoft, "Windows Setup Automation Overview", implicit answer-file search order).

What is applied (:data:`OFFLINE`, the one table of it), for components whose
processorArchitecture is the image's:

* Microsoft-Windows-PnpCustomizationsNonWinPE ``DriverPaths/PathAndCredentials/Path``:
  every path through :func:`servicing.features.drivers.add_drivers` with ``recurse``;
  Windows paths are mapped to local ones with :func:`resolve_path`;
* Microsoft-Windows-LUA-Settings ``EnableLUA`` (valid pass: offlineServicing, Microsoft's
  Unattended Windows Setup Reference): ``HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\
  Policies\\System`` ``EnableLUA`` REG_DWORD 1/0 ([MS-GPSB] 2.2.11.6 EnableLUA);
* Microsoft-Windows-PartitionManager ``SanPolicy`` (1 online all, 2 offline shared,
  3 offline all, 4 offline internal: VDS_SAN_POLICY, [MS-VDS] 2.2.2.2.1.1):
  ``HKLM\\SYSTEM\\CurrentControlSet\\Services\\partmgr\\Parameters`` ``SanPolicy``
  REG_DWORD, where the corpus Windows 7 and 10 SYSTEM hives keep it (value 1).

``<servicing>`` package actions go through the package feature (contract B), which
schedules the work for Windows' own servicing stack at the image's first boot:
``install`` with ``<source location>`` -> :func:`servicing.features.packages.add_packages`
(without the applicability check, as DISM);
``remove`` -> ``remove_packages`` of the assemblyIdentity; ``configure`` with
``<selection name state>`` -> ``cbs_features.enable_features`` / ``disable_features`` of that
package. ``stage``, ``install`` without a source (a staged package) and selections inside
``install`` (features of a package that is only installed at first boot) are listed as not
applied.

Everything else of the offlineServicing pass (OfflineUserAccounts, OfflineIdentification,
ComputerName, ...) is listed as not applied with its component and setting; ``strict``
makes that an error before anything changes. Settings of the other passes are Windows
Setup's and are only listed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from servicing.errors import RefusedError, TargetPathError
from servicing.features.image_info import image_info, require_serviceable
from servicing.formats.unattend import (
    AnswerFile, PackageAction, Setting, UnattendError, parse)
from servicing.regf import REG_DWORD
from servicing.registry.edits import transaction
from servicing.target import Target, join

OFFLINE_PASS = "offlineServicing"
DRIVERS = ("Microsoft-Windows-PnpCustomizationsNonWinPE", "DriverPaths/PathAndCredentials/Path")
LUA_KEY = "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Policies\\System"
SAN_KEY = "HKLM\\SYSTEM\\CurrentControlSet\\Services\\partmgr\\Parameters"


def _bool_dword(value: str) -> int:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise ValueError("true or false")
    return int(v == "true")


def _san_policy(value: str) -> int:
    if value.strip() not in ("1", "2", "3", "4"):
        raise ValueError("1, 2, 3 or 4")
    return int(value)


#: (component, setting path without list keys) -> (key, value name, converter) of the
#: registry value the component writes; DRIVERS is handled by driver add
OFFLINE: dict[tuple[str, str], tuple[str, str, Callable[[str], int]] | None] = {
    DRIVERS: None,
    ("Microsoft-Windows-LUA-Settings", "EnableLUA"): (LUA_KEY, "EnableLUA", _bool_dword),
    ("Microsoft-Windows-PartitionManager", "SanPolicy"): (SAN_KEY, "SanPolicy", _san_policy),
}


@dataclass
class Item:
    pass_name: str
    component: str
    setting: str | None
    value: str | None
    line: int | None
    status: str              # applied | not applied | other architecture | other pass
    detail: str = ""

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class ApplyResult:
    items: list[Item] = field(default_factory=list)
    drivers: list[dict] = field(default_factory=list)
    packages: list[dict] = field(default_factory=list)
    placed: str | None = None

    def to_json(self) -> dict:
        return {"items": [i.to_json() for i in self.items], "drivers": self.drivers,
                "packages": self.packages, "placed": self.placed}


def _bare(path: str) -> str:
    return re.sub(r"\[[^\]]*\]", "", path)


def plan(answer: AnswerFile, arch: str | None = None) -> list[Item]:
    """What of *answer* this tool applies (status "applied") and what not, and why."""
    items: list[Item] = []
    for c in answer.components:
        if c.pass_name != OFFLINE_PASS:
            items.append(Item(c.pass_name, c.name, None, None, c.line, "other pass",
                              f"Windows Setup applies it in the {c.pass_name} pass"))
            continue
        # processorArchitecture names the image architecture (x86, amd64, arm64) as
        # image_info does; wow64 components serve 32-bit programs and no setting here
        if arch is not None and c.architecture.lower() not in ("", arch):
            items.append(Item(c.pass_name, c.name, None, None, c.line, "other architecture",
                              f"component for {c.architecture}, image is {arch}"))
            continue
        for s in c.settings:
            items.append(_classify(s))
    for p in answer.packages:
        items += _package_items(p)
    return items


def identity_key(p: PackageAction) -> str:
    """The CBS identity ``name~publicKeyToken~arch~language~version`` of an
    assemblyIdentity (language "neutral" is empty in CBS identities)."""
    i = p.identity
    lang = i.get("language", "")
    return "~".join((i.get("name", ""), i.get("publicKeyToken", ""),
                     i.get("processorArchitecture", ""),
                     "" if lang.lower() == "neutral" else lang, i.get("version", "")))


def _package_items(p: PackageAction) -> list[Item]:
    what = identity_key(p) if p.identity.get("name") else p.source
    item = Item("servicing", "package", p.action, what, p.line, "applied")
    out = [item]
    if p.action == "stage":
        item.status, item.detail = "not applied", ("staging needs Windows' servicing "
                                                   "stack; wimfs schedules installs")
    elif p.action == "install" and not p.source:
        item.status, item.detail = "not applied", "install without <source location>"
    elif p.action == "remove" and not p.identity.get("name"):
        item.status, item.detail = "not applied", "remove without <assemblyIdentity>"
    elif p.action == "configure" and (not p.selections or not p.identity.get("name")):
        item.status, item.detail = "not applied", "configure without <selection>"
    for name, state in p.selections:
        sel = Item("servicing", "selection", name, "true" if state else "false", p.line,
                   "applied" if p.action == "configure" and item.status == "applied"
                   else "not applied")
        if sel.status != "applied":
            sel.detail = "a selection applies to the features of a configure action"
        out.append(sel)
    return out


def _classify(s: Setting) -> Item:
    key = (s.component, _bare(s.path))
    item = Item(s.pass_name, s.component, s.path, s.value, s.line, "applied")
    if key not in OFFLINE:
        item.status, item.detail = "not applied", "not an offline setting wimfs applies"
    elif s.action == "remove":
        item.status, item.detail = "not applied", "wcm:action=\"remove\" on an offline image"
    elif OFFLINE[key] is not None:
        try:
            OFFLINE[key][2](s.value or "")
        except ValueError as e:
            raise UnattendError(f"line {s.line}: {s.component} {s.path}={s.value!r}: "
                                f"expected {e}") from None
    elif not s.value:
        raise UnattendError(f"line {s.line}: {s.component} {s.path} is empty")
    return item


# -- paths ---------------------------------------------------------------------------------

def parse_path_maps(specs: list[str]) -> list[tuple[str, str]]:
    """``WINDOWS_PREFIX=LOCAL_PATH`` options as (prefix, local) pairs."""
    out = []
    for spec in specs:
        win, sep, local = spec.partition("=")
        if not sep or not win.strip() or not local:
            raise UnattendError(f"--path-map wants WINDOWS_PREFIX=LOCAL_PATH, not {spec!r}")
        out.append((win.strip().replace("/", "\\").rstrip("\\"), local))
    return out


def _absolute(win: str) -> bool:
    return bool(re.match(r"[A-Za-z]:", win)) or win.startswith(("\\", "%"))


def resolve_path(win: str, maps: list[tuple[str, str]], base_dir: str,
                 line: int | None = None, what: str = "driver path") -> str:
    """A Windows path of the answer file as a local path: the longest ``--path-map``
    prefix (case-insensitive, at a folder boundary) wins; a relative path is taken
    against the answer file's folder; the local folders are matched case-insensitively."""
    path = win.strip().replace("/", "\\")
    best = None
    for prefix, local in maps:
        low, plow = path.casefold(), prefix.casefold()
        if low == plow or low.startswith(plow + "\\"):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, local)
    if best is not None:
        base, rest = best[1], path[len(best[0]):]
    elif not _absolute(path):
        base, rest = base_dir, path
    else:
        raise TargetPathError(f"line {line}: {what} {win} has no --path-map "
                              "(WINDOWS_PREFIX=LOCAL_PATH)")
    local = _ci_join(base, [p for p in rest.split("\\") if p and p != "."])
    if local is None:
        raise TargetPathError(f"line {line}: {what} {win} -> "
                              f"{os.path.join(base, *rest.split(chr(92)))}: not found")
    return local


def _ci_join(base: str, parts: list[str]) -> str | None:
    cur = base
    for part in parts:
        if part == "..":
            cur = os.path.dirname(cur)
            continue
        exact = os.path.join(cur, part)
        if os.path.exists(exact):
            cur = exact
            continue
        if not os.path.isdir(cur):
            return None
        match = sorted(n for n in os.listdir(cur) if n.casefold() == part.casefold())
        if not match:
            return None
        cur = os.path.join(cur, match[0])
    return cur if os.path.exists(cur) else None


# -- applying ------------------------------------------------------------------------------

def load(data: bytes, name: str) -> AnswerFile:
    answer = parse(data, name)
    if answer.errors:
        raise UnattendError(f"{name}: {answer.errors[0]}" + (
            f" (and {len(answer.errors) - 1} more; see unattend check)"
            if len(answer.errors) > 1 else ""))
    return answer


def apply_answer_file(target: Target, data: bytes, name: str, *, base_dir: str,
                      path_maps: list[tuple[str, str]] | None = None, strict: bool = False,
                      place: bool = False, warn=None) -> ApplyResult:
    """Apply the offlineServicing pass and <servicing> of an answer file (module text)."""
    answer = load(data, name)
    info = require_serviceable(image_info(target))
    result = ApplyResult(plan(answer, info.architecture))
    refused = [i for i in result.items if i.status == "not applied"]
    if strict and refused:
        listed = "; ".join(f"line {i.line}: {i.component} {i.setting or ''} ({i.detail})"
                           for i in refused)
        raise RefusedError(f"--strict: not applied offline: {listed}")
    applied = [i for i in result.items if i.status == "applied"]
    drivers = [resolve_path(i.value or "", path_maps or [], base_dir, i.line)
               for i in applied if (i.component, _bare(i.setting or "")) == DRIVERS]
    sources = [resolve_path(p.source, path_maps or [], base_dir, p.line, "package source")
               if p.action == "install" and p.source else None for p in answer.packages]
    if drivers:
        from servicing.features.drivers import add_drivers
        result.drivers = [r.to_json() for r in add_drivers(target, drivers, recurse=True,
                                                           warn=warn)]
    _registry(target, applied)
    for p, source in zip(answer.packages, sources):
        result.packages += _servicing(target, p, source, warn)
    if place:
        result.placed = _place(target, data)
    return result


def _registry(target: Target, applied: list[Item]) -> None:
    values = [(OFFLINE.get((i.component, _bare(i.setting or ""))), i) for i in applied
              if i.pass_name == OFFLINE_PASS]
    values = [(v, i) for v, i in values if v is not None]
    if not values:
        return
    with transaction(target) as reg:
        for (key, name, convert), item in values:
            reg.set_value(key, name, REG_DWORD, convert(item.value or ""))


def _servicing(target: Target, p: PackageAction, source: str | None, warn) -> list[dict]:
    """One <package> through contract B (each call its own transaction)."""
    from servicing.features import cbs_features, packages
    if p.action == "install" and source:
        # DISM does not check the applicability of <servicing> packages (servicing-facts.md
        # section 3): neither does this; Windows decides at first boot.
        return [r.to_json() for r in packages.add_packages(target, [source],
                                                           ignore_check=True, warn=warn)]
    if p.action == "remove" and p.identity.get("name"):
        return [r.to_json() for r in packages.remove_packages(target, [identity_key(p)])]
    if p.action != "configure" or not p.identity.get("name"):
        return []
    on = [n for n, state in p.selections if state]
    off = [n for n, state in p.selections if not state]
    done = cbs_features.enable_features(target, on, package=identity_key(p)) if on else []
    done += cbs_features.disable_features(target, off, package=identity_key(p)) \
        if off else []
    return [r.to_json() for r in done]


def _place(target: Target, data: bytes) -> str:
    panther = target.resolve(target.system_path("Panther")) or \
        target.system_path("Panther")
    target.mkdirs(panther)
    dest = target.resolve(join(panther, "unattend.xml")) or join(panther, "unattend.xml")
    target.write_file(dest, data)
    return dest
