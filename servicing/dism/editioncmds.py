"""DISM's edition commands (/Get-CurrentEdition, /Get-TargetEditions, /Set-Edition,
/Set-ProductKey) on /Image:TARGET over `wimfs edition` (dism-reference.md 1.8, 2.3)."""

from __future__ import annotations

from servicing.dism.commands import Call, Command, Kind, native_json, register
from servicing.dism.grammar import bad_argument
from servicing.dism.imagecmds import UNDEFINED, servicing_options


def _edition(call: Call, what: str) -> dict:
    return native_json(call, ["edition", what, call.line.image] + servicing_options(call))


def get_current_edition(call: Call):
    doc = _edition(call, "get")
    call.console.lines(["Current edition is:", "",
                        f"Current Edition : {doc.get('edition') or UNDEFINED}", ""])
    return doc


def get_target_editions(call: Call):
    doc = _edition(call, "targets")
    call.console.lines(["Editions that can be upgraded to:", ""] +
                       [f"Target Edition : {t}" for t in doc["targets"]] + [""])
    return doc


def _value(call: Call, what: str) -> str:
    if not call.line.command.value:
        raise bad_argument(f"The {call.line.command.spelled.rstrip(':=')} option requires "
                           f"{what}.")
    return call.line.command.value


def set_edition(call: Call):
    argv = ["edition", "set", call.line.image, _value(call, "an edition ID")]
    key = call.get("productkey")
    argv += ["--product-key", key] if key else []
    doc = native_json(call, argv + servicing_options(call))
    ed = doc["edition"]
    call.console.lines(["Starting to update components...", "Finished updating components."
                        if not ed["pending"] else
                        f"The change to {ed['pending'][0]} runs at the image's first boot.",
                        ""])
    return doc


def set_product_key(call: Call):
    doc = native_json(call, ["edition", "product-key", call.line.image,
                             _value(call, "a product key")] + servicing_options(call))
    call.console.lines(["Starting to install the product key...",
                        "Finished installing the product key.", ""])
    return doc


for names, handler, options, usage, summary, value in (
    (("Get-CurrentEdition",), get_current_edition, {},
     "/Image:<dir | file.wim:N> /Get-CurrentEdition", "Displays the edition of the image.",
     False),
    (("Get-TargetEditions",), get_target_editions, {},
     "/Image:<target> /Get-TargetEditions",
     "Displays the editions the image can be changed to.", False),
    (("Set-Edition",), set_edition,
     {"productkey": Kind.VALUE, "accepteula": Kind.FLAG, "geteula": Kind.UNSUPPORTED},
     # /AcceptEula is accepted and has nothing to do offline (DISM 10 scripts pass it with
     # /ProductKey); /GetEula (save the EULA text) is Error 50.
     "/Image:<target> /Set-Edition:<edition ID> [/ProductKey:<key>] [/AcceptEula]",
     "Changes the image to a higher edition.", True),
    (("Set-ProductKey",), set_product_key, {}, "/Image:<target> /Set-ProductKey:<key>",
     "Gives Setup the product key of the image (specialize pass).", True),
):
    register(Command(names, handler, options, usage, summary, value=value, image=True))
