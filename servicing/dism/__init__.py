"""`wimfs dism`: DISM's command line, console text and exit codes over the native wimfs
commands (syntax and text only; every command runs the native implementation).

    from servicing.dism import main
    main(["/Get-ImageInfo", "/ImageFile:install.wim"])   # -> exit status
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Sequence

from servicing.dism import grammar
from servicing.dism.codes import NOT_SUPPORTED, PATH_NOT_FOUND, DismError, code_for, exit_status
from servicing.dism.commands import TABLE, Call, bind, lookup
from servicing.dism.output import Console
from wimfs.errors import is_expected, message_for

log = logging.getLogger("wimfs.dism")
LOG_LEVELS = ("1", "2", "3", "4")
COMMAND_MODULES = ("wimcmds", "imagecmds", "drivercmds", "packagecmds", "unattendcmds",
                   "intlcmds", "appcmds", "pecmds", "editioncmds")


def default_log_path() -> str:
    """The one servicing log (servicing.log): DISM's log is the servicing commands' log."""
    from servicing.log import default_log_path as servicing_log_path

    return servicing_log_path()


def main(argv: Sequence[str] | None = None, *, debug: bool = False, out=None) -> int:
    """Run one DISM command line; returns the exit status (codes.exit_status)."""
    from importlib import import_module

    for name in COMMAND_MODULES:          # each registers its commands in TABLE
        import_module(f"servicing.dism.{name}")

    argv = list(sys.argv[1:] if argv is None else argv)
    log_path = grammar.peek(argv, "logpath")
    console = Console(out or sys.stdout, json="--json" in argv,
                      quiet=grammar.peek(argv, "quiet") is True,
                      log_path=os.path.abspath(log_path if isinstance(log_path, str)
                                               else default_log_path()))
    level = grammar.peek(argv, "loglevel")
    handler = _open_log(console.log_path, level if isinstance(level, str) else "3")
    console.banner()
    try:
        line = grammar.parse(argv)
        console.table = str(line.globals.get("format", "")).lower() == "table"
        log.info("command line: %s", " ".join(argv))
        if line.help or not argv:
            console.write(help_text(line))
            return 0
        doc = run(line, console, debug)
        console.success(doc)
        return 0
    except BaseException as exc:      # noqa: BLE001 - DISM's error block + exit status
        return _fail(console, exc, debug)
    finally:
        if handler is not None:
            log.removeHandler(handler)
            handler.close()


def run(line: grammar.CommandLine, console: Console, debug: bool):
    if line.command is None:
        raise grammar.bad_argument("No servicing command was given. Use wimfs dism /? for "
                                   "the commands.")
    cmd = lookup(line.command)
    opts = bind(cmd, line.options)
    if line.online:
        raise DismError("The /Online option is not supported: there is no running Windows "
                        "to service. Use /Image:<dir> or /Image:<file.wim>:<index>.",
                        NOT_SUPPORTED)
    spelled = line.command.spelled.rstrip(":=")
    if line.image is not None and not cmd.image:
        raise grammar.bad_argument(f"{spelled} does not take /Image.")
    if cmd.image and line.image is None:
        raise grammar.bad_argument(f"{spelled} needs /Image:<dir> or "
                                   "/Image:<file.wim>:<index>.")
    scratch = line.globals.get("scratchdir")
    if isinstance(scratch, str) and not os.path.isdir(scratch):
        raise DismError(f"The scratch directory {scratch} does not exist.", PATH_NOT_FOUND)
    if cmd.image:
        from servicing.editions import multi_spec

        if (found := multi_spec(line.image)) is not None:
            return _run_images(cmd, line, opts, console, debug, *found)
    return _run_one(cmd, Call(line, opts, console, debug))


def _run_one(cmd, call: Call):
    if cmd.image:
        from servicing.dism.imagecmds import image_info

        call.image = image_info(call)
        call.console.image_version(call.image.get("version"))
    return cmd.handler(call)


def _run_images(cmd, line: grammar.CommandLine, opts, console: Console, debug: bool,
                path: str, indexes: list[int]):
    """/Image:IMAGE.wim:all (or :1,3,5): the command once per image through
    servicing.editions, every image committed at once. Each image's DISM text is
    printed under its record; with --json the document holds a record per image."""
    import dataclasses
    import io
    import json

    from servicing.editions import run_each

    def one(spec: str, buf) -> None:
        sub = dataclasses.replace(console, out=buf, _bar=None)
        doc = _run_one(cmd, Call(dataclasses.replace(line, image=spec), opts, sub, debug))
        if console.json:
            buf.write(json.dumps(doc))

    out = io.StringIO()
    run_each(path, indexes, one, skip_not_applicable=line.skip_not_applicable,
             as_json=console.json, dry_run=False, out=out)
    if console.json:
        return json.loads(out.getvalue())
    console.write(out.getvalue() + "\n")
    return None


def _fail(console: Console, exc: BaseException, debug: bool) -> int:
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else 1
    code = code_for(exc)
    if isinstance(exc, DismError):
        message = exc.message
    elif isinstance(exc, KeyboardInterrupt):
        message = "The operation was interrupted."
    else:
        message = message_for(exc, debug)
    if debug or not (isinstance(exc, (DismError, KeyboardInterrupt)) or is_expected(exc)):
        log.error("%s", "".join(traceback.format_exception(exc)))
    if debug:
        traceback.print_exc(file=sys.stderr)
    log.error("Error: %s %s", code, message)
    console.error(code, message)
    return exit_status(code)


class _ServicingLogHandler(logging.Handler):
    """Python logging records of the front end, written to the servicing log in its
    DISM-style layout."""

    def __init__(self, slog) -> None:
        super().__init__()
        self.slog = slog

    def emit(self, record: logging.LogRecord) -> None:
        from servicing.log import Level

        level = Level.ERROR if record.levelno >= logging.ERROR else \
            Level.WARNING if record.levelno >= logging.WARNING else \
            Level.INFO if record.levelno >= logging.INFO else Level.DEBUG
        self.slog.write(level, f"DISM  {record.getMessage()}")

    def close(self) -> None:
        self.slog.close()
        super().close()


def _open_log(path: str, level: str) -> logging.Handler | None:
    from servicing.log import ServicingLog
    from wimfs.errors import WimfsError

    try:
        handler = _ServicingLogHandler(ServicingLog(path, int(level) if level in LOG_LEVELS
                                                    else 3))
    except WimfsError:
        return None          # a bad /LogPath is reported by the command that uses it
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    return handler


def help_text(line: grammar.CommandLine) -> str:
    """`/?`: the command list; `/Command /?`: that command's syntax (DISM's manner)."""
    if line.command is not None:
        cmd = lookup(line.command)
        names = " | ".join(f"/{n}" for n in cmd.names)
        return (f"{names}\n\n  {cmd.summary}\n\nSyntax:\n  wimfs dism {cmd.usage}\n\n"
                "Names and options are case-insensitive; values follow ':' or '='.\n")
    rows, seen = [], set()
    for cmd in TABLE.values():
        if id(cmd) not in seen:
            seen.add(id(cmd))
            rows.append(f"  {' | '.join('/' + n for n in cmd.names):<48} {cmd.summary}")
    return ("wimfs dism [/Image:<dir> | /Image:<file.wim>:<index>] [global options] "
            "/<command> [options]\n\nIMAGE COMMANDS:\n" + "\n".join(rows) +
            "\n\nGLOBAL OPTIONS:\n  /LogPath:<file>  /LogLevel:<1-4>  /ScratchDir:<dir>  "
            "/WinDir:<dir>  /SysDriveDir:<dir>\n  /Quiet  /NoRestart  /Format:{Table|List}  "
            "/English  --json (wimfs: records as JSON)\n\n"
            "For help on a command, put /? after it, e.g. wimfs dism /Mount-Image /?.\n")
