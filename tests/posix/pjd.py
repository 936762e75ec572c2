"""Run pjdfstest's .t files against a directory and collect the failed subtests.

A small TAP reader (like `prove -j N`, which does not say *why* a subtest failed):
each test file runs with the directory as its working directory; a failure is a
`not ok` line that is not a TODO, or a planned subtest that never reported.
"""

from __future__ import annotations

import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

PLAN = re.compile(r"^1\.\.(\d+)")
RESULT = re.compile(r"^(not )?ok (\d+)(.*)$")


@dataclass(frozen=True, slots=True)
class Failure:
    test: str        # "chmod/00.t"
    number: int      # subtest number, 0 for a file that did not finish its plan
    message: str     # pjdfstest's "- tried '...', expected X, got Y" (may be empty)


def parse_tap(test: str, output: str) -> tuple[int, list[Failure]]:
    """(subtests run, failures) of one test file's TAP output."""
    planned, seen, failures = None, set(), []
    for line in output.splitlines():
        if m := PLAN.match(line):
            planned = int(m.group(1))
        elif m := RESULT.match(line):
            n, rest = int(m.group(2)), m.group(3).strip()
            seen.add(n)
            if m.group(1) and "# TODO" not in rest:
                failures.append(Failure(test, n, rest.removeprefix("- ")))
    if planned is None or any(n not in seen for n in range(1, planned + 1)):
        failures.append(Failure(test, 0, f"planned {planned}, ran {len(seen)}"))
    return len(seen), failures


def test_files(tests_dir: str, dirs: list[str] | None = None) -> list[str]:
    out = []
    for d in sorted(dirs or os.listdir(tests_dir)):
        sub = os.path.join(tests_dir, d)
        if os.path.isdir(sub):
            out += [f"{d}/{f}" for f in sorted(os.listdir(sub)) if f.endswith(".t")]
    return out


def run_one(tests_dir: str, test: str, cwd: str, timeout: float) -> tuple[int, list[Failure]]:
    try:
        p = subprocess.run(["/bin/sh", os.path.join(tests_dir, test)], cwd=cwd,
                           capture_output=True, text=True, errors="replace",
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return 0, [Failure(test, 0, f"timed out after {timeout:.0f} s")]
    return parse_tap(test, p.stdout)


def run_suite(tests_dir: str, cwd: str, jobs: int = 2, dirs: list[str] | None = None,
              timeout: float = 300) -> tuple[int, list[Failure]]:
    """Run every test file (in `jobs` parallel processes): (subtests run, failures)."""
    files = test_files(tests_dir, dirs)
    total, failures = 0, []
    with ThreadPoolExecutor(jobs) as pool:
        for n, f in pool.map(lambda t: run_one(tests_dir, t, cwd, timeout), files):
            total += n
            failures += f
    return total, failures


if __name__ == "__main__":      # python -m tests.posix.pjd TESTS_DIR CWD [JOBS]
    import sys
    n, fails = run_suite(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3
                         else 2)
    for f in fails:
        print(f"{f.test} {f.number} {f.message}")
    print(f"{n} subtests, {len(fails)} failed")
