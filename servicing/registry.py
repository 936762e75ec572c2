"""The registry of a Windows tree: Windows key paths mapped to hive files.

A *tree* is any directory holding a Windows installation (a wimfs mount, an
extracted image, an ntfs-3g mount).  Hive files are looked up
case-insensitively (``System32`` vs ``system32``):

==============================  ==========================================
Key                             Hive file
==============================  ==========================================
HKLM\\SYSTEM                     Windows/System32/config/SYSTEM
HKLM\\SOFTWARE                   Windows/System32/config/SOFTWARE
HKLM\\DRIVERS                    Windows/System32/config/DRIVERS
HKLM\\COMPONENTS                 Windows/System32/config/COMPONENTS
HKLM\\SAM                        Windows/System32/config/SAM
HKLM\\SECURITY                   Windows/System32/config/SECURITY
HKU\\.DEFAULT                    Windows/System32/config/DEFAULT
HKU\\DefaultUser                 Users/Default/NTUSER.DAT
==============================  ==========================================

``HKLM\\SYSTEM\\CurrentControlSet`` is resolved through
``SYSTEM\\Select\\Current`` (``ControlSet%03d``), as the kernel does at boot.
"""

from __future__ import annotations

import os

from . import regfile
from .regf import Hive, KeyNotFoundError, RegfError, RegfNotFoundError

ROOT_ALIASES = {
    "HKLM": "HKEY_LOCAL_MACHINE", "HKEY_LOCAL_MACHINE": "HKEY_LOCAL_MACHINE",
    "HKU": "HKEY_USERS", "HKEY_USERS": "HKEY_USERS",
}

#: (root, first key component) -> path of the hive file in the tree
HIVE_FILES = {
    ("HKEY_LOCAL_MACHINE", "SYSTEM"): "Windows/System32/config/SYSTEM",
    ("HKEY_LOCAL_MACHINE", "SOFTWARE"): "Windows/System32/config/SOFTWARE",
    ("HKEY_LOCAL_MACHINE", "DRIVERS"): "Windows/System32/config/DRIVERS",
    ("HKEY_LOCAL_MACHINE", "COMPONENTS"): "Windows/System32/config/COMPONENTS",
    ("HKEY_LOCAL_MACHINE", "SAM"): "Windows/System32/config/SAM",
    ("HKEY_LOCAL_MACHINE", "SECURITY"): "Windows/System32/config/SECURITY",
    ("HKEY_USERS", ".DEFAULT"): "Windows/System32/config/DEFAULT",
    ("HKEY_USERS", "DEFAULTUSER"): "Users/Default/NTUSER.DAT",
}
MOUNT_NAMES = {
    ("HKEY_LOCAL_MACHINE", "SYSTEM"): "SYSTEM", ("HKEY_LOCAL_MACHINE", "SOFTWARE"): "SOFTWARE",
    ("HKEY_LOCAL_MACHINE", "DRIVERS"): "DRIVERS",
    ("HKEY_LOCAL_MACHINE", "COMPONENTS"): "COMPONENTS", ("HKEY_LOCAL_MACHINE", "SAM"): "SAM",
    ("HKEY_LOCAL_MACHINE", "SECURITY"): "SECURITY", ("HKEY_USERS", ".DEFAULT"): ".DEFAULT",
    ("HKEY_USERS", "DEFAULTUSER"): "DefaultUser",
}


class RegistryPathError(RegfNotFoundError):
    """A key path that maps to no hive of the tree."""


def find_ci(root: str, relpath: str) -> str | None:
    """Case-insensitive lookup of *relpath* (``/``-separated) under *root*;
    the real path or None."""
    cur = root
    for part in [p for p in relpath.split("/") if p]:
        direct = os.path.join(cur, part)
        if os.path.exists(direct):
            cur = direct
            continue
        try:
            names = os.listdir(cur)
        except OSError:
            return None
        up = part.upper()
        match = [n for n in names if n.upper() == up]
        if not match:
            return None
        cur = os.path.join(cur, sorted(match)[0])
    return cur


def split_key(path: str) -> tuple[str, str, list[str]]:
    """``HKLM\\SYSTEM\\Foo`` -> ("HKEY_LOCAL_MACHINE", "SYSTEM", ["Foo"])."""
    parts = [p for p in path.replace("/", "\\").split("\\") if p]
    if not parts:
        raise RegistryPathError("empty key path")
    root = ROOT_ALIASES.get(parts[0].upper())
    if root is None:
        raise RegistryPathError("unknown root key %r (use HKLM or HKU)" % parts[0])
    if len(parts) < 2:
        return root, "", []
    return root, parts[1], parts[2:]


class ImageRegistry:
    """Registry view of a Windows tree.  Hives are opened on first use; with
    ``write=True`` every touched hive is committed (each atomically) by
    :meth:`commit` or at the end of a ``with`` block without exception."""

    def __init__(self, tree: str | os.PathLike, write: bool = False):
        self.tree = os.fspath(tree)
        if not os.path.isdir(self.tree):
            raise RegfNotFoundError("not a directory: %s" % self.tree)
        self.write = write
        self._hives: dict[tuple[str, str], Hive] = {}

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is None and self.write:
            self.commit()
        self._hives.clear()
        return False

    def hive_path(self, root: str, mount: str) -> str | None:
        rel = HIVE_FILES.get((root, mount.upper()))
        if rel is None:
            return None
        return find_ci(self.tree, rel)

    def available(self, root: str) -> list[str]:
        """Mount names of the hives present in the tree under *root*."""
        return [MOUNT_NAMES[k] for k in HIVE_FILES
                if k[0] == root and self.hive_path(*k) is not None]

    def hive(self, root: str, mount: str) -> Hive:
        k = (root, mount.upper())
        h = self._hives.get(k)
        if h is None:
            if k not in HIVE_FILES:
                raise RegistryPathError("no hive %s\\%s (known: %s)" % (
                    root, mount, ", ".join(self.available(root)) or "none"))
            p = self.hive_path(root, mount)
            if p is None:
                raise RegistryPathError("hive %s\\%s not found in %s (%s)" % (
                    root, mount, self.tree, HIVE_FILES[k]))
            h = self._hives[k] = Hive.open(p, write=self.write)
        return h

    def resolve(self, path: str) -> tuple[Hive, str, str]:
        """(hive, path inside the hive, canonical full path) of a key path;
        CurrentControlSet is replaced by the ControlSet00N it points to."""
        root, mount, rest = split_key(path)
        if not mount:
            raise RegistryPathError("%s is not inside a hive" % root)
        h = self.hive(root, mount)
        if root == "HKEY_LOCAL_MACHINE" and mount.upper() == "SYSTEM" and rest \
                and rest[0].upper() == "CURRENTCONTROLSET":
            try:
                cur = h.key("Select").value("Current").data
            except RegfNotFoundError:
                raise RegistryPathError(
                    "SYSTEM has no Select\\Current; cannot resolve CurrentControlSet") from None
            if not isinstance(cur, int):
                raise RegistryPathError("SYSTEM\\Select\\Current is not a DWORD")
            rest = ["ControlSet%03d" % cur] + rest[1:]
        canon = "\\".join([root, MOUNT_NAMES[(root, mount.upper())]] + rest)
        return h, "\\".join(rest), canon

    def key(self, path: str):
        h, sub, _ = self.resolve(path)
        return h.key(sub)

    def create_key(self, path: str):
        h, sub, _ = self.resolve(path)
        return h.create_key(sub)

    def delete_key(self, path: str) -> None:
        h, sub, canon = self.resolve(path)
        if not sub:
            raise RegfError("cannot delete the root of hive %s" % canon)
        h.delete_key(sub)

    def set_value(self, path: str, name: str, vtype: int, data) -> None:
        self.create_key(path).set_value(name, vtype, data)

    def delete_value(self, path: str, name: str) -> None:
        self.key(path).delete_value(name)

    def commit(self) -> None:
        for h in self._hives.values():
            if h.writable:
                h.commit()

    # ---- .reg files
    def import_reg(self, text: str) -> int:
        """Apply a .reg file's text; returns the number of operations."""
        ops = regfile.parse(text)
        for op in ops:
            if op.kind == "create_key":
                self.create_key(op.key)
            elif op.kind == "delete_key":
                try:
                    self.delete_key(op.key)
                except KeyNotFoundError:
                    pass            # regedit ignores deleting a missing key
            elif op.kind == "set_value":
                self.set_value(op.key, op.name, op.type, op.data)
            elif op.kind == "delete_value":
                try:
                    self.delete_value(op.key, op.name)
                except RegfNotFoundError:
                    pass
        return len(ops)

    def export_reg(self, path: str) -> str:
        """.reg text (version 5) of key *path* and everything below it."""
        h, sub, canon = self.resolve(path)
        items = []
        for rel, k in h.walk(sub):
            full = canon + (rel[len(sub):] if sub else ("\\" + rel if rel else ""))
            items.append((full, [(v.name, v.type, v.raw) for v in k.values()]))
        return regfile.format_reg(items)
