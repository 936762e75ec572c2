"""One servicing operation from start to end: open the TARGET, log, commit or discard.

Every servicing command (``wimfs reg``, ``wimfs update``, ``wimfs image-info`` and the
DISM-area commands after them) runs its work inside :func:`operation`::

    with operation(spec, opts, command="reg import x.reg", write=True) as target:
        ...                       # edit files and hives of target

A clean exit commits (with ``--dry-run``: discards after printing what would change); an
exception discards, logs the failure and re-raises it with a note that the target was
left as it was. Under a multi-image run (``IMAGE.wim:all``, servicing.editions) the
image is a member of the run's shared image set: a clean exit parks its edits for the
run's one commit.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from servicing.editions import ACTIVE
from servicing.log import ServicingLog
from servicing.options import CommonOptions, add_common_arguments, options_from_args
from servicing.target import Target, open_target

__all__ = ["operation", "changes_json", "CommonOptions", "add_common_arguments",
           "options_from_args"]


@contextmanager
def operation(spec: str, opts: CommonOptions, *, command: str, write: bool,
              out=None) -> Iterator[Target]:
    """Open *spec* as a target, run the body, commit or discard, and log all of it."""
    log = ServicingLog(opts.log_path, opts.log_level)
    try:
        log.info(f"command: {command}")
        target = _open(spec, opts, write)
        log.info(f"target: {target.description}")
        info = _info()
        log.info(f"image version: {_version(target, info)}")
        if (run := ACTIVE.get()) is not None and run.serves(spec):
            run.noted(target, info.edition_id)
        try:
            with target:
                yield target
        except BaseException as exc:
            log.error(f"failed: {exc}; {target.description} was left as it was")
            if write:
                _note_unchanged(exc, target)
            raise
        log.changes(target.changes, dry_run=opts.dry_run)
        if opts.dry_run:
            _print_dry_run(target, opts, out or sys.stdout)
        log.info("done" if not opts.dry_run else "done (dry run, nothing written)")
    finally:
        log.close()


def _open(spec: str, opts: CommonOptions, write: bool) -> Target:
    """The TARGET; one image of a multi-image run (servicing.editions) is served by it."""
    run = ACTIVE.get()
    if run is not None and run.serves(spec):
        return run.open_target(write=write, dry_run=opts.dry_run, windir=opts.windir)
    return open_target(spec, write=write, dry_run=opts.dry_run, windir=opts.windir)


def _info():
    from servicing.features.image_info import ImageInfo
    return ImageInfo()


def _version(target: Target, info) -> str:
    from servicing.features.image_info import image_version
    return image_version(target, info)


def _note_unchanged(exc: BaseException, target: Target) -> None:
    """Say in the one error line that nothing was changed."""
    if len(exc.args) == 1 and isinstance(exc.args[0], str):
        exc.args = (f"{exc.args[0]} ({target.description} left unchanged)",)


def changes_json(target: Target) -> dict:
    return {"target": target.description, "dry_run": target.dry_run,
            "changes": [c.to_json() for c in target.changes]}


def _print_dry_run(target: Target, opts: CommonOptions, out) -> None:
    if opts.json:
        doc = changes_json(target)
        out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return
    for c in target.changes:
        out.write(f"would be {c.describe()}\n")
    if not target.changes:
        out.write("nothing would change\n")
