"""Batch-file lines of the first-boot scripts, checked line by line against the rules
cmd.exe and the Microsoft C runtime read them with.

Oracles, independent of servicing.formats.cmdline:

* ``subprocess.list2cmdline`` (Python's implementation of the C runtime's quoting rules)
  for argument vectors;
* :func:`cmd_reads` below, a model of how cmd.exe reads one batch line, written from
  Microsoft's documentation of cmd and of ``%`` in batch files: ``%%`` is one ``%``,
  ``%NAME%`` is a variable, a lone ``%`` vanishes; then each ``"`` toggles quoting, and
  outside quotes ``^x`` is a literal ``x`` while a bare ``& | < >`` ends the command;
* :func:`crt_argv`, the C runtime's splitting of a command line ("Parsing C command-line
  arguments": 2n backslashes + quote -> n backslashes and a delimiter, 2n+1 -> n and a
  literal quote), applied to what cmd hands on.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from servicing.features import firstboot_scripts as scripts
from servicing.formats.cmdline import (
    CommandLineError, batch_echo, batch_line, join_argv, quote_arg)

ENV = {"SystemRoot": "C:\\Windows", "WINDIR": "C:\\Windows", "ProgramFiles(x86)":
       "C:\\Program Files (x86)"}


def cmd_reads(line: str, env=ENV) -> str:
    """The command line cmd.exe starts for a batch *line* (raises on a bare operator)."""
    out, i = [], 0
    while i < len(line):                       # phase 1: percent expansion
        if line[i] != "%":
            out.append(line[i])
            i += 1
        elif line.startswith("%%", i):
            out.append("%")
            i += 2
        else:
            end = line.find("%", i + 1)
            name = line[i + 1:end] if end > 0 else None
            if name and name in env:
                out.append(env[name])
                i = end + 1
            elif name and end > 0:
                i = end + 1                    # an undefined variable expands to nothing
            else:
                i += 1                         # a lone % is dropped
    text, res, quoted, j = "".join(out), [], False, 0
    while j < len(text):                       # phase 2: quotes, escapes, operators
        c = text[j]
        if c == '"':
            quoted = not quoted
        elif not quoted and c == "^":
            j += 1
            c = text[j] if j < len(text) else ""
        elif not quoted and c in "&|<>":
            raise AssertionError(f"bare {c!r} in {line!r}")
        res.append(c)
        j += 1
    return "".join(res)


def crt_argv(line: str) -> list[str]:
    """The C runtime's argv of a command line (first argument included)."""
    args, cur, have, quoted, i = [], [], False, False, 0
    while i < len(line):
        c = line[i]
        if c == "\\":
            n = len(line[i:]) - len(line[i:].lstrip("\\"))
            if i + n < len(line) and line[i + n] == '"':
                cur.append("\\" * (n // 2))
                if n % 2:
                    cur.append('"')
                    i += n + 1
                else:
                    i += n
                have = True
                continue
            cur.append("\\" * n)
            i += n
            have = True
            continue
        if c == '"':
            quoted, have = not quoted, True
        elif c in " \t" and not quoted:
            if have:
                args.append("".join(cur))
            cur, have = [], False
        else:
            cur.append(c)
            have = True
        i += 1
    if have:
        args.append("".join(cur))
    return args


# (argument vector, the batch line written out by hand from the rules above)
CASES = [
    (["dism", "/online"], "dism /online"),
    (["C:\\Program Files\\x.exe", "a b"], '"C:\\Program Files\\x.exe" "a b"'),
    (["echo", "100%"], "echo 100%%"),
    (["run", "%SystemRoot%\\wimfs\\x.cab"], 'run "%SystemRoot%\\wimfs\\x.cab"'),
    (["run", "%1 %~dp0"], 'run "%%1 %%~dp0"'),
    (["tool", "R&D"], "tool R^&D"),
    (["tool", "R & D"], 'tool "R & D"'),
    (["tool", "a^b", "c|d", "<e>"], "tool a^^b c^|d ^<e^>"),
    (["tool", "(x)"], "tool ^(x^)"),
    (["tool", 'say "hi"'], 'tool "say \\"hi\\""'),
    (["tool", 'a"b&c'], 'tool a\\"b&c'),
    (["tool", "dir\\"], "tool dir\\"),
    (["tool", "dir with space\\"], 'tool "dir with space\\\\"'),
    (["tool", ""], 'tool ""'),
    (["C:\\A&B %x%\\run.exe"], '"C:\\A&B %x%\\run.exe"'),
    (["C:\\A&B\\run.exe", "%ProgramFiles(x86)%\\y"],
     'C:\\A^&B\\run.exe "%ProgramFiles(x86)%\\y"'),
]


@pytest.mark.parametrize("argv,expected", CASES)
def test_argv_to_batch_line(argv, expected):
    line = join_argv(argv)
    if not any("%" in a for a in argv):       # a %NAME% argument is quoted in addition
        assert line == subprocess.list2cmdline(argv)
    written = batch_line(line)
    assert written == expected
    env = ENV | {"x": "%x%"}
    want = [re.sub(r"%([^%]+)%", lambda m: env.get(m.group(1), m.group(0)), a)
            for a in argv]
    assert crt_argv(cmd_reads(written, env)) == want


def test_literal_percent_without_expansion():
    assert batch_line("x %SystemRoot% 5%", expand_vars=False) == "x %%SystemRoot%% 5%%"
    assert cmd_reads(batch_line("x %SystemRoot% 5%", expand_vars=False)) == \
        "x %SystemRoot% 5%"


@pytest.mark.parametrize("text", ["a & b", "/?", "on", "", "50% ^done^", 'say "x & y" &z',
                                  ":label", "(x)"])
def test_echo_prints_text(text):
    line = batch_echo(text)
    assert line.startswith("echo(")
    assert cmd_reads(line)[len("echo("):] == text


@pytest.mark.parametrize("bad", ["a\r\nb", "a\nb", "a\0b", "", "   ", ":label x", "@echo x"])
def test_unwritable_commands_refused(bad):
    with pytest.raises(CommandLineError) as e:
        batch_line(bad)
    assert e.value.exit_code == 2


def test_quote_arg_matches_list2cmdline_on_awkward_arguments():
    for arg in ["", "a", "a b", 'a"b', "a\\", "a\\\\b", 'a\\"b', "a b\\\\", "\t", '"']:
        assert quote_arg(arg) == subprocess.list2cmdline([arg])
        assert crt_argv("x " + quote_arg(arg)) == ["x", arg]


def _lint(text: str) -> list[str]:
    """Line-by-line checks of a .cmd file: CRLF endings, every goto/call :label exists,
    every % is part of %%, %~1, %%D or a %NAME% reference, cmd reads every line without a
    bare operator except the redirections and the for-loop's own."""
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    lines = text.split("\r\n")[:-1]
    labels = {ln[1:].split()[0].lower() for ln in lines if ln.startswith(":")}
    for ln in lines:
        for target in re.findall(r"\b(?:goto|call) :?(\w+)", ln, re.I):
            assert target.lower() in labels | {"eof"}, (target, ln)
        stripped = re.sub(r"%%|%~1|%[A-Za-z_][A-Za-z0-9_()]*%", "", ln)
        assert "%" not in stripped, ln
        assert len(ln) < 8191
    return lines


def test_runner_lines():
    lines = _lint(scripts.runner())
    # the CmdLine value the runner writes back is the one wimfs sets offline
    [again] = [ln for ln in lines if "/v CmdLine /t REG_SZ /d \"cmd" in ln]
    assert crt_argv(cmd_reads(again.removesuffix(" >nul")))[8] == scripts.CMDLINE
    # every reg add the runner makes, as reg.exe's argv
    regs = [crt_argv(cmd_reads(ln.removesuffix(" >nul"))) for ln in lines
            if ln.startswith("reg add")]
    assert [(a[4], a[6], a[8]) for a in regs] == [
        ("CmdLine", "REG_SZ", scripts.CMDLINE), ("SetupType", "REG_DWORD", "2"),
        ("SetupShutdownRequired", "REG_DWORD", "1"), ("SetupType", "REG_DWORD", "0"),
        ("CmdLine", "REG_SZ", "")]
    assert all(a[:4] == ["reg", "add", "HKLM\\SYSTEM\\Setup", "/v"] and a[-1] == "/f"
               for a in regs)


def test_action_cleanup_chain_lines():
    action = _lint(scripts.action("R&D 100%", join_argv(["tool", "a b", "c&d"])))
    assert action == ["@echo off", "echo(wimfs first-boot action: R^&D 100%%",
                      'tool "a b" c^&d']
    cleanup = _lint(scripts.cleanup(["Packages\\K 50%\\x.cab", "Packages\\K 50%\\y.cab"]))
    assert cleanup == ["@echo off",
                       'del /f /q "%SystemRoot%\\wimfs\\Packages\\K 50%%\\x.cab"',
                       'del /f /q "%SystemRoot%\\wimfs\\Packages\\K 50%%\\y.cab"',
                       'rd "%SystemRoot%\\wimfs\\Packages\\K 50%%" 2>nul',
                       'rd "%SystemRoot%\\wimfs\\Packages" 2>nul']
    chain = _lint(scripts.chain('C:\\t\\x.exe "a b" 5%', "REG_SZ", 1))
    assert crt_argv(cmd_reads(chain[1].removesuffix(" >nul")))[8] == 'C:\\t\\x.exe "a b" 5%'
    assert crt_argv(cmd_reads(chain[2].removesuffix(" >nul")))[4:9] == \
        ["SetupType", "/t", "REG_DWORD", "/d", "1"]
    assert cmd_reads(chain[3]) == 'C:\\t\\x.exe "a b" 5%'
