"""Windows Installer applications of an image: the products and patches installed per
machine, read from the SOFTWARE hive (DISM /Get-Apps, /Get-AppInfo, /Get-AppPatches,
/Get-AppPatchInfo; dism-reference.md 1.9 and 2.4). Read-only.

Windows Installer keys its registration by *packed* GUIDs (:func:`squash_guid`):

=====================================================================  ====================
``SOFTWARE\\Classes\\Installer\\Products\\<P>``                          ProductName,
                                                                       PackageCode (packed),
                                                                       Language, Version,
                                                                       Assignment,
                                                                       Transforms;
                                                                       ``SourceList``
                                                                       PackageName
``...\\Products\\<P>\\Patches``                                          ``Patches`` (the
                                                                       applied ones) and
                                                                       ``<X>`` = transforms
``SOFTWARE\\Classes\\Installer\\UpgradeCodes\\<U>``                      value ``<P>``
``...\\Installer\\UserData\\S-1-5-18\\Products\\<P>\\InstallProperties``  DisplayVersion,
                                                                       Publisher, ...
``...\\UserData\\S-1-5-18\\Products\\<P>\\Patches\\<X>``                  State, Uninstallable,
                                                                       DisplayName,
                                                                       MoreInfoURL, Installed
``...\\UserData\\S-1-5-18\\Patches\\<X>``                                LocalPackage
=====================================================================  ====================

The property to registry mapping is MsiGetProductInfoEx's / MsiGetPatchInfoEx's for the
machine context, as Wine implements them (dism-reference.md 2.4.3).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from servicing.errors import ServicingError
from servicing.features.image_info import image_info, require_serviceable
from servicing.formats.msi import CompoundFile, Database, MsiError, normal_guid
from servicing.regf import RegfError
from servicing.registry.hives import ImageRegistry
from servicing.target import Target

CLASSES = "HKLM\\SOFTWARE\\Classes\\Installer"
USERDATA = ("HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Installer\\UserData\\"
            "S-1-5-18")
ERROR_UNKNOWN_PRODUCT = 1605
ERROR_UNKNOWN_PATCH = 1647

PRODUCT_STATES = {5: "Installed", 1: "Advertised", 2: "Absent", -1: "Unknown"}
ASSIGNMENTS = {0: "Per-User", 1: "Per-Machine"}
PATCH_STATES = {1: "Applied", 2: "Superseded", 4: "Obsoleted", 8: "Registered"}
_PACKED = re.compile(r"[0-9A-Fa-f]{32}")


class UnknownProductError(ServicingError, FileNotFoundError):
    """No product of that code is registered in the image."""

    exit_code = 4
    hresult = None
    win32 = ERROR_UNKNOWN_PRODUCT


class UnknownPatchError(ServicingError, FileNotFoundError):
    """No patch of that code is registered for the product(s)."""

    exit_code = 4
    hresult = None
    win32 = ERROR_UNKNOWN_PATCH


# -- packed GUIDs ------------------------------------------------------------------------

def squash_guid(guid: str) -> str:
    """``{AAAAAAAA-BBBB-CCCC-DDEE-FFGGHHIIJJKK}`` -> the 32 characters Windows Installer
    uses as key and value names: groups 1-3 reversed, then each of the last 8 bytes with
    its two hex digits swapped (ValueError for a malformed GUID)."""
    h = normal_guid(guid)[1:-1].replace("-", "")
    tail = "".join(h[i + 1] + h[i] for i in range(16, 32, 2))
    return h[7::-1] + h[11:7:-1] + h[15:11:-1] + tail


def unsquash_guid(packed: str) -> str | None:
    """The GUID of a packed one; None if *packed* is not 32 hex digits (Windows
    Installer skips such keys)."""
    if not _PACKED.fullmatch(packed):
        return None
    p = packed.upper()
    tail = "".join(p[i + 1] + p[i] for i in range(16, 32, 2))
    return f"{{{p[7::-1]}-{p[11:7:-1]}-{p[15:11:-1]}-{tail[:4]}-{tail[4:]}}}"


def product_code_arg(text: str, what: str = "product code") -> str:
    """A GUID given on the command line (UsageError if it has the wrong shape)."""
    from wimfs.errors import UsageError
    try:
        return normal_guid(text, what)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


# -- records -----------------------------------------------------------------------------

@dataclass
class Product:
    product_code: str
    name: str = ""
    state: int = -1
    package_code: str = ""
    version: str = ""
    assignment: int | None = None
    publisher: str = ""
    language: int | None = None
    install_source: str = ""
    package_name: str = ""
    help_link: str = ""
    transforms: str = ""
    local_package: str = ""
    install_date: str = ""
    upgrade_code: str = ""
    patches: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self) | {"state_name": PRODUCT_STATES.get(self.state, "Unknown"),
                               "assignment_name": ASSIGNMENTS.get(self.assignment, "")}


@dataclass
class Patch:
    patch_code: str
    product_code: str
    name: str = ""
    state: int | None = None
    uninstallable: bool | None = None
    help_link: str = ""
    transforms: str = ""
    local_package: str = ""
    install_date: str = ""

    def to_json(self) -> dict:
        return asdict(self) | {"state_name": PATCH_STATES.get(self.state or 0, "")}


# -- reading -----------------------------------------------------------------------------

class _Reader:
    """The Installer registration of one image (read-only)."""

    def __init__(self, target: Target) -> None:
        require_serviceable(image_info(target))
        self.target = target
        self.reg = ImageRegistry(target)
        self._upgrade: dict[str, str] | None = None

    def key(self, path: str):
        try:
            return self.reg.key(path)
        except RegfError:
            return None

    def subkeys(self, path: str) -> list[str]:
        k = self.key(path)
        return [s.name for s in k.subkeys()] if k is not None else []

    def value(self, path: str, name: str):
        k = self.key(path)
        try:
            return k.get(name) if k is not None else None
        except RegfError:
            return None

    def text(self, path: str, name: str) -> str:
        v = self.value(path, name)
        if isinstance(v, list):
            return ";".join(str(x) for x in v)
        return "" if v is None else str(v)

    def upgrade_codes(self) -> dict[str, str]:
        """packed product code -> upgrade code (``Classes\\Installer\\UpgradeCodes``)."""
        if self._upgrade is None:
            self._upgrade = {}
            for packed_u in self.subkeys(f"{CLASSES}\\UpgradeCodes"):
                code = unsquash_guid(packed_u)
                k = self.key(f"{CLASSES}\\UpgradeCodes\\{packed_u}")
                if code is None or k is None:
                    continue
                for v in k.values():
                    self._upgrade.setdefault(v.name.upper(), code)
        return self._upgrade

    def product_keys(self) -> list[tuple[str, str]]:
        """(product code, packed) of every product registered per machine."""
        out = {}
        for packed in self.subkeys(f"{CLASSES}\\Products"):
            code = unsquash_guid(packed)
            if code is not None:
                out.setdefault(code, packed)
        return sorted(out.items())

    def product(self, code: str, packed: str) -> Product:
        cls = f"{CLASSES}\\Products\\{packed}"
        props = f"{USERDATA}\\Products\\{packed}\\InstallProperties"
        installed = self.key(props) is not None
        p = Product(code, name=self.text(cls, "ProductName"),
                    state=5 if installed else 1)
        p.package_code = unsquash_guid(self.text(cls, "PackageCode")) or \
            self.text(cls, "PackageCode")
        p.version = self.text(props, "DisplayVersion") or _dword_version(
            self.value(cls, "Version"))
        assignment = self.value(cls, "Assignment")
        p.assignment = assignment if isinstance(assignment, int) else None
        lang = self.value(cls, "Language")
        if not isinstance(lang, int):
            lang = self.value(props, "Language")
        p.language = lang if isinstance(lang, int) else _int(lang)
        p.transforms = self.text(cls, "Transforms")
        p.package_name = self.text(f"{cls}\\SourceList", "PackageName")
        for attr, name in (("publisher", "Publisher"), ("install_source", "InstallSource"),
                           ("help_link", "HelpLink"), ("local_package", "LocalPackage"),
                           ("install_date", "InstallDate")):
            setattr(p, attr, self.text(props, name))
        p.upgrade_code = self.upgrade_codes().get(packed.upper(), "") or \
            self.cached_upgrade_code(p.local_package)
        p.patches = [c for c, _ in self.patch_keys(packed)]
        return p

    def cached_upgrade_code(self, local_package: str) -> str:
        """UpgradeCode from the Property table of the product's cached package
        (``C:\\Windows\\Installer\\x.msi`` in the image), when UpgradeCodes lacks it;
        "" if there is none or it cannot be read."""
        m = re.fullmatch(r"[A-Za-z]:\\(.+)", local_package)
        found = self.target.resolve(m.group(1).replace("\\", "/")) if m else None
        if found is None or self.target.is_dir(found):
            return ""
        try:
            db = Database(CompoundFile(self.target.read_file(found), local_package))
            code = next((r["Value"] for r in db.rows("Property")
                         if r["Property"] == "UpgradeCode"), None)
            return normal_guid(str(code)) if code else ""
        except (MsiError, ValueError):
            return ""

    def patch_keys(self, packed_product: str) -> list[tuple[str, str]]:
        """(patch code, packed) of the patches registered for a product: the applied ones
        (``Classes ... Patches``) and those with a UserData key (any state)."""
        names = self.value(f"{CLASSES}\\Products\\{packed_product}\\Patches", "Patches")
        found = list(names) if isinstance(names, list) else []
        found += self.subkeys(f"{USERDATA}\\Products\\{packed_product}\\Patches")
        out: dict[str, str] = {}
        for packed in found:
            code = unsquash_guid(packed)
            if code is not None:
                out.setdefault(code, packed)
        return list(out.items())

    def patch(self, code: str, packed: str, product: str, packed_product: str) -> Patch:
        ud = f"{USERDATA}\\Products\\{packed_product}\\Patches\\{packed}"
        p = Patch(code, product, name=self.text(ud, "DisplayName"),
                  help_link=self.text(ud, "MoreInfoURL"),
                  install_date=self.text(ud, "Installed"))
        state = self.value(ud, "State")
        p.state = state if isinstance(state, int) else None
        unin = self.value(ud, "Uninstallable")
        p.uninstallable = bool(unin) if isinstance(unin, int) else None
        p.transforms = self.text(f"{CLASSES}\\Products\\{packed_product}\\Patches", packed)
        p.local_package = self.text(f"{USERDATA}\\Patches\\{packed}", "LocalPackage")
        return p


def _dword_version(v) -> str:
    """``Version`` DWORD = major << 24 | minor << 16 | build."""
    if not isinstance(v, int):
        return ""
    return f"{v >> 24 & 0xFF}.{v >> 16 & 0xFF}.{v & 0xFFFF}"


def _int(v) -> int | None:
    try:
        return int(str(v), 10)
    except (TypeError, ValueError):
        return None


# -- the feature functions ----------------------------------------------------------------

def list_products(target: Target) -> list[Product]:
    """Every product installed (or advertised) per machine, by product code."""
    r = _Reader(target)
    return [r.product(code, packed) for code, packed in r.product_keys()]


def product_info(target: Target, product_code: str | None = None) -> list[Product]:
    """One product (UnknownProductError if it is not registered) or all."""
    products = list_products(target)
    if product_code is None:
        return products
    code = product_code_arg(product_code)
    found = [p for p in products if p.product_code == code]
    if not found:
        raise UnknownProductError(f"product {code} is not installed in the image")
    return found


def list_patches(target: Target, product_code: str | None = None,
                 patch_code: str | None = None) -> list[Patch]:
    """The patches registered for one product or for all, optionally one patch only."""
    r = _Reader(target)
    products = r.product_keys()
    if product_code is not None:
        code = product_code_arg(product_code)
        products = [(c, p) for c, p in products if c == code]
        if not products:
            raise UnknownProductError(f"product {code} is not installed in the image")
    out = [r.patch(code, packed, pc, ppacked) for pc, ppacked in products
           for code, packed in r.patch_keys(ppacked)]
    if patch_code is not None:
        want = product_code_arg(patch_code, "patch code")
        out = [p for p in out if p.patch_code == want]
        if not out:
            where = f"product {product_code.upper()}" if product_code else "any product"
            raise UnknownPatchError(f"patch {want} is not registered for {where}")
    return out
