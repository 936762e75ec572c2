"""`wimfs apply IMAGE[:N] DIR`."""

from __future__ import annotations

import sys

from wimfs.apply import apply_image
from wimfs.cli import _parse_image_spec
from wimfs.wim import Wim


def run(args) -> int:
    path, sel = _parse_image_spec(args.image)
    if args.index is not None:
        sel = str(args.index)
    with Wim(path) as wim:
        if args.ref:
            wim.add_ref_parts(args.ref)
        if sel == "all":
            import os

            for i in range(1, wim.image_count + 1):
                name = wim.info(i).name or str(i)
                apply_image(wim, i, os.path.join(args.dir, name.replace("/", "_")),
                            unix_data=args.unix_data, quiet=args.quiet)
            return 0
        index = wim.resolve_image(sel, args.name)
        warnings = apply_image(wim, index, args.dir, unix_data=args.unix_data,
                               quiet=args.quiet)
    if warnings and not args.quiet:
        print(f"wimfs: {warnings} warning(s) while applying", file=sys.stderr)
    return 0
