"""`wimfs verify WIM`: headers, metadata, every blob's SHA-1, integrity table."""

from __future__ import annotations

import sys

from wimfs.errors import WimCorruptError
from wimfs.imaging import verify


def run(args) -> int:
    problems = verify(args.wim, args.ref, quiet=args.quiet)
    for p in problems:
        print(f"wimfs: {p}", file=sys.stderr)
    if problems:
        raise WimCorruptError(f"{args.wim}: {len(problems)} problem(s) found")
    if not args.quiet:
        print(f"{args.wim}: OK")
    return 0
