"""The one servicing log, as DISM has one logging engine for all its providers.

Every servicing operation appends to one file: ``--log-path FILE``, by default
``$XDG_STATE_HOME/wimfs/log/servicing.log`` (``/var/lib/wimfs/log/servicing.log``
for root). ``--log-level`` 1..4 = errors, warnings, info (default), debug, as DISM's
/LogLevel. Lines follow DISM's dism.log layout: time stamp, level, component, text::

    2026-11-30 05:41:19, Info                  WIMFS  command: reg import changes.reg

At info level the log holds the command, the target, the image version and every file
added, replaced or removed and every registry value set or deleted (hive, key, name, old
and new type and data, long data shortened).
"""

from __future__ import annotations

import os
import time
from enum import IntEnum

from wimfs.paths import state_dir
from wimfs.errors import WimfsError

from servicing.changes import Change


class Level(IntEnum):
    ERROR = 1
    WARNING = 2
    INFO = 3
    DEBUG = 4


_LABEL = {Level.ERROR: "Error", Level.WARNING: "Warning", Level.INFO: "Info",
          Level.DEBUG: "Debug"}


def default_log_path() -> str:
    return os.path.join(state_dir(), "log", "servicing.log")


class ServicingLog:
    """Appends lines to the servicing log; a log that cannot be opened is an error
    before anything is changed (DISM fails the same way on a bad /LogPath)."""

    def __init__(self, path: str | None = None, level: int = Level.INFO) -> None:
        if not 1 <= int(level) <= 4:
            raise WimfsError(f"--log-level must be 1 to 4, not {level}")
        self.level = Level(int(level))
        self.path = path or default_log_path()
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self._f = open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            raise WimfsError(f"cannot open the servicing log {self.path}: "
                             f"{exc.strerror}") from None

    def write(self, level: Level, text: str) -> None:
        if level > self.level or self._f is None:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        for line in text.splitlines() or [""]:
            self._f.write(f"{stamp}, {_LABEL[level]:<21} WIMFS  {line}\n")
        self._f.flush()

    def error(self, text: str) -> None:
        self.write(Level.ERROR, text)

    def warning(self, text: str) -> None:
        self.write(Level.WARNING, text)

    def info(self, text: str) -> None:
        self.write(Level.INFO, text)

    def debug(self, text: str) -> None:
        self.write(Level.DEBUG, text)

    def changes(self, changes: list[Change], *, dry_run: bool = False) -> None:
        prefix = "would be " if dry_run else ""
        for c in changes:
            self.info(prefix + c.describe())

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


class NullLog(ServicingLog):
    """No log file (library use without a front end)."""

    def __init__(self) -> None:     # noqa: D107 - nothing to open
        self.level = Level.ERROR
        self.path = ""
        self._f = None
