"""DISM's international commands on /Image:TARGET over `wimfs intl get|set|lang-ini`
(dism-reference.md 1.7, 2.2): /Get-Intl, /Set-UILang, /Set-UILangFallback,
/Set-SysLocale, /Set-UserLocale, /Set-InputLocale, /Set-AllIntl, /Set-TimeZone,
/Set-SKUIntlDefaults, /Set-LayeredDriver, /Gen-LangINI, /Set-SetupUILang.

Several /Set-* may be given on one line (DISM combines them; the individual ones override
/Set-AllIntl): the first is the command, the others are read as its options, and all of
them run as one `wimfs intl set`, one transaction."""

from __future__ import annotations

from servicing.commands.intl import get_lines
from servicing.dism.commands import Call, Command, Kind, native_json, register
from servicing.dism.grammar import bad_argument
from servicing.dism.imagecmds import servicing_options

V = Kind.VALUE

#: DISM option (lower case) -> `wimfs intl set` flag
SET_FLAGS = {"set-uilang": "--ui-lang", "set-uilangfallback": "--ui-lang-fallback",
             "set-syslocale": "--sys-locale", "set-userlocale": "--user-locale",
             "set-inputlocale": "--input-locale", "set-allintl": "--all",
             "set-timezone": "--time-zone", "set-skuintldefaults": "--sku-defaults",
             "set-layereddriver": "--layered-driver"}
SPELLED = {"set-uilang": "Set-UILang", "set-uilangfallback": "Set-UILangFallback",
           "set-syslocale": "Set-SysLocale", "set-userlocale": "Set-UserLocale",
           "set-inputlocale": "Set-InputLocale", "set-allintl": "Set-AllIntl",
           "set-timezone": "Set-TimeZone", "set-skuintldefaults": "Set-SKUIntlDefaults",
           "set-layereddriver": "Set-LayeredDriver"}


def _value(call: Call) -> str:
    tok = call.line.command
    if not tok.value:
        raise bad_argument(f"{tok.spelled.rstrip(':=')} requires a value, e.g. "
                           f"{tok.spelled.rstrip(':=')}:en-US.")
    return tok.value


def get_intl(call: Call):
    argv = ["intl", "get", call.line.image]
    if (dist := call.get("distribution")) is not None:
        argv += ["--distribution", dist]
    doc = native_json(call, argv + servicing_options(call))
    call.console.lines(["Reporting offline international settings.", "", *get_lines(doc), ""])
    return doc


def set_intl(call: Call):
    tok = call.line.command
    if tok.name in call.opts:
        raise bad_argument(f"The {tok.spelled.rstrip(':=')} option was specified more than "
                           "once.")
    settings = {tok.name: _value(call)}
    settings |= {k: v for k, v in call.opts.items() if k in SET_FLAGS}
    argv = ["intl", "set", call.line.image]
    for name, value in settings.items():
        argv += [SET_FLAGS[name], str(value)]
    return native_json(call, argv + servicing_options(call))


def gen_lang_ini(call: Call):
    dist = call.need("distribution")
    doc = native_json(call, ["intl", "lang-ini", dist])
    return doc


def set_setup_ui_lang(call: Call):
    dist = call.need("distribution")
    return native_json(call, ["intl", "lang-ini", dist, "--setup-ui-lang", _value(call)])


register(Command(("Get-Intl",), get_intl, {"distribution": V},
                 "/Image:<target> /Get-Intl [/Distribution:<dir>]",
                 "Displays the international settings and languages of the image.",
                 image=True))
for spelled in SPELLED.values():
    register(Command((spelled,), set_intl, dict.fromkeys(SET_FLAGS, V),
                     f"/Image:<target> /{spelled}:<value> [/Set-...:<value> ...]",
                     "Sets international settings of the image (several /Set-* options "
                     "may be combined).", value=True, image=True))
register(Command(("Gen-LangINI",), gen_lang_ini, {"distribution": V},
                 "/Image:<target> /Gen-LangINI /Distribution:<dir>",
                 "Writes <dir>\\sources\\lang.ini from the languages of the distribution.",
                 image=True))
register(Command(("Set-SetupUILang",), set_setup_ui_lang, {"distribution": V},
                 "/Image:<target> /Set-SetupUILang:<lang> /Distribution:<dir>",
                 "Sets Setup's default language in the distribution's lang.ini.",
                 value=True, image=True))
