"""The XML WINDOWS element of an image holding a Windows installation, filled as DISM
and wimlib do from the installation itself: the system root (the top-level directory
with the most of System32/kernel32.dll, System32/config/SOFTWARE and .../SYSTEM,
"Windows" preferred on a tie), the kernel32.dll PE header (ARCH) and the SOFTWARE and
SYSTEM hives (read with the servicing registry engine).

Also sets the image's FLAGS (EditionID), DISPLAYNAME and DISPLAYDESCRIPTION
(ProductName) when they are missing, as wimlib does.

The engine does not import this module: `wimfs.cli` registers `windows_info` as the
engine's provider (`wimfs.hooks.set_windows_info_provider`), which capture, export and
commit call through `wimfs.hooks.windows_xml`.
"""

from __future__ import annotations

import locale
import logging
import struct

from lxml import etree

from servicing.regf import Hive
from wimfs.format.blobtable import ZERO_HASH
from wimfs.image import Dentry, Image

log = logging.getLogger(__name__)

VERSION_KEY = "Microsoft\\Windows NT\\CurrentVersion"
PE_ARCH = {0x014C: 0, 0x01C0: 5, 0x01C4: 5, 0x01C2: 5, 0x0200: 6, 0x8664: 9, 0xAA64: 12}


def _child(d: Dentry | None, name: str) -> Dentry | None:
    if d is None or not d.inode.is_directory:
        return None
    return d.lookup(name, case_insensitive=True)       # (a name not there parses nothing)


def _probe(d: Dentry) -> tuple[int, tuple[Dentry, Dentry | None, Dentry | None,
                                           Dentry | None]] | None:
    """(score, (folder, kernel32.dll, SOFTWARE, SYSTEM)) of a system-root candidate:
    how many of the three files it has; None without a System32 folder."""
    s32 = _child(d, "System32")
    if s32 is None:
        return None
    k32 = _child(s32, "kernel32.dll")
    cfg = _child(s32, "config")
    sw, sy = _child(cfg, "SOFTWARE"), _child(cfg, "SYSTEM")
    return (k32 is not None) + (sw is not None) + (sy is not None), (d, k32, sw, sy)


def find_systemroot(img: Image) -> tuple[Dentry, Dentry | None, Dentry | None,
                                          Dentry | None] | None:
    """The top-level folder holding System32 with the most of kernel32.dll, SOFTWARE and
    SYSTEM; on a tie, one named Windows."""
    # A folder named Windows with all three wins every tie: look there first, so the
    # usual image parses no other top-level folder (a directory not parsed yet is asked
    # for System32 without being parsed).
    first = _child(img.root, "Windows")
    found = _probe(first) if first is not None and first.inode.is_directory else None
    if found is not None and found[0] == 3:
        return found[1]
    best, best_score = None, 0
    for d in (img.root.children or {}).values():
        if not d.inode.is_directory:
            continue
        found = _probe(d)
        if found is None:
            continue
        score, what = found
        if score > best_score or (score == best_score and score and
                                  d.name.upper() == "WINDOWS"):
            best, best_score = what, score
    return best


def _language_name(lcid: int) -> str | None:
    name = locale.windows_locale.get(lcid)
    return name.replace("_", "-") if name else None


class _Props:
    """Ordered WINDOWS fields; LANGUAGES and VERSION are nested."""

    def __init__(self) -> None:
        self.top: dict[str, str] = {}
        self.version: dict[str, str] = {}
        self.languages: list[str] = []
        self.default_language: str | None = None
        self.image: dict[str, str] = {}

    def merge(self, other: _Props) -> None:
        """Add what *other* (one hive's fields) found, as if read into this one."""
        self.top.update(other.top)
        self.version.update(other.version)
        self.image.update(other.image)
        if other.languages:
            self.languages = list(other.languages)
        if other.default_language:
            self.default_language = other.default_language


def _get(hive, key: str, name: str):
    try:
        return hive.key(key).get(name)
    except Exception:  # noqa: BLE001 - a missing key or value just leaves the field out
        return None


def _from_software(p: _Props, data: bytes) -> None:

    hive = Hive.from_bytes(data)
    edition = _get(hive, VERSION_KEY, "EditionID")
    product = _get(hive, VERSION_KEY, "ProductName")
    if isinstance(edition, str):
        p.image["FLAGS"] = edition
        p.top["EDITIONID"] = edition
    if isinstance(product, str):
        p.image["DISPLAYNAME"] = product
        p.image["DISPLAYDESCRIPTION"] = product
    inst = _get(hive, VERSION_KEY, "InstallationType")
    if isinstance(inst, str):
        p.top["INSTALLATIONTYPE"] = inst
    if isinstance(product, str):
        p.top["PRODUCTNAME"] = product
    major = _get(hive, VERSION_KEY, "CurrentMajorVersionNumber")
    minor = _get(hive, VERSION_KEY, "CurrentMinorVersionNumber")
    if not isinstance(major, int) or not isinstance(minor, int):
        cv = _get(hive, VERSION_KEY, "CurrentVersion")
        major = minor = None
        if isinstance(cv, str) and "." in cv:
            a, _, b = cv.partition(".")
            if a.strip().isdigit() and b.strip().isdigit():
                major, minor = int(a), int(b)
    if isinstance(major, int):
        p.version["MAJOR"] = str(major)
        if isinstance(minor, int):
            p.version["MINOR"] = str(minor)
    build = _get(hive, VERSION_KEY, "CurrentBuild")
    if isinstance(build, str):
        if "." in build:      # Windows XP: "CurrentBuild" is obsolete there
            build = _get(hive, VERSION_KEY, "CurrentBuildNumber")
        if isinstance(build, str):
            p.version["BUILD"] = build


def _from_system(p: _Props, data: bytes) -> None:

    hive = Hive.from_bytes(data)
    cs = "ControlSet001\\Control"
    sp = _get(hive, cs + "\\Windows", "CSDBuildNumber")
    if isinstance(sp, int):
        p.version["SPBUILD"] = str(sp)
    lvl = _get(hive, cs + "\\Windows", "CSDVersion")
    if isinstance(lvl, int):
        p.version["SPLEVEL"] = str(lvl >> 8)
    for name, field in (("ProductType", "PRODUCTTYPE"), ("ProductSuite", "PRODUCTSUITE")):
        v = _get(hive, cs + "\\ProductOptions", name)
        if isinstance(v, list):
            v = v[0] if v else None
        if isinstance(v, str):
            p.top[field] = v
    hal = _get(hive, cs + "\\Class\\{4D36E966-E325-11CE-BFC1-08002BE10318}\\0000",
               "MatchingDeviceId")
    if isinstance(hal, str):
        p.top["HAL"] = hal
    try:
        p.languages = [k.name for k in hive.key(cs + "\\MUI\\UILanguages").subkeys()]
    except Exception:  # noqa: BLE001
        pass
    il = _get(hive, cs + "\\Nls\\Language", "InstallLanguage")
    if isinstance(il, str):
        try:
            p.default_language = _language_name(int(il, 16))
        except ValueError:
            pass


def _arch(data: bytes) -> int | None:
    if len(data) < 0x40:
        return None
    off = struct.unpack_from("<I", data, 0x3C)[0]
    if off & 3 or off + 6 > len(data) or data[off:off + 4] != b"PE\0\0":
        return None
    return PE_ARCH.get(struct.unpack_from("<H", data, off + 4)[0])


def _inputs(img: Image) -> tuple[str, list] | None:
    """The system root's name and the unnamed streams of the files read: kernel32.dll,
    SOFTWARE, SYSTEM (None for a missing or empty one)."""
    found = find_systemroot(img)
    if found is None:
        return None
    root, *files = found
    streams = [d.inode.data if d is not None and d.inode.data is not None
               and d.inode.data.size else None for d in files]
    return root.name.upper(), streams


def unchanged(img: Image) -> bool:
    """Whether none of the files the WINDOWS element is read from was written since the
    image was last committed (commit keeps the old element then: no hive parsed)."""
    inputs = _inputs(img)
    return inputs is not None and all(s is None or s.source is None for s in inputs[1])


def windows_info(img: Image, read) -> tuple[etree._Element, dict[str, str]] | None:
    """(WINDOWS element, image-level fields) for an image holding Windows, else None.
    `read(stream) -> bytes` reads a file's unnamed data."""
    found = find_systemroot(img)
    if found is None:
        return None
    root, k32, sw, sy = found
    p = _Props()

    def content(d: Dentry | None) -> bytes | None:
        if d is None or d.inode.data is None or not d.inode.data.size:
            return None
        try:
            return read(d.inode.data)
        except Exception as exc:  # noqa: BLE001
            log.warning("cannot read %s: %s", d.path, exc)
            return None

    arch = None
    data = content(k32)
    if data is not None:
        arch = _arch(data)
    for d, fn in ((sw, _from_software), (sy, _from_system)):
        part = _hive_fields(d, fn, content)
        if part is not None:
            p.merge(part)
    return _element(p, arch, root.name), p.image


windows_info.unchanged = unchanged      # type: ignore[attr-defined]  (wimfs.hooks asks)

# The fields read from a hive, by the hive's SHA-1 (when known): the editions of an
# `IMAGE.wim:all` commit share their edited SYSTEM hive, read once.
_PARTS: dict[tuple[str, bytes], _Props] = {}
_PARTS_MAX = 32


def _hive_fields(d: Dentry | None, fn, content) -> _Props | None:
    s = d.inode.data if d is not None else None
    key = (fn.__name__, s.hash) if s is not None and s.hash != ZERO_HASH else None
    if key is not None and key in _PARTS:
        return _PARTS[key]
    data = content(d)
    if data is None:
        return None
    part = _Props()
    try:
        fn(part, data)
    except Exception as exc:  # noqa: BLE001 - a damaged hive: leave the fields out
        log.warning("%s: cannot read the registry hive: %s", d.path, exc)
    if key is not None:
        if len(_PARTS) >= _PARTS_MAX:
            _PARTS.clear()
        _PARTS[key] = part
    return part


def _element(p: _Props, arch: int | None, root_name: str) -> etree._Element:
    win = etree.Element("WINDOWS")

    def add(tag: str, value) -> None:
        if value is not None:
            etree.SubElement(win, tag).text = str(value)

    add("ARCH", arch)
    for tag in ("PRODUCTNAME", "EDITIONID", "INSTALLATIONTYPE", "HAL", "PRODUCTTYPE",
                "PRODUCTSUITE"):
        add(tag, p.top.get(tag))
    if p.languages or p.default_language:
        langs = etree.SubElement(win, "LANGUAGES")
        for lang in p.languages:
            etree.SubElement(langs, "LANGUAGE").text = lang
        if p.default_language:
            etree.SubElement(langs, "DEFAULT").text = p.default_language
    if p.version:
        ver = etree.SubElement(win, "VERSION")
        for tag in ("MAJOR", "MINOR", "BUILD", "SPBUILD", "SPLEVEL"):
            if tag in p.version:
                etree.SubElement(ver, tag).text = p.version[tag]
    add("SYSTEMROOT", root_name.upper())
    return win
