"""Fixtures of the `wimfs dism` tests: a private wimfs state dir (mount records, the DISM
log), a wimlib-made two-image WIM, and runners for `wimfs dism` and the native commands."""

from __future__ import annotations

import io
import json
import shutil
from contextlib import redirect_stdout

import pytest

from tests.helpers import wimlib_append, wimlib_capture


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    d = tmp_path / "state"
    d.mkdir()
    monkeypatch.setenv("WIMFS_STATE_DIR", str(d))
    return d


@pytest.fixture
def src(tmp_path):
    root = tmp_path / "src"
    (root / "Windows" / "System32").mkdir(parents=True)
    (root / "Windows" / "System32" / "a.txt").write_bytes(b"alpha\n" * 1000)
    (root / "b.bin").write_bytes(bytes(range(256)) * 50)
    return root


@pytest.fixture
def wim2(tmp_path, src):
    if shutil.which("wimlib-imagex") is None:
        pytest.fail("wimlib-imagex is required for the dism tests")
    w = tmp_path / "two.wim"
    wimlib_capture(src, w, name="First image", description="the first")
    (src / "extra.txt").write_text("more")
    wimlib_append(src, w, name="Second", description="the second")
    return w


def dism(*args) -> tuple[int, str]:
    """`wimfs dism ARGS` through the wimfs command line; (exit status, stdout)."""
    from wimfs.cli import main

    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(["dism", *map(str, args)])
    return rc, buf.getvalue()


def native_json(*args):
    """The --json records of a native wimfs command."""
    from wimfs.cli import main

    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main([*map(str, args), "--json"])
    assert rc == 0
    return json.loads(buf.getvalue())
