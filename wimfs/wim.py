"""A WIM file opened for reading: header, blob table, XML and images."""

from __future__ import annotations

import functools
import gc
import logging
import os
import threading

from wimfs.errors import ImageNotFoundError, NotAWimError, WimCorruptError, WimfsError
from wimfs.format import structs as S
from wimfs.format.blobtable import ZERO_HASH, BlobTable, parse_blob_table
from wimfs.format.header import WimHeader
from wimfs.format.integrity import IntegrityTable
from wimfs.format.integrity import verify as verify_integrity
from wimfs.image import Image
from wimfs.image_tree import LazyTree
from wimfs.resource import ResourceReader

log = logging.getLogger(__name__)


class Wim:
    """Read access to one WIM file. Thread-safe for reads."""

    def __init__(self, path: str, cache_size: int | None = None, threads: int = 0,
                 verify_blobs: bool = True) -> None:
        self.path = os.path.abspath(path)
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except IsADirectoryError:
            raise NotAWimError(f"{path}: is a directory, not a WIM file") from None
        try:
            st = os.fstat(self.fd)
            raw = os.pread(self.fd, S.WIM_HEADER_DISK_SIZE, 0)
            try:
                self.header = WimHeader.parse(raw, st.st_size)
            except WimfsError as exc:
                raise type(exc)(f"{path}: {exc}") from None
            self.reader = ResourceReader(self.fd, cache_size if cache_size is not None
                                         else 64 << 20, threads, verify_blobs)
            self.blob_table = self._read_blob_table()
            if cache_size is None:
                self.reader.cache_bytes = self.default_cache_bytes()
            self._images: dict[int, Image] = {}
            self._load_lock = threading.Lock()
        except BaseException:
            os.close(self.fd)
            raise

    def add_ref_parts(self, paths: list[str]) -> None:
        """Make the blobs of other parts of this split WIM readable (--ref). Globs are
        expanded; parts of other WIMs (another GUID) and this file itself are ignored."""
        import glob

        refs = getattr(self, "_refs", None)
        if refs is None:
            refs = self._refs = []
        seen = {os.path.realpath(self.path)} | {os.path.realpath(r.path) for r in refs}
        files: list[str] = []
        for p in paths:
            matches = sorted(glob.glob(p)) if any(c in p for c in "*?[") else [p]
            if not matches:
                raise WimfsError(f"--ref {p}: no such file")
            files += matches
        for p in files:
            if os.path.realpath(p) in seen:
                continue
            seen.add(os.path.realpath(p))
            part = Wim(p, cache_size=0, threads=1, verify_blobs=False)
            if part.header.guid != self.header.guid:
                part.close()
                log.warning("%s: not a part of %s (another GUID); ignored", p, self.path)
                continue
            refs.append(part)
            n = part.header.part_number
            self.reader.part_fds[n] = (part.fd, part.reader.file_size)
            for h, blob in part.blob_table.blobs.items():
                self.blob_table.blobs.setdefault(h, blob)
        self._images.clear()

    def close(self) -> None:
        for r in getattr(self, "_refs", []):
            r.close()
        if self.fd >= 0:
            self.reader.close()
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Wim:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- structure --------------------------------------------------------------

    def _read_reshdr(self, rh, what: str) -> bytes:
        from wimfs.format.blobtable import BlobDescriptor, ResourceDescriptor

        if rh.size_in_wim == 0:
            return b""
        ctype = self.header.compression_type if rh.is_compressed else S.COMPRESSION_NONE
        rdesc = ResourceDescriptor(rh.offset_in_wim, rh.size_in_wim, rh.uncompressed_size,
                                   rh.flags, ctype, self.header.chunk_size)
        if not rh.is_compressed and rh.size_in_wim != rh.uncompressed_size:
            raise WimCorruptError(f"{self.path}: {what} has inconsistent sizes")
        blob = BlobDescriptor(ZERO_HASH, rh.uncompressed_size, 1, rdesc, verified=True)
        try:
            return self.reader.read_all(blob)
        except WimCorruptError as exc:
            raise WimCorruptError(f"{self.path}: cannot read the {what}: {exc}") from None

    def _read_blob_table(self) -> BlobTable:
        data = self._read_reshdr(self.header.blob_table_reshdr, "blob table")
        gc_was_enabled = gc.isenabled()
        gc.disable()     # one object pair per blob: keep the cyclic GC out of it
        try:
            return parse_blob_table(data, self.header,
                                    lambda off, n: self.reader.pread(n, off), lazy=True)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _read_xml(self) -> bytes:
        return self._read_reshdr(self.header.xml_data_reshdr, "XML data")

    # The XML data (and lxml) are loaded on first use: a mount never needs them.
    @functools.cached_property
    def _xml(self) -> tuple:
        from wimfs.format.xmlinfo import parse_xml

        return parse_xml(self._read_xml())

    @functools.cached_property
    def xml_root(self):
        return self._xml[0]

    @functools.cached_property
    def infos(self) -> dict:
        return self._xml[1]

    @functools.cached_property
    def total_bytes(self) -> int | None:
        return self._xml[2]

    def default_cache_bytes(self) -> int:
        """Chunk cache when none is asked for: the kernel's page cache keeps file data,
        so a little suffices."""
        # Chunks of 1 MiB and more (solid resources) go to the spill file instead.
        return 16 << 20

    @property
    def image_count(self) -> int:
        return self.header.image_count

    @property
    def compression_name(self) -> str:
        return S.COMPRESSION_NAMES[self.header.compression_type]

    def info(self, index: int):
        """The image's ImageInfo (from the XML data)."""
        from wimfs.format.xmlinfo import ImageInfo

        return self.infos.get(index) or ImageInfo(index=index)

    def resolve_image(self, index: int | str | None = None, name: str | None = None) -> int:
        """Turn --index/--name into a 1-based index, as DISM and wimlib do."""
        n = self.image_count
        if name is not None:
            for i in range(1, n + 1):
                if self.info(i).name == name:
                    return i
            raise ImageNotFoundError(f"{self.path}: no image named {name!r}")
        if index is None:
            if n == 1:
                return 1
            if n == 0:
                raise ImageNotFoundError(f"{self.path}: the WIM contains no images")
            raise ImageNotFoundError(f"{self.path} contains {n} images: choose one by index "
                                     "or name (IMAGE:N, --index N, --name NAME)")
        try:
            i = int(index)
        except (TypeError, ValueError):
            raise ImageNotFoundError(f"invalid image index {index!r}") from None
        if not 1 <= i <= n:
            raise ImageNotFoundError(f"{self.path}: no image {i} (the WIM has {n} "
                                     f"image{'s' if n != 1 else ''})")
        return i

    def image(self, index: int, ino_start: int = 1, lazy: bool = False) -> Image:
        """Image `index` (cached). Its metadata resource is read and decompressed once;
        `lazy`: directories are parsed on first use (wimfs.image_tree), else the whole
        tree now (WimCorruptError here if any of it is corrupt)."""
        with self._load_lock:
            img = self._images.get(index)
            if img is None:
                img = self._images[index] = self._open_image(index, ino_start)
        if not lazy:
            try:
                img.load_all()
            except WimCorruptError as exc:
                msg = str(exc)
                raise WimCorruptError(msg if msg.startswith(self.path) else
                                      f"{self.path}: {msg}") from None
        return img

    def _open_image(self, index: int, ino_start: int) -> Image:
        if self.header.part_number != 1:
            raise ImageNotFoundError(f"{self.path} is part {self.header.part_number} of a "
                                     "split WIM; open part 1 instead")
        md = self.blob_table.metadata
        if not 1 <= index <= len(md):
            raise WimCorruptError(f"{self.path}: image {index} has no metadata resource")
        try:
            buf = self.reader.read_once(md[index - 1])     # the tree keeps it
        except WimCorruptError as exc:
            raise WimCorruptError(f"{self.path}: image {index}: metadata resource: "
                                  f"{exc}") from None
        try:
            return LazyTree.open(index, buf, self.blob_table.blobs, ino_start)
        except WimCorruptError as exc:
            raise WimCorruptError(f"{self.path}: image {index}: {exc}") from None

    def read_blob(self, blob) -> bytes:
        return self.reader.read_all(blob)

    def verify_integrity(self) -> list[int] | None:
        """None if the WIM has no integrity table, else the list of bad chunks."""
        rh = self.header.integrity_table_reshdr
        if rh.size_in_wim == 0:
            return None
        table = IntegrityTable.parse(self._read_reshdr(rh, "integrity table"))
        end = self.header.blob_table_reshdr.end
        return verify_integrity(table, lambda off, n: self.reader.pread(n, off), end)
