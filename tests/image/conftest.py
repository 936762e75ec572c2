"""Fixtures for the image-management tests (capture/apply/export/...)."""

from __future__ import annotations

import os
import shutil
import stat

import pytest

from tests.helpers import make_tree
from tests.helpers.trees import KINDS

KINDS_NO_MODES = [k for k in KINDS if k != "modes"]


@pytest.fixture
def need_wimlib():
    if shutil.which("wimlib-imagex") is None:
        pytest.skip("wimlib-imagex is not installed")


@pytest.fixture(scope="session")
def tree(tmp_path_factory):
    """Every generated kind except 'modes' (permission bits are not part of a plain
    capture): empty files, chunk-boundary files, random+zeros, unicode names, deep
    trees, hard links, symlinks (relative, absolute inside/outside, dangling)."""
    root = tmp_path_factory.mktemp("image-src") / "tree"
    root.mkdir()
    for k in KINDS_NO_MODES:
        make_tree(root / k, k)
    return root


def wimfs(*args, check: bool = True) -> int:
    from wimfs.cli import main

    rc = main([str(a) for a in args])
    if check:
        assert rc == 0, f"wimfs {' '.join(map(str, args))} -> {rc}"
    return rc


def file_times(root) -> dict[str, int]:
    """mtime (ns, rounded to the 100 ns of a FILETIME) of every non-directory."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                out[os.path.relpath(p, root)] = st.st_mtime_ns // 100
    return out


def metadata_view(wim_path) -> dict:
    """path -> comparable per-dentry metadata read with the wimfs engine."""
    from wimfs.wim import Wim

    out = {}
    with Wim(str(wim_path)) as w:
        img = w.image(1)
        groups: dict[int, str] = {}
        for d in img.walk():
            groups.setdefault(id(d.inode), d.path)
        for d in img.walk():
            i = d.inode
            rp = w.read_blob(i.reparse.blob) if i.reparse and i.reparse.blob else None
            out[d.path] = (
                i.attributes, i.security_id, i.creation_time, i.last_write_time,
                i.reparse_tag, i.rp_flags, i.rp_reserved, rp, i.tagged_items,
                i.data.hash if i.data and any(i.data.hash) else None, len(i.dentries),
                groups[id(i)] if not i.is_directory else None, d.short_name,
                sorted(i.named_streams),
            )
    return out
