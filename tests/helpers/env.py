"""Environment probes: repo root, corpus location, FUSE availability, which mount implementation to test."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "no", "false")


def corpus_dir() -> Path:
    """The third-party test corpus: ``$WIMFS_CORPUS`` or ``<repo>/../shared/corpus``.

    Missing corpus -> skip, or fail when ``$CI`` is set (CI must not silently skip it).
    """
    env = os.environ.get("WIMFS_CORPUS")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "corpus"
    if not (path / "MANIFEST.md").is_file():
        msg = f"test corpus not found at {path} (set WIMFS_CORPUS)"
        if _truthy("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def fuse_missing_reason() -> str | None:
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed (apt-get install fuse3)"
    return None


def require_fuse() -> None:
    """Skip the calling test when FUSE is unusable; fail loudly if ``WIMFS_REQUIRE_FUSE=1``."""
    reason = fuse_missing_reason()
    if reason is None:
        return
    if _truthy("WIMFS_REQUIRE_FUSE"):
        pytest.fail(f"WIMFS_REQUIRE_FUSE is set but FUSE is unusable: {reason}")
    pytest.skip(f"FUSE unavailable: {reason}")


def require_tool(*names: str) -> None:
    """Skip if an external tool is missing (fail when $CI is set)."""
    for name in names:
        if shutil.which(name) is None:
            msg = f"{name} is not installed (scripts/setup installs it)"
            if _truthy("CI"):
                pytest.fail(msg)
            pytest.skip(msg)


def mount_impl() -> str:
    """``wimfs`` (default) or ``wimlib`` (``WIMFS_TEST_MOUNT_IMPL=wimlib``: validate tests with wimlib's mount)."""
    impl = os.environ.get("WIMFS_TEST_MOUNT_IMPL", "wimfs").strip().lower() or "wimfs"
    if impl not in ("wimfs", "wimlib"):
        raise ValueError(f"WIMFS_TEST_MOUNT_IMPL must be wimfs or wimlib, not {impl!r}")
    return impl


def using_wimlib_mount() -> bool:
    return mount_impl() == "wimlib"


def run(cmd, *, check=True, timeout=300, **kw) -> subprocess.CompletedProcess:
    """subprocess.run with captured text output; on failure raise with the command's stderr in the message."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    proc = subprocess.run([str(c) for c in cmd], timeout=timeout, **kw)
    if check and proc.returncode != 0:
        def _txt(b):
            if b is None:
                return ""
            return b.decode(errors="replace") if isinstance(b, bytes) else b
        raise AssertionError(
            f"command failed (exit {proc.returncode}): {' '.join(map(str, cmd))}\n"
            f"--- stdout ---\n{_txt(proc.stdout)[-4000:]}\n--- stderr ---\n{_txt(proc.stderr)[-4000:]}"
        )
    return proc
