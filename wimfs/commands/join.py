"""`wimfs join OUT.wim PART.swm...`."""

from __future__ import annotations

import glob

from wimfs.split import join


def run(args) -> int:
    parts: list[str] = []
    for p in args.parts:
        parts += sorted(glob.glob(p)) if any(c in p for c in "*?[") else [p]
    join(args.out, parts, check=args.check, quiet=args.quiet)
    return 0
