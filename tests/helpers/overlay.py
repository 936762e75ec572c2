"""Drive a `wimfs.overlay.Overlay` directly (no kernel) the way the FUSE handlers do, and
check its invariants (s3ql's fsck after every t3 test)."""

from __future__ import annotations

import os
import shutil
import tempfile

from wimfs.image import ZERO_HASH, Inode, Stream
from wimfs.overlay import Overlay


def stage(ov: Overlay, ino: Inode, sname: str = "", keep: bool = True) -> Stream:
    """Copy-on-write of one stream, as `RwOperations._stage` does (without the thread)."""
    if sname:
        stream = ino.named_streams[sname]
    else:
        if ino.data is None:
            ino.data = Stream("", ZERO_HASH, None, 0)
        stream = ino.data
    if not ov.is_staged(stream):
        ov.finish_copy_up(ino, sname, stream, ov.copy_up(stream, keep))
    return stream


def write(ov: Overlay, ino: Inode, data: bytes, off: int = 0) -> int:
    """A FUSE write to the unnamed stream."""
    n = ov.write(stage(ov, ino), off, data)
    ov.note_data_write(ino)
    return n


def truncate(ov: Overlay, ino: Inode, size: int) -> None:
    """A FUSE setattr(size) / open(O_TRUNC)."""
    stream = stage(ov, ino, keep=size > 0)
    ov.truncate_staged(stream, size)
    ov.note_data_write(ino)


def read_all(ov: Overlay, stream: Stream | None) -> bytes:
    return ov.read(stream, 0, stream.size) if stream is not None and stream.size else b""


def check_overlay(ov: Overlay) -> None:
    """Invariants of a session: every dentry is in its parent and its inode; link counts
    match the dentries; every live inode is registered; every staged stream's file exists
    in the staging area; replaying the journal into a fresh Overlay gives the same diff()."""
    live: dict[int, Inode] = {}
    for d in ov.image.walk():
        assert d in d.inode.dentries, d
        if d.parent is not None:
            assert d.parent.children[d.name] is d, d
        live.setdefault(id(d.inode), d.inode)
    data_dir = os.path.join(ov.staging, "data")
    for ino in live.values():
        assert ov.inodes.get(ino.ino) is ino, f"inode {ino.ino} not registered"
        if ino.is_directory:
            subdirs = sum(1 for c in ino.dentries[0].children.values() if c.inode.is_directory)
            assert ino.nlink == 2 + subdirs, ino.dentries[0]
        else:
            assert ino.nlink == len(ino.dentries), ino.dentries[0]
        for s in ino.streams():
            if ov.is_staged(s):
                assert os.path.dirname(s.source.path) == data_dir
                assert os.path.getsize(s.source.path) == s.size, ino.dentries[0]
    if ov.journal_path and os.path.exists(ov.journal_path):
        assert replayed_diff(ov) == ov.diff()


def replayed_diff(ov: Overlay):
    """diff() of a fresh Overlay that replays `ov`'s journal (on a copy of the WIM: the
    original is locked by `ov`)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "copy.wim")
        shutil.copyfile(ov.wim_path, copy)
        again = Overlay(copy, ov.index, ov.staging)
        try:
            again.start_journal(resume=True)
            return again.diff()
        finally:
            again.close()
