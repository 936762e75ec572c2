"""An image inside a WIM, serviced without mounting it.

The image is opened in process through the same copy-on-write overlay a read-write
mount uses (``wimfs.overlay.open_image``): new files inherit their parent's security
descriptor and get FILE_ATTRIBUTE_ARCHIVE exactly as through FUSE, because it is the
same code. Registry hives are edited in memory (``Hive.from_bytes(..., write=True)``)
and written back through the overlay, whose commit (new blobs appended, header written
last, WIM ``flock``ed) makes the whole operation crash-safe: the WIM holds the old or
the new state. A WIM mounted read-write elsewhere is refused (BusyError, exit 7).
No FUSE is involved.
"""

from __future__ import annotations

import os

from wimfs.errors import UsageError

from servicing.errors import TargetNotFoundError
from servicing.regf import Hive
from servicing.target import Target, TargetKind, join

LOG_SUFFIXES = (".LOG1", ".LOG2", ".LOG")


def resolve_spec(spec: str) -> tuple[str, int]:
    """``PATH[:N|:NAME]`` (the one image selector, wimfs.imagespec) -> (WIM, index)."""
    from wimfs.imagespec import parse_image_spec
    from wimfs.wim import Wim

    parsed = parse_image_spec(spec)
    if not os.path.isfile(parsed.path):
        raise TargetNotFoundError(f"{spec}: neither a directory nor a WIM file "
                                  "(TARGET is DIR or IMAGE.wim[:N|:NAME])")
    if parsed.is_multi:
        raise UsageError(f"{spec}: this command works on one image; choose it as IMAGE:N "
                         "or IMAGE:NAME")
    with Wim(parsed.path) as wim:
        return parsed.path, parsed.resolve_one(wim)


class ImageTarget(Target):
    kind = TargetKind.IMAGE

    def __init__(self, session, description: str, *, windir: str = "Windows",
                 dry_run: bool = False) -> None:
        super().__init__(description, windir=windir, dry_run=dry_run)
        self.session = session

    @classmethod
    def open(cls, spec: str, *, write: bool, dry_run: bool = False,
             windir: str = "Windows") -> ImageTarget:
        from wimfs.overlay import open_image

        path, index = resolve_spec(spec)
        session = open_image(path, index, write=write or dry_run)
        return cls(session, f"{path}:{index}", windir=windir, dry_run=dry_run)

    # -- path API: the overlay session's ----------------------------------------------

    def read_file(self, path: str) -> bytes:
        return self.session.read_file(join(path))

    def listdir(self, path: str) -> list[str]:
        return sorted(self.session.listdir(join(path)))

    def exists(self, path: str) -> bool:
        return self.session.exists(join(path))

    def is_dir(self, path: str) -> bool:
        return self.session.is_dir(join(path))

    def resolve(self, path: str) -> str | None:
        found = self.session.resolve(join(path))
        return None if found is None else join(found)

    def _write_file(self, path: str, data: bytes) -> None:
        self.session.write_file(path, data)

    def _copy_in(self, path: str, local_path: str, *, deferred: bool) -> None:
        self.session.copy_in(path, local_path, deferred=deferred)

    def _mkdirs(self, path: str) -> None:
        self.session.mkdirs(path)

    def _remove(self, path: str, *, recursive: bool) -> None:
        self.session.remove(path, recursive=recursive)

    def _rename(self, old: str, new: str) -> None:
        self.session.rename(old, new)

    def _link(self, existing: str, new: str) -> None:
        self.session.link(existing, new)

    # -- hives: in memory, written back through the overlay ---------------------------------

    def _logs(self, path: str) -> list[tuple[str, bytes]]:
        found = []
        for suffix in LOG_SUFFIXES:
            real = self.resolve(path + suffix)
            if real is not None and not self.is_dir(real):
                found.append((real, self.read_file(real)))
        return found

    def open_hive(self, path: str, *, write: bool) -> Hive:
        path = join(path)
        logs = [data for _, data in self._logs(path) if data]
        # A hive known by its SHA-1 (no logs to replay) is parsed once read-only, and
        # its keys' name indexes are built once, per operation (image-info, the log's
        # version line and the command all read SOFTWARE) and for all the images of an
        # `IMAGE.wim:all` run (editions share their SYSTEM hive). Keyed by content, a
        # cached parse is never stale: a write gives the file a new SHA-1.
        digest = None if logs else self.session.content_hash(path)
        cache = self.session.blob_cache
        hive = cache.parsed(("hive", digest)) if digest is not None and not write else None
        if hive is None:
            data = self.read_file(path)
            hive = Hive.from_bytes(data, write=write, logs=logs)
            if digest is not None:
                shared = cache.parsed(("names", digest))
                if shared is None:
                    shared = ({}, {})
                    cache.put_parsed(("names", digest), shared, len(data) // 8)
                hive.share_name_indexes(shared)
                if not write:
                    cache.put_parsed(("hive", digest), hive, len(data))
        return hive

    def stage_hive(self, path: str, hive: Hive) -> None:
        if not hive.changed:
            return
        path = join(path)
        self.session.write_file(path, hive.to_bytes())
        # The new primary is clean, so Windows ignores its logs; empty them anyway (as a
        # hive committed in a directory does) so that no tool replays stale pages.
        for log_path, data in self._logs(path):
            if data:
                self.session.write_file(log_path, b"")

    # -- commit / discard --------------------------------------------------------------------

    @property
    def changed(self) -> bool:
        return bool(self.changes) or bool(getattr(self.session, "changed", False))

    def _commit(self) -> None:
        self.session.commit()       # writes nothing when the tree did not change

    def _discard(self) -> None:
        self.session.discard()
