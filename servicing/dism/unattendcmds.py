"""DISM's /Apply-Unattend:FILE on /Image:TARGET over `wimfs unattend apply` (dism-reference.md
1.5; servicing-facts.md section 3: the offlineServicing pass and <servicing>, the file not
cached in the image)."""

from __future__ import annotations

from servicing.dism.commands import Call, Command, native_json, register
from servicing.dism.grammar import bad_argument
from servicing.dism.imagecmds import servicing_options


def apply_unattend(call: Call):
    path = call.line.command.value if call.line.command else None
    if not path:
        raise bad_argument("The /Apply-Unattend option requires an answer file: "
                           "/Apply-Unattend:<answer.xml>.")
    doc = native_json(call, ["unattend", "apply", call.line.image, path] +
                      servicing_options(call))
    call.console.lines([f"Applying unattend file {path} to the image..."])
    not_applied = [i for i in doc["items"] if i["status"] == "not applied"]
    for i in not_applied:
        call.console.lines([f"Not applied (line {i['line']}): {i['component']} "
                            f"{i['setting'] or ''}"])
    return doc


register(Command(("Apply-Unattend",), apply_unattend, {},
                 "/Image:<target> /Apply-Unattend:<answer.xml>",
                 "Applies the offlineServicing pass and <servicing> of an answer file.",
                 value=True, image=True))
