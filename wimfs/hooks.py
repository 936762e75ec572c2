"""Extension points of the engine, filled in by the composition root (`wimfs.cli`).

The WINDOWS element of an image's XML (version, edition, languages) is read from the
registry hives of the tree; the engine has no registry code of its own, so it asks a
provider that the CLI registers (`servicing.features.windows_info:windows_info`). Without one,
images simply get no WINDOWS element.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lxml import etree

    from wimfs.image import Image, Stream

log = logging.getLogger(__name__)

# (image, read(stream) -> bytes) -> (WINDOWS element, image-level XML fields) or None.
WindowsInfo = Callable[["Image", Callable[["Stream"], bytes]],
                       "tuple[etree._Element, dict[str, str]] | None"]

_windows_info: WindowsInfo | str | None = None


def set_windows_info_provider(provider: WindowsInfo | str | None) -> None:
    """Register the WINDOWS-element provider: a callable, or "module:function" imported
    on first use (so that registering costs nothing for commands that never need it)."""
    global _windows_info
    _windows_info = provider


def _provider() -> WindowsInfo | None:
    global _windows_info
    if isinstance(_windows_info, str):
        mod, _, func = _windows_info.partition(":")
        try:
            _windows_info = getattr(importlib.import_module(mod), func)
        except (ImportError, AttributeError) as exc:
            log.debug("no Windows information provider (%s): %s", _windows_info, exc)
            _windows_info = None
    return _windows_info


def windows_xml(img: Image, read: Callable[[Stream], bytes], *, has_windows: bool = False):
    """(WINDOWS element or None, extra image-level XML fields) for a tree; (None, {})
    without a provider, for a tree that holds no Windows, or when it cannot be read (a
    damaged hive must not make a capture or commit fail). `has_windows`: the image's XML
    has a WINDOWS element already; when the provider says none of the files it reads
    changed (its `unchanged(img)`), (None, {}) keeps that element."""
    fn = _provider()
    if fn is None:
        return None, {}
    try:
        unchanged = getattr(fn, "unchanged", None)
        if has_windows and unchanged is not None and unchanged(img):
            return None, {}
        found = fn(img, read)
    except Exception as exc:  # noqa: BLE001
        log.warning("cannot read Windows version information: %s", exc)
        return None, {}
    return found if found is not None else (None, {})


def stream_reader(wim=None) -> Callable[[Stream], bytes]:
    """A `read(stream)` for providers: streams with a pending source (capture, new or
    changed files of a session) are read from it, others from `wim`'s blobs."""
    def read(s) -> bytes:
        src = getattr(s, "source", None)
        if src is not None:
            return b"".join(src.chunks(1 << 20))
        if wim is not None and s.blob is not None:
            return wim.read_blob(s.blob)
        raise ValueError("stream has no readable content")
    return read
