"""The TAP reader and the rules of tests/posix, on pjdfstest's own output lines."""

from __future__ import annotations

from tests.posix.pjd import Failure, parse_tap
from tests.posix.rules import EXPECTED, RULES, classify


def test_tap_failures_todos_and_missing_subtests():
    out = ("1..5\nok 1\nnot ok 2 - tried 'mkfifo x 0644', expected 0, got EPERM\n"
           "not ok 3 # TODO known\nok 4 # TODO passed\n")
    n, fails = parse_tap("mkfifo/00.t", out)
    assert n == 4
    assert fails == [Failure("mkfifo/00.t", 2, "tried 'mkfifo x 0644', expected 0, got EPERM"),
                     Failure("mkfifo/00.t", 0, "planned 5, ran 4")]
    assert parse_tap("a.t", "ok 1\n")[1] == [Failure("a.t", 0, "planned None, ran 1")]
    assert parse_tap("a.t", "1..2\nok 1\nok 2\n") == (2, [])


def test_rules_explain_only_their_own_failures():
    cases = {
        "tried 'mknod pjdfstest_1 b 0644 1 2', expected 0, got EPERM": "special",
        "tried '-u 65534 -g 65534 mkfifo d/f 0644', expected 0, got EPERM": "special",
        "tried 'bind pjdfstest_1', expected 0, got EPERM": "special",
        "tried 'lstat pjdfstest_1 uid,gid', expected 123,456, got 0,0": "owner",
        "tried 'stat pjdfstest_1 mode', expected 0111, got 0444": "mode",
        "tried '-u 65534 -g 65534 create d/f 0644', expected 0, got EACCES": "other-user",
        "tried 'unlink pjdfstest_1', expected 0, got ENOENT": None,
        "tried 'mkdir pjdfstest_1 0755', expected 0, got EPERM": None,
        "tried 'stat pjdfstest_1 ctime', expected 1, got 2": None,
        "": None,
    }
    for msg, rule in cases.items():
        assert classify(msg) == rule, msg
    assert set(EXPECTED.values()) == set(RULES)
