"""Inode numbers of a read-only mount served from the compact tree (wimfs.image_tree):
derived from the entries' offsets, so the same after the kernel forgot the inodes, and one
per hard-link group, checked against `wimlib-imagex apply`."""

from __future__ import annotations

import os

import pytest

from tests.helpers import mounted, require_tool, wimlib_apply, wimlib_capture
from tests.mount.test_lazy_tree import _tree

pytestmark = [pytest.mark.mount]


def _forget_all() -> None:
    """Make the kernel drop its dentries and inodes (FORGET reaches the daemon)."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2\n")


def _stats(top) -> dict[str, tuple[int, int]]:
    out = {}
    for dp, dirs, files in os.walk(top):
        for n in dirs + files:
            p = os.path.join(dp, n)
            st = os.lstat(p)
            out[os.path.relpath(p, top)] = (st.st_ino, st.st_nlink)
    return out


def test_inode_numbers_are_stable_across_forget(tmp_path):
    require_tool("wimlib-imagex")
    if os.geteuid() != 0:
        pytest.skip("needs root (drop_caches)")
    _tree(tmp_path / "src")
    w = wimlib_capture(tmp_path / "src", tmp_path / "c.wim")
    applied = tmp_path / "applied"
    wimlib_apply(w, 1, applied)
    mp = tmp_path / "m"
    with mounted(w, mp):
        first = _stats(mp)
        _forget_all()
        again = _stats(mp)
        # visited in another order (links/z first), after forgetting everything
        st_z = os.stat(mp / "links/z/three.txt")
    assert again == first
    want = _stats(applied)
    assert {k: v[1] for k, v in first.items() if not os.path.isdir(applied / k)} == \
        {k: v[1] for k, v in want.items() if not os.path.isdir(applied / k)}
    groups: dict[int, set[str]] = {}
    for rel, (ino, _n) in first.items():
        groups.setdefault(ino, set()).add(rel)
    want_groups: dict[int, set[str]] = {}
    for rel, (ino, _n) in want.items():
        want_groups.setdefault(ino, set()).add(rel)
    assert sorted(map(sorted, groups.values())) == sorted(map(sorted, want_groups.values()))
    assert st_z.st_ino == first["links/x/one.txt"][0]


def test_index_all_numbers_each_image_apart(tmp_path):
    require_tool("wimlib-imagex")
    for k in (1, 2):
        _tree(tmp_path / f"src{k}")
    w = wimlib_capture(tmp_path / "src1", tmp_path / "two.wim")
    wimlib_capture(tmp_path / "src2", w, append=True)
    mp = tmp_path / "m"
    with mounted(w, mp, "--index", "all"):
        one, two = _stats(mp / "1"), _stats(mp / "2")
        assert os.stat(mp / "2").st_ino == (2 << 32) + 1
        assert os.stat(mp / "2/a/..").st_ino == (2 << 32) + 1
    assert one.keys() == two.keys()
    assert all(ino >> 32 == 1 for ino, _n in one.values())
    assert all(ino >> 32 == 2 for ino, _n in two.values())
    assert {k: v[0] & 0xFFFFFFFF for k, v in one.items()} == \
        {k: v[0] & 0xFFFFFFFF for k, v in two.items()}      # the same trees, the same offsets
