"""Windows command lines and batch-file lines, written by the rules Windows reads them with.

Two layers, each with its own rules:

* **An argument vector as one command line.** Programs built with the Microsoft C runtime
  (and ``CommandLineToArgvW``) split their command line at spaces and tabs outside double
  quotes; inside an argument, ``2n`` backslashes before a ``"`` stand for ``n`` backslashes
  and the quote delimits, ``2n+1`` backslashes before a ``"`` stand for ``n`` backslashes
  and a literal quote; other backslashes are literal (Microsoft, "Parsing C command-line
  arguments"). :func:`quote_arg` quotes only what needs it, as the .NET and Python
  runtimes do.
* **A command line as a line of a .cmd file.** cmd.exe reads a batch line in phases
  (Microsoft, "cmd" and "set" command references): first ``%`` expansion, where ``%%``
  stands for one literal ``%`` and ``%NAME%`` for an environment variable; then the
  special characters ``& | < > ( )`` and the escape ``^`` act only outside double quotes
  (each ``"`` toggles quoting; ``^`` is literal inside quotes). :func:`batch_line` turns a
  command line into the batch line that hands exactly that command line to the program:
  ``%`` doubled, the specials outside quotes escaped with ``^``. ``%NAME%`` references
  (``NAME`` a variable name, e.g. ``%SystemRoot%``) are kept so that they expand at run
  time, unless ``expand_vars=False``. Line breaks and NUL cannot be written into a batch
  line and are refused. Delayed expansion (``!``) is off in the scripts wimfs writes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from servicing.errors import ServicingError

SPECIAL = "&|<>()^"
#: an environment-variable reference that is kept for expansion at run time
VARIABLE = re.compile(r"%[A-Za-z_][A-Za-z0-9_()]*%")


class CommandLineError(ServicingError):
    """A command that cannot be written into a batch file (a line break or NUL)."""

    exit_code = 2


def quote_arg(arg: str) -> str:
    """One argument as the C runtime reads it back: quoted when empty or holding a space,
    a tab or a ``%NAME%`` reference (its value may hold spaces); a quote escaped with a
    backslash (and the backslashes before it doubled)."""
    quote = not arg or any(c in arg for c in " \t") or VARIABLE.search(arg) is not None
    out, backslashes = ['"' if quote else ""], 0
    for c in arg:
        if c == "\\":
            backslashes += 1
            continue
        if c == '"':
            out.append("\\" * (2 * backslashes + 1) + '"')
        else:
            out.append("\\" * backslashes + c)
        backslashes = 0
    out.append("\\" * (2 * backslashes) + '"' if quote else "\\" * backslashes)
    return "".join(out)


def join_argv(argv: Sequence[str]) -> str:
    """An argument vector as one Windows command line."""
    if not argv:
        raise CommandLineError("empty command")
    return " ".join(quote_arg(a) for a in argv)


def command_line(command: Sequence[str] | str) -> str:
    """A command given as a command line (kept) or as an argument vector (joined)."""
    line = command if isinstance(command, str) else join_argv(list(command))
    check_line(line)
    return line


def check_line(line: str) -> None:
    bad = next((c for c in line if c in "\r\n\0\x1a"), None)
    if bad is not None:
        raise CommandLineError(f"a command cannot contain {bad!r} (line break, NUL or "
                               f"end-of-file): {line[:60]!r}")
    if not line.strip():
        raise CommandLineError("empty command")


def _escape(text: str, expand_vars: bool) -> str:
    """Phase 2 escapes for the literal parts, ``%`` doubled; ``%NAME%`` kept whole."""
    out, quoted = [], False
    refs = list(VARIABLE.finditer(text)) if expand_vars else []
    for piece, is_ref in _pieces(text, refs):
        if is_ref:
            out.append(piece)
            continue
        for c in piece:
            if c == '"':
                quoted = not quoted
            elif not quoted and c in SPECIAL:
                out.append("^")
            out.append("%%" if c == "%" else c)
    return "".join(out)


def _pieces(text: str, refs):
    pos = 0
    for m in refs:
        yield text[pos:m.start()], False
        yield m.group(0), True
        pos = m.end()
    yield text[pos:], False


def batch_line(line: str, *, expand_vars: bool = True) -> str:
    """The .cmd line that runs *line* as the command line it is (see the module text)."""
    check_line(line)
    text = _escape(line, expand_vars)
    if text.lstrip().startswith((":", "@")):
        # a leading ':' would make the line a label and '@' would be eaten by cmd
        raise CommandLineError(f"a command cannot start with {text.lstrip()[0]!r}: "
                               f"{line[:60]!r}")
    return text


def batch_echo(text: str) -> str:
    """A batch line printing *text* as it is (``echo(`` prints even ``/?``, ``on``, "")."""
    if text:
        check_line(text)
    return "echo(" + _escape(text, False)
