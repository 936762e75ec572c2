"""`wimfs capture DIR WIM` and `wimfs append DIR WIM`."""

from __future__ import annotations

from wimfs.capture import CaptureConfig, CaptureOptions
from wimfs.imaging import capture, check_chunk_size, compression_type


def _opts(args) -> CaptureOptions:
    cfg = CaptureConfig.load(args.config) if args.config else None
    return CaptureOptions(unix_data=args.unix_data, config=cfg, rpfix=not args.norpfix)


def run(args) -> int:
    ctype = compression_type(args.compress)
    capture(args.source, args.wim, name=args.name, description=args.description,
            ctype=ctype, chunk_size=check_chunk_size(ctype, args.chunk_size), solid=args.solid,
            boot=args.boot, check=args.check, opts=_opts(args), threads=args.threads,
            quiet=args.quiet, flags=args.flags, skip_errors=args.skip_errors)
    return 0


def run_append(args) -> int:
    capture(args.source, args.wim, name=args.name, description=args.description,
            boot=args.boot, check=args.check, opts=_opts(args), threads=args.threads,
            quiet=args.quiet, append=True, flags=args.flags, skip_errors=args.skip_errors)
    return 0
