"""`wimfs capture DIR WIM` and `wimfs append DIR WIM`."""

from __future__ import annotations

import sys
from collections.abc import Callable

from wimfs import progress
from wimfs.capture import CaptureConfig, CaptureOptions
from wimfs.imaging import capture, check_chunk_size, compression_type, no_skip


def _opts(args) -> CaptureOptions:
    cfg = CaptureConfig.load(args.config) if args.config else None
    return CaptureOptions(unix_data=args.unix_data, config=cfg, rpfix=not args.norpfix)


def skip_reporter(enabled: bool) -> Callable[[str, Exception], bool]:
    """--skip-errors: skip each unreadable file with a warning line; else stop."""
    if not enabled:
        return no_skip

    def on_skip(path: str, exc: Exception) -> bool:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"wimfs: warning: skipping {path}: {reason}", file=sys.stderr)
        return True
    return on_skip


def run(args) -> int:
    ctype = compression_type(args.compress)
    chunk_size = check_chunk_size(ctype, args.chunk_size)
    with progress.bar(args.quiet) as cb:
        capture(args.source, args.wim, name=args.name, description=args.description,
                ctype=ctype, chunk_size=chunk_size, solid=args.solid, boot=args.boot,
                check=args.check, opts=_opts(args), threads=args.threads, progress=cb,
                flags=args.flags, on_skip=skip_reporter(args.skip_errors))
    return 0


def run_append(args) -> int:
    with progress.bar(args.quiet) as cb:
        capture(args.source, args.wim, name=args.name, description=args.description,
                boot=args.boot, check=args.check, opts=_opts(args), threads=args.threads,
                progress=cb, append=True, flags=args.flags,
                on_skip=skip_reporter(args.skip_errors))
    return 0
