"""Commit a session: validate the request, write the tree into the WIM with the one
writer (new blobs appended, the header written last, so a crash leaves the old WIM),
then adopt the result (streams point at their new blobs, staging files go)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wimfs.builder import NewImage, WimBuilder
from wimfs.errors import WimfsError
from wimfs.format.blobtable import ZERO_HASH
from wimfs.format.header import WimHeader
from wimfs.hooks import stream_reader, windows_xml
from wimfs.image import Image, Inode
from wimfs.overlay.journal import CommitMark
from wimfs.overlay.staging import UNOWNED, StagedSource, is_staged, unlink_all
from wimfs.progress import ProgressCallback
from wimfs.wim import Wim

if TYPE_CHECKING:
    from wimfs.overlay.session import Overlay


@dataclass
class CommitResult:
    new_index: int
    written_bytes: int
    seconds: float
    reused_chunks: int = 0      # compressed chunks copied from the old blobs as stored


def generation_of(hdr: WimHeader) -> str:
    """Identifies one state of a WIM file: a commit changes the blob table's offset."""
    return f"{hdr.guid.hex()}:{hdr.blob_table_reshdr.offset_in_wim}"


def commit(ov: Overlay, *, append: bool = False, name: str | None = None,
           description: str | None = None, check: bool = False,
           open_for_write: Callable[[], set[int]] = set,
           progress: ProgressCallback | None = None, final: bool = False) -> CommitResult:
    """Write the current tree into the WIM (in a worker thread while the FUSE layer holds
    off every change). On failure nothing in the WIM changes. `final`: the session ends
    right after (in-process sessions), so it does not move onto the new WIM."""
    if append and name is None:
        raise WimfsError("--append needs --name for the new image")
    t0 = time.monotonic()
    size_before = os.path.getsize(ov.wim_path)
    if append:
        ov.complete_changed_groups()    # (`diff` does it when it is asked)
    elif not ov.diff():
        return CommitResult(ov.index, 0, 0.0)     # nothing to write
    live = ov.edits.live_inodes()
    stats = _write(ov, live, append, name, description, check, progress)
    if not final:
        _adopt(ov, live, open_for_write(), append)
    return CommitResult(ov.index, os.path.getsize(ov.wim_path) - size_before,
                        time.monotonic() - t0, stats.get("reused_chunks", 0))


def _write(ov: Overlay, live: list[Inode], append: bool, name: str | None,
           description: str | None, check: bool,
           progress: ProgressCallback | None) -> dict[str, int]:
    return write_images([ov], [live], append=append, name=name, description=description,
                        check=check, progress=progress)


def write_images(overlays: list[Overlay], lives: list[list[Inode]], *, append: bool = False,
                 name: str | None = None, description: str | None = None,
                 check: bool = False, progress: ProgressCallback | None = None
                 ) -> dict[str, int]:
    """Write the trees of sessions on one WIM (their live inodes) in ONE commit: each
    replaces its image (or, with `append`, is added). On failure the WIM is unchanged.
    Returns the writer's statistics (reused_chunks)."""
    staged = [src for live in lives for src in _fix_staged_sizes(live)]
    first = overlays[0]
    try:
        b = WimBuilder(first.wim_path, first.wim.header.compression_type,
                       append_to=first.wim, check_integrity=check, progress=progress)
        b.lock = False                  # the session's lock_fd holds the flock
        pre = first.precompressor
        if pre is not None:
            pre.cancel_pending()
            b.memo = pre.memo
            hits = pre.memo.hits

        def mark(hdr: WimHeader) -> None:
            for ov in overlays:
                ov.journal.append(CommitMark(generation_of(hdr)))
                ov.journal.sync()

        b.before_header = mark
        for ov, live in zip(overlays, lives):
            b.add(_new_image(ov, live, append=append, name=name, description=description))
        b.write(replace_index=None if append else [ov.index for ov in overlays])
        if pre is not None:
            b.stats["precompressed_chunks"] = pre.memo.hits - hits
            pre.memo.clear()            # what it held is in the WIM now
        return b.stats
    except OSError as exc:
        raise WimfsError(f"commit failed: {exc.strerror or exc}"
                         f"{': ' + exc.filename if exc.filename else ''}") from None
    finally:
        for src in staged:
            src.fixed_size = None


def _fix_staged_sizes(live: list[Inode]) -> list[StagedSource]:
    """Freeze the sizes of the staged streams for the write: their sources."""
    staged = [s.source for ino in live for s in ino.streams() if is_staged(s)]
    for src in staged:
        src.fixed_size = os.path.getsize(src.path)
    return staged


def _new_image(ov: Overlay, live: list[Inode], *, append: bool = False,
              name: str | None = None, description: str | None = None) -> NewImage:
    """The session's tree as an image for the writer (XML kept unless appended)."""
    tree = ov.image.tree
    img = Image(ov.index, ov.image.security, ov.image.root, live, tree=tree)
    old_el = ov.wim.xml_root.findall("IMAGE")
    el = old_el[ov.index - 1] if ov.index - 1 < len(old_el) else None
    parses = tree.parses if tree is not None else 0
    win, props = windows_xml(img, stream_reader(ov.wim), has_windows=not append and el is not None
                             and el.find("WINDOWS") is not None)
    if tree is not None and tree.parses != parses:
        # Reading the Windows version parsed directories (unchanged ones: their base
        # state is recorded now): the tree to write, and the caller's list, hold them too.
        live[:] = ov.edits.live_inodes()
    for ino in live:
        if not ino.is_directory:
            ino.nlink = ov.edits.file_links(ino)
    return NewImage(img, name=name, description=description,
                    xml_element=None if append else el, windows=win,
                    extra_properties=props, replaced_refs=None if append else ov.base.blob_refs)


def _adopt(ov: Overlay, live: list[Inode], busy: set[int], append: bool) -> None:
    """Switch to the new state: reload the WIM, point committed streams at their new
    blobs and drop their staging files (unless still open for writing)."""
    # Readers may still be using the old Wim in other threads: retire it (closed at
    # the end of the session) instead of closing it under them.
    old_wim = ov.wim
    ov.wim = Wim(ov.wim_path)
    old_wim.reader.drop_cache()
    ov.retired.append(old_wim)
    if append:
        ov.index = ov.wim.image_count
    blobs = ov.wim.blob_table.blobs
    if ov.image.tree is not None:       # directories parsed from now on: the new table
        ov.image.tree.set_blobs(blobs)
    to_delete: list[str] = []
    for ino in live:
        if ino.ino in busy:
            continue
        for s in ino.streams():
            if not isinstance(s.source, (StagedSource, *UNOWNED)):
                continue
            blob = blobs.get(s.hash) if s.hash != ZERO_HASH else None
            if s.hash != ZERO_HASH and blob is None:
                continue
            if isinstance(s.source, StagedSource):
                to_delete.append(s.source.path)
            s.source, s.blob = None, blob
    # Unchanged streams keep their blob descriptors: their bytes did not move.
    for ino in live:
        for s in ino.streams():
            if s.blob is not None and s.source is None:
                nb = blobs.get(s.hash)
                if nb is not None:
                    s.blob = nb
    ov.mark_base()
    ov.rewrite_journal()
    # The journal no longer names the committed staging files: delete them (and any
    # other file nothing uses now) in the background, after the freeze is lifted;
    # thousands of unlinks of flushed files take seconds.
    to_delete += ov.staging_area.unused_files(ov.inodes.values())
    threading.Thread(target=unlink_all, args=(to_delete,), daemon=True,
                     name="wimfs-staging-cleanup").start()
