"""Path-level access to one image, without FUSE: `open_image(wim, index)`.

The session drives the same `Overlay` a read-write mount drives, through the same
methods the FUSE handlers call: a new file or directory inherits its parent's security
descriptor, gets FILE_ATTRIBUTE_ARCHIVE (files) and the current time exactly as one
created through a mount. Content is staged in a private staging directory; leaving the
`with` block normally commits (when something changed) with the mount's crash-safe
in-place commit, an exception discards (the WIM is not touched).

Paths are '/'-separated and relative to the image root (a leading '/' is optional);
lookups are exact-case, `resolve()` looks up case-insensitively as Windows does.
"""

from __future__ import annotations

import errno
import io
import fcntl
import os
import shutil
import stat as _stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from wimfs.errors import PathNotFoundError, WimCorruptError, WimfsError
from wimfs.format.xmlinfo import filetime_to_unix_ns, unix_ns_to_filetime
from wimfs.image import ZERO_HASH, Dentry, Image, Inode, Stream
from wimfs.overlay.blobcache import BlobCache
from wimfs.overlay.commit import CommitResult
from wimfs.overlay.errors import (
    FsError,
    IsADirectoryPathError,
    NotADirectoryPathError,
    PathError,
    path_error,
)
from wimfs.overlay.session import Overlay
from wimfs.overlay.status import DiffEntry
from wimfs.overlay.staging import HeldSource
from wimfs.paths import state_dir
from wimfs.progress import ProgressCallback
from wimfs.wim import Wim

CHUNK = 1 << 20
HOLD_MAX = 64 << 20         # write_file content held in memory up to this size (and
                            # within the blob cache's HELD_LIMIT); beyond, a staging file


@contextmanager
def _errors(path: str) -> Iterator[None]:
    """FsError (the errno the FUSE layer would return) -> a WimfsError naming the path."""
    try:
        yield
    except FsError as exc:
        raise path_error(exc.errno or errno.EIO, path) from None


@dataclass(frozen=True, slots=True)
class PathStat:
    size: int
    is_dir: bool
    attributes: int
    mtime_ns: int


def _split(path: str) -> list[str]:
    return [p for p in path.replace("\\", "/").split("/") if p and p != "."]


def _norm(path: str) -> str:
    return "/" + "/".join(_split(path))


class ImageSession:
    """One image opened for path-level reading (and, with `write`, editing)."""

    def __init__(self, wim_path: str, index: int | None, *, write: bool = True,
                 staging_dir: str | None = None, check: bool = False,
                 progress: ProgressCallback | None = None,
                 lock_fd: int | None = None, blob_cache: BlobCache | None = None) -> None:
        self.writable = write
        self.blob_cache = blob_cache if blob_cache is not None else BlobCache()
        self.check = check
        self.progress = progress
        self.overlay: Overlay | None = None
        self._wim: Wim | None = None
        self._closed = False
        if not write:
            self._wim = Wim(wim_path)
            try:
                self.index = self._wim.resolve_image(index)
                # Read-only: directories are parsed when first used, so a command that
                # reads a few files of a big image parses only the folders on their paths.
                self._image: Image = self._wim.image(self.index, lazy=True)
            except BaseException:
                self._wim.close()
                raise
            return
        parent = staging_dir or os.path.join(state_dir(), "sessions")
        os.makedirs(parent, mode=0o700, exist_ok=True)
        self.staging = os.path.join(parent, os.urandom(8).hex())
        os.makedirs(self.staging, mode=0o700)
        self._alive = hold_session_lock(self.staging)
        try:
            self.overlay = Overlay(wim_path, index, self.staging, lock_fd=lock_fd)
        except BaseException:
            shutil.rmtree(self.staging, ignore_errors=True)
            release_session_lock(self.staging, self._alive)
            raise
        self.index = self.overlay.index
        self.uid, self.gid = os.getuid(), os.getgid()

    # -- life cycle ---------------------------------------------------------------------

    @property
    def image(self) -> Image:
        return self.overlay.image if self.overlay is not None else self._image

    def __enter__(self) -> ImageSession:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._closed:
            return
        if exc_type is None:
            self.commit()
        else:
            self.discard()

    @property
    def changed(self) -> bool:
        return self.overlay is not None and bool(self.overlay.diff())

    def diff(self) -> list[DiffEntry]:
        return self.overlay.diff() if self.overlay is not None else []

    def commit(self) -> CommitResult | None:
        """Write the changes into the WIM (if any) and end the session."""
        self._check_open()
        if self.overlay is None:
            self.close()
            return None
        try:
            return self.overlay.commit(check=self.check, progress=self.progress, final=True)
        finally:
            self.discard()

    def discard(self) -> None:
        """Drop every change and end the session; the WIM stays as it was."""
        if self._closed:
            return
        self._closed = True
        self.drop_edits()
        if self._wim is not None:
            self._wim.close()

    def drop_edits(self) -> None:
        """Discard the overlay's edits and staging, and release the session's lock."""
        if self.overlay is not None:
            self.overlay.discard()
            release_session_lock(self.staging, self._alive)

    close = discard

    def _check_open(self) -> None:
        if self._closed:
            raise WimfsError("the image session is closed")

    def _writable(self) -> Overlay:
        self._check_open()
        if self.overlay is None:
            raise PathError(errno.EROFS, self.image_name, "the image is open read-only")
        return self.overlay

    @property
    def image_name(self) -> str:
        return f"image {self.index}"

    # -- lookups --------------------------------------------------------------------------

    def _lookup(self, path: str) -> Dentry | None:
        self._check_open()
        return self.image.lookup_path(_norm(path))

    def _dentry(self, path: str) -> Dentry:
        d = self._lookup(path)
        if d is None:
            raise PathNotFoundError(f"{_norm(path)}: no such file or directory in the image")
        return d

    def _dir(self, path: str) -> Dentry:
        d = self._dentry(path)
        if d.children is None:
            raise NotADirectoryPathError(f"{_norm(path)}: not a directory")
        return d

    def _parent(self, path: str) -> tuple[Dentry, str]:
        parts = _split(path)
        if not parts:
            raise PathError(errno.EINVAL, "/", "the image root has no parent")
        return self._dir("/".join(parts[:-1])), parts[-1]

    def exists(self, path: str) -> bool:
        return self._lookup(path) is not None

    def is_dir(self, path: str) -> bool:
        d = self._lookup(path)
        return d is not None and d.children is not None

    def listdir(self, path: str = "/") -> list[str]:
        return list(self._dir(path).children or {})

    def stat(self, path: str) -> PathStat:
        ino = self._dentry(path).inode
        return PathStat(0 if ino.is_directory else ino.size, ino.is_directory,
                        ino.attributes, filetime_to_unix_ns(ino.last_write_time))

    def resolve(self, path: str) -> str | None:
        """Case-insensitive lookup (upper-cased comparison, as Windows does): the path
        with the image's own case, or None."""
        self._check_open()
        d = self.image.lookup_path(_norm(path), case_insensitive=True)
        return d.path if d is not None else None

    # -- reading --------------------------------------------------------------------------

    def _stream(self, path: str, stream: str) -> Stream | None:
        ino = self._dentry(path).inode
        if ino.is_directory and not stream:
            raise IsADirectoryPathError(f"{_norm(path)}: is a directory")
        if not stream:
            return ino.data
        s = ino.named_streams.get(stream)
        if s is None:
            raise PathNotFoundError(f"{_norm(path)}: no stream named {stream!r}")
        return s

    def _readable(self, path: str, stream: str) -> Stream | None:
        s = self._stream(path, stream)
        if s is not None and s.missing:
            raise WimCorruptError(f"{_norm(path)}: its data is missing from the WIM (blob "
                                  f"{s.hash.hex()}; a part of a split WIM?)")
        return s

    def _read(self, s: Stream, off: int, size: int) -> bytes:
        if self.overlay is not None:
            return self.overlay.read(s, off, size)
        if s.blob is None:
            return b""
        return self._wim.reader.read(s.blob, off, size)

    def read_file(self, path: str, stream: str = "") -> bytes:
        s = self._readable(path, stream)
        if s is None or s.size == 0:
            return b""
        if isinstance(s.source, HeldSource):
            return s.source.data
        if s.blob is None or (self.overlay is not None and self.overlay.is_staged(s)):
            return self._read(s, 0, s.size)
        data = self.blob_cache.get(s.hash)
        if data is None:
            data = self._read(s, 0, s.size)
            self.blob_cache.put(s.hash, data)
        return data

    def content_hash(self, path: str, stream: str = "") -> bytes | None:
        """The SHA-1 of a stream's content when known without reading it (a blob of the
        WIM, or content written whole), else None."""
        s = self._readable(path, stream)
        if s is None:
            return None
        if (s.blob is not None and s.source is None) or isinstance(s.source, HeldSource):
            return s.hash
        return None

    def open_file(self, path: str) -> io.BufferedReader:
        return io.BufferedReader(_StreamFile(self, self._readable(path, "")), CHUNK)

    # -- writing --------------------------------------------------------------------------

    def mkdirs(self, path: str) -> None:
        ov = self._writable()
        d = self.image.root
        for part in _split(path):
            child = d.lookup(part)
            if child is None:
                with _errors(f"{d.path.rstrip('/')}/{part}"):
                    ino = ov.create(d, part, 0o755, self.uid, self.gid, "dir")
                child = ino.dentries[0]
            elif child.children is None:
                raise NotADirectoryPathError(f"{child.path}: not a directory")
            d = child

    def _file_for_write(self, path: str) -> Inode:
        ov = self._writable()
        parent, name = self._parent(path)
        d = parent.lookup(name)
        if d is None:
            with _errors(_norm(path)):
                return ov.create(parent, name, 0o644, self.uid, self.gid, "file")
        if d.inode.is_directory:
            raise IsADirectoryPathError(f"{_norm(path)}: is a directory")
        return d.inode

    def _emptied_data(self, ino: Inode, local: tuple[str, int] | None = None) -> Stream:
        """The unnamed stream, staged and emptied (as a FUSE open(O_TRUNC) does); with
        `local` (path, size), pointed at that local file instead (see copy_in)."""
        ov = self.overlay
        stream = ino.data
        if stream is None:
            stream = ino.data = Stream("", ZERO_HASH, None, 0)
        if local is not None:
            ov.staging_area.attach_local(stream, *local)   # a staging file it had: unused now
            return stream
        if not ov.is_staged(stream):
            ov.finish_copy_up(ino, "", stream, ov.copy_up(stream, keep=False))
        ov.truncate_staged(stream, 0)
        return stream

    def _write_chunks(self, ino: Inode, chunks) -> None:
        """Replace the unnamed stream's content, as a FUSE open(O_TRUNC) + write would."""
        ov = self.overlay
        stream = self._emptied_data(ino)
        off = 0
        for chunk in chunks:
            off += ov.write(stream, off, chunk)
        ov.note_data_write(ino)

    def write_file(self, path: str, data: bytes, *, stream: str = "") -> None:
        """Create or replace a file's content (or one of its named streams). Content up
        to HOLD_MAX is held in memory until the commit (see HeldSource), interned in the
        blob cache (shared by the images of a set) within its HELD_LIMIT; other content
        goes to a staging file."""
        ino = self._file_for_write(path)
        if stream:
            with _errors(f"{_norm(path)}:{stream}"):
                self.overlay.set_named_stream(ino, stream, bytes(data))
            return
        interned = self.blob_cache.intern(data) if len(data) <= HOLD_MAX else None
        if interned is not None:
            held, digest = interned
            stream_ = ino.data
            if stream_ is None:
                stream_ = ino.data = Stream("", ZERO_HASH, None, 0)
            origin = self.overlay.origin_of(stream_)
            self.overlay.staging_area.attach_held(stream_, held, digest)
            stream_.source.origin = origin      # its unchanged chunks are reused
            self.overlay.note_data_write(ino)
            return
        self._write_chunks(ino, (data[i:i + CHUNK] for i in range(0, len(data), CHUNK)))

    def copy_in(self, path: str, local_path: str, *, deferred: bool = False) -> None:
        """Create or replace a file from a local file (streamed), keeping its mtime.
        `deferred`: the caller keeps the local file as it is until the session ends, so
        the commit reads it once instead of a copy into the staging area now."""
        with open(local_path, "rb") as f:
            st = os.fstat(f.fileno())
            if not _stat.S_ISREG(st.st_mode):
                raise PathError(errno.EINVAL, local_path, "not a regular file")
            ino = self._file_for_write(path)
            if deferred:
                self._emptied_data(ino, local=(local_path, st.st_size))
            else:
                self.overlay.staging_area.fill(self._emptied_data(ino), f.fileno())
            self.overlay.note_data_write(ino)
        self.overlay.set_times(ino, mtime=unix_ns_to_filetime(st.st_mtime_ns))

    def remove(self, path: str, *, recursive: bool = False) -> None:
        ov = self._writable()
        d = self._dentry(path)
        if d.parent is None:
            raise PathError(errno.EBUSY, "/", "cannot remove the image root")
        if d.children and not recursive:
            raise PathError(errno.ENOTEMPTY, d.path)
        self._remove(ov, d)

    def _remove(self, ov: Overlay, d: Dentry) -> None:
        with _errors(d.path):
            if d.children is None:
                ino = ov.unlink(d.parent, d.name)
            else:
                for child in list(d.children.values()):
                    self._remove(ov, child)
                ino = ov.rmdir(d.parent, d.name)
        ov.forget_inode(ino)

    def rename(self, old: str, new: str) -> None:
        ov = self._writable()
        src = self._dentry(old)
        if src.parent is None:
            raise PathError(errno.EBUSY, "/", "cannot rename the image root")
        parent, name = self._parent(new)
        with _errors(f"{_norm(old)} -> {_norm(new)}"):
            replaced = ov.rename(src.parent, src.name, parent, name)
        if replaced is not None:
            ov.forget_inode(replaced)

    def link(self, existing: str, new: str) -> None:
        ov = self._writable()
        ino = self._dentry(existing).inode
        parent, name = self._parent(new)
        with _errors(_norm(new)):
            ov.link(ino, parent, name)


class _StreamFile(io.RawIOBase):
    """A read-only file over one stream of the session's image."""

    def __init__(self, session: ImageSession, stream: Stream | None) -> None:
        self._session = session
        self._stream = stream
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _size(self) -> int:
        return self._stream.size if self._stream is not None else 0

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size()}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buf) -> int:
        n = min(len(buf), self._size() - self._pos)
        if n <= 0:
            return 0
        data = self._session._read(self._stream, self._pos, n)
        buf[:len(data)] = data
        self._pos += len(data)
        return len(data)


def open_image(wim_path: str, index: int | None = None, *, write: bool = True,
               staging_dir: str | None = None, check: bool = False,
               progress: ProgressCallback | None = None) -> ImageSession:
    """Open one image of a WIM for path-level access; use as a context manager
    (commit on normal exit, discard on an exception)."""
    return ImageSession(wim_path, index, write=write, staging_dir=staging_dir, check=check,
                        progress=progress)


# -- sessions a killed process left behind ------------------------------------------------
# An in-process session holds an flock on `<staging>.lock` for its whole life. A session
# whose lock can be taken belongs to a dead process: nothing can resume it (it never
# committed), so `wimfs cleanup` removes its staging directory.

def hold_session_lock(staging: str) -> int:
    fd = os.open(staging + ".lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def release_session_lock(staging: str, fd: int) -> None:
    try:
        os.unlink(staging + ".lock")
    except FileNotFoundError:
        pass
    os.close(fd)


def remove_dead_sessions(parent: str) -> list[str]:
    """Remove the staging directories of sessions whose process is gone; return them."""
    removed = []
    try:
        names = os.listdir(parent)
    except FileNotFoundError:
        return removed
    for name in names:
        path = os.path.join(parent, name)
        if name.endswith(".lock") or not os.path.isdir(path):
            continue
        try:
            fd = os.open(path + ".lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue                          # a live session
        shutil.rmtree(path, ignore_errors=True)
        release_session_lock(path, fd)
        removed.append(path)
    return removed

