"""A Windows tree in a directory: an applied image, an ntfs-3g mount, a wimfs mount.

Changes are staged so that a failing operation leaves the directory as it was:

* new content is written under a private staging directory inside the target
  (``.wimfs-staging-*``, on the same file system, so the final step is a rename);
* removals, renames and hard links are recorded, not done; reads see the staged state;
* directories created by ``mkdirs`` are real at once and removed again on discard;
* registry hives are edited in memory and committed last, each with the hive's own
  write-ahead ``.LOG1`` protocol (``Hive.commit``).

:meth:`DirTarget.commit` applies the recorded steps in order, keeping whatever it
replaces or removes in the staging directory until the end; if a step or a hive commit
fails, the steps done so far are undone (hives already committed are written back
from their original bytes) and the error is raised.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from servicing.errors import ServicingError, TargetNotFoundError, TargetPathError
from servicing.regf import Hive
from servicing.target import Target, TargetKind, join

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Step:
    op: str                 # put | remove | rename | link
    path: str               # target path (put, remove, rename/link destination)
    source: str = ""        # put: staged file; rename/link: the other target path


class DirTarget(Target):
    kind = TargetKind.DIRECTORY

    def __init__(self, root: str, *, windir: str = "Windows", dry_run: bool = False) -> None:
        if not os.path.isdir(root):
            raise TargetNotFoundError(f"not a directory: {root}")
        super().__init__(f"directory {root}", windir=windir, dry_run=dry_run)
        self.root = os.path.realpath(root)
        self._view: dict[str, str | None] = {}   # path -> local path of its content, None: gone
        self._steps: list[_Step] = []
        self._made_dirs: list[str] = []
        self._hives: dict[str, Hive] = {}
        self._staging: str | None = None

    # -- the staged view -------------------------------------------------------------

    def _real(self, path: str) -> str:
        return os.path.join(self.root, path) if path else self.root

    def _source(self, path: str) -> str | None:
        """The local path holding *path*'s current content (staged or real), or None."""
        parts = path.split("/") if path else []
        for i in range(len(parts), 0, -1):
            anc = "/".join(parts[:i])
            if anc in self._view:
                base = self._view[anc]
                return None if base is None else os.path.join(base, *parts[i:])
        return self._real(path)

    def _existing(self, path: str) -> str:
        src = self._source(path)
        if src is None or not os.path.lexists(src):
            raise TargetPathError(f"{path or '/'}: no such file or directory in {self.root}")
        return src

    def read_file(self, path: str) -> bytes:
        path = join(path)
        src = self._existing(path)
        if os.path.isdir(src):
            raise ServicingError(f"{path}: is a directory")
        with open(src, "rb") as f:
            return f.read()

    def exists(self, path: str) -> bool:
        src = self._source(join(path))
        return src is not None and os.path.lexists(src)

    def is_dir(self, path: str) -> bool:
        src = self._source(join(path))
        return src is not None and os.path.isdir(src) and not os.path.islink(src)

    def listdir(self, path: str) -> list[str]:
        path = join(path)
        src = self._existing(path)
        names = set(os.listdir(src))
        prefix = path + "/" if path else ""
        for p, local in self._view.items():
            if p.startswith(prefix) and "/" not in p[len(prefix):]:
                name = p[len(prefix):]
                (names.discard if local is None else names.add)(name)
        names.discard(os.path.basename(self._staging or "/"))
        return sorted(names)

    # -- staging -----------------------------------------------------------------------

    def _stage_dir(self) -> str:
        if self._staging is None:
            self._staging = tempfile.mkdtemp(prefix=".wimfs-staging-", dir=self.root)
        return self._staging

    def _check_parent(self, path: str) -> None:
        parent = path.rpartition("/")[0]
        if not self.is_dir(parent):
            raise TargetPathError(f"{parent or '/'}: no such directory in {self.root}")
        real = os.path.realpath(self._source(parent) or "")
        if os.path.commonpath([real, self.root]) != self.root:
            raise ServicingError(f"{parent}: leads outside the target {self.root}")

    def _put(self, path: str, fill: Callable[[str], None]) -> None:
        self._check_parent(path)
        if self.is_dir(path):
            raise ServicingError(f"{path}: is a directory")
        fd, tmp = tempfile.mkstemp(dir=self._stage_dir(), prefix="new-")
        os.close(fd)
        fill(tmp)
        old = self._source(path)
        mode = os.stat(old).st_mode & 0o7777 if old and os.path.isfile(old) else 0o644
        os.chmod(tmp, mode)
        self._view[path] = tmp
        self._steps.append(_Step("put", path, tmp))

    def _write_file(self, path: str, data: bytes) -> None:
        def fill(tmp: str) -> None:
            with open(tmp, "wb") as f:
                f.write(data)
        self._put(path, fill)

    def _copy_in(self, path: str, local_path: str, *, deferred: bool) -> None:
        def fill(tmp: str) -> None:
            shutil.copyfile(local_path, tmp)
            st = os.stat(local_path)
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        self._put(path, fill)

    def _mkdirs(self, path: str) -> None:
        cur = ""
        for part in path.split("/"):
            cur = join(cur, part)
            if self.is_dir(cur):
                continue
            if self.exists(cur):
                raise ServicingError(f"{cur}: exists and is not a directory")
            self._check_parent(cur)
            real = os.path.join(self._source(cur.rpartition("/")[0]) or self.root, part)
            os.mkdir(real)
            self._made_dirs.append(real)

    def _remove(self, path: str, *, recursive: bool) -> None:
        src = self._existing(path)
        if not path:
            raise ServicingError("cannot remove the root of the target")
        if os.path.isdir(src) and not os.path.islink(src) and not recursive \
                and self.listdir(path):
            raise ServicingError(f"{path}: directory not empty (use --recursive)")
        for p in [p for p in self._view if p.startswith(path + "/")]:
            del self._view[p]
        self._view[path] = None
        self._steps.append(_Step("remove", path))

    def _rename(self, old: str, new: str) -> None:
        src = self._existing(old)
        self._check_parent(new)
        if not old:
            raise ServicingError("cannot rename the root of the target")
        if new == old or new.startswith(old + "/"):
            raise ServicingError(f"cannot rename {old} to {new}")
        self._view[new] = src
        self._view[old] = None
        self._steps.append(_Step("rename", new, old))

    def _link(self, existing: str, new: str) -> None:
        src = self._existing(existing)
        self._check_parent(new)
        if self.exists(new):
            raise ServicingError(f"{new}: exists")
        if os.path.isdir(src):
            raise ServicingError(f"{existing}: hard links to directories are not allowed")
        self._view[new] = src
        self._steps.append(_Step("link", new, existing))

    # -- hives ---------------------------------------------------------------------------

    def open_hive(self, path: str, *, write: bool) -> Hive:
        staged = self._hives.get(path)
        if staged is not None:
            return staged
        local = self._existing(join(path))
        if write and os.path.commonpath([os.path.realpath(local), self.root]) != self.root:
            raise ServicingError(f"{path}: leads outside the target {self.root}")
        return Hive.open(local, write=write)

    def stage_hive(self, path: str, hive: Hive) -> None:
        self._hives[path] = hive

    # -- commit / discard ----------------------------------------------------------------

    def _commit(self) -> None:
        undo: list[Callable[[], None]] = []
        try:
            for step in self._steps:
                self._apply(step, undo)
            self._commit_hives(undo)
        except BaseException:
            for fn in reversed(undo):
                try:
                    fn()
                except OSError as exc:   # pragma: no cover - a second failure
                    log.error("could not undo a step in %s: %s", self.root, exc)
            self._discard()
            raise
        self._cleanup()

    def _backup(self, real: str, undo: list[Callable[[], None]]) -> None:
        """Move whatever is at *real* into the staging directory (kept until the end)."""
        if not os.path.lexists(real):
            return
        keep = tempfile.mktemp(dir=self._stage_dir(), prefix="old-")
        os.rename(real, keep)
        undo.append(lambda: os.rename(keep, real))

    def _apply(self, step: _Step, undo: list[Callable[[], None]]) -> None:
        dest = self._real(step.path)
        if step.op == "put":
            self._backup(dest, undo)
            os.rename(step.source, dest)
            undo.append(lambda: os.rename(dest, step.source))
        elif step.op == "remove":
            self._backup(dest, undo)
        elif step.op == "rename":
            src = self._real(step.source)
            self._backup(dest, undo)
            os.rename(src, dest)
            undo.append(lambda: os.rename(dest, src))
        else:
            os.link(self._real(step.source), dest)
            undo.append(lambda: os.unlink(dest))

    def _commit_hives(self, undo: list[Callable[[], None]]) -> None:
        for path, hive in self._hives.items():
            if not hive.changed:
                continue
            real = self._real(path)
            original = None
            if len(self._hives) > 1 or self._steps:
                with open(real, "rb") as f:
                    original = f.read()
            hive.commit()
            if original is not None:
                undo.append(lambda real=real, original=original: _restore(real, original))

    def _discard(self) -> None:
        self._hives.clear()
        for real in reversed(self._made_dirs):
            try:
                os.rmdir(real)
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.ENOTEMPTY):
                    raise
        self._made_dirs.clear()
        self._cleanup()

    def _cleanup(self) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
        self._steps.clear()
        self._view.clear()


def _restore(real: str, data: bytes) -> None:
    """Write a hive file back whole (temp file + rename), as it was before the commit."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(real), prefix=".wimfs-restore-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, real)
