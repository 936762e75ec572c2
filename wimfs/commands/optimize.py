"""`wimfs optimize WIM [--recompress]`: rewrite the WIM without unused space."""

from __future__ import annotations

import os
import sys

from wimfs.imaging import check_chunk_size, compression_type, rebuild


def run(args) -> int:
    before = os.path.getsize(args.wim)
    ctype = compression_type(args.compress) if args.compress else None
    from wimfs.split import compact

    if args.recompress or ctype is not None or args.solid or args.chunk_size or \
            not compact(args.wim, check=True if args.check else None, quiet=args.quiet):
        _recompress(args, ctype)
    after = os.path.getsize(args.wim)
    if not args.quiet:
        print(f"{args.wim}: {before} -> {after} bytes", file=sys.stderr)
    return 0


def _recompress(args, ctype) -> None:
    rebuild(args.wim, ctype=ctype, solid=True if args.solid else None,
            chunk_size=check_chunk_size(ctype, args.chunk_size) if ctype is not None else None,
            threads=args.threads, quiet=args.quiet, check=True if args.check else None,
            recompress=bool(args.recompress))
