"""`wimfs export SRC[:N|:NAME|:all] DST`."""

from __future__ import annotations

from wimfs import progress
from wimfs.commands import check_refs, wim_file
from wimfs.format import structs as S
from wimfs.imagespec import parse_image_spec
from wimfs.imaging import check_chunk_size, compression_type, export


def run(args) -> int:
    spec = parse_image_spec(args.source, index=args.index)   # --name names the new image
    wim_file(spec.path)
    check_refs(args.ref)
    ctype = None
    solid = args.solid
    if args.compress is not None:
        ctype = compression_type(args.compress)
        if args.compress.lower() == "recovery":     # DISM /Compress:recovery = solid LZMS
            solid = True
    if solid and ctype is None:
        ctype = S.COMPRESSION_LZMS
    chunk_size = check_chunk_size(ctype, args.chunk_size) if ctype is not None else None
    with progress.bar(args.quiet) as cb:
        export(spec, args.dest, ctype=ctype, solid=solid, name=args.name,
               description=args.description, boot=args.boot, check=args.check,
               threads=args.threads, progress=cb, chunk_size=chunk_size, refs=args.ref,
               recompress=args.recompress)
    return 0
