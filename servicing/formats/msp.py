"""Windows Installer patches (.msp): the patch code, the target product codes, the
transforms with what each validates, and the patch metadata (bytes in, dataclasses out).

The summary information and the transforms are described in :mod:`servicing.formats.msi`.
A transform's substorage ``name`` comes with a companion ``#name`` (the patch's own
tables: PatchPackage, Media); both carry the same summary information, and only the
first is validated (Windows Installer applies the pair together).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from servicing.formats.msi import (
    PID, CompoundFile, Database, MsiError, PatchError, SummaryInfo, normal_guid,
    validation_flags)

MAX_TARGETS = 100_000          # target product codes we accept in one patch
#: root storage class ids: installer database (.msi), transform (.mst)
NOT_A_PATCH = {"000C1084-0000-0000-C000-000000000046": "a Windows Installer package (.msi)",
               "000C1082-0000-0000-C000-000000000046": "a transform (.mst)"}


@dataclass(frozen=True)
class Transform:
    """What one transform of a patch validates against the installed product."""

    name: str                    # substorage name, without the ':'
    flags: int                   # MSITRANSFORM_VALIDATE_* (Validate)
    error_flags: int             # MSITRANSFORM_ERROR_*
    from_product: str
    from_version: str
    to_product: str
    to_version: str
    upgrade_code: str
    platform: str
    languages: tuple[int, ...]   # empty: any language

    def to_json(self) -> dict:
        return asdict(self) | {"languages": list(self.languages)}


@dataclass(frozen=True)
class PatchInfo:
    name: str                    # the file the patch was read from
    patch_code: str
    obsoletes: tuple[str, ...]
    targets: tuple[str, ...]     # target product codes (summary information PID 7)
    transforms: tuple[Transform, ...]
    metadata: dict[str, str] = field(default_factory=dict)   # MsiPatchMetadata (no Company)
    sequence: tuple[dict, ...] = ()                         # MsiPatchSequence rows
    title: str = ""

    @property
    def display_name(self) -> str:
        return self.metadata.get("DisplayName") or self.title

    def to_json(self) -> dict:
        return {"file": self.name, "patch_code": self.patch_code,
                "obsoletes": list(self.obsoletes), "targets": list(self.targets),
                "display_name": self.display_name,
                "transforms": [t.to_json() for t in self.transforms],
                "metadata": self.metadata, "sequence": list(self.sequence)}


def read_patch(data: bytes, name: str) -> PatchInfo:
    """A patch from its bytes; PatchError/MsiError (one line naming *name*) if damaged."""
    cf = CompoundFile(data, name)
    if cf.clsid in NOT_A_PATCH:
        raise PatchError(f"{name}: {NOT_A_PATCH[cf.clsid]}, not a patch")
    si = cf.summary()
    patch_code, obsoletes = _revision(si, name)
    targets = _targets(si, name)
    transforms = []
    for t in _transform_names(si, name):
        if t.startswith("#"):
            continue
        if not cf.has((t,)):
            raise PatchError(f"{name}: transform :{t} named in the summary information is "
                             "not in the patch")
        transforms.append(read_transform(cf.summary((t,)), t, name))
    metadata, sequence = _tables(cf)
    return PatchInfo(name, patch_code, obsoletes, targets, tuple(transforms), metadata,
                     sequence, si.text(PID.TITLE))


def _revision(si: SummaryInfo, name: str) -> tuple[str, tuple[str, ...]]:
    """PID 9: the patch code, then the obsoleted patch codes with no separator."""
    rev = si.text(PID.REVISION).strip()
    codes = [rev[i:i + 38] for i in range(0, len(rev), 38)]
    if not codes:
        raise PatchError(f"{name}: no patch code (summary information Revision Number is "
                         "empty); not a patch")
    try:
        guids = [normal_guid(c, "patch code") for c in codes]
    except ValueError as exc:
        raise PatchError(f"{name}: summary information Revision Number: {exc}") from None
    return guids[0], tuple(guids[1:])


def _targets(si: SummaryInfo, name: str) -> tuple[str, ...]:
    raw = [p for p in si.text(PID.TEMPLATE).split(";") if p.strip()]
    if not raw:
        raise PatchError(f"{name}: no target product codes (summary information Template "
                         "is empty); not a patch")
    if len(raw) > MAX_TARGETS:
        raise PatchError(f"{name}: {len(raw)} target product codes (more than "
                         f"{MAX_TARGETS})")
    try:
        return tuple(dict.fromkeys(normal_guid(p, "target product code") for p in raw))
    except ValueError as exc:
        raise PatchError(f"{name}: summary information Template: {exc}") from None


def _transform_names(si: SummaryInfo, name: str) -> list[str]:
    out = []
    for part in si.text(PID.LAST_SAVED_BY).split(";"):
        part = part.strip()
        if not part:
            continue
        if not part.startswith(":") or len(part) < 2:
            raise PatchError(f"{name}: transform {part!r} in the summary information is "
                             "not a substorage (':name')")
        out.append(part[1:])
    if not out:
        raise PatchError(f"{name}: no transforms (summary information Last Saved By is "
                         "empty); not a patch")
    return out


def read_transform(si: SummaryInfo, storage: str, name: str) -> Transform:
    """What a transform validates, from its summary information."""
    where = f"{name}: transform :{storage}"
    char_count = si.number(PID.CHAR_COUNT)
    flags, errors = validation_flags(char_count or 0)
    rev = si.text(PID.REVISION)
    parts = rev.split(";")
    if len(parts) != 3:
        raise PatchError(f"{where}: Revision Number {rev[:80]!r} is not "
                         "'{ProductCode}version;{ProductCode}version;{UpgradeCode}'")
    try:
        pc_from, v_from = _code_version(parts[0])
        pc_to, v_to = _code_version(parts[1])
        upgrade = normal_guid(parts[2], "upgrade code") if parts[2].strip() else ""
    except ValueError as exc:
        raise PatchError(f"{where}: {exc}") from None
    platform, _, langs = si.text(PID.TEMPLATE).partition(";")
    try:
        languages = tuple(int(x) for x in langs.split(",") if x.strip())
    except ValueError:
        raise PatchError(f"{where}: Template {si.text(PID.TEMPLATE)[:80]!r} is not "
                         "'platform;language'") from None
    return Transform(storage, flags, errors, pc_from, v_from, pc_to, v_to, upgrade,
                     platform.strip(), tuple(x for x in languages if x))


def _code_version(part: str) -> tuple[str, str]:
    code, version = part[:38], part[38:].strip()
    return normal_guid(code, "product code"), version


def _tables(cf: CompoundFile) -> tuple[dict[str, str], tuple[dict, ...]]:
    """MsiPatchMetadata (the rows without a Company: the standard properties) and
    MsiPatchSequence; a patch without a string pool (Windows Installer 2.0) has none."""
    try:
        db = Database(cf)
    except MsiError:
        if any(s.startswith("\u4840") for s in cf.streams()):
            raise
        return {}, ()
    meta = {str(r.get("Property")): str(r.get("Value") or "")
            for r in db.rows("MsiPatchMetadata") if not r.get("Company") and r.get("Property")}
    return meta, tuple(db.rows("MsiPatchSequence"))
