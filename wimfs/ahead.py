"""Files about to be added to an image, read and compressed while the image is opened.

`wimfs update IMAGE --add SRC DEST` knows every file it will write before it has opened
the WIM, read its tables and staged the new tree. In C (wimlib) those steps take a few
milliseconds; here they take a quarter of a second of one core, with the compression
threads idle. `CompressAhead`, started as soon as the command line is parsed, reads the
WIM header (compression type, chunk size), starts the compression threads, and reads the
source files in the order the command will stage them, submitting their chunks. The
commit's `ResourceWriter` then takes each file's chunks from here instead of reading and
submitting them itself, and compresses on the same threads. What is written does not
change: the same chunks, compressed with the same settings, in the same order.

Rules:
* A hint only. A file the writer asks for that was not read here (not reached yet, too
  big, unreadable) is read by the writer as before, with its usual errors; a file whose
  size here is not the size the session recorded is dropped and read again.
* Each file is read once: the writer claims the files it reaches first, and this thread
  skips them; a file being read here when the writer reaches it is waited for.
* Bounded: at most `LIMIT` bytes of read chunks wait to be taken; files larger than
  `FILE_LIMIT` are left to the writer.
* Nothing raises out of the thread: a failure ends the reading (logged at debug level).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from wimfs.codec import thread_compressor

log = logging.getLogger(__name__)

LIMIT = 32 << 20            # bytes of read chunks waiting for the writer
FILE_LIMIT = 8 << 20        # larger files are read by the writer
BATCH_BYTES = 256 << 10     # chunks per compression task (as ResourceWriter batches them)
BATCH_CHUNKS = 64


class BatchItem:
    """One chunk's share of a batch task's result (.result() -> compressed chunk)."""

    __slots__ = ("fut", "k")

    def __init__(self, fut: Future, k: int):
        self.fut = fut
        self.k = k

    def result(self) -> bytes:
        return self.fut.result()[self.k]


def compress_chunks(ctype: int, chunk_size: int, level: int, raws: list[bytes]) -> list[bytes]:
    """Each chunk compressed, or the chunk itself when it does not shrink (stored raw)."""
    c = thread_compressor(ctype, chunk_size, level)
    out = []
    for raw in raws:
        z = c.compress(raw)
        out.append(raw if z is None else z)
    return out


class CompressAhead:
    """Reads and compresses `files()` (local paths, in staging order) on a thread of its
    own, for the WIM at `wim_path`. `take` hands a file's chunks to the writer."""

    def __init__(self, wim_path: str, files: Callable[[], Iterable[str]], *,
                 threads: int = 0, level: int = 0) -> None:
        self.threads = threads or os.cpu_count() or 2
        self.level = level
        self.ctype: int | None = None
        self.chunk_size: int | None = None
        self.pool: ThreadPoolExecutor | None = None
        self.stats = {"files": 0, "taken": 0, "missed": 0}
        self._cond = threading.Condition()
        self._decided = threading.Event()      # the header was read (or reading ended)
        self._ready: dict[str, tuple[int, list]] = {}   # path -> (size, [(raw, handle)])
        self._busy: set[str] = set()           # being read, or read but not yet submitted
        self._claimed: set[str] = set()        # the writer reads these itself
        self._held = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, args=(wim_path, files),
                                        name="wimfs-ahead", daemon=True)
        import sys
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(float(os.environ.get("WIMFS_SWITCH", "0.005")))
        self._thread.start()

    # -- the writer's side -------------------------------------------------------------

    def serves(self, ctype: int, chunk_size: int, level: int) -> bool:
        """True if chunks made here are what a writer with these settings would make."""
        self._decided.wait()
        return self.pool is not None and not self._closed and \
            (ctype, chunk_size, level) == (self.ctype, self.chunk_size, self.level)

    def take(self, path: str, size: int) -> list | None:
        """The (raw chunk, handle) pairs of `path` if it was read here whole with `size`
        bytes; otherwise None, and this thread will not read it."""
        with self._cond:
            while path in self._busy:
                self._cond.wait()
            entry = self._ready.pop(path, None)
            if entry is None:
                self._claimed.add(path)
                self.stats["missed"] += 1
                return None
            got, items = entry
            self._held -= got
            self._cond.notify_all()
        if got != size:             # changed since the session looked at it
            self.stats["missed"] += 1
            return None
        self.stats["taken"] += 1
        return items

    def close(self) -> None:
        """Stop reading; drop what was not taken; end the compression threads."""
        with self._cond:
            self._closed = True
            self._ready.clear()
            self._held = 0
            self._cond.notify_all()
        self._thread.join()
        import sys
        sys.setswitchinterval(self._switch)
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        log.debug("added files read ahead: %(files)d, taken by the writer: %(taken)d, "
                  "read by the writer: %(missed)d", self.stats)

    def __enter__(self) -> CompressAhead:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the reading thread ------------------------------------------------------------

    def _run(self, wim_path: str, files: Callable[[], Iterable[str]]) -> None:
        try:
            if self._start(wim_path):
                self._read_all(files())
        except Exception as exc:        # a hint only: the writer does what is left
            log.debug("read-ahead of added files stopped: %s", exc)
        finally:
            self._decided.set()
            with self._cond:
                self._busy.clear()
                self._cond.notify_all()

    def _start(self, wim_path: str) -> bool:
        from wimfs.format import structs as S
        from wimfs.format.header import WimHeader

        fd = os.open(wim_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return False        # (the command says what is wrong with it)
            hdr = WimHeader.parse(os.pread(fd, S.WIM_HEADER_DISK_SIZE, 0))
        finally:
            os.close(fd)
        ctype = hdr.compression_type
        if ctype == S.COMPRESSION_NONE or hdr.wim_version == S.WIM_VERSION_SOLID \
                or hdr.total_parts != 1:
            return False            # nothing to compress ahead (or blobs go solid)
        self.ctype = ctype
        self.chunk_size = hdr.chunk_size    # (a compressed WIM's, checked by parse)
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="wimfs-compress")
        self._decided.set()
        return True

    def _read_all(self, paths: Iterable[str]) -> None:
        cs = self.chunk_size
        pending: list[list] = []        # [raw, handle] cells of the batch being filled
        pending_bytes = 0
        waiting: list[tuple[str, int, list]] = []   # files read whole, not yet published

        def submit() -> None:
            nonlocal pending_bytes
            if pending:
                fut = self.pool.submit(compress_chunks, self.ctype, cs, self.level,
                                       [c[0] for c in pending])
                for k, cell in enumerate(pending):
                    cell[1] = BatchItem(fut, k)
                pending.clear()
                pending_bytes = 0
            # Every chunk of the files read whole is submitted now: hand them out.
            with self._cond:
                for path, size, cells in waiting:
                    self._busy.discard(path)
                    if self._closed:
                        continue
                    self._ready[path] = (size, [(raw, h) for raw, h in cells])
                    self.stats["files"] += 1
                self._cond.notify_all()
            waiting.clear()

        it = iter(paths)
        while True:
            try:
                path = next(it)
            except StopIteration:
                break
            except Exception as exc:        # (the walk failed: hand out what was read)
                log.debug("read-ahead of added files stopped: %s", exc)
                break
            if not self._reserve_room(path, submit):
                if self._closed:
                    break
                continue
            cells: list[list] = []
            try:
                data = _read_whole(path)
            except OSError:
                data = b""
            got = len(data)
            # One read per file, then the chunks: this thread needs the interpreter lock
            # a few times per file, not per chunk, while the main thread is busy.
            for off in range(0, got, cs):
                raw = data if got <= cs else data[off:off + cs]
                cell = [raw, None]
                cells.append(cell)
                pending.append(cell)
                pending_bytes += len(raw)
                if pending_bytes >= BATCH_BYTES or len(pending) >= BATCH_CHUNKS:
                    submit()
            with self._cond:
                self._held += got - FILE_LIMIT      # what is held is what was read
            if cells:
                waiting.append((path, got, cells))
            else:
                # Not for here (empty, too big, unreadable): the writer reads it.
                with self._cond:
                    self._held -= got
                    self._busy.discard(path)
                    self._claimed.add(path)
                    self._cond.notify_all()
        submit()

    def _reserve_room(self, path: str, submit: Callable[[], None]) -> bool:
        """Wait until a file of up to FILE_LIMIT bytes fits in LIMIT; mark `path` busy.
        False: the writer claimed it, it was seen already, or this was closed."""
        with self._cond:
            while True:
                if self._closed or path in self._claimed or path in self._ready \
                        or path in self._busy:
                    return False
                if self._held + FILE_LIMIT <= LIMIT:
                    self._busy.add(path)
                    self._held += FILE_LIMIT
                    return True
                # Hand out what was read before waiting for the writer to take some.
                self._cond.release()
                try:
                    submit()
                finally:
                    self._cond.acquire()
                if self._held + FILE_LIMIT > LIMIT and not self._closed:
                    self._cond.wait()


def _read_whole(path: str) -> bytes:
    """The file's bytes, if it has 1 to FILE_LIMIT of them when opened (else b"")."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not 0 < st.st_size <= FILE_LIMIT:
            return b""
        data = os.read(fd, st.st_size)
        while len(data) < st.st_size:           # a short read
            more = os.read(fd, st.st_size - len(data))
            if not more:
                break
            data += more
        return data
    finally:
        os.close(fd)
