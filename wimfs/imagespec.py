"""The one image selector: ``IMAGE[:N|:NAME|:all|:N,M,...]``, ``--index N``, ``--name NAME``.

Every command that takes an image (info, ls, mount, apply, export, delete, verify and the
servicing TARGET) parses it here, so the forms and the error wording are the same
everywhere.

- ``parse_image_spec(text, index=..., name=...)`` splits ``text`` into the WIM path and
  the selector: the longest prefix of ``text`` that names an existing file is the WIM,
  what follows its colon is the selector (a number, ``all``, a list of numbers such as
  ``1,3,5``, or an image name, which may itself contain colons and spaces). ``--index``/``--name`` given separately are merged;
  giving the image twice is a usage error.
- ``ImageSpec.resolve(wim)`` turns the selector into 1-based image indexes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

from wimfs.errors import ImageNotFoundError, UsageError

FORMS = "IMAGE:N, IMAGE:NAME, --index N or --name NAME"


class _ImageInfo(Protocol):
    name: str | None


class ImageSource(Protocol):
    """What `ImageSpec.resolve` needs of a WIM (wimfs.wim.Wim has it)."""

    path: str
    image_count: int

    def info(self, index: int) -> _ImageInfo: ...


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _is_list(text: str) -> bool:
    parts = text.split(",")
    return len(parts) > 1 and all(_is_number(p) for p in parts)


def plural(n: int, word: str) -> str:
    """``1 image``, ``2 images``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class ImageSpec:
    path: str
    selector: str | None = None     # "all", a number, "1,3,5", or a name (see by_name)
    by_name: bool = False           # from --name: the selector is a name even if numeric

    def resolve(self, wim: ImageSource, *, allow_all: bool = False,
                default_single: bool = True) -> list[int]:
        """The 1-based indexes the selector names in `wim`."""
        n = wim.image_count
        sel = self.selector
        if sel is None:
            if n == 0:
                raise ImageNotFoundError(f"{wim.path}: the WIM contains no images")
            if n == 1 and default_single:
                return [1]
            raise UsageError(f"{wim.path} contains {plural(n, 'image')}: choose one with "
                             f"{FORMS}")
        if not self.by_name and sel == "all":
            if not allow_all:
                raise UsageError(f"{wim.path}: 'all' cannot be used here; choose one image "
                                 f"with {FORMS}")
            if n == 0:
                raise ImageNotFoundError(f"{wim.path}: the WIM contains no images")
            return list(range(1, n + 1))
        if not self.by_name and (_is_number(sel) or _is_list(sel)):
            indexes = [int(p) for p in sel.split(",")]
            if len(indexes) > 1 and not allow_all:
                raise UsageError(f"{wim.path}: a list of images cannot be used here; "
                                 f"choose one image with {FORMS}")
            for i in indexes:
                if not 1 <= i <= n:
                    raise ImageNotFoundError(f"{wim.path}: no image {i} (the WIM has "
                                             f"{plural(n, 'image')})")
            return indexes
        for i in range(1, n + 1):
            if wim.info(i).name == sel:
                return [i]
        raise ImageNotFoundError(f"{wim.path}: no image named {sel!r}")

    @property
    def is_multi(self) -> bool:
        """The selector names several images (``all`` or a list)."""
        return not self.by_name and self.selector is not None and (
            self.selector == "all" or _is_list(self.selector))

    def with_selector(self, text: str) -> ImageSpec:
        """This spec with a selector given as a separate argument (``delete WIM N``)."""
        if self.selector is not None:
            raise UsageError(f"the image is chosen twice ({self.path}:{self.selector} and "
                             f"{text!r}); use one of {FORMS}")
        return parse_image_spec(self.path + ":" + text)

    def resolve_one(self, wim: ImageSource, *, default_single: bool = True) -> int:
        return self.resolve(wim, default_single=default_single)[0]


def check_index(text: str, *, allow_all: bool = True) -> str:
    """Validate an ``--index`` value: a number >= 1, or ``all``."""
    if text == "all" and allow_all:
        return text
    if _is_number(text) and int(text) >= 1:
        return str(int(text))
    raise UsageError(f"bad image index {text!r}: expected a number from 1"
                     + (" or 'all'" if allow_all else ""))


def _split(text: str) -> tuple[str, str | None]:
    if os.path.exists(text):
        return text, None
    pos = len(text)
    while (pos := text.rfind(":", 0, pos)) > 0:
        if os.path.exists(text[:pos]):
            return text[:pos], text[pos + 1:]
    # Nothing exists: split off a trailing :N or :all so the error names the WIM.
    path, sep, sel = text.rpartition(":")
    if sep and path and (_is_number(sel) or sel == "all" or _is_list(sel)):
        return path, sel
    return text, None


def parse_image_spec(text: str, *, index: int | str | None = None,
                     name: str | None = None) -> ImageSpec:
    """Split ``IMAGE[:SELECTOR]`` and merge ``--index``/``--name`` (see module doc)."""
    if not text:
        raise UsageError("empty image path")
    path, sel = _split(text)
    if sel == "":
        raise UsageError(f"{text}: empty image selector after ':' (use {FORMS})")
    given = [s for s in (sel is not None and f"{path}:{sel}",
                         index is not None and "--index", name is not None and "--name") if s]
    if len(given) > 1:
        raise UsageError(f"the image is chosen twice ({' and '.join(given)}); use one of "
                         f"{FORMS}")
    if index is not None:
        return ImageSpec(path, check_index(str(index)))
    if name is not None:
        if not name:
            raise UsageError("--name needs a non-empty image name")
        return ImageSpec(path, name, by_name=True)
    if sel is not None and (_is_number(sel) or _is_list(sel)):
        sel = _check_list(sel)
    return ImageSpec(path, sel)


def _check_list(text: str) -> str:
    """``1`` or ``1,3,5``: each a number >= 1, none twice; normalized (``01`` -> ``1``)."""
    parts = [check_index(p, allow_all=False) for p in text.split(",")]
    twice = sorted({p for p in parts if parts.count(p) > 1}, key=int)
    if twice:
        raise UsageError(f"bad image list {text!r}: image {twice[0]} is named twice")
    return ",".join(parts)
