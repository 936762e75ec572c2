"""Reading and removing the driver packages of an image (DISM /Get-Drivers,
/Get-DriverInfo, /Remove-Driver).

A published ``oemN.inf`` is tied to its driver store folder by the driver database
(``DriverInfFiles\\oemN.inf`` ``Active``, Windows 8 and later) or, where there is none
(Vista/7 or a database without the entry), by the store folder whose INF has the same
bytes. ``remove`` takes back everything ``add`` wrote: the store folder, the published
INF (and its ``.PNF``), the database entries (keys left empty under ``DeviceIds`` go too,
the ``OemInfMap`` bit is cleared), the ``DevicePath`` entry, and the services only this
package owns (``Owners`` = [oemN.inf, !package]) with the files it copied for them and
their ``CriticalDeviceDatabase`` entries.
"""

from __future__ import annotations

import os

from servicing.errors import RefusedError, TargetPathError
from servicing.features import driver_registry as dreg
from servicing.features.driver_package import BOOT_CLASSES, load_package
from servicing.features.drivers import (
    OEM_RE, DriverEntry, _file_copies, _Image, _subkeys, _value, open_image,
    _device_path, REPOSITORY)
from servicing.formats.inf import InfError
from servicing.formats.inf_driver import load_inf, models, version_info
from servicing.formats.inf_install import install
from servicing.regf import RegfError
from servicing.registry.edits import EditKind, RegEdit, apply, transaction
from servicing.registry.hives import ImageRegistry
from servicing.target import Target, join


def _store_of(img: _Image, reg, published: str, inf_data: bytes) -> str | None:
    """The store folder name of a published INF."""
    t = img.target
    if img.db:
        active = _value(reg, f"{img.db}\\DriverInfFiles\\{published}", "Active")
        if isinstance(active, str) and t.resolve(join(img.repo, active)):
            return t.resolve(join(img.repo, active)).rpartition("/")[2]
    if not t.is_dir(img.repo):
        return None
    for folder in t.listdir(img.repo):
        for name in t.listdir(join(img.repo, folder)):
            path = join(img.repo, folder, name)
            if name.lower().endswith(".inf") and not t.is_dir(path) and \
                    t.read_file(path) == inf_data:
                return folder
    return None


def _original_name(img: _Image, store: str) -> str:
    t = img.target
    infs = [n for n in t.listdir(join(img.repo, store)) if n.lower().endswith(".inf")]
    return infs[0] if infs else store.split("_")[0]


def _entry(img: _Image, published: str, data: bytes, inbox: bool,
           store: str | None) -> DriverEntry | None:
    try:
        inf = load_inf(data, published, langid=img.langid)
        v = version_info(inf)
    except InfError:
        return None
    original = _original_name(img, store) if store else published
    entries = models(inf, img.platform)
    boot = v.class_name.lower() in BOOT_CLASSES
    if not boot and entries:
        try:
            boot = any(s.start_type == 0 for e in entries[:20]
                       for s in install(inf, e.install_section, img.platform).services)
        except InfError:
            pass
    ver = v.driver_ver
    return DriverEntry(published, original, inbox, v.class_name, v.provider,
                       ver.date_text if ver else "", ver.version_text if ver else "",
                       boot, store, class_guid=v.class_guid,
                       catalog=v.catalog(img.platform.arch))


def list_drivers(target: Target, *, all: bool = False) -> list[DriverEntry]:
    """Third-party packages (``oemN.inf``), and with ``all`` the inbox INFs too."""
    img = open_image(target)
    t = img.target
    out = []
    with ImageRegistry(target) as reg:
        names = sorted(t.listdir(img.inf_dir)) if t.is_dir(img.inf_dir) else []
        for name in names:
            path = join(img.inf_dir, name)
            if not name.lower().endswith(".inf") or t.is_dir(path):
                continue
            oem = OEM_RE.fullmatch(name) is not None
            if not oem and not all:
                continue
            data = t.read_file(path)
            store = _store_of(img, reg, name, data) if oem else None
            entry = _entry(img, name, data, not oem, store)
            if entry is not None:
                out.append(entry)
    out.sort(key=lambda e: (e.inbox, int(OEM_RE.fullmatch(e.published_name).group(1))
                            if not e.inbox else 0, e.published_name.lower()))
    return out


def driver_info(target: Target, name: str) -> DriverEntry:
    """The package fields and its hardware entries for the image's architecture:
    ``name`` is a published ``oemN.inf`` of the image or an INF path on the host."""
    img = open_image(target)
    t = img.target
    if OEM_RE.fullmatch(name) or not os.path.exists(name):
        real = t.resolve(join(img.inf_dir, name))
        if real is None:
            raise TargetPathError(f"no driver package {name} in {t.description}")
        data = t.read_file(real)
        with ImageRegistry(target) as reg:
            store = _store_of(img, reg, real.rpartition("/")[2], data)
        entry = _entry(img, real.rpartition("/")[2], data,
                       OEM_RE.fullmatch(name) is None, store)
        if entry is None:
            raise InfError(name, "not a driver INF")
        inf = load_inf(data, name, langid=img.langid)
        entry.hardware = _hardware(img, inf)
        entry.class_description = _class_description(img, entry.class_guid)
        if store:
            _signature_from_store(img, entry, store, data)
        return entry
    pkg = load_package(name, img.platform, langid=img.langid)
    entry = _entry(img, os.path.basename(name), pkg.inf_data, False, None)
    entry.hardware = _hardware(img, pkg.inf)
    entry.signed, entry.signer = pkg.signed, pkg.signer
    entry.class_description = _class_description(img, entry.class_guid)
    return entry


def _class_description(img: _Image, guid: str) -> str:
    """``Control\\Class\\{guid}``: its (default) value, else ``ClassDesc``."""
    if not guid:
        return ""
    key = f"{img.ccs}\\Control\\Class\\{guid}"
    with ImageRegistry(img.target) as reg:
        for name in ("", "ClassDesc"):
            value = _value(reg, key, name)
            if isinstance(value, str) and value:
                return value
    return ""


def _hardware(img: _Image, inf) -> list[dict]:
    from servicing.formats.inf_driver import exclude_ids
    excluded = exclude_ids(inf, img.platform)
    out = []
    for e in models(inf, img.platform):
        try:
            services = install(inf, e.install_section, img.platform).services
        except InfError:
            services = []
        function = [s.name for s in services if s.flags & 0x2]
        out.append({"manufacturer": e.manufacturer, "description": e.description,
                    "architecture": img.platform.arch, "hardware_id": e.hardware_id,
                    "compatible_ids": e.compatible_ids,
                    "exclude_ids": sorted(i for i in [e.hardware_id, *e.compatible_ids]
                                          if i.upper() in excluded),
                    "service": function[0] if function else ""})
    return out


def _signature_from_store(img: _Image, entry: DriverEntry, store: str, data: bytes) -> None:
    from servicing.formats import catalog as cat
    t = img.target
    if not entry.catalog:
        entry.signed = False
        return
    path = t.resolve(join(img.repo, store, entry.catalog))
    if path is None:
        entry.signed = False
        return
    try:
        c = cat.read_catalog(t.read_file(path), entry.catalog)
    except cat.CatalogError:
        entry.signed = False
        return
    entry.signed = c.intact and c.covers(data)
    entry.signer = c.signer


def remove_drivers(target: Target, names: list[str]) -> list[str]:
    """Remove published packages; returns the names removed."""
    img = open_image(target)
    t = img.target
    for name in names:
        if not OEM_RE.fullmatch(name):
            raise RefusedError(f"{name}: only third-party packages (published as oemN.inf) "
                               "can be removed; inbox drivers are refused")
    done = []
    with transaction(target) as reg:
        for name in names:
            real = t.resolve(join(img.inf_dir, name))
            if real is None:
                raise TargetPathError(f"no driver package {name} in {t.description}")
            _remove_one(img, reg, real.rpartition("/")[2], t.read_file(real))
            done.append(real.rpartition("/")[2])
    return done


def _remove_one(img: _Image, reg, published: str, data: bytes) -> None:
    t = img.target
    store = _store_of(img, reg, published, data)
    edits: list[RegEdit] = []
    if store is not None:
        store_dir = join(img.repo, store)
        edits += _remove_services(img, reg, published, store, store_dir)
        t.remove(store_dir, recursive=True)
        store_rel = f"{t.windir}\\{REPOSITORY}\\{store}".replace("/", "\\")
        if img.neutral:
            edits += _device_path(reg, store_rel, add=False)
    t.remove(join(img.inf_dir, published))
    pnf = t.resolve(join(img.inf_dir, published[:-4] + ".pnf"))
    if pnf is not None:
        t.remove(pnf)
    if img.db:
        edits += _database_removal(img, reg, published, store)
    apply(reg, edits)


def _database_removal(img: _Image, reg, published: str, store: str | None) -> list[RegEdit]:
    db = img.db
    edits = [RegEdit(EditKind.DELETE_KEY, f"{db}\\DriverInfFiles\\{published}")]
    if store:
        edits.append(RegEdit(EditKind.DELETE_KEY, f"{db}\\DriverPackages\\{store}"))
    edits += _device_id_removal(reg, f"{db}\\DeviceIds", published)
    bitmap = _value(reg, db, "OemInfMap")
    if isinstance(bitmap, bytes):
        index = int(OEM_RE.fullmatch(published).group(1))
        if index < len(bitmap) * 8:
            edits.append(dreg._set(db, "OemInfMap", dreg.REG_BINARY,
                                   dreg.oem_map_with(bitmap, index, False)))
    return edits


def _device_id_removal(reg, base: str, published: str) -> list[RegEdit]:
    """Delete value ``published`` under DeviceIds, and the keys it leaves empty."""
    edits = []
    try:
        root = reg.key(base)
    except RegfError:
        return edits

    def walk(key, path: str) -> bool:            # True when the key ends up empty
        names = [v.name for v in key.values()]
        mine = [n for n in names if n.lower() == published.lower()]
        for n in mine:
            edits.append(RegEdit(EditKind.DELETE_VALUE, path, n))
        empty_children = all(walk(k, f"{path}\\{k.name}") for k in key.subkeys())
        if len(mine) == len(names) and empty_children and mine:
            edits.append(RegEdit(EditKind.DELETE_KEY, path))
            return True
        if len(names) == 0 and empty_children and key.subkeys():
            edits.append(RegEdit(EditKind.DELETE_KEY, path))
            return True
        return False

    for k in root.subkeys():
        walk(k, f"{base}\\{k.name}")
    return edits


def _remove_services(img: _Image, reg, published: str, store: str,
                     store_dir: str) -> list[RegEdit]:
    t = img.target
    inf_path = next((join(store_dir, n) for n in t.listdir(store_dir)
                     if n.lower().endswith(".inf")), None)
    if inf_path is None:
        return []
    host_free = _StorePackage(img, inf_path)
    pkg = host_free.package()
    if pkg is None:
        return []
    services = f"{img.ccs}\\Services"
    edits, gone = [], set()
    for inst in pkg.installs.values():
        for svc in inst.services:
            owners = _value(reg, f"{services}\\{svc.name}", "Owners") if svc.name else None
            if isinstance(owners, list) and [o.lower() for o in owners] == \
                    [published.lower(), f"!{store}".lower()]:
                edits.append(RegEdit(EditKind.DELETE_KEY, f"{services}\\{svc.name}"))
                gone.add(svc.name.lower())
    if not gone:
        return edits
    for dest, f in _file_copies(img, pkg, store_dir):
        real = t.resolve(dest)
        if real is not None and t.read_file(real) == f.data:
            t.remove(real)
    cddb = f"{img.ccs}\\Control\\CriticalDeviceDatabase"
    for name in _subkeys(reg, cddb):
        service = _value(reg, f"{cddb}\\{name}", "Service")
        if isinstance(service, str) and service.lower() in gone:
            edits.append(RegEdit(EditKind.DELETE_KEY, f"{cddb}\\{name}"))
    return edits


class _StorePackage:
    """A staged package read back from the store folder of the target."""

    def __init__(self, img: _Image, inf_path: str) -> None:
        self.img, self.inf_path = img, inf_path

    def package(self):
        from servicing.features.driver_package import DriverPackage, PackageFile
        t = self.img.target
        data = t.read_file(self.inf_path)
        name = self.inf_path.rpartition("/")[2]
        try:
            inf = load_inf(data, name, langid=self.img.langid)
            entries = models(inf, self.img.platform)
            installs = {e.install_section: install(inf, e.install_section, self.img.platform)
                        for e in entries}
        except InfError:
            return None
        pkg = DriverPackage(name, data, inf, version_info(inf), self.img.platform, entries,
                            installs)
        folder = self.inf_path.rpartition("/")[0]
        for inst in installs.values():
            for copy in inst.copy_files:
                if copy.source_path and copy.inf == inf.name:
                    real = t.resolve(join(folder, copy.source_path))
                    if real is not None:
                        pkg.files[copy.source_path.lower()] = PackageFile(
                            copy.source_path, real, t.read_file(real))
        return pkg
