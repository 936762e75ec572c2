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
import tempfile
from dataclasses import dataclass

from servicing.errors import ServicingError
from servicing.features import cbs_store as store
from servicing.features.image_info import Layout, image_info, require_serviceable
from servicing.features.package_check import CheckResult, ImageState, check
from servicing.features.package_files import PackageFile, opened
from servicing.formats import cab
from servicing.formats.cbs_manifest import Identity, Manifest, ManifestError, parse
from servicing.target import Target
from wimfs.errors import EXIT_NOT_FOUND

ERROR_NOT_FOUND = 1168
FIRSTBOOT_PREFIX = {"install": "package-add ", "remove": "package-remove "}
# Where first-boot payload lands, as the running image sees it (firstboot's folder).
FIRSTBOOT_ROOT = "%SystemRoot%\\wimfs\\"
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
    from servicing.features import firstboot
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
    index = store.mum_index(target)
    for rec in records:
        if not rec.release_type:
            m = store.installed_manifest(target, rec.identity, index)
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
                         "state": store.feature_state(states.get(u.name), default=u.default)}
                        for u in m.features]
        elif r is not None:
            features = [{"name": n, "display_name": "", "state": store.feature_state(c)}
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
    m = store.installed_manifest(target, rec.identity)
    if m is None and rec.first_boot == "install":
        m = _pending_manifest(target, rec.identity)
    return PackageInfo(rec.identity, m, rec)


def _pending_manifest(target: Target, identity: str) -> Manifest | None:
    """The manifest of a package wimfs scheduled: its update.mum, in the copied cabinet
    (read through a private temporary file) or expanded folder."""
    _, entry = firstboot_packages(target)[identity.lower()]
    for path in entry.payload:
        try:
            if path.lower().endswith("/update.mum"):
                return parse(target.read_file(path), path)
            if path.lower().endswith(".cab"):
                with tempfile.NamedTemporaryFile(suffix=".cab") as f:
                    f.write(target.read_file(path))
                    f.flush()
                    found = cab.read(f.name, lambda n: n.lower() == "update.mum")
                if found:
                    return parse(next(iter(found.values())), path)
        except (cab.CabError, ManifestError):
            return None
    return None


# -- add and remove: through the image's first boot ---------------------------------------------

@dataclass
class PackageResult:
    identity: str
    source: str | None
    status: str                 # "scheduled", "unscheduled", "skipped"
    message: str
    reasons: list[dict] | None = None

    def to_json(self) -> dict:
        return {"identity": self.identity, "source": self.source, "status": self.status,
                "message": self.message, "reasons": self.reasons or []}


def require_not_pe(info) -> None:
    from servicing.errors import RefusedError
    if info.winpe:
        raise RefusedError("Windows PE keeps no state across boots, so packages and "
                           "features cannot be installed at its first boot; wimfs cannot "
                           "install CBS packages offline")


def dism_command(info, verb: str, value: str, *extra: str) -> list[str]:
    """The command Windows runs at first boot: DISM on 7 and later, pkgmgr on Vista
    (which has no DISM; pkgmgr /ip /m: installs, /up: removes, /iu: and /uu: enable and
    disable features). The one place wimfs chooses the servicing tool of the running
    image."""
    if info.layout == Layout.VISTA:
        vista = {"add-package": ["/ip", f"/m:{value}"], "remove-package": [f"/up:{value}"],
                 "enable-feature": [f"/iu:{value}"], "disable-feature": [f"/uu:{value}"]}
        return ["pkgmgr.exe", *vista[verb], "/quiet", "/norestart"]
    option = {"add-package": "/PackagePath", "remove-package": "/PackageName",
              "enable-feature": "/FeatureName", "disable-feature": "/FeatureName"}[verb]
    return ["dism.exe", "/Online", f"/{verb.title()}", f"{option}:{value}", *extra,
            "/Quiet", "/NoRestart"]


def _payload_dir(identity: str) -> str:
    return f"Packages\\{identity}"


def _schedule_add(target: Target, info, p: PackageFile, cab_path: str) -> None:
    """Schedule one package: the cabinet (or expanded folder) as payload."""
    from servicing.features import firstboot
    ident = p.manifest.identity.key
    base = _payload_dir(ident)
    if os.path.isdir(cab_path):
        payload = {f"{base}\\{os.path.relpath(os.path.join(r, f), cab_path)}".replace(
            "/", "\\"): os.path.join(r, f) for r, _, files in os.walk(cab_path) for f in files}
        image_path = FIRSTBOOT_ROOT + base
    else:
        name = os.path.basename(cab_path)
        payload = {f"{base}\\{name}": cab_path}
        image_path = f"{FIRSTBOOT_ROOT}{base}\\{name}"
    firstboot.schedule(target, name=FIRSTBOOT_PREFIX["install"] + ident,
                       command=dism_command(info, "add-package", image_path),
                       payload=payload)


def add_packages(target: Target, paths: list[str], *, ignore_check: bool = False,
                 prevent_pending: bool = False, warn=None) -> list[PackageResult]:
    """Check each package of PATHS against the image, copy it into
    ``<windir>\\wimfs\\Packages\\<identity>\\`` and schedule its installation at the image's
    first boot. A package named explicitly that does not apply is NotApplicableError
    (nothing is changed); one found in a folder is skipped and reported."""
    from servicing.errors import NotApplicableError, PendingError
    require_not_pe(require_serviceable(image_info(target)))
    state = image_state(target)
    if prevent_pending and (state.reboot or any(r.state_code == 0x60 or r.first_boot
                                                for r in state.packages)):
        raise PendingError("the image has operations pending (--prevent-pending)")
    explicit = {os.path.abspath(p) for p in paths}
    results = []
    with opened(paths, warn) as packages:
        for p in packages:
            result = check(p.manifest, state, p.label)
            ident = p.manifest.identity.key
            if not result.applicable and not ignore_check:
                if os.path.abspath(p.source) in explicit:
                    raise NotApplicableError(f"{p.label}: {ident} is not applicable to "
                                             f"this image: {result.summary()}")
                results.append(PackageResult(ident, p.label, "skipped", "not applicable: "
                                             + result.summary(),
                                             [r.to_json() for r in result.reasons]))
                continue
            _schedule_add(target, state.info, p, p.path)
            # later packages of the run see it (as a parent, or as a duplicate)
            state.packages.append(store.PackageRecord(ident, None, FIRSTBOOT_STATE["install"],
                                                      first_boot="install"))
            results.append(PackageResult(ident, p.label, "scheduled",
                                         FIRSTBOOT_STATE["install"]))
    return results


def remove_packages(target: Target, names: list[str]) -> list[PackageResult]:
    """Take back a package wimfs scheduled for the first boot, or schedule the removal of
    an installed one (``dism /online /remove-package``) at the first boot."""
    from servicing.errors import RefusedError
    from servicing.features import firstboot
    info = require_serviceable(image_info(target))
    require_not_pe(info)
    results = []
    for name in names:
        records = {r.identity.lower(): r for r in list_packages(target)}
        rec = records.get(name.lower())
        if rec is None:
            raise PackageNotFoundError(f"no package {name} in the image (see "
                                       "`wimfs package list`)")
        if rec.first_boot == "install":
            firstboot.unschedule(target, FIRSTBOOT_PREFIX["install"] + rec.identity)
            results.append(PackageResult(rec.identity, None, "unscheduled",
                                         "taken back (no longer installed at first boot)"))
            continue
        if rec.first_boot == "remove":
            raise RefusedError(f"{rec.identity}: its removal is already scheduled")
        if rec.state_code == 0x80:
            raise RefusedError(f"{rec.identity} is permanent and cannot be removed")
        firstboot.schedule(target, name=FIRSTBOOT_PREFIX["remove"] + rec.identity,
                           command=dism_command(info, "remove-package", rec.identity))
        results.append(PackageResult(rec.identity, None, "scheduled",
                                     "Uninstall Pending (first boot)"))
    return results
