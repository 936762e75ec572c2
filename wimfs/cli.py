"""Command-line interface: the composition root of wimfs.

`main(argv=None)` parses arguments, wires the engine, the FUSE adapter and the
servicing layer together, and turns every `WimfsError` into one line on stderr
plus a documented exit code (see `wimfs.errors`). Heavy modules (pyfuse3,
trio, servicing) are imported lazily, so `--help` works without them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from wimfs import errors
from wimfs.errors import EXIT_ERROR, EXIT_OK, EXIT_USAGE, WimfsError

log = logging.getLogger("wimfs")

# Commands whose arguments are parsed by another module: name -> "module:function".
# The function takes the remaining argv and returns an exit code.
DELEGATED: dict[str, str] = {
    "reg": "servicing.cli:reg_main",
}


def _parse_image_spec(spec: str) -> tuple[str, str | None]:
    """Split ``IMAGE[:N]`` into path and selector; a trailing ``:N`` only if N is a number or 'all'."""
    path, sep, sel = spec.rpartition(":")
    if sep and path and (sel.isdigit() or sel == "all") and not os.path.exists(spec):
        return path, sel
    return spec, None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wimfs", description="Mount, edit and service Windows images.")
    p.add_argument("--debug", action="store_true", help="log debug output and show tracebacks")
    p.add_argument("--version", action="version", version="wimfs 0.1.0")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("info", help="show images, names, sizes, compression and XML fields")
    c.add_argument("image")
    c.add_argument("--index", type=int)
    c.add_argument("--json", action="store_true")
    c.add_argument("--header", action="store_true", help="also print the raw header fields")
    c.add_argument("--set-name", metavar="NAME", help="change the image's NAME (with --index)")
    c.add_argument("--set-description", metavar="TEXT")
    c.add_argument("--set-property", metavar="KEY=VALUE", action="append", default=[],
                   help="set an XML field, e.g. WINDOWS/EDITIONID=Pro (repeatable; empty "
                        "VALUE removes it)")
    c.add_argument("--boot", type=int, metavar="N", help="make image N bootable (0: none)")
    c.add_argument("--check", action="store_true", help="write an integrity table when editing")
    c.add_argument("--ref", action="append", default=[], metavar="PART",
                   help="other parts of a split WIM (repeatable, globs allowed)")
    c.set_defaults(func=_cmd("wimfs.commands.info:run"))

    c = sub.add_parser("ls", help="list files in an image")
    c.add_argument("image", metavar="IMAGE[:N]")
    c.add_argument("path", nargs="?", default="/")
    c.add_argument("--long", "-l", action="store_true")
    c.add_argument("--ref", action="append", default=[], metavar="PART",
                   help="other parts of a split WIM (repeatable, globs allowed)")
    c.set_defaults(func=_cmd("wimfs.commands.ls:run"))

    c = sub.add_parser("mount", help="mount an image (read-only, or read-write with --rw)")
    c.add_argument("image")
    c.add_argument("mountdir")
    sel = c.add_mutually_exclusive_group()
    sel.add_argument("--index", help="image index, or 'all' for every image as a top-level folder")
    sel.add_argument("--name", help="image name")
    c.add_argument("--foreground", "-f", action="store_true", help="do not daemonize")
    c.add_argument("--allow-other", action="store_true")
    c.add_argument("--cache-size", type=int, default=None, metavar="MB",
                   help="decompressed chunk cache (default: 16 MiB, or two solid chunks "
                        "for ESD/solid WIMs)")
    c.add_argument("--threads", type=int, default=0, help="decompression threads (default: cores)")
    c.add_argument("-o", dest="options", action="append", default=[],
                   help="mount options: case_insensitive")
    c.add_argument("--ref", action="append", default=[], metavar="PART",
                   help="other parts of a split WIM (read-only mounts; globs allowed)")
    c.add_argument("--rw", action="store_true",
                   help="read-write: changes stay in an overlay until commit or discard")
    c.add_argument("--staging", metavar="DIR",
                   help="overlay directory (default: a private one under the state dir)")
    c.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    c.set_defaults(func=_cmd("wimfs.commands.mount:run"))

    c = sub.add_parser("unmount", aliases=["umount"], help="unmount a wimfs mount")
    c.add_argument("mountdir")
    act = c.add_mutually_exclusive_group()
    act.add_argument("--commit", action="store_true", help="save the changes, then unmount")
    act.add_argument("--discard", action="store_true", help="drop the changes and unmount")
    c.add_argument("--force", action="store_true",
                   help="commit even with files open for writing; unmount lazily")
    c.add_argument("--lazy", action="store_true", help="detach even if the mount is busy")
    _commit_options(c)
    c.set_defaults(func=_cmd("wimfs.commands.mount:run_unmount"))

    c = sub.add_parser("commit", help="save the changes of a read-write mount, stay mounted")
    c.add_argument("mountdir")
    c.add_argument("--force", action="store_true",
                   help="commit even with files open for writing")
    _commit_options(c)
    c.set_defaults(func=_cmd("wimfs.commands.mount:run_commit"))

    c = sub.add_parser("status", help="what the overlay of a mount holds")
    c.add_argument("mountdir")
    c.add_argument("--json", action="store_true")
    c.add_argument("--diff", action="store_true", help="show sizes of changed files")
    c.set_defaults(func=_cmd("wimfs.commands.mount:run_status"))

    c = sub.add_parser("mounts", help="list wimfs mounts (DISM /Get-MountedImageInfo)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_cmd("wimfs.commands.mount:run_mounts"))

    c = sub.add_parser("remount", help="bring back a read-write mount after a crash")
    c.add_argument("mountdir")
    c.add_argument("--cache-size", type=int, default=None, metavar="MB")
    c.set_defaults(func=_cmd("wimfs.commands.mount:run_remount"))

    c = sub.add_parser("cleanup", help="remove stale mount records and dead mounts")
    c.add_argument("--purge", action="store_true", help="also delete orphaned overlays")
    c.set_defaults(func=_cmd("wimfs.commands.mount:run_cleanup"))

    _image_commands(sub)

    # Servicing commands (parsers beside their handlers).
    from wimfs.commands import servicing as servicing_commands, update as update_command
    servicing_commands.add_parsers(sub)
    update_command.add_parser(sub)

    for name in DELEGATED:
        c = sub.add_parser(name, help=f"{name} commands (see 'wimfs {name} --help')", add_help=False)
        c.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def _image_commands(sub) -> None:
    """capture, append, apply, export, delete, optimize, verify, split, join."""

    def common(c, threads: bool = True) -> None:
        c.add_argument("--quiet", "-q", action="store_true", help="no progress output")
        if threads:
            c.add_argument("--threads", type=int, default=0,
                           help="compression threads (default: cores)")

    comp = "none|xpress|lzx|lzms"
    for name, help_ in (("capture", "capture a directory into a new WIM"),
                        ("append", "capture a directory as a new image of an existing WIM")):
        c = sub.add_parser(name, help=help_)
        c.add_argument("source", metavar="DIR")
        c.add_argument("wim", metavar="IMAGE.wim")
        c.add_argument("--name", help="image name (default: the directory's name)")
        c.add_argument("--description")
        c.add_argument("--flags", help="the image's FLAGS XML field (e.g. Professional)")
        if name == "capture":
            c.add_argument("--compress", default="lzx", metavar="TYPE", help=comp)
            c.add_argument("--solid", action="store_true",
                           help="pack all data into solid LZMS resources (ESD style)")
            c.add_argument("--chunk-size", type=int, metavar="N")
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
        common(c)
        c.set_defaults(func=_cmd("wimfs.commands.capture:run" if name == "capture"
                                 else "wimfs.commands.capture:run_append"))

    c = sub.add_parser("apply", help="extract an image to a directory")
    c.add_argument("image", metavar="IMAGE[:N]")
    c.add_argument("dir", metavar="DIR")
    c.add_argument("--index", help="image index (or 'all')")
    c.add_argument("--name", help="image name")
    c.add_argument("--unix-data", action="store_true",
                   help="restore UNIX owner, group, mode and special files")
    c.add_argument("--ref", action="append", default=[], metavar="PART",
                   help="other parts of a split WIM (repeatable, globs allowed)")
    common(c, threads=False)
    c.set_defaults(func=_cmd("wimfs.commands.apply:run"))

    c = sub.add_parser("export", help="copy images into another (new or existing) WIM")
    c.add_argument("source", metavar="SRC[:N|:all]")
    c.add_argument("dest", metavar="DST")
    c.add_argument("--index", help="image index, name or 'all'")
    c.add_argument("--compress", metavar="TYPE", help=comp + "|recovery (new DST only)")
    c.add_argument("--solid", action="store_true", help="solid LZMS (ESD) output")
    c.add_argument("--chunk-size", type=int, metavar="N")
    c.add_argument("--recompress", action="store_true",
                   help="recompress resources even where their compression already fits")
    c.add_argument("--name", help="name of the exported image")
    c.add_argument("--description")
    c.add_argument("--boot", action="store_true")
    c.add_argument("--check", action="store_true")
    c.add_argument("--ref", action="append", default=[], metavar="PART")
    common(c)
    c.set_defaults(func=_cmd("wimfs.commands.export:run"))

    c = sub.add_parser("delete", help="delete an image from a WIM")
    c.add_argument("wim", metavar="IMAGE.wim")
    c.add_argument("image", metavar="N", help="index, name or 'all'")
    c.add_argument("--rebuild", action="store_true", help="rewrite the WIM to reclaim space")
    c.add_argument("--check", action="store_true")
    common(c, threads=False)
    c.set_defaults(func=_cmd("wimfs.commands.delete:run"))

    c = sub.add_parser("optimize", help="rewrite a WIM without unused space")
    c.add_argument("wim", metavar="IMAGE.wim")
    c.add_argument("--recompress", action="store_true",
                   help="compress every resource again (default: copy them as stored)")
    c.add_argument("--compress", metavar="TYPE", help=comp)
    c.add_argument("--solid", action="store_true")
    c.add_argument("--chunk-size", type=int, metavar="N")
    c.add_argument("--check", action="store_true")
    common(c)
    c.set_defaults(func=_cmd("wimfs.commands.optimize:run"))

    c = sub.add_parser("verify", help="check headers, metadata, every blob and the integrity table")
    c.add_argument("wim", metavar="IMAGE.wim")
    c.add_argument("--ref", action="append", default=[], metavar="PART")
    common(c, threads=False)
    c.set_defaults(func=_cmd("wimfs.commands.verify:run"))

    c = sub.add_parser("split", help="split a WIM into parts (.swm)")
    c.add_argument("wim", metavar="IMAGE.wim")
    c.add_argument("part", metavar="PART.swm")
    c.add_argument("--size", type=int, required=True, metavar="MB", help="maximum part size")
    c.add_argument("--check", action="store_true")
    common(c, threads=False)
    c.set_defaults(func=_cmd("wimfs.commands.split:run"))

    c = sub.add_parser("join", help="join the parts of a split WIM into one WIM")
    c.add_argument("out", metavar="OUT.wim")
    c.add_argument("parts", nargs="+", metavar="PART.swm")
    c.add_argument("--check", action="store_true")
    common(c, threads=False)
    c.set_defaults(func=_cmd("wimfs.commands.join:run"))


def _commit_options(c: argparse.ArgumentParser) -> None:
    c.add_argument("--append", action="store_true",
                   help="commit the changes as a new image (needs --name)")
    c.add_argument("--name", help="name of the new image (--append)")
    c.add_argument("--description", help="description of the new image (--append)")
    c.add_argument("--check", action="store_true", help="write an integrity table")
    c.add_argument("--quiet", "-q", action="store_true", help="no progress output")


def _cmd(target: str) -> Callable[[argparse.Namespace], int]:
    """Resolve ``module:function`` at call time (lazy imports keep --help fast)."""

    def run(args: argparse.Namespace) -> int:
        mod_name, func_name = target.split(":")
        module = __import__(mod_name, fromlist=[func_name])
        return getattr(module, func_name)(args)

    return run


def setup_logging(debug: bool) -> None:
    level = logging.DEBUG if debug or os.environ.get("WIMFS_DEBUG") else logging.WARNING
    logging.basicConfig(level=level, format="wimfs: %(levelname)s: %(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Delegated commands parse their own arguments (reg.exe syntax uses /v, /t ...).
    debug = "--debug" in argv[:1]
    rest = argv[1:] if debug else argv
    if rest and rest[0] in DELEGATED:
        setup_logging(debug)
        mod_name, func_name = DELEGATED[rest[0]].split(":")
        return _run_guarded(lambda: getattr(__import__(mod_name, fromlist=[func_name]),
                                            func_name)(rest[1:]), debug)

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    setup_logging(args.debug)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return _run_guarded(lambda: args.func(args), args.debug)


def _run_guarded(fn: Callable[[], int | None], debug: bool) -> int:
    try:
        rc = fn()
        return EXIT_OK if rc is None else int(rc)
    except WimfsError as exc:
        if debug:
            log.exception("error")
        print(f"wimfs: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("wimfs: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # e.g. `wimfs ls x.wim | head`: not an error worth a message.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        except OSError:
            pass
        return EXIT_OK
    except OSError as exc:
        if debug:
            log.exception("error")
        name = f": {exc.filename}" if exc.filename else ""
        print(f"wimfs: error: {exc.strerror or exc}{name}", file=sys.stderr)
        return errors.EXIT_NOT_FOUND if isinstance(exc, FileNotFoundError) else EXIT_ERROR
    except Exception as exc:  # a bug: one line unless --debug
        if debug:
            raise
        print(f"wimfs: internal error: {type(exc).__name__}: {exc} (rerun with --debug)",
              file=sys.stderr)
        return EXIT_ERROR
