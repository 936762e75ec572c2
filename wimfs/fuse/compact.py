"""The read-only adapter's answers from a compact tree (wimfs.image_tree): an image not
loaded whole is served from its metadata resource, with inode objects made per request
(views) where a handler needs one, and none for the plain entries readdir lists and open
opens. A mixin of wimfs.fuse.ops.WimOperations (it uses its `_inode`, `_attr`, `_fill`,
`_plain_mode`, `_path`, `_name`, `root`, `images` and `all_images`)."""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyfuse3

from wimfs.image import Image, Inode
from wimfs.image_tree import LazyTree

if TYPE_CHECKING:
    from wimfs.fuse.ops import Handle

IMAGE_INO_SHIFT = 32        # all-images mounts: image N's inodes are numbered from N << 32


@dataclass(slots=True)
class DirList:
    """An open directory of a compact tree: its entries' offsets // 8."""
    tree: LazyTree
    offsets: array


class CompactAnswers:
    _single: LazyTree | None      # the one image's compact tree (not an all-images mount)

    @staticmethod
    def _compact(img: Image) -> LazyTree | None:
        """The compact tree serving `img`, None if it is served from objects."""
        tree = img.tree
        if tree is None or img.loaded or tree.writable:
            return None
        tree.pinned = True          # (its buffer stays, even if it is loaded later)
        return tree

    def _tree_of(self, ino: int) -> LazyTree | None:
        """The compact tree serving inode number `ino`; None for objects (or the folder
        of an image not opened yet)."""
        if not self.all_images:
            return self._single
        img = self.images.get(ino >> IMAGE_INO_SHIFT) if ino >> IMAGE_INO_SHIFT else None
        return self._compact(img) if img is not None else None

    def _tree_child(self, tree: LazyTree, parent: Inode, name: bytes) -> Inode | None:
        if name == b"..":
            up = tree.parent(parent.ino)
            return self.root.inode if up == parent.ino and self.all_images else \
                self._inode(up)
        s = self._name(name)
        off = tree.lookup(parent.ino, s, self.case_insensitive) if s is not None else None
        return None if off is None else tree.inode(tree.ino_at(off))

    async def _readdir_compact(self, entries: DirList, start_id: int, token) -> None:
        tree, offsets = entries.tree, entries.offsets
        for pos in range(start_id, len(offsets)):
            off = offsets[pos] << 3
            ino, plain = tree.listed(off)       # (most entries: plain, no view needed)
            if plain is not None:
                attributes, size, nlink, atime, mtime = plain
                attr = self._fill(ino, self._plain_mode(attributes), None, size, nlink,
                                  attributes, atime, mtime, None)
            else:
                attr = await self._attr(tree.inode(ino))
            if not pyfuse3.readdir_reply(token, tree.name_at(off).encode(
                    "utf-8", "surrogatepass"), attr, pos + 1):
                break

    def _handle_path(self, h: Handle) -> str:
        if h.path:
            return h.path
        if h.inode is not None:
            return self._path(h.inode)
        try:
            return self._path(self._inode(h.number))
        except pyfuse3.FUSEError:
            return f"<inode {h.number}>"
