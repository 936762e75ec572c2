"""`wimfs verify IMAGE[:N|:NAME|:all]`: headers, metadata, every blob's SHA-1, integrity
table (of the whole WIM, or of the chosen images' metadata and blobs)."""

from __future__ import annotations

import sys

from wimfs import progress
from wimfs.commands import image_spec
from wimfs.errors import WimCorruptError
from wimfs.imaging import verify


def run(args) -> int:
    spec = image_spec(args, "wim")
    with progress.bar(args.quiet) as cb:
        problems = verify(spec.path, args.ref, progress=cb, spec=spec)
    for p in problems:
        print(f"wimfs: {p}", file=sys.stderr)
    if problems:
        raise WimCorruptError(f"{spec.path}: {len(problems)} problem(s) found")
    if not args.quiet:
        print(f"{spec.path}: OK")
    return 0
