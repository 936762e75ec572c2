"""Writing whole WIMs: new files (written to a temporary file, then renamed) and
in-place appends (new data after the old end, the header rewritten last), so the
WIM on disk is valid at every instant and holds the old or the new state.

Used by capture/append, export, optimize, delete --rebuild, split, and by the
commit of read-write mounts.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import logging
import os
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from lxml import etree

from wimfs.errors import BusyError, WimfsError
from wimfs.format import structs as S
from wimfs.format.header import ResourceHeader, WimHeader
from wimfs.format.integrity import compute as compute_integrity
from wimfs.format.metadata import build_metadata
from wimfs.format.blobtable import ZERO_HASH, LazyBlobs
from wimfs.format.xmlinfo import (encode_xml, filetime_now, image_statistics, set_property,
                                  set_text, set_time)
from wimfs.fsutil import fsync_dir
from wimfs.image import Image, Stream, count_blob_refs
from wimfs.progress import Progress, ProgressCallback
from wimfs.writer import (
    DEFAULT_CHUNK_SIZE,
    SOLID_CHUNK_SIZE,
    BlobSource,
    BytesSource,
    ResourceWriter,
    WimBlobSource,
    WrittenBlob,
    blob_table_bytes,
)

log = logging.getLogger(__name__)

COMPRESS_FLAGS = {S.COMPRESSION_NONE: 0,
                  S.COMPRESSION_XPRESS: S.HDR_FLAG_COMPRESSION | S.HDR_FLAG_COMPRESS_XPRESS,
                  S.COMPRESSION_LZX: S.HDR_FLAG_COMPRESSION | S.HDR_FLAG_COMPRESS_LZX,
                  S.COMPRESSION_LZMS: S.HDR_FLAG_COMPRESSION | S.HDR_FLAG_COMPRESS_LZMS}


@dataclass
class NewImage:
    """An image to be written: its tree (streams carry `source` where the bytes come
    from, or a blob of the WIM being appended to), XML fields."""

    image: Image
    name: str | None = None
    description: str | None = None
    xml_element: etree._Element | None = None     # kept from a source WIM (export)
    flags: str | None = None
    extra_properties: dict[str, str] = field(default_factory=dict)
    windows: etree._Element | None = None
    # With replace_index: the blob references of the image replaced, counted before its
    # tree was edited in memory (None: read the old image from the WIM).
    replaced_refs: dict[bytes, int] | None = None


class WimBuilder:
    """Collects images and writes them into a new WIM or appends them to one."""

    def __init__(self, path: str, ctype: int, chunk_size: int | None = None,
                 solid: bool = False, solid_ctype: int = S.COMPRESSION_LZMS,
                 solid_chunk_size: int = SOLID_CHUNK_SIZE, threads: int = 0,
                 progress: ProgressCallback | None = None, append_to=None,
                 check_integrity: bool = False, level: int = 0, header_flags: int = 0) -> None:
        self.path = path
        self.header_flags = header_flags    # extra WIM header flags, e.g. HDR_FLAG_RP_FIX
        self.append_to = append_to          # an open wimfs.wim.Wim for in-place appends
        self.ctype = ctype
        self.chunk_size = chunk_size or DEFAULT_CHUNK_SIZE[ctype]
        self.solid = solid
        self.solid_ctype = solid_ctype
        self.solid_chunk_size = solid_chunk_size
        self.threads = threads
        self.progress = progress        # ProgressEvent reports of the write
        self.check_integrity = check_integrity
        self.level = level
        self.images: list[NewImage] = []
        self.boot_index: int | None = None
        self.on_skip: Callable[[str, Exception], bool] | None = None
        # Take flock() on the WIM for an append (False when the caller holds it already).
        self.lock = True
        # Called with the final header after all data is on disk, before the header write
        # (read-write mounts journal the commit there).
        self.before_header: Callable[[WimHeader], None] | None = None
        self._replace: list[int] = []
        # Copy resources of other WIMs as stored when their compression already fits
        # (export, optimize); False recompresses everything (--recompress).
        self.raw_copy = True
        self.stats: dict[str, int] = {}     # the writer's statistics after write()
        self.memo = None                    # a wimfs.chunkmemo.ChunkMemo to take from

    def add(self, new: NewImage) -> None:
        self.images.append(new)

    # -- the write --------------------------------------------------------------

    def write(self, keep_images: list[int] | None = None,
              replace_index: int | list[int] | None = None) -> None:
        """Write. For a new file, `keep_images` are not used; for an append, the
        existing images listed stay (default: all). With `replace_index`, the first added
        image takes the place of that existing image (commit of a read-write mount); a
        list replaces one existing image per added image, in order (open_images)."""
        if self.append_to is not None:
            self._replace = [replace_index] if isinstance(replace_index, int) else \
                list(replace_index or [])
            self._append(keep_images)
        else:
            self._write_new()

    def _write_new(self) -> None:
        d = os.path.dirname(os.path.abspath(self.path)) or "."
        fd, tmp = tempfile.mkstemp(prefix=".wimfs-", suffix=".tmp", dir=d)
        try:
            os.fchmod(fd, 0o644 & ~_umask())
            hdr = WimHeader(flags=COMPRESS_FLAGS[self.ctype if not self.solid else
                                                  self.solid_ctype] | self.header_flags,
                            chunk_size=self.chunk_size if self.ctype else 0,
                            guid=uuid.uuid4().bytes)
            if self.solid:
                hdr.wim_version = S.WIM_VERSION_SOLID
                hdr.chunk_size = DEFAULT_CHUNK_SIZE[self.solid_ctype]
                # The metadata resources are compressed with the header's type.
                self.ctype = self.solid_ctype
                self.chunk_size = hdr.chunk_size
            os.pwrite(fd, hdr.build(), 0)
            xml_root = etree.Element("WIM")
            self._write_body(fd, S.WIM_HEADER_DISK_SIZE, hdr, xml_root, [], [], [], [])
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.replace(tmp, self.path)
            fsync_dir(d)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    def _append(self, keep_images: list[int] | None) -> None:
        wim = self.append_to
        try:
            fd = os.open(wim.path, os.O_RDWR | os.O_CLOEXEC)
        except PermissionError as exc:
            raise WimfsError(f"{wim.path}: cannot write: {exc.strerror}") from None
        try:
            try:
                if self.lock:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise BusyError(f"{wim.path} is locked by another writer (a read-write "
                                "mount?)") from None
            hdr = copy.deepcopy(wim.header)
            hdr.flags |= self.header_flags
            if hdr.total_parts != 1:
                raise WimfsError("cannot modify a split WIM; join it first")
            self.ctype = hdr.compression_type
            self.chunk_size = hdr.chunk_size or DEFAULT_CHUNK_SIZE[self.ctype]
            if hdr.wim_version == S.WIM_VERSION_SOLID:
                self.solid = True
                self.solid_ctype = S.COMPRESSION_LZMS
            end = os.fstat(fd).st_size
            # Existing blobs and solid resources carry over unchanged.
            old_entries, solid, solid_usizes, rdesc_group = [], [], [], {}
            blobs = wim.blob_table.blobs
            # A table of plain blobs whose descriptors were never all made is carried
            # over as stored (`_write_body`), without an object per blob.
            old_rows = blobs if isinstance(blobs, LazyBlobs) and not blobs.made_whole \
                else None
            for blob in (() if old_rows is not None else blobs.values()):
                r = blob.rdesc
                if r.is_solid:
                    gi = rdesc_group.get(id(r))
                    if gi is None:
                        gi = rdesc_group[id(r)] = len(solid)
                        solid.append(ResourceHeader(r.size_in_wim, S.RESHDR_FLAG_SOLID,
                                                    r.offset_in_wim,
                                                    S.SOLID_RESOURCE_MAGIC_NUMBER))
                        solid_usizes.append(r.uncompressed_size)
                    rh = ResourceHeader(blob.size, S.RESHDR_FLAG_SOLID, blob.offset_in_res,
                                        blob.size)
                    old_entries.append(WrittenBlob(blob.hash, blob.size, rh, blob.refcnt,
                                                   solid_group=gi))
                else:
                    rh = ResourceHeader(r.size_in_wim, r.flags & ~S.RESHDR_FLAG_METADATA,
                                        r.offset_in_wim, r.uncompressed_size)
                    old_entries.append(WrittenBlob(blob.hash, blob.size, rh, blob.refcnt))
            keep = list(range(1, wim.image_count + 1)) if keep_images is None else keep_images
            old_meta = []
            xml_root = copy.deepcopy(wim.xml_root)
            images_el = xml_root.findall("IMAGE")
            for el in images_el:
                xml_root.remove(el)
            for new_index, i in enumerate(keep, 1):
                m = wim.blob_table.metadata[i - 1]
                r = m.rdesc
                old_meta.append(WrittenBlob(m.hash, m.size, ResourceHeader(
                    r.size_in_wim, r.flags | S.RESHDR_FLAG_METADATA, r.offset_in_wim,
                    r.uncompressed_size), 1))
                el = images_el[i - 1] if i - 1 < len(images_el) else etree.Element("IMAGE")
                el.set("INDEX", str(new_index))
                xml_root.append(el)
            if hdr.boot_idx and hdr.boot_idx in keep:
                hdr.boot_idx = keep.index(hdr.boot_idx) + 1
            elif hdr.boot_idx:
                hdr.boot_idx = 0
            header_written = []
            user_hook = self.before_header

            def hook(h: WimHeader) -> None:
                if user_hook is not None:
                    user_hook(h)
                header_written.append(True)

            self.before_header = hook
            try:
                self._write_body(fd, end, hdr, xml_root, old_entries, solid, solid_usizes,
                                 old_meta, old_rows)
            except BaseException:
                # Nothing points at the appended bytes yet: cut them off again so a
                # failed append leaves the file as it was.
                if not header_written:
                    try:
                        os.ftruncate(fd, end)
                    except OSError:
                        pass
                raise
            finally:
                self.before_header = user_hook
        finally:
            os.close(fd)

    def _write_body(self, fd: int, offset: int, hdr: WimHeader, xml_root,
                    entries: list[WrittenBlob], solid, solid_usizes,
                    metadata: list[WrittenBlob], old_rows: LazyBlobs | None = None) -> None:
        """`entries`: the blobs carried over as objects; `old_rows`: a table of plain
        blobs carried over as stored instead (reference counts patched)."""
        known = _Known({e.hash: e for e in entries}, old_rows)
        flushing: _EarlySync | None = None
        progress = Progress(label="writing", callback=self.progress)
        rw = ResourceWriter(fd, offset, self.ctype, self.chunk_size, self.threads, progress,
                            self.level)
        rw.memo = self.memo
        rw.solid_resources = list(solid)
        rw.solid_usizes = list(solid_usizes)
        try:
            streams = [s for ni in self.images for s in _all_streams(ni.image)]
            progress.total = sum(_source(s).size for s in streams
                                 if _source(s) is not None and s.hash not in known)
            new_entries = self._write_blobs(rw, streams, known)
            # The blobs start on their way to the disk while the metadata is built: the
            # fsync before the header then has little left to wait for.
            flushing = _EarlySync(fd)
            entries = entries + new_entries
            # Reference counts: one per dentry referencing the blob in the new images,
            # added to what the kept entries already count.
            counts: dict[bytes, int] = {}
            for ni in self.images:
                count_blob_refs(ni.image.inodes, counts)
            for k, replaced in enumerate(self._replace if self.append_to is not None else []):
                for h, n in self._old_refs(replaced, self.images[k]).items():
                    counts[h] = counts.get(h, 0) - n
            for e in entries:
                e.refcnt = max(0, e.refcnt + counts.get(e.hash, 0))
            carried = old_rows.table_rows(counts) if old_rows is not None else b""
            # Metadata resources.
            for k, ni in enumerate(self.images):
                raw = build_metadata(ni.image.security, ni.image.root)
                src = BytesSource(raw)
                if k < len(self._replace):
                    # The chunks the edit left as they were are taken from the replaced
                    # image's metadata resource as stored, not compressed again.
                    old_md = self.append_to.blob_table.metadata[self._replace[k] - 1]
                    src.origin = WimBlobSource(self.append_to.reader, old_md)
                rh, digest = rw.write_blobs([src], compress=True,
                                            flags=S.RESHDR_FLAG_METADATA)[0]
                wb = WrittenBlob(digest, len(raw), rh, 1)
                if k < len(self._replace):
                    pos = self._replace[k] - 1
                    metadata[pos] = wb
                    old_el = xml_root.findall("IMAGE")[pos]
                    xml_root.replace(old_el, self._xml_image(ni, pos + 1))
                else:
                    metadata.append(wb)
                    xml_root.append(self._xml_image(ni, len(metadata)))
            # Blob table, XML, integrity table, header.
            table = carried + blob_table_bytes(entries, rw.solid_resources, rw.solid_usizes,
                                               metadata)
            hdr.blob_table_reshdr, _ = rw.write_buffer(table, compress=False,
                                                       flags=S.RESHDR_FLAG_METADATA)
            set_text(xml_root, "TOTALBYTES", rw.pos)
            hdr.xml_data_reshdr, _ = rw.write_buffer(encode_xml(xml_root), compress=False,
                                                     flags=S.RESHDR_FLAG_METADATA)
            hdr.image_count = len(metadata)
            if self.boot_index is not None:
                hdr.boot_idx = self.boot_index
            if hdr.boot_idx > hdr.image_count:
                hdr.boot_idx = 0
            hdr.boot_metadata_reshdr = copy.copy(metadata[hdr.boot_idx - 1].reshdr) \
                if hdr.boot_idx else ResourceHeader()
            if self.check_integrity:
                end = hdr.blob_table_reshdr.end
                table = compute_integrity(lambda off, n: os.pread(fd, n, off), end).build()
                hdr.integrity_table_reshdr = ResourceHeader(len(table), 0, rw.pos, len(table))
                rw._write(table)
            else:
                hdr.integrity_table_reshdr = ResourceHeader()
            flushing.wait()         # (raises what it met: a later fsync may not)
            flushing = None
            os.ftruncate(fd, rw.pos)
            os.fsync(fd)
            if self.before_header is not None:
                self.before_header(hdr)
            os.pwrite(fd, hdr.build(), 0)
            os.fsync(fd)
            progress.finish()
        finally:
            if flushing is not None:
                flushing.thread.join()
            rw.close()
            self.stats = dict(rw.stats)

    def _old_refs(self, index: int, ni: NewImage) -> dict[bytes, int]:
        """Blob references of the existing image `index` that `ni` replaces."""
        if ni.replaced_refs is not None:
            return ni.replaced_refs
        return count_blob_refs(self.append_to.image(index).inodes)

    def _write_blobs(self, rw: ResourceWriter, streams: list[Stream],
                     known: dict[bytes, WrittenBlob]) -> list[WrittenBlob]:
        new: list[WrittenBlob] = []
        # Streams whose hash is known in advance (export) are deduplicated before writing.
        todo: list[Stream] = []
        seen_ids: set[int] = set()
        seen_hashes: set[bytes] = set()
        for s in streams:
            src = _source(s)
            if src is None or id(src) in seen_ids:
                continue
            seen_ids.add(id(src))
            if s.hash != ZERO_HASH:
                if s.hash in known or s.hash in seen_hashes:
                    continue
                seen_hashes.add(s.hash)
            todo.append(s)
        if self.solid:
            return self._write_solid(rw, todo, known)
        if self.raw_copy:
            rest = []
            for s in todo:
                src = _source(s)
                if s.hash != ZERO_HASH and rw.can_copy_raw(src):
                    rh = rw.copy_raw(src)
                    wb = WrittenBlob(s.hash, s.size, rh, 0)
                    known[s.hash] = wb
                    new.append(wb)
                else:
                    rest.append(s)
            todo = rest
        pending_hashes: dict[bytes, WrittenBlob] = {}

        def is_known(h: bytes) -> bool:
            return h in known or h in pending_hashes

        batch = 256
        for i in range(0, len(todo), batch):
            part = todo[i:i + batch]
            results = rw.write_blobs([_source(s) for s in part], known=is_known,
                                     on_error=self._on_error)
            for s, (rh, digest) in zip(part, results):
                if digest is None:        # skipped unreadable file
                    s.hash, s.size, s.source = ZERO_HASH, 0, None
                    continue
                if s.hash != ZERO_HASH and s.hash != digest:
                    raise WimfsError(f"{_source(s).describe()}: content does not match its "
                                     "SHA-1")
                s.hash = digest
                if rh is not None:
                    wb = WrittenBlob(digest, s.size, rh, 0)
                    pending_hashes[digest] = wb
                    new.append(wb)
        known.update(pending_hashes)
        # Streams sharing a source object got their hash through the first one.
        _propagate_hashes(streams)
        return new

    def _write_solid(self, rw: ResourceWriter, todo: list[Stream],
                     known: dict[bytes, WrittenBlob]) -> list[WrittenBlob]:
        # Solid resources need hashes first (blobs are packed back to back).
        unique: dict[bytes, BlobSource] = {}
        for s in todo:
            src = _source(s)
            if s.hash == ZERO_HASH:
                try:
                    s.hash = _hash_source(src)
                except (OSError, WimfsError) as exc:
                    if self._on_error(src, exc):
                        s.hash, s.size, s.source = ZERO_HASH, 0, None
                        continue
                    raise
            if s.hash not in known and s.hash not in unique:
                unique[s.hash] = src
        _propagate_hashes(todo)
        # Sort by size class then name-ish key, as compressors like similar data together.
        items = list(unique.items())
        written = rw.write_solid(items, self.solid_ctype, self.solid_chunk_size)
        gi = len(rw.solid_resources) - 1
        new = [WrittenBlob(h, rh.uncompressed_size, rh, 0, solid_group=gi) for h, rh in written]
        for wb in new:
            known[wb.hash] = wb
        return new

    def _on_error(self, src: BlobSource, exc: Exception) -> bool:
        if self.on_skip is not None:
            return self.on_skip(src.describe(), exc)
        return False

    def _xml_image(self, ni: NewImage, index: int):
        el = copy.deepcopy(ni.xml_element) if ni.xml_element is not None else \
            etree.Element("IMAGE")
        el.set("INDEX", str(index))
        dirs, files, total, hard = image_statistics(ni.image)
        now = filetime_now()
        for tag, val in (("DIRCOUNT", dirs), ("FILECOUNT", files), ("TOTALBYTES", total),
                         ("HARDLINKBYTES", hard)):
            set_text(el, tag, val)
        if el.find("CREATIONTIME") is None:
            set_time(el, "CREATIONTIME", now)
        set_time(el, "LASTMODIFICATIONTIME", now)
        if ni.windows is not None:
            old = el.find("WINDOWS")
            if old is not None:
                el.remove(old)
            el.append(ni.windows)
        if ni.name is not None:
            set_text(el, "NAME", ni.name)
        if ni.description is not None:
            set_text(el, "DESCRIPTION", ni.description)
        if ni.flags is not None:
            set_text(el, "FLAGS", ni.flags)
        for k, v in ni.extra_properties.items():
            set_property(el, k, v)
        return el


class _Known(dict):
    """The blobs a write need not store: those written or carried over by hash, and
    (`rows`) those of a table carried over as stored."""

    def __init__(self, entries: dict[bytes, WrittenBlob], rows: LazyBlobs | None) -> None:
        super().__init__(entries)
        self.rows = rows

    def __contains__(self, h) -> bool:
        return dict.__contains__(self, h) or (self.rows is not None and
                                             self.rows.size_of(h) is not None)


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def _source(s: Stream) -> BlobSource | None:
    return s.source


class _EarlySync:
    """fdatasync on a thread of its own. Its error is raised by `wait`: after a failed
    fsync, Linux may not report the same lost write to the next one."""

    def __init__(self, fd: int) -> None:
        self.error: OSError | None = None
        self.thread = threading.Thread(target=self._run, args=(fd,), name="wimfs-fdatasync")
        self.thread.start()

    def _run(self, fd: int) -> None:
        try:
            os.fdatasync(fd)
        except OSError as exc:
            self.error = exc

    def wait(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error


def _all_streams(img: Image):
    for ino in img.inodes:
        if ino.dentries:
            yield from ino.streams()


def _propagate_hashes(streams: list[Stream]) -> None:
    by_src: dict[int, Stream] = {}
    for s in streams:
        if s.source is not None and s.hash != ZERO_HASH:
            by_src.setdefault(id(s.source), s)
    for s in streams:
        if s.source is not None and s.hash == ZERO_HASH and s.size:
            first = by_src.get(id(s.source))
            if first is not None:
                s.hash = first.hash


def _hash_source(src: BlobSource) -> bytes:
    sha = hashlib.sha1()
    n = 0
    for piece in src.chunks(1 << 20):
        sha.update(piece)
        n += len(piece)
    if n != src.size:
        raise WimfsError(f"{src.describe()}: size changed while being read")
    return sha.digest() if n else ZERO_HASH


def attach_wim_sources(img: Image, reader) -> None:
    """Make every stream of `img` (read from a WIM) readable as a BlobSource."""
    for s in _all_streams(img):
        if s.blob is not None:
            s.source = WimBlobSource(reader, s.blob)


__all__ = ["WimBuilder", "NewImage", "attach_wim_sources"]
