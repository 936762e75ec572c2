"""The WIM XML data: UTF-16LE document with per-image names, counts and times."""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from wimfs.errors import WimCorruptError, WimfsError
from wimfs.format.filetime import (  # noqa: F401  (re-exported: the callers' old home)
    FILETIME_EPOCH,
    filetime_now,
    filetime_to_datetime,
    filetime_to_unix_ns,
    frozen_filetime,
    unix_ns_to_filetime,
)

@dataclass(slots=True)
class ImageInfo:
    index: int
    name: str | None = None
    description: str | None = None
    display_name: str | None = None
    display_description: str | None = None
    flags: str | None = None
    dir_count: int = 0
    file_count: int = 0
    total_bytes: int = 0
    hard_link_bytes: int = 0
    creation_time: int = 0
    last_modification_time: int = 0
    wimboot: bool = False
    windows: dict | None = None
    extra: dict = field(default_factory=dict)


def _text(el, tag: str) -> str | None:
    c = el.find(tag)
    return c.text if c is not None and c.text is not None else None


def _int(el, tag: str) -> int:
    t = _text(el, tag)
    if t is None:
        return 0
    try:
        return int(t.strip(), 0)
    except ValueError:
        return 0


def _time(el, tag: str) -> int:
    t = el.find(tag)
    if t is None:
        return 0
    try:
        hi = int((_text(t, "HIGHPART") or "0").strip(), 16)
        lo = int((_text(t, "LOWPART") or "0").strip(), 16)
    except ValueError:
        return 0
    return (hi << 32) | lo


def _element_to_dict(el) -> dict | str:
    children = list(el)
    if not children:
        return el.text or ""
    out: dict = {}
    for c in children:
        if not isinstance(c.tag, str):
            continue
        v = _element_to_dict(c)
        if c.tag in out:  # repeated elements (LANGUAGE) become lists
            if not isinstance(out[c.tag], list):
                out[c.tag] = [out[c.tag]]
            out[c.tag].append(v)
        else:
            out[c.tag] = v
    return out


def decode_xml(raw: bytes) -> etree._Element:
    if not raw:
        return etree.Element("WIM")
    try:
        if raw[:2] == b"\xff\xfe":
            text = raw[2:].decode("utf-16-le")
        elif raw[:2] == b"\xfe\xff":
            text = raw[2:].decode("utf-16-be")
        elif raw[:1] == b"<" and raw[1:2] != b"\x00":
            text = raw.decode("utf-8")
        else:
            text = raw.decode("utf-16-le")
        text = text.rstrip("\x00")
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
        return etree.fromstring(text.encode("utf-8"), parser)
    except (UnicodeDecodeError, etree.XMLSyntaxError) as exc:
        raise WimCorruptError(f"WIM XML data is invalid: {exc}") from exc


def parse_xml(raw: bytes) -> tuple[etree._Element, dict[int, ImageInfo], int | None]:
    """Return the document, images by index, and the WIM-level TOTALBYTES."""
    root = decode_xml(raw)
    images: dict[int, ImageInfo] = {}
    for pos, el in enumerate(root.findall("IMAGE"), 1):
        try:
            index = int(el.get("INDEX", pos))
        except ValueError:
            index = pos
        win = el.find("WINDOWS")
        info = ImageInfo(
            index=index, name=_text(el, "NAME"), description=_text(el, "DESCRIPTION"),
            display_name=_text(el, "DISPLAYNAME"),
            display_description=_text(el, "DISPLAYDESCRIPTION"), flags=_text(el, "FLAGS"),
            dir_count=_int(el, "DIRCOUNT"), file_count=_int(el, "FILECOUNT"),
            total_bytes=_int(el, "TOTALBYTES"), hard_link_bytes=_int(el, "HARDLINKBYTES"),
            creation_time=_time(el, "CREATIONTIME"),
            last_modification_time=_time(el, "LASTMODIFICATIONTIME"),
            wimboot=(_text(el, "WIMBOOT") or "0").strip() == "1",
            windows=_element_to_dict(win) if win is not None else None,  # type: ignore[arg-type]
        )
        images[index] = info
    total = _text(root, "TOTALBYTES")
    try:
        total_bytes = int(total) if total is not None else None
    except ValueError:
        total_bytes = None
    return root, images, total_bytes


def encode_xml(root: etree._Element) -> bytes:
    """Serialise as WIMs store it: UTF-16LE with a byte-order mark, no declaration."""
    text = etree.tostring(root, encoding="unicode")
    return b"\xff\xfe" + text.encode("utf-16-le")


# --- Editing an IMAGE element ------------------------------------------------------

def set_text(parent, tag: str, value) -> None:
    """Set (or, with None, remove) the text child `tag` of `parent`."""
    el = parent.find(tag)
    if value is None:
        if el is not None:
            parent.remove(el)
        return
    if el is None:
        el = etree.SubElement(parent, tag)
    el.text = str(value)


def set_time(parent, tag: str, ft: int) -> None:
    """A FILETIME child as WIM XML writes it (HIGHPART/LOWPART in hex)."""
    el = parent.find(tag)
    if el is None:
        el = etree.SubElement(parent, tag)
    for child in list(el):
        el.remove(child)
    etree.SubElement(el, "HIGHPART").text = f"0x{ft >> 32:08X}"
    etree.SubElement(el, "LOWPART").text = f"0x{ft & 0xFFFFFFFF:08X}"


def image_statistics(img) -> tuple[int, int, int, int]:
    """(dir count, file count, total bytes, hard link bytes) as DISM/wimlib count them
    (`img`: a wimfs.image.Image, duck-typed)."""
    dirs = files = total = hard = 0
    for ino in img.inodes:
        n = len(ino.dentries)
        if n == 0:
            continue
        if ino.is_directory:
            dirs += n
        else:
            files += n
        size = sum(s.size for s in ino.streams())
        total += size * n
        hard += size * (n - 1)
    raw = getattr(img, "raw_statistics", None)     # the subtrees not parsed into objects
    if raw is not None:
        rd, rf, rt, rh = raw()
        dirs, files, total, hard = dirs + rd, files + rf, total + rt, hard + rh
    return dirs, files, total, hard


def set_property(image_el, key: str, value: str) -> None:
    """--set-property KEY=VALUE: KEY is a path like WINDOWS/VERSION/BUILD or NAME."""
    el = image_el
    parts = [p for p in key.upper().split("/") if p]
    if not parts:
        raise WimfsError(f"invalid property name {key!r}")
    for p in parts[:-1]:
        nxt = el.find(p)
        if nxt is None:
            nxt = etree.SubElement(el, p)
        el = nxt
    set_text(el, parts[-1], value if value != "" else None)
