"""The in-memory image tree: dentries (names) pointing at inodes (files).

Built from the parsed metadata resource. Hard links (dentries sharing a
hard-link group id) share one Inode. A stream is one data stream of an inode
(the unnamed one has name ""); its content is a blob, or nothing if empty.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from wimfs.errors import WimCorruptError
from wimfs.format import structs as S
from wimfs.format.blobtable import ZERO_HASH, BlobDescriptor  # noqa: F401  (ZERO_HASH re-exported)
from wimfs.format.metadata import DiskDentry, parse_tagged_items
from wimfs.format.reparse import LinkReparsePoint, parse_link
from wimfs.format.upcase import upcase

log = logging.getLogger(__name__)

NAME_MAX = 255      # the longest file name, in UTF-16 code units (as NTFS and Windows)


def name_too_long(name: str) -> bool:
    """More than NAME_MAX UTF-16 code units (a name of <= NAME_MAX // 2 characters never
    is: one character is at most two units)."""
    return len(name) > NAME_MAX // 2 and \
        len(name.encode("utf-16-le", "surrogatepass")) > 2 * NAME_MAX


@dataclass(slots=True)
class UnixData:
    uid: int
    gid: int
    mode: int
    rdev: int


class Stream:
    __slots__ = ("name", "hash", "blob", "size", "source")

    def __init__(self, name: str, hash_: bytes, blob: BlobDescriptor | None, size: int,
                 source=None):
        self.name = name
        self.hash = hash_
        self.blob = blob
        self.size = size
        self.source = source      # a writer BlobSource for content not yet in this WIM

    @property
    def missing(self) -> bool:
        """The stream has content, but its blob is not in this WIM (or its parts)."""
        return self.blob is None and self.source is None and self.hash != ZERO_HASH

    def __repr__(self) -> str:
        return f"Stream({self.name!r}, size={self.size})"


_BLOB = Stream.blob         # the slot holding a stream's blob descriptor


class LazyStream(Stream):
    """A stream whose blob descriptor is looked up in `blobs` (a LazyBlobs map, which keeps
    it) when first used: the inodes a read-only mount makes per request (views of
    wimfs.image_tree) know a stream's size from the blob table's bytes, and a stat of every
    file makes no descriptor. (The resource reader's caches know a resource by its
    descriptor's identity: a descriptor is never made twice.)"""

    __slots__ = ("_blobs",)

    def __init__(self, name: str, hash_: bytes, size: int, blobs) -> None:
        super().__init__(name, hash_, None, size)
        self._blobs = blobs

    @property                       # type: ignore[override]
    def blob(self) -> BlobDescriptor | None:
        b = _BLOB.__get__(self)
        if b is None and self._blobs is not None:
            b = self._blobs.get(self.hash)
            _BLOB.__set__(self, b)
            self._blobs = None
        return b

    @blob.setter
    def blob(self, value: BlobDescriptor | None) -> None:
        _BLOB.__set__(self, value)



def count_blob_refs(inodes, refs: dict[bytes, int] | None = None) -> dict[bytes, int]:
    """Add to *refs* the references *inodes* make to blobs (one per dentry of an inode
    per stream holding it), as the blob table counts them; return *refs*."""
    refs = {} if refs is None else refs
    for ino in inodes:
        add_blob_refs(ino, refs, len(ino.dentries))
    return refs


def add_blob_refs(ino: Inode, refs: dict[bytes, int], n: int) -> None:
    """Add `n` references to each blob a stream of `ino` holds (n: its dentries counted)."""
    for s in ino.streams():
        if s.hash != ZERO_HASH:
            refs[s.hash] = refs.get(s.hash, 0) + n


class Inode:
    __slots__ = ("ino", "attributes", "security_id", "creation_time", "last_access_time",
                 "last_write_time", "reparse_tag", "rp_reserved", "rp_flags", "data",
                 "named_streams", "reparse", "unix", "tagged_items", "dentries",
                 "_link", "missing_blobs", "_nlink", "change_time")

    @classmethod
    def new(cls, ino: int, attributes: int, security_id: int = -1, creation_time: int = 0,
            last_access_time: int = 0, last_write_time: int = 0, reparse_tag: int = 0,
            rp_flags: int = 0, tagged_items: bytes = b"") -> Inode:
        """A fresh inode (capture, mkdir/create on a read-write mount)."""
        d = DiskDentry("", "", attributes, security_id, 0, creation_time, last_access_time,
                       last_write_time, ZERO_HASH, 0, reparse_tag, 0, rp_flags, 0,
                       tagged_items, [], 0)
        return cls(ino, d)

    def __init__(self, ino: int, d: DiskDentry):
        self.ino = ino
        self.attributes = d.attributes
        self.security_id = d.security_id
        self.creation_time = d.creation_time
        self.last_access_time = d.last_access_time
        self.last_write_time = d.last_write_time
        self.reparse_tag = d.reparse_tag
        self.rp_reserved = d.rp_reserved
        self.rp_flags = d.rp_flags
        self.data: Stream | None = None          # unnamed data stream
        self.named_streams: dict[str, Stream] = {}
        self.reparse: Stream | None = None       # reparse point data (without header)
        self.unix: UnixData | None = None
        self.tagged_items = d.tagged_items
        self.dentries: list[Dentry] = []
        self._link: LinkReparsePoint | None | bool = False
        self.missing_blobs = 0
        self._nlink: int | None = 0     # None: a directory not parsed yet (counted on demand)
        # FILETIME of the last data or metadata change (st_ctime) while mounted; None:
        # unchanged since loaded, st_ctime is the last write time (a WIM stores no ctime).
        self.change_time: int | None = None

    @property
    def is_directory(self) -> bool:
        return bool(self.attributes & S.FILE_ATTRIBUTE_DIRECTORY) and \
            not self.attributes & S.FILE_ATTRIBUTE_REPARSE_POINT

    @property
    def is_reparse_point(self) -> bool:
        return bool(self.attributes & S.FILE_ATTRIBUTE_REPARSE_POINT)

    @property
    def nlink(self) -> int:
        n = self._nlink
        if n is None:       # a directory whose entries are still on disk: count them there
            pending = self.dentries[0]._children
            n = self._nlink = pending.tree.count_nlink(pending.offset)
        return n

    @nlink.setter
    def nlink(self, value: int) -> None:
        self._nlink = value

    @property
    def size(self) -> int:
        return self.data.size if self.data else 0

    def streams(self) -> Iterator[Stream]:
        """Every stream the inode has: unnamed data, reparse data, then the named ones."""
        if self.data is not None:
            yield self.data
        if self.reparse is not None:
            yield self.reparse
        yield from self.named_streams.values()

    def stream_hashes(self) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        """(unnamed data hash, reparse data hash, [(name, hash)]) for the metadata writer."""
        data = self.data.hash if self.data else ZERO_HASH
        rp = self.reparse.hash if self.reparse else ZERO_HASH
        return data, rp, [(n, s.hash) for n, s in self.named_streams.items()]

    @property
    def link_parsed(self) -> bool:
        """`link()` has parsed the reparse data already (it will not read it again)."""
        return self._link is not False

    def invalidate_link(self) -> None:
        """Forget the parsed link (the reparse data changed); `link()` parses it again."""
        self._link = False

    def link(self, read_blob) -> LinkReparsePoint | None:
        """The parsed symlink/junction, or None if this is not a link."""
        if self._link is False:
            self._link = None
            if self.is_reparse_point and self.reparse_tag in (S.IO_REPARSE_TAG_SYMLINK,
                                                              S.IO_REPARSE_TAG_MOUNT_POINT):
                rp = self.reparse
                if rp is not None and rp.blob is not None:
                    data = read_blob(rp.blob)
                elif rp is not None and rp.source is not None:   # staged, not yet in the WIM
                    data = b"".join(rp.source.chunks(1 << 16))
                else:
                    data = b""
                self._link = parse_link(self.reparse_tag, data)
        return self._link  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"Inode({self.ino}, attrs={self.attributes:#x})"


class Unparsed:
    """The entries of a directory still in the metadata resource (at `offset`, 0 for
    none; the directory's own entry at `owner`), parsed by `tree` (a
    wimfs.image_tree.LazyTree) on first use of `Dentry.children`, or copied through as
    stored by a commit (`raw_children`)."""

    __slots__ = ("tree", "offset", "owner")

    def __init__(self, tree, offset: int, owner: int) -> None:
        self.tree = tree
        self.offset = offset
        self.owner = owner

    def raw_children(self) -> list:
        """The directory's valid entries as stored (wimfs.format.metadata.RawEntry), for
        the metadata writer."""
        return self.tree.raw_children(self.offset, self.owner)


class Dentry:
    __slots__ = ("name", "short_name", "inode", "parent", "_children", "_ci")

    def __init__(self, name: str, short_name: str, inode: Inode, parent: Dentry | None,
                 unparsed: Unparsed | None = None):
        self.name = name
        self.short_name = short_name
        self.inode = inode
        self.parent = parent
        self._children: dict[str, Dentry] | Unparsed | None = (
            unparsed if unparsed is not None else {} if inode.is_directory else None)
        self._ci: dict[str, Dentry] | None = None

    @property
    def children(self) -> dict[str, Dentry] | None:
        """name -> child (None for a non-directory); a directory of a lazily loaded image
        is parsed here on first use (WimCorruptError if its entries are corrupt)."""
        c = self._children
        if c.__class__ is Unparsed:
            return c.tree.parse_directory(self, c)       # type: ignore[union-attr]
        return c        # type: ignore[return-value]

    @children.setter
    def children(self, value: dict[str, Dentry] | None) -> None:
        self._children = value

    @property
    def pending(self) -> Unparsed | None:
        """The marker of a directory whose entries are not parsed yet (None otherwise);
        asking does not parse them."""
        c = self._children
        return c if c.__class__ is Unparsed else None        # type: ignore[return-value]

    def lookup(self, name: str, case_insensitive: bool = False) -> Dentry | None:
        c = self._children
        if c.__class__ is Unparsed and c.offset:       # type: ignore[union-attr]
            # Not parsed yet: ask its entries as stored first; a name it does not hold
            # (a probe) builds nothing.
            try:
                if c.tree.lookup(self.inode.ino, name, case_insensitive) is None:  # type: ignore[union-attr]
                    return None
            except KeyError:
                pass
        children = self.children
        if children is None:
            return None
        d = children.get(name)
        if d is not None or not case_insensitive:
            return d
        if self._ci is None:
            ci: dict[str, Dentry] = {}
            for n, c in children.items():
                ci.setdefault(upcase(n), c)  # Windows compares upper-cased names
            self._ci = ci
        return self._ci.get(upcase(name))

    def add_child(self, child: Dentry) -> None:
        assert self.children is not None
        self.children[child.name] = child
        self._ci = None

    def remove_child(self, name: str) -> None:
        assert self.children is not None
        del self.children[name]
        self._ci = None

    def take_children(self, other: Dentry) -> None:
        """Take over `other`'s children (a directory renamed: its new dentry)."""
        if other.children is not None:
            self.children = other.children
            for c in self.children.values():
                c.parent = self
            self._ci = None

    @property
    def path(self) -> str:
        parts = []
        d: Dentry | None = self
        while d is not None and d.parent is not None:
            parts.append(d.name)
            d = d.parent
        return "/" + "/".join(reversed(parts))

    def __repr__(self) -> str:
        return f"Dentry({self.path!r})"


def name_is_valid(name: str) -> bool:
    """A name a directory entry may have (not empty, '.', '..'; no '/' or NUL)."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\x00" not in name


class Image:
    """One image of a WIM: its tree, inodes and security descriptors."""

    def __init__(self, index: int, security: list[bytes], root: Dentry,
                 inodes: list[Inode] | None, invalid_names: list[str] | None = None,
                 tree=None) -> None:
        self.index = index
        self.security = security
        self.root = root
        self._inodes = inodes
        # Entries skipped at load: names that are empty, '.', '..', contain '/' or NUL, or
        # repeat a sibling's name (path of the parent + the raw name).
        self._invalid_names: list[str] = invalid_names or []
        # A lazily loaded image (wimfs.image_tree.LazyTree): directories are parsed on
        # first use; `inodes` and `invalid_names` parse the rest first.
        self.tree = tree

    @property
    def loaded(self) -> bool:
        """Every directory is parsed into objects (not a lazily loaded image)."""
        return self._inodes is not None

    @property
    def inodes(self) -> list[Inode]:
        """Every inode of the image (a lazily loaded image is parsed whole first)."""
        if self._inodes is None:
            self.load_all()
        return self._inodes     # type: ignore[return-value]

    @inodes.setter
    def inodes(self, value: list[Inode]) -> None:
        self._inodes = value

    @property
    def invalid_names(self) -> list[str]:
        if self._inodes is None:
            self.load_all()
        return self._invalid_names

    def load_all(self) -> None:
        """Parse every directory not parsed yet (WimCorruptError if one is corrupt)."""
        if self._inodes is not None:
            return
        for _ in self.walk():
            pass
        self._inodes = list(self.tree.inodes.values())
        self._invalid_names = self.tree.invalid

    @classmethod
    def build(cls, index: int, security: list[bytes], disk_root: DiskDentry,
              blobs: dict[bytes, BlobDescriptor], ino_start: int = 1) -> Image:
        """Build from a tree parsed whole (wimfs.format.metadata.parse_dentry_tree)."""
        inodes: list[Inode] = []
        groups: dict[int, Inode] = {}
        next_ino = ino_start
        invalid: list[str] = []

        def inode_for(d: DiskDentry) -> Inode:
            nonlocal next_ino
            gid = d.hard_link_group_id
            ino = groups.get(gid) if gid and not d.is_directory else None
            if ino is not None and ino.attributes == d.attributes:
                return ino
            ino = inode_from_disk(next_ino, d, blobs)
            next_ino += 1
            inodes.append(ino)
            if gid and not d.is_directory:
                groups.setdefault(gid, ino)
            return ino

        if not disk_root.is_directory:
            raise WimCorruptError("the root of the image is not a directory")
        root = Dentry("", disk_root.short_name, inode_for(disk_root), None)
        root.inode.dentries.append(root)
        stack = [(disk_root, root)]
        while stack:
            dd, parent = stack.pop()
            children = parent.children
            assert children is not None
            for c in dd.children:
                if not name_is_valid(c.name):
                    invalid.append(f"{parent.path.rstrip('/')}/{c.name!r}")
                    log.warning("image %d: ignoring entry with invalid name %r in %s",
                                index, c.name, parent.path)
                    continue
                if c.name in children:
                    invalid.append(f"{parent.path.rstrip('/')}/{c.name!r} (duplicate)")
                    log.warning("image %d: ignoring duplicate name %r in %s", index, c.name,
                                parent.path)
                    continue
                node = Dentry(c.name, c.short_name, inode_for(c), parent)
                node.inode.dentries.append(node)
                children[c.name] = node
                if node.children is not None:
                    stack.append((c, node))
        for ino in inodes:
            ino.nlink = len(ino.dentries) if not ino.is_directory else 2 + sum(
                1 for c in (ino.dentries[0].children or {}).values() if c.inode.is_directory)
        return cls(index, security, root, inodes, invalid)

    def walk(self) -> Iterator[Dentry]:
        stack = [self.root]
        while stack:
            d = stack.pop()
            yield d
            if d.children:
                stack.extend(reversed(list(d.children.values())))

    def walk_loaded(self) -> Iterator[Dentry]:
        """Every dentry parsed into objects (`walk` without parsing anything: a directory
        not parsed yet is yielded, its entries are not)."""
        stack = [self.root]
        while stack:
            d = stack.pop()
            yield d
            c = d._children
            if c and c.__class__ is dict:
                stack.extend(reversed(list(c.values())))       # type: ignore[union-attr]

    def walk_inodes(self) -> list[Inode]:
        """The inodes of `walk_loaded`, each once."""
        seen: dict[int, Inode] = {}
        for d in self.walk_loaded():
            seen.setdefault(id(d.inode), d.inode)
        return list(seen.values())

    def unparsed_dirs(self) -> list[Unparsed]:
        """The markers of the reachable directories not parsed yet."""
        return [p for d in self.walk_loaded() if (p := d.pending) is not None]

    def raw_statistics(self) -> tuple[int, int, int, int]:
        """What the directories not parsed yet add to `image_statistics` (their
        subtrees, counted from the metadata resource)."""
        if self.tree is None or not self.tree.unparsed:
            return 0, 0, 0, 0
        return self.tree.raw_statistics(self.unparsed_dirs())

    def lookup_path(self, path: str, case_insensitive: bool = False) -> Dentry | None:
        d: Dentry | None = self.root
        for part in path.replace("\\", "/").split("/"):
            if not part or part == ".":
                continue
            if d is None:
                return None
            d = d.lookup(part, case_insensitive)
        return d

    def security_descriptor(self, inode: Inode) -> bytes | None:
        sid = inode.security_id
        if 0 <= sid < len(self.security):
            return self.security[sid]
        return None


def inode_from_disk(ino_no: int, d: DiskDentry, blobs: dict[bytes, BlobDescriptor],
                    lazy_streams: bool = False) -> Inode:
    """The inode of an on-disk dentry: its streams resolved against the blob table (with
    `lazy_streams`, LazyStreams: `blobs` is a wimfs.format.blobtable.LazyBlobs), its UNIX
    data (wimlib's tagged item) decoded."""
    ino = Inode(ino_no, d)
    _assign_streams(ino, d, blobs, lazy_streams)
    if d.tagged_items:
        ud = parse_tagged_items(d.tagged_items).get(S.TAG_WIMLIB_UNIX_DATA)
        if ud is not None and len(ud) >= 16:
            ino.unix = UnixData(*S.UNIX_DATA_STRUCT.unpack_from(ud))
    return ino


def _assign_streams(ino: Inode, d: DiskDentry, blobs: dict[bytes, BlobDescriptor],
                    lazy: bool) -> None:
    """Decide which stream is the unnamed data, which the reparse data, which named ones
    (the rules wimlib documents in assign_stream_types_unencrypted())."""
    is_rp = ino.is_reparse_point
    if not d.extra_streams:         # (most entries: the main stream only)
        if d.main_hash != ZERO_HASH:
            if is_rp:
                ino.reparse = _stream(ino, "", d.main_hash, blobs, lazy)
            else:
                ino.data = _stream(ino, "", d.main_hash, blobs, lazy)
        return
    found_rp = found_data = False
    entries = [("", d.main_hash, True)] + [(s.name, s.hash, False) for s in d.extra_streams]
    for i, (name, hash_, is_main) in enumerate(entries):
        if name:
            if name not in ino.named_streams:
                ino.named_streams[name] = _stream(ino, name, hash_, blobs, lazy)
            continue
        if is_main and hash_ == ZERO_HASH:
            continue
        if is_rp and not found_rp:
            found_rp = True
            ino.reparse = _stream(ino, "", hash_, blobs, lazy)
        elif not found_data:
            found_data = True
            ino.data = _stream(ino, "", hash_, blobs, lazy)


def _stream(ino: Inode, name: str, hash_: bytes, blobs: dict[bytes, BlobDescriptor],
            lazy: bool = False) -> Stream:
    if hash_ == ZERO_HASH:
        return Stream(name, hash_, None, 0)
    blob = None if lazy else blobs.get(hash_)
    if lazy:
        size = blobs.size_of(hash_)         # type: ignore[attr-defined]
    else:
        size = None if blob is None else blob.size
    if size is None:
        ino.missing_blobs += 1
        return Stream(name, hash_, None, 0)
    if lazy:
        return LazyStream(name, hash_, size, blobs)
    return Stream(name, blob.hash, blob, size)     # (one bytes object for both)
