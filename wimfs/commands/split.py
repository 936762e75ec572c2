"""`wimfs split WIM PART.swm --size MB`."""

from __future__ import annotations

import sys

from wimfs.split import split


def run(args) -> int:
    names = split(args.wim, args.part, args.size, check=args.check, quiet=args.quiet)
    if not args.quiet:
        print(f"wrote {len(names)} part(s): {', '.join(names)}", file=sys.stderr)
    return 0
