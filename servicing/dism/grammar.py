"""DISM's command-line grammar (dism-reference.md 1.0, 1.1): `/Opt:value`, `/Opt=value`,
`/Opt:"value with spaces"`, `-Opt:value`, names case-insensitive; the image switch
(/Image:TARGET | /Online), the global options, one servicing command and its options.
Bytes in, a `CommandLine` out; every mistake is a DismError 87 naming the option."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from servicing.dism.codes import INVALID_PARAMETER, DismError

HELP_HINT = "For more information, refer to the help by running wimfs dism /?."

# Global options: lower-case name -> takes a value.
GLOBALS: dict[str, bool] = {
    "image": True, "online": False, "windir": True, "sysdrivedir": True, "logpath": True,
    "loglevel": True, "scratchdir": True, "quiet": False, "norestart": False,
    "format": True, "english": False,
}

# Every servicing command DISM 6.1 to 10 knows (dism-reference.md 1.2-1.10, anchors.md
# 2.1): the grammar recognises them all; commands.py says which ones are built.
KNOWN_COMMANDS = frozenset("""
mount-wim mount-image unmount-wim unmount-image commit-wim commit-image remount-wim
remount-image cleanup-wim cleanup-mountpoints get-wiminfo get-imageinfo get-mountedwiminfo
get-mountedimageinfo capture-image append-image apply-image export-image delete-image
split-image list-image optimize-image capture-ffu apply-ffu split-ffu capture-customimage
get-wimbootentry update-wimbootentry apply-siloedpackage
get-drivers get-driverinfo add-driver remove-driver export-driver
get-packages get-packageinfo add-package remove-package get-features get-featureinfo
enable-feature disable-feature cleanup-image apply-unattend get-intl set-uilang
set-uilangfallback set-syslocale set-userlocale set-inputlocale set-allintl set-timezone
set-skuintldefaults set-layereddriver gen-langini set-setupuilang set-sysuilang
get-currentedition get-targeteditions set-edition set-productkey get-pesettings
get-profiling get-scratchspace get-targetpath set-scratchspace set-targetpath
enable-profiling disable-profiling apply-profiles check-apppatch get-apppatchinfo
get-apppatches get-appinfo get-apps get-provisionedappxpackages add-provisionedappxpackage
remove-provisionedappxpackage set-provisionedappxdatafile get-capabilities
get-capabilityinfo add-capability remove-capability export-defaultappassociations
import-defaultappassociations get-defaultappassociations remove-defaultappassociations
add-provisioningpackage get-provisioningpackageinfo apply-customdataimage
get-osuninstallwindow set-osuninstallwindow initiate-osuninstall remove-osuninstall
add-edge get-reservedstoragestate set-reservedstoragestate get-help
""".split())


@dataclass(frozen=True)
class Token:
    name: str                  # lower-case, without the leading / or -
    spelled: str               # as typed, e.g. "/Mount-Wim"
    value: str | None          # None: no ':' or '=' given


@dataclass
class CommandLine:
    image: str | None = None
    online: bool = False
    globals: dict[str, str | bool] = field(default_factory=dict)
    command: Token | None = None
    options: list[Token] = field(default_factory=list)
    help: bool = False
    json: bool = False
    skip_not_applicable: bool = False   # wimfs extension for /Image:IMAGE.wim:all


# wimfs's own switches, written the GNU way so they never clash with a DISM option.
EXTENSIONS = {"--json": "json", "--skip-not-applicable": "skip_not_applicable"}


def unknown_option(name: str) -> DismError:
    return DismError(f"The {name} option is unknown.\n{HELP_HINT}", INVALID_PARAMETER)


def bad_argument(message: str) -> DismError:
    return DismError(f"{message}\n{HELP_HINT}", INVALID_PARAMETER)


def split_command_line(text: str) -> list[str]:
    """A cmd.exe command line split as Windows programs split it: blanks separate
    arguments outside double quotes; quotes group and are removed; backslashes are
    literal (DISM paths end in them)."""
    args, cur, quoted, has = [], [], False, False
    for ch in text:
        if ch == '"':
            quoted, has = not quoted, True
        elif ch in " \t" and not quoted:
            if cur or has:
                args.append("".join(cur))
            cur, has = [], False
        else:
            cur.append(ch)
    if cur or has:
        args.append("".join(cur))
    return args


def tokenize(arg: str) -> Token:
    """One argument: `/Name`, `/Name:value`, `/Name=value`, `-Name:value`."""
    if len(arg) < 2 or arg[0] not in "/-" or arg[1] in ":=":
        raise bad_argument(f'DISM doesn\'t recognize the command-line option "{arg}".')
    body = arg[1:]
    cut = min((i for i in (body.find(":"), body.find("=")) if i >= 0), default=-1)
    name, value = (body, None) if cut < 0 else (body[:cut], body[cut + 1:])
    if value is not None and len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    spelled = arg if cut < 0 else arg[:cut + 1]
    return Token(name.lower(), spelled, value)


def peek(argv: Sequence[str], name: str) -> str | bool | None:
    """A global option's value before the whole line is parsed (a bad line still reports
    to /LogPath and honours /Quiet): its value, True for a flag, or None."""
    for arg in argv:
        try:
            tok = tokenize(arg)
        except DismError:
            continue
        if tok.name == name:
            return tok.value or True
    return None


def parse(argv: Sequence[str]) -> CommandLine:
    """The DISM command line in `argv` (already split into arguments)."""
    line = CommandLine()
    args = list(argv)
    for i, arg in enumerate(args):
        if arg in EXTENSIONS:
            setattr(line, EXTENSIONS[arg], True)
            continue
        if arg in ("/?", "-?") or arg.lower() in ("/get-help", "-get-help"):
            if any(a not in EXTENSIONS for a in args[i + 1:]):
                raise bad_argument("The /? option must be the last option on the "
                                   "command line.")
            line.help = True
            continue
        _add(line, tokenize(arg))
    _check_globals(line)
    return line


# DISM combines several international /Set-* on one line ("Several intl /Set-* options may
# be combined", dism-reference.md 1.1): after the first, they are options of that command.
COMBINABLE = frozenset("""set-uilang set-uilangfallback set-syslocale set-userlocale
set-inputlocale set-allintl set-timezone set-skuintldefaults set-layereddriver""".split())


def _combined(line: CommandLine, tok: Token) -> bool:
    return line.command is not None and line.command.name in COMBINABLE \
        and tok.name in COMBINABLE


def _add(line: CommandLine, tok: Token) -> None:
    if tok.name in GLOBALS:
        if tok.name in line.globals:
            raise bad_argument(f"The {tok.spelled.rstrip(':=')} option was specified more "
                               "than once.")
        line.globals[tok.name] = _global_value(tok)
    elif tok.name in KNOWN_COMMANDS and not _combined(line, tok):
        if line.command is not None:
            raise bad_argument(f"Only one servicing command can be given: "
                               f"{line.command.spelled.rstrip(':=')} and "
                               f"{tok.spelled.rstrip(':=')}.")
        line.command = tok
    else:
        line.options.append(tok)


def _global_value(tok: Token) -> str | bool:
    takes_value = GLOBALS[tok.name]
    if takes_value and not tok.value:
        raise bad_argument(f"The {tok.spelled.rstrip(':=')} option requires an argument.")
    if not takes_value:
        if tok.value:
            raise bad_argument(f"The {tok.spelled.rstrip(':=')} option does not take an "
                               "argument.")
        return True
    return tok.value


def _check_globals(line: CommandLine) -> None:
    g = line.globals
    line.image = g.get("image")           # type: ignore[assignment]
    line.online = bool(g.get("online"))
    if line.image and line.online:
        raise bad_argument("The /Image and /Online options cannot be used together.")
    for name, spelled in (("windir", "/WinDir"), ("sysdrivedir", "/SysDriveDir")):
        if name in g and not line.image:
            raise bad_argument(f"The {spelled} option can only be used with /Image (an "
                               "offline image).")
    if "loglevel" in g and g["loglevel"] not in ("1", "2", "3", "4"):
        raise bad_argument(f"The log level {g['loglevel']} is not valid. Use /LogLevel:1, 2, "
                           "3 or 4.")
    if "format" in g and str(g["format"]).lower() not in ("table", "list"):
        raise bad_argument(f"The format {g['format']} is not valid. Use /Format:Table or "
                           "/Format:List.")
