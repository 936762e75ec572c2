"""`wimfs update IMAGE[:N] [--dry-run] COMMAND...`: add, delete and rename files of an
image in one commit, without mounting it (as `wimlib-imagex update`).

Commands, in the order given: `--add SRC DEST` (a file or a tree; a tree is merged into
DEST, a file given an existing directory as DEST goes inside it, missing parents are
created; `--unix-data` stores UNIX owner, group and mode; `--config FILE` applies
wimlib's capture exclusions to trees), `--delete PATH [--recursive]`, `--rename OLD NEW`,
and `--commands FILE` with one command per line in wimlib's syntax (`add SRC DEST`,
`delete [--force] [--recursive] PATH`, `rename OLD NEW`; quotes as in a shell; blank
lines and lines starting with `#` ignored). The image is edited through the same overlay
a read-write mount uses and committed once, crash-safely; a failing command leaves the
WIM byte-identical.
"""

from __future__ import annotations

import argparse
import errno
import os
import shlex
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from servicing.commands import print_json
from wimfs.errors import PathNotFoundError, UsageError, WimfsError


class UpdateOp(StrEnum):
    ADD = "add"
    DELETE = "delete"
    RENAME = "rename"


@dataclass(frozen=True)
class UpdateCommand:
    op: UpdateOp
    args: tuple[str, ...]
    recursive: bool = False
    force: bool = False


class _Collect(argparse.Action):
    """Keep --add/--delete/--rename/--commands in command-line order."""

    def __call__(self, parser, namespace, values, option_string=None):
        cmds = getattr(namespace, "commands", None) or []
        if self.dest == "recursive":
            if not cmds or cmds[-1].op != UpdateOp.DELETE:
                parser.error("--recursive follows a --delete PATH")
            cmds[-1] = UpdateCommand(UpdateOp.DELETE, cmds[-1].args, recursive=True)
        elif self.dest == "commands_file":
            cmds.extend(parse_commands_file(values))
        else:
            cmds.append(UpdateCommand(UpdateOp(self.dest), tuple(values)))
        namespace.commands = cmds


def add_parser(sub) -> None:
    from servicing.options import add_common_arguments

    c = sub.add_parser("update", help="add, delete and rename files of an image, mount-free")
    c.add_argument("image", metavar="IMAGE[:N]")
    c.add_argument("--add", dest="add", nargs=2, metavar=("SRC", "DEST"), action=_Collect)
    c.add_argument("--delete", dest="delete", nargs=1, metavar="PATH", action=_Collect)
    c.add_argument("--recursive", dest="recursive", nargs=0, action=_Collect,
                   help="the --delete before it removes a whole tree")
    c.add_argument("--rename", dest="rename", nargs=2, metavar=("OLD", "NEW"), action=_Collect)
    c.add_argument("--commands", dest="commands_file", metavar="FILE", action=_Collect,
                   help="one command per line: add SRC DEST | delete [--force] "
                        "[--recursive] PATH | rename OLD NEW")
    c.add_argument("--unix-data", action="store_true",
                   help="store UNIX owner, group and mode of added files")
    c.add_argument("--config", metavar="EXCLUSIONS",
                   help="wimlib-style capture configuration ([ExclusionList] ...)")
    add_common_arguments(c)
    c.set_defaults(func=run, commands=[])


def parse_commands_file(path: str) -> list[UpdateCommand]:
    try:
        with open(path, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise PathNotFoundError(f"{path}: {exc.strerror}") from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"{path}:{n}: {exc}") from None
        out.append(_command(words, f"{path}:{n}"))
    return out


def _command(words: list[str], where: str) -> UpdateCommand:
    op, rest = words[0].lower(), words[1:]
    flags = {w for w in rest if w.startswith("--")}
    args = tuple(w for w in rest if not w.startswith("--"))
    allowed = {"add": set(), "delete": {"--force", "--recursive"}, "rename": set()}
    nargs = {"add": 2, "delete": 1, "rename": 2}
    if op not in allowed:
        raise UsageError(f"{where}: unknown command {words[0]!r} (add, delete, rename)")
    if flags - allowed[op] or len(args) != nargs[op]:
        raise UsageError(f"{where}: usage: {op} " + {
            "add": "SRC DEST", "delete": "[--force] [--recursive] PATH",
            "rename": "OLD NEW"}[op])
    return UpdateCommand(UpdateOp(op), args, recursive="--recursive" in flags,
                         force="--force" in flags)


def run(args) -> int:
    from servicing.session import operation, options_from_args
    from servicing.target import TargetKind

    if not args.commands:
        raise UsageError("nothing to do: give --add, --delete, --rename or --commands")
    config = None
    if args.config:
        from wimfs.capture import CaptureConfig
        config = CaptureConfig.load(args.config)
    opts = options_from_args(args)
    command = "update " + " ".join(f"{c.op} {' '.join(c.args)}" for c in args.commands)
    with operation(args.image, opts, command=command, write=True) as target:
        if target.kind != TargetKind.IMAGE:
            raise UsageError(f"{args.image}: wimfs update edits an image "
                             "(IMAGE.wim[:N]); a directory can be edited directly")
        Updater(target, unix_data=args.unix_data, config=config).run(args.commands)
    if not opts.dry_run:
        _report(target, opts.json)
    return 0


def walk(src: str, config, rel: str = "") -> Iterator[tuple[str, str, os.stat_result]]:
    """(local path, path under SRC as "/a/b", lstat) of each entry of the tree SRC not
    excluded by `config`: names sorted, a directory before what it holds. The order the
    update stages them in."""
    with os.scandir(src) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        crel = f"{rel}/{e.name}"
        if config is not None and config.excluded(crel):
            continue
        st = e.stat(follow_symlinks=False)
        yield e.path, crel, st
        if stat.S_ISDIR(st.st_mode):
            yield from walk(e.path, config, crel)


def _report(target, as_json: bool) -> None:
    if as_json:
        from servicing.session import changes_json
        print_json(changes_json(target))
    else:
        print(f"{len(target.changes)} change(s) committed to {target.description}",
              file=sys.stderr)


class Updater:
    """Carries out update commands on an image target."""

    def __init__(self, target, *, unix_data: bool = False, config=None) -> None:
        self.target = target
        self.session = target.session
        self.overlay = self.session.overlay
        self.unix_data = unix_data
        self.config = config
        self.links: dict[tuple[int, int], str] = {}
        if unix_data:
            # New inodes carry UNIX data from now on, as in an image captured with it.
            self.overlay.edits.unix_mode = True

    def run(self, commands: list[UpdateCommand]) -> None:
        for c in commands:
            if c.op == UpdateOp.ADD:
                self.add(*c.args)
            elif c.op == UpdateOp.DELETE:
                path = _image_path(c.args[0])
                if not self.target.exists(path):
                    if c.force:
                        continue
                    raise PathNotFoundError(f"delete: {c.args[0]}: not in the image")
                self.target.remove(path, recursive=c.recursive)
            else:
                self.target.rename(_image_path(c.args[0]), _image_path(c.args[1]))

    def add(self, src: str, dest: str) -> None:
        try:
            st = os.lstat(src)
        except OSError as exc:
            raise PathNotFoundError(f"add: {src}: {exc.strerror}") from None
        dest = _image_path(dest)
        if stat.S_ISDIR(st.st_mode):
            if self.target.exists(dest) and not self.target.is_dir(dest):
                raise WimfsError(f"add: {dest}: exists and is not a directory")
            self.target.mkdirs(dest)
            self._meta(dest, st)
            self._tree(src, dest)
            return
        if self.target.is_dir(dest):
            dest = f"{dest}/{os.path.basename(src.rstrip('/'))}".lstrip("/")
        parent = dest.rpartition("/")[0]
        if parent:
            self.target.mkdirs(parent)
        self._entry(src, dest, st)

    def _tree(self, src: str, dest: str) -> None:
        for local, rel, st in walk(src, self.config):
            path = f"{dest}{rel}".lstrip("/")
            if stat.S_ISDIR(st.st_mode):
                self.target.mkdirs(path)
                self._meta(path, st)
            else:
                self._entry(local, path, st)

    def _entry(self, src: str, path: str, st: os.stat_result) -> None:
        if self.target.is_dir(path):
            raise WimfsError(f"add: {path}: is a directory in the image")
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self.links:
            if self.target.exists(path):
                self.target.remove(path)
            self.target.link(self.links[key], path)
            return
        if stat.S_ISLNK(st.st_mode):
            self._symlink(src, path, st)
        elif stat.S_ISREG(st.st_mode):
            # The sources stay until the commit, which reads them once (as wimlib does).
            self.target.copy_in(path, src, deferred=True)
        else:
            raise WimfsError(f"add: {src}: special files cannot be added")
        self._meta(path, st)
        if st.st_nlink > 1:
            self.links[key] = path

    def _symlink(self, src: str, path: str, st: os.stat_result) -> None:
        from servicing.changes import Change, ChangeKind
        from wimfs.overlay import FsError, Kind

        if self.target.exists(path):
            self.target.remove(path)
        parent_path, _, name = path.rpartition("/")
        parent = self.session.image.lookup_path("/" + parent_path)
        try:
            self.overlay.create(parent, name, 0o777, st.st_uid, st.st_gid, Kind.SYMLINK,
                                target=os.readlink(src))
        except FsError as exc:
            raise WimfsError(f"add: {path}: {os.strerror(exc.errno or errno.EIO)}") from None
        self.target.changes.append(Change(ChangeKind.FILE_ADDED, path))

    def _meta(self, path: str, st: os.stat_result) -> None:
        if not self.unix_data:
            return
        ino = self.session.image.lookup_path("/" + path).inode
        if ino.unix is not None:        # a file of the image that had no UNIX data keeps none
            self.overlay.chown(ino, st.st_uid, st.st_gid)
        self.overlay.chmod(ino, st.st_mode)


def _image_path(path: str) -> str:
    parts = [p for p in path.replace("\\", "/").split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise UsageError(f"{path}: '.' and '..' are not allowed in image paths")
    return "/".join(parts)
