"""Split a WIM into parts (.swm) and join parts back, copying resources as they are
stored (no recompression).

Every part has the full header (same GUID, its part number, the total), the XML and a
blob table listing the resources stored in that part (with that part number); part 1
also holds the metadata resources. All parts are written to temporary files and
renamed once all are complete.
"""

from __future__ import annotations

import copy
import os
import tempfile

from wimfs.errors import WimfsError
from wimfs.format import structs as S
from wimfs.format.header import ResourceHeader, WimHeader
from wimfs.format.integrity import compute as compute_integrity
from wimfs.wim import Wim
from wimfs.progress import Progress, ProgressCallback
from wimfs.writer import WrittenBlob, blob_table_bytes

COPY_PIECE = 8 << 20


def attach_refs(wim: Wim, refs: list[str]) -> None:
    wim.add_ref_parts(refs)


def part_names(first: str, n: int) -> list[str]:
    """PART.swm, PART2.swm, PART3.swm ... (as wimlib and DISM name them)."""
    base, ext = os.path.splitext(first)
    return [first] + [f"{base}{i}{ext}" for i in range(2, n + 1)]


class _Out:
    """One output file written through a temporary file."""

    def __init__(self, path: str):
        self.path = path
        d = os.path.dirname(os.path.abspath(path)) or "."
        self.fd, self.tmp = tempfile.mkstemp(prefix=".wimfs-", suffix=".tmp", dir=d)
        os.fchmod(self.fd, 0o644)
        self.pos = S.WIM_HEADER_DISK_SIZE
        os.pwrite(self.fd, bytes(S.WIM_HEADER_DISK_SIZE), 0)

    def write(self, data: bytes) -> int:
        start = self.pos
        view = memoryview(data)
        while view:
            n = os.pwrite(self.fd, view, self.pos)
            self.pos += n
            view = view[n:]
        return start

    def copy_from(self, src_fd: int, offset: int, size: int, progress: Progress) -> int:
        start = self.pos
        done = 0
        while done < size:
            n = min(COPY_PIECE, size - done)
            data = os.pread(src_fd, n, offset + done)
            if len(data) != n:
                raise WimfsError("the source WIM is truncated")
            self.write(data)
            done += n
            progress.add(n)
        return start

    def finish(self, hdr: WimHeader, table: bytes, xml: bytes, check: bool) -> None:
        hdr.blob_table_reshdr = ResourceHeader(len(table), S.RESHDR_FLAG_METADATA,
                                               self.write(table), len(table))
        hdr.xml_data_reshdr = ResourceHeader(len(xml), S.RESHDR_FLAG_METADATA,
                                             self.write(xml), len(xml))
        if check:
            end = hdr.blob_table_reshdr.end
            t = compute_integrity(lambda off, n: os.pread(self.fd, n, off), end).build()
            hdr.integrity_table_reshdr = ResourceHeader(len(t), 0, self.write(t), len(t))
        else:
            hdr.integrity_table_reshdr = ResourceHeader()
        os.ftruncate(self.fd, self.pos)
        os.pwrite(self.fd, hdr.build(), 0)
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1

    def commit(self) -> None:
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass


def _raw_xml(wim: Wim) -> bytes:
    rh = wim.header.xml_data_reshdr
    return wim._read_reshdr(rh, "XML data")


def _resources(wim: Wim):
    """Non-solid blob resources of `wim` (this part), as (blob, rdesc)."""
    for blob in wim.blob_table.blobs.values():
        if blob.rdesc.is_solid:
            raise WimfsError(f"{wim.path}: splitting or joining WIMs with solid resources is "
                             "not supported (export it to a non-solid WIM first)")
        if blob.rdesc.part_number == wim.header.part_number:
            yield blob


def split(path: str, first_part: str, max_mb: int, check: bool = False,
          progress: ProgressCallback | None = None) -> list[str]:
    if max_mb <= 0:
        raise WimfsError("--size must be a positive number of MiB")
    limit = max_mb << 20
    with Wim(path) as wim:
        if wim.header.total_parts != 1:
            raise WimfsError(f"{path} is already split")
        blobs = sorted(_resources(wim), key=lambda b: b.rdesc.offset_in_wim)
        xml = _raw_xml(wim)
        overhead = S.WIM_HEADER_DISK_SIZE + len(xml)
        # Plan: metadata in part 1, then blobs in file order, a new part when the next
        # resource would pass the limit (a resource larger than the limit gets its own).
        parts: list[list] = [[]]
        size = overhead + sum(m.rdesc.size_in_wim + S.BLOB_DESCRIPTOR_DISK_SIZE
                              for m in wim.blob_table.metadata)
        for b in blobs:
            need = b.rdesc.size_in_wim + S.BLOB_DESCRIPTOR_DISK_SIZE
            if parts[-1] and size + need > limit or (not parts[-1] and len(parts) == 1 and
                                                       size + need > limit and
                                                       size > overhead):
                parts.append([])
                size = overhead
            parts[-1].append(b)
            size += need
        n = len(parts)
        names = part_names(first_part, n)
        counter = Progress(callback=progress, label="splitting",
                            total=sum(b.rdesc.size_in_wim for b in blobs))
        outs: list[_Out] = []
        try:
            for k, (pblobs, name) in enumerate(zip(parts, names), 1):
                out = _Out(name)
                outs.append(out)
                hdr = copy.deepcopy(wim.header)
                hdr.part_number, hdr.total_parts = k, n
                hdr.flags |= S.HDR_FLAG_SPANNED
                entries: list[WrittenBlob] = []
                meta: list[WrittenBlob] = []
                if k == 1:
                    for m in wim.blob_table.metadata:
                        r = m.rdesc
                        off = out.copy_from(wim.fd, r.offset_in_wim, r.size_in_wim, counter)
                        meta.append(WrittenBlob(m.hash, m.size, ResourceHeader(
                            r.size_in_wim, r.flags | S.RESHDR_FLAG_METADATA, off,
                            r.uncompressed_size), m.refcnt or 1, part_number=1))
                    bi = hdr.boot_idx
                    hdr.boot_metadata_reshdr = copy.copy(meta[bi - 1].reshdr) \
                        if bi and bi <= len(meta) else ResourceHeader()
                else:
                    hdr.boot_metadata_reshdr = ResourceHeader()
                for b in pblobs:
                    r = b.rdesc
                    off = out.copy_from(wim.fd, r.offset_in_wim, r.size_in_wim, counter)
                    entries.append(WrittenBlob(b.hash, b.size, ResourceHeader(
                        r.size_in_wim, r.flags & ~S.RESHDR_FLAG_METADATA, off,
                        r.uncompressed_size), b.refcnt, part_number=k))
                out.finish(hdr, blob_table_bytes(entries, [], [], meta), xml, check)
            for out in outs:
                out.commit()
        except BaseException:
            for out in outs:
                out.abort()
            raise
        counter.finish()
        return names


def join(out_path: str, part_paths: list[str], check: bool = False,
         progress: ProgressCallback | None = None) -> None:
    wims = [Wim(p, cache_size=0, threads=1) for p in part_paths]
    try:
        by_part: dict[int, Wim] = {}
        guid = wims[0].header.guid
        total = wims[0].header.total_parts
        for w in wims:
            h = w.header
            if h.guid != guid or h.total_parts != total:
                raise WimfsError(f"{w.path} is not a part of the same split WIM as "
                                 f"{wims[0].path}")
            if h.part_number in by_part:
                raise WimfsError(f"part {h.part_number} given twice ({w.path})")
            by_part[h.part_number] = w
        missing = [i for i in range(1, total + 1) if i not in by_part]
        if missing:
            raise WimfsError(f"missing part(s) {', '.join(map(str, missing))} of {total}")
        first = by_part[1]
        xml = _raw_xml(first)
        counter = Progress(callback=progress, label="joining", total=sum(
            b.rdesc.size_in_wim for w in wims for b in w.blob_table.blobs.values()))
        out = _Out(out_path)
        try:
            hdr = copy.deepcopy(first.header)
            hdr.part_number = hdr.total_parts = 1
            hdr.flags &= ~S.HDR_FLAG_SPANNED
            meta: list[WrittenBlob] = []
            for m in first.blob_table.metadata:
                r = m.rdesc
                off = out.copy_from(first.fd, r.offset_in_wim, r.size_in_wim, counter)
                meta.append(WrittenBlob(m.hash, m.size, ResourceHeader(
                    r.size_in_wim, r.flags | S.RESHDR_FLAG_METADATA, off,
                    r.uncompressed_size), m.refcnt or 1))
            bi = hdr.boot_idx
            hdr.boot_metadata_reshdr = copy.copy(meta[bi - 1].reshdr) \
                if bi and bi <= len(meta) else ResourceHeader()
            entries: list[WrittenBlob] = []
            seen: set[bytes] = set()
            for k in range(1, total + 1):
                w = by_part[k]
                for b in sorted(_resources(w), key=lambda b: b.rdesc.offset_in_wim):
                    if b.hash in seen:
                        continue
                    seen.add(b.hash)
                    r = b.rdesc
                    off = out.copy_from(w.fd, r.offset_in_wim, r.size_in_wim, counter)
                    entries.append(WrittenBlob(b.hash, b.size, ResourceHeader(
                        r.size_in_wim, r.flags & ~S.RESHDR_FLAG_METADATA, off,
                        r.uncompressed_size), b.refcnt))
            out.finish(hdr, blob_table_bytes(entries, [], [], meta), xml, check)
            out.commit()
        except BaseException:
            out.abort()
            raise
        counter.finish()
    finally:
        for w in wims:
            w.close()


def compact(path: str, keep: list[int] | None = None, check: bool | None = None,
            progress: ProgressCallback | None = None) -> bool:
    """Rewrite a (non-solid, unsplit) WIM through a temporary file, copying the stored
    resources of the kept images as they are (no recompression) and leaving out
    everything nothing references any more. Returns False (and does nothing) for WIMs
    this cannot handle (solid resources), so the caller recompresses instead."""
    from lxml import etree

    from wimfs.format.xmlinfo import encode_xml
    from wimfs.image import ZERO_HASH

    import fcntl

    from wimfs.errors import BusyError

    with Wim(path) as wim:
        try:
            fcntl.flock(wim.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BusyError(f"{path} is locked by another writer (a read-write mount?)") \
                from None
        if wim.header.total_parts != 1:
            raise WimfsError(f"{path} is part of a split WIM; join it first")
        if any(b.rdesc.is_solid for b in wim.blob_table.blobs.values()):
            return False
        n = wim.image_count
        keep = list(range(1, n + 1)) if keep is None else keep
        counts: dict[bytes, int] = {}
        for i in keep:
            img = wim.image(i)
            for ino in img.inodes:
                for s in (ino.data, ino.reparse, *ino.named_streams.values()):
                    if s is not None and s.hash != ZERO_HASH:
                        counts[s.hash] = counts.get(s.hash, 0) + len(ino.dentries)
        blobs = sorted((b for h, b in wim.blob_table.blobs.items() if h in counts),
                       key=lambda b: b.rdesc.offset_in_wim)
        xml_root = copy.deepcopy(wim.xml_root)
        els = xml_root.findall("IMAGE")
        for el in els:
            xml_root.remove(el)
        for new, i in enumerate(keep, 1):
            el = els[i - 1] if i - 1 < len(els) else etree.Element("IMAGE")
            el.set("INDEX", str(new))
            xml_root.append(el)
        counter = Progress(callback=progress, label="optimizing",
                            total=sum(b.rdesc.size_in_wim for b in blobs))
        out = _Out(path)
        try:
            hdr = copy.deepcopy(wim.header)
            meta: list[WrittenBlob] = []
            for i in keep:
                m = wim.blob_table.metadata[i - 1]
                r = m.rdesc
                off = out.copy_from(wim.fd, r.offset_in_wim, r.size_in_wim, counter)
                meta.append(WrittenBlob(m.hash, m.size, ResourceHeader(
                    r.size_in_wim, r.flags | S.RESHDR_FLAG_METADATA, off,
                    r.uncompressed_size), 1))
            entries: list[WrittenBlob] = []
            for b in blobs:
                r = b.rdesc
                off = out.copy_from(wim.fd, r.offset_in_wim, r.size_in_wim, counter)
                entries.append(WrittenBlob(b.hash, b.size, ResourceHeader(
                    r.size_in_wim, r.flags & ~S.RESHDR_FLAG_METADATA, off,
                    r.uncompressed_size), counts[b.hash]))
            bi = hdr.boot_idx
            hdr.boot_idx = keep.index(bi) + 1 if bi in keep else 0
            hdr.boot_metadata_reshdr = copy.copy(meta[hdr.boot_idx - 1].reshdr) \
                if hdr.boot_idx else ResourceHeader()
            hdr.image_count = len(keep)
            table = blob_table_bytes(entries, [], [], meta)
            # TOTALBYTES of the WIM: where the XML starts (as wimlib writes it)
            tb = xml_root.find("TOTALBYTES")
            if tb is None:
                tb = etree.SubElement(xml_root, "TOTALBYTES")
            tb.text = str(out.pos + len(table))
            with_check = wim.header.integrity_table_reshdr.size_in_wim > 0 \
                if check is None else check
            out.finish(hdr, table, encode_xml(xml_root), with_check)
            out.commit()
        except BaseException:
            out.abort()
            raise
        counter.finish()
        return True
