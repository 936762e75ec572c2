"""One servicing operation from start to end: open the TARGET, log, commit or discard.

Every servicing command (``wimfs reg``, ``wimfs update``, ``wimfs image-info`` and the
DISM-area commands after them) runs its work inside :func:`operation`::

    with operation(spec, opts, command="reg import x.reg", write=True) as target:
        ...                       # edit files and hives of target

A clean exit commits (with ``--dry-run``: discards after printing what would change); an
exception discards, logs the failure and re-raises it with a note that the target was
left as it was.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from servicing.log import Level, ServicingLog
from servicing.target import Target, open_target


@dataclass
class CommonOptions:
    """The options every servicing command has."""

    dry_run: bool = False
    windir: str = "Windows"
    log_path: str | None = None
    log_level: int = Level.INFO
    json: bool = False


def add_common_arguments(p: argparse.ArgumentParser, *, writes: bool = True) -> None:
    if writes:
        p.add_argument("--dry-run", action="store_true",
                       help="print what would change and write nothing")
    p.add_argument("--windir", default="Windows", metavar="NAME",
                   help="the Windows folder when it is not named Windows (DISM /WinDir)")
    p.add_argument("--log-path", metavar="FILE", help="servicing log (default: "
                   "$XDG_STATE_HOME/wimfs/log/servicing.log)")
    p.add_argument("--log-level", type=int, default=3, choices=(1, 2, 3, 4),
                   help="1 errors, 2 warnings, 3 info (default), 4 debug")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def options_from_args(args: argparse.Namespace) -> CommonOptions:
    return CommonOptions(dry_run=getattr(args, "dry_run", False), windir=args.windir,
                         log_path=args.log_path, log_level=args.log_level, json=args.json)


_VALUED = {"--windir": "windir", "--log-path": "log_path", "--log-level": "log_level"}


def pop_common(argv: list[str]) -> tuple[list[str], CommonOptions]:
    """Take the common options out of a reg.exe-style argv (``wimfs reg``), leaving
    the rest (``--json`` stays: reg query has its own)."""
    opts = CommonOptions()
    rest: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        name, eq, val = a.partition("=")
        if a == "--dry-run":
            opts.dry_run = True
        elif name in _VALUED:
            if not eq:
                if i + 1 >= len(argv):
                    from wimfs.errors import WimfsError
                    raise WimfsError(f"option {name} needs an argument")
                i += 1
                val = argv[i]
            setattr(opts, _VALUED[name], val)
        else:
            rest.append(a)
        i += 1
    if isinstance(opts.log_level, str):
        opts.log_level = int(opts.log_level) if opts.log_level.isdigit() else 0
    return rest, opts


@contextmanager
def operation(spec: str, opts: CommonOptions, *, command: str, write: bool,
              out=None) -> Iterator[Target]:
    """Open *spec* as a target, run the body, commit or discard, and log all of it."""
    log = ServicingLog(opts.log_path, opts.log_level)
    try:
        log.info(f"command: {command}")
        target = open_target(spec, write=write, dry_run=opts.dry_run, windir=opts.windir)
        log.info(f"target: {target.description}")
        log.info(f"image version: {_version(target)}")
        try:
            with target:
                yield target
        except BaseException as exc:
            log.error(f"failed: {exc}; {target.description} was left as it was")
            if write:
                _note_unchanged(exc, target)
            raise
        log.changes(target.changes, dry_run=opts.dry_run)
        if opts.dry_run:
            _print_dry_run(target, opts, out or sys.stdout)
        log.info("done" if not opts.dry_run else "done (dry run, nothing written)")
    finally:
        log.close()


def _version(target: Target) -> str:
    from servicing.features.image_info import image_version
    return image_version(target)


def _note_unchanged(exc: BaseException, target: Target) -> None:
    """Say in the one error line that nothing was changed."""
    if len(exc.args) == 1 and isinstance(exc.args[0], str):
        exc.args = (f"{exc.args[0]} ({target.description} left unchanged)",)


def _print_dry_run(target: Target, opts: CommonOptions, out) -> None:
    if opts.json:
        doc = {"target": target.description, "dry_run": True,
               "changes": [c.to_json() for c in target.changes]}
        out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return
    for c in target.changes:
        out.write(f"would be {c.describe()}\n")
    if not target.changes:
        out.write("nothing would change\n")
