"""`wimfs driver list|info|add|remove TARGET ...`: driver packages of a Windows tree or
of IMAGE.wim[:N], mount-free (DISM /Get-Drivers, /Get-DriverInfo, /Add-Driver,
/Remove-Driver). Syntax and text only; the work is in servicing.features."""

from __future__ import annotations

import sys

from servicing.commands import print_json


def add_parser(sub) -> None:
    from servicing.options import add_common_arguments

    d = sub.add_parser("driver", help="list, inspect, add and remove .inf driver packages "
                                      "of a TARGET (a Windows tree or IMAGE.wim[:N])")
    ds = d.add_subparsers(dest="driver_command", metavar="COMMAND", required=True)
    c = ds.add_parser("list", help="third-party driver packages (DISM /Get-Drivers)")
    c.add_argument("target", metavar="TARGET")
    c.add_argument("--all", action="store_true", help="also the inbox drivers")
    add_common_arguments(c, writes=False)
    c.set_defaults(func=run_list)
    c = ds.add_parser("info", help="a package and its hardware entries (DISM /Get-DriverInfo)")
    c.add_argument("target", metavar="TARGET")
    c.add_argument("name", metavar="oemN.inf|PATH.inf")
    add_common_arguments(c, writes=False)
    c.set_defaults(func=run_info)
    c = ds.add_parser("add", help="stage driver packages, install boot-critical ones "
                                  "(DISM /Add-Driver)")
    c.add_argument("target", metavar="TARGET")
    c.add_argument("paths", metavar="PATH", nargs="+", help="an .inf or a folder of them")
    c.add_argument("--recurse", action="store_true", help="walk the subfolders of a folder")
    c.add_argument("--force-unsigned", action="store_true",
                   help="add packages without a valid catalog on x64/arm64 images")
    add_common_arguments(c)
    c.set_defaults(func=run_add)
    c = ds.add_parser("remove", help="remove third-party packages (DISM /Remove-Driver)")
    c.add_argument("target", metavar="TARGET")
    c.add_argument("names", metavar="oemN.inf", nargs="+")
    add_common_arguments(c)
    c.set_defaults(func=run_remove)



def _yes(flag) -> str:
    return "-" if flag is None else ("Yes" if flag else "No")


def run_list(args) -> int:
    from servicing.features.driver_query import list_drivers
    from servicing.session import operation, options_from_args

    opts = options_from_args(args)
    with operation(args.target, opts, command=f"driver list {args.target}",
                   write=False) as target:
        entries = list_drivers(target, all=args.all)
    if opts.json:
        print_json([e.to_json() for e in entries])
        return 0
    for e in entries:
        print(f"Published Name : {e.published_name}\nOriginal File Name : {e.original_name}\n"
              f"Inbox : {_yes(e.inbox)}\nClass Name : {e.class_name}\n"
              f"Provider Name : {e.provider}\nDate : {e.date}\nVersion : {e.version}\n"
              f"Boot Critical : {_yes(e.boot_critical)}\n")
    if not entries:
        print("No third-party driver packages." if not args.all else "No driver packages.")
    return 0


def run_info(args) -> int:
    from servicing.features.driver_query import driver_info
    from servicing.session import operation, options_from_args

    opts = options_from_args(args)
    with operation(args.target, opts, command=f"driver info {args.target} {args.name}",
                   write=False) as target:
        e = driver_info(target, args.name)
    if opts.json:
        print_json(e.to_json())
        return 0
    print(f"Published Name : {e.published_name}\nDriver Store Path : {e.store or '-'}\n"
          f"Class Name : {e.class_name}\nClass Description : {e.class_description or '-'}\n"
          f"Class GUID : {e.class_guid}\nDate : {e.date}\n"
          f"Version : {e.version}\nBoot Critical : {_yes(e.boot_critical)}\n"
          f"Signature : {'Signed' if e.signed else 'Unsigned' if e.signed is False else '-'}"
          f"{' (' + e.signer + ')' if e.signer else ''}\n")
    for h in e.hardware:
        print(f"Manufacturer : {h['manufacturer']}\nDescription : {h['description']}\n"
              f"Architecture : {h['architecture']}\nHardware ID : {h['hardware_id']}\n"
              f"Compatible IDs : {', '.join(h['compatible_ids']) or '-'}\n"
              f"Exclude IDs : {', '.join(h['exclude_ids']) or '-'}\n"
              f"Service Name : {h['service'] or '-'}\n")
    return 0


def run_add(args) -> int:
    from servicing.features.drivers import add_drivers
    from servicing.session import changes_json, operation, options_from_args

    opts = options_from_args(args)

    def warn(message: str) -> None:
        print(f"warning: {message}", file=sys.stderr)

    with operation(args.target, opts, command="driver add " + " ".join(args.paths),
                   write=True) as target:
        results = add_drivers(target, args.paths, recurse=args.recurse,
                              force_unsigned=args.force_unsigned, warn=warn)
    if opts.json:
        doc = changes_json(target) | {"drivers": [r.to_json() for r in results]}
        print_json(doc)
        return 0
    for r in results:
        if r.status == "added":
            extra = " (boot-critical: installed now)" if r.boot_critical else ""
            print(f"{r.original_name}: added as {r.published_name}{extra}")
        elif r.status == "present":
            print(f"{r.original_name}: already present as {r.published_name}")
    return 0


def run_remove(args) -> int:
    from servicing.features.driver_query import remove_drivers
    from servicing.session import changes_json, operation, options_from_args

    opts = options_from_args(args)
    with operation(args.target, opts, command="driver remove " + " ".join(args.names),
                   write=True) as target:
        removed = remove_drivers(target, args.names)
    if opts.json:
        print_json(changes_json(target) | {"removed": removed})
        return 0
    for name in removed:
        print(f"{name}: removed")
    return 0
