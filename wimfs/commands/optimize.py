"""`wimfs optimize WIM [--recompress]`: rewrite the WIM without unused space."""

from __future__ import annotations

import os
import sys

from wimfs import progress
from wimfs.commands import wim_file
from wimfs.imaging import check_chunk_size, compression_type, rebuild
from wimfs.split import compact


def run(args) -> int:
    before = os.path.getsize(wim_file(args.wim))
    ctype = compression_type(args.compress) if args.compress else None
    chunk_size = check_chunk_size(ctype, args.chunk_size) if ctype is not None else None
    check = True if args.check else None
    with progress.bar(args.quiet) as cb:
        if args.recompress or ctype is not None or args.solid or args.chunk_size or \
                not compact(args.wim, check=check, progress=cb):
            rebuild(args.wim, ctype=ctype, solid=True if args.solid else None,
                    chunk_size=chunk_size, threads=args.threads, progress=cb, check=check,
                    recompress=bool(args.recompress))
    after = os.path.getsize(args.wim)
    if not args.quiet:
        print(f"{args.wim}: {before} -> {after} bytes", file=sys.stderr)
    return 0
