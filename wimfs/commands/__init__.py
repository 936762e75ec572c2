"""The wimfs commands: argument parsers (parsers.py) and one thin module per command."""

from __future__ import annotations

import glob
import os

from wimfs.errors import NotAWimError, PathNotFoundError
from wimfs.imagespec import ImageSpec, parse_image_spec


def wim_file(path: str) -> str:
    """`path` if it can be a WIM; else the one-line error naming it."""
    if os.path.isdir(path):
        raise NotAWimError(f"{path} is a directory, not a WIM file")
    if not os.path.exists(path):
        raise PathNotFoundError(f"{path}: no such file")
    return path


def check_refs(refs: list[str]) -> None:
    """Every --ref names a file, or a glob that matches one."""
    for p in refs:
        if not (glob.glob(p) if glob.has_magic(p) else os.path.exists(p)):
            raise PathNotFoundError(f"--ref {p}: no such file")


def image_spec(args, attr: str = "image") -> ImageSpec:
    """The image a command's arguments choose (IMAGE[:SEL], --index, --name); the WIM and
    its --ref parts are checked before anything runs."""
    spec = parse_image_spec(getattr(args, attr), index=getattr(args, "index", None),
                            name=getattr(args, "name", None))
    wim_file(spec.path)
    check_refs(getattr(args, "ref", None) or [])
    return spec
