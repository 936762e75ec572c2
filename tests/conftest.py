"""Shared pytest configuration for wimfs tests.

Test infrastructure lives in ``tests/helpers`` (import ``tests.helpers``); the repo root is put on
sys.path so that works from any rootdir / under pytest-xdist.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))


def pytest_report_header(config):
    impl = os.environ.get("WIMFS_TEST_MOUNT_IMPL", "wimfs") or "wimfs"
    return [f"wimfs mount implementation under test: {impl} (WIMFS_TEST_MOUNT_IMPL)"]


@pytest.fixture
def require_fuse():
    from tests.helpers import require_fuse as _require

    _require()


@pytest.fixture(scope="session")
def corpus():
    from tests.helpers import corpus_dir

    return corpus_dir()
