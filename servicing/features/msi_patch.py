"""Which installed products a Windows Installer patch (.msp) applies to, and why the others
are excluded (DISM /Check-AppPatch; dism-reference.md 2.4.4).

A patch applies to an installed product P when

1. P's product code is one of the patch's target product codes (summary information
   Template), and
2. at least one of its transforms (summary information Last Saved By, in order) validates
   against P: each check the transform's validation flags ask for passes -- product code
   (the transform's original product code), version (P's version against the transform's
   base version, on the fields and with the comparison the flags name), language (P's
   language among the transform's), upgrade code (P's, from ``Classes\\Installer\\
   UpgradeCodes``).

Choices where Windows Installer's behaviour is not documented (written down in one place,
here): a version field flag without a comparison flag compares for equality; with several
field flags the most precise one counts; the platform flag is not checked (Wine notes that
Windows Installer does not check it either).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from servicing.features.msi_apps import PRODUCT_STATES, Product, list_products
from servicing.formats.msi import MsiError, Validate
from servicing.formats.msp import PatchInfo, Transform, read_patch
from servicing.target import Target
from wimfs.errors import PathNotFoundError

# version field flags, least precise first: (flag, number of fields, their names)
_FIELDS = ((Validate.MAJORVERSION, 1, "major"), (Validate.MINORVERSION, 2, "major.minor"),
           (Validate.UPDATEVERSION, 3, "major.minor.update"))
# comparison flags: (flag, symbol, test of (installed, base))
_COMPARE = ((Validate.NEWLESSBASEVERSION, "<", lambda a, b: a < b),
            (Validate.NEWLESSEQUALBASEVERSION, "<=", lambda a, b: a <= b),
            (Validate.NEWEQUALBASEVERSION, "=", lambda a, b: a == b),
            (Validate.NEWGREATEREQUALBASEVERSION, ">=", lambda a, b: a >= b),
            (Validate.NEWGREATERBASEVERSION, ">", lambda a, b: a > b))
MAX_PATCH_FILE = 1 << 30


@dataclass
class Applicability:
    """One (patch, installed product) pair."""

    patch: str                  # the .msp path as given
    patch_code: str
    patch_name: str
    product_code: str
    product_name: str
    applicable: bool
    reason: str
    transform: str | None = None
    already_installed: bool = False

    def to_json(self) -> dict:
        return asdict(self)


def load_patch(path: str) -> PatchInfo:
    """Read a local .msp; missing file: PathNotFoundError, damaged: MsiError."""
    if not os.path.isfile(path):
        raise PathNotFoundError(f"{path}: no such patch file")
    size = os.path.getsize(path)
    if size > MAX_PATCH_FILE:
        raise MsiError(f"{path}: {size} bytes is too large for a patch")
    with open(path, "rb") as f:
        return read_patch(f.read(), path)


def check_patches(target: Target, paths: list[str]) -> list[Applicability]:
    """One record per (patch, product registered in the image), patches in the given
    order, products by product code."""
    patches = [load_patch(p) for p in paths]
    products = list_products(target)
    return [evaluate(path, patch, product) for path, patch in zip(paths, patches)
            for product in products]


def evaluate(path: str, patch: PatchInfo, product: Product) -> Applicability:
    rec = Applicability(path, patch.patch_code, patch.display_name, product.product_code,
                        product.name, False, "")
    rec.already_installed = patch.patch_code in product.patches
    if product.product_code not in set(patch.targets):
        rec.reason = (f"{product.product_code} is not a target of the patch (its summary "
                      f"information names {len(patch.targets)} target product code(s))")
        return rec
    if product.state != 5:
        state = PRODUCT_STATES.get(product.state, "Unknown")
        rec.reason = f"the product is not installed (state {product.state} {state})"
        return rec
    problems = []
    for t in patch.transforms:
        checks, problem = validate(t, product)
        if problem is None:
            rec.applicable, rec.transform = True, t.name
            rec.reason = f"transform :{t.name} validates: " + (", ".join(checks) or
                                                                "nothing to check")
            return rec
        problems.append(f":{t.name}: {problem}")
    rec.reason = "no transform validates (" + "; ".join(problems) + ")"
    return rec


def validate(t: Transform, product: Product) -> tuple[list[str], str | None]:
    """(the checks that passed, the first failure or None) of one transform."""
    passed: list[str] = []
    flags = Validate(t.flags & 0xFFF)
    if flags & Validate.PRODUCT:
        if t.from_product != product.product_code:
            return passed, (f"product code {product.product_code} is not the transform's "
                            f"{t.from_product}")
        passed.append(f"product code {t.from_product}")
    version = _check_version(flags, product.version, t.from_version)
    if version is not None:
        ok, text = version
        if not ok:
            return passed, text
        passed.append(text)
    if flags & Validate.LANGUAGE and t.languages:
        if product.language not in t.languages:
            shown = ",".join(map(str, t.languages))
            lang = "unknown" if product.language is None else product.language
            return passed, f"language {lang} is not the transform's {shown}"
        passed.append(f"language {product.language}")
    if flags & Validate.UPGRADECODE:
        if not product.upgrade_code:
            return passed, "the product has no upgrade code registered"
        if product.upgrade_code != t.upgrade_code:
            return passed, (f"upgrade code {product.upgrade_code} is not the transform's "
                            f"{t.upgrade_code}")
        passed.append(f"upgrade code {t.upgrade_code}")
    return passed, None


def _check_version(flags: Validate, installed: str, base: str) -> tuple[bool, str] | None:
    fields = [(n, name) for flag, n, name in _FIELDS if flags & flag]
    if not fields:
        return None
    n, name = fields[-1]
    symbol, test = next(((s, f) for flag, s, f in _COMPARE if flags & flag),
                        ("=", lambda a, b: a == b))
    a, b = _version(installed, n), _version(base, n)
    if a is None:
        return False, f"the product's version {installed or '(none)'} is not a version"
    if b is None:
        return False, f"the transform's base version {base!r} is not a version"
    ok = test(a, b)
    text = (f"version {installed} {symbol if ok else 'not ' + symbol} base {base} "
            f"({name})")
    return ok, text


def _version(text: str, n: int) -> tuple[int, ...] | None:
    parts = text.strip().split(".")
    try:
        nums = [int(p) for p in parts if p != ""]
    except ValueError:
        return None
    if not nums or len(nums) > 4:
        return None
    return tuple((nums + [0, 0, 0, 0])[:n])
