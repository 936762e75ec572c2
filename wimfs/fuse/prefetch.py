"""Read-ahead across small files for read-only mounts: the data of the files a program
is about to open is put into the kernel's page cache (FUSE_NOTIFY_STORE) while the
daemon would otherwise wait for its next request.

Reading a small file through FUSE costs two synchronous trips through the kernel to
the daemon: OPEN, then READ (RELEASE is sent in the background; FLUSH is off). Programs
that copy a tree (`cp -a`, `tar`, `rsync`, `find | xargs cat`) open the files of a
directory one after the other in listing order, the order of the entries in the
metadata resource. When such a program opens a small file, the next few small files of
the same directory are queued; the request loop (wimfs.fuse.loop) pushes them into the
page cache one at a time whenever no request is waiting. When the program opens one of
them, its pages are there (the mount opens files with `keep_cache`) and no READ is sent:
one round trip per file instead of two. Each open of a file pushed ahead doubles the
window (up to `MAX_AHEAD`); an open elsewhere starts over and drops what is queued, so a
program that opens one file costs `FIRST_AHEAD` small decompressions at most.

Only read-only mounts of compact trees (wimfs.image_tree) use it, and only for plain
files of at most `MAX_SIZE` bytes in non-solid resources (a solid chunk is decompressed
on the reader's threads, not in the loop). A file whose data fails to read is skipped:
its READ reports the error as before. The data pushed is what READ would have answered,
checked against its SHA-1 the same way.
"""

from __future__ import annotations

import errno
import logging
from collections import deque
from collections.abc import Callable, Container

from wimfs.errors import WimfsError
from wimfs.image_tree import DirIndex, LazyTree
from wimfs.resource import ResourceReader

log = logging.getLogger(__name__)

FIRST_AHEAD = 4         # files queued ahead on an open that starts a run
MAX_AHEAD = 64          # the most files queued ahead of the last one opened
MAX_SIZE = 64 * 1024    # bigger files are left to the kernel's own read-ahead


class Prefetcher:
    """Queues the small files after the one opened in its directory and pushes them,
    one per `step()`, into the kernel's page cache through `store(ino, offset, data)`
    (pyfuse3.notify_store)."""

    def __init__(self, reader: ResourceReader, store: Callable[[int, int, bytes], None],
                 open_counts: Container[int]) -> None:
        self.reader = reader
        self.store = store
        self.open_counts = open_counts
        self.queue: deque[tuple[LazyTree, int]] = deque()   # (tree, entry offset)
        self._dir: DirIndex | None = None   # the directory of the current run
        self._next = 0                      # its first entry not queued yet
        self._ahead = 0                     # the window of the current run
        self.stats = {"queued": 0, "pushed": 0, "skipped": 0, "failed": 0}
        self.enabled = True

    def opened(self, tree: LazyTree, ino: int) -> None:
        """A plain file `ino` of `tree` was opened: queue what comes after it."""
        if not self.enabled:
            return
        where = tree.position(ino)
        if where is None:
            return
        idx, j = where
        if idx is self._dir and j < self._next:
            self._ahead = min(self._ahead * 2, MAX_AHEAD)     # one pushed ahead was opened
        else:
            self.queue.clear()
            self._dir, self._next, self._ahead = idx, j + 1, FIRST_AHEAD
        end = min(j + 1 + self._ahead, len(idx.offsets))
        offsets = idx.offsets
        for k in range(self._next, end):
            self.queue.append((tree, offsets[k] << 3))
        self.stats["queued"] += max(0, end - self._next)
        self._next = max(self._next, end)

    @property
    def pending(self) -> bool:
        return bool(self.queue)

    def step(self) -> None:
        """Push the next queued file (or skip it: a directory, an empty, big or special
        file, one whose data cannot be read). Never raises: it runs inside the request
        loop's wait, where an exception would end the mount."""
        try:
            self._step()
        except Exception:       # a bug: log it, and read ahead no more
            log.exception("read-ahead failed; it is off for the rest of this mount")
            self.enabled = False
            self.queue.clear()

    def _step(self) -> None:
        tree, off = self.queue.popleft()
        try:
            ino = tree.ino_at(off)
            # Never into an open file: a READ of it may hold the page the store would
            # wait for, and only this loop can answer that READ (a deadlock).
            plain = None if ino in self.open_counts else tree.plain_data(ino)
        except (KeyError, WimfsError):
            plain = None
        stream = plain[1] if plain is not None and not plain[0] else None
        blob = stream.blob if stream is not None else None
        if blob is None or not 0 < blob.size <= MAX_SIZE or blob.rdesc.is_solid:
            self.stats["skipped"] += 1
            return
        try:
            data = self.reader.read(blob, 0, blob.size)
            self.store(ino, 0, data)
        except (WimfsError, OSError) as exc:
            # (a corrupt blob's READ will log it; the kernel may have forgotten the inode)
            self.stats["failed"] += 1
            log.debug("read-ahead of inode %d: %s", ino, exc)
            if isinstance(exc, OSError) and exc.errno == errno.ENOSYS:
                self.enabled = False        # a kernel without FUSE_NOTIFY_STORE
                self.queue.clear()
            return
        self.stats["pushed"] += 1
