"""`wimfs intl get|set TARGET` and `wimfs intl lang-ini DISTRIBUTION`: international
settings of a Windows tree or IMAGE.wim[:N], mount-free (DISM /Get-Intl, /Set-*,
/Gen-LangINI, /Set-SetupUILang). Syntax and text only; the work is in servicing.features."""

from __future__ import annotations

from servicing.commands import print_json

SET_OPTIONS = (
    ("--ui-lang", "LANG", "default system UI language (must be installed; /Set-UILang)"),
    ("--ui-lang-fallback", "LANG", "fallback of a partially localized UI language"),
    ("--sys-locale", "LOCALE", "language for non-Unicode programs: code pages and NLS "
                               "files (Unicode-only locales are refused)"),
    ("--user-locale", "LOCALE", "standards and formats of the default user and .DEFAULT"),
    ("--input-locale", "LIST", "input profiles, ';'-separated, first = default: "
                               "0409:00000409, LANGID:{CLSID}{PROFILE} or a locale name"),
    ("--all", "LOCALE", "UI language, system, user and input locale from one locale "
                        "(the individual options override it; /Set-AllIntl)"),
    ("--time-zone", "NAME", "a key of SOFTWARE ... \\Time Zones, e.g. 'W. Europe Standard "
                            "Time'"),
    ("--sku-defaults", "LANG", "the defaults of a language (as --all, plus the default "
                               "time zone of its country when the image has it; a "
                               "Unicode-only system locale is skipped; /Set-SKUIntlDefaults)"),
    ("--location", "GEOID|CC", "the user's location (Geo\\Nation): a GEOID (244) or an ISO "
                               "3166 country code (US); --all and --sku-defaults set the "
                               "locale's country"),
)


def add_parser(sub) -> None:
    from servicing.options import add_common_arguments

    p = sub.add_parser("intl", help="international settings of a TARGET (a Windows tree or "
                                    "IMAGE.wim[:N]) and lang.ini of a distribution")
    ps = p.add_subparsers(dest="intl_command", metavar="COMMAND", required=True)
    c = ps.add_parser("get", help="UI language, locales, time zone, keyboards, layered "
                                  "driver, installed languages (DISM /Get-Intl)")
    c.add_argument("target", metavar="TARGET")
    c.add_argument("--distribution", metavar="DIR",
                   help="also report the languages of a distribution folder")
    add_common_arguments(c, writes=False)
    c.set_defaults(func=run_get)
    c = ps.add_parser("set", help="set international settings (DISM /Set-UILang ... "
                                  "/Set-LayeredDriver), all in one transaction",
                      epilog="example: wimfs intl set install.wim:1 --all de-DE "
                             "--time-zone 'W. Europe Standard Time'")
    c.add_argument("target", metavar="TARGET")
    for flag, metavar, text in SET_OPTIONS:
        c.add_argument(flag, metavar=metavar, help=text)
    c.add_argument("--layered-driver", type=int, choices=range(1, 7), metavar="1-6",
                   help="keyboard layered driver: 1 PC/AT 101/102, 2-4 Korean 101 types "
                        "1-3, 5 Korean 103/106, 6 Japanese 106/109")
    add_common_arguments(c)
    c.set_defaults(func=run_set)
    c = ps.add_parser("lang-ini", help="write sources\\lang.ini of a distribution folder "
                                       "from its languages (DISM /Gen-LangINI)")
    c.add_argument("distribution", metavar="DISTRIBUTION")
    c.add_argument("--setup-ui-lang", metavar="LANG",
                   help="Setup's default language (DISM /Set-SetupUILang)")
    c.add_argument("--json", action="store_true", help="print the result as JSON")
    c.set_defaults(func=run_lang_ini)



def get_lines(s: dict) -> list[str]:
    """DISM /Get-Intl's lines of an `intl get --json` document."""
    lines = [f"Default system UI language : {s['ui_language'] or '<undefined>'}"]
    ui = next((i for i in s["installed"] if i["name"] == s["ui_language"]), None)
    # DISM prints the fallback only for a partially localized UI language
    if s["ui_language_fallback"] and ui is not None and ui["fallback"]:
        lines.append(f"The UI language fallback is : {', '.join(s['ui_language_fallback'])}")
    lines += [f"System locale : {s['system_locale'] or '<undefined>'}",
              f"Default time zone : {s['time_zone'] or '<undefined>'}",
              f"User locale for default user : {s['user_locale'] or '<undefined>'}"]
    if s["geoid"] is not None:
        lines.append(f"Location : {s['location'] or '<undefined>'} (GEOID = {s['geoid']})")
    lines += [f"Active keyboard(s) : {', '.join(s['keyboards']) or '<undefined>'}",
              f"Keyboard layered driver : {s['layered_driver_text']}", ""]
    for lang in s["installed"]:
        lines += [f"Installed language(s): {lang['name']}", f"      Type : {lang['type']}"]
        if lang["fallback"]:
            lines.append(f"      Fallback Languages {', '.join(lang['fallback'])}")
    if (d := s.get("distribution")) is not None:
        others = [lang for lang in d["languages"] if lang != d["default"]]
        lines += ["", "Reporting distribution languages.", ""]
        lines += ["The default language in the distribution is:", d["default"], ""] \
            if d["default"] else []
        lines += ["The other available languages in the distribution are:",
                  ", ".join(others)] if others else ["No languages found"]
    return lines


def run_get(args) -> int:
    from servicing.features.intl import get_intl
    from servicing.session import operation, options_from_args

    opts = options_from_args(args)
    with operation(args.target, opts, command=f"intl get {args.target}",
                   write=False) as target:
        doc = get_intl(target).to_json()
    if args.distribution is not None:
        from servicing.features.langini import distribution_info
        doc["distribution"] = distribution_info(args.distribution)
    if opts.json:
        print_json(doc)
    else:
        print("\n".join(get_lines(doc)))
    return 0


def run_set(args) -> int:
    from servicing.features.intl_set import IntlRequest, set_intl
    from servicing.session import changes_json, operation, options_from_args
    from wimfs.errors import UsageError

    names = [f.lstrip("-").replace("-", "_") for f, _, _ in SET_OPTIONS] + ["layered_driver"]
    request = IntlRequest(**{n: getattr(args, n) for n in names})
    if all(getattr(request, n) is None for n in names):
        raise UsageError("intl set needs at least one setting (see 'wimfs intl set --help')")
    opts = options_from_args(args)
    with operation(args.target, opts, command=f"intl set {args.target}",
                   write=True) as target:
        done = set_intl(target, request)
    if opts.json:
        print_json(changes_json(target) | {"settings": done})
    elif not opts.dry_run:
        for name, value in done.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k} {v}" for k, v in value.items())
            print(f"{name}: {', '.join(value) if isinstance(value, list) else value}")
    return 0


def run_lang_ini(args) -> int:
    from servicing.features.langini import gen_lang_ini

    doc = gen_lang_ini(args.distribution, args.setup_ui_lang)
    if args.json:
        print_json(doc)
    else:
        print(f"{doc['path']}: {', '.join(doc['languages'])} (default {doc['default']})")
    return 0
