"""`wimfs info`: header, images and XML fields (text or JSON)."""

from __future__ import annotations

import json
import os
import sys

from wimfs.commands import image_spec
from wimfs.format import structs as S
from wimfs.format.xmlinfo import ImageInfo, filetime_to_datetime
from wimfs.wim import Wim


def _iso(ft: int) -> str | None:
    return filetime_to_datetime(ft).strftime("%Y-%m-%dT%H:%M:%SZ") if ft else None


def image_dict(info: ImageInfo) -> dict:
    return {
        "index": info.index, "name": info.name, "description": info.description,
        "display_name": info.display_name, "display_description": info.display_description,
        "dir_count": info.dir_count, "file_count": info.file_count,
        "total_bytes": info.total_bytes, "hard_link_bytes": info.hard_link_bytes,
        "creation_time": _iso(info.creation_time),
        "last_modification_time": _iso(info.last_modification_time),
        "flags": info.flags, "wimboot": info.wimboot, "windows": info.windows,
    }


def wim_dict(wim: Wim, index: int | None = None) -> dict:
    h = wim.header
    indexes = [index] if index else range(1, wim.image_count + 1)
    return {
        "path": wim.path,
        "header": {
            "version": h.wim_version, "flags": h.flags, "flag_names": h.flag_names,
            "compression": wim.compression_name, "chunk_size": h.chunk_size,
            "part_number": h.part_number, "total_parts": h.total_parts,
            "image_count": h.image_count, "boot_index": h.boot_idx, "guid": h.guid.hex(),
            "has_integrity_table": h.integrity_table_reshdr.size_in_wim > 0,
            "size": wim.reader.file_size,
        },
        "images": [image_dict(wim.info(i)) for i in indexes],
    }


def _windows_lines(win: dict, prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for k, v in win.items():
        if isinstance(v, dict):
            out += _windows_lines(v, f"{prefix}{k}/")
        elif isinstance(v, list):
            out.append((prefix + k, ", ".join(x if isinstance(x, str) else json.dumps(x)
                                              for x in v)))
        else:
            out.append((prefix + k, v))
    return out


def raw_header(wim: Wim) -> dict:
    """The on-disk header fields as stored (`info --header`)."""
    c = S.HeaderDisk.parse(os.pread(wim.fd, S.WIM_HEADER_DISK_SIZE, 0))
    out = {"magic": bytes(c.magic).decode("latin-1").replace("\0", "\\0"),
           "header_size": c.hdr_size, "version": c.wim_version, "flags": c.flags,
           "chunk_size": c.chunk_size, "guid": bytes(c.guid).hex(),
           "part_number": c.part_number, "total_parts": c.total_parts,
           "image_count": c.image_count}
    for key, field in (("blob_table", "blob_table"), ("xml_data", "xml_data"),
                       ("boot_metadata", "boot_metadata"), ("integrity", "integrity_table")):
        r = c[field + "_reshdr"]
        out[key] = {"size": int.from_bytes(r.size_in_wim, "little"), "flags": r.flags,
                    "offset": r.offset_in_wim, "original_size": r.uncompressed_size}
        if key == "boot_metadata":
            out["boot_index"] = c.boot_idx
    return out


def _print_raw_header(raw: dict, w) -> None:
    for k, v in raw.items():
        label = k.replace("_", " ").title().replace("Guid", "GUID").replace("Xml", "XML")
        if isinstance(v, dict):
            for sub, x in v.items():
                name = f"{label} {sub.replace('_', ' ').title()}"
                w(f"{name:<28}= {hex(x) if sub == 'flags' else x}\n")
        else:
            w(f"{label:<28}= {hex(v) if k in ('version', 'flags') else v}\n")


def _edits(args) -> bool:
    return any(getattr(args, k, None) not in (None, []) for k in
               ("set_name", "set_description", "set_property", "boot"))


def _edit(args, spec) -> int:
    from wimfs.imaging import edit_info

    index = None
    if spec.selector is not None:
        with Wim(spec.path) as wim:
            index = spec.resolve_one(wim)
    edit_info(spec.path, index, name=args.set_name, description=args.set_description,
              properties=args.set_property, boot=args.boot,
              check=True if args.check else None)
    return 0


def run(args) -> int:
    spec = image_spec(args)
    if _edits(args):
        return _edit(args, spec)
    from wimfs.imaging import open_wim

    with open_wim(spec.path, args.ref) as wim:
        index = spec.resolve_one(wim) if spec.selector is not None else None
        d = wim_dict(wim, index)
        if args.header:
            d["raw_header"] = raw_header(wim)
    w = sys.stdout.write
    if args.json:
        json.dump(d, sys.stdout, indent=2, ensure_ascii=False)
        w("\n")
    elif args.header:
        _print_raw_header(d["raw_header"], w)
    else:
        _print_info(d, index is None, w)
    return 0


def _print_info(d: dict, whole: bool, w) -> None:
    h = d["header"]
    if whole:
        w("WIM Information:\n----------------\n")
        for k, v in (("Path", d["path"]), ("GUID", "0x" + h["guid"]),
                     ("Version", f"{h['version']} ({h['version']:#x})"),
                     ("Image Count", h["image_count"]), ("Compression", h["compression"].upper()),
                     ("Chunk Size", f"{h['chunk_size']} bytes"),
                     ("Part Number", f"{h['part_number']}/{h['total_parts']}"),
                     ("Boot Index", h["boot_index"]), ("Size", f"{h['size']} bytes"),
                     ("Flags", ", ".join(h["flag_names"]) or "none"),
                     ("Integrity table", "yes" if h["has_integrity_table"] else "no")):
            w(f"{k + ':':<18}{v}\n")
        w("\nAvailable Images:\n-----------------\n")
    for img in d["images"]:
        _print_image(img, w)


def _print_image(img: dict, w) -> None:
    rows = [("Index", img["index"]), ("Name", img["name"] or ""),
            ("Description", img["description"] or ""),
            ("Directory Count", img["dir_count"]), ("File Count", img["file_count"]),
            ("Total Bytes", img["total_bytes"]), ("Hard Link Bytes", img["hard_link_bytes"]),
            ("Creation Time", img["creation_time"] or ""),
            ("Last Modification Time", img["last_modification_time"] or ""),
            ("WIMBoot compatible", "yes" if img["wimboot"] else "no")]
    if img["flags"]:
        rows.append(("Flags", img["flags"]))
    if img["windows"]:
        rows += [("Windows " + k, v) for k, v in _windows_lines(img["windows"])]
    for k, v in rows:
        w(f"{k + ':':<24}{v}\n")
    w("\n")
