"""The options every servicing command shares (parsed without importing the engine, so
``wimfs --help`` stays light)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

INFO = 3


@dataclass
class CommonOptions:
    """The options every servicing command has."""

    dry_run: bool = False
    skip_not_applicable: bool = False
    windir: str = "Windows"
    log_path: str | None = None
    log_level: int = INFO
    json: bool = False


def add_common_arguments(p: argparse.ArgumentParser, *, writes: bool = True,
                         json: bool = True) -> None:
    if writes:
        p.add_argument("--dry-run", action="store_true",
                       help="print what would change and write nothing")
        p.add_argument("--skip-not-applicable", action="store_true",
                       help="with IMAGE.wim:all or IMAGE.wim:1,3,5: change the images the "
                       "operation applies to and report the others (default: change none)")
    p.add_argument("--windir", default="Windows", metavar="NAME",
                   help="the Windows folder when it is not named Windows (DISM /WinDir)")
    p.add_argument("--log-path", metavar="FILE", help="servicing log (default: "
                   "$XDG_STATE_HOME/wimfs/log/servicing.log)")
    p.add_argument("--log-level", type=int, default=3, choices=(1, 2, 3, 4),
                   help="1 errors, 2 warnings, 3 info (default), 4 debug")
    if json:
        p.add_argument("--json", action="store_true", help="machine-readable output")


def options_from_args(args: argparse.Namespace) -> CommonOptions:
    return CommonOptions(dry_run=getattr(args, "dry_run", False),
                         skip_not_applicable=getattr(args, "skip_not_applicable", False),
                         windir=args.windir,
                         log_path=args.log_path, log_level=args.log_level, json=args.json)
