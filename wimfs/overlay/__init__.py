"""The read-write session of an image: tree edits in memory, copy-on-write of data
streams into a staging directory, a journal for recovery, commit and discard.

`Overlay` is what a read-write FUSE mount drives; `open_image` is the same engine
behind a path API, for editing an image in process (no FUSE).
"""

from __future__ import annotations

from wimfs.overlay.core import CommitResult, DiffEntry, FsError, Overlay, StagedSource
from wimfs.overlay.paths import ImageSession, PathStat, open_image

__all__ = ["CommitResult", "DiffEntry", "FsError", "ImageSession", "Overlay", "PathStat",
           "StagedSource", "open_image"]
