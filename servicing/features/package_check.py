"""Does a CBS package apply to an image, and if not, why (``wimfs package check``,
``package add`` without ``--ignore-check``)?

Reasons, each a code and a sentence:

==================  ================================================================
architecture        the package's processorArchitecture is not the image's (nor neutral)
language            the package is for a language the image does not have
parent-missing      none of the packages its ``<parent>`` elements name is installed
version             a parent is installed, but in a version the parent's
                    buildCompare/revisionCompare rejects; or (a package without
                    parents) its version's major.minor is not the image's
installed           this exact identity is installed or pending installation
superseded          a newer version of the same package is installed
reboot-pending      the image has operations waiting for a reboot (CBS refuses to
                    service it: CBS_E_PENDING)
==================  ================================================================
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

from servicing.features.cbs_store import INSTALLED, PackageRecord
from servicing.features.image_info import ImageInfo
from servicing.formats.cbs_manifest import Manifest, Parent, version_tuple

COMPARE = {"EQ": operator.eq, "NE": operator.ne, "GE": operator.ge, "GT": operator.gt,
           "LE": operator.le, "LT": operator.lt}
NEUTRAL_ARCH = ("", "neutral", "*", "msil")


@dataclass
class Reason:
    code: str
    message: str

    def to_json(self) -> dict:
        return {"code": self.code, "message": self.message}


@dataclass
class CheckResult:
    source: str
    identity: str
    applicable: bool
    reasons: list[Reason] = field(default_factory=list)
    restart_required: bool = False
    release_type: str = ""

    def to_json(self) -> dict:
        return {"source": self.source, "identity": self.identity,
                "applicable": self.applicable, "reasons": [r.to_json() for r in self.reasons],
                "restart_required": self.restart_required, "release_type": self.release_type}

    def summary(self) -> str:
        return "; ".join(r.message for r in self.reasons)


@dataclass
class ImageState:
    info: ImageInfo
    packages: list[PackageRecord]
    reboot: str | None = None

    def present(self) -> list[PackageRecord]:
        """Packages that count as on the image: installed, or pending installation (by
        CBS or at wimfs's first boot)."""
        return [p for p in self.packages if p.state_code in INSTALLED + (0x60,)
                or p.first_boot == "install"]


def _parent_ok(parent: Parent, have: tuple[int, ...]) -> bool:
    want = parent.identity.version_tuple
    for how, a, b in ((parent.build_compare, have[:3], want[:3]),
                      (parent.revision_compare, have[3:4], want[3:4])):
        op = COMPARE.get(how.upper()) if how else None
        if op is not None and not op(a, b):
            return False
    return True


def _parents(m: Manifest, state: ImageState) -> Reason | None:
    if not m.parents:
        return None
    present = state.present()
    found = []
    for parent in m.parents:
        same = [p for p in present if p.ident.family == parent.identity.family]
        if any(_parent_ok(parent, version_tuple(p.ident.version)) for p in same):
            return None
        found += same
    if found:
        return Reason("version", "the installed parent "
                      + ", ".join(p.identity for p in found) + " is not a version it "
                      "applies to (" + ", ".join(f"{p.identity.key} build "
                                                 f"{p.build_compare or 'any'}"
                                                 for p in m.parents) + ")")
    return Reason("parent-missing", "needs one of these packages installed: "
                  + ", ".join(p.identity.key for p in m.parents))


def _image_version(m: Manifest, info: ImageInfo) -> Reason | None:
    """A package without parents is built for one Windows version: its own version
    starts with the image's major.minor (6.1.x.y for Windows 7, 10.0.x.y for 10)."""
    mine = m.identity.version_tuple
    image = version_tuple(info.version or "")
    if m.parents or len(mine) < 2 or len(image) < 2 or mine[0] < 6:
        return None
    if mine[:2] != image[:2]:
        return Reason("version", f"built for Windows {mine[0]}.{mine[1]}, the image is "
                      f"{info.version}")
    return None


def check(m: Manifest, state: ImageState, source: str) -> CheckResult:
    """Every reason *m* does not apply to the image (none: applicable)."""
    info, ident = state.info, m.identity
    reasons: list[Reason] = []
    if ident.arch.lower() not in NEUTRAL_ARCH + ((info.architecture or "").lower(),):
        reasons.append(Reason("architecture", f"for {ident.arch}, the image is "
                                              f"{info.architecture}"))
    langs = [lang.lower() for lang in info.languages]
    if ident.language and langs and ident.language.lower() not in langs:
        reasons.append(Reason("language", f"for language {ident.language}, the image has "
                                          f"{', '.join(info.languages)}"))
    for reason in (_parents(m, state), _image_version(m, info)):
        if reason is not None:
            reasons.append(reason)
    for p in state.present():
        if p.identity.lower() == ident.key.lower():
            reasons.append(Reason("installed", f"already {p.state.lower()}"
                                  + (" (first boot)" if p.first_boot else "")))
        elif p.ident.family == ident.family and \
                version_tuple(p.ident.version) > ident.version_tuple:
            reasons.append(Reason("superseded", f"superseded by the installed {p.identity}"))
    if state.reboot:
        reasons.append(Reason("reboot-pending", f"the image waits for a reboot "
                                                f"({state.reboot})"))
    return CheckResult(source, ident.key, not reasons, reasons,
                       m.restart.lower() == "required", m.release_type)
