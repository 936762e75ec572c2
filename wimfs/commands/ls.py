"""`wimfs ls IMAGE[:N] [PATH] [--long]`: list a directory of an image."""

from __future__ import annotations

import stat
import sys
import time

from wimfs.commands import image_spec
from wimfs.errors import PathNotFoundError
from wimfs.format import structs as S
from wimfs.format.reparse import link_target
from wimfs.format.xmlinfo import filetime_to_unix_ns
from wimfs.image import Dentry
from wimfs.imaging import open_wim
from wimfs.wim import Wim

_ATTR_LETTERS = ((S.FILE_ATTRIBUTE_READONLY, "R"), (S.FILE_ATTRIBUTE_HIDDEN, "H"),
                 (S.FILE_ATTRIBUTE_SYSTEM, "S"), (S.FILE_ATTRIBUTE_DIRECTORY, "D"),
                 (S.FILE_ATTRIBUTE_ARCHIVE, "A"), (S.FILE_ATTRIBUTE_REPARSE_POINT, "L"),
                 (S.FILE_ATTRIBUTE_COMPRESSED, "C"), (S.FILE_ATTRIBUTE_SPARSE_FILE, "P"),
                 (S.FILE_ATTRIBUTE_NOT_CONTENT_INDEXED, "I"), (S.FILE_ATTRIBUTE_ENCRYPTED, "E"))


def _attrs(a: int) -> str:
    return "".join(ch if a & bit else "-" for bit, ch in _ATTR_LETTERS)


def _line(wim: Wim, d: Dentry, long: bool) -> str:
    ino = d.inode
    name = d.name or "/"
    if not long:
        return name + ("/" if ino.is_directory else "")
    link = ino.link(wim.read_blob)
    mtime = time.strftime("%Y-%m-%d %H:%M", time.gmtime(
        filetime_to_unix_ns(ino.last_write_time) / 1e9))
    if ino.unix:
        mode = stat.filemode(ino.unix.mode)
    elif ino.is_directory:
        mode = "drwxr-xr-x"
    elif link:
        mode = "lrwxrwxrwx"
    else:
        mode = "-r--r--r--" if ino.attributes & S.FILE_ATTRIBUTE_READONLY else "-rw-r--r--"
    extra = f" -> {link_target(link, ino.rp_flags, None)}" if link else ""
    streams = "".join(f" [:{s}]" for s in ino.named_streams)
    return f"{mode} {_attrs(ino.attributes)} {ino.nlink:>3} {ino.size:>12} {mtime} " \
           f"{name}{extra}{streams}"


def run(args) -> int:
    spec = image_spec(args)
    with open_wim(spec.path, args.ref) as wim:
        index = spec.resolve_one(wim)
        img = wim.image(index)
        d = img.lookup_path(args.path)
        if d is None:
            raise PathNotFoundError(f"{args.path}: no such file or directory in image {index}")
        out = sys.stdout
        if d.children is None:
            out.write(_line(wim, d, args.long) + "\n")
        else:
            for c in d.children.values():
                out.write(_line(wim, c, args.long) + "\n")
    return 0
