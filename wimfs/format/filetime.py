"""Windows FILETIME (100 ns units since 1601-01-01 UTC) conversions.

Apart from the XML (wimfs.format.xmlinfo re-exports these), so that the mount daemon and
the tree code use them without importing lxml."""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Iterator
from contextlib import contextmanager

FILETIME_EPOCH = _dt.datetime(1601, 1, 1, tzinfo=_dt.timezone.utc)


def filetime_to_datetime(ft: int) -> _dt.datetime:
    return FILETIME_EPOCH + _dt.timedelta(microseconds=ft // 10)


def filetime_to_unix_ns(ft: int) -> int:
    return (ft - 116444736000000000) * 100


def unix_ns_to_filetime(ns: int) -> int:
    return ns // 100 + 116444736000000000


_frozen: list[int] = []


def filetime_now() -> int:
    """The current time as a Windows FILETIME (100 ns units since 1601); inside
    `frozen_filetime()` the time it was entered."""
    return _frozen[-1] if _frozen else unix_ns_to_filetime(time.time_ns())


@contextmanager
def frozen_filetime() -> Iterator[int]:
    """One time stamp for everything done inside: the same operation on identical data
    (one edit on every edition of a WIM) then writes identical bytes, stored once."""
    _frozen.append(unix_ns_to_filetime(time.time_ns()))
    try:
        yield _frozen[-1]
    finally:
        _frozen.pop()
