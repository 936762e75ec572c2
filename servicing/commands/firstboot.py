"""`wimfs firstboot add|list|remove TARGET ...`: commands Windows runs once at the next start
of the image, as SYSTEM, before anyone logs on. Syntax and text only; the work is in
servicing.features.firstboot."""

from __future__ import annotations

from servicing.commands import print_json


def add_parser(sub) -> None:
    from servicing.options import add_common_arguments

    f = sub.add_parser("firstboot", help="schedule commands Windows runs once at the next "
                                         "start of a TARGET, before logon, as SYSTEM")
    fs = f.add_subparsers(dest="firstboot_command", metavar="COMMAND", required=True)
    c = fs.add_parser("add", help="add a command at the end of the first-boot queue",
                      usage="%(prog)s TARGET --name NAME [--reboot] [--file WINPATH=LOCAL] "
                            "[options] -- COMMAND [ARG...]")
    c.add_argument("target", metavar="TARGET")
    c.add_argument("--name", required=True, help="a name for the action (list, remove)")
    c.add_argument("--reboot", action="store_true",
                   help="restart Windows after this command (exit code 3010 does too)")
    c.add_argument("--file", action="append", default=[], metavar="WINPATH=LOCAL",
                   help="copy LOCAL into the image as <windir>\\wimfs\\WINPATH for the "
                        "command (%%SystemRoot%%\\wimfs\\WINPATH at first boot); removed "
                        "after it ran")
    c.add_argument("command", nargs="+", metavar="COMMAND",
                   help="the program and its arguments, after --; %%NAME%% expands at "
                        "first boot, every other character is passed as given")
    add_common_arguments(c)
    c.set_defaults(func=run_add)
    c = fs.add_parser("list", help="the scheduled commands, in run order")
    c.add_argument("target", metavar="TARGET")
    add_common_arguments(c, writes=False)
    c.set_defaults(func=run_list)
    c = fs.add_parser("remove", help="take a scheduled command (and its files) back")
    c.add_argument("target", metavar="TARGET")
    c.add_argument("name", metavar="NAME")
    add_common_arguments(c)
    c.set_defaults(func=run_remove)



def _files(specs: list[str]) -> dict[str, str]:
    from wimfs.errors import UsageError
    out = {}
    for spec in specs:
        win, sep, local = spec.partition("=")
        if not sep or not win or not local:
            raise UsageError(f"--file wants WINPATH=LOCAL, not {spec!r}")
        out[win] = local
    return out


def run_add(args) -> int:
    from servicing.features.firstboot import mechanism, schedule
    from servicing.session import changes_json, operation, options_from_args

    opts = options_from_args(args)
    files = _files(args.file)
    with operation(args.target, opts, command=f"firstboot add --name {args.name}",
                   write=True) as target:
        entry = schedule(target, name=args.name, command=args.command, reboot=args.reboot,
                         payload=files)
        how = mechanism(target)
    if opts.json:
        print_json(changes_json(target) | {"entry": entry.to_json(), "mechanism": how})
        return 0
    print(f"{entry.name}: scheduled as action {entry.id} (started by {how})")
    return 0


def run_list(args) -> int:
    from servicing.features.firstboot import entries, mechanism
    from servicing.session import operation, options_from_args

    opts = options_from_args(args)
    with operation(args.target, opts, command="firstboot list", write=False) as target:
        items = entries(target)
        how = mechanism(target) if items else None
    if opts.json:
        print_json({"mechanism": how, "entries": [e.to_json() for e in items]})
        return 0
    for e in items:
        print(f"Name : {e.name}\nCommand : {e.command}\nReboot : "
              f"{'Yes' if e.reboot else 'No'}\nFiles : {', '.join(e.payload) or '-'}\n")
    print(f"Started by: {how}" if items else "No first-boot actions.")
    return 0


def run_remove(args) -> int:
    from servicing.features.firstboot import unschedule
    from servicing.session import changes_json, operation, options_from_args

    opts = options_from_args(args)
    with operation(args.target, opts, command=f"firstboot remove {args.name}",
                   write=True) as target:
        entry = unschedule(target, args.name)
    if opts.json:
        print_json(changes_json(target) | {"removed": entry.to_json()})
        return 0
    print(f"{entry.name}: removed")
    return 0
