"""`wimfs delete WIM N [--rebuild]`."""

from __future__ import annotations

from wimfs.errors import WimfsError
from wimfs.imaging import delete
from wimfs.wim import Wim


def run(args) -> int:
    with Wim(args.wim) as wim:
        if args.image == "all":
            indexes = list(range(1, wim.image_count + 1))
        elif args.image.isdigit():
            indexes = [int(args.image)]
        else:
            indexes = [wim.resolve_image(None, args.image)]
    if not indexes:
        raise WimfsError(f"{args.wim} has no images")
    delete(args.wim, indexes, rebuild_wim=args.rebuild, quiet=args.quiet,
           check=True if args.check else None)
    return 0
