"""DISM's grammar, console pieces and exit-status table, checked against
dism-reference.md; real command lines from public scripts; argument fuzzing."""

from __future__ import annotations

import pathlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from servicing.dism import grammar
from servicing.dism.codes import DismError, exit_status
from servicing.dism.output import bar_text, format_code, table_lines
from tests.servicing.dism.conftest import dism

LINES = pathlib.Path(__file__).with_name("real_command_lines.txt")


def test_option_forms():
    line = grammar.parse(["/Image=C:\\mount", "-LOGLEVEL:4", "/mount-WIM",
                          '/MountDir:"C:\\my dir"', "/ReadOnly", "/Name:a:b c"])
    assert line.image == "C:\\mount" and line.globals["loglevel"] == "4"
    assert line.command.name == "mount-wim"
    assert [(t.name, t.value) for t in line.options] == [
        ("mountdir", "C:\\my dir"), ("readonly", None), ("name", "a:b c")]


def test_split_command_line_like_windows():
    assert grammar.split_command_line(
        'dism /Mount-Image /ImageFile:"C:\\Program Files\\x.wim"  /Index:1 "/Name:a b"') == [
        "dism", "/Mount-Image", "/ImageFile:C:\\Program Files\\x.wim", "/Index:1", "/Name:a b"]


@pytest.mark.parametrize("code,text", [(87, "87"), (2, "2"), (50, "50"),
                                       (0x800F081E, "0x800f081e"), (0xC1420127, "0xc1420127"),
                                       (0x800F080C, "0x800f080c")])
def test_codes_print_as_dism_does(code, text):
    assert format_code(code) == text       # dism-reference.md 3.1: %d / 0x%x


@pytest.mark.parametrize("code,status", [(0, 0), (2, 2), (3, 3), (5, 5), (50, 50), (87, 87),
                                         (3010, 101), (0x800F081E, 112), (0x800F080C, 111),
                                         (0xC1420127, 124), (0x80004005, 1)])
def test_exit_status(code, status):
    # The issue: codes that fit exit with themselves; the others with the NOTES-dism table.
    assert exit_status(code) == status
    assert 0 <= exit_status(code) < 126


def test_progress_bar_text():
    # dism-reference.md 3.1: [==========================100.0%==========================]
    assert bar_text(1.0) == "[" + "=" * 26 + "100.0%" + "=" * 26 + "]"
    half = bar_text(0.5)
    assert len(half) == len(bar_text(1.0)) and "50.0%" in half
    assert half.startswith("[" + "=" * 26) and half.endswith(" " * 26 + "]")


def test_table_layout_matches_the_reference_sample():
    # dism-reference.md 3.2, the /Get-Drivers sample (first three columns).
    rec = [("Published Name", "oem19.inf"), ("Original File Name", "applewtp64.inf"),
           ("Inbox", "No")]
    assert table_lines([rec]) == [
        "-------------- | ------------------ | -----",
        "Published Name | Original File Name | Inbox",
        "-------------- | ------------------ | -----",
        "oem19.inf      | applewtp64.inf     | No"]


def _real_lines():
    out = []
    for raw in LINES.read_text().splitlines():
        if raw.strip() and not raw.startswith("#"):
            args = grammar.split_command_line(raw)
            assert re.fullmatch(r"(?i)(dism\\)?dism(\.exe)?", args[0]), raw
            out.append(pytest.param(args[1:], id=raw[:70]))
    return out


@pytest.mark.parametrize("args", _real_lines())
def test_real_command_lines(args, tmp_path, monkeypatch):
    """Each real line parses; it runs, or fails with a DISM error block: for a command
    wimfs has not built that is DISM's unknown-option error 87."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    line = grammar.parse(args)
    assert line.command is not None
    from servicing.dism.commands import TABLE

    rc, out = dism(*args)
    assert "Traceback" not in out and "internal error" not in out
    if line.command.name not in TABLE:
        assert rc == 87
        assert f"\nError: 87\n\nThe {line.command.name} option is unknown.\n" in out
    elif rc:
        assert re.search(r"\nError: (\d+|0x[0-9a-f]+)\n\n.+\n", out), out
        assert "The DISM log file can be found at " in out
    written = {p.name for p in work.iterdir()} - {grammar.peek(args, "logpath")}
    assert not written or rc == 0, f"a failed command wrote {written}"


OPTION = st.builds(
    lambda lead, name, sep, value: f"{lead}{name}{sep}{value}",
    st.sampled_from(["/", "-", "", "//", "--"]),
    st.one_of(st.sampled_from(sorted(grammar.GLOBALS) + sorted(grammar.KNOWN_COMMANDS) +
                              ["Index", "Name", "MountDir", "WimFile", "ImageFile", "?",
                               "Commit", "Discard", "ReadOnly", "Compress", "FileSize"]),
              st.text(max_size=8)),
    st.sampled_from(["", ":", "=", ':"']),
    st.text(max_size=12))


@given(st.lists(OPTION, max_size=6))
def test_fuzzed_command_lines_never_trace(tmp_path_factory, args):
    """Random slash-option strings: an exit status from DISM's table and DISM's text,
    never a traceback."""
    import os
    cwd = tmp_path_factory.mktemp("fuzz")
    old = os.getcwd()
    os.chdir(cwd)
    try:
        try:
            grammar.parse(args)
        except DismError as exc:
            assert exc.code == 87
        rc, out = dism(*args)
    finally:
        os.chdir(old)
    assert "Traceback" not in out and "internal error" not in out
    assert 0 <= rc < 126
    if rc:
        assert re.search(r"\nError: (\d+|0x[0-9a-f]+)\n\n", out), out


def test_only_output_formats_dism_codes():
    """architecture-review.md 3 rule (f): only servicing/dism/output.py writes `Error: `."""
    root = pathlib.Path(__file__).resolve().parents[3]
    offenders = [str(p.relative_to(root)) for d in ("servicing", "wimfs")
                 for p in (root / d).rglob("*.py")
                 if re.search(r"""["']\\n?Error: [{0%]""", p.read_text())
                 and p.name != "output.py"]
    assert offenders == []
    assert re.search(r"Error: \{format_code", (root / "servicing/dism/output.py").read_text())


def test_errors_map_to_dism_codes():
    from servicing.dism.codes import code_for
    from servicing.errors import NotApplicableError, PendingError, RefusedError, \
        TargetNotFoundError
    from wimfs.errors import BusyError, DependencyError, NotAWimError, PathNotFoundError, \
        UsageError, WimCorruptError

    # dism-reference.md 3.4 codes; ServicingError subclasses carry their own.
    cases = [(UsageError("x"), 87, "87", 87), (PathNotFoundError("x"), 2, "2", 2),
             (PermissionError(13, "denied"), 5, "5", 5), (NotAWimError("x"), 11, "11", 11),
             (WimCorruptError("x"), 13, "13", 13), (RefusedError("x"), 50, "50", 50),
             (TargetNotFoundError("x"), 2, "2", 2),
             (NotApplicableError("x"), 0x800F081E, "0x800f081e", 112),
             (PendingError("x"), 0x800F082F, "0x800f082f", 116),
             (BusyError("x"), 170, "170", 104),
             (DependencyError("x"), 0xC0000135, "0xc0000135", 125),
             (RuntimeError("bug"), 0x80004005, "0x80004005", 1)]
    for exc, code, text, status in cases:
        assert (code_for(exc), format_code(code_for(exc)), exit_status(code_for(exc))) == \
            (code, text, status), exc


def test_front_end_never_loads_fuse(wim2):
    """The front end reaches FUSE only through the native mount daemon (a process)."""
    import subprocess
    import sys

    code = ("import sys, io\nfrom servicing.dism import main\n"
            f"main(['/Get-ImageInfo', '/ImageFile:{wim2}', '/Index:1'], out=io.StringIO())\n"
            "main(['/?'], out=io.StringIO())\n"
            "print('\\n'.join(sorted(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                            text=True).stdout.split()
    assert "servicing.dism.wimcmds" in loaded
    assert not [m for m in loaded if m.startswith(("wimfs.fuse", "pyfuse3", "trio"))]


def test_international_set_commands_combine():
    # dism-reference.md 1.1: several intl /Set-* may be combined on one line
    line = grammar.parse(["/Image:C:\\m", "/Set-SysLocale:de-DE", "/Set-UserLocale:fr-FR",
                          '/Set-TimeZone:"W. Europe Standard Time"'])
    assert line.command.name == "set-syslocale" and line.command.value == "de-DE"
    assert [(t.name, t.value) for t in line.options] == [
        ("set-userlocale", "fr-FR"), ("set-timezone", "W. Europe Standard Time")]
    for args in (["/Get-Intl", "/Set-SysLocale:de-DE"], ["/Set-SysLocale:de-DE", "/Get-Intl"]):
        with pytest.raises(DismError, match="Only one servicing command"):
            grammar.parse(args)
