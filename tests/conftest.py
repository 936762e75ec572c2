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


# -- hygiene: directories a module/class/package fixture made with tmp_path_factory are
# removed when that fixture is torn down (function tmp_path dirs go when their test passes,
# pyproject's tmp_path_retention_policy; the whole basetemp when the session passes), so
# repeated runs do not fill /tmp. Kept when a test failed, for debugging.

_FIXTURE_DIRS: dict[int, list[Path]] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    if fixturedef.scope == "function":
        yield
        return
    factory = request.config._tmp_path_factory
    base = factory.getbasetemp()
    before = set(base.iterdir())
    yield
    made = [p for p in base.iterdir() if p not in before and p.is_dir()]
    if made:
        _FIXTURE_DIRS.setdefault(id(fixturedef), []).extend(made)


def pytest_fixture_post_finalizer(fixturedef, request):
    dirs = _FIXTURE_DIRS.pop(id(fixturedef), [])
    if request.session.testsfailed:
        return
    for d in dirs:
        _remove_unless_mounted(d)


def _remove_unless_mounted(root: Path) -> None:
    """rmtree that never descends into a (still) mounted file system."""
    import shutil

    for sub, dirs, _ in os.walk(root):
        if any(os.path.ismount(os.path.join(sub, d)) for d in dirs):
            return
    shutil.rmtree(root, ignore_errors=True)
