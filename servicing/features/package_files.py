"""Package files given on the command line: ``.cab``, ``.msu``, a folder of them
(searched recursively, as DISM's /PackagePath does) or an expanded package folder (one
holding ``update.mum``). Each is read for its ``update.mum``; an ``.msu``'s package
cabinets are extracted into a private temporary folder first, removed on exit."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from servicing.errors import TargetPathError
from servicing.formats import cab
from servicing.formats.cbs_manifest import Manifest, ManifestError, parse

UPDATE_MUM = "update.mum"


@dataclass
class PackageFile:
    source: str                 # the file or folder the user named (or found in a folder)
    kind: str                   # "cab", "msu" or "folder"
    manifest: Manifest
    path: str                   # the package cabinet or folder on the host
    inner: str | None = None    # the package cabinet inside an .msu

    @property
    def label(self) -> str:
        return f"{self.source}:{self.inner}" if self.inner else self.source


def _is_package(name: str) -> bool:
    return name.lower().endswith((".cab", ".msu"))


def package_sources(paths: list[str]) -> list[str]:
    """Files and expanded folders named by PATHS, folders searched recursively."""
    out = []
    for path in paths:
        if os.path.isfile(path):
            out.append(path)
        elif os.path.isdir(path):
            if os.path.isfile(os.path.join(path, UPDATE_MUM)):
                out.append(path)
                continue
            for root, dirs, files in os.walk(path):
                dirs.sort()
                out += [os.path.join(root, f) for f in sorted(files) if _is_package(f)]
        else:
            raise TargetPathError(f"package path not found: {path}")
    return out


def _cab_manifest(path: str, label: str) -> Manifest:
    found = cab.read(path, lambda n: n.lower() == UPDATE_MUM)
    if not found:
        raise ManifestError(f"{label}: not a CBS package (no update.mum in the cabinet)")
    return parse(next(iter(found.values())), f"{label}:update.mum")


def _load(path: str, tmp: str) -> list[PackageFile]:
    if os.path.isdir(path):
        with open(os.path.join(path, UPDATE_MUM), "rb") as f:
            return [PackageFile(path, "folder", parse(f.read(), f"{path}/update.mum"), path)]
    if not cab.is_msu(path):
        return [PackageFile(path, "cab", _cab_manifest(path, path), path)]
    inner = cab.msu_cabs(cab.members(path))
    if not inner:
        raise ManifestError(f"{path}: no package cabinet in the .msu")
    dest = tempfile.mkdtemp(prefix="msu-", dir=tmp)
    cab.extract(path, dest, lambda n: n in inner)
    return [PackageFile(path, "msu", _cab_manifest(os.path.join(dest, n), f"{path}:{n}"),
                        os.path.join(dest, n), inner=n) for n in inner]


@contextmanager
def opened(paths: list[str], warn=None) -> Iterator[list[PackageFile]]:
    """The packages of PATHS. A file named explicitly that is not a package is an error;
    one found in a folder is skipped with ``warn(message)``."""
    explicit = {os.path.abspath(p) for p in paths}
    tmp = tempfile.mkdtemp(prefix="wimfs-packages-")
    try:
        out = []
        for src in package_sources(paths):
            try:
                out += _load(src, tmp)
            except (cab.CabError, ManifestError) as exc:
                if os.path.abspath(src) in explicit or warn is None:
                    raise
                warn(f"skipped: {exc}")
        yield out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
