"""The edition of an image (DISM /Get-CurrentEdition, /Get-TargetEditions, /Set-Edition,
/Set-ProductKey) as file and registry edits.

Where editions live (dism-reference.md 2.3, servicing-facts.md 5):

* Windows 7 (and Vista): editions are CBS packages
  ``Component Based Servicing\\Packages\\Microsoft-Windows-<X>Edition~<token>~<arch>~~<ver>``;
  the current one is installed (``CurrentState`` 0x70, or 0x50 superseded), the targets are
  staged (0x40). Changing it is a CBS transaction (install the target package, remove the
  current one), which needs the servicing stack: it runs at first boot.
* Windows 8 and later: the image carries the editions it can become as
  ``<windir>\\servicing\\Editions\\<X>Edition.xml`` (the "virtual editions" that share the
  image's composition edition); the current edition is ``EditionID`` in
  ``SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion`` and its edition file is copied to
  ``<windir>\\<X>.xml``. A change is: EditionID and ProductName rewritten,
  CompositionEditionID kept (set to the old edition when missing: the files are that
  edition's), ``<windir>\\<old>.xml`` replaced by ``<windir>\\<new>.xml``. The WIM XML
  (FLAGS, WINDOWS/EDITIONID, DISPLAYNAME) follows on commit: the WINDOWS XML provider
  (servicing.features.windows_info) reads the committed SOFTWARE hive.

A product key is validated (five groups of five characters of the product-key alphabet)
and given to Setup in ``<windir>\\Panther\\unattend.xml`` (specialize pass,
Microsoft-Windows-Shell-Setup ``ProductKey``), the answer file Setup searches implicitly.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import asdict, dataclass, field

from servicing.errors import NotApplicableError, RefusedError, ServicingError
from servicing.errors import ERROR_INVALID_PARAMETER
from servicing.features.image_info import ImageInfo, Layout, image_info, require_serviceable
from servicing.regf import REG_SZ, RegfError
from servicing.registry.edits import transaction
from servicing.registry.hives import ImageRegistry
from servicing.target import Target, join

VERSION_KEY = "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion"
PACKAGES_KEY = ("HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\"
                "Component Based Servicing\\Packages")
EDITIONS_DIR = "servicing/Editions"
EDITION_PACKAGE = re.compile(r"^Microsoft-Windows-(?P<edition>.+?)Edition~"
                             r"(?P<token>[0-9a-f]{16})~(?P<arch>[^~]*)~(?P<lang>[^~]*)~"
                             r"(?P<version>[0-9.]+)$", re.I)
INSTALLED, SUPERSEDED, STAGED = 0x70, 0x50, 0x40
PACKAGE_LAYOUTS = (Layout.VISTA, Layout.WIN7)     # editions are CBS packages there
# Product keys: base-24 digits (no vowels, no 0/1/5/L/S/Z...) plus one "N" on Windows 8
# and later keys.
KEY_ALPHABET = "BCDFGHJKMPQRTVWXY2346789"
KEY_RE = re.compile(rf"^[{KEY_ALPHABET}N]{{5}}(-[{KEY_ALPHABET}N]{{5}}){{4}}$")
# How ProductName spells an edition (Windows 10/11 client and server names).
DISPLAY = {
    "Core": "Home", "CoreN": "Home N", "CoreSingleLanguage": "Home Single Language",
    "CoreCountrySpecific": "Home China", "Professional": "Pro", "ProfessionalN": "Pro N",
    "ProfessionalEducation": "Pro Education",
    "ProfessionalEducationN": "Pro Education N",
    "ProfessionalWorkstation": "Pro for Workstations",
    "ProfessionalWorkstationN": "Pro N for Workstations",
    "Education": "Education", "EducationN": "Education N", "Enterprise": "Enterprise",
    "EnterpriseN": "Enterprise N", "EnterpriseS": "Enterprise LTSC",
    "EnterpriseSN": "Enterprise N LTSC", "ServerRdsh": "Enterprise multi-session",
    "IoTEnterprise": "IoT Enterprise", "IoTEnterpriseS": "IoT Enterprise LTSC",
    "ServerStandard": "Standard", "ServerDatacenter": "Datacenter",
    "HomeBasic": "Home Basic", "HomePremium": "Home Premium", "Ultimate": "Ultimate",
    "Starter": "Starter",
}


class ProductKeyError(ServicingError):
    """A product key of the wrong shape (DISM: Error 87)."""

    exit_code = 2
    hresult = None
    win32 = ERROR_INVALID_PARAMETER


@dataclass
class EditionPackage:
    edition: str
    name: str                       # the CBS package name
    state: int

    def identity(self) -> dict[str, str]:
        m = EDITION_PACKAGE.match(self.name)
        assert m is not None
        return {"name": f"Microsoft-Windows-{m['edition']}Edition", "version": m["version"],
                "processorArchitecture": m["arch"], "publicKeyToken": m["token"],
                "language": m["lang"] or "neutral"}


@dataclass
class EditionInfo:
    edition: str | None
    targets: list[str]
    layout: str | None
    composition_edition: str | None = None
    package: str | None = None                  # Windows 7: the installed edition package
    pending: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def check_product_key(key: str) -> str:
    k = key.strip().upper()
    if not KEY_RE.match(k) or k.count("N") > 1:
        raise ProductKeyError(f"{key!r} is not a Windows product key (five groups of five "
                              f"characters from {KEY_ALPHABET} and at most one N, "
                              "joined by -)")
    return k


def _require(target: Target) -> ImageInfo:
    info = require_serviceable(image_info(target))
    if info.winpe:
        raise RefusedError("Windows PE has no editions to change (DISM's edition commands "
                           "do not apply to Windows PE images)")
    return info


def _value(reg: ImageRegistry, key: str, name: str):
    try:
        v = reg.key(key).get(name)
    except RegfError:
        return None
    return v if isinstance(v, str) else None


def edition_packages(target: Target) -> list[EditionPackage]:
    reg = ImageRegistry(target)
    try:
        keys = reg.key(PACKAGES_KEY).subkeys()
    except RegfError:
        return []
    found = []
    for k in keys:
        m = EDITION_PACKAGE.match(k.name)
        state = k.get("CurrentState") if m else None
        if m and isinstance(state, int):
            found.append(EditionPackage(m["edition"], k.name, state))
    return sorted(found, key=lambda p: p.name.lower())


def _edition_files(target: Target) -> dict[str, str]:
    """Edition -> path of ``servicing\\Editions\\<X>Edition.xml``."""
    folder = target.resolve(target.system_path(EDITIONS_DIR))
    if folder is None or not target.is_dir(folder):
        return {}
    found = {}
    for name in target.listdir(folder):
        if name.lower().endswith("edition.xml") and len(name) > len("edition.xml"):
            found[name[:-len("edition.xml")]] = join(folder, name)
    return found


def edition_info(target: Target) -> EditionInfo:
    info = _require(target)
    reg = ImageRegistry(target)
    ed = EditionInfo(edition=_value(reg, VERSION_KEY, "EditionID"), targets=[],
                     layout=info.layout,
                     composition_edition=_value(reg, VERSION_KEY, "CompositionEditionID"))
    if info.layout in PACKAGE_LAYOUTS:
        pkgs = edition_packages(target)
        current = [p for p in pkgs if p.state in (INSTALLED, SUPERSEDED)]
        if current:
            ed.edition, ed.package = current[0].edition, current[0].name
        ed.targets = [p.edition for p in pkgs if p.state == STAGED
                      and p.edition.lower() != (ed.edition or "").lower()]
        return ed
    ed.targets = _virtual_targets(target, ed.edition)
    return ed


def _virtual_targets(target: Target, current: str | None) -> list[str]:
    """The staged edition files, except the current edition's; when the image has an
    EditionMatrix.xml, only the targets it lists for the current edition (DISM changes an
    image only upward: "the lowest edition will not appear")."""
    files = {e.lower(): e for e in _edition_files(target)}
    files.pop((current or "").lower(), None)
    matrix = target.resolve(target.system_path(EDITIONS_DIR, "EditionMatrix.xml"))
    if matrix is not None and not target.is_dir(matrix) and current:
        from servicing.formats.edition_matrix import parse_matrix

        allowed = {t.lower() for t in parse_matrix(target.read_file(matrix))
                   .get(current.lower(), [])}
        files = {k: v for k, v in files.items() if k in allowed}
    return sorted(files.values())


def current_edition(target: Target) -> str:
    ed = edition_info(target).edition
    if ed is None:
        raise ServicingError(f"{target.description}: no edition found (no EditionID and no "
                             "installed edition package)")
    return ed


def target_editions(target: Target) -> list[str]:
    return edition_info(target).targets


def _pick(ed: EditionInfo, edition: str) -> str:
    for t in ed.targets:
        if t.lower() == edition.lower():
            return t
    if (ed.edition or "").lower() == edition.lower():
        raise NotApplicableError(f"the image is already edition {ed.edition}")
    raise NotApplicableError(f"{edition} is not a target edition of this image (targets: "
                             f"{', '.join(ed.targets) or 'none'})")


def product_name(old_name: str | None, old: str | None, new: str) -> str:
    """ProductName for *new*: the old name with the edition part replaced ("Windows 10
    Pro" -> "Windows 10 Education"; Windows 11 keeps "Windows 10" there, as Windows does)."""
    disp_old, disp_new = DISPLAY.get(old or "", old or ""), DISPLAY.get(new, new)
    if old_name and disp_old and old_name.endswith(" " + disp_old):
        return old_name[:-len(disp_old)] + disp_new
    if old_name and old_name.startswith("Windows "):
        return " ".join(old_name.split()[:2] + [disp_new])
    return f"Windows {disp_new}"


def set_edition(target: Target, edition: str, *,
                product_key: str | None = None) -> EditionInfo:
    """Change *target* to *edition* (one of its targets): at once on 8+, at first boot on
    Vista/7 (the returned info lists it as pending)."""
    key = check_product_key(product_key) if product_key is not None else None
    ed = edition_info(target)
    new = _pick(ed, edition)
    if ed.layout in PACKAGE_LAYOUTS:
        _schedule_package_switch(target, ed, new)
    else:
        _set_virtual_edition(target, ed, new)
    if key is not None:
        set_product_key(target, key)
    if ed.layout in PACKAGE_LAYOUTS:
        return EditionInfo(**(ed.to_json() | {"pending": [new]}))
    return edition_info(target)


def _set_virtual_edition(target: Target, ed: EditionInfo, new: str) -> None:
    with transaction(target) as reg:
        old_name = _value(reg, VERSION_KEY, "ProductName")
        reg.set_value(VERSION_KEY, "EditionID", REG_SZ, new)
        reg.set_value(VERSION_KEY, "ProductName", REG_SZ,
                      product_name(old_name, ed.edition, new))
        if ed.composition_edition is None and ed.edition:
            reg.set_value(VERSION_KEY, "CompositionEditionID", REG_SZ, ed.edition)
        dpk = VERSION_KEY + "\\DefaultProductKey2"
        if _value(reg, dpk, "EditionID") is not None:
            reg.set_value(dpk, "EditionID", REG_SZ, new)
    files = _edition_files(target)
    if ed.edition:
        old = target.resolve(target.system_path(f"{ed.edition}.xml"))
        if old is not None and not target.is_dir(old):
            target.remove(old)
    target.write_file(target.system_path(f"{new}.xml"), target.read_file(files[new]))


# Windows 7's edition change is a CBS transaction: install the target edition package,
# remove the current one. Offline that needs the servicing stack, so it runs at first boot
# as a servicing answer file applied online by the image's own DISM (Set-WindowsCbsEdition
# applies the same answer file with Use-WindowsUnattend, fs:22298405192; DISM exits 3010
# when the change needs a restart, which the first-boot runner honours).
SWITCH_COMMAND = "%SystemRoot%\\System32\\Dism.exe /Online /NoRestart /Apply-Unattend:{file}"


def _schedule_package_switch(target: Target, ed: EditionInfo, new: str) -> None:
    from servicing.features.firstboot import FOLDER, schedule
    from servicing.formats.unattend_edits import package_actions

    pkgs = {p.edition.lower(): p for p in edition_packages(target)}
    current = [p for p in pkgs.values() if p.state in (INSTALLED, SUPERSEDED)]
    actions = [("install", pkgs[new.lower()].identity())]
    actions += [("remove", p.identity()) for p in current]
    rel = f"Edition\\{new}.xml"
    with tempfile.TemporaryDirectory(prefix="wimfs-edition-") as tmp:
        local = os.path.join(tmp, f"{new}.xml")
        with open(local, "wb") as f:
            f.write(package_actions(actions))
        schedule(target, name=f"edition-{new}", reboot=True, payload={rel: local},
                 command=SWITCH_COMMAND.format(
                     file=f"%SystemRoot%\\{FOLDER}\\{rel}"))


def set_product_key(target: Target, key: str) -> str:
    """Put *key* in ``<windir>\\Panther\\unattend.xml`` (specialize, Shell-Setup
    ProductKey), merging into an existing answer file. Returns its image path."""
    from servicing.formats.unattend_edits import with_product_key

    key = check_product_key(key)
    _require(target)
    path = target.system_path("Panther", "unattend.xml")
    found = target.resolve(path)
    old = target.read_file(found) if found is not None and not target.is_dir(found) else None
    info = image_info(target)
    data = with_product_key(old, key, info.architecture or "amd64")
    if found is None:
        target.mkdirs(target.system_path("Panther"))
    target.write_file(found or path, data)
    return found or path
