"""Thin wrappers over wimlib-imagex (the reference implementation / oracle)."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

from .env import run

WIMLIB = "wimlib-imagex"


def wimlib_capture(src, wim, compress: str = "lzx", solid: bool = False, unix_data: bool = False,
                   name: str | None = None, description: str | None = None, extra=(),
                   append: bool = False) -> Path:
    """``wimlib-imagex capture|append SRC WIM [NAME [DESC]] --compress=...``; returns the WIM path.

    ``src`` may be a directory or an NTFS volume image file (wimlib then captures through libntfs-3g).
    """
    cmd = [WIMLIB, "append" if append else "capture", str(src), str(wim)]
    if name is not None or description is not None:
        cmd.append(name if name is not None else Path(src).name)
    if description is not None:
        cmd.append(description)
    if not append:
        cmd.append(f"--compress={compress}")
    elif compress is not None:
        pass  # append inherits the WIM's compression type
    if solid:
        cmd.append("--solid")
        cmd.append(f"--solid-compress={compress if compress != 'none' else 'lzms'}")
    if unix_data:
        cmd.append("--unix-data")
    cmd += list(extra)
    run(cmd)
    return Path(wim)


def wimlib_append(src, wim, name: str, description: str | None = None, extra=()) -> Path:
    return wimlib_capture(src, wim, name=name, description=description, extra=extra, append=True)


def wimlib_apply(wim, index, dest, extra=(), check=True) -> subprocess.CompletedProcess:
    """``wimlib-imagex apply WIM INDEX DEST [extra...]`` (DEST: directory, or NTFS volume image file)."""
    return run([WIMLIB, "apply", str(wim), str(index), str(dest), *extra], check=check)


def wimlib_verify(wim, extra=()) -> subprocess.CompletedProcess:
    """Returns the CompletedProcess (check returncode yourself)."""
    return run([WIMLIB, "verify", str(wim), *extra], check=False)


_INFO_KEYS = {
    "Path": "path", "GUID": "guid", "Version": "version", "Image Count": "image_count",
    "Compression": "compression", "Chunk Size": "chunk_size", "Part Number": "part",
    "Boot Index": "boot_index", "Size": "size", "Attributes": "attributes",
}
_IMAGE_KEYS = {
    "Index": "index", "Name": "name", "Description": "description",
    "Display Name": "display_name", "Display Description": "display_description",
    "Directory Count": "dir_count", "File Count": "file_count", "Total Bytes": "total_bytes",
    "Hard Link Bytes": "hard_link_bytes", "Creation Time": "creation_time",
    "Last Modification Time": "last_modification_time", "Flags": "flags",
    "WIMBoot compatible": "wimboot",
}
_INT_FIELDS = {"version", "image_count", "boot_index", "index", "dir_count", "file_count",
               "total_bytes", "hard_link_bytes"}


def _parse_kv(line: str, sep: str):
    k, _, v = line.partition(sep)
    return k.strip(), v.strip()


def wimlib_info(wim) -> dict:
    """Parse ``wimlib-imagex info WIM`` + ``--header`` + the XML into one comparable dict::

        {"header": {"version", "flags", "compression" (none|xpress|lzx|lzms), "chunk_size",
                    "part_number", "total_parts", "image_count", "boot_index", "guid" (hex)},
         "attributes": str, "images": [{"index", "name", "description" (None if empty),
         "dir_count", "file_count", "total_bytes", "hard_link_bytes", "flags", "windows": bool,
         "creation_time", "last_modification_time" (wimlib's text)}], "xml": str}
    """
    txt = run([WIMLIB, "info", str(wim)]).stdout.decode(errors="replace")
    top: dict = {}
    images: list[dict] = []
    cur = None
    in_images = False
    windows_sections = False
    for line in txt.splitlines():
        if line.startswith("Available Images:"):
            in_images = True
            continue
        if not in_images:
            if ":" in line and not line.startswith("-"):
                k, v = _parse_kv(line, ":")
                if k in _INFO_KEYS:
                    top[_INFO_KEYS[k]] = v
            continue
        if line.startswith("Index:"):
            cur = {"windows": False}
            images.append(cur)
        if cur is None or ":" not in line:
            continue
        k, v = _parse_kv(line, ":")
        if k in _IMAGE_KEYS:
            key = _IMAGE_KEYS[k]
            cur[key] = int(v) if key in _INT_FIELDS else v
        elif k in ("Architecture", "Product Name", "Edition ID", "Installation Type", "Major Version",
                   "Product Type", "System Root"):
            cur["windows"] = True
            windows_sections = True
    for im in images:
        im["description"] = im.get("description") or None
        im.setdefault("flags", None)

    hdr_txt = run([WIMLIB, "info", "--header", str(wim)]).stdout.decode(errors="replace")
    raw = {}
    for line in hdr_txt.splitlines():
        if "=" in line:
            k, v = _parse_kv(line, "=")
            raw[k] = v
    comp = top.get("compression", "None").lower()
    header = {
        "version": int(raw["Version"], 0),
        "flags": int(raw["Flags"], 0),
        "compression": "none" if comp in ("none", "") else comp,
        "chunk_size": int(raw["Chunk Size"], 0),
        "part_number": int(raw["Part Number"], 0),
        "total_parts": int(raw["Total Parts"], 0),
        "image_count": int(raw["Image Count"], 0),
        "boot_index": int(raw["Boot Index"], 0),
        "guid": raw["GUID"].lower().removeprefix("0x"),
    }
    return {"header": header, "attributes": top.get("attributes"), "images": images,
            "xml": wimlib_xml(wim), "has_windows_info": windows_sections}


def wimlib_xml(wim) -> str:
    """The WIM's XML data (decoded from UTF-16LE) via ``--extract-xml``."""
    with tempfile.TemporaryDirectory() as td:
        out = os.path.join(td, "x.xml")
        run([WIMLIB, "info", str(wim), "--extract-xml", out])
        data = Path(out).read_bytes()
    text = data.decode("utf-16-le", errors="replace")
    return text.lstrip("\ufeff")


def xml_image_names(xml: str) -> list[str]:
    return re.findall(r"<IMAGE INDEX=\"\d+\">.*?<NAME>(.*?)</NAME>", xml, flags=re.S)


def wimlib_dir_detailed(wim, index=1) -> dict:
    """Parse ``wimlib-imagex dir WIM INDEX --detailed`` -> {relpath ("." = root): {
    "attributes": int, "short_name": str|None, "sd": hex|None, "creation_time", "last_write_time",
    "last_access_time" (wimlib's text), "link_count": int, "streams": {name ("" = unnamed): size}}}.

    An oracle for per-file WIM metadata that involves no filesystem translation.
    """
    txt = run([WIMLIB, "dir", str(wim), str(index), "--detailed"]).stdout.decode("utf-8", "replace")
    out: dict = {}
    cur = None
    stream = None
    for line in txt.splitlines():
        if line.startswith("Full Path"):
            path = line.split("=", 1)[1].strip()[1:-1]
            rel = path.strip("/") or "."
            cur = out[rel] = {"attributes": None, "short_name": None, "sd": None, "link_count": None,
                              "streams": {}}
            stream = None
            continue
        if cur is None:
            continue
        s = line.strip()
        if s.startswith("Unnamed data stream:"):
            stream = ""
            continue
        m = re.match(r'Named data stream "(.*)":$', s)
        if m:
            stream = m.group(1)
            continue
        if "=" not in s:
            continue
        k, v = (x.strip() for x in s.split("=", 1))
        if k == "Attributes":
            cur["attributes"] = int(v, 16)
        elif k == "Short Name":
            cur["short_name"] = v[1:-1] or None
        elif k == "Security Descriptor":
            cur["sd"] = v.lower() or None
        elif k in ("Creation Time", "Last Write Time", "Last Access Time"):
            cur[k.lower().replace(" ", "_")] = v
        elif k == "Link Count":
            cur["link_count"] = int(v)
        elif k == "Uncompressed size" and stream is not None:
            cur["streams"][stream] = int(v.split()[0])
    return out


def wimlib_blob_refs(wim) -> dict[str, int]:
    """{SHA-1: reference count} of the data blobs of a WIM, as wimlib-imagex reads it."""
    out = subprocess.run(["wimlib-imagex", "info", str(wim), "--blobs"], check=True,
                         capture_output=True, text=True).stdout
    refs = {}
    for block in out.split("\n\n"):
        fields = dict(line.split(" = ", 1) for line in block.splitlines() if " = " in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        if "Hash" in fields and "METADATA" not in fields.get("Flags", ""):
            refs[fields["Hash"]] = int(fields["Reference Count"])
    return refs


def wimlib_recounted_refs(wim, tmp_dir) -> tuple[dict[str, int], dict[str, int]]:
    """(the nonzero reference counts of `wim`'s data blobs, the counts wimlib-imagex
    optimize gives a copy of it: it rebuilds the WIM and counts every reference anew)."""
    import shutil
    rebuilt = Path(tmp_dir) / "rebuilt.wim"
    shutil.copyfile(wim, rebuilt)
    subprocess.run(["wimlib-imagex", "optimize", str(rebuilt)], check=True,
                   capture_output=True)
    return {h: n for h, n in wimlib_blob_refs(wim).items() if n}, wimlib_blob_refs(rebuilt)
