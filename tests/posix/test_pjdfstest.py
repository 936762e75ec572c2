"""pjdfstest (../shared/third_party/pjdfstest), built in a temporary directory, against two
read-write mounts (`--allow-other`: pjdfstest switches to other uids) run side by side:
an image captured with `--unix-data` must pass every subtest; an image without UNIX data
may fail only in the test files `rules.EXPECTED` lists, each for its documented rule.

Cost: one build (~15 s) and the whole suite twice, the two runs in parallel with one test
file at a time each (two processes, so the other pytest-xdist worker keeps a core).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers.env import REPO_ROOT, require_fuse, require_tool
from tests.helpers.rwmount import RwMount, wimfs_rw
from tests.posix import pjd
from tests.posix.rules import EXPECTED, explains

SOURCE = REPO_ROOT.parent / "shared" / "third_party" / "pjdfstest"


def build(dst: Path) -> Path:
    shutil.copytree(SOURCE, dst)
    subprocess.run(["chmod", "-R", "u+w", str(dst)], check=True)
    for cmd in (["autoreconf", "-ifs"], ["./configure"], ["make", "pjdfstest"]):
        p = subprocess.run(cmd, cwd=dst, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, f"{' '.join(cmd)}: {p.stdout[-2000:]}{p.stderr[-2000:]}"
    return dst / "tests"


def run_mount(base: Path, tests: Path, name: str, unix: bool) -> tuple[int, list, str]:
    src = base / f"{name}-src"
    src.mkdir()
    (src / "file").write_text("data\n")
    wim, state = base / f"{name}.wim", base / f"{name}-state"
    args = ["capture", src, wim, "-q"] + (["--unix-data"] if unix else [])
    wimfs_rw(state, *args, check=True)
    with RwMount(wim, base / f"{name}-mnt", state, "--allow-other") as m:
        total, failures = pjd.run_suite(str(tests), str(m.mnt), jobs=1)
        log = m.log()
    return total, failures, log


def _report(failures) -> str:
    return "\n".join(f"{f.test} {f.number}: {f.message[:300]}" for f in failures[:40])


@pytest.mark.timeout(900)
def test_pjdfstest_on_read_write_mounts():
    require_fuse()
    require_tool("autoreconf", "automake", "gcc", "make")
    if not SOURCE.is_dir():
        pytest.fail(f"pjdfstest not found at {SOURCE}")
    base = Path(tempfile.mkdtemp(prefix="wimfs-pjdfstest-"))
    try:
        os.chmod(base, 0o755)           # other uids walk the mounts below it
        tests = build(base / "pjdfstest")
        with ThreadPoolExecutor(2) as pool:
            unix = pool.submit(run_mount, base, tests, "unix", True)
            plain = pool.submit(run_mount, base, tests, "plain", False)
            (u_total, u_fail, u_log), (p_total, p_fail, p_log) = unix.result(), \
                plain.result()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert u_total > 8000 and p_total > 8000
    assert not u_fail, f"--unix-data image: {len(u_fail)} failed\n{_report(u_fail)}"
    first: dict[str, pjd.Failure] = {}
    for f in p_fail:
        first.setdefault(f.test, f)
    wrong = [f for t, f in first.items() if t not in EXPECTED or
             not explains(EXPECTED[t], f.message)]
    assert not wrong, f"image without UNIX data, unexplained failures:\n{_report(wrong)}"
    for log in (u_log, p_log):      # error replies are answers, logged at debug level
        assert "ERROR:" not in log and "Traceback" not in log, log[-3000:]
