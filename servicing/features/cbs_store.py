"""What Component Based Servicing (CBS) records about an image's packages, read from the
SOFTWARE hive and ``<windir>\\servicing\\Packages`` (servicing-facts.md section 2).

* ``SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Component Based Servicing\\Packages\\
  <identity>``: ``CurrentState`` (DWORD, the CBS state code), ``InstallTimeHigh`` and
  ``InstallTimeLow`` (the two halves of a FILETIME), ``InstallClient``, ``InstallName``,
  ``InstallLocation``, ``InstallUser``, ``Visibility``;
* ``...\\Packages\\<identity>\\Updates``: one DWORD per selectable update (feature) of
  the package, named after the update, holding its CBS state code (see
  :data:`FEATURE_STATES` and NOTES: the layout servicing-facts.md marks unverified);
* ``...\\RebootPending`` (a key) and ``<windir>\\WinSxS\\pending.xml``: operations that
  wait for the next boot;
* ``<windir>\\servicing\\Packages\\<identity>.mum``: the package's manifest (release type,
  display fields, its updates).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from servicing.formats.cbs_manifest import Identity, Manifest, ManifestError, parse
from servicing.regf import RegfError
from servicing.target import Target, join

CBS = "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Component Based Servicing"
PACKAGES = CBS + "\\Packages"
EPOCH = datetime.datetime(1601, 1, 1, tzinfo=datetime.timezone.utc)

# CBS state codes -> DISM's words ("CBS Servicing States Chart", servicing-facts.md 2).
STATES = {0x00: "Not Present", 0x05: "Uninstall Pending", 0x10: "Resolving",
          0x20: "Resolved", 0x30: "Staging", 0x40: "Staged", 0x50: "Superseded",
          0x60: "Install Pending", 0x65: "Partially Installed", 0x70: "Installed",
          0x80: "Permanent"}
INSTALLED = (0x70, 0x80)
# Feature (selectable update) states in DISM's /Get-Features words.
FEATURE_STATES = {0x00: "Disabled with Payload Removed", 0x05: "Disable Pending",
                  0x40: "Disabled", 0x50: "Superseded", 0x60: "Enable Pending",
                  0x65: "Partially Installed", 0x70: "Enabled", 0x80: "Enabled"}


def state_word(code: int | None, table: dict[int, str] = STATES) -> str:
    """DISM's word for a CBS state code; the negative codes CBS writes for a package it
    found invalid (-0x20, -0x40, -0x70, -0x80) are "Broken (<state>)"."""
    if code is None:
        return "Unknown"
    if code < 0:
        return f"Broken ({STATES.get(-code, hex(-code))})"
    return table.get(code, f"Unknown (0x{code:x})")


def feature_state(code: int | None, *, default: str = "", legacy: bool = False) -> str:
    """DISM's word for a feature: its state code when CBS recorded one, else the default
    of its manifest (``<selectable disposition="installed">`` Enabled, else Disabled).
    Vista and 7 have no "payload removed" state: code 0 is Disabled there."""
    if code is None:
        return "Enabled" if default.lower() == "installed" else "Disabled"
    if code == 0 and legacy:
        return "Disabled"
    return state_word(code, FEATURE_STATES)


def signed32(value) -> int | None:
    if not isinstance(value, int):
        return None
    return value - (1 << 32) if value & 0x80000000 else value


def filetime(high, low) -> str | None:
    """InstallTimeHigh/Low as an ISO UTC time, or None."""
    if not isinstance(high, int) or not isinstance(low, int) or not (high or low):
        return None
    ticks = (high << 32) | low
    try:
        t = EPOCH + datetime.timedelta(microseconds=ticks // 10)
    except OverflowError:
        return None
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PackageRecord:
    identity: str
    state_code: int | None
    state: str
    release_type: str = ""
    install_time: str | None = None
    install_client: str = ""
    install_name: str = ""
    install_location: str = ""
    visibility: int | None = None
    features: dict[str, int | None] = field(default_factory=dict)
    first_boot: str | None = None          # "install" / "remove" when scheduled by wimfs

    @property
    def ident(self) -> Identity:
        return Identity.parse(self.identity)

    def to_json(self) -> dict:
        return {"identity": self.identity, "state_code": self.state_code,
                "state": self.state, "release_type": self.release_type,
                "install_time": self.install_time, "install_client": self.install_client,
                "install_name": self.install_name,
                "install_location": self.install_location, "visibility": self.visibility,
                "features": dict(self.features), "first_boot": self.first_boot}


def _key(reg, path: str):
    try:
        return reg.key(path)
    except RegfError:
        return None


def registry(target: Target):
    from servicing.registry.hives import ImageRegistry
    return ImageRegistry(target)


def read_packages(target: Target, *, reg=None) -> list[PackageRecord]:
    """Every package CBS records in the image, sorted by identity (case-insensitive)."""
    reg = reg or registry(target)
    root = _key(reg, PACKAGES)
    if root is None:
        return []
    out = []
    for k in root.subkeys():
        try:
            Identity.parse(k.name)
        except ManifestError:
            continue                                  # not a package key
        vals = {v.name.lower(): v.data for v in k.values()}
        code = signed32(vals.get("currentstate"))
        rec = PackageRecord(k.name, code, state_word(code),
                            install_time=filetime(vals.get("installtimehigh"),
                                                  vals.get("installtimelow")),
                            install_client=str(vals.get("installclient") or ""),
                            install_name=str(vals.get("installname") or ""),
                            install_location=str(vals.get("installlocation") or ""),
                            visibility=vals.get("visibility"))
        if k.has_subkey("Updates"):
            upd = k.subkey("Updates")
            rec.features = {v.name: signed32(v.data) for v in upd.values()}
        out.append(rec)
    out.sort(key=lambda r: r.identity.lower())
    return out


def mum_index(target: Target) -> dict[str, str]:
    """identity (lower) -> path of its ``.mum`` in ``servicing\\Packages`` (one listing,
    not one case-insensitive lookup per package)."""
    folder = target.resolve(target.system_path("servicing", "Packages"))
    if folder is None or not target.is_dir(folder):
        return {}
    return {n[:-4].lower(): join(folder, n) for n in target.listdir(folder)
            if n.lower().endswith(".mum")}


def installed_manifest(target: Target, identity: str,
                       index: dict[str, str] | None = None) -> Manifest | None:
    """The package's manifest in ``servicing\\Packages``; None when missing or damaged
    (a listing never fails for one bad file)."""
    path = (index if index is not None else mum_index(target)).get(identity.lower())
    if path is None:
        return None
    try:
        return parse(target.read_file(path), path)
    except ManifestError:
        return None


def reboot_pending(target: Target, reg=None) -> str | None:
    """Why the image waits for a reboot (CBS RebootPending, WinSxS\\pending.xml), or None."""
    reg = reg or registry(target)
    if _key(reg, CBS + "\\RebootPending") is not None:
        return "Component Based Servicing\\RebootPending is set"
    if target.resolve(target.system_path("WinSxS", "pending.xml")) is not None:
        return "WinSxS\\pending.xml holds pending operations"
    return None
