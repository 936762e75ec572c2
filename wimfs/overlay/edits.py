"""Tree edits of a session on the in-memory image: create, unlink, rmdir, rename, link,
metadata, streams and reparse data. Pure changes to the tree: no journal, no freeze check
(the session adds those); the journal's records replay through the same methods.

`now` on a tree edit is the FILETIME it gives the parent directories it changes (last
write and change time), the inodes that gain or lose a name (change time) and a new
inode; None leaves their times alone (a replayed record that has none).
"""

from __future__ import annotations

import enum
import errno
import logging
import stat

from wimfs.errors import WimfsError
from wimfs.format import structs as S
from wimfs.format.blobtable import ZERO_HASH
from wimfs.format.metadata import set_unix_data
from wimfs.format.reparse import make_symlink
from wimfs.format.security import inherit
from wimfs.format.xmlinfo import filetime_now
from wimfs.image import Dentry, Image, Inode, Stream, UnixData, name_too_long
from wimfs.overlay import ntfs_xattrs as nx
from wimfs.overlay.errors import FsError
from wimfs.overlay.staging import Staging

log = logging.getLogger(__name__)

RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2


class Kind(enum.StrEnum):
    """What `create` makes."""
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"


def check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        raise FsError(errno.EINVAL)
    if name_too_long(name):
        raise FsError(errno.ENAMETOOLONG)


def lookup(parent: Dentry, name: str) -> Dentry | None:
    """The child named `name`: ENAMETOOLONG for a name no entry can have."""
    if name_too_long(name):
        raise FsError(errno.ENAMETOOLONG)
    return parent.lookup(name)


def _store_unix(ino: Inode) -> None:
    """Write the inode's UNIX data into its tagged items (wimlib's format)."""
    u = ino.unix
    assert u is not None
    ino.tagged_items = set_unix_data(ino.tagged_items, u.uid, u.gid, u.mode, u.rdev)


def require_dir(d: Dentry) -> None:
    if d.children is None:
        raise FsError(errno.ENOTDIR)


class TreeEdits:
    def __init__(self, image: Image, staging: Staging, mountpoint: str = "") -> None:
        self.image = image
        self.staging = staging
        self.mountpoint = mountpoint
        tree = image.tree
        self._unix_mode: bool | None = None
        if tree is not None and tree.writable:
            # A lazily parsed tree: the objects made so far (the tree adds those it
            # parses); new inodes are numbered above every offset-derived number.
            self.inodes: dict[int, Inode] = tree.inodes
            self.next_ino = max(tree.ino_end, max(self.inodes, default=0) + 1)
        else:
            self.inodes = {i.ino: i for i in image.inodes}
            self.next_ino = max(self.inodes) + 1
            self._unix_mode = any(i.unix is not None for i in image.inodes)

    @property
    def unix_mode(self) -> bool:
        """New inodes get UNIX data: the image has some (a lazily parsed tree is asked on
        first use)."""
        if self._unix_mode is None:
            tree = self.image.tree
            self._unix_mode = tree.any_unix_data() if tree.unparsed else \
                any(i.unix is not None for i in self.image.walk_inodes())
        return self._unix_mode

    @unix_mode.setter
    def unix_mode(self, value: bool) -> None:
        self._unix_mode = value

    # -- lookups ---------------------------------------------------------------------------

    def resolve(self, path: str) -> Dentry:
        d = self.image.lookup_path(path)
        if d is None:
            raise FsError(errno.ENOENT, path)
        return d

    def sd_index(self, sd: bytes) -> int:
        try:
            return self.image.security.index(sd)
        except ValueError:
            self.image.security.append(sd)
            return len(self.image.security) - 1

    def sd_hex(self, ino: Inode) -> str | None:
        sd = self.image.security_descriptor(ino)
        return sd.hex() if sd is not None else None

    def live_inodes(self) -> list[Inode]:
        """The inodes reachable from the root, as objects (a directory not parsed yet is
        copied through by the commit: its subtree has none)."""
        return self.image.walk_inodes()

    def file_links(self, ino: Inode) -> int:
        """A file's link count: its names parsed into objects, plus those of its hard-link
        group still on disk in directories not parsed yet (wimfs.image_tree.on_disk)."""
        tree = self.image.tree
        return len(ino.dentries) + (tree.on_disk(ino.ino) if tree is not None else 0)

    # -- names -----------------------------------------------------------------------------

    def _attach(self, parent: Dentry, name: str, ino: Inode, now: int | None,
                short_name: str = "") -> Dentry:
        d = Dentry(name, short_name, ino, parent)
        parent.add_child(d)
        ino.dentries.append(d)
        if ino.is_directory:
            parent.inode.nlink += 1
        else:
            ino.nlink = self.file_links(ino)
        if now is not None:
            parent.inode.last_write_time = parent.inode.change_time = now
            ino.change_time = now
        return d

    def _detach(self, d: Dentry, now: int | None) -> None:
        parent = d.parent
        assert parent is not None
        tree = self.image.tree
        if len(d.inode.dentries) == 1 and tree is not None and tree.on_disk(d.inode.ino):
            # The last name parsed of a hard-link group with names still on disk: parse
            # them first, so that an inode with names always has one to be found by
            # (paths for the journal, the FUSE layer's lookups by inode).
            tree.complete([d.inode])
        parent.remove_child(d.name)
        d.inode.dentries.remove(d)
        if d.inode.is_directory:
            parent.inode.nlink -= 1
        else:
            d.inode.nlink = self.file_links(d.inode)
        if now is not None:
            parent.inode.last_write_time = parent.inode.change_time = now
            d.inode.change_time = now

    def _new_inode(self, parent: Dentry, attributes: int, mode: int, uid: int, gid: int,
                   is_dir: bool, now: int) -> Inode:
        """A new inode that inherits its parent's security descriptor."""
        sd_id = -1
        psd = self.image.security_descriptor(parent.inode)
        if psd is not None:
            try:
                sd_id = self.sd_index(inherit(psd, is_dir))
            except WimfsError as exc:
                log.warning("%s: cannot inherit the security descriptor: %s", parent.path,
                            exc)
        ino = Inode.new(self.next_ino, attributes, sd_id, now, now, now)
        self.next_ino += 1
        if self.unix_mode:
            ino.unix = UnixData(uid, gid, mode, 0)
            _store_unix(ino)
        self.inodes[ino.ino] = ino
        return ino

    def create(self, parent: Dentry, name: str, mode: int, uid: int, gid: int,
               kind: Kind | str = Kind.FILE, target: str | None = None,
               now: int | None = None) -> Inode:
        """A new file, directory or symlink: FILE_ATTRIBUTE_ARCHIVE (files), the parent's
        inherited security descriptor, `now` (default: the current time) as its times."""
        kind = Kind(kind)
        require_dir(parent)
        check_name(name)
        if parent.lookup(name) is not None:
            raise FsError(errno.EEXIST)
        if kind == Kind.DIR:
            attrs, ftype = S.FILE_ATTRIBUTE_DIRECTORY, stat.S_IFDIR
        elif kind == Kind.SYMLINK:
            attrs, ftype = S.FILE_ATTRIBUTE_REPARSE_POINT, stat.S_IFLNK
        else:
            attrs = S.FILE_ATTRIBUTE_ARCHIVE
            ftype = stat.S_IFMT(mode) or stat.S_IFREG
        ino = self._new_inode(parent, attrs, ftype | stat.S_IMODE(mode), uid, gid,
                              kind == Kind.DIR, filetime_now() if now is None else now)
        if kind == Kind.SYMLINK:
            assert target is not None
            self._set_symlink(ino, target)
        elif kind == Kind.FILE:
            ino.data = Stream("", ZERO_HASH, None, 0)
        else:
            ino.nlink = 2
        self._attach(parent, name, ino, now)
        return ino

    def _set_symlink(self, ino: Inode, target: str) -> None:
        mp = self.mountpoint.rstrip("/")
        if target.startswith("/"):
            if mp and (target == mp or target.startswith(mp + "/")):
                data = make_symlink(target[len(mp):] or "/", relative=False)
                ino.rp_flags = 0           # fixed: relative to the image root
            else:
                data = make_symlink(target, relative=False)
                ino.rp_flags = S.RP_FLAG_NOT_FIXED
        else:
            data = make_symlink(target, relative=True)
            ino.rp_flags = 0
        self.set_reparse(ino, S.IO_REPARSE_TAG_SYMLINK, 0, self.staging.store(data))

    def unlink(self, parent: Dentry, name: str, now: int | None = None) -> Inode:
        d = lookup(parent, name)
        if d is None:
            raise FsError(errno.ENOENT)
        if d.inode.is_directory:
            raise FsError(errno.EISDIR)
        self._detach(d, now)
        return d.inode

    def rmdir(self, parent: Dentry, name: str, now: int | None = None) -> Inode:
        d = lookup(parent, name)
        if d is None:
            raise FsError(errno.ENOENT)
        if not d.inode.is_directory:
            raise FsError(errno.ENOTDIR)
        if d.children:
            raise FsError(errno.ENOTEMPTY)
        self._detach(d, now)
        return d.inode

    def rename(self, p_old: Dentry, old: str, p_new: Dentry, new: str, flags: int = 0,
               now: int | None = None) -> Inode | None:
        """Returns the inode that lost its last name by being replaced, if any."""
        require_dir(p_old)
        require_dir(p_new)
        check_name(new)
        src = lookup(p_old, old)
        if src is None:
            raise FsError(errno.ENOENT)
        dst = p_new.lookup(new)
        if src.inode.is_directory:          # moving a directory into its own subtree
            a: Dentry | None = p_new
            while a is not None:
                if a is src:
                    raise FsError(errno.EINVAL)
                a = a.parent
        if flags & RENAME_NOREPLACE and dst is not None:
            raise FsError(errno.EEXIST)
        if flags & RENAME_EXCHANGE:
            if dst is None:
                raise FsError(errno.ENOENT)
            if dst is not src:
                self._exchange(src, dst, now)
            return None
        replaced = None
        if dst is not None:
            if dst is src or dst.inode is src.inode:
                # POSIX: renaming a hard link onto another link of the same file is a no-op.
                return None
            self._check_replace(src, dst)
            self._detach(dst, now)
            replaced = dst.inode if not dst.inode.dentries else None
        self._detach(src, now)
        nd = self._attach(p_new, new, src.inode, now, src.short_name if new == old else "")
        nd.take_children(src)
        return replaced

    @staticmethod
    def _check_replace(src: Dentry, dst: Dentry) -> None:
        if dst.inode.is_directory:
            if not src.inode.is_directory:
                raise FsError(errno.EISDIR)
            if dst.children:
                raise FsError(errno.ENOTEMPTY)
        elif src.inode.is_directory:
            raise FsError(errno.ENOTDIR)

    def _exchange(self, src: Dentry, dst: Dentry, now: int | None) -> None:
        p_old, p_new = src.parent, dst.parent
        self._detach(src, now)
        self._detach(dst, now)
        self._attach(p_new, dst.name, src.inode, now, src.short_name).take_children(src)
        self._attach(p_old, src.name, dst.inode, now, dst.short_name).take_children(dst)

    def link(self, ino: Inode, parent: Dentry, name: str, now: int | None = None) -> None:
        require_dir(parent)
        check_name(name)
        if ino.is_directory:
            raise FsError(errno.EPERM)
        if ino.is_reparse_point:
            # A WIM dentry holds either reparse data or a hard-link group, not both.
            raise FsError(errno.EMLINK)
        if parent.lookup(name) is not None:
            raise FsError(errno.EEXIST)
        if not ino.dentries:
            raise FsError(errno.ENOENT)
        self._attach(parent, name, ino, now)

    # -- metadata --------------------------------------------------------------------------

    @staticmethod
    def set_times(ino: Inode, atime: int | None = None, mtime: int | None = None,
                  birth: int | None = None) -> None:
        if atime is not None:
            ino.last_access_time = atime
        if mtime is not None:
            ino.last_write_time = mtime
        if birth is not None:
            ino.creation_time = birth

    @staticmethod
    def chmod(ino: Inode, mode: int) -> None:
        if ino.unix is not None:
            ino.unix.mode = stat.S_IFMT(ino.unix.mode) | stat.S_IMODE(mode)
            _store_unix(ino)
        if not ino.is_directory:
            if mode & 0o222:
                ino.attributes &= ~S.FILE_ATTRIBUTE_READONLY
            else:
                ino.attributes |= S.FILE_ATTRIBUTE_READONLY

    @staticmethod
    def chown(ino: Inode, uid: int | None, gid: int | None) -> None:
        if ino.unix is None:
            raise FsError(errno.EPERM, "this image stores no UNIX owners")
        if uid is not None and uid != 0xFFFFFFFF:
            ino.unix.uid = uid
        if gid is not None and gid != 0xFFFFFFFF:
            ino.unix.gid = gid
        _store_unix(ino)

    def set_meta(self, ino: Inode, attributes: int, times: list[int], sd: bytes | None,
                 unix: UnixData | None, short: list[str]) -> None:
        """Everything a `Meta` record holds (replay)."""
        ino.attributes = (attributes & ~nx.TYPE_BITS) | (ino.attributes & nx.TYPE_BITS)
        ino.creation_time, ino.last_access_time, ino.last_write_time = times
        ino.security_id = self.sd_index(sd) if sd is not None else -1
        if unix is not None:
            ino.unix = unix
            _store_unix(ino)
        for d, sn in zip(ino.dentries, short):
            d.short_name = sn

    def apply_ntfs(self, ino: Inode, change: nx.NtfsChange) -> None:
        """A decoded system.ntfs_* write, other than reparse data."""
        match change:
            case nx.SetAttributes(attributes=a):
                ino.attributes = (a & ~nx.TYPE_BITS) | (ino.attributes & nx.TYPE_BITS)
            case nx.SetSecurity(sd=sd):
                ino.security_id = self.sd_index(sd)
            case nx.SetDosName(name=name):
                if not ino.dentries:
                    raise FsError(errno.ENOENT)
                ino.dentries[0].short_name = name
            case nx.SetTimes(creation=c, last_write=w, last_access=a):
                self.set_times(ino, a, w, c)
            case _:
                raise TypeError(f"not a metadata change: {change!r}")

    @staticmethod
    def remove_ntfs(ino: Inode, name: str) -> None:
        """Remove a system.ntfs_* attribute (the ones that can be absent)."""
        if name == nx.ACL:
            ino.security_id = -1
        elif name == nx.DOS_NAME:
            for d in ino.dentries:
                d.short_name = ""
        elif name == nx.REPARSE:
            TreeEdits.clear_reparse(ino)
        else:
            raise FsError(errno.EOPNOTSUPP)

    # -- streams ---------------------------------------------------------------------------

    @staticmethod
    def stream(ino: Inode, sname: str, create: bool = False) -> Stream:
        if sname == "":
            if ino.data is None:
                if not create:
                    raise FsError(errno.ENOENT)
                ino.data = Stream("", ZERO_HASH, None, 0)
            return ino.data
        s = ino.named_streams.get(sname)
        if s is None:
            if not create:
                raise FsError(errno.ENODATA)
            s = ino.named_streams[sname] = Stream(sname, ZERO_HASH, None, 0)
        return s

    def attach_staged(self, ino: Inode, sname: str, path: str) -> Stream:
        """Point stream `sname` (created if missing) at staging file `path`."""
        s = self.stream(ino, sname, create=True)
        self.staging.attach(s, path)
        return s

    @staticmethod
    def remove_named_stream(ino: Inode, name: str) -> None:
        if name not in ino.named_streams:
            raise FsError(errno.ENODATA)
        del ino.named_streams[name]

    def set_reparse(self, ino: Inode, tag: int, reserved: int, path: str) -> None:
        """Make the inode a reparse point whose data is staging file `path`."""
        ino.reparse = Stream("", ZERO_HASH, None, 0)
        self.staging.attach(ino.reparse, path)
        ino.reparse_tag, ino.rp_reserved = tag, reserved
        ino.attributes |= S.FILE_ATTRIBUTE_REPARSE_POINT
        ino.invalidate_link()

    @staticmethod
    def clear_reparse(ino: Inode) -> None:
        if not ino.is_reparse_point:
            raise FsError(errno.ENODATA)
        ino.reparse = None
        ino.reparse_tag = 0
        ino.attributes &= ~S.FILE_ATTRIBUTE_REPARSE_POINT
        ino.invalidate_link()
