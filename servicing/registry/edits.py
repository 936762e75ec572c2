"""Registry changes as data, applied all or nothing.

A servicing feature (or a ``.reg`` file) describes what it changes as a list of
:class:`RegEdit`; :func:`apply` carries them out inside one transaction that may span
several hives (an international-settings change touches SYSTEM, DEFAULT and the
default user's NTUSER.DAT)::

    with registry.transaction(target) as reg:
        apply(reg, edits)

Either every edit lands with the target's commit, or (an exception) none does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

from servicing.regf import KeyNotFoundError, RegfNotFoundError
from servicing.registry.hives import ImageRegistry
from servicing.target import Target


class EditKind(StrEnum):
    CREATE_KEY = "create_key"
    DELETE_KEY = "delete_key"
    SET_VALUE = "set_value"
    DELETE_VALUE = "delete_value"


@dataclass(frozen=True)
class RegEdit:
    """One change: ``key`` is a full path (``HKLM\\SOFTWARE\\...``). A missing key or
    value to delete is not an error (as regedit does on import)."""

    kind: EditKind
    key: str
    name: str | None = None
    type: int | None = None
    data: bytes | None = None


def apply(reg: ImageRegistry, edits: Iterable[RegEdit]) -> int:
    """Apply *edits* in order; returns how many there were."""
    n = 0
    keys: dict[str, object] = {}          # key path -> opened key, while no key is deleted
    for e in edits:
        n += 1
        if e.kind == EditKind.DELETE_KEY:
            keys.clear()
            try:
                reg.delete_key(e.key)
            except KeyNotFoundError:
                pass
            continue
        if e.kind == EditKind.DELETE_VALUE:
            try:
                reg.delete_value(e.key, e.name or "")
            except RegfNotFoundError:
                pass
            continue
        key = keys.get(e.key.upper())
        if key is None:
            key = keys[e.key.upper()] = reg.create_key(e.key)
        if e.kind == EditKind.SET_VALUE:
            key.set_value(e.name or "", e.type, e.data)
    return n


@contextmanager
def transaction(target: Target) -> Iterator[ImageRegistry]:
    """The registry of *target* for editing; edited hives are handed to the target on a
    clean exit (they land with its commit) and dropped on an exception."""
    reg = ImageRegistry(target, write=True)
    try:
        yield reg
    except BaseException:
        reg.discard()
        raise
    reg.commit()
