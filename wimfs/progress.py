"""Progress: engine code reports, the command layer renders.

Engine code (writer, builder, apply, split, imaging, the rw daemon's commit) counts
bytes with a `Progress` and reports `ProgressEvent`s through a plain callback
(`ProgressCallback`); it never prints. The command layer passes `renderer(quiet)`,
which draws one tqdm bar per operation (bytes, rate, ETA) on stderr when stderr is a
terminal, and is None (nothing at all) otherwise or with ``-q``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ProgressEvent:
    label: str              # "writing", "applying", "verifying", "committing", ...
    done: int               # bytes done so far
    total: int              # bytes expected (may grow; 0: unknown)
    finished: bool = False  # the last event of this operation


ProgressCallback = Callable[[ProgressEvent], None]

REPORT_INTERVAL = 0.1       # seconds between events (the last one is always sent)


@dataclass
class Progress:
    """Counts the bytes of one operation and reports them to `callback` (if any)."""

    total: int = 0
    done: int = 0
    label: str = "writing"
    callback: ProgressCallback | None = None
    _last: float = field(default=0.0, repr=False)

    def add(self, n: int) -> None:
        self.done += n
        if self.callback is None:
            return
        now = time.monotonic()
        if now - self._last >= REPORT_INTERVAL:
            self._last = now
            self.callback(ProgressEvent(self.label, self.done, self.total))

    def finish(self) -> None:
        if self.callback is not None:
            self.callback(ProgressEvent(self.label, self.done, self.total, finished=True))


class _TqdmRenderer:
    """One tqdm bar per label; a new label (or a finished event) closes the bar."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.bar = None
        self.label: str | None = None

    def __call__(self, ev: ProgressEvent) -> None:
        from tqdm import tqdm

        if self.bar is not None and ev.label != self.label:
            self.close()
        if self.bar is None:
            self.label = ev.label
            self.bar = tqdm(total=ev.total or None, desc=ev.label, unit="B", unit_scale=True,
                            unit_divisor=1024, file=self.stream, leave=True,
                            mininterval=0.2, **_width(self.stream))
        total = max(ev.total, ev.done) or None
        if total != self.bar.total:
            self.bar.total = total
        self.bar.update(ev.done - self.bar.n)
        if ev.finished:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar = None
        self.label = None


def _width(stream) -> dict:
    """Follow the terminal's size; 80x24 when it reports none (a pty nobody sized)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError, AttributeError):
        size = os.terminal_size((0, 0))
    return {"dynamic_ncols": True} if size.columns and size.lines else \
        {"ncols": 80, "nrows": 24}


# A front end that draws its own bar (wimfs dism) sets this for the commands it runs.
_FACTORY: ContextVar[Callable[[bool], ProgressCallback | None] | None] = \
    ContextVar("progress_factory", default=None)


@contextmanager
def rendered_by(factory: Callable[[bool], ProgressCallback | None]) -> Iterator[None]:
    """Within the block, `renderer(quiet)` is `factory(quiet)` (which decides about
    terminals and quiet itself); the returned callback needs a `close()`."""
    token = _FACTORY.set(factory)
    try:
        yield
    finally:
        _FACTORY.reset(token)


def renderer(quiet: bool = False, stream=None) -> _TqdmRenderer | None:
    """The progress bar of a command: None when `quiet` or `stream` (stderr) is not a
    terminal, so nothing of it reaches logs or pipes."""
    factory = _FACTORY.get()
    if factory is not None:
        return factory(quiet)
    stream = stream or sys.stderr
    if quiet or not stream.isatty():
        return None
    return _TqdmRenderer(stream)


@contextmanager
def bar(quiet: bool = False, stream=None) -> Iterator[ProgressCallback | None]:
    """``with bar(args.quiet) as cb: engine(..., progress=cb)``: the bar is closed (its
    line ended) however the operation ends, so an error message starts on a new line."""
    cb = renderer(quiet, stream)
    try:
        yield cb
    finally:
        if cb is not None:
            cb.close()
