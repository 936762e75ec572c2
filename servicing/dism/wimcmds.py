"""DISM's WIM commands (Win7 `*-Wim` and 8+ `*-Image` names) on top of the native
`wimfs info|mount|unmount|commit|remount|cleanup|mounts|apply|capture|append|export|
delete|split` commands: option translation and DISM's records, nothing else."""

from __future__ import annotations

import os
from datetime import datetime

from servicing.dism.codes import (
    BUSY,
    WIM_ALREADY_MOUNTED,
    WIM_MOUNT_DIR_NOT_EMPTY,
    WIM_NOT_A_MOUNT_POINT,
    DismError,
)
from servicing.dism.commands import Call, Command, Kind, native, native_json, register
from servicing.dism.grammar import bad_argument
from servicing.dism.output import group_digits
from wimfs.errors import BusyError, MountError

F, V, U = Kind.FLAG, Kind.VALUE, Kind.UNSUPPORTED
SELECT = {"index": V, "name": V}
COMPRESS = {"max": "lzx", "fast": "xpress", "none": "none", "recovery": "recovery"}
ARCH = {"0": "x86", "5": "arm", "6": "ia64", "9": "x64", "12": "arm64"}
MOUNT_STATUS = {"ok": "Ok", "needs remount": "Needs Remount", "invalid": "Invalid"}
UNDEFINED = "<undefined>"


def _index(text: str, option: str = "/Index") -> str:
    if not text.isdigit() or int(text) < 1:
        raise bad_argument(f"The value {text} of {option} is not valid: an image index is "
                           "a number from 1.")
    return str(int(text))


def selector(call: Call, index: str = "index", name: str = "name", *,
             required: bool = True) -> list[str]:
    """/Index:N or /Name:NAME as the native --index/--name options."""
    i, n = call.get(index), call.get(name)
    if i is not None and n is not None:
        raise bad_argument(f"Use either /{index.title()} or /{name.title()}, not both.")
    if i is not None:
        return ["--index", _index(i, f"/{index.title()}")]
    if n is not None:
        return ["--name", n]
    if required:
        raise bad_argument(f"The /{index.title()} or /{name.title()} option is required "
                           f"for {call.line.command.spelled.rstrip(':=')}.")
    return []


def _check(call: Call) -> list[str]:
    return ["--check"] if call.flag("checkintegrity") else []


def _compression(call: Call, allowed: tuple[str, ...]) -> list[str]:
    c = call.get("compress")
    if c is None:
        return []
    if c.lower() not in allowed:
        raise bad_argument(f"The compression type {c} is not valid. Use "
                           f"{', '.join(allowed)}.")
    return ["--compress", COMPRESS[c.lower()]]


# -- information ---------------------------------------------------------------------


def _date(iso: str | None) -> str:
    if not iso:
        return UNDEFINED
    t = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")
    return f"{t.month}/{t.day}/{t.year} - {t.strftime('%I:%M:%S %p').lstrip('0')}"


def _win(win: dict, *path: str) -> str:
    v: object = win
    for p in path:
        v = v.get(p) if isinstance(v, dict) else None
    return v if isinstance(v, str) and v else UNDEFINED


def _languages(win: dict) -> list[str]:
    langs = win.get("LANGUAGES") if isinstance(win.get("LANGUAGES"), dict) else {}
    names = langs.get("LANGUAGE", [])
    names = [names] if isinstance(names, str) else names
    return [f"{n} (Default)" if n == langs.get("DEFAULT") else n for n in names] or [UNDEFINED]


def image_record(img: dict, header: dict, detailed: bool) -> list[tuple[str, object]]:
    """One image of `wimfs info --json` with DISM's labels (anchors.md 2.3)."""
    rec: list[tuple[str, object]] = [
        ("Index", img["index"]), ("Name", img["name"] or UNDEFINED),
        ("Description", img["description"] or UNDEFINED),
        ("Size", f"{group_digits(img['total_bytes'] or 0)} bytes")]
    if not detailed:
        return rec
    win = img["windows"] or {}
    version = UNDEFINED
    if isinstance(win.get("VERSION"), dict):
        v = win["VERSION"]
        version = ".".join(v.get(k, "0") for k in ("MAJOR", "MINOR", "BUILD"))
    rec += [("WIM Bootable", "Yes" if header["boot_index"] == img["index"] else "No"),
            ("Architecture", ARCH.get(win.get("ARCH", ""), UNDEFINED)),
            ("Hal", _win(win, "HAL")), ("Version", version),
            ("ServicePack Build", _win(win, "VERSION", "SPBUILD")),
            ("ServicePack Level", _win(win, "VERSION", "SPLEVEL")),
            ("Edition", _win(win, "EDITIONID")),
            ("Installation", _win(win, "INSTALLATIONTYPE")),
            ("ProductType", _win(win, "PRODUCTTYPE")),
            ("ProductSuite", _win(win, "PRODUCTSUITE")),
            ("System Root", _win(win, "SYSTEMROOT")),
            ("Directories", img["dir_count"]), ("Files", img["file_count"]),
            ("Created", _date(img["creation_time"])),
            ("Modified", _date(img["last_modification_time"])),
            ("Languages", _languages(win))]
    return rec


def get_wiminfo(call: Call):
    path = call.need("imagefile", "wimfile")
    sel = selector(call, required=False)
    doc = native_json(call, ["info", path] + sel)
    call.console.lines([f"Details for image : {path}", ""])
    call.console.records([image_record(img, doc["header"], bool(sel))
                          for img in doc["images"]], table_ok=not sel)
    return doc


def mount_record(row: dict) -> list[tuple[str, object]]:
    return [("Mount Dir", row["mountdir"]), ("Image File", row["wim"]),
            ("Image Index", UNDEFINED if row["index"] is None else row["index"]),
            ("Mounted Read/Write", "Yes" if row["read_write"] else "No"),
            ("Status", MOUNT_STATUS.get(row["status"], row["status"]))]


def get_mountedinfo(call: Call):
    rows = native_json(call, ["mounts"])
    call.console.lines(["Mounted images:", ""])
    if not rows:
        call.console.lines(["No mounted images found.", ""])
    call.console.records([mount_record(r) for r in rows])
    return rows


# -- mounts --------------------------------------------------------------------------


def mount(call: Call):
    path = call.need("imagefile", "wimfile")
    sel = selector(call)
    mountdir = call.need("mountdir")
    if os.path.isdir(mountdir) and not os.path.ismount(mountdir) and os.listdir(mountdir):
        raise DismError(f"The mount directory {mountdir} is not empty. Mount into an "
                        "empty directory.", WIM_MOUNT_DIR_NOT_EMPTY)
    argv = ["mount", path, mountdir] + sel + ([] if call.flag("readonly") else ["--rw"])
    try:
        native(call, argv)
    except BusyError as exc:
        raise DismError(f"The image is already mounted: {exc}", WIM_ALREADY_MOUNTED) from exc
    except DismError as exc:
        if exc.code == BUSY:
            raise DismError(exc.message, WIM_ALREADY_MOUNTED) from exc
        raise


def _mounted(call: Call, argv: list[str]) -> None:
    """Run a native command on a mount; a directory that is no wimfs mount is DISM's
    0xc142011c."""
    try:
        native(call, argv)
    except MountError as exc:
        from wimfs import mounts

        if mounts.read_record(os.path.abspath(argv[1])) is None:
            raise DismError(f"{exc}. The directory is not a mount point.",
                            WIM_NOT_A_MOUNT_POINT) from exc
        raise


def unmount(call: Call):
    mountdir = call.need("mountdir")
    if call.flag("commit") == call.flag("discard"):
        raise bad_argument("Specify exactly one of /Commit and /Discard.")
    _mounted(call, ["unmount", mountdir, "--commit" if call.flag("commit") else "--discard"]
             + _check(call))


def commit(call: Call):
    _mounted(call, ["commit", call.need("mountdir")] + _check(call))


def remount(call: Call):
    _mounted(call, ["remount", call.need("mountdir")])


def cleanup(call: Call):
    native(call, ["cleanup"])


# -- images --------------------------------------------------------------------------


def apply(call: Call):
    argv = ["apply", call.need("imagefile", "wimfile"), call.need("applydir")]
    argv += selector(call)
    if call.get("swmfile"):
        argv += ["--ref", call.get("swmfile")]
    native(call, argv)


def _capture_args(call: Call) -> list[str]:
    argv = [call.need("capturedir"), call.need("imagefile"), "--name", call.need("name")]
    if call.get("description") is not None:
        argv += ["--description", call.get("description")]
    if call.get("configfile"):
        argv += ["--config", call.get("configfile")]
    if call.flag("bootable"):
        argv.append("--boot")
    if call.flag("norpfix"):
        argv.append("--norpfix")
    return argv + _check(call)


def capture(call: Call):
    native(call, ["capture"] + _capture_args(call) +
           _compression(call, ("max", "fast", "none")))


def append(call: Call):
    native(call, ["append"] + _capture_args(call))


def export(call: Call):
    src, dst = call.need("sourceimagefile"), call.need("destinationimagefile")
    sel = selector(call, "sourceindex", "sourcename")
    if sel[0] == "--name":
        argv = ["export", f"{src}:{sel[1]}", dst]     # --name names the new image
    else:
        argv = ["export", src, dst] + sel
    if call.get("destinationname") is not None:
        argv += ["--name", call.get("destinationname")]
    if call.flag("bootable"):
        argv.append("--boot")
    native(call, argv + _compression(call, ("max", "fast", "none", "recovery")) + _check(call))


def delete(call: Call):
    native(call, ["delete", call.need("imagefile", "wimfile")] + selector(call) + _check(call))


def split(call: Call):
    size = call.need("filesize")
    if not size.isdigit() or int(size) < 1:
        raise bad_argument(f"The value {size} of /FileSize is not valid: a size in MB.")
    native(call, ["split", call.need("imagefile"), call.need("swmfile"), "--size", size]
           + _check(call))


IMAGE = {"imagefile": V, "wimfile": V}
CAPTURE = {"capturedir": V, "imagefile": V, "name": V, "description": V, "configfile": V,
           "bootable": F, "checkintegrity": F, "norpfix": F, "verify": U, "ea": U,
           "wimboot": U}

for names, handler, options, usage, summary in (
    (("Get-WimInfo", "Get-ImageInfo"), get_wiminfo, {**IMAGE, **SELECT},
     "/Get-ImageInfo /ImageFile:<path> [/Index:<n> | /Name:<name>]",
     "Displays information about the images in a WIM file."),
    (("Get-MountedWimInfo", "Get-MountedImageInfo"), get_mountedinfo, {},
     "/Get-MountedImageInfo", "Displays the mounted images."),
    (("Mount-Wim", "Mount-Image"), mount,
     {**IMAGE, **SELECT, "mountdir": V, "readonly": F, "optimize": F, "checkintegrity": F},
     "/Mount-Image /ImageFile:<path> {/Index:<n> | /Name:<name>} /MountDir:<dir> "
     "[/ReadOnly]", "Mounts an image from a WIM file (read-write unless /ReadOnly)."),
    (("Unmount-Wim", "Unmount-Image"), unmount,
     {"mountdir": V, "commit": F, "discard": F, "checkintegrity": F, "append": U},
     "/Unmount-Image /MountDir:<dir> {/Commit | /Discard} [/CheckIntegrity]",
     "Unmounts an image, saving (/Commit) or dropping (/Discard) the changes."),
    (("Commit-Wim", "Commit-Image"), commit,
     {"mountdir": V, "checkintegrity": F, "append": U},
     "/Commit-Image /MountDir:<dir> [/CheckIntegrity]",
     "Saves the changes of a mounted image; it stays mounted."),
    (("Remount-Wim", "Remount-Image"), remount, {"mountdir": V},
     "/Remount-Image /MountDir:<dir>", "Brings back an orphaned read-write mount."),
    (("Cleanup-Wim", "Cleanup-Mountpoints"), cleanup, {},
     "/Cleanup-Mountpoints", "Removes the resources of abandoned mounts."),
    (("Apply-Image",), apply,
     {**IMAGE, **SELECT, "applydir": V, "swmfile": V, "checkintegrity": F, "verify": U,
      "norpfix": U, "compact": U, "ea": U, "wimboot": U, "confirmtrustedfile": U},
     "/Apply-Image /ImageFile:<path> [/SWMFile:<pattern>] /ApplyDir:<dir> "
     "{/Index:<n> | /Name:<name>}", "Applies an image to a directory."),
    (("Capture-Image",), capture, {**CAPTURE, "compress": V},
     "/Capture-Image /ImageFile:<wim> /CaptureDir:<dir> /Name:<name> [/Description:<text>] "
     "[/ConfigFile:<file>] [/Compress:{max|fast|none}] [/Bootable] [/CheckIntegrity] "
     "[/NoRpFix]", "Captures a directory into a new WIM file."),
    (("Append-Image",), append, CAPTURE,
     "/Append-Image /ImageFile:<wim> /CaptureDir:<dir> /Name:<name> [/Description:<text>] "
     "[/ConfigFile:<file>] [/Bootable] [/CheckIntegrity] [/NoRpFix]",
     "Captures a directory as a new image of an existing WIM file."),
    (("Export-Image",), export,
     {"sourceimagefile": V, "sourceindex": V, "sourcename": V, "destinationimagefile": V,
      "destinationname": V, "compress": V, "bootable": F, "checkintegrity": F,
      "wimboot": U},
     "/Export-Image /SourceImageFile:<wim> {/SourceIndex:<n> | /SourceName:<name>} "
     "/DestinationImageFile:<wim> [/DestinationName:<name>] "
     "[/Compress:{fast|max|none|recovery}] [/Bootable] [/CheckIntegrity]",
     "Copies an image into another (new or existing) WIM file."),
    (("Delete-Image",), delete, {**IMAGE, **SELECT, "checkintegrity": F},
     "/Delete-Image /ImageFile:<wim> {/Index:<n> | /Name:<name>} [/CheckIntegrity]",
     "Deletes an image from a WIM file."),
    (("Split-Image",), split,
     {"imagefile": V, "swmfile": V, "filesize": V, "checkintegrity": F},
     "/Split-Image /ImageFile:<wim> /SWMFile:<part.swm> /FileSize:<MB> [/CheckIntegrity]",
     "Splits a WIM file into parts (.swm)."),
):
    register(Command(names, handler, options, usage, summary))
