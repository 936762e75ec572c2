"""Cabinet (.cab) and Windows Update standalone (.msu) files, read with libarchive.

A CBS package is a cabinet holding ``update.mum`` and the package's manifests, catalogs
and payload; an ``.msu`` is a cabinet holding ``WSUSSCAN.cab`` (Windows Update metadata),
one or more package cabinets, a ``.xml`` for pkgmgr and ``*-pkgProperties.txt`` (KB934307).

Every member name is checked before anything is read: absolute names, drive letters,
``..`` components, empty components, NUL characters and names that are not UTF-8 are
refused for the whole cabinet (one :class:`CabError`), so nothing can be written outside
the folder :func:`extract` is given, and that folder is the only place it writes.
Damaged, truncated, multi-volume and unsupported (Quantum) cabinets are one
:class:`CabError` as well.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from servicing.errors import ServicingError
from wimfs.errors import EXIT_BAD_IMAGE

CBS_E_INVALID_PACKAGE = 0x800F0805
MAX_MEMBER = 256 << 20          # a member read into memory (manifests are kilobytes)
_DRIVE = re.compile(r"^[A-Za-z]:")


class CabError(ServicingError):
    """A cabinet that cannot be read safely (damaged, unsupported or hostile names)."""

    exit_code = EXIT_BAD_IMAGE
    hresult = CBS_E_INVALID_PACKAGE


def safe_name(raw: str | bytes, cab: str) -> str:
    """A member name as a relative ``/``-separated path, or CabError."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CabError(f"{cab}: a member name is not UTF-8 ({raw[:40]!r})") from None
    name = raw.replace("\\", "/")
    parts = name.split("/")
    if (not name or name.startswith("/") or _DRIVE.match(name) or "\0" in name
            or any(p in ("", ".", "..") for p in parts)):
        raise CabError(f"{cab}: unsafe member name {raw!r} (absolute, drive or '..' "
                       "paths are refused)")
    if any(len(p.encode()) > 255 for p in parts):
        raise CabError(f"{cab}: member name {raw[:60]!r}... has a component longer than "
                       "255 bytes")
    return name


@contextmanager
def _reader(path: str) -> Iterator:
    import libarchive
    from libarchive.exception import ArchiveError

    try:
        with libarchive.file_reader(path, format_name="cab") as archive:
            yield archive
    except ArchiveError as exc:
        msg = str(exc.msg if hasattr(exc, "msg") else exc).split(" (errno")[0]
        raise CabError(f"{path}: not a readable cabinet ({msg})") from None
    except OSError as exc:
        raise CabError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _entries(archive, path: str) -> Iterator[tuple[str, object]]:
    for entry in archive:
        raw = entry.pathname if entry.pathname is not None else b""
        yield safe_name(raw, path), entry


def members(path: str) -> list[str]:
    """Every member name of the cabinet (validated; the whole cabinet is read, so a
    damaged data block is found here too)."""
    out = []
    with _reader(path) as archive:
        for name, entry in _entries(archive, path):
            for _ in entry.get_blocks():
                pass
            out.append(name)
    if not out:
        raise CabError(f"{path}: the cabinet holds no files")
    return out


def read(path: str, wanted: Callable[[str], bool]) -> dict[str, bytes]:
    """The members *wanted* selects, by name, read into memory (each at most 256 MiB).
    Every name is validated, wanted or not."""
    out: dict[str, bytes] = {}
    with _reader(path) as archive:
        for name, entry in _entries(archive, path):
            if not wanted(name):
                continue
            if (entry.size or 0) > MAX_MEMBER:
                raise CabError(f"{path}: member {name} is too large to inspect")
            data = bytearray()
            for block in entry.get_blocks():
                data += block
                if len(data) > MAX_MEMBER:
                    raise CabError(f"{path}: member {name} is too large to inspect")
            out[name] = bytes(data)
    return out


def extract(path: str, dest: str, wanted: Callable[[str], bool] | None = None) -> list[str]:
    """Write the members *wanted* selects (default all) under the existing folder *dest*
    (files created exclusively, never followed through links); returns the host paths.
    Names are checked for the whole cabinet before the first byte is written."""
    names = members(path)
    if len({n.lower() for n in names}) != len(names):
        raise CabError(f"{path}: the cabinet holds two members of the same name")
    out = []
    root = os.path.realpath(dest)
    with _reader(path) as archive:
        for name, entry in _entries(archive, path):
            if wanted is not None and not wanted(name):
                continue
            host = os.path.join(root, *name.split("/"))
            os.makedirs(os.path.dirname(host), exist_ok=True)
            if not os.path.realpath(os.path.dirname(host)).startswith(root):
                raise CabError(f"{path}: member {name} would leave the extraction folder")
            fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as f:
                for block in entry.get_blocks():
                    f.write(block)
            out.append(host)
    return out


def is_msu(path: str) -> bool:
    return path.lower().endswith(".msu")


def msu_cabs(names: list[str]) -> list[str]:
    """The package cabinets of an .msu (every top-level .cab but WSUSSCAN.cab)."""
    return [n for n in names if "/" not in n and n.lower().endswith(".cab")
            and n.lower() != "wsusscan.cab"]
