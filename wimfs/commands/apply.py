"""`wimfs apply IMAGE[:N|:NAME|:all] DIR`."""

from __future__ import annotations

import os
import sys

from wimfs import progress
from wimfs.apply import apply_image
from wimfs.commands import image_spec
from wimfs.imaging import open_wim


def run(args) -> int:
    spec = image_spec(args)
    warnings = 0
    with open_wim(spec.path, args.ref) as wim:
        indexes = spec.resolve(wim, allow_all=True)
        every = spec.selector == "all" and not spec.by_name
        for i in indexes:
            dest = args.dir
            if every:
                dest = os.path.join(args.dir, (wim.info(i).name or str(i)).replace("/", "_"))
            with progress.bar(args.quiet) as cb:
                warnings += apply_image(wim, i, dest, unix_data=args.unix_data, progress=cb)
    if warnings and not args.quiet:
        print(f"wimfs: {warnings} warning(s) while applying", file=sys.stderr)
    return 0
