"""Fixtures for the overlay tier: `Overlay` and `open_image` driven directly (no kernel),
on WIMs made by wimlib-imagex."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import make_ntfs_wim, make_tree, require_tool, wimlib_capture


@pytest.fixture(scope="session")
def ov_src(tmp_path_factory) -> Path:
    """A generated tree of every kind (hard links, symlinks, unicode, deep, large)."""
    require_tool("wimlib-imagex")
    return make_tree(tmp_path_factory.mktemp("ov_src") / "src", "all")


@pytest.fixture(scope="session")
def ov_base(tmp_path_factory, ov_src) -> Path:
    """The tree captured once by wimlib; tests copy it (`wim` fixture)."""
    return wimlib_capture(ov_src, tmp_path_factory.mktemp("ov_base") / "base.wim",
                          compress="lzx", name="base")


@pytest.fixture
def wim(tmp_path, ov_base) -> Path:
    p = tmp_path / "t.wim"
    shutil.copyfile(ov_base, p)
    return p


@pytest.fixture(scope="session")
def ntfs_base(tmp_path_factory):
    """The NTFS-rich fixture (SDs, named streams, DOS names, reparse points) via ntfs-3g."""
    require_tool("mkntfs", "ntfs-3g", "wimlib-imagex")
    return make_ntfs_wim(tmp_path_factory.mktemp("ov_ntfs"))


@pytest.fixture
def ntfs_wim(tmp_path, ntfs_base) -> Path:
    p = tmp_path / "ntfs.wim"
    shutil.copyfile(ntfs_base.wim, p)
    return p
