"""Fixtures for the overlay tier: `Overlay` and `open_image` driven directly (no kernel),
on WIMs made by wimlib-imagex."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import make_tree, require_tool, wimlib_capture
from tests.helpers.ntfs import SD_DIR_INHERITABLE
from tests.helpers.wimlib import wimlib_dir_detailed
from wimfs.overlay import Overlay


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


@pytest.fixture
def sd_wim(wim, tmp_path) -> Path:
    """`wim` with an inheritable security descriptor on `hardlinks/` and a named stream on
    `hardlinks/a/pair_1` (wimlib cannot capture either from a Linux directory), set through
    an Overlay and checked with `wimlib-imagex dir --detailed`."""
    ov = Overlay(str(wim), 1, str(tmp_path / "sd_staging"))
    try:
        ov.set_ntfs_xattr(ov.resolve("hardlinks").inode, "system.ntfs_acl",
                          SD_DIR_INHERITABLE)
        ov.set_named_stream(ov.resolve("hardlinks/a/pair_1").inode, "ads", b"named stream")
        ov.commit()
    finally:
        ov.discard()
    info = wimlib_dir_detailed(wim)
    assert bytes.fromhex(info["hardlinks"]["sd"]) == SD_DIR_INHERITABLE
    assert info["hardlinks/a/pair_1"]["streams"]["ads"] == len(b"named stream")
    return wim
