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
    c.set_defaults(func=_cmd("wimfs.commands.info:run"))

    c = sub.add_parser("ls", help="list files in an image")
    c.add_argument("image", metavar="IMAGE[:N]")
    c.add_argument("path", nargs="?", default="/")
    c.add_argument("--long", "-l", action="store_true")
    c.set_defaults(func=_cmd("wimfs.commands.ls:run"))

    c = sub.add_parser("mount", help="mount an image as a read-only FUSE volume")
    c.add_argument("image")
    c.add_argument("mountdir")
    sel = c.add_mutually_exclusive_group()
    sel.add_argument("--index", help="image index, or 'all' for every image as a top-level folder")
    sel.add_argument("--name", help="image name")
    c.add_argument("--foreground", "-f", action="store_true", help="do not daemonize")
    c.add_argument("--allow-other", action="store_true")
    c.add_argument("--cache-size", type=int, default=256, metavar="MB",
                   help="decompressed chunk cache size (default 256 MiB)")
    c.add_argument("--threads", type=int, default=0, help="decompression threads (default: cores)")
    c.add_argument("-o", dest="options", action="append", default=[],
                   help="mount options: case_insensitive")
    c.set_defaults(func=_cmd("wimfs.commands.mount:run"))

    c = sub.add_parser("unmount", aliases=["umount"], help="unmount a wimfs mount")
    c.add_argument("mountdir")
    c.add_argument("--lazy", action="store_true")
    c.set_defaults(func=_cmd("wimfs.commands.mount:run_unmount"))

    for name in DELEGATED:
        c = sub.add_parser(name, help=f"{name} commands (see 'wimfs {name} --help')", add_help=False)
        c.add_argument("rest", nargs=argparse.REMAINDER)
    return p


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
