"""The read-write session of an image: tree edits in memory, copy-on-write of data
streams into a staging directory, a journal for recovery, commit and discard.

`Overlay` is what a read-write FUSE mount drives; `open_image` is the same engine
behind a path API, for editing an image in process (no FUSE).

  session.py      Overlay: the facade (freeze check, edit, journal record)
  staging.py      the staging area: copy-up, write, truncate, fsync, unused files
  edits.py        tree edits on the in-memory image (also what journal records replay)
  journal.py      one record type per edit; read, append, rewrite, replay
  ntfs_xattrs.py  the system.ntfs_* names: encode (getxattr) and decode (setxattr)
  status.py       the committed state and diff()
  commit.py       validate, write with the one writer, adopt the result
  paths.py        open_image / ImageSession: the path-level API
  errors.py       FsError (an errno) and the path API's WimfsErrors
"""

from __future__ import annotations

from wimfs.overlay.commit import CommitResult
from wimfs.overlay.edits import Kind
from wimfs.overlay.errors import (FsError, IsADirectoryPathError, NotADirectoryPathError,
                                  PathError, PathExistsError)
from wimfs.overlay.paths import ImageSession, PathStat, open_image
from wimfs.overlay.session import Overlay
from wimfs.overlay.staging import StagedSource
from wimfs.overlay.status import Change, DiffEntry

__all__ = ["Change", "CommitResult", "DiffEntry", "FsError", "ImageSession",
           "IsADirectoryPathError", "Kind", "NotADirectoryPathError", "Overlay", "PathError",
           "PathExistsError", "PathStat", "StagedSource", "open_image"]
