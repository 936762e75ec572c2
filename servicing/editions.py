"""Every edition at once: a servicing command on ``IMAGE.wim:all`` or ``IMAGE.wim:1,3,5``.

:func:`per_image` wraps a command's entry point. For a TARGET naming several images it
runs the command once per image, in turn, with the TARGET rewritten to ``IMAGE.wim:N``;
:func:`servicing.session.operation` then hands each run an image of one shared
``wimfs.overlay.open_images`` set instead of a session of its own. Each run sees its own
image (its own image-info); its clean end parks the image's edits in the set, and after
the last image the set writes all of them in ONE crash-safe commit (new blobs once --
data identical across editions is stored once --, header last): every edition has the
change or none.

A run refused for its edition (NotApplicableError, RefusedError) is reported for that
edition; unless ``--skip-not-applicable`` nothing is then changed in any image (exit 8
or 9). Any other error stops at once and changes nothing. The output is one record per
image (index, name, edition, result), ``--json`` one JSON document with a record per image.
All images share one time stamp (``frozen_filetime``): the same edit of the same hive in
several editions writes the same bytes, stored once.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import sys
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from contextvars import ContextVar
from dataclasses import dataclass, field

from servicing.errors import NotApplicableError, RefusedError

TARGET_DESTS = ("target", "image")


@dataclass
class ImageRecord:
    index: int
    name: str | None
    edition: str | None = None
    result: str = "done"            # done | not applicable | refused | skipped
    message: str = ""
    changes: list = field(default_factory=list)
    output: str = ""

    def to_json(self) -> dict:
        out = self.output.strip()
        try:
            parsed = json.loads(out) if out else None
        except ValueError:
            parsed = out
        return {"index": self.index, "name": self.name, "edition": self.edition,
                "result": self.result, "message": self.message or None,
                "changes": [c.to_json() for c in self.changes], "output": parsed}

    def line(self) -> str:
        what = self.result + (f": {self.message}" if self.message else "")
        return f"image {self.index} ({self.name or '-'}, edition {self.edition or '-'}): {what}"


class EditionRun:
    """The state of one multi-image run: the WIM, the image being served, the shared
    image set (opened at the first writing operation)."""

    def __init__(self, path: str, indexes: list[int]) -> None:
        self.path = path
        self.indexes = indexes
        self.current: ImageRecord | None = None
        self.images = None                  # wimfs.overlay.ImageSet

    def spec(self, index: int) -> str:
        return f"{self.path}:{index}"

    def serves(self, spec: str) -> bool:
        return self.current is not None and spec == self.spec(self.current.index)

    def open_target(self, *, write: bool, dry_run: bool, windir: str):
        """The current image as a target (writing: a member of the shared set)."""
        from servicing.target import open_target
        from servicing.target.image import ImageTarget
        from wimfs.overlay import open_images

        spec = self.spec(self.current.index)
        if not (write or dry_run):
            return open_target(spec, write=False, windir=windir)
        if self.images is None:
            self.images = open_images(self.path, self.indexes)
        return ImageTarget(self.images.open(self.current.index), spec, windir=windir,
                           dry_run=dry_run)

    def noted(self, target, edition: str | None) -> None:
        """`operation` opened *target* for the current image (its edition, its changes)."""
        self.current.edition = edition
        self.current.changes = target.changes


ACTIVE: ContextVar[EditionRun | None] = ContextVar("wimfs_edition_run", default=None)


def multi_spec(spec: object) -> tuple[str, list[int]] | None:
    """(WIM, indexes) when *spec* names several images of a WIM, else None."""
    import os

    if not isinstance(spec, str) or os.path.isdir(spec):
        return None
    from wimfs.imagespec import parse_image_spec
    parsed = parse_image_spec(spec)
    if not parsed.is_multi or not os.path.isfile(parsed.path):
        return None
    from wimfs.wim import Wim
    with Wim(parsed.path) as wim:
        return parsed.path, parsed.resolve(wim, allow_all=True)


def names_of(path: str, indexes: list[int]) -> dict[int, str | None]:
    from wimfs.wim import Wim
    with Wim(path) as wim:
        return {i: wim.info(i).name for i in indexes}


def run_each(path: str, indexes: list[int], run_one: Callable[[str, io.StringIO], object],
             *, skip_not_applicable: bool, as_json: bool, dry_run: bool,
             out=None) -> int:
    """Run *run_one(spec, out)* for each image, then commit all of them at once (see the
    module doc). Returns the exit code."""
    from wimfs.format.xmlinfo import frozen_filetime

    out = out or sys.stdout
    names = names_of(path, indexes)
    run = EditionRun(path, indexes)
    token = ACTIVE.set(run)
    records: list[ImageRecord] = []
    try:
        # One time stamp for the whole run: the same edit of identical hives or files in
        # several editions gives identical bytes, which the commit stores once.
        with frozen_filetime():
            refused = _run_all(run, names, run_one, records)
        if refused and not skip_not_applicable:
            _print(records, path, as_json, out, committed=False)
            first = refused[0][1]
            listed = ", ".join(str(index) for index, _ in refused)
            how = "not applicable to" if isinstance(first, NotApplicableError) else \
                "refused for"
            raise type(first)(f"{path}: {how} image {listed} ({first}); no image was "
                              "changed (--skip-not-applicable changes the others)")
        for r in records:
            if r.result != "done":
                r.result = "skipped"
        _finish(run, dry_run)
    except BaseException:
        if run.images is not None:
            run.images.discard()
        raise
    finally:
        ACTIVE.reset(token)
        gc.unfreeze()
    _print(records, path, as_json, out, committed=not dry_run and run.images is not None)
    return 0


def _run_all(run: EditionRun, names: dict, run_one, records: list[ImageRecord]
             ) -> list[tuple[int, Exception]]:
    """Run every image; the (index, error) of those refused for their edition."""
    refused: list[tuple[int, Exception]] = []
    for index in run.indexes:
        rec = run.current = ImageRecord(index, names[index])
        records.append(rec)
        buf = io.StringIO()
        try:
            with redirect_stdout(buf), redirect_stderr(buf):
                run_one(run.spec(index), buf)
        except (NotApplicableError, RefusedError) as exc:
            rec.result = "not applicable" if isinstance(exc, NotApplicableError) \
                else "refused"
            rec.message = str(exc)
            refused.append((index, exc))
        except BaseException as exc:
            if isinstance(exc, Exception) and len(exc.args) == 1 and \
                    isinstance(exc.args[0], str):
                exc.args = (f"image {index}: {exc.args[0]}",)
            raise
        finally:
            rec.output = buf.getvalue()
            run.current = None
            # An image's hives (reference cycles, megabytes each) go now, not at some
            # later collection: memory holds one image's work at a time. What survives
            # (the parked trees) is frozen, so the next image's collection scans only
            # its own objects (run_each unfreezes at the end).
            gc.collect()
            gc.freeze()
    return refused


def _finish(run: EditionRun, dry_run: bool) -> None:
    if run.images is None:
        return
    if dry_run:
        run.images.discard()
    else:
        run.images.commit()


def _print(records: list[ImageRecord], path: str, as_json: bool, out, *,
           committed: bool) -> None:
    if as_json:
        doc = {"wim": path, "committed": committed,
               "images": [r.to_json() for r in records]}
        out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return
    for r in records:
        out.write(r.line() + "\n")
        for text in r.output.splitlines():
            out.write(f"  {text}\n")


# -- wrapping command entry points ------------------------------------------------------------

def per_image(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command entry point that also takes a multi-image TARGET (``args.target`` or
    ``args.image``)."""

    def run(args: argparse.Namespace) -> int:
        dest = next((d for d in TARGET_DESTS if isinstance(getattr(args, d, None), str)),
                    None)
        found = multi_spec(getattr(args, dest)) if dest else None
        if found is None:
            return func(args)

        def one(spec: str, _out) -> object:
            return func(argparse.Namespace(**{**vars(args), dest: spec}))

        return run_each(*found, one, skip_not_applicable=getattr(
            args, "skip_not_applicable", False), as_json=getattr(args, "json", False),
            dry_run=getattr(args, "dry_run", False))

    run.per_image = True
    return run


def wrap_parsers(parser: argparse.ArgumentParser) -> None:
    """Wrap every ``func`` default of *parser* and its sub-commands with :func:`per_image`."""
    func = parser._defaults.get("func")
    if func is not None and not getattr(func, "per_image", False):
        parser._defaults["func"] = per_image(func)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                wrap_parsers(sub)
