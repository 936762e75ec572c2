"""Command-line interface: the composition root of wimfs.

`main(argv=None)` parses arguments, wires the engine, the FUSE adapter and the
servicing layer together, and turns every exception into one line on stderr plus the
exit code `wimfs.errors.exit_code_for` gives it (the one mapping for every command,
`wimfs reg` included). Every bad option value is a `UsageError` (exit 2) raised while
parsing, before anything runs. Heavy modules (pyfuse3, trio, servicing) are imported
lazily, so `--help` works without them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable, Sequence

from wimfs import hooks
from wimfs.errors import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    exit_code_for,
    message_for,
)
from wimfs.imagespec import FORMS, check_index

log = logging.getLogger("wimfs")

# Commands whose arguments are parsed by another module: name -> "module:function".
# The function takes the remaining argv and the --debug flag and returns an exit code.
SERVICING_PARSERS = "servicing.commands:add_parsers"
DELEGATED: dict[str, str] = {
    "reg": "servicing.cli:reg_main",
    "dism": "servicing.dism:main",      # DISM's syntax, text and exit codes
}


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one `UsageError` line (exit 2)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise UsageError(f"{message} (see '{self.prog} --help')")

    def parse_args(self, args=None, namespace=None):
        """Unknown arguments are reported against the command they were given to."""
        ns, extra = self.parse_known_args(args, namespace)
        if extra:
            prog = getattr(ns, "prog", None) or self.prog
            raise UsageError(f"unrecognized arguments: {' '.join(extra)} (see '{prog} "
                             "--help')")
        return ns


# -- option value types: a bad value is a usage error before anything runs -------------


def _int_type(minimum: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text, 0) if text.lower().startswith("0x") else int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"{what} must be at least {minimum}, not {v}")
        return v
    parse.__name__ = what      # argparse names the type in "invalid X value"
    return parse


count = _int_type(1, "count")            # --threads
megabytes = _int_type(1, "size in MB")   # --cache-size, --size
boot_index = _int_type(0, "image index")


def index_value(text: str) -> str:
    """``--index``: a number from 1, or ``all``."""
    try:
        return check_index(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def single_index_value(text: str) -> str:
    """``--index`` where only one image makes sense: a number from 1."""
    try:
        return check_index(text, allow_all=False)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def compression_value(text: str) -> str:
    from wimfs.imaging import COMPRESSION

    if text.lower() not in COMPRESSION:
        raise argparse.ArgumentTypeError(f"unknown compression type {text!r} "
                                         "(none, xpress, lzx, lzms, recovery)")
    return text


def chunk_size_value(text: str) -> int:
    v = _int_type(1, "chunk size")(text)
    if v & (v - 1) or not 1 << 15 <= v <= 1 << 26:
        raise argparse.ArgumentTypeError(f"invalid chunk size {v}: a power of 2 from 32768 "
                                         "to 67108864")
    return v


def property_value(text: str) -> str:
    key, eq, _ = text.partition("=")
    if not eq or not key.strip() or any(not p for p in key.strip("/").split("/")):
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE (e.g. "
                                         "WINDOWS/EDITIONID=Pro)")
    return text


# -- the parser --------------------------------------------------------------------------


def _sub(sub, name: str, help_: str, examples: str, **kw) -> argparse.ArgumentParser:
    c = sub.add_parser(name, help=help_, description=help_[:1].upper() + help_[1:] + ".",
                       epilog="examples:\n" + examples, **kw)
    c.set_defaults(prog=c.prog)
    return c


class _Skipped:
    """What a command's parser is while another command runs: every call is taken and
    does nothing (see build_parser)."""

    def __getattr__(self, name: str):
        return self._nothing

    def _nothing(self, *args, **kwargs):
        return self


class _OnlyCommand:
    """The subcommand action, registering the parser of one command only."""

    def __init__(self, sub, name: str) -> None:
        self._sub = sub
        self.wanted = name

    def add_parser(self, name: str, **kwargs):
        if name == self.wanted or self.wanted in kwargs.get("aliases", ()):
            return self._sub.add_parser(name, **kwargs)
        return _Skipped()

    def __getattr__(self, name: str):
        return getattr(self._sub, name)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command; given the command line, of its command only (every
    parser is ~0.3 ms and importing the servicing command modules more: ~60 ms in all
    for each start of `wimfs`), falling back to all of them when its first word is not
    a command (help, a typo: the full list is shown)."""
    from wimfs.commands import parsers

    word = next((a for a in argv or () if not a.startswith("-")), None)

    p = Parser(prog="wimfs", description="Mount, edit and service Windows images (WIM/ESD).",
               epilog=f"Images are chosen as {FORMS}.\nRun 'wimfs COMMAND --help' for a "
                      "command's options and examples.\nExit codes: 0 ok, 1 failed, 2 bad "
                      "command line, 3 bad WIM, 4 not found, 5 mount, 6 library, 7 busy, "
                      "8 not applicable, 9 refused, 10 pending first boot.")
    p.add_argument("--debug", action="store_true", help="log debug output and show tracebacks")
    p.add_argument("--version", action="version", version="wimfs 0.1.0")
    real = p.add_subparsers(dest="command", metavar="COMMAND")
    sub = real if word is None else _OnlyCommand(real, word)
    parsers.add_all(sub, _sub)
    # Servicing commands on a TARGET: parsers beside their handlers in servicing/commands,
    # named by string like the delegated commands (the engine never imports servicing).
    mod_name, _, func_name = SERVICING_PARSERS.partition(":")
    getattr(__import__(mod_name, fromlist=[func_name]), func_name)(sub)
    for name in DELEGATED:
        what = "registry access" if name == "reg" else "image servicing (/?: help)"
        c = sub.add_parser(name, help=f"{name}.exe-style {what}", add_help=False)
        c.add_argument("rest", nargs=argparse.REMAINDER)
    if word is not None and word not in real.choices:
        return build_parser()
    return p


def command(target: str) -> Callable[[argparse.Namespace], int]:
    """Resolve ``module:function`` at call time (lazy imports keep --help fast)."""

    def run(args: argparse.Namespace) -> int:
        mod_name, func_name = target.split(":")
        module = __import__(mod_name, fromlist=[func_name])
        return getattr(module, func_name)(args)

    return run


def setup_logging(debug: bool) -> None:
    level = logging.DEBUG if debug or os.environ.get("WIMFS_DEBUG") else logging.WARNING
    logging.basicConfig(level=level, format="wimfs: %(levelname)s: %(message)s", stream=sys.stderr)


# True when main() runs as the program (`wimfs`, `python -m wimfs`: no argv given), not
# called in process by other code: only then may `wimfs mount` fork its daemon.
RUN_AS_PROGRAM = False


def main(argv: Sequence[str] | None = None) -> int:
    global RUN_AS_PROGRAM
    hooks.set_windows_info_provider("servicing.features.windows_info:windows_info")
    RUN_AS_PROGRAM = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    # Delegated commands parse their own arguments (reg.exe syntax uses /v, /t ...).
    debug = argv[:1] == ["--debug"]
    rest = argv[1:] if debug else argv
    if rest and rest[0] in DELEGATED:
        setup_logging(debug)
        mod_name, func_name = DELEGATED[rest[0]].split(":")
        fn = getattr(__import__(mod_name, fromlist=[func_name]), func_name)
        return leave(fn(rest[1:], debug=debug))

    def parse_and_run() -> int | None:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        setup_logging(args.debug)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        return args.func(args)

    return leave(run_guarded(parse_and_run, debug="--debug" in argv[:1]))


def leave(rc: int) -> int:
    """End the program now, as the interpreter's own exit would, less its teardown.
    Freeing every object of a large image (its tree, its blob table) one by one took
    ~30 ms after `wimfs update`, paid by each command. Only when run as the program with
    no other thread left: output is flushed, logging shut down, and the atexit handlers
    run (temporary files' finalizers among them) before os._exit. Otherwise returns `rc`
    for the usual exit."""
    if not RUN_AS_PROGRAM or threading.active_count() != 1:
        return rc
    import atexit
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a closed pipe or stream: nothing to say
            pass
        except OSError as exc:
            # Output lost (a full disk): as the interpreter's exit would, say so and fail.
            try:
                os.write(2, f"wimfs: error: writing output: {exc}\n".encode())
            except OSError:
                pass
            rc = rc or EXIT_ERROR
    logging.shutdown()
    atexit._run_exitfuncs()
    os._exit(rc)


def run_guarded(fn: Callable[[], int | None], *, debug: bool, prog: str = "wimfs",
                err=None) -> int:
    """Run a command: every exception becomes one line ``PROG: error: ...`` on `err`
    (stderr) and the exit code of `exit_code_for`; --debug adds the traceback."""
    err = err or sys.stderr
    try:
        rc = fn()
        return EXIT_OK if rc is None else int(rc)
    except SystemExit as exc:          # argparse --help / --version
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except BrokenPipeError:
        # e.g. `wimfs ls x.wim | head`: not an error worth a message.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        except OSError:
            pass
        return EXIT_OK
    except BaseException as exc:       # noqa: BLE001 - mapped to one line + exit code
        if debug:
            traceback.print_exc(file=err)
        if isinstance(exc, KeyboardInterrupt):
            err.write(f"{prog}: interrupted\n")
        else:
            err.write(f"{prog}: error: {message_for(exc, debug)}\n")
        return exit_code_for(exc)
