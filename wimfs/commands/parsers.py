"""The argument parsers of every wimfs command, with help and examples.

Option values are checked by their argparse types (wimfs.cli), so a bad value is a
usage error (exit 2) before anything runs. Images are chosen by the one selector
(wimfs.imagespec): ``IMAGE:N``, ``IMAGE:NAME``, ``IMAGE:all``, ``--index``, ``--name``.
"""

from __future__ import annotations

import argparse

from wimfs.cli import (
    boot_index,
    chunk_size_value,
    command,
    compression_value,
    count,
    index_value,
    megabytes,
    property_value,
    single_index_value,
)

COMP = "none, xpress, lzx (default), lzms"
IMAGE_HELP = "the WIM; after ':' the image: an index from 1, a name (spaces and colons " \
             "allowed)"
REF_HELP = "other parts of a split WIM (repeatable, globs allowed)"


def _quiet(c) -> None:
    c.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")


def _threads(c, what: str = "compression") -> None:
    c.add_argument("--threads", type=count, default=None, metavar="N",
                   help=f"{what} threads (default: one per core)")


def _ref(c) -> None:
    c.add_argument("--ref", action="append", default=[], metavar="PART", help=REF_HELP)


def image_options(c: argparse.ArgumentParser, *, allow_all: bool, name: bool = True) -> None:
    """The image selector options every image command takes (see wimfs.imagespec)."""
    c.add_argument("--index", type=index_value if allow_all else single_index_value,
                   metavar="N" + ("|all" if allow_all else ""),
                   help="image index" + (" ('all': every image)" if allow_all else ""))
    if name:
        c.add_argument("--name", help="image name")


def _image_arg(c, dest: str, *, allow_all: bool, name: bool = True) -> None:
    """IMAGE[:N|:NAME|:all] and --index/--name (export's --name names the new image)."""
    head = "SRC" if dest == "source" else "IMAGE"
    c.add_argument(dest, metavar=f"{head}[:N|:NAME{'|:all' if allow_all else ''}]",
                   help=IMAGE_HELP + (", or all" if allow_all else ""))
    image_options(c, allow_all=allow_all, name=name)


def add_all(sub, new) -> None:
    _info(sub, new)
    _ls(sub, new)
    _mount(sub, new)
    _mount_management(sub, new)
    _capture(sub, new)
    _apply_export(sub, new)
    _maintenance(sub, new)


def _info(sub, new) -> None:
    c = new(sub, "info", "show images, names, sizes, compression and XML fields",
            "  wimfs info install.wim\n  wimfs info install.wim:2 --json\n"
            "  wimfs info install.wim --header\n"
            "  wimfs info install.wim --index 1 --set-name 'Windows 11 Pro'\n"
            "  wimfs info install.wim:1 --set-property WINDOWS/EDITIONID=Pro\n"
            "  wimfs info install.wim --boot 1")
    _image_arg(c, "image", allow_all=False)
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.add_argument("--header", action="store_true", help="print the raw WIM header fields")
    c.add_argument("--set-name", metavar="NAME", help="change the image's NAME")
    c.add_argument("--set-description", metavar="TEXT", help="change the image's DESCRIPTION")
    c.add_argument("--set-property", metavar="KEY=VALUE", action="append", default=[],
                   type=property_value,
                   help="set an XML field, e.g. WINDOWS/EDITIONID=Pro (repeatable; empty "
                        "VALUE removes it)")
    c.add_argument("--boot", type=boot_index, metavar="N", help="make image N bootable (0: none)")
    c.add_argument("--check", action="store_true", help="write an integrity table when editing")
    _ref(c)
    c.set_defaults(func=command("wimfs.commands.info:run"))


def _ls(sub, new) -> None:
    c = new(sub, "ls", "list a directory of an image without mounting",
            "  wimfs ls install.wim:1 /Windows\n  wimfs ls install.wim --name 'Windows 11 Pro' "
            "-l /\n  wimfs ls boot.wim --index 2 /sources")
    _image_arg(c, "image", allow_all=False)
    c.add_argument("path", nargs="?", default="/", help="directory or file in the image "
                                                        "(default: /)")
    c.add_argument("--long", "-l", action="store_true",
                   help="mode, attributes, links, size, time, link target, named streams")
    _ref(c)
    c.set_defaults(func=command("wimfs.commands.ls:run"))


def _mount(sub, new) -> None:
    c = new(sub, "mount", "mount an image (read-only, or read-write with --rw)",
            "  wimfs mount install.wim:1 /mnt\n  wimfs mount install.wim --index all /mnt\n"
            "  wimfs mount --rw install.wim:'Windows 11 Pro' /mnt\n"
            "  wimfs unmount /mnt --commit")
    _image_arg(c, "image", allow_all=True)
    c.add_argument("mountdir", metavar="MOUNTDIR")
    c.add_argument("--foreground", "-f", action="store_true", help="do not daemonize")
    c.add_argument("--allow-other", action="store_true", help="let other users see the mount")
    c.add_argument("--cache-size", type=megabytes, default=None, metavar="MB",
                   help="decompressed chunk cache (default: 16 MiB, or two solid chunks "
                        "for ESD/solid WIMs)")
    _threads(c, "decompression")
    c.add_argument("-o", dest="options", action="append", default=[], metavar="OPTION",
                   help="mount options: case_insensitive")
    c.add_argument("--ref", action="append", default=[], metavar="PART",
                   help=REF_HELP + "; read-only mounts only")
    c.add_argument("--rw", action="store_true",
                   help="read-write: changes stay in an overlay until commit or discard")
    c.add_argument("--staging", metavar="DIR",
                   help="overlay directory (default: a private one under the state dir)")
    c.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    c.set_defaults(func=command("wimfs.commands.mount:run"))


def _commit_options(c) -> None:
    c.add_argument("--append", action="store_true",
                   help="commit the changes as a new image (needs --name)")
    c.add_argument("--name", help="name of the new image (--append)")
    c.add_argument("--description", help="description of the new image (--append)")
    c.add_argument("--check", action="store_true", help="write an integrity table")
    _quiet(c)


def _mount_management(sub, new) -> None:
    c = new(sub, "unmount", "unmount a wimfs mount",
            "  wimfs unmount /mnt\n  wimfs unmount /mnt --commit\n  wimfs unmount /mnt "
            "--discard\n  wimfs unmount /mnt --commit --append --name 'with updates'",
            aliases=["umount"])
    c.add_argument("mountdir", metavar="MOUNTDIR")
    act = c.add_mutually_exclusive_group()
    act.add_argument("--commit", action="store_true", help="save the changes, then unmount")
    act.add_argument("--discard", action="store_true", help="drop the changes and unmount")
    c.add_argument("--force", action="store_true",
                   help="commit even with files open for writing; unmount lazily")
    c.add_argument("--lazy", action="store_true", help="detach even if the mount is busy")
    _commit_options(c)
    c.set_defaults(func=command("wimfs.commands.mount:run_unmount"))

    c = new(sub, "commit", "save the changes of a read-write mount and stay mounted",
            "  wimfs commit /mnt\n  wimfs commit /mnt --append --name 'with updates'")
    c.add_argument("mountdir", metavar="MOUNTDIR")
    c.add_argument("--force", action="store_true", help="commit even with files open for "
                                                        "writing")
    _commit_options(c)
    c.set_defaults(func=command("wimfs.commands.mount:run_commit"))

    c = new(sub, "status", "show what the overlay of a mount holds",
            "  wimfs status /mnt\n  wimfs status /mnt --diff\n  wimfs status /mnt --json")
    c.add_argument("mountdir", metavar="MOUNTDIR")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.add_argument("--diff", action="store_true", help="show sizes of changed files")
    c.set_defaults(func=command("wimfs.commands.mount:run_status"))

    c = new(sub, "mounts", "list wimfs mounts (DISM /Get-MountedImageInfo)",
            "  wimfs mounts\n  wimfs mounts --json")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=command("wimfs.commands.mount:run_mounts"))

    c = new(sub, "remount", "bring back a read-write mount after a crash",
            "  wimfs remount /mnt")
    c.add_argument("mountdir", metavar="MOUNTDIR")
    c.add_argument("--cache-size", type=megabytes, default=None, metavar="MB",
                   help="decompressed chunk cache")
    c.set_defaults(func=command("wimfs.commands.mount:run_remount"))

    c = new(sub, "cleanup", "remove stale mount records and dead mounts",
            "  wimfs cleanup\n  wimfs cleanup --purge")
    c.add_argument("--purge", action="store_true", help="also delete orphaned overlays")
    c.set_defaults(func=command("wimfs.commands.mount:run_cleanup"))


def _capture(sub, new) -> None:
    for name, help_, examples in (
            ("capture", "capture a directory into a new WIM",
             "  wimfs capture ./tree out.wim --name base\n"
             "  wimfs capture /mnt/ntfs install.esd --solid --check"),
            ("append", "capture a directory as a new image of an existing WIM",
             "  wimfs append ./tree install.wim --name 'with updates'")):
        c = new(sub, name, help_, examples)
        c.add_argument("source", metavar="DIR")
        c.add_argument("wim", metavar="IMAGE.wim")
        c.add_argument("--name", help="image name (default: the directory's name)")
        c.add_argument("--description", help="image description")
        c.add_argument("--flags", help="the image's FLAGS XML field (e.g. Professional)")
        if name == "capture":
            c.add_argument("--compress", default="lzx", type=compression_value,
                           metavar="TYPE", help=COMP)
            c.add_argument("--solid", action="store_true",
                           help="pack all data into solid LZMS resources (ESD style)")
            c.add_argument("--chunk-size", type=chunk_size_value, metavar="N",
                           help="compression chunk size (a power of 2 from 32768)")
        c.add_argument("--boot", action="store_true", help="mark the new image bootable")
        c.add_argument("--check", action="store_true", help="write an integrity table")
        c.add_argument("--config", metavar="EXCLUSIONS",
                       help="wimlib-style capture configuration ([ExclusionList] ...)")
        c.add_argument("--unix-data", action="store_true",
                       help="store UNIX owner, group, mode and device numbers")
        c.add_argument("--norpfix", action="store_true",
                       help="store absolute symlink targets as they are")
        c.add_argument("--skip-errors", action="store_true",
                       help="skip unreadable files (each one is reported)")
        _threads(c)
        _quiet(c)
        c.set_defaults(func=command("wimfs.commands.capture:run" if name == "capture"
                                    else "wimfs.commands.capture:run_append"))


def _apply_export(sub, new) -> None:
    c = new(sub, "apply", "extract an image (or all images) to a directory",
            "  wimfs apply install.wim:1 ./out\n  wimfs apply install.wim:all ./out\n"
            "  wimfs apply install.swm --ref 'install*.swm' --name 'Windows 11 Pro' ./out")
    _image_arg(c, "image", allow_all=True)
    c.add_argument("dir", metavar="DIR")
    c.add_argument("--unix-data", action="store_true",
                   help="restore UNIX owner, group, mode and special files")
    _ref(c)
    _quiet(c)
    c.set_defaults(func=command("wimfs.commands.apply:run"))

    c = new(sub, "export", "copy images into another (new or existing) WIM",
            "  wimfs export install.wim:2 pro.wim\n  wimfs export install.wim:all install.esd "
            "--compress recovery\n  wimfs export install.wim --index 1 base.wim --name Base")
    _image_arg(c, "source", allow_all=True, name=False)
    c.add_argument("dest", metavar="DST")
    c.add_argument("--compress", type=compression_value, metavar="TYPE",
                   help=COMP + ", recovery (new DST only)")
    c.add_argument("--solid", action="store_true", help="solid LZMS (ESD) output")
    c.add_argument("--chunk-size", type=chunk_size_value, metavar="N",
                   help="compression chunk size (a power of 2 from 32768)")
    c.add_argument("--recompress", action="store_true",
                   help="recompress resources even where their compression already fits")
    c.add_argument("--name", help="name of the exported image (in DST)")
    c.add_argument("--description", help="description of the exported image")
    c.add_argument("--boot", action="store_true", help="mark the exported image bootable")
    c.add_argument("--check", action="store_true", help="write an integrity table")
    _ref(c)
    _threads(c)
    _quiet(c)
    c.set_defaults(func=command("wimfs.commands.export:run"))


def _maintenance(sub, new) -> None:
    c = new(sub, "delete", "delete images from a WIM in place",
            "  wimfs delete install.wim:3\n  wimfs delete install.wim 'Windows 11 Home'\n"
            "  wimfs delete install.wim --index 2 --rebuild")
    _image_arg(c, "wim", allow_all=True)
    c.add_argument("selector", nargs="?", metavar="N|NAME|all",
                   help="the image to delete (or use IMAGE:N, --index, --name)")
    c.add_argument("--rebuild", action="store_true", help="rewrite the WIM to reclaim space")
    c.add_argument("--check", action="store_true", help="write an integrity table")
    _quiet(c)
    c.set_defaults(func=command("wimfs.commands.delete:run"))

    c = new(sub, "optimize", "rewrite a WIM without unused space",
            "  wimfs optimize install.wim\n  wimfs optimize install.wim --recompress "
            "--compress lzms --solid")
    c.add_argument("wim", metavar="IMAGE.wim")
    c.add_argument("--recompress", action="store_true",
                   help="compress every resource again (default: copy them as stored)")
    c.add_argument("--compress", type=compression_value, metavar="TYPE", help=COMP)
    c.add_argument("--solid", action="store_true", help="solid LZMS (ESD) output")
    c.add_argument("--chunk-size", type=chunk_size_value, metavar="N",
                   help="compression chunk size (a power of 2 from 32768)")
    c.add_argument("--check", action="store_true", help="write an integrity table")
    _threads(c)
    _quiet(c)
    c.set_defaults(func=command("wimfs.commands.optimize:run"))

    c = new(sub, "verify", "check headers, metadata, every blob and the integrity table",
            "  wimfs verify install.wim\n  wimfs verify install.wim:2\n"
            "  wimfs verify install.swm --ref 'install*.swm'")
    _image_arg(c, "wim", allow_all=True)
    _ref(c)
    _quiet(c)
    c.set_defaults(func=command("wimfs.commands.verify:run"))

    c = new(sub, "split", "split a WIM into parts (.swm)",
            "  wimfs split install.wim install.swm --size 4000")
    c.add_argument("wim", metavar="IMAGE.wim")
    c.add_argument("part", metavar="PART.swm")
    c.add_argument("--size", type=megabytes, required=True, metavar="MB",
                   help="maximum part size")
    c.add_argument("--check", action="store_true", help="write integrity tables")
    _quiet(c)
    c.set_defaults(func=command("wimfs.commands.split:run"))

    c = new(sub, "join", "join the parts of a split WIM into one WIM",
            "  wimfs join install.wim install.swm install2.swm\n"
            "  wimfs join install.wim 'install*.swm'")
    c.add_argument("out", metavar="OUT.wim")
    c.add_argument("parts", nargs="+", metavar="PART.swm")
    c.add_argument("--check", action="store_true", help="write an integrity table")
    _quiet(c)
    c.set_defaults(func=command("wimfs.commands.join:run"))
