"""Driver packages of an image: list, inspect, add, remove (DISM /Get-Drivers,
/Get-DriverInfo, /Add-Driver, /Remove-Driver). Plain functions of a Target; they neither
print nor parse arguments; registry changes are RegEdit data applied in one transaction.

What ``add`` writes, per package that applies to the image:

* ``System32\\DriverStore\\FileRepository\\<inf>_<arch>_<16 hex>\\`` (Windows 8 and later)
  or ``<inf>_<arch>_neutral_<16 hex>`` (Vista/7) with the INF, its catalog and every file
  the INF lists or copies for the image's architecture, in the package's own layout;
* ``<windir>\\INF\\oemN.inf``, N the lowest number free in the INF folder and (8+) in the
  driver database (``DriverInfFiles``, ``OemInfMap``);
* 8+: the DriverDatabase entries (:mod:`servicing.features.driver_registry`), in the
  DRIVERS hive when the image keeps its database there, else in SYSTEM;
* Vista/7: the binary store index files (INFCACHE.1, DRVINDEX.DAT...) have no public
  format, so the package folder is appended to ``SOFTWARE\\Microsoft\\Windows\\
  CurrentVersion\\DevicePath``, where PnP looks for drivers of new devices;
* boot-critical packages (a StartType 0 service, or class SCSIAdapter, HDC or System) are
  installed now, as DISM does: their files copied to their destinations, their services
  created, and on Vista/7 ``Control\\CriticalDeviceDatabase\\<hardware id>`` entries.

An identical package (same INF and catalog bytes) already in the store is not added again
and keeps its published name.
"""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import asdict, dataclass, field

from servicing.errors import TargetPathError
from servicing.features import driver_registry as dreg
from servicing.features.driver_package import (
    DriverPackage, PackageError, load_package, require_signed)
from servicing.features.image_info import ImageInfo, Layout, image_info, require_serviceable
from servicing.formats.inf import InfError
from servicing.formats.inf_driver import Platform
from servicing.formats.inf_install import dirid_path
from servicing.regf import RegfError
from servicing.registry.edits import EditKind, RegEdit, apply, transaction
from servicing.target import Target, join
from wimfs.errors import WimfsError

REPOSITORY = "System32/DriverStore/FileRepository"
CURRENT_VERSION = "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion"
OEM_RE = re.compile(r"oem(\d+)\.inf", re.I)


@dataclass
class AddResult:
    source: str
    published_name: str | None
    original_name: str
    store: str | None
    status: str                    # "added", "present" or "skipped"
    boot_critical: bool = False
    signed: bool = False
    reason: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class _Image:
    target: Target
    info: ImageInfo
    platform: Platform
    langid: int | None
    neutral: bool                  # Vista/7 store names and no DriverDatabase
    db: str | None = None          # the DriverDatabase key (8+)
    ccs: str = "HKLM\\SYSTEM\\CurrentControlSet"

    @property
    def repo(self) -> str:
        return self.target.system_path(REPOSITORY)

    @property
    def inf_dir(self) -> str:
        return self.target.system_path("INF")


def _langid(info: ImageInfo) -> int | None:
    import locale
    wanted = {v.lower().replace("_", "-"): k for k, v in locale.windows_locale.items()}
    for lang in info.languages:
        if lang.lower() in wanted:
            return wanted[lang.lower()]
    return None


def open_image(target: Target) -> _Image:
    info = require_serviceable(image_info(target))
    parts = [int(p) for p in (info.version or "0.0.0.0").split(".")] + [0, 0, 0]
    platform = Platform(info.architecture, parts[0], parts[1], parts[2])
    neutral = info.layout in (Layout.VISTA, Layout.WIN7)
    img = _Image(target, info, platform, _langid(info), neutral)
    if not neutral:
        img.db = "HKLM\\SYSTEM\\DriverDatabase"
        drivers = target.resolve(target.system_path("System32/config/DRIVERS"))
        if drivers is not None:
            from servicing.registry.hives import ImageRegistry
            reg = ImageRegistry(target)
            try:
                if reg.key("HKLM\\DRIVERS\\DriverDatabase") is not None:
                    img.db = "HKLM\\DRIVERS\\DriverDatabase"
            except RegfError:
                pass
    return img


def _inbox_loader(img: _Image):
    """Include= names inbox INFs of the image's INF folder."""
    def load(name: str) -> bytes | None:
        found = img.target.resolve(join(img.inf_dir, name))
        return img.target.read_file(found) if found else None
    return load


def package_infs(paths: list[str], recurse: bool) -> list[tuple[str, bool]]:
    """(INF path, given explicitly) for each PATH: an .inf or a folder of them."""
    out = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs.sort()
                out += [(os.path.join(root, f), False) for f in sorted(files)
                        if f.lower().endswith(".inf")]
                if not recurse:
                    break
        elif os.path.isfile(path):
            out.append((path, True))
        else:
            raise TargetPathError(f"driver path not found: {path}")
    return out


def _published(img: _Image, reg) -> dict[str, str]:
    """oemN.inf (lower) -> real name, for every published INF of the image."""
    t = img.target
    names = t.listdir(img.inf_dir) if t.is_dir(img.inf_dir) else []
    return {n.lower(): n for n in names if OEM_RE.fullmatch(n)}


def _free_oem(img: _Image, reg) -> int:
    used = {int(OEM_RE.fullmatch(n).group(1)) for n in _published(img, reg)}
    if img.db:
        used |= {int(m.group(1)) for n in _subkeys(reg, f"{img.db}\\DriverInfFiles")
                 if (m := OEM_RE.fullmatch(n))}
        bitmap = _value(reg, img.db, "OemInfMap") or b""
        used |= {i for i in range(len(bitmap) * 8) if bitmap[i // 8] & (0x80 >> i % 8)}
    n = 0
    while n in used:
        n += 1
    return n


def _subkeys(reg, path: str) -> list[str]:
    try:
        return [k.name for k in reg.key(path).subkeys()]
    except RegfError:
        return []


def _value(reg, path: str, name: str):
    try:
        return reg.key(path).get(name)
    except RegfError:
        return None


def _now() -> datetime.datetime:
    """The current time, as wimfs.format.xmlinfo.filetime_now gives it: one time stamp for
    every image of a multi-image run (the same add in every edition, stored once)."""
    from wimfs.format.xmlinfo import filetime_now
    return dreg.EPOCH + datetime.timedelta(microseconds=filetime_now() // 10)


def add_drivers(target: Target, paths: list[str], *, recurse: bool = False,
                force_unsigned: bool = False, warn=None,
                now: datetime.datetime | None = None) -> list[AddResult]:
    """Add every driver package PATHS name (see the module text). ``warn(message)`` is
    told about INFs of a folder that are skipped; ``now`` is the import time recorded
    (default: the current time)."""
    now = now or _now()
    img = open_image(target)
    packages, results = [], []
    for path, explicit in package_infs(paths, recurse):
        try:
            pkg = load_package(path, img.platform, langid=img.langid,
                               loader=_inbox_loader(img))
            require_signed(pkg, force_unsigned)
            _check_inbox_files(img, pkg)
        except WimfsError as e:           # invalid, not applicable or unsigned
            if explicit:
                raise
            if warn:
                warn(f"skipped {path}: {e}")
            results.append(AddResult(path, None, os.path.basename(path), None, "skipped",
                                     reason=str(e)))
            continue
        packages.append((path, pkg))
    with transaction(target) as reg:
        for path, pkg in packages:
            results.append(_add_one(img, reg, path, pkg, now))
    return results


def _check_inbox_files(img: _Image, pkg: DriverPackage) -> None:
    """A file an INF copies without listing it in [SourceDisksFiles] must be an inbox
    file the image already has at its destination (old INFs using usbser.sys do so)."""
    for copy in pkg.inbox_files:
        base = dirid_path(copy.dirid, platform=img.platform, system_root=img.target.windir)
        if base is None or img.target.resolve(join(base, copy.subdir, copy.name)) is None:
            raise PackageError(pkg.inf_name, f"{copy.source} is neither listed in "
                               "[SourceDisksFiles] nor in the image", copy.lineno)


def _add_one(img: _Image, reg, source: str, pkg: DriverPackage,
             now: datetime.datetime) -> AddResult:
    t = img.target
    store = pkg.store_name(img.neutral)
    store_dir = join(img.repo, store)
    result = AddResult(source, None, pkg.inf_name, store, "added", pkg.boot_critical,
                       pkg.signed, pkg.unsigned_reason)
    if t.resolve(store_dir) is not None:
        for lower, real in _published(img, reg).items():
            if t.read_file(join(img.inf_dir, real)) == pkg.inf_data:
                result.published_name, result.status = real, "present"
                return result
    published = f"oem{_free_oem(img, reg)}.inf"
    result.published_name = published
    _stage(img, pkg, store_dir)
    t.write_file(join(img.inf_dir, published), pkg.inf_data)
    store_rel = f"{img.target.windir}\\{REPOSITORY}\\{store}".replace("/", "\\")
    edits: list[RegEdit] = []
    if img.db:
        index = int(OEM_RE.fullmatch(published).group(1))
        oem_map = dreg.oem_map_with(_value(reg, img.db, "OemInfMap"), index, True)
        edits += dreg.database_edits(img.db, pkg, published, store, f"C:\\{store_rel}",
                                     oem_map, now)
    else:
        edits += _device_path(reg, store_rel, add=True)
    if pkg.boot_critical:
        edits += _install_now(img, reg, pkg, published, store, store_rel, store_dir)
    apply(reg, edits)
    return result


def _stage(img: _Image, pkg: DriverPackage, store_dir: str) -> None:
    t = img.target
    t.mkdirs(store_dir)
    t.write_file(join(store_dir, pkg.inf_name), pkg.inf_data)
    if pkg.catalog_name and pkg.catalog_data is not None:
        t.write_file(join(store_dir, pkg.catalog_name), pkg.catalog_data)
    for f in pkg.files.values():
        parent = join(store_dir, f.rel.rpartition("/")[0])
        if parent != store_dir:
            t.mkdirs(parent)
        t.write_file(join(store_dir, f.rel), f.data)


def _device_path(reg, store_rel: str, *, add: bool) -> list[RegEdit]:
    entry = f"%SystemRoot%\\{store_rel.split(chr(92), 1)[1]}"
    current = _value(reg, CURRENT_VERSION, "DevicePath")
    parts = [p for p in (current or "").split(";") if p]
    if add and entry.lower() not in (p.lower() for p in parts):
        parts.append(entry)
    elif not add:
        parts = [p for p in parts if p.lower() != entry.lower()]
    text = ";".join(parts)
    if text == (current or ""):
        return []
    if not text:                    # we created it: take it away again
        return [RegEdit(EditKind.DELETE_VALUE, CURRENT_VERSION, "DevicePath")]
    return [RegEdit(EditKind.SET_VALUE, CURRENT_VERSION, "DevicePath", dreg.REG_EXPAND_SZ,
                    dreg.encode_value(dreg.REG_EXPAND_SZ, text))]


def _file_copies(img: _Image, pkg: DriverPackage, store_dir: str):
    """(image path, package file) of every file the package's own INF copies."""
    seen = {}
    for inst in pkg.installs.values():
        for copy in inst.copy_files:
            if copy.inf != pkg.inf.name or copy.dirid == 13 or copy.source_path is None:
                continue
            base = dirid_path(copy.dirid, platform=img.platform,
                              system_root=img.target.windir, store_dir=store_dir)
            if base is None:
                raise InfError(pkg.inf_name, f"DIRID {copy.dirid} has no place in an "
                               "image", copy.lineno)
            dest = join(base, copy.subdir, copy.name)
            seen[dest.lower()] = (dest, pkg.files[copy.source_path.lower()])
    return list(seen.values())


def _install_now(img: _Image, reg, pkg: DriverPackage, published: str, store: str,
                 store_rel: str, store_dir: str) -> list[RegEdit]:
    t = img.target
    for dest, f in _file_copies(img, pkg, store_dir):
        parent = dest.rpartition("/")[0]
        real_parent = t.resolve(parent)
        if real_parent is None:
            t.mkdirs(parent)
            real_parent = parent
        t.write_file(join(real_parent, dest.rpartition("/")[2]), f.data)
    services_key = f"{img.ccs}\\Services"
    edits = []
    for inst in pkg.installs.values():
        for svc in inst.services:
            if not svc.name or _exists(reg, f"{services_key}\\{svc.name}"):
                continue
            tag = _next_tag(reg, services_key, svc.group) if svc.group and \
                svc.start_type in (0, 1) else None
            edits += dreg.service_edits(services_key, svc, pkg, published, store,
                                        store_rel.split("\\", 1)[1], tag)
    if img.neutral:
        edits += _critical_devices(img, reg, pkg)
    return edits


def _exists(reg, path: str) -> bool:
    try:
        reg.key(path)
        return True
    except RegfError:
        return False


def _next_tag(reg, services_key: str, group: str) -> int:
    """One above the highest Tag of the services of the same load-order group."""
    tags = [0]
    try:
        for k in reg.key(services_key).subkeys():
            g = k.get("Group")
            if isinstance(g, str) and g.lower() == group.lower() and \
                    isinstance(k.get("Tag"), int):
                tags.append(k.get("Tag"))
    except RegfError:
        pass
    return max(tags) + 1


def _critical_devices(img: _Image, reg, pkg: DriverPackage) -> list[RegEdit]:
    edits = []
    for entry in pkg.entries:
        inst = pkg.installs[entry.install_section]
        function = [s.name for s in inst.services if s.flags & 0x2 and s.name]
        if not function or not entry.hardware_id:
            continue
        key = f"{img.ccs}\\Control\\CriticalDeviceDatabase\\" + \
            entry.hardware_id.replace("\\", "#").lower()
        if _exists(reg, key):
            continue
        edits += [dreg._set(key, "Service", dreg.REG_SZ, function[0]),
                  dreg._set(key, "ClassGUID", dreg.REG_SZ, pkg.version.class_guid)]
    return edits


@dataclass
class DriverEntry:
    published_name: str
    original_name: str
    inbox: bool
    class_name: str
    provider: str
    date: str
    version: str
    boot_critical: bool
    store: str | None = None
    hardware: list[dict] = field(default_factory=list)
    signed: bool | None = None
    signer: str | None = None
    class_guid: str = ""
    class_description: str = ""     # the class key's (default) or ClassDesc value
    catalog: str | None = None

    def to_json(self) -> dict:
        return asdict(self)
