"""Lazy loading of an image's tree: a directory is parsed from the (decompressed, kept)
metadata resource the first time its entries are used, not at mount.

The compact form. Visiting a directory validates its entries (names, duplicates,
cycles) and keeps a `DirIndex`: the offsets of its valid entries in the metadata
resource (4 bytes each, on-disk order) and, once something is looked up by name, the
same entries sorted by name (names are decoded from the resource when compared). An
entry's inode number is derived from its offset (`ino_start + offset // 8`, the root
`ino_start`); the dentries of a hard-link group share the number of the group's first
entry in the resource (one scan of the dentry headers, made the first time a hard link is
met, finds every group). Nothing is kept per file: a read-only mount asks `entries()`,
`lookup()`, `parent()` and `path()` for numbers and names, `plain()` and `plain_data()`
for the attributes and data stream of a plain entry (no reparse point, UNIX data or extra
streams: most of them) straight from its fixed part, and `inode()` for an Inode object
made for the request (a view: the last VIEWS_KEPT are reused, no more are kept).

The object form (wimfs.image Dentry/Inode/Stream, kept): `open()` gives the Image with
its root; each directory Dentry starts with an `Unparsed` marker and `Dentry.children`
calls `parse_directory`, which visits the directory (the same DirIndex) and builds
objects for its entries, numbered as above. A fully walked image (read-write mounts,
servicing, the writer) is the image model of wimfs.image.

Link counts without objects: a hard-linked file's from the header scan; a directory's
from its entries' headers. Corrupt entries found late (a cycle, an entry outside the
resource) raise WimCorruptError when the directory is visited, every time it is asked
for, with a log line; the rest of the tree stays usable.
"""

from __future__ import annotations

import bisect
import gc
import logging
import struct
from array import array

from wimfs.errors import WimCorruptError
from wimfs.format import structs as S
from wimfs.format.blobtable import BlobDescriptor
from wimfs.format.metadata import (DentryTreeReader, DiskDentry, RawEntry, _read_dentry,
                                   parse_security_data, parse_tagged_items)
from wimfs.format.upcase import upcase
from wimfs.image import (ZERO_HASH, Dentry, Image, Inode, Stream, Unparsed, inode_from_disk,
                         name_is_valid)

log = logging.getLogger(__name__)

_u64 = struct.Struct("<Q")
_DENTRY = S.DENTRY_STRUCT
_HEAD = struct.Struct("<QI4xQ")             # length, attributes, subdir_offset
_u16 = struct.Struct("<H")
_LINK_ID_AT = 0x58                          # the hard link group id (non-reparse dentries)
_NUM_EXTRA_AT = 0x60                        # the number of extra stream entries
_NAME_LEN_AT = 0x64                         # the name's length in bytes
_DIR = S.FILE_ATTRIBUTE_DIRECTORY
_RP = S.FILE_ATTRIBUTE_REPARSE_POINT


def _is_dir(attributes: int) -> bool:
    return bool(attributes & _DIR) and not attributes & _RP


class DirIndex:
    """A visited directory: the offsets // 8 of its valid entries (on-disk order), its
    own dentry's offset, its link count, and its entries sorted by name (made on the
    first lookup; case-insensitively sorted too if a lookup asks)."""

    __slots__ = ("owner", "offsets", "nlink", "order", "ci_order", "probed")

    def __init__(self, owner: int, offsets: array, nlink: int) -> None:
        self.owner = owner
        self.offsets = offsets
        self.nlink = nlink
        self.order: array | None = None
        self.ci_order: array | None = None
        self.probed = False         # looked up once (by a scan): the next lookup sorts


VIEWS_KEPT = 4096       # the views last made, reused (a lookup or getattr, then an open)


class LazyTree:
    """One image's directories, visited on demand (see the module docstring)."""

    def __init__(self, index: int, buf: bytes | bytearray, blobs: dict[bytes, BlobDescriptor],
                 ino_start: int = 1, what: str = "") -> None:
        self.index = index
        self.buf = buf
        self.blobs = blobs
        self.ino_start = ino_start
        self.what = what or f"image {index}"
        self.inodes: dict[int, Inode] = {}      # the objects made so far, by number
        self.invalid: list[str] = []
        self.dirs: dict[int, DirIndex] = {}     # entry list offset -> visited directory
        self._starts: list[int] = []            # the keys of `dirs`, sorted
        self._groups: dict[tuple[int, int], Inode] = {}
        self._group_info: dict[tuple[int, int], tuple[int, int]] | None = None
        self._canonical: set[int] = set()       # offsets of the groups' first entries
        self._reader = DentryTreeReader(buf, 0)
        self._typecode = "I" if len(buf) >> 3 < 1 << 32 else "Q"
        # Views' streams look their descriptor up when first used (a LazyBlobs map; a map
        # of descriptors made whole, solid WIMs: the descriptors as they are).
        self._lazy_streams = hasattr(blobs, "size_of")
        self._views: dict[int, Inode] = {}
        self.root_off = 0
        self.root_list = 0               # offset of the root directory's entries
        self.unparsed = 0                # object directories not parsed yet
        self.parses = 0                  # object directories parsed so far
        self.pinned = False              # the compact form is in use: keep the buffer
        # The first number above every offset-derived one (new inodes of a session).
        self.ino_end = ino_start + (len(buf) >> 3) + 1
        # A read-write session's tree (`make_writable`): objects only, parses reported to
        # `on_parse`; a hard-link group may be parsed in part (`on_disk`, `complete`).
        self.writable = False
        self.on_parse = None             # called with (parent, children) of each parse
        self._pending: dict[int, Dentry] = {}       # entry list offset -> its directory
        self._members: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self._list_owner: dict[int, tuple[int, int]] = {}
        # Hard-link groups parsed in part: inode number -> (group key, entries not parsed)
        self._partial: dict[int, tuple[tuple[int, int], int]] = {}
        self._built: list[tuple[Dentry, dict]] = []
        self._completing = False

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
        tree.root_off = root_off
        tree.root_list = d.subdir_offset
        root = tree._dentry(d, None)
        return Image(index, security, root, None, tree=tree)

    # -- numbers ----------------------------------------------------------------------------

    def _number(self, off: int, attributes: int, link: int) -> int:
        """The inode number of the entry at `off` (its group's, if hard-linked)."""
        if off == self.root_off:
            return self.ino_start
        if link and not _is_dir(attributes):
            off = self._group(link, attributes, off)[1]
        return self.ino_start + (off >> 3)

    def _group(self, link: int, attributes: int, off: int) -> tuple[int, int]:
        """(entries, offset of the first entry) of the hard-link group of the entry at
        `off` (the entry alone if the header scan did not reach it)."""
        if self._group_info is None:
            self._scan_groups()
        return self._group_info.get((link, attributes), (1, off))  # type: ignore[union-attr]

    def _scan_groups(self) -> None:
        """One scan of the dentry headers: every hard-link group's size and first entry
        (and, in a writable tree, where each member and each directory is)."""
        info: dict[tuple[int, int], tuple[int, int]] = {}
        writable = self.writable
        members, owners = self._members, self._list_owner
        for list_off, off, attrs, sub, link in self._all_heads():
            if _is_dir(attrs):
                if sub and writable and sub not in owners:
                    owners[sub] = (off, list_off)
            elif link:
                n, first = info.get((link, attrs), (0, off))
                info[(link, attrs)] = (n + 1, min(first, off))
                if writable:
                    members.setdefault((link, attrs), []).append((off, list_off))
        if writable:
            for key, (n, _first) in info.items():
                if n < 2:
                    del members[key]
        self._group_info = info
        self._canonical = {first for _n, first in info.values()}

    def _offset_of(self, ino: int) -> int:
        """The offset of inode `ino`'s entry; KeyError if no entry handed out has it."""
        if ino == self.ino_start:
            return self.root_off
        off = (ino - self.ino_start) << 3
        if off <= 0:
            raise KeyError(ino)
        if off in self._canonical or self._list_of(off) is not None:
            return off
        raise KeyError(ino)

    def _list_of(self, off: int) -> DirIndex | None:
        """The visited directory whose entries include the one at `off`."""
        where = self._where(off)
        return where[0] if where is not None else None

    def _where(self, off: int) -> tuple[DirIndex, int] | None:
        """(the visited directory whose entries include the one at `off`, its place in
        that directory's list)."""
        i = bisect.bisect_right(self._starts, off) - 1
        if i < 0:
            return None
        idx = self.dirs[self._starts[i]]
        offs, key = idx.offsets, off >> 3
        j = bisect.bisect_left(offs, key)
        return (idx, j) if j < len(offs) and offs[j] == key else None

    # -- visiting -----------------------------------------------------------------------------

    def _visit(self, list_off: int, owner: int, path, full: bool = False
               ) -> tuple[DirIndex, list[DiskDentry]]:
        """The directory whose entries are at `list_off` (its own entry at `owner`), and,
        with `full`, its valid entries as DiskDentry objects (else []). `path()`: its
        path, for messages. WimCorruptError (logged) if its entries are corrupt."""
        idx = self.dirs.get(list_off)
        if idx is not None:
            if idx.owner != owner:
                self._fail(f"directory {path()} is cyclic (its entries at {list_off} are "
                           "reachable twice)")
            # (visited before, e.g. copied by a commit: its valid entries read again)
            return idx, [_read_dentry(self.buf, o << 3)[0] for o in idx.offsets] \
                if full else []
        try:
            if full:
                entries = self._reader.entries_at(list_off)
                heads = [(c.offset, c.name, c.attributes) for c in entries]
            else:
                heads = self._reader.heads_at(list_off)
        except WimCorruptError as exc:
            self._fail(f"directory {path()}: {exc}")
        keep: list[int] = []
        names: set[str] = set()
        subdirs = 0
        for i, (_off, name, attributes) in enumerate(heads):
            if not name_is_valid(name) or name in names:
                self._skip(path(), name, " (duplicate)" if name in names else "")
                continue
            names.add(name)
            keep.append(i)
            subdirs += _is_dir(attributes)
        idx = DirIndex(owner, array(self._typecode, [heads[i][0] >> 3 for i in keep]),
                       2 + subdirs)
        self.dirs[list_off] = idx
        bisect.insort(self._starts, list_off)
        log.debug("%s: parsed directory %s (%d entries)", self.what, path(), len(keep))
        return idx, [entries[i] for i in keep] if full else []

    def _fail(self, msg: str):
        msg = f"{self.what}: {msg}"
        log.error("%s", msg)
        raise WimCorruptError(msg) from None

    def _skip(self, path: str, name: str, why: str) -> None:
        self.invalid.append(f"{path.rstrip('/')}/{name!r}{why}")
        log.warning("%s: ignoring %s %r in %s", self.what,
                    "duplicate name" if why else "entry with invalid name", name, path)

    # -- the compact form: what a read-only mount asks ----------------------------------------

    def _dir(self, ino: int) -> DirIndex | None:
        """The visited directory numbered `ino` (None: not a directory, or empty)."""
        self.pinned = True
        off = self._offset_of(ino)
        _length, attributes, sub = _HEAD.unpack_from(self.buf, off)
        if not _is_dir(attributes):
            return None
        if not sub:
            return DirIndex(off, array(self._typecode), 2)
        idx = self.dirs.get(sub)
        if idx is None or idx.owner != off:
            idx, _ = self._visit(sub, off, lambda: self.path(ino))
            self._views.pop(ino, None)      # (its link count, counted before the visit)
        return idx

    def name_at(self, off: int) -> str:
        n = _u16.unpack_from(self.buf, off + _NAME_LEN_AT)[0]
        p = off + S.DENTRY_DISK_SIZE
        raw = bytes(self.buf[p:p + n])
        try:
            return raw.decode("utf-16-le")
        except UnicodeDecodeError:
            return raw.decode("utf-16-le", "surrogatepass")

    def ino_at(self, off: int) -> int:
        """The inode number of the (valid, visited) entry at `off`."""
        _length, attributes, _sub = _HEAD.unpack_from(self.buf, off)
        link = 0 if attributes & _RP else _u64.unpack_from(self.buf, off + _LINK_ID_AT)[0]
        return self._number(off, attributes, link)

    def entries(self, ino: int) -> array:
        """The offsets // 8 of directory `ino`'s entries (on-disk order)."""
        idx = self._dir(ino)
        return idx.offsets if idx is not None else array(self._typecode)

    def lookup(self, ino: int, name: str, case_insensitive: bool = False) -> int | None:
        """The offset of entry `name` of directory `ino` (an exact match first, then, if
        asked, the first entry whose upper-cased name matches); None if there is none."""
        idx = self._dir(ino)
        if idx is None or not idx.offsets:
            return None
        if idx.order is None and not idx.probed:
            idx.probed = True       # one lookup (a probe) scans; a second sorts the names
            return self._scan(idx, name, case_insensitive)
        if idx.order is None:
            idx.order = self._sorted(idx, str)
        off = self._search(idx, idx.order, name, str)
        if off is None and case_insensitive:
            if idx.ci_order is None:
                idx.ci_order = self._sorted(idx, upcase)
            off = self._search(idx, idx.ci_order, upcase(name), upcase)
        return off

    def _scan(self, idx: DirIndex, name: str, case_insensitive: bool) -> int | None:
        """`lookup` by one pass over the entries, the same answer without sorting: an
        exact match compares the stored bytes; an upper-cased one decodes only names of
        the same length (the upcase table maps each UTF-16 unit to one unit)."""
        buf, u16 = self.buf, _u16
        enc = name.encode("utf-16-le", "surrogatepass")
        n = len(enc)
        same_length = []
        for o in idx.offsets:
            off = o << 3
            if u16.unpack_from(buf, off + _NAME_LEN_AT)[0] != n:
                continue
            p = off + S.DENTRY_DISK_SIZE
            if buf[p:p + n] == enc:
                return off
            same_length.append(off)
        if case_insensitive:
            want = upcase(name)
            for off in same_length:
                if upcase(self.name_at(off)) == want:
                    return off
        return None

    def _sorted(self, idx: DirIndex, key) -> array:
        offs = idx.offsets
        names = [key(self.name_at(o << 3)) for o in offs]
        return array("I", sorted(range(len(offs)), key=names.__getitem__))  # stable

    def _search(self, idx: DirIndex, order: array, name: str, key) -> int | None:
        offs = idx.offsets
        lo, hi = 0, len(order)
        while lo < hi:
            mid = (lo + hi) >> 1
            if key(self.name_at(offs[order[mid]] << 3)) < name:
                lo = mid + 1
            else:
                hi = mid
        if lo < len(order):
            off = offs[order[lo]] << 3
            if key(self.name_at(off)) == name:
                return off
        return None

    def inode(self, ino: int) -> Inode:
        """Inode `ino` as an object made for the request (KeyError: no such entry;
        WimCorruptError: its entry is corrupt). Its one dentry has the entry's names, no
        parent (ask `parent()` and `path()`) and no inode (the view is the inode)."""
        node = self._views.get(ino)
        if node is not None:
            return node
        self.pinned = True
        off = self._offset_of(ino)
        d, _ = _read_dentry(self.buf, off)
        if d is None:
            raise KeyError(ino)
        node = inode_from_disk(ino, d, self.blobs, self._lazy_streams)
        if d.is_directory:
            idx = self.dirs.get(d.subdir_offset) if d.subdir_offset else None
            node.nlink = idx.nlink if idx is not None else self.count_nlink(d.subdir_offset)
        else:
            node.nlink = self._group(d.hard_link_group_id, d.attributes, off)[0] \
                if d.hard_link_group_id else 1
        dentry = Dentry(d.name if off != self.root_off else "", d.short_name, node, None)
        dentry.inode = None     # type: ignore[assignment]  (no cycle: freed when dropped,
        node.dentries.append(dentry)    # not left for the cyclic GC)
        views = self._views
        if len(views) >= VIEWS_KEPT:
            del views[next(iter(views))]        # the oldest
        views[ino] = node
        return node

    @staticmethod
    def _is_plain(off: int, f: tuple) -> bool:
        """The entry at `off` (its fixed fields `f`) is a plain one: no reparse point, no
        tagged items (UNIX data), no extra streams."""
        length, attributes, n_extra, short_n, name_n = f[0], f[1], f[12], f[13], f[14]
        names_end = off + S.DENTRY_DISK_SIZE + (name_n + 2 if name_n else 0) + \
            (short_n + 2 if short_n else 0)
        return not (attributes & _RP or n_extra or names_end > off + length or
                    ((names_end + 7) & ~7) < off + length)

    def plain(self, ino: int) -> tuple[int, int, int, int, int] | None:
        """(attributes, size, link count, last access time, last write time) of inode
        `ino`, read from its entry's fixed part if it is a plain one (`_is_plain`); None
        for any other, or one whose view is made already (ask `inode()`)."""
        if ino in self._views:
            return None
        off = self._offset_of(ino)
        return self._plain_attrs(off, _DENTRY.unpack_from(self.buf, off))

    def listed(self, off: int) -> tuple[int, tuple[int, int, int, int, int] | None]:
        """(inode number, `plain()`) of the entry at `off` of a visited directory."""
        f = _DENTRY.unpack_from(self.buf, off)
        attributes = f[1]
        ino = self._number(off, attributes, 0 if attributes & _RP else _u64.unpack(f[11])[0])
        return ino, None if ino in self._views else self._plain_attrs(off, f)

    def _plain_attrs(self, off: int, f: tuple) -> tuple[int, int, int, int, int] | None:
        if not self._is_plain(off, f):
            return None
        (_len, attributes, _sid, sub, _u1, _u2, _ct, atime, mtime, main_hash, _unk, union,
         *_rest) = f
        if _is_dir(attributes):
            idx = self.dirs.get(sub) if sub else None
            nlink = idx.nlink if idx is not None else self.count_nlink(sub)
        else:
            link = _u64.unpack(union)[0]
            nlink = self._group(link, attributes, off)[0] if link else 1
        size = 0
        if main_hash != ZERO_HASH:
            size = (self.blobs.size_of(main_hash) if self._lazy_streams else
                    getattr(self.blobs.get(main_hash), "size", None)) or 0
        return attributes, size, nlink, atime, mtime

    def plain_data(self, ino: int) -> tuple[bool, Stream | None] | None:
        """(is a directory, the unnamed data stream) of inode `ino` if its entry is a plain
        one (`_is_plain`; what opening it needs), else None (ask `inode()`)."""
        view = self._views.get(ino)
        if view is not None:
            return view.is_directory, view.data
        off = self._offset_of(ino)
        f = _DENTRY.unpack_from(self.buf, off)
        if not self._is_plain(off, f):
            return None
        attributes, main_hash = f[1], f[9]
        if main_hash == ZERO_HASH:
            return _is_dir(attributes), None
        blob = self.blobs.get(main_hash)
        stream = Stream("", main_hash, None, 0) if blob is None else \
            Stream("", blob.hash, blob, blob.size)
        return _is_dir(attributes), stream

    def position(self, ino: int) -> tuple[DirIndex, int] | None:
        """(the visited directory listing inode `ino`'s entry, its place in that list);
        None for the root or an entry whose directory was not visited."""
        off = (ino - self.ino_start) << 3
        return self._where(off) if off > 0 else None

    def parent(self, ino: int) -> int:
        """The number of the directory holding entry `ino` (the root's own for the root)."""
        off = self._offset_of(ino)
        if off == self.root_off:
            return ino
        idx = self._list_of(off)
        if idx is None:             # a hard-link group's first entry, in a directory
            raise KeyError(ino)     # not visited (never asked: '..' is for directories)
        return self.ino_at(idx.owner)

    def path(self, ino: int) -> str:
        return self._path_at(self._offset_of(ino), f"<inode {ino}>")

    def _path_at(self, off: int, unknown: str) -> str:
        """The path of the entry at `off` as stored (`unknown` if a directory on the way
        was not visited)."""
        parts: list[str] = []
        while off != self.root_off:
            parts.append(self.name_at(off))
            idx = self._list_of(off)
            if idx is None:
                return unknown
            off = idx.owner
        return "/" + "/".join(reversed(parts))

    def visited(self) -> int:
        """Entries visited so far (the inodes a read-only mount counts)."""
        return 1 + sum(len(i.offsets) for i in self.dirs.values())

    # -- the object form --------------------------------------------------------------------

    def _inode_for(self, d: DiskDentry) -> Inode:
        gid = d.hard_link_group_id
        number = self._number(d.offset, d.attributes, gid)
        if gid and not d.is_directory:
            key = (gid, d.attributes)
            ino = self._groups.get(key)
            if ino is None:
                ino = self._groups[key] = self._new_inode(number, d)
                ino.nlink = self._group(gid, d.attributes, d.offset)[0]
                if self.writable and ino.nlink > 1:
                    self._partial[number] = (key, ino.nlink - 1)
            elif number in self._partial:       # one more of its entries parsed
                key, left = self._partial[number]
                if left > 1:
                    self._partial[number] = (key, left - 1)
                else:
                    del self._partial[number]
            return ino
        ino = self._new_inode(number, d)
        ino.nlink = 1
        return ino

    def _new_inode(self, number: int, d: DiskDentry) -> Inode:
        ino = inode_from_disk(number, d, self.blobs)
        self.inodes[number] = ino
        return ino

    def _dentry(self, d: DiskDentry, parent: Dentry | None) -> Dentry:
        ino = self._inode_for(d)
        pending = None
        if d.is_directory:
            pending = Unparsed(self, d.subdir_offset, d.offset)
            self.unparsed += 1
            ino.nlink = None        # type: ignore[assignment]  (counted when asked)
        node = Dentry(d.name if parent is not None else "", d.short_name, ino, parent, pending)
        ino.dentries.append(node)
        if pending is not None and self.writable and d.subdir_offset:
            self._pending[d.subdir_offset] = node
        return node

    def parse_directory(self, parent: Dentry, pending: Unparsed) -> dict[str, Dentry]:
        """Build `parent`'s children (the first use of its `children`). In a writable
        tree `on_parse` hears of it (of each directory built, once `complete` is done)."""
        children: dict[str, Dentry] = {}
        if pending.offset:
            _idx, entries = self._visit(pending.offset, pending.owner, lambda: parent.path,
                                        full=True)
            gc_was_enabled = gc.isenabled()
            gc.disable()        # thousands of new objects: keep the cyclic GC out of it
            try:
                for c in entries:
                    children[c.name] = self._dentry(c, parent)
            finally:
                if gc_was_enabled:
                    gc.enable()
            self._pending.pop(pending.offset, None)
        parent._children = children
        parent.inode.nlink = 2 + sum(1 for c in children.values() if c.inode.is_directory)
        self.unparsed -= 1
        self.parses += 1
        if self.writable:
            self._built.append((parent, children))
            if not self._completing:
                self._report_built()
        if not self.unparsed and not self.pinned:
            self.buf = self._reader.buf = b""   # every directory is built: not needed again
        return children

    # -- read-write sessions ----------------------------------------------------------------

    def make_writable(self, image: Image) -> None:
        """Serve a read-write session (see `writable`); `image` is this tree's image."""
        self.writable = True
        if self._group_info is not None:        # scanned already: scan again, recording
            self._group_info = None
            self._scan_groups()
        p = image.root.pending
        if p is not None and p.offset:
            self._pending[p.offset] = image.root

    def set_blobs(self, blobs: dict[bytes, BlobDescriptor]) -> None:
        """Resolve streams against `blobs` from now on (the blob table after a commit)."""
        self.blobs = blobs
        self._lazy_streams = hasattr(blobs, "size_of")

    def on_disk(self, ino: int) -> int:
        """How many entries of inode `ino`'s hard-link group are not parsed yet (0 for
        any inode whose entries are all objects). Its link count is the entries parsed
        (`dentries`) plus these."""
        part = self._partial.get(ino)
        return part[1] if part is not None else 0

    def partial(self) -> list[Inode]:
        """The inodes whose hard-link groups are parsed in part."""
        return [self._groups[key] for key, _left in self._partial.values()]

    def complete(self, inos: list[Inode]) -> None:
        """Build the directories holding the entries of inodes `inos`' hard-link groups
        not parsed yet (their parents first), then report each directory built to
        `on_parse`. A group is parsed in part until its inode is about to be written
        changed (the commit asks): the entries still on disk are copied through as they
        are, which is right only while the inode is unchanged."""
        self._completing = True
        try:
            for ino in inos:
                part = self._partial.get(ino.ino)
                if part is None:
                    continue
                for _off, list_off in self._members.get(part[0], ()):
                    self._build_list(list_off)
        finally:
            self._completing = False
        self._report_built()

    def _report_built(self) -> None:
        built, self._built = self._built, []
        if self.on_parse is not None:
            for parent, children in built:
                self.on_parse(parent, children)

    def _build_list(self, list_off: int, depth: int = 0) -> None:
        """Build the directory whose entries are at `list_off` (its parents first); not
        reachable through valid names (or built already): nothing."""
        d = self._pending.get(list_off)
        if d is None:
            owner = self._list_owner.get(list_off)
            if owner is None or depth > len(self._list_owner):
                return                  # the root's, or a cyclic chain (corrupt)
            self._build_list(owner[1], depth + 1)
            d = self._pending.get(list_off)
            if d is None:
                return
        d.children                      # noqa: B018  (parses it)

    def raw_children(self, list_off: int, owner: int) -> list:
        """The valid entries of the list at `list_off` as stored, for the metadata writer
        (a directory nobody parsed is copied through): a directory as a RawEntry, a file
        as its bytes. Subdirectory offsets are zeroed (the writer sets a directory's) and
        hard-link group ids made the groups' inode numbers (a group is wholly parsed or
        wholly copied, and numbers are unique in the tree)."""
        if not list_off:
            return []
        idx, _ = self._visit(list_off, owner, lambda: self._path_at(owner, "?"))
        buf, out = self.buf, []
        unpack, u64 = _DENTRY.unpack_from, _u64
        for o in idx.offsets:
            off = o << 3
            f = unpack(buf, off)
            length, attributes, sub, n_extra = f[0], f[1], f[3], f[12]
            end = off + ((length + 7) & ~7)
            for _ in range(n_extra):
                end += (u64.unpack_from(buf, end)[0] + 7) & ~7
            link = 0 if attributes & _RP else u64.unpack(f[11])[0]
            if _is_dir(attributes):
                raw = bytearray(buf[off:end])
                u64.pack_into(raw, 16, 0)
                if link:
                    u64.pack_into(raw, _LINK_ID_AT, 0)
                out.append(RawEntry(raw, Unparsed(self, sub, off)))
                continue
            number = link
            if link:
                n, first = self._group(link, attributes, off)
                number = self.ino_start + (first >> 3) if n > 1 else 0
            if sub or number != link:
                raw = bytearray(buf[off:end])
                u64.pack_into(raw, 16, 0)
                if not attributes & _RP:
                    u64.pack_into(raw, _LINK_ID_AT, number)
                out.append(bytes(raw))
            else:
                out.append(bytes(buf[off:end]))
        return out

    def raw_statistics(self, markers: list[Unparsed]) -> tuple[int, int, int, int]:
        """(directories, files, bytes, hard-link bytes) of the subtrees of the directories
        `markers` (not parsed), counted from their entries as `image_statistics` counts
        objects."""
        dirs = files = total = hard = 0
        buf, blobs, lazy = self.buf, self.blobs, self._lazy_streams
        stack = [(m.offset, m.owner) for m in markers if m.offset]
        sizes = blobs.sizes() if lazy else {h: b.size for h, b in blobs.items()}
        while stack:
            list_off, owner = stack.pop()
            idx, _ = self._visit(list_off, owner, lambda: self._path_at(owner, "?"))
            for o in idx.offsets:
                off = o << 3
                f = _DENTRY.unpack_from(buf, off)
                attributes, sub, main_hash, n_extra = f[1], f[3], f[9], f[12]
                if n_extra:
                    d, _ = _read_dentry(buf, off)
                    size = sum(s.size for s in inode_from_disk(0, d, blobs, lazy).streams())
                elif main_hash == ZERO_HASH:
                    size = 0
                else:
                    size = sizes.get(main_hash, 0)
                total += size
                if _is_dir(attributes):
                    dirs += 1
                    if sub:
                        stack.append((sub, off))
                    continue
                files += 1
                link = 0 if attributes & _RP else _u64.unpack(f[11])[0]
                if link:
                    # Hard-link bytes: every entry of a group but its first (by offset).
                    # A group parsed in part counts its parsed entries with the objects
                    # (all but one of them), so here all of its entries count.
                    n, first = self._group(link, attributes, off)
                    if n > 1 and (first != off or
                                  self.ino_start + (first >> 3) in self._partial):
                        hard += size
        return dirs, files, total, hard

    def any_unix_data(self) -> bool:
        """Whether an entry reachable from the root carries UNIX data (wimlib's tagged
        item), read from the metadata resource."""
        buf, tag = self.buf, S.TAG_WIMLIB_UNIX_DATA

        def has_unix(off: int) -> bool:
            f = _DENTRY.unpack_from(buf, off)
            short_n, name_n = f[13], f[14]
            names_end = off + S.DENTRY_DISK_SIZE + (name_n + 2 if name_n else 0) + \
                (short_n + 2 if short_n else 0)
            start, end = (names_end + 7) & ~7, off + f[0]
            return start < end and tag in parse_tagged_items(bytes(buf[start:end]))

        return has_unix(self.root_off) or any(has_unix(off) for _l, off, *_ in
                                               self._all_heads())

    # -- counting without building ---------------------------------------------------------

    def _heads(self, offset: int):
        """(offset, attributes, subdir_offset, hard link id) of each entry of the list at
        `offset`, from the fixed part of the dentries only; stops quietly at anything
        malformed (visiting the directory reports it)."""
        buf, end = self.buf, len(self.buf)
        while offset and offset + S.DENTRY_DISK_SIZE <= end:
            length, attributes, sub = _HEAD.unpack_from(buf, offset)
            if length == 0 or length < S.DENTRY_DISK_SIZE or offset + length > end:
                return
            link = 0 if attributes & _RP else _u64.unpack_from(buf, offset + _LINK_ID_AT)[0]
            n_extra = _u16.unpack_from(buf, offset + _NUM_EXTRA_AT)[0]
            yield offset, attributes, sub, link
            offset += (length + 7) & ~7
            for _ in range(n_extra):
                if offset + 8 > end:
                    return
                slen = _u64.unpack_from(buf, offset)[0]
                if slen < S.EXTRA_STREAM_DISK_SIZE:
                    return
                offset += (slen + 7) & ~7

    def _all_heads(self):
        """(list offset, then `_heads`' fields) of every entry reachable from the root,
        each list once (headers only, as `_heads`)."""
        stack = [self.root_list] if self.root_list else []
        seen: set[int] = set()
        while stack:
            list_off = stack.pop()
            if list_off in seen:
                continue
            seen.add(list_off)
            for off, attrs, sub, link in self._heads(list_off):
                yield list_off, off, attrs, sub, link
                if sub and _is_dir(attrs):
                    stack.append(sub)

    def count_nlink(self, offset: int) -> int:
        """The link count of a directory not visited yet: 2 + its subdirectories."""
        return 2 + sum(1 for _o, attrs, _s, _l in self._heads(offset) if _is_dir(attrs))
