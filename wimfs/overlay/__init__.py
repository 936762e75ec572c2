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
  multi.py        open_images / ImageSet: several images edited, one commit
  errors.py       FsError (an errno) and the path API's WimfsErrors
"""

from __future__ import annotations

import importlib

# Loaded on first use (PEP 562): the read-only FUSE adapter needs only `ntfs_xattrs`,
# not the writer and the commit machinery behind `Overlay`.
_EXPORTS = {
    "Change": "status", "CommitResult": "commit", "DiffEntry": "status", "FsError": "errors",
    "ImageSession": "paths", "IsADirectoryPathError": "errors", "Kind": "edits",
    "NotADirectoryPathError": "errors", "Overlay": "session", "PathError": "errors",
    "PathExistsError": "errors", "PathStat": "paths", "StagedSource": "staging",
    "open_image": "paths", "ImageSet": "multi", "open_images": "multi",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
