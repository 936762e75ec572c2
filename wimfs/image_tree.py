"""Lazy loading of an image's tree: a directory is parsed from the (decompressed, kept)
metadata resource the first time its entries are used, not at mount.

`LazyTree.open()` parses the security data and the root dentry only. Each directory
dentry starts with an `Unparsed` marker (its entry list's offset); `Dentry.children`
calls `parse_directory`, which builds that directory's children (dentries, inodes,
streams) and nothing below. The image model is the one of wimfs.image: a fully walked
lazy image equals one built whole.

What needs the whole tree is answered without building it:
  * the link count of a hard-linked file: one scan of the dentry headers (no objects)
    counts every group, the first time a hard link is met;
  * the link count of a directory not parsed yet: its entry headers are scanned, counting
    subdirectories.
Corrupt entries found late (a cycle, an entry outside the resource) raise WimCorruptError
from the directory's `children`, every time it is asked for; the rest of the tree stays
usable.
"""

from __future__ import annotations

import gc
import logging
import struct

from wimfs.errors import WimCorruptError
from wimfs.format import structs as S
from wimfs.format.blobtable import BlobDescriptor
from wimfs.format.metadata import (DentryTreeReader, DiskDentry, _read_dentry,
                                   parse_security_data)
from wimfs.image import Dentry, Image, Inode, Unparsed, inode_from_disk, name_is_valid

log = logging.getLogger(__name__)

_u64 = struct.Struct("<Q")
_HEAD = struct.Struct("<QI4xQ")             # length, attributes, subdir_offset
_u16 = struct.Struct("<H")
_LINK_ID_AT = 0x58                          # the hard link group id (non-reparse dentries)
_NUM_EXTRA_AT = 0x60                        # the number of extra stream entries
_DIR = S.FILE_ATTRIBUTE_DIRECTORY
_RP = S.FILE_ATTRIBUTE_REPARSE_POINT


class LazyTree:
    """Parses one image's directories on demand; owns the inode table (number -> Inode)
    of everything parsed so far."""

    def __init__(self, index: int, buf: bytes | bytearray, blobs: dict[bytes, BlobDescriptor],
                 ino_start: int = 1, what: str = "") -> None:
        self.index = index
        self.buf = buf
        self.blobs = blobs
        self.next_ino = ino_start
        self.what = what or f"image {index}"
        self.inodes: dict[int, Inode] = {}
        self.invalid: list[str] = []
        self._groups: dict[tuple[int, int], Inode] = {}
        self._group_counts: dict[tuple[int, int], int] | None = None
        self._seen: set[int] = set()     # entry lists parsed (a second visit is a cycle)
        self._reader = DentryTreeReader(buf, 0)
        self.root_list = 0               # offset of the root directory's entries
        self.unparsed = 0                # directories not parsed yet

    @classmethod
    def open(cls, index: int, buf: bytes | bytearray, blobs: dict[bytes, BlobDescriptor],
             ino_start: int = 1, what: str = "") -> Image:
        """The image with its root parsed and every directory still on disk."""
        tree = cls(index, buf, blobs, ino_start, what)
        security, root_off = parse_security_data(buf)
        d, _ = _read_dentry(buf, root_off)
        if d is None:
            raise WimCorruptError("image has no root directory")
        if not d.is_directory:
            raise WimCorruptError("the root of the image is not a directory")
        tree.root_list = d.subdir_offset
        root = tree._dentry(d, None)
        return Image(index, security, root, None, tree=tree)

    # -- building ------------------------------------------------------------------------

    def _new_inode(self, d: DiskDentry) -> Inode:
        ino = inode_from_disk(self.next_ino, d, self.blobs)
        self.next_ino += 1
        self.inodes[ino.ino] = ino
        return ino

    def _inode_for(self, d: DiskDentry) -> Inode:
        gid = d.hard_link_group_id
        if gid and not d.is_directory:
            key = (gid, d.attributes)
            ino = self._groups.get(key)
            if ino is None:
                ino = self._groups[key] = self._new_inode(d)
                ino.nlink = self._group_count(key)
            return ino
        ino = self._new_inode(d)
        ino.nlink = 1
        return ino

    def _dentry(self, d: DiskDentry, parent: Dentry | None) -> Dentry:
        ino = self._inode_for(d)
        pending = None
        if d.is_directory:
            pending = Unparsed(self, d.subdir_offset)
            self.unparsed += 1
            ino.nlink = None        # type: ignore[assignment]  (counted when asked)
        node = Dentry(d.name if parent is not None else "", d.short_name, ino, parent, pending)
        ino.dentries.append(node)
        return node

    def _read_list(self, offset: int, parent: Dentry) -> list[DiskDentry]:
        if offset in self._seen:
            raise WimCorruptError(f"{self.what}: directory {parent.path} is cyclic (its "
                                  f"entries at {offset} are reachable twice)")
        return self._reader.entries_at(offset)

    def parse_directory(self, parent: Dentry, pending: Unparsed) -> dict[str, Dentry]:
        """Parse `parent`'s entries (the first use of its `children`)."""
        offset = pending.offset
        children: dict[str, Dentry] = {}
        if offset:
            try:
                entries = self._read_list(offset, parent)
            except WimCorruptError as exc:
                msg = str(exc) if str(exc).startswith(self.what) else f"{self.what}: " \
                    f"directory {parent.path}: {exc}"
                log.error("%s", msg)
                raise WimCorruptError(msg) from None
            self._seen.add(offset)
            gc_was_enabled = gc.isenabled()
            gc.disable()        # thousands of new objects: keep the cyclic GC out of it
            try:
                self._add_children(parent, entries, children)
            finally:
                if gc_was_enabled:
                    gc.enable()
        parent._children = children
        parent.inode.nlink = 2 + sum(1 for c in children.values() if c.inode.is_directory)
        self.unparsed -= 1
        if not self.unparsed:
            self.buf = self._reader.buf = b""   # every directory is parsed: not needed again
        log.debug("%s: parsed directory %s (%d entries)", self.what, parent.path, len(children))
        return children

    def _add_children(self, parent: Dentry, entries: list[DiskDentry],
                      children: dict[str, Dentry]) -> None:
        for c in entries:
            if not name_is_valid(c.name):
                self._skip(parent, c.name, "")
                continue
            if c.name in children:
                self._skip(parent, c.name, " (duplicate)")
                continue
            children[c.name] = self._dentry(c, parent)

    def _skip(self, parent: Dentry, name: str, why: str) -> None:
        self.invalid.append(f"{parent.path.rstrip('/')}/{name!r}{why}")
        log.warning("%s: ignoring %s %r in %s", self.what,
                    "duplicate name" if why else "entry with invalid name", name, parent.path)

    # -- counting without building ---------------------------------------------------------

    def _heads(self, offset: int):
        """(attributes, subdir_offset, hard link id) of each entry of the list at `offset`,
        from the fixed part of the dentries only; stops quietly at anything malformed
        (parsing the directory reports it)."""
        buf, end = self.buf, len(self.buf)
        while offset and offset + S.DENTRY_DISK_SIZE <= end:
            length, attributes, sub = _HEAD.unpack_from(buf, offset)
            if length == 0 or length < S.DENTRY_DISK_SIZE or offset + length > end:
                return
            link = 0 if attributes & _RP else _u64.unpack_from(buf, offset + _LINK_ID_AT)[0]
            n_extra = _u16.unpack_from(buf, offset + _NUM_EXTRA_AT)[0]
            yield attributes, sub, link
            offset += (length + 7) & ~7
            for _ in range(n_extra):
                if offset + 8 > end:
                    return
                slen = _u64.unpack_from(buf, offset)[0]
                if slen < S.EXTRA_STREAM_DISK_SIZE:
                    return
                offset += (slen + 7) & ~7

    def count_nlink(self, offset: int) -> int:
        """The link count of a directory not parsed yet: 2 + its subdirectories."""
        return 2 + sum(1 for attrs, _s, _l in self._heads(offset)
                       if attrs & _DIR and not attrs & _RP)

    def _group_count(self, key: tuple[int, int]) -> int:
        if self._group_counts is None:
            counts: dict[tuple[int, int], int] = {}
            stack = [self.root_list] if self.root_list else []
            seen: set[int] = set()
            while stack:
                off = stack.pop()
                if off in seen:
                    continue
                seen.add(off)
                for attrs, sub, link in self._heads(off):
                    if attrs & _DIR and not attrs & _RP:
                        if sub:
                            stack.append(sub)
                    elif link:
                        counts[(link, attrs)] = counts.get((link, attrs), 0) + 1
            self._group_counts = counts
        return self._group_counts.get(key, 1)
