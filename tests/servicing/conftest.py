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
