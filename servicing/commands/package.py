"""`wimfs package list|info|check|add|remove TARGET ...`: CBS packages of a Windows tree or
of IMAGE.wim[:N], mount-free (DISM /Get-Packages, /Get-PackageInfo, /Add-Package,
/Remove-Package). Syntax and text only; the work is in servicing.features.packages."""

from __future__ import annotations

import sys

from servicing.commands import print_json


def add_parser(sub) -> None:
    from servicing.options import add_common_arguments

    p = sub.add_parser("package", help="list, inspect, check, add and remove CBS packages "
                                       "(.cab/.msu) of a TARGET (a Windows tree or "
                                       "IMAGE.wim[:N])")
    ps = p.add_subparsers(dest="package_command", metavar="COMMAND", required=True)
    c = ps.add_parser("list", help="every package with its state (DISM /Get-Packages)")
    c.add_argument("target", metavar="TARGET")
    add_common_arguments(c, writes=False)
    c.set_defaults(func=run_list)
    c = ps.add_parser("info", help="a package by identity, or a package file checked "
                                   "against the image (DISM /Get-PackageInfo)")
    c.add_argument("target", metavar="TARGET")
    c.add_argument("name", metavar="IDENTITY|FILE.cab|FILE.msu")
    add_common_arguments(c, writes=False)
    c.set_defaults(func=run_info)
    c = ps.add_parser("check", help="does each package apply to the image, and if not, why")
    c.add_argument("target", metavar="TARGET")
    c.add_argument("paths", metavar="FILE|FOLDER", nargs="+",
                   help="a .cab, an .msu or a folder of them (searched recursively)")
    add_common_arguments(c, writes=False)
    c.set_defaults(func=run_check)
    c = ps.add_parser("add", help="copy packages into the image and install them at its "
                                  "first boot (DISM /Add-Package)")
    c.add_argument("target", metavar="TARGET")
    c.add_argument("paths", metavar="PATH", nargs="+",
                   help="a .cab, an .msu or a folder of them (searched recursively)")
    c.add_argument("--ignore-check", action="store_true",
                   help="add packages that do not apply (DISM /IgnoreCheck)")
    c.add_argument("--prevent-pending", action="store_true",
                   help="refuse when the image has operations pending (DISM "
                        "/PreventPending)")
    add_common_arguments(c)
    c.set_defaults(func=run_change)
    c = ps.add_parser("remove", help="take back a package added for the first boot, or "
                                     "remove an installed one at first boot "
                                     "(DISM /Remove-Package)")
    c.add_argument("target", metavar="TARGET")
    c.add_argument("names", metavar="IDENTITY", nargs="+")
    add_common_arguments(c)
    c.set_defaults(func=run_change)



def _time(t: str | None) -> str:
    return t.replace("T", " ").rstrip("Z")[:16] if t else "-"


def run_list(args) -> int:
    from servicing.features.packages import list_packages
    from servicing.session import operation, options_from_args

    opts = options_from_args(args)
    with operation(args.target, opts, command=f"package list {args.target}",
                   write=False) as target:
        records = list_packages(target)
    if opts.json:
        print_json([r.to_json() for r in records])
        return 0
    for r in records:
        print(f"Package Identity : {r.identity}\nState : {r.state}\n"
              f"Release Type : {r.release_type or '-'}\n"
              f"Install Time : {_time(r.install_time)}\n")
    if not records:
        print("No packages.")
    return 0


INFO_FIELDS = (("Package Identity", "identity"), ("Applicable", "applicable"),
               ("Copyright", "copyright"), ("Company", "company"),
               ("Creation Time", "creation_time"), ("Description", "description"),
               ("Install Client", "install_client"),
               ("Install Package Name", "install_package_name"),
               ("Install Time", "install_time"), ("Last Update Time", "last_update_time"),
               ("Name", "display_name"), ("Product Name", "product_name"),
               ("Product Version", "product_version"), ("Release Type", "release_type"),
               ("Restart Required", "restart"), ("Support Information",
                                                 "support_information"),
               ("State", "state"))


def info_lines(doc: dict, none: str = "-") -> list[str]:
    """The /Get-PackageInfo text of a ``package info --json`` document (shared with the
    DISM face)."""
    def show(v) -> str:
        if v is None or v == "":
            return none
        if isinstance(v, bool):
            return "Yes" if v else "No"
        return str(v)

    lines = []
    for label, key in INFO_FIELDS:
        value = doc.get(key)
        if key == "restart":
            value = {"required": "Required", "possible": "Possible",
                     "never": "No"}.get(str(value).lower(), value)
        lines.append(f"{label} : {show(value)}")
    props = doc.get("custom_properties") or {}
    lines += ["", "Custom Properties:", ""]
    lines += [f"{k} : {v}" for k, v in props.items()] or ["(No custom properties found)"]
    lines += [""]
    if doc.get("features"):
        lines += [f"Features listing for package : {doc['identity']}", ""]
        for f in doc["features"]:
            lines += [f"Feature Name : {f['name']}", f"State : {f['state']}", ""]
    else:
        lines += ["(No features found for this package)", ""]
    return lines


def run_info(args) -> int:
    from servicing.features.packages import package_info
    from servicing.session import operation, options_from_args

    opts = options_from_args(args)
    with operation(args.target, opts, command=f"package info {args.target} {args.name}",
                   write=False) as target:
        doc = package_info(target, args.name).to_json()
    if opts.json:
        print_json(doc)
        return 0
    print("\n".join(info_lines(doc)))
    for r in doc["not_applicable_reasons"]:
        print(f"Not applicable ({r['code']}) : {r['message']}")
    return 0


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def run_check(args) -> int:
    from servicing.features.packages import check_packages
    from servicing.session import operation, options_from_args

    opts = options_from_args(args)
    with operation(args.target, opts, command="package check " + " ".join(args.paths),
                   write=False) as target:
        results = check_packages(target, args.paths, warn=_warn)
    if opts.json:
        print_json([r.to_json() for r in results])
        return 0
    for r in results:
        verdict = "applicable" if r.applicable else "not applicable"
        extra = " (needs a restart)" if r.restart_required and r.applicable else ""
        print(f"{r.identity}: {verdict}{extra}")
        for reason in r.reasons:
            print(f"  {reason.code}: {reason.message}")
    return 0


def run_change(args) -> int:
    from servicing.features import packages
    from servicing.session import changes_json, operation, options_from_args

    opts = options_from_args(args)
    items = args.paths if args.package_command == "add" else args.names
    with operation(args.target, opts, command=f"package {args.package_command} "
                   + " ".join(items), write=True) as target:
        if args.package_command == "add":
            results = packages.add_packages(target, items, ignore_check=args.ignore_check,
                                            prevent_pending=args.prevent_pending, warn=_warn)
        else:
            results = packages.remove_packages(target, items)
    if opts.json:
        print_json(changes_json(target) | {"packages": [r.to_json() for r in results]})
        return 0
    for r in results:
        print(f"{r.identity}: {r.message}")
    return 0
