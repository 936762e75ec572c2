"""`wimfs export SRC[:N|:all] DST`."""

from __future__ import annotations

from wimfs.cli import _parse_image_spec
from wimfs.format import structs as S
from wimfs.imaging import check_chunk_size, compression_type, export


def run(args) -> int:
    path, sel = _parse_image_spec(args.source)
    if args.index is not None:
        sel = args.index
    ctype = None
    solid = args.solid
    if args.compress is not None:
        ctype = compression_type(args.compress)
        if args.compress.lower() == "recovery":     # DISM /Compress:recovery = solid LZMS
            solid = True
    if solid and ctype is None:
        ctype = S.COMPRESSION_LZMS
    export(path, sel, args.dest, ctype=ctype, solid=solid, name=args.name,
           description=args.description, boot=args.boot, check=args.check,
           threads=args.threads, quiet=args.quiet,
           chunk_size=check_chunk_size(ctype, args.chunk_size) if ctype is not None else None,
           refs=args.ref, recompress=args.recompress)
    return 0
