"""`wimfs join OUT.wim PART.swm...`."""

from __future__ import annotations

import glob

from wimfs import progress
from wimfs.errors import PathNotFoundError
from wimfs.fsutil import check_output_dir
from wimfs.split import join


def run(args) -> int:
    parts: list[str] = []
    for p in args.parts:
        found = sorted(glob.glob(p)) if any(c in p for c in "*?[") else [p]
        if not found:
            raise PathNotFoundError(f"{p}: no such file")
        parts += found
    check_output_dir(args.out)
    with progress.bar(args.quiet) as cb:
        join(args.out, parts, check=args.check, progress=cb)
    return 0
