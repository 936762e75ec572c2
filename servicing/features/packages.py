"""CBS packages of an image: list, inspect, check, add and remove (DISM /Get-Packages,
/Get-PackageInfo, /Add-Package, /Remove-Package).

Reading is exact: what CBS recorded (:mod:`servicing.features.cbs_store`). Installing a
package offline means projecting its components the way Windows' servicing stack does;
wimfs does not re-implement that. ``add`` checks applicability, copies the package file
into ``<windir>\\wimfs\\Packages\\<identity>\\`` and schedules its installation by Windows
itself at the image's first boot (servicing.features.firstboot); ``list`` shows such a
package as "Install Pending (first boot)". ``remove`` of such a package takes it back; of
an installed package it schedules ``dism /online /remove-package`` at first boot.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from servicing.errors import ServicingError
from servicing.features import cbs_store as store
from servicing.features.image_info import image_info
from servicing.features.package_check import CheckResult, ImageState, check
from servicing.features.package_files import PackageFile, opened
from servicing.formats.cbs_manifest import Identity, Manifest, ManifestError
from servicing.target import Target
from wimfs.errors import EXIT_NOT_FOUND

ERROR_NOT_FOUND = 1168
FIRSTBOOT_PREFIX = {"install": "package-add ", "remove": "package-remove "}
FIRSTBOOT_STATE = {"install": "Install Pending (first boot)",
                   "remove": "Uninstall Pending (first boot)"}


class PackageNotFoundError(ServicingError, FileNotFoundError):
    """No package of that identity in the image."""

    exit_code = EXIT_NOT_FOUND
    hresult = None
    win32 = ERROR_NOT_FOUND


def firstboot_packages(target: Target) -> dict[str, tuple[str, object]]:
    """identity (lower) -> (action, first-boot entry) of the package actions wimfs
    scheduled for the image's first boot."""
    try:
        from servicing.features import firstboot
    except ImportError:               # until the first-boot feature is merged
        return {}
    out = {}
    for entry in firstboot.entries(target):
        for action, prefix in FIRSTBOOT_PREFIX.items():
            if entry.name.startswith(prefix):
                out[entry.name[len(prefix):].lower()] = (action, entry)
    return out


def list_packages(target: Target) -> list[store.PackageRecord]:
    """Every package of the image, with those wimfs scheduled for its first boot."""
    records = store.read_packages(target)
    by_id = {r.identity.lower(): r for r in records}
    for ident, (action, entry) in firstboot_packages(target).items():
        rec = by_id.get(ident)
        if rec is None:
            name = entry.name.split(" ", 1)[1]
            rec = store.PackageRecord(name, None, "")
            records.append(rec)
        rec.first_boot = action
        rec.state = FIRSTBOOT_STATE[action]
    for rec in records:
        if not rec.release_type:
            m = store.installed_manifest(target, rec.identity)
            rec.release_type = m.release_type if m else ""
    records.sort(key=lambda r: r.identity.lower())
    return records


def image_state(target: Target) -> ImageState:
    info = image_info(target)
    return ImageState(info, list_packages(target), store.reboot_pending(target))


def check_packages(target: Target, paths: list[str], warn=None) -> list[CheckResult]:
    state = image_state(target)
    with opened(paths, warn) as packages:
        return [check(p.manifest, state, p.label) for p in packages]


@dataclass
class PackageInfo:
    identity: str
    manifest: Manifest | None
    record: store.PackageRecord | None
    applicable: CheckResult | None = None
    source: str | None = None

    def to_json(self) -> dict:
        m, r = self.manifest, self.record
        features = []
        if m is not None:
            states = r.features if r else {}
            features = [{"name": u.name, "display_name": u.display_name,
                         "state": store.state_word(states.get(u.name),
                                                   store.FEATURE_STATES)
                         if u.name in states else _default_feature_state(u.default)}
                        for u in m.features]
        elif r is not None:
            features = [{"name": n, "display_name": "", "state":
                         store.state_word(c, store.FEATURE_STATES)}
                        for n, c in sorted(r.features.items())]
        doc = {"identity": self.identity, "source": self.source,
               "applicable": self.applicable.applicable if self.applicable else None,
               "not_applicable_reasons": [x.to_json() for x in self.applicable.reasons]
               if self.applicable else [],
               "state": r.state if r else "Not Present", "state_code": r.state_code if r
               else None, "install_time": r.install_time if r else None,
               "install_client": r.install_client if r else "",
               "install_package_name": r.install_name if r else "",
               "features": features}
        if m is None:
            return doc | {"release_type": r.release_type if r else "", "manifest": False}
        return doc | {k: v for k, v in m.to_json().items()
                      if k not in ("identity", "updates")} | {"manifest": True}


def _default_feature_state(disposition: str) -> str:
    return "Enabled" if disposition.lower() == "installed" else "Disabled"


def package_info(target: Target, name: str) -> PackageInfo:
    """A package by identity (from the image) or a package file (checked against it)."""
    if os.path.exists(name):
        state = image_state(target)
        with opened([name]) as packages:
            if len(packages) != 1:
                raise ManifestError(f"{name}: holds {len(packages)} packages; "
                                    "give one .cab")
            p: PackageFile = packages[0]
            ident = p.manifest.identity.key
            rec = next((r for r in state.packages if r.identity.lower() == ident.lower()),
                       None)
            return PackageInfo(ident, p.manifest, rec, check(p.manifest, state, p.label),
                               p.label)
    records = {r.identity.lower(): r for r in list_packages(target)}
    rec = records.get(name.lower())
    if rec is None:
        try:
            Identity.parse(name)
        except ManifestError:
            raise PackageNotFoundError(f"{name}: neither a package file nor a package "
                                       "identity (name~publicKeyToken~arch~language~"
                                       "version)") from None
        raise PackageNotFoundError(f"no package {name} in the image (see "
                                   "`wimfs package list`)")
    return PackageInfo(rec.identity, store.installed_manifest(target, rec.identity), rec)
