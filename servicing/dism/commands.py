"""The DISM command table: each built command's spellings, options and handler, and the
one way a handler runs a native wimfs command (its own parser and handler, so DISM and
`wimfs` share every line of implementation)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from enum import StrEnum

from servicing.dism.codes import (
    BUSY,
    DLL_NOT_FOUND,
    E_FAIL,
    FILE_NOT_FOUND,
    INVALID_DATA,
    INVALID_PARAMETER,
    NOT_SUPPORTED,
    DismError,
)
from servicing.dism.grammar import CommandLine, Token, bad_argument, unknown_option
from servicing.dism.output import Console

log = logging.getLogger("wimfs.dism")


class Kind(StrEnum):
    FLAG = "flag"              # /ReadOnly
    VALUE = "value"            # /MountDir:DIR, once
    MULTI = "multi"            # /Driver:X, repeatable
    UNSUPPORTED = "unsupported"  # DISM has it, wimfs does not: Error 50


@dataclass
class Call:
    """One command's bound options, the console and the run's flags."""

    line: CommandLine
    opts: dict[str, str | bool | list[str]]
    console: Console
    debug: bool = False
    image: dict | None = None       # `wimfs image-info --json` of /Image (image commands)

    def get(self, *names: str) -> str | None:
        for n in names:
            v = self.opts.get(n)
            if isinstance(v, str):
                return v
        return None

    def flag(self, name: str) -> bool:
        return bool(self.opts.get(name))

    def need(self, *names: str) -> str:
        v = self.get(*names)
        if v is None:
            raise bad_argument(f"The /{names[0]} option is required for "
                               f"{self.line.command.spelled.rstrip(':=')}.")
        return v


@dataclass(frozen=True)
class Command:
    names: tuple[str, ...]                 # DISM spellings, Win7 name first
    handler: Callable[[Call], object]      # returns the --json document (or None)
    options: dict[str, Kind] = field(default_factory=dict)
    usage: str = ""
    summary: str = ""
    value: bool = False                    # /Apply-Unattend:FILE style
    image: bool = False                    # serves /Image:TARGET (WIM commands do not)


TABLE: dict[str, Command] = {}


def register(cmd: Command) -> Command:
    for n in cmd.names:
        TABLE[n.lower()] = cmd
    return cmd


def lookup(tok: Token) -> Command:
    cmd = TABLE.get(tok.name)
    if cmd is None:
        raise unknown_option(tok.name)
    if tok.value and not cmd.value:
        raise bad_argument(f"The {tok.spelled.rstrip(':=')} option does not take an "
                           "argument.")
    return cmd


def bind(cmd: Command, tokens: list[Token]) -> dict[str, str | bool | list[str]]:
    """The options of one command checked against its table: unknown, duplicated,
    missing or superfluous values are Error 87, options wimfs lacks are Error 50."""
    opts: dict[str, str | bool | list[str]] = {}
    for tok in tokens:
        kind = cmd.options.get(tok.name)
        spelled = tok.spelled.rstrip(":=")
        if kind is None:
            raise unknown_option(tok.name)
        if kind is Kind.UNSUPPORTED:
            raise DismError(f"The {spelled} option is not supported by wimfs dism.",
                            NOT_SUPPORTED)
        if kind is Kind.FLAG:
            if tok.value:
                raise bad_argument(f"The {spelled} option does not take an argument.")
            value: str | bool = True
        elif not tok.value:
            raise bad_argument(f"The {spelled} option requires an argument.")
        else:
            value = tok.value
        if kind is Kind.MULTI:
            opts.setdefault(tok.name, []).append(value)       # type: ignore[union-attr]
        elif tok.name in opts:
            raise bad_argument(f"The {spelled} option was specified more than once.")
        else:
            opts[tok.name] = value
    return opts


# wimfs exit statuses (a native command that returned instead of raising) -> DISM codes.
_CODE_OF_EXIT = {2: INVALID_PARAMETER, 3: INVALID_DATA, 4: FILE_NOT_FOUND, 5: E_FAIL,
                 6: DLL_NOT_FOUND, 7: BUSY}


def native(call: Call, argv: list[str]) -> str:
    """Run `wimfs ARGV` in process (the native parser builds the namespace, the native
    handler does the work) with DISM's progress bar; returns what it printed on stdout.
    Its own messages go to the DISM log."""
    from wimfs import progress
    from wimfs.cli import build_parser

    log.info("wimfs %s", " ".join(argv))
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err), \
            progress.rendered_by(call.console.progress):
        args = build_parser().parse_args(argv)
        args.debug = call.debug
        rc = args.func(args) or 0
    for text in (out.getvalue(), err.getvalue()):
        for line in text.splitlines():
            log.info("  %s", line)
    if rc:
        lines = [ln.removeprefix("wimfs: error: ") for ln in err.getvalue().splitlines()
                 if ln.strip()]
        raise DismError(lines[-1] if lines else f"wimfs {argv[0]} failed ({rc})",
                        _CODE_OF_EXIT.get(rc, E_FAIL))
    return out.getvalue()


def native_json(call: Call, argv: list[str]):
    """The records of a native command's --json."""
    return json.loads(native(call, argv + ["--json"]))
