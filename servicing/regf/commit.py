"""Hive files: reading the bins data and committing crash-safely.

Every edit records the 4 KiB pages it changes (:meth:`Cells.mark`).  A
commit then either

* patches the file in place (:func:`commit_in_place`) -- when committing
  to the clean file the hive was read from -- with the Windows write-ahead
  protocol ([regf] "Dirty state of a hive", transaction logs):

  1. every other transaction log of the hive is truncated (the primary is
     clean, so they are stale), and an old-format log (base block copy,
     ``DIRT`` bitmap, the changed pages) is written to ``<hive>.LOG1`` and
     fsynced (with its directory if created) -- old format rather than HvLE
     because it needs no Marvin32 hash, which costs ~1 s per 4 MB in pure
     Python; a torn log cannot be used because the primary is only marked
     dirty once the log is durable;
  2. the primary base block is rewritten *dirty* (sequence numbers new/old)
     and fsynced;
  3. the changed pages (and appended bins) are written in place and fsynced;
  4. the base block is rewritten clean (both sequence numbers new, new bins
     size, checksum) and fsynced; the log is then truncated (or removed if
     we created it).

  A crash before 2 leaves the old clean hive (logs are only consulted for a
  dirty primary); a crash after 2 leaves a dirty primary whose complete,
  durable log recovers the new hive (``Hive.open`` replays it, as Windows
  does); after 4 the new hive is clean.  An exclusive ``flock`` is held
  meanwhile (opening takes a shared one).  Cost: a few small writes and four
  fsyncs instead of rewriting 100+ MB;
* or (:func:`write_full`) -- a new hive, another target path, a hive that
  was dirty or recovered from logs at open, or a file that changed under us
  -- writes the whole hive to a temporary file in the same directory,
  fsyncs it, renames it over the target, fsyncs the directory and truncates
  stale logs.
"""

from __future__ import annotations

import mmap
import os
import tempfile

try:
    import fcntl
except ImportError:          # not POSIX
    fcntl = None

from wimfs.fsutil import fsync_dir

from . import logs as _logs
from .errors import RegfError
from .format import BASE_BLOCK_SIZE, HBIN_ALIGN, LOG_BASE_SIZE, BaseBlock

_WINDOW = 1 << 23            # bins read through an 8 MiB sliding mapping
_LOG_FILE_TYPE = 1           # base block file type of a transaction log


def flock(fd: int, exclusive: bool) -> None:
    """Advisory lock (released when *fd* is closed); a no-op where flock is
    unavailable or unsupported by the file system."""
    if fcntl is None:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
    except OSError:
        pass


def read_bins(fd: int, n: int) -> bytearray:
    """The *n* bytes after the base block, read through a sliding 8 MiB
    read-only mapping appended to a bytearray: no zero-fill of a 100+ MB
    buffer first (``bytearray(n)`` + ``readinto`` touch every page twice),
    and at most one window of the file is mapped (resident) at a time."""
    try:
        return _read_bins_mapped(fd, n)
    except (OSError, ValueError):         # a file system without mmap
        data = bytearray(n)
        got = os.preadv(fd, [data], BASE_BLOCK_SIZE) if n else 0
        del data[got:]
        return data


def _read_bins_mapped(fd: int, n: int) -> bytearray:
    data = bytearray()
    pos = 0
    while pos < n:
        ln = min(_WINDOW, n - pos)
        off = BASE_BLOCK_SIZE + pos
        base = off - off % mmap.ALLOCATIONGRANULARITY
        mm = mmap.mmap(fd, ln + off - base, access=mmap.ACCESS_READ, offset=base)
        try:
            mv = memoryview(mm)
            try:
                data += mv[off - base:]
            finally:
                mv.release()
        finally:
            mm.close()
        pos += ln
    return data


def write_full(target: str, header: bytes, data: bytearray) -> None:
    """Write the whole hive to a temporary file renamed over *target*."""
    dirn = os.path.dirname(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=dirn)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.chmod(tmp, os.stat(target).st_mode & 0o7777)
        except FileNotFoundError:
            pass
        os.replace(tmp, target)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise RegfError(f"cannot write {target}: {e.strerror}") from None
    fsync_dir(dirn)
    # The primary is now clean (seq1 == seq2), so Windows ignores the logs;
    # truncate them anyway so no tool replays stale pages over the edit.
    for lp in _logs.find_logs(target):
        try:
            with open(lp, "r+b") as f:
                f.truncate(0)
        except OSError:
            pass


def dirty_runs(pages: set[int], old_bins: int, size: int) -> list[tuple[int, int]]:
    """(offset, length) runs of the hive bins data to write: the 4 KiB
    *pages* below *old_bins* (the file's bins size), merged, and everything
    from *old_bins* to *size*."""
    runs: list[list[int]] = []
    for p in sorted(pages):
        a = p * HBIN_ALIGN
        if a >= old_bins:
            break
        n = min(HBIN_ALIGN, old_bins - a)
        if runs and runs[-1][0] + runs[-1][1] == a:
            runs[-1][1] += n
        else:
            runs.append([a, n])
    if old_bins < size:
        if runs and runs[-1][0] + runs[-1][1] == old_bins:
            runs[-1][1] += size - old_bins
        else:
            runs.append([old_bins, size - old_bins])
    return [(a, n) for a, n in runs]


def commit_in_place(target: str, base: BaseBlock, data: bytearray, pages: set[int],
                    clean_bins: int, old_seq: int) -> bool:
    """Write-ahead commit of the changed *pages* of *data* into the primary
    file *target* (steps 1-4 of the module docstring); *base* carries the
    new sequence number.  Returns False (nothing written) when the file is
    not the clean hive of *clean_bins* bytes of bins and sequence number
    *old_seq* we read, so that the caller falls back to :func:`write_full`."""
    try:
        fd = os.open(target, os.O_RDWR)
    except OSError:
        return False
    try:
        flock(fd, exclusive=True)
        disk = _clean_base_on_disk(fd, clean_bins, old_seq)
        if disk is None:
            return False
        runs = dirty_runs(pages, clean_bins, len(data))
        log1, created = _write_ahead_log(target, base, data, runs)
        disk.seq1 = base.seq1                # dirty: new/old sequence numbers
        _write_base(fd, disk)
        _write_pages(fd, data, runs)
        _write_base(fd, base)
    except OSError as e:
        raise RegfError(f"cannot write {target}: {e.strerror}") from None
    finally:
        os.close(fd)
    _retire_log(log1, created)
    return True


def _clean_base_on_disk(fd: int, clean_bins: int, old_seq: int) -> BaseBlock | None:
    """The file's base block if it still is the clean hive we read."""
    head = os.pread(fd, BASE_BLOCK_SIZE, 0)
    try:
        disk = BaseBlock(head)
    except RegfError:
        return None
    if (len(head) < BASE_BLOCK_SIZE or disk.seq1 != disk.seq2 or not disk.checksum_ok
            or disk.seq2 != old_seq or disk.bins_size != clean_bins
            or os.fstat(fd).st_size < BASE_BLOCK_SIZE + disk.bins_size):
        return None
    return disk


def _find_log1(target: str) -> str | None:
    """An existing ``<hive>.LOG1`` (any case) next to *target*."""
    dirn = os.path.dirname(os.path.abspath(target))
    want = f"{os.path.basename(target).upper()}.LOG1"
    try:
        names = os.listdir(dirn)
    except OSError:
        names = []
    found = None
    for nm in names:
        if nm.upper() == want:
            found = os.path.join(dirn, nm)
    return found


def _write_ahead_log(target: str, base: BaseBlock, data: bytearray,
                     runs: list[tuple[int, int]]) -> tuple[str, bool]:
    """Step 1: stale logs truncated, the pages of *runs* logged durably to
    ``<hive>.LOG1``; returns (its path, whether we created it)."""
    log1 = _find_log1(target)
    created = log1 is None
    if created:
        log1 = f"{target}.LOG1"
    for lp in _logs.find_logs(target):
        if lp != log1:
            with open(lp, "r+b") as f:
                f.truncate(0)
                os.fsync(f.fileno())
    lb = BaseBlock(base.raw)
    lb.seq1 = lb.seq2 = base.seq1
    lb.file_type = _LOG_FILE_TYPE
    lb.bins_size = len(data)
    log = _logs.build_old_log(lb.pack()[:LOG_BASE_SIZE], data, runs)
    lfd = os.open(log1, os.O_RDWR | os.O_CREAT, 0o644 if created else 0o666)
    try:
        os.ftruncate(lfd, 0)
        os.pwrite(lfd, log, 0)
        os.fsync(lfd)
    finally:
        os.close(lfd)
    if created:
        fsync_dir(os.path.dirname(os.path.abspath(target)))
    return log1, created


def _write_base(fd: int, base: BaseBlock) -> None:
    """Steps 2 and 4: the primary's base block (dirty, then clean), durably."""
    os.pwrite(fd, base.pack(), 0)
    os.fsync(fd)


def _write_pages(fd: int, data: bytearray, runs: list[tuple[int, int]]) -> None:
    """Step 3: the changed runs of the bins data, in place, durably."""
    mv = memoryview(data)
    try:
        for a, n in runs:
            os.pwrite(fd, mv[a:a + n], BASE_BLOCK_SIZE + a)
    finally:
        mv.release()
    os.fsync(fd)


def _retire_log(log1: str, created: bool) -> None:
    """After step 4: the log is no longer needed (removed if we created it)."""
    try:
        if created:
            os.unlink(log1)
        else:
            with open(log1, "r+b") as f:
                f.truncate(0)
    except OSError:
        pass
