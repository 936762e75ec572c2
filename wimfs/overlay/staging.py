"""The staging area of a session: `data/` holds one file per staged stream.

Copy-on-write is per data stream: the first write or truncate copies that stream into
a staging file (`copy_up`, in a worker thread; it touches no shared state), then the
stream's `source` is a `StagedSource` naming the file until a commit turns it into a
blob. Named streams, reparse data and symlink targets set through the session are
staged whole (`store`).
"""

from __future__ import annotations

import os

from wimfs.format.blobtable import ZERO_HASH
from wimfs.format.xmlinfo import filetime_to_unix_ns, unix_ns_to_filetime
from wimfs.image import Inode, Stream
from wimfs.writer import BytesSource, FileSource

COPY_CHUNK = 1 << 20


class StagedSource(FileSource):
    """The current content of a staged stream (its staging file)."""

    def __init__(self, path: str):
        self.path = path
        self.fixed_size: int | None = None    # set while a commit reads it (no stat each time)

    @property
    def size(self) -> int:  # type: ignore[override]
        if self.fixed_size is not None:
            return self.fixed_size
        return os.path.getsize(self.path)


class LocalSource(FileSource):
    """A local file outside the staging area that a stream takes its content from until
    the commit reads it once (in-process sessions: `wimfs update --add`, as wimlib reads
    its sources at write time, instead of a copy into the staging area first). The
    session never writes, truncates or deletes it: the first write copies it up, as it
    copies up a blob. Not journaled: in-process sessions are never recovered."""

    def read(self, off: int, size: int) -> bytes:
        with open(self.path, "rb") as f:
            return os.pread(f.fileno(), max(0, min(size, self.size - off)), off)


class HeldSource(BytesSource):
    """Content written whole through an in-process session (`ImageSession.write_file`),
    held in memory with its SHA-1 until the commit instead of in a staging file: no
    write, re-read for hashing and unlink of a file, and the same bytes written into
    several images of a set (the same hive edit in every edition) are held once. Never
    written: the first partial write copies it up."""

    def read(self, off: int, size: int) -> bytes:
        return bytes(memoryview(self.data)[off:off + size])


# Sources a session reads but never writes: copy-up copies them like a blob.
UNOWNED = (LocalSource, HeldSource)


def is_staged(stream: Stream | None) -> bool:
    return stream is not None and isinstance(stream.source, StagedSource)


def staged_path(stream: Stream) -> str:
    assert isinstance(stream.source, StagedSource)
    return stream.source.path


class Staging:
    def __init__(self, root: str) -> None:
        self.root = root
        self.data_dir = os.path.join(root, "data")
        os.makedirs(self.data_dir, mode=0o700, exist_ok=True)
        os.chmod(root, 0o700)

    def path(self, name: str) -> str:
        return os.path.join(self.data_dir, name)

    def new_file(self) -> str:
        return self.path(os.urandom(8).hex())

    def copy_up(self, reader, stream: Stream, keep: bool = True) -> str:
        """Copy a stream's content (read through `reader`) into a new staging file."""
        path = self.new_file()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            if keep and isinstance(stream.source, UNOWNED):
                off = 0
                for piece in stream.source.chunks(COPY_CHUNK):
                    os.pwrite(fd, piece, off)
                    off += len(piece)
            elif keep and stream.blob is not None:
                for off in range(0, stream.blob.size, COPY_CHUNK):
                    os.pwrite(fd, reader.read(stream.blob, off, COPY_CHUNK), off)
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        os.close(fd)
        return path

    def store(self, data: bytes) -> str:
        """A new staging file holding `data`."""
        path = self.new_file()
        with open(path, "wb") as f:
            f.write(data)
        return path

    @staticmethod
    def attach(stream: Stream, path: str) -> None:
        """Point a stream at its staging file."""
        _point(stream, StagedSource(path), ZERO_HASH)

    @staticmethod
    def attach_local(stream: Stream, path: str, size: int) -> None:
        """Point a stream at a local file read by the commit (see LocalSource)."""
        _point(stream, LocalSource(path, size), ZERO_HASH)

    @staticmethod
    def attach_held(stream: Stream, data: bytes, digest: bytes) -> None:
        """Point a stream at content held in memory (see HeldSource)."""
        _point(stream, HeldSource(data), digest if data else ZERO_HASH)

    @staticmethod
    def read(stream: Stream, off: int, size: int) -> bytes:
        with open(staged_path(stream), "rb") as f:
            return os.pread(f.fileno(), size, off)

    @staticmethod
    def write(stream: Stream, off: int, data: bytes) -> int:
        fd = os.open(staged_path(stream), os.O_WRONLY | os.O_CLOEXEC)
        try:
            n = os.pwrite(fd, data, off)
        finally:
            os.close(fd)
        stream.size = max(stream.size, off + n)
        return n

    @staticmethod
    def fill(stream: Stream, src_fd: int) -> None:
        """Copy an open file (from its start to its end) into an empty staged stream, in
        the kernel (sendfile: no copy through Python)."""
        fd = os.open(staged_path(stream), os.O_WRONLY | os.O_CLOEXEC)
        try:
            off = 0
            while n := os.sendfile(fd, src_fd, off, COPY_CHUNK * 16):
                off += n
        finally:
            os.close(fd)
        stream.size = off

    @staticmethod
    def truncate(stream: Stream, size: int) -> None:
        os.truncate(staged_path(stream), size)
        stream.size = size

    @staticmethod
    def fsync(stream: Stream) -> None:
        fd = os.open(staged_path(stream), os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @staticmethod
    def mtime(stream: Stream) -> int:
        """The staging file's mtime as a FILETIME (a staged unnamed stream's last write)."""
        return unix_ns_to_filetime(os.stat(staged_path(stream)).st_mtime_ns)

    @staticmethod
    def set_mtime(stream: Stream, filetime: int) -> None:
        ns = filetime_to_unix_ns(filetime)
        try:
            os.utime(staged_path(stream), ns=(ns, ns))
        except OSError:
            pass

    def unused_files(self, inodes) -> list[str]:
        """Staging files no stream of `inodes` uses."""
        used = {os.path.basename(s.source.path) for ino in inodes for s in ino.streams()
                if is_staged(s)}
        return [self.path(n) for n in os.listdir(self.data_dir) if n not in used]

    def staged_bytes(self) -> int:
        total = 0
        for n in os.listdir(self.data_dir):
            try:
                total += os.path.getsize(self.path(n))
            except OSError:
                pass
        return total

    @staticmethod
    def release(ino: Inode) -> None:
        """Delete the staging files of an inode that is gone."""
        unlink_all([s.source.path for s in ino.streams() if is_staged(s)])


def _point(stream: Stream, source: FileSource | BytesSource, digest: bytes) -> None:
    """Make `source` the stream's content (not a blob of the WIM any more)."""
    stream.source = source
    stream.blob = None
    stream.hash = digest
    stream.size = source.size


def unlink_all(paths: list[str]) -> None:
    for p in paths:
        try:
            os.unlink(p)
        except OSError:
            pass
