"""`wimfs delete IMAGE[:N|:NAME|:all] [N|NAME|all] [--rebuild]`."""

from __future__ import annotations

from wimfs import progress
from wimfs.commands import image_spec
from wimfs.errors import UsageError
from wimfs.imagespec import FORMS
from wimfs.imaging import delete
from wimfs.wim import Wim


def run(args) -> int:
    spec = image_spec(args, "wim")
    if args.selector is not None:
        spec = spec.with_selector(args.selector)
    if spec.selector is None:
        raise UsageError(f"choose the image to delete with {FORMS}")
    with Wim(spec.path) as wim:
        indexes = spec.resolve(wim, allow_all=True)
    with progress.bar(args.quiet) as cb:
        delete(spec.path, indexes, rebuild_wim=args.rebuild, progress=cb,
               check=True if args.check else None)
    return 0
