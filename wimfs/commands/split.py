"""`wimfs split WIM PART.swm --size MB`."""

from __future__ import annotations

import sys

from wimfs import progress
from wimfs.commands import wim_file
from wimfs.fsutil import check_output_dir
from wimfs.split import split


def run(args) -> int:
    wim_file(args.wim)
    check_output_dir(args.part)
    with progress.bar(args.quiet) as cb:
        names = split(args.wim, args.part, args.size, check=args.check, progress=cb)
    if not args.quiet:
        print(f"wrote {len(names)} part(s): {', '.join(names)}", file=sys.stderr)
    return 0
