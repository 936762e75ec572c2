"""`wimfs feature list|info|enable|disable TARGET ...`: Windows features (the selectable
updates of CBS packages) of a Windows tree or of IMAGE.wim[:N], mount-free (DISM
/Get-Features, /Get-FeatureInfo, /Enable-Feature, /Disable-Feature). Syntax and text
only; the work is in servicing.features.cbs_features."""

from __future__ import annotations

from servicing.commands import print_json


def add_parser(sub) -> None:
    from servicing.options import add_common_arguments

    p = sub.add_parser("feature", help="list, inspect, enable and disable Windows features "
                                       "of a TARGET (a Windows tree or IMAGE.wim[:N])")
    ps = p.add_subparsers(dest="feature_command", metavar="COMMAND", required=True)
    c = ps.add_parser("list", help="features and their state (DISM /Get-Features)")
    c.add_argument("target", metavar="TARGET")
    c.add_argument("--package", metavar="IDENTITY", help="only this package's features")
    add_common_arguments(c, writes=False)
    c.set_defaults(func=run_list)
    c = ps.add_parser("info", help="one feature (DISM /Get-FeatureInfo)")
    c.add_argument("target", metavar="TARGET")
    c.add_argument("name", metavar="NAME")
    c.add_argument("--package", metavar="IDENTITY", help="the package holding it")
    add_common_arguments(c, writes=False)
    c.set_defaults(func=run_info)
    for verb, text in (("enable", "enable features at the image's first boot "
                                  "(DISM /Enable-Feature)"),
                       ("disable", "disable features at the image's first boot "
                                   "(DISM /Disable-Feature)")):
        c = ps.add_parser(verb, help=text)
        c.add_argument("target", metavar="TARGET")
        c.add_argument("names", metavar="NAME", nargs="+")
        c.add_argument("--package", metavar="IDENTITY", help="the package holding them")
        if verb == "enable":
            c.add_argument("--all", action="store_true", help="also enable the features "
                           "they depend on (DISM /All)")
            c.add_argument("--source", metavar="PATH", help="where Windows finds the "
                           "payload at first boot (DISM /Source), a path as the running "
                           "image sees it")
            c.add_argument("--limit-access", action="store_true", help="do not let "
                           "Windows fetch the payload from Windows Update (DISM "
                           "/LimitAccess)")
        else:
            c.add_argument("--remove", action="store_true",
                           help="also remove the payload (DISM /Remove; 8+)")
        add_common_arguments(c)
        c.set_defaults(func=run_change, verb=verb)



def run_list(args) -> int:
    from servicing.features.cbs_features import list_features
    from servicing.session import operation, options_from_args

    opts = options_from_args(args)
    with operation(args.target, opts, command=f"feature list {args.target}",
                   write=False) as target:
        features = list_features(target, args.package)
    if opts.json:
        print_json([f.to_json() for f in features])
        return 0
    for f in features:
        print(f"Feature Name : {f.name}\nState : {f.state}\n")
    if not features:
        print("No features.")
    return 0


def run_info(args) -> int:
    from servicing.features.cbs_features import feature_info
    from servicing.session import operation, options_from_args

    opts = options_from_args(args)
    with operation(args.target, opts, command=f"feature info {args.target} {args.name}",
                   write=False) as target:
        f = feature_info(target, args.name, args.package)
    if opts.json:
        print_json(f.to_json())
        return 0
    print(f"Feature Name : {f.name}\nDisplay Name : {f.display_name or '-'}\n"
          f"Description : {f.description or '-'}\nRestart Required : "
          f"{f.restart.capitalize() or '-'}\nState : {f.state}\nPackage : {f.package}")
    return 0


def run_change(args) -> int:
    from servicing.features import cbs_features
    from servicing.session import changes_json, operation, options_from_args

    opts = options_from_args(args)
    with operation(args.target, opts, command=f"feature {args.verb} "
                   + " ".join(args.names), write=True) as target:
        if args.verb == "enable":
            results = cbs_features.enable_features(target, args.names, package=args.package,
                                                   all_parents=args.all, source=args.source,
                                                   limit_access=args.limit_access)
        else:
            results = cbs_features.disable_features(target, args.names,
                                                    package=args.package,
                                                    remove_payload=args.remove)
    if opts.json:
        print_json(changes_json(target) | {"features": [r.to_json() for r in results]})
        return 0
    for r in results:
        print(f"{r.name}: {r.state}")
    return 0
