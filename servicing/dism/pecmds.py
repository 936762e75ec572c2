"""DISM's Windows PE commands (/Get-PESettings, /Get-ScratchSpace, /Get-TargetPath,
/Set-ScratchSpace, /Set-TargetPath) on /Image:TARGET over `wimfs pe get|set`
(dism-reference.md 1.6, 2.1, 3.3)."""

from __future__ import annotations

from servicing.dism.commands import Call, Command, native_json, register
from servicing.dism.grammar import bad_argument
from servicing.dism.imagecmds import UNDEFINED, servicing_options


def _settings(call: Call) -> dict:
    return native_json(call, ["pe", "get", call.line.image] + servicing_options(call))


def _profiling(doc: dict) -> str:
    return UNDEFINED if doc["profiling"] is None else \
        ("Enabled" if doc["profiling"] else "Disabled")


def _scratch(doc: dict) -> str:
    # "Scratch Space : 32MB": no space before MB (dism-reference.md 3.3)
    return f"{doc['scratch_space']}MB" if doc["scratch_space"] else UNDEFINED


# A header and a blank line come before the values: a public script reads /Get-ScratchSpace's
# value from DISM's 9th output line (fs:19033380260: banner 4 lines, "Image Version:" and a
# blank, header, blank, value). The header's text is not documented.
HEADER = ["Windows PE settings:", ""]


def get_pe_settings(call: Call):
    doc = _settings(call)
    call.console.lines(HEADER + [f"Profiling : {_profiling(doc)}",
                        f"Scratch Space : {_scratch(doc)}",
                        f"Target Path : {doc['target_path'] or UNDEFINED}", ""])
    return doc


def get_scratch_space(call: Call):
    doc = _settings(call)
    call.console.lines(HEADER + [f"Scratch Space : {_scratch(doc)}", ""])
    return doc


def get_target_path(call: Call):
    doc = _settings(call)
    call.console.lines(HEADER + [f"Target Path : {doc['target_path'] or UNDEFINED}", ""])
    return doc


def _value(call: Call, what: str) -> str:
    value = call.line.command.value
    if not value:
        raise bad_argument(f"The {call.line.command.spelled.rstrip(':=')} option requires "
                           f"a {what}.")
    return value


def set_scratch_space(call: Call):
    value = _value(call, "size in MB")
    if not value.isdigit():
        raise bad_argument(f"The scratch space {value} is not valid: use 32, 64, 128, 256 "
                           "or 512.")
    doc = native_json(call, ["pe", "set", call.line.image, "--scratch-space", value] +
                      servicing_options(call))
    call.console.lines([f"Scratch Space : {_scratch(doc['settings'])}", ""])
    return doc


def set_target_path(call: Call):
    doc = native_json(call, ["pe", "set", call.line.image, "--target-path",
                             _value(call, "path")] + servicing_options(call))
    call.console.lines([f"Target Path : {doc['settings']['target_path']}", ""])
    return doc


for names, handler, usage, summary, value in (
    (("Get-PESettings",), get_pe_settings, "/Image:<target> /Get-PESettings",
     "Displays the Windows PE settings (profiling, scratch space, target path).", False),
    (("Get-ScratchSpace",), get_scratch_space, "/Image:<target> /Get-ScratchSpace",
     "Displays the writable RAM-disk space of Windows PE.", False),
    (("Get-TargetPath",), get_target_path, "/Image:<target> /Get-TargetPath",
     "Displays the Windows PE root path when booted from a hard disk.", False),
    (("Set-ScratchSpace",), set_scratch_space,
     "/Image:<target> /Set-ScratchSpace:{32|64|128|256|512}",
     "Sets the writable RAM-disk space of Windows PE (MB).", True),
    (("Set-TargetPath",), set_target_path, "/Image:<target> /Set-TargetPath:<X:\\path>",
     "Sets the Windows PE root path for hard-disk boot.", True),
):
    register(Command(names, handler, {}, usage, summary, value=value, image=True))
