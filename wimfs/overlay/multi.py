"""Several images of one WIM edited in one session and committed together:
`open_images(wim, indexes)`.

The set holds the WIM's flock for its whole life. Images are opened one at a time
(`images.open(index)` gives the same `ImageSession` as `open_image`); leaving an image's
session normally *parks* it: its edited tree and staged data stay for the commit, its
read caches are dropped, so memory holds one image's caches at a time. `commit()` then
writes every changed image in ONE in-place append with the builder's image replacement
(the commit path of a read-write mount): the new blobs once (identical data across
images is stored once, by SHA-1), one new metadata resource per changed image, the blob
table, the XML, and the header last. A crash before the header write leaves the old WIM;
after it, the new one: every image has its change or none has.
"""

from __future__ import annotations

import hashlib
import os
import time

from wimfs.errors import WimfsError
from wimfs.format.blobtable import ZERO_HASH
from wimfs.image import Inode
from wimfs.overlay.blobcache import BlobCache
from wimfs.overlay.commit import CommitResult, write_images
from wimfs.overlay.paths import ImageSession
from wimfs.overlay.session import Overlay, lock_wim
from wimfs.overlay.staging import LocalSource, StagedSource
from wimfs.progress import ProgressCallback


class _Member(ImageSession):
    """One image of an `ImageSet`: commit parks it in the set, discard drops its edits."""

    def __init__(self, owner: ImageSet, index: int) -> None:
        super().__init__(owner.wim_path, index, staging_dir=owner.staging_dir,
                         lock_fd=owner.lock_fd, blob_cache=owner.blob_cache)
        self.owner = owner

    def commit(self) -> None:
        self._check_open()
        self._closed = True
        self.overlay.wim.reader.drop_cache()
        self.owner.parked[self.index] = self


class ImageSet:
    """Images of one WIM open for writing together (see the module doc)."""

    def __init__(self, wim_path: str, indexes: list[int], *,
                 staging_dir: str | None = None, check: bool = False,
                 progress: ProgressCallback | None = None) -> None:
        self.wim_path = os.path.abspath(wim_path)
        self.indexes = list(indexes)
        self.staging_dir = staging_dir
        self.check = check
        self.progress = progress
        self.parked: dict[int, _Member] = {}
        self._current: _Member | None = None
        self.lock_fd = lock_wim(self.wim_path)
        # Editions share most blobs (their SYSTEM hive): read once for the whole set.
        self.blob_cache = BlobCache()
        self._closed = False

    def __enter__(self) -> ImageSet:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()

    def open(self, index: int) -> ImageSession:
        """A session on one image of the set (the previous one must be finished)."""
        if self._closed:
            raise WimfsError("the image set is closed")
        if index not in self.indexes or index in self.parked:
            raise WimfsError(f"image {index} is not open for editing in this set")
        if self._current is not None and not self._current._closed:
            raise WimfsError(f"image {self._current.index} is still open")
        self._current = _Member(self, index)
        return self._current

    def commit(self) -> CommitResult:
        """Write every parked image that changed in one commit; end the set."""
        if self._closed:
            raise WimfsError("the image set is closed")
        try:
            changed = [m.overlay for i, m in sorted(self.parked.items()) if m.overlay.diff()]
            t0, size0 = time.monotonic(), os.path.getsize(self.wim_path)
            if changed:
                _write_all(changed, self.check, self.progress)
            return CommitResult(changed[0].index if changed else 0,
                                os.path.getsize(self.wim_path) - size0,
                                time.monotonic() - t0)
        finally:
            self.discard()

    def discard(self) -> None:
        """Drop every image's edits; the WIM stays as it was."""
        if self._closed:
            return
        self._closed = True
        if self._current is not None:
            self._current.discard()
        for member in self.parked.values():
            member.drop_edits()
        self.parked.clear()
        os.close(self.lock_fd)


def _write_all(overlays: list[Overlay], check: bool,
               progress: ProgressCallback | None) -> None:
    """Commit `overlays`, each of which found changes by its `diff` (which parsed whole
    the hard-link groups whose inodes changed)."""
    lives = [ov.edits.live_inodes() for ov in overlays]
    _prehash(lives)
    write_images(overlays, lives, check=check, progress=progress)


def _prehash(lives: list[list[Inode]]) -> None:
    """Give every staged stream its SHA-1 before the write: the writer then compresses
    data that several images got identically (the same hive edit in every edition) once,
    instead of compressing each copy and dropping all but the first."""
    for live in lives:
        for ino in live:
            for s in ino.streams():
                if isinstance(s.source, (StagedSource, LocalSource)) and s.source.size \
                        and s.hash == ZERO_HASH:
                    sha = hashlib.sha1()
                    with open(s.source.path, "rb") as f:
                        while piece := f.read(1 << 20):
                            sha.update(piece)
                    s.hash = sha.digest()


def open_images(wim_path: str, indexes: list[int], *, staging_dir: str | None = None,
                check: bool = False, progress: ProgressCallback | None = None) -> ImageSet:
    """Open several images of a WIM for editing and one commit (see the module doc);
    use as a context manager (commit on normal exit, discard on an exception)."""
    return ImageSet(wim_path, indexes, staging_dir=staging_dir, check=check,
                    progress=progress)
