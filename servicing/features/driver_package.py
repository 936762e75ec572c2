"""A driver package on the host, read for one image: INF, catalog, files, signature.

:func:`load_package` reads an ``.inf`` and what it names from the host folder it sits
in (the input, not the target), checks it applies to the image's platform, collects
every file the INF copies or lists for that architecture, and checks the catalog.

The driver store folder name ends in 16 hex digits Windows computes in an undocumented
way. Ours: the first 8 bytes of SHA-256 over the INF bytes followed by the catalog bytes
(none when unsigned), lower-case hex. Identical packages get the same folder; that is
what makes ``driver add`` idempotent.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from servicing.errors import NotApplicableError, RefusedError
from servicing.formats import catalog as cat
from servicing.formats.inf import Inf, InfError
from servicing.formats.inf_driver import (
    HardwareEntry, Platform, VersionInfo, exclude_ids, load_inf, models, version_info)
from servicing.formats.inf_install import (
    FileCopy, Install, install, package_sources, safe_relative)

#: Classes whose devices a machine needs to boot (DISM stages these as boot-critical).
BOOT_CLASSES = {"scsiadapter", "hdc", "system"}
MAX_PACKAGE_FILE = 1 << 30


class PackageError(InfError):
    """A driver package that cannot be added (missing or unsafe file, bad catalog)."""


@dataclass
class PackageFile:
    rel: str                # path inside the package ('/'-separated, as on the host)
    host: str               # absolute host path
    data: bytes


@dataclass
class DriverPackage:
    inf_name: str                       # original file name, e.g. "viostor.inf"
    inf_data: bytes
    inf: Inf
    version: VersionInfo
    platform: Platform
    entries: list[HardwareEntry]
    installs: dict[str, Install]        # install section (as in the models line) -> Install
    files: dict[str, PackageFile] = field(default_factory=dict)   # lower rel -> file
    catalog_name: str | None = None
    catalog_data: bytes | None = None
    signer: str | None = None
    signed: bool = False
    unsigned_reason: str | None = None
    excluded: set[str] = field(default_factory=set)
    inbox_files: list[FileCopy] = field(default_factory=list)   # copied, not shipped

    @property
    def boot_critical(self) -> bool:
        return self.version.class_name.lower() in BOOT_CLASSES or any(
            s.start_type == 0 for inst in self.installs.values() for s in inst.services)

    def store_name(self, neutral: bool) -> str:
        h = hashlib.sha256(self.inf_data + (self.catalog_data or b"")).hexdigest()[:16]
        mid = "_neutral" if neutral else ""
        return f"{self.inf_name.lower()}_{self.platform.arch}{mid}_{h}"


def _host_lookup(folder: str, rel: str) -> str | None:
    """Case-insensitive lookup of a package-relative path in a host folder."""
    cur = folder
    for part in rel.split("/"):
        try:
            names = os.listdir(cur)
        except OSError:
            return None
        match = [n for n in names if n == part] or [n for n in names
                                                     if n.lower() == part.lower()]
        if not match:
            return None
        cur = os.path.join(cur, match[0])
    return cur


def _read(path: str, what: str, inf_name: str) -> bytes:
    try:
        if os.path.getsize(path) > MAX_PACKAGE_FILE:
            raise PackageError(inf_name, f"{what} is larger than 1 GiB")
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise PackageError(inf_name, f"cannot read {what}: {e.strerror}") from None


def load_package(inf_path: str, platform: Platform, *, langid: int | None = None,
                 loader=None) -> DriverPackage:
    """Read and check a package for ``platform``; raises InfError / PackageError /
    NotApplicableError."""
    name = os.path.basename(inf_path)
    if safe_relative(name, name, None, "INF file name") != name:
        raise PackageError(name, "not a valid Windows file name for an INF")
    data = _read(inf_path, "the INF", name)
    inf = load_inf(data, name, langid=langid)
    version = version_info(inf)
    entries = models(inf, platform)
    if not entries:
        raise NotApplicableError(f"{name}: The specified package is not applicable to this "
                                 f"image (no models section for {platform.arch} "
                                 f"{platform.major}.{platform.minor}.{platform.build})")
    installs = {e.install_section: install(inf, e.install_section, platform, loader=loader)
                for e in entries}
    pkg = DriverPackage(name, data, inf, version, platform, entries, installs,
                        excluded=exclude_ids(inf, platform))
    _collect_files(pkg, os.path.dirname(os.path.abspath(inf_path)))
    return pkg


def _collect_files(pkg: DriverPackage, folder: str) -> None:
    wanted = dict(package_sources(pkg.inf, pkg.platform))
    for inst in pkg.installs.values():
        for copy in inst.copy_files:
            if copy.inf != pkg.inf.name:
                continue                  # a file of an included (inbox) INF
            if copy.source_path is None:      # an inbox file (usbser.sys): checked
                pkg.inbox_files.append(copy)  # against the image by the caller
                continue
            wanted.setdefault(copy.source_path.lower(), copy.source_path)
    for rel in sorted(wanted.values()):
        host = _host_lookup(folder, rel)
        if host is None or not os.path.isfile(host):
            raise PackageError(pkg.inf_name, f"missing source file {rel}")
        pkg.files[rel.lower()] = PackageFile(rel, host, _read(host, rel, pkg.inf_name))
    _catalog(pkg, folder)


def _catalog(pkg: DriverPackage, folder: str) -> None:
    name = pkg.version.catalog(pkg.platform.arch)
    if not name:
        pkg.unsigned_reason = "the INF names no catalog (CatalogFile)"
        return
    if "/" in safe_relative(pkg.inf_name, name, None, "CatalogFile"):
        raise PackageError(pkg.inf_name, f"CatalogFile {name!r} is not a file next to the INF")
    host = _host_lookup(folder, name.replace("\\", "/"))
    if host is None:
        pkg.unsigned_reason = f"catalog {name} not found"
        return
    pkg.catalog_name = os.path.basename(host)
    pkg.catalog_data = _read(host, name, pkg.inf_name)
    try:
        catalog = cat.read_catalog(pkg.catalog_data, name)
    except cat.CatalogError as e:
        pkg.unsigned_reason = str(e)
        return
    if not catalog.intact:
        pkg.unsigned_reason = f"{name}: {catalog.problem}"
        return
    files = {pkg.inf_name: pkg.inf_data} | {f.rel: f.data for f in pkg.files.values()}
    missing = cat.uncovered(catalog, files)
    if missing:
        pkg.unsigned_reason = f"{name} does not sign {', '.join(sorted(missing))}"
        return
    pkg.signed, pkg.signer = True, catalog.signer


def require_signed(pkg: DriverPackage, force_unsigned: bool) -> None:
    """x64 and arm64 images take signed packages only (DISM: unless /ForceUnsigned)."""
    if pkg.signed or force_unsigned or pkg.platform.arch not in ("amd64", "arm64", "ia64"):
        return
    raise RefusedError(f"{pkg.inf_name}: unsigned driver package refused on an "
                       f"{pkg.platform.arch} image ({pkg.unsigned_reason}); "
                       "use --force-unsigned to add it anyway")
