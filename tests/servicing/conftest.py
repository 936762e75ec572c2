"""Shared fixtures of the servicing tests: corpus location and hive access.

The corpus is ``$WIMFS_CORPUS`` or ``<repo>/../shared/corpus``.  Without it
the corpus tests skip, except under CI (env ``CI`` set) where they fail.
"""

from __future__ import annotations

import gzip
import lzma
import os
import pathlib
import shutil

import pytest
from hypothesis import settings

REPO = pathlib.Path(__file__).resolve().parents[2]

settings.register_profile("servicing", deadline=None, max_examples=40, derandomize=True)
settings.load_profile("servicing")


@pytest.fixture(autouse=True)
def _verify_commits(monkeypatch):
    """Every commit re-reads the file and checks it equals the in-memory
    hive, so the in-place (changed pages only) commit is verified by every
    editing test."""
    from servicing.regf.hive import Hive
    monkeypatch.setattr(Hive, "_VERIFY_COMMIT", True)


def corpus_dir() -> pathlib.Path | None:
    p = pathlib.Path(os.environ.get("WIMFS_CORPUS") or (REPO.parent / "shared" / "corpus"))
    return p if (p / "hives").is_dir() else None


def require_corpus() -> pathlib.Path:
    p = corpus_dir()
    if p is None:
        if os.environ.get("CI"):
            pytest.fail("hive corpus not found (set WIMFS_CORPUS)")
        pytest.skip("hive corpus not found (set WIMFS_CORPUS)")
    return p / "hives"


@pytest.fixture
def hives() -> pathlib.Path:
    return require_corpus()


def unpack(src: pathlib.Path, dst_dir: pathlib.Path, name: str | None = None) -> pathlib.Path:
    """Copy a corpus file to *dst_dir*, decompressing .xz/.gz."""
    n = src.name
    opener = None
    if n.endswith(".xz"):
        n, opener = n[:-3], lzma.open
    elif n.endswith(".gz"):
        n, opener = n[:-3], gzip.open
    dst = dst_dir / (name or n)
    if opener:
        with opener(src, "rb") as f, open(dst, "wb") as g:
            shutil.copyfileobj(f, g)
    else:
        shutil.copyfile(src, dst)
    return dst


@pytest.fixture(autouse=True)
def _private_state(tmp_path, monkeypatch):
    """Servicing logs and image sessions go to the test's own state directory."""
    monkeypatch.setenv("WIMFS_STATE_DIR", str(tmp_path / "state"))


class TargetCase:
    """One servicing target of the parametrized ``target`` fixture: the same Windows
    tree as a directory or as image 1 of a WIM (captured by wimlib-imagex)."""

    def __init__(self, kind: str, tree: pathlib.Path, tmp: pathlib.Path) -> None:
        self.kind = kind
        self.tmp = tmp
        self.dir = tree
        self.wim = None
        if kind == "wim":
            from tests.helpers import wimlib_capture
            self.wim = wimlib_capture(tree, tmp / "install.wim", compress="xpress",
                                      name="Windows")
            shutil.rmtree(tree)
        self.spec = str(self.wim) + ":1" if self.wim else str(tree)
        self._applied = 0

    def tree(self) -> pathlib.Path:
        """The tree as it is now (a WIM: ``wimlib-imagex apply`` of image 1)."""
        if self.wim is None:
            return self.dir
        from tests.helpers import wimlib_apply
        self._applied += 1
        out = self.tmp / f"applied{self._applied}"
        wimlib_apply(self.wim, 1, out)
        return out

    def fingerprint(self) -> dict:
        """Every byte of the target: the WIM file, or every file and directory."""
        if self.wim is not None:
            return {"wim": self.wim.read_bytes()}
        from windows_trees import tree_fingerprint
        return tree_fingerprint(self.dir)


@pytest.fixture(params=["dir", "wim"])
def target(request, hives, tmp_path) -> TargetCase:
    """A Windows 10 tree (real SYSTEM, DEFAULT, default NTUSER.DAT) as a directory and as
    ``IMAGE.wim:1``: every test using it runs on both kinds of target."""
    from windows_trees import windows_tree
    tree = windows_tree(tmp_path / "tree", hives, "10clean")
    return TargetCase(request.param, tree, tmp_path)
