"""What a servicing operation changed (or, with --dry-run, would change): the one
record the servicing log, ``--dry-run`` and ``--json`` output are made from."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from servicing.regf import TYPE_NAMES, decode_data

SHORT = 64          # characters of value data shown before "..."


class ChangeKind(StrEnum):
    FILE_ADDED = "file added"
    FILE_REPLACED = "file replaced"
    FILE_REMOVED = "file removed"
    DIR_ADDED = "directory added"
    RENAMED = "renamed"
    LINKED = "hard link added"
    KEY_CREATED = "key created"
    KEY_DELETED = "key deleted"
    VALUE_SET = "value set"
    VALUE_DELETED = "value deleted"


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    path: str                                  # file path, or full key path
    name: str | None = None                    # value name
    old: tuple[int, bytes] | None = None       # (type, raw data) before
    new: tuple[int, bytes] | None = None       # (type, raw data) after
    size: int | None = None                    # bytes written (files)
    source: str | None = None                  # rename/link: the other path

    def describe(self) -> str:
        """One line for the log and for --dry-run."""
        if self.kind in (ChangeKind.VALUE_SET, ChangeKind.VALUE_DELETED):
            name = self.name or "(Default)"
            text = f"{self.kind}: {self.path} {name}"
            if self.old is not None:
                text += f" old={_show(*self.old)}"
            if self.new is not None:
                text += f" new={_show(*self.new)}"
            return text
        if self.source is not None:
            return f"{self.kind}: {self.source} -> {self.path}"
        if self.size is not None:
            return f"{self.kind}: {self.path} ({self.size} bytes)"
        return f"{self.kind}: {self.path}"

    def to_json(self) -> dict:
        doc: dict = {"change": str(self.kind), "path": self.path}
        for field in ("name", "size", "source"):
            if getattr(self, field) is not None:
                doc[field] = getattr(self, field)
        for field in ("old", "new"):
            v = getattr(self, field)
            if v is not None:
                doc[field] = {"type": _type_name(v[0]), "data": _json_data(*v)}
        return doc


def _type_name(vtype: int) -> str:
    return TYPE_NAMES.get(vtype, f"REG_0x{vtype:x}")


def _json_data(vtype: int, raw: bytes):
    v = decode_data(vtype, raw)
    return v.hex() if isinstance(v, bytes) else v


def _show(vtype: int, raw: bytes) -> str:
    """``REG_DWORD:0x1``; data longer than SHORT characters is cut with ``...``."""
    v = _json_data(vtype, raw)
    text = f"0x{v:x}" if isinstance(v, int) else (
        "|".join(v) if isinstance(v, list) else str(v))
    if len(text) > SHORT:
        text = text[:SHORT] + f"...({len(raw)} bytes)"
    return f"{_type_name(vtype)}:{text!r}"
