"""Fixtures for the read-write mount tests (tests/rw)."""

from __future__ import annotations

import contextlib
import hashlib
import shutil

import pytest

from tests.helpers import make_tree, require_fuse, require_tool, wimlib_capture
from tests.helpers.rwmount import RwMount


@pytest.fixture(scope="session")
def rw_src(tmp_path_factory):
    """A small generated tree (every kind the generators know), built once per worker."""
    return make_tree(tmp_path_factory.mktemp("rw_src") / "src", "all")


@pytest.fixture
def rw_factory(tmp_path):
    """rw_factory(wim, *mount_args, name="m") -> RwMount (mounted unless mount=False);
    every mount is torn down at the end of the test."""
    require_fuse()
    require_tool("wimlib-imagex", "fusermount3")
    made: list[RwMount] = []
    state = tmp_path / "state"

    def make(wim, *args, name="m", mount=True):
        m = RwMount(wim, tmp_path / name, state, *args)
        made.append(m)
        if mount:
            m.mount()
        return m

    yield make
    for m in reversed(made):
        with contextlib.suppress(Exception):
            m.close()


@pytest.fixture
def wim_copy(tmp_path, rw_src):
    """wim_copy(compress="lzx", src=None, **capture kw) -> a fresh WIM captured from src."""
    n = [0]

    def make(compress="lzx", src=None, **kw):
        n[0] += 1
        return wimlib_capture(src or rw_src, tmp_path / f"w{n[0]}.wim", compress=compress,
                              name="base", description="rw test base", **kw)
    return make


def sha1_file(path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


_ = shutil
