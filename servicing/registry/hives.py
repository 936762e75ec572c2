"""The registry of a Windows tree: Windows key paths mapped to hive files of a Target.

Hive files are looked up case-insensitively (``System32`` vs ``system32``) under the
target's Windows folder (``--windir``):

==============================  ==========================================
Key                             Hive file
==============================  ==========================================
HKLM\\SYSTEM                     <windir>/System32/config/SYSTEM
HKLM\\SOFTWARE                   <windir>/System32/config/SOFTWARE
HKLM\\DRIVERS                    <windir>/System32/config/DRIVERS
HKLM\\COMPONENTS                 <windir>/System32/config/COMPONENTS
HKLM\\SAM                        <windir>/System32/config/SAM
HKLM\\SECURITY                   <windir>/System32/config/SECURITY
HKU\\.DEFAULT                    <windir>/System32/config/DEFAULT
HKU\\DefaultUser                 Users/Default/NTUSER.DAT
HKU\\S-1-5-19                      <windir>/ServiceProfiles/LocalService/NTUSER.DAT
HKU\\S-1-5-20                      <windir>/ServiceProfiles/NetworkService/NTUSER.DAT
==============================  ==========================================

``HKLM\\SYSTEM\\CurrentControlSet`` is resolved through ``SYSTEM\\Select\\Current``
(``ControlSet%03d``), as the kernel does at boot.

Every edit made through an :class:`ImageRegistry` (``wimfs reg``, ``.reg`` import, the
servicing features) is recorded in the target's change list with the old and new value,
for the servicing log and ``--dry-run``. Edited hives land with the target's commit.
"""

from __future__ import annotations

import os

from servicing.changes import Change, ChangeKind
from servicing.regf import Hive, RegfError, RegfNotFoundError
from servicing.regf.hive import split_path
from servicing.target import Target

ROOT_ALIASES = {
    "HKLM": "HKEY_LOCAL_MACHINE", "HKEY_LOCAL_MACHINE": "HKEY_LOCAL_MACHINE",
    "HKU": "HKEY_USERS", "HKEY_USERS": "HKEY_USERS",
}

#: (root, first key component) -> (under the Windows folder?, path of the hive file)
HIVE_FILES = {
    ("HKEY_LOCAL_MACHINE", "SYSTEM"): (True, "System32/config/SYSTEM"),
    ("HKEY_LOCAL_MACHINE", "SOFTWARE"): (True, "System32/config/SOFTWARE"),
    ("HKEY_LOCAL_MACHINE", "DRIVERS"): (True, "System32/config/DRIVERS"),
    ("HKEY_LOCAL_MACHINE", "COMPONENTS"): (True, "System32/config/COMPONENTS"),
    ("HKEY_LOCAL_MACHINE", "SAM"): (True, "System32/config/SAM"),
    ("HKEY_LOCAL_MACHINE", "SECURITY"): (True, "System32/config/SECURITY"),
    ("HKEY_USERS", ".DEFAULT"): (True, "System32/config/DEFAULT"),
    ("HKEY_USERS", "DEFAULTUSER"): (False, "Users/Default/NTUSER.DAT"),
    ("HKEY_USERS", "S-1-5-19"): (True, "ServiceProfiles/LocalService/NTUSER.DAT"),
    ("HKEY_USERS", "S-1-5-20"): (True, "ServiceProfiles/NetworkService/NTUSER.DAT"),
}
MOUNT_NAMES = {
    ("HKEY_LOCAL_MACHINE", "SYSTEM"): "SYSTEM", ("HKEY_LOCAL_MACHINE", "SOFTWARE"): "SOFTWARE",
    ("HKEY_LOCAL_MACHINE", "DRIVERS"): "DRIVERS",
    ("HKEY_LOCAL_MACHINE", "COMPONENTS"): "COMPONENTS", ("HKEY_LOCAL_MACHINE", "SAM"): "SAM",
    ("HKEY_LOCAL_MACHINE", "SECURITY"): "SECURITY", ("HKEY_USERS", ".DEFAULT"): ".DEFAULT",
    ("HKEY_USERS", "DEFAULTUSER"): "DefaultUser", ("HKEY_USERS", "S-1-5-19"): "S-1-5-19",
    ("HKEY_USERS", "S-1-5-20"): "S-1-5-20",
}


class RegistryPathError(RegfNotFoundError):
    """A key path that maps to no hive of the tree."""


def split_key(path: str) -> tuple[str, str, list[str]]:
    """``HKLM\\SYSTEM\\Foo`` -> ("HKEY_LOCAL_MACHINE", "SYSTEM", ["Foo"])."""
    parts = split_path(path)
    if not parts:
        raise RegistryPathError("empty key path")
    root = ROOT_ALIASES.get(parts[0].upper())
    if root is None:
        raise RegistryPathError(f"unknown root key {parts[0]!r} (use HKLM or HKU)")
    if len(parts) < 2:
        return root, "", []
    return root, parts[1], parts[2:]


def join_key(*parts: str) -> str:
    return "\\".join(p for p in parts if p)


class RecordingKey:
    """A hive key whose edits are recorded as :class:`Change` s (reads pass through)."""

    def __init__(self, key, hive: RecordingHive, path: str) -> None:
        self._key = key
        self._hive = hive
        self.path = path

    def __getattr__(self, name):
        return getattr(self._key, name)

    def _old(self, name: str) -> tuple[int, bytes] | None:
        try:
            v = self._key.value(name)
        except RegfNotFoundError:
            return None
        return v.type, v.raw

    def set_value(self, name: str, vtype: int, data=None):
        old = self._old(name)
        v = self._key.set_value(name, vtype, data)
        self._hive.record(ChangeKind.VALUE_SET, self.path, name, old, (v.type, v.raw))
        return v

    def delete_value(self, name: str) -> None:
        old = self._old(name)
        self._key.delete_value(name)
        self._hive.record(ChangeKind.VALUE_DELETED, self.path, name, old)

    def create_key(self, path: str, class_name: str | None = None) -> RecordingKey:
        return self._hive.create_key(join_key(self.path, path), class_name)

    def delete_key(self, path: str) -> None:
        self._hive.delete_key(join_key(self.path, path))

    def subkey(self, name: str) -> RecordingKey:
        return RecordingKey(self._key.subkey(name), self._hive, join_key(self.path, name))

    def open(self, path: str) -> RecordingKey:
        return RecordingKey(self._key.open(path), self._hive, join_key(self.path, path))


class RecordingHive:
    """A hive of a target; edits are recorded with the full key path (``HKEY_...``)."""

    def __init__(self, hive: Hive, prefix: str, changes: list[Change]) -> None:
        self.hive = hive
        self.prefix = prefix
        self._changes = changes

    def __getattr__(self, name):
        return getattr(self.hive, name)

    def record(self, kind: ChangeKind, path: str, name: str | None = None, old=None,
               new=None) -> None:
        self._changes.append(Change(kind, join_key(self.prefix, path), name, old, new))

    def key(self, path: str = "") -> RecordingKey:
        return RecordingKey(self.hive.key(path), self, join_key(*split_path(path)))

    def create_key(self, path: str, class_name: str | None = None) -> RecordingKey:
        parts = split_path(path)
        if self.hive.has_key(path):
            return RecordingKey(self.hive.create_key(path, class_name), self, "\\".join(parts))
        first_new = next((i for i in range(1, len(parts) + 1)
                          if not self.hive.has_key("\\".join(parts[:i]))), None)
        k = self.hive.create_key(path, class_name)
        if first_new is not None:
            for i in range(first_new, len(parts) + 1):
                self.record(ChangeKind.KEY_CREATED, "\\".join(parts[:i]))
        return RecordingKey(k, self, "\\".join(parts))

    def delete_key(self, path: str) -> None:
        self.hive.delete_key(path)
        self.record(ChangeKind.KEY_DELETED, join_key(*split_path(path)))


class ImageRegistry:
    """Registry view of a target. Hives are opened on first use. With ``write=True``,
    :meth:`commit` hands every edited hive to the target, where it lands with the
    target's commit (a target given as a directory path is committed here too)."""

    def __init__(self, target: Target | str | os.PathLike, write: bool = False):
        self._own = not isinstance(target, Target)
        if self._own:
            from servicing.target.directory import DirTarget
            if not os.path.isdir(target):
                raise RegfNotFoundError(f"not a directory: {os.fspath(target)}")
            target = DirTarget(os.fspath(target))
        self.target: Target = target
        self.write = write
        self._hives: dict[tuple[str, str], tuple[str, RecordingHive]] = {}

    def __enter__(self) -> ImageRegistry:
        return self

    def __exit__(self, et, ev, tb) -> bool:
        if et is None and self.write:
            self.commit()
        else:
            self.discard()
        return False

    def hive_path(self, root: str, mount: str) -> str | None:
        entry = HIVE_FILES.get((root, mount.upper()))
        if entry is None:
            return None
        under_windir, rel = entry
        path = self.target.system_path(rel) if under_windir else rel
        found = self.target.resolve(path)
        return found if found is not None and not self.target.is_dir(found) else None

    def available(self, root: str) -> list[str]:
        """Mount names of the hives present in the tree under *root*."""
        return [MOUNT_NAMES[k] for k in HIVE_FILES
                if k[0] == root and self.hive_path(*k) is not None]

    def hive(self, root: str, mount: str) -> RecordingHive:
        k = (root, mount.upper())
        if k not in self._hives:
            if k not in HIVE_FILES:
                raise RegistryPathError(f"no hive {root}\\{mount} (known: "
                                        f"{', '.join(self.available(root)) or 'none'})")
            p = self.hive_path(root, mount)
            if p is None:
                raise RegistryPathError(f"hive {root}\\{mount} not found in "
                                        f"{self.target.description} ({HIVE_FILES[k][1]})")
            try:
                h = self.target.open_hive(p, write=self.write)
            except RegfError as exc:       # name the hive file in the one error line
                if len(exc.args) == 1 and isinstance(exc.args[0], str) and p not in exc.args[0]:
                    exc.args = (f"{p}: {exc.args[0]}",)
                raise
            self._hives[k] = (p, RecordingHive(h, join_key(root, MOUNT_NAMES[k]),
                                               self.target.changes))
        return self._hives[k][1]

    def resolve(self, path: str) -> tuple[RecordingHive, str, str]:
        """(hive, path inside the hive, canonical full path) of a key path;
        CurrentControlSet is replaced by the ControlSet00N it points to."""
        root, mount, rest = split_key(path)
        if not mount:
            raise RegistryPathError(f"{root} is not inside a hive")
        h = self.hive(root, mount)
        if root == "HKEY_LOCAL_MACHINE" and mount.upper() == "SYSTEM" and rest \
                and rest[0].upper() == "CURRENTCONTROLSET":
            rest = [current_control_set(h.hive)] + rest[1:]
        canon = join_key(root, MOUNT_NAMES[(root, mount.upper())], *rest)
        return h, "\\".join(rest), canon

    def key(self, path: str) -> RecordingKey:
        h, sub, _ = self.resolve(path)
        return h.key(sub)

    def create_key(self, path: str) -> RecordingKey:
        h, sub, _ = self.resolve(path)
        return h.create_key(sub)

    def delete_key(self, path: str) -> None:
        h, sub, canon = self.resolve(path)
        if not sub:
            raise RegfError(f"cannot delete the root of hive {canon}")
        h.delete_key(sub)

    def set_value(self, path: str, name: str, vtype: int, data) -> None:
        self.create_key(path).set_value(name, vtype, data)

    def delete_value(self, path: str, name: str) -> None:
        self.key(path).delete_value(name)

    def commit(self) -> None:
        """Hand the edited hives to the target (which commits them with everything else)."""
        for path, rh in self._hives.values():
            if rh.hive.writable:
                self.target.stage_hive(path, rh.hive)
        self._hives.clear()
        if self._own:
            self.target.commit()

    def discard(self) -> None:
        self._hives.clear()
        if self._own:
            self.target.discard()

    # ---- .reg files
    def import_reg(self, text: str) -> int:
        """Apply a .reg file's text; returns the number of operations."""
        from servicing.registry import edits, regfile
        return edits.apply(self, regfile.parse(text))

    def export_reg(self, path: str) -> str:
        """.reg text (version 5) of key *path* and everything below it."""
        from servicing.registry import regfile
        h, sub, canon = self.resolve(path)
        items = []
        for rel, k in h.walk(sub):
            full = canon + (rel[len(sub):] if sub else ("\\" + rel if rel else ""))
            items.append((full, [(v.name, v.type, v.raw) for v in k.values()]))
        return regfile.format_reg(items)


def current_control_set(system: Hive) -> str:
    """``ControlSet00N`` named by ``SYSTEM\\Select\\Current``."""
    try:
        cur = system.key("Select").value("Current").data
    except RegfNotFoundError:
        raise RegistryPathError(
            "SYSTEM has no Select\\Current; cannot resolve CurrentControlSet") from None
    if not isinstance(cur, int):
        raise RegistryPathError("SYSTEM\\Select\\Current is not a DWORD")
    return f"ControlSet{cur:03d}"
