"""Image management on the one writer: capture/append, export, delete, optimize,
XML edits, verify. The CLI modules in wimfs.commands are thin wrappers over these."""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable

from lxml import etree

from wimfs.builder import NewImage, WimBuilder, attach_wim_sources
from wimfs.capture import CaptureOptions, capture_tree, uses_rpfix
from wimfs.errors import (
    ImageNotFoundError,
    UsageError,
    WimCorruptError,
    WimfsError,
)
from wimfs.format import structs as S
from wimfs.format.xmlinfo import set_property
from wimfs.fsutil import check_output_dir
from wimfs.hooks import stream_reader, windows_xml
from wimfs.image import ZERO_HASH
from wimfs.imagespec import ImageSpec, plural
from wimfs.progress import Progress, ProgressCallback
from wimfs.wim import Wim

log = logging.getLogger(__name__)

COMPRESSION = {"none": S.COMPRESSION_NONE, "xpress": S.COMPRESSION_XPRESS,
               "lzx": S.COMPRESSION_LZX, "lzms": S.COMPRESSION_LZMS,
               # DISM names
               "fast": S.COMPRESSION_XPRESS, "maximum": S.COMPRESSION_LZX,
               "max": S.COMPRESSION_LZX, "recovery": S.COMPRESSION_LZMS}


def compression_type(name: str | None, default: int = S.COMPRESSION_LZX) -> int:
    if name is None:
        return default
    try:
        return COMPRESSION[name.lower()]
    except KeyError:
        raise UsageError(f"unknown compression type {name!r} (none, xpress, lzx, lzms)") \
            from None


def check_chunk_size(ctype: int, chunk_size: int | None) -> int | None:
    if chunk_size is None:
        return None
    if chunk_size & (chunk_size - 1) or not 1 << 15 <= chunk_size <= 1 << 26:
        raise UsageError(f"invalid chunk size {chunk_size}: a power of 2 from 32768")
    limits = {S.COMPRESSION_XPRESS: 1 << 16, S.COMPRESSION_LZX: 1 << 21,
              S.COMPRESSION_LZMS: 1 << 30}
    if chunk_size > limits.get(ctype, 1 << 30):
        raise UsageError(f"chunk size {chunk_size} is too large for "
                         f"{S.COMPRESSION_NAMES[ctype]}")
    return chunk_size


def no_skip(path: str, exc: Exception) -> bool:
    """The default: an unreadable source file stops the capture."""
    return False


def _names(wim: Wim) -> set[str]:
    return {i.name for i in wim.infos.values() if i.name}


def _wrap_read_errors(fn, src: str, wim_path: str):
    """I/O errors during the write of a capture: one line naming the source file that could
    not be read, or the WIM that could not be written."""
    try:
        return fn()
    except OSError as exc:
        if not exc.filename or isinstance(exc, WimfsError):
            raise
        name = os.path.abspath(os.fsdecode(exc.filename))
        if name.startswith(os.path.join(os.path.abspath(src), "")):
            raise WimfsError(f"cannot read {exc.filename}: {exc.strerror} (use --skip-errors to "
                             "skip unreadable files)") from None
        raise WimfsError(f"cannot write {wim_path}: {exc.strerror}") from None


def capture(src: str, wim_path: str, *, name: str | None, description: str | None = None,
            ctype: int = S.COMPRESSION_LZX, chunk_size: int | None = None,
            solid: bool = False, boot: bool = False, check: bool = False,
            opts: CaptureOptions | None = None, threads: int = 0,
            progress: ProgressCallback | None = None,
            append: bool = False, flags: str | None = None,
            on_skip: Callable[[str, Exception], bool] = no_skip) -> None:
    """Capture `src` into a new WIM (or as a new image of it with `append`). `on_skip`
    decides for each unreadable source file: True skips it, False stops the capture."""
    opts = opts or CaptureOptions()
    opts.on_error = on_skip
    if not os.path.isdir(src):
        if not os.path.exists(src):
            raise ImageNotFoundError(f"{src}: no such directory")
        raise WimfsError(f"{src} is not a directory")
    if not append:
        check_output_dir(wim_path)
    if name is None:
        name = os.path.basename(os.path.abspath(src).rstrip("/")) or "root"
    if append:
        wim = Wim(wim_path)
        try:
            if name in _names(wim):
                raise WimfsError(f"{wim_path} already has an image named {name!r}")
            img, _ = capture_tree(src, opts)
            win, extra = _windows(img)
            b = WimBuilder(wim_path, wim.header.compression_type, threads=threads,
                           progress=progress, append_to=wim,
                           check_integrity=check or _has_integrity(wim),
                           header_flags=S.HDR_FLAG_RP_FIX if uses_rpfix(img) else 0)
            b.on_skip = on_skip
            b.add(_new_image(img, name, description, flags, win, extra))
            if boot:
                b.boot_index = wim.image_count + 1
            _wrap_read_errors(b.write, src, wim_path)
        finally:
            wim.close()
        return
    img, _ = capture_tree(src, opts)
    win, extra = _windows(img)
    b = WimBuilder(wim_path, ctype, chunk_size=chunk_size, solid=solid, threads=threads,
                   progress=progress, check_integrity=check,
                   header_flags=S.HDR_FLAG_RP_FIX if uses_rpfix(img) else 0)
    b.on_skip = on_skip
    b.add(_new_image(img, name, description, flags, win, extra))
    if boot:
        b.boot_index = 1
    _wrap_read_errors(b.write, src, wim_path)


def _windows(img):
    """The WINDOWS XML element when the tree holds a Windows installation."""
    return windows_xml(img, stream_reader())


def _new_image(img, name, description, flags, win, extra) -> NewImage:
    props = {k: v for k, v in extra.items() if not (k == "FLAGS" and flags is not None)}
    return NewImage(img, name=name, description=description, flags=flags, windows=win,
                    extra_properties=props)


def _has_integrity(wim: Wim) -> bool:
    return wim.header.integrity_table_reshdr.size_in_wim > 0


def image_element(wim: Wim, index: int):
    els = wim.xml_root.findall("IMAGE")
    for el in els:
        if el.get("INDEX") == str(index):
            return el
    if 0 < index <= len(els):
        return els[index - 1]
    return None


def export(spec: ImageSpec, dst_path: str, *, ctype: int | None = None,
           solid: bool = False, name: str | None = None, description: str | None = None,
           boot: bool = False, check: bool = False, threads: int = 0,
           progress: ProgressCallback | None = None,
           chunk_size: int | None = None, refs: list[str] | None = None,
           recompress: bool = False) -> list[int]:
    """Export images; returns the new indexes in DST. Resources whose compression already
    fits DST are copied as stored unless `recompress`."""
    src_path = spec.path
    check_output_dir(dst_path)
    src = open_wim(src_path, refs)
    try:
        indexes = spec.resolve(src, allow_all=True)
        if name is not None and len(indexes) > 1:
            raise WimfsError("--name can only be used when exporting one image")
        same = os.path.exists(dst_path) and os.path.samefile(src_path, dst_path)
        if same:
            raise WimfsError("source and destination are the same WIM")
        dst = Wim(dst_path) if os.path.exists(dst_path) else None
        try:
            if dst is not None:
                b = WimBuilder(dst_path, dst.header.compression_type, threads=threads,
                               progress=progress, append_to=dst,
                               check_integrity=check or _has_integrity(dst))
                taken = _names(dst)
                first = dst.image_count + 1
            else:
                if ctype is None:
                    ctype = src.header.compression_type
                    solid = solid or src.header.wim_version == S.WIM_VERSION_SOLID
                b = WimBuilder(dst_path, ctype, chunk_size=chunk_size, solid=solid,
                               threads=threads, progress=progress, check_integrity=check)
                taken = set()
                first = 1
            b.header_flags = src.header.flags & S.HDR_FLAG_RP_FIX
            b.raw_copy = not recompress
            for i in indexes:
                img, el = _rewritable_image(src, i)
                info = src.info(i)
                new_name = name if name is not None else info.name
                if new_name and new_name in taken:
                    raise WimfsError(f"{dst_path} already has an image named {new_name!r} "
                                     "(choose another with --name)")
                taken.add(new_name)
                b.add(NewImage(img, name=new_name, description=description, xml_element=el))
            if boot:
                b.boot_index = first if len(indexes) == 1 or src.header.boot_idx not in \
                    indexes else first + indexes.index(src.header.boot_idx)
            elif dst is None and src.header.boot_idx in indexes:
                b.boot_index = first + indexes.index(src.header.boot_idx)
            b.write()
            return list(range(first, first + len(indexes)))
        finally:
            if dst is not None:
                dst.close()
    finally:
        src.close()


def _rewritable_image(wim: Wim, index: int):
    """An image of `wim` ready to be written into another WIM: complete, its streams
    readable as writer sources in on-disk order, and a copy of its XML element."""
    img = wim.image(index)
    _check_complete(wim, img, index)
    attach_wim_sources(img, wim.reader)
    sort_by_location(img)
    el = image_element(wim, index)
    return img, (copy.deepcopy(el) if el is not None else None)


def sort_by_location(img) -> None:
    """Order the inodes (the order the writer reads their streams in) by where their data
    lies in the source WIM: sequential reads, and each solid chunk decompressed once."""
    def key(ino):
        s = ino.data or ino.reparse or next(iter(ino.named_streams.values()), None)
        if s is None or s.blob is None:
            return (0, 0, 0, 0)
        r = s.blob.rdesc
        return (1, r.part_number, r.offset_in_wim, s.blob.offset_in_res)

    img.inodes.sort(key=key)


def _check_complete(wim: Wim, img, index: int) -> None:
    missing = sum(i.missing_blobs for i in img.inodes)
    if missing:
        raise WimCorruptError(f"{wim.path}: image {index} references {missing} stream(s) "
                              "missing from the WIM (a split WIM? pass its parts with --ref)")


def rebuild(path: str, keep: list[int] | None = None, *, ctype: int | None = None,
            solid: bool | None = None, chunk_size: int | None = None, threads: int = 0,
            progress: ProgressCallback | None = None, check: bool | None = None,
            recompress: bool = False) -> None:
    """Write the WIM anew (temp file + rename) holding only `keep` (default: all)."""
    wim = Wim(path)
    try:
        if wim.header.total_parts != 1:
            raise WimfsError(f"{path} is part of a split WIM; join it first")
        keep = list(range(1, wim.image_count + 1)) if keep is None else keep
        if ctype is None:
            ctype = wim.header.compression_type
        if solid is None:
            solid = wim.header.wim_version == S.WIM_VERSION_SOLID
        if chunk_size is None and not solid and ctype != S.COMPRESSION_NONE:
            chunk_size = wim.header.chunk_size or None
        b = WimBuilder(path, ctype, chunk_size=chunk_size, solid=solid, threads=threads,
                       progress=progress, check_integrity=_has_integrity(wim) if check is None
                       else check,
                       header_flags=wim.header.flags & (S.HDR_FLAG_RP_FIX |
                                                         S.HDR_FLAG_READONLY))
        b.raw_copy = not recompress
        for i in keep:
            img, el = _rewritable_image(wim, i)
            b.add(NewImage(img, xml_element=el))
        bi = wim.header.boot_idx
        b.boot_index = keep.index(bi) + 1 if bi in keep else 0
        b.write()
    finally:
        wim.close()


def delete(path: str, indexes: list[int], *, rebuild_wim: bool = False, threads: int = 0,
           progress: ProgressCallback | None = None, check: bool | None = None) -> None:
    with Wim(path) as wim:
        n = wim.image_count
        for i in indexes:
            if not 1 <= i <= n:
                raise ImageNotFoundError(f"{path}: no image {i} (the WIM has "
                                         f"{plural(n, 'image')})")
        keep = [i for i in range(1, n + 1) if i not in indexes]
    if rebuild_wim:
        from wimfs.split import compact

        if not compact(path, keep, check=check, progress=progress):
            rebuild(path, keep, threads=threads, progress=progress, check=check)
        return
    wim = Wim(path)
    try:
        # Reference counts of the kept images; blobs nobody references any more leave the
        # blob table (their bytes stay as unused space until --rebuild / optimize).
        counts: dict[bytes, int] = {}
        for i in keep:
            img = wim.image(i)
            for ino in img.inodes:
                for s in ino.streams():
                    if s.hash != ZERO_HASH:
                        counts[s.hash] = counts.get(s.hash, 0) + len(ino.dentries)
        blobs = wim.blob_table.blobs
        for h in list(blobs):
            c = counts.get(h, 0)
            if c == 0:
                del blobs[h]
            else:
                blobs[h].refcnt = c
        b = WimBuilder(path, wim.header.compression_type, progress=progress, append_to=wim,
                       check_integrity=_has_integrity(wim) if check is None else check)
        b.write(keep_images=keep)
    finally:
        wim.close()


def edit_info(path: str, index: int | None, *, name: str | None = None,
              description: str | None = None, properties: list[str] | None = None,
              boot: int | None = None, check: bool | None = None) -> None:
    """Change XML fields and/or the boot index (in place: new XML, blob table, header)."""
    wim = Wim(path)
    try:
        if wim.header.total_parts != 1:
            raise WimfsError(f"{path} is part of a split WIM; join it first")
        if (name is not None or description is not None or properties) and index is None:
            if wim.image_count == 1:
                index = 1
            else:
                raise UsageError(f"{path} contains {plural(wim.image_count, 'image')}: "
                                 "choose the one to edit with IMAGE:N, --index N or --name "
                                 "NAME")
        if index is not None:
            index = wim.resolve_image(index)
            el = image_element(wim, index)
            if el is None:
                el = etree.SubElement(wim.xml_root, "IMAGE")
                el.set("INDEX", str(index))
            if name is not None:
                for i, info in wim.infos.items():
                    if i != index and info.name == name and name:
                        raise WimfsError(f"image {i} is already named {name!r}")
                set_property(el, "NAME", name)
            if description is not None:
                set_property(el, "DESCRIPTION", description)
            for kv in properties or []:
                key, sep, value = kv.partition("=")
                if not sep or not key:
                    raise UsageError(f"--set-property wants KEY=VALUE, not {kv!r}")
                set_property(el, key, value)
        b = WimBuilder(path, wim.header.compression_type, append_to=wim,
                       check_integrity=_has_integrity(wim) if check is None else check)
        if boot is not None:
            if not 0 <= boot <= wim.image_count:
                raise ImageNotFoundError(f"{path}: no image {boot} to boot (the WIM has "
                                         f"{plural(wim.image_count, 'image')}; 0 clears it)")
            b.boot_index = boot
        b.write()
    finally:
        wim.close()


def open_wim(path: str, refs: list[str] | None = None) -> Wim:
    wim = Wim(path)
    if refs:
        try:
            from wimfs.split import attach_refs

            attach_refs(wim, refs)
        except BaseException:
            wim.close()
            raise
    return wim


def verify(path: str, refs: list[str] | None = None,
           progress: ProgressCallback | None = None,
           spec: ImageSpec | None = None) -> list[str]:
    """Check headers, XML, every image's metadata, every blob's SHA-1 and the integrity
    table; with a `spec` selector only the chosen images' metadata and blobs. Returns the
    problems found (empty: the WIM is good)."""
    problems: list[str] = []
    wim = open_wim(path, refs)
    try:
        if wim.header.total_parts > 1 and wim.header.part_number == 1 and not refs:
            problems.append(f"{path} is part 1 of {wim.header.total_parts}; pass the other "
                            "parts with --ref")
        try:
            bad = wim.verify_integrity()
            if bad:
                problems.append(f"integrity table: {len(bad)} chunk(s) do not match "
                                f"(first at {bad[0]})")
        except WimCorruptError as exc:
            problems.append(f"integrity table: {exc}")
        if len(wim.blob_table.metadata) != wim.image_count and wim.header.part_number == 1:
            problems.append(f"header says {plural(wim.image_count, 'image')} but the blob "
                            f"table has {len(wim.blob_table.metadata)} metadata resources")
        if len(wim.infos) != wim.image_count and wim.header.part_number == 1:
            problems.append(f"the XML describes {plural(len(wim.infos), 'image')}, the header "
                            f"{wim.image_count}")
        referenced: set[bytes] = set()
        whole = spec is None or spec.selector is None
        chosen = range(1, min(wim.image_count, len(wim.blob_table.metadata)) + 1) if whole \
            else spec.resolve(wim, allow_all=True)
        if wim.header.part_number == 1:
            for i in chosen:
                try:
                    img = wim.image(i)
                except WimCorruptError as exc:
                    problems.append(f"image {i}: {exc}")
                    continue
                missing = 0
                for ino in img.inodes:
                    missing += ino.missing_blobs
                    for s in ino.streams():
                        if s.hash != ZERO_HASH:
                            referenced.add(s.hash)
                if missing:
                    problems.append(f"image {i}: {missing} stream(s) reference blobs that are "
                                    "not in the WIM")
        blobs = sorted((b for b in wim.blob_table.blobs.values()
                        if whole or b.hash in referenced),
                       key=lambda b: (b.rdesc.part_number, b.rdesc.offset_in_wim,
                                      b.offset_in_res))
        counter = Progress(label="verifying", callback=progress,
                           total=sum(b.size for b in blobs))
        for b in blobs:
            try:
                off = 0
                while off < b.size:
                    n = min(1 << 22, b.size - off)
                    data = wim.reader.read(b, off, n)
                    if len(data) != n:
                        raise WimCorruptError("short read")
                    off += n
                    counter.add(n)
                if b.verified is False:
                    raise WimCorruptError("SHA-1 mismatch")
            except WimCorruptError as exc:
                problems.append(f"blob {b.hex}: {exc}")
        counter.finish()
    finally:
        wim.close()
    return problems
