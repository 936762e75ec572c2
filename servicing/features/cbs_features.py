"""Windows features: the selectable updates of CBS packages (DISM /Get-Features,
/Get-FeatureInfo, /Enable-Feature, /Disable-Feature).

Which packages: on Vista and Windows 7 the features DISM lists are those of the Foundation
package (``Microsoft-Windows-Foundation-Package~...``); on 8 and later those of every
package (servicing-facts.md section 2; dism-reference.md 3.3). ``--package`` narrows to one.

Where the state is: the DWORD values of ``...\\Packages\\<identity>\\Updates`` (one per
selectable update, its CBS state code; :mod:`servicing.features.cbs_store`). A selectable
update the package's manifest names but the key lacks takes the manifest's default
(``<selectable disposition="installed">`` Enabled, otherwise Disabled).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from servicing.errors import RefusedError, ServicingError
from servicing.features import cbs_store as store
from servicing.features.image_info import (Layout, image_info, image_version,
                                           require_serviceable)
from servicing.target import Target
from wimfs.errors import EXIT_NOT_FOUND

CBS_E_UNKNOWN_FEATURE = 0x800F080C
FOUNDATION = "microsoft-windows-foundation-package~"
FIRSTBOOT_PREFIX = {"enable": "feature-enable ", "disable": "feature-disable "}
FIRSTBOOT_STATE = {"enable": "Enable Pending (first boot)",
                   "disable": "Disable Pending (first boot)"}


class FeatureNotFoundError(ServicingError, FileNotFoundError):
    """No feature of that name (DISM: "Feature name X is unknown.", 0x800f080c)."""

    exit_code = EXIT_NOT_FOUND
    hresult = CBS_E_UNKNOWN_FEATURE


@dataclass
class FeatureRecord:
    name: str
    package: str
    state_code: int | None
    state: str
    display_name: str = ""
    description: str = ""
    restart: str = ""
    first_boot: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


def _packages(package: str | None, legacy: bool,
              records: list[store.PackageRecord]) -> list[store.PackageRecord]:
    if package is not None:
        found = [r for r in records if r.identity.lower() == package.lower()]
        if not found:
            from servicing.features.packages import PackageNotFoundError
            raise PackageNotFoundError(f"no package {package} in the image")
        return found
    if legacy:
        return [r for r in records if r.identity.lower().startswith(FOUNDATION)]
    return records


def _features_of(target: Target, rec: store.PackageRecord, index: dict[str, str],
                 legacy: bool) -> list[FeatureRecord]:
    m = store.installed_manifest(target, rec.identity, index)
    out = {}
    for u in m.features if m else []:
        code = rec.features.get(u.name)
        out[u.name] = FeatureRecord(u.name, rec.identity, code,
                                    store.feature_state(code, default=u.default,
                                                        legacy=legacy),
                                    u.display_name, u.description, u.restart)
    for name, code in rec.features.items():
        if name not in out:
            out[name] = FeatureRecord(name, rec.identity, code,
                                      store.feature_state(code, legacy=legacy))
    return list(out.values())


def _legacy(target: Target) -> bool:
    """Vista or 7 (from SOFTWARE's version alone: no SYSTEM hive or kernel read)."""
    version = image_version(target).split(".")
    return version[:1] == ["6"] and version[1:2] in (["0"], ["1"])


def firstboot_features(target: Target) -> dict[str, str]:
    """feature name -> "enable"/"disable" scheduled by wimfs for the first boot."""
    from servicing.features import firstboot
    out = {}
    for entry in firstboot.entries(target):
        for action, prefix in FIRSTBOOT_PREFIX.items():
            if entry.name.startswith(prefix):
                out[entry.name[len(prefix):]] = action
    return out


def list_features(target: Target, package: str | None = None) -> list[FeatureRecord]:
    records = store.read_packages(target)
    out = []
    index = store.mum_index(target)
    legacy = _legacy(target)
    for rec in _packages(package, legacy, records):
        out += _features_of(target, rec, index, legacy)
    pending = firstboot_features(target)
    for f in out:
        if f.name in pending:
            f.first_boot = pending[f.name]
            f.state = FIRSTBOOT_STATE[f.first_boot]
    out.sort(key=lambda f: (f.name.lower(), f.package.lower()))
    return out


def feature_info(target: Target, name: str, package: str | None = None) -> FeatureRecord:
    """A feature by name (case-sensitive, as on Windows 7: dism-reference.md 1)."""
    for f in list_features(target, package):
        if f.name == name:
            return f
    raise FeatureNotFoundError(f"Feature name {name} is unknown (see `wimfs feature list`)")


# -- enable and disable: through the image's first boot ------------------------------------------

@dataclass
class FeatureResult:
    name: str
    status: str                 # "scheduled", "unscheduled", "unchanged"
    state: str

    def to_json(self) -> dict:
        return asdict(self)


def _change(target: Target, names: list[str], action: str, package: str | None,
            extra: list[str]) -> list[FeatureResult]:
    from servicing.features import firstboot
    from servicing.features.packages import dism_command, require_not_pe
    info = require_serviceable(image_info(target))
    require_not_pe(info)
    other = "disable" if action == "enable" else "enable"
    done = "Enabled" if action == "enable" else "Disabled"
    results = []
    for name in names:
        f = feature_info(target, name, package)
        if f.first_boot == other:
            firstboot.unschedule(target, FIRSTBOOT_PREFIX[other] + name)
            results.append(FeatureResult(name, "unscheduled", store.feature_state(
                f.state_code, legacy=info.layout in (Layout.VISTA, Layout.WIN7))))
        elif f.first_boot == action or f.state.startswith(done):
            results.append(FeatureResult(name, "unchanged", f.state))
        else:
            pkg = ["/PackageName:" + package] if package and info.layout != Layout.VISTA \
                else []
            firstboot.schedule(target, name=FIRSTBOOT_PREFIX[action] + name,
                               command=dism_command(info, f"{action}-feature", name,
                                                    *pkg, *extra))
            results.append(FeatureResult(name, "scheduled", FIRSTBOOT_STATE[action]))
    return results


def _needs_8(info, option: str) -> None:
    if info.layout in (Layout.VISTA, Layout.WIN7):
        raise RefusedError(f"{option} needs a Windows 8 or later image (DISM of Windows 7 "
                           "has no such option)")


def enable_features(target: Target, names: list[str], *, package: str | None = None,
                    all_parents: bool = False, source: str | None = None,
                    limit_access: bool = False) -> list[FeatureResult]:
    """Schedule ``dism /online /enable-feature`` for each feature at the first boot (or
    take back a scheduled disable). *source* is a path as the running image sees it."""
    info = image_info(target)
    extra = []
    if all_parents:
        _needs_8(info, "--all (DISM /All)")
        extra.append("/All")
    if source:
        _needs_8(info, "--source (DISM /Source)")
        extra.append(f"/Source:{source}")
    if limit_access:
        _needs_8(info, "--limit-access (DISM /LimitAccess)")
        extra.append("/LimitAccess")
    return _change(target, names, "enable", package, extra)


def disable_features(target: Target, names: list[str], *, package: str | None = None,
                     remove_payload: bool = False) -> list[FeatureResult]:
    """Schedule ``dism /online /disable-feature`` for each feature at the first boot (or
    take back a scheduled enable)."""
    extra = []
    if remove_payload:
        _needs_8(image_info(target), "--remove (DISM /Remove)")
        extra.append("/Remove")
    return _change(target, names, "disable", package, extra)
