"""`wimfs edition get|targets|set|product-key TARGET` (DISM /Get-CurrentEdition,
/Get-TargetEditions, /Set-Edition, /Set-ProductKey). Syntax and text only; the work is in
servicing.features.edition."""

from __future__ import annotations

from servicing.commands import print_json


def add_parser(sub) -> None:
    from servicing.options import add_common_arguments

    p = sub.add_parser("edition", help="the edition of a TARGET: current, targets, change")
    ps = p.add_subparsers(dest="edition_command", metavar="COMMAND", required=True)
    c = ps.add_parser("get", help="the current edition (DISM /Get-CurrentEdition)")
    c.add_argument("target", metavar="TARGET")
    add_common_arguments(c, writes=False)
    c.set_defaults(func=run_get)
    c = ps.add_parser("targets", help="editions the image can be changed to "
                                      "(DISM /Get-TargetEditions)")
    c.add_argument("target", metavar="TARGET")
    add_common_arguments(c, writes=False)
    c.set_defaults(func=run_targets)
    c = ps.add_parser("set", help="change to a target edition (DISM /Set-Edition)")
    c.add_argument("target", metavar="TARGET")
    c.add_argument("edition", metavar="EDITION")
    c.add_argument("--product-key", metavar="KEY", help="XXXXX-XXXXX-XXXXX-XXXXX-XXXXX, "
                   "given to Setup (Panther\\unattend.xml)")
    add_common_arguments(c)
    c.set_defaults(func=run_set)
    c = ps.add_parser("product-key", help="give Setup a product key (DISM /Set-ProductKey)")
    c.add_argument("target", metavar="TARGET")
    c.add_argument("key", metavar="KEY")
    add_common_arguments(c)
    c.set_defaults(func=run_product_key)



def _read(args, what: str):
    from servicing.features.edition import edition_info
    from servicing.session import operation, options_from_args

    opts = options_from_args(args)
    with operation(args.target, opts, command=f"edition {what} {args.target}",
                   write=False) as t:
        return opts, edition_info(t)


def run_get(args) -> int:
    opts, ed = _read(args, "get")
    if opts.json:
        print_json(ed.to_json())
        return 0
    print(f"Current edition : {ed.edition or '-'}")
    if ed.package:
        print(f"Edition package : {ed.package}")
    if ed.composition_edition:
        print(f"Composition edition : {ed.composition_edition}")
    return 0


def run_targets(args) -> int:
    opts, ed = _read(args, "targets")
    if opts.json:
        print_json(ed.to_json())
        return 0
    for t in ed.targets:
        print(f"Target edition : {t}")
    if not ed.targets:
        print("No target editions.")
    return 0


def run_set(args) -> int:
    from servicing.features.edition import check_product_key, set_edition
    from servicing.session import changes_json, operation, options_from_args

    opts = options_from_args(args)
    if args.product_key is not None:
        check_product_key(args.product_key)
    with operation(args.target, opts, command=f"edition set {args.target} {args.edition}",
                   write=True) as t:
        ed = set_edition(t, args.edition, product_key=args.product_key)
    if opts.json:
        print_json(changes_json(t) | {"edition": ed.to_json()})
    elif not opts.dry_run:
        if ed.pending:
            print(f"edition {ed.pending[0]}: scheduled for the first boot")
        else:
            print(f"edition changed to {ed.edition}")
    return 0


def run_product_key(args) -> int:
    from servicing.features.edition import check_product_key, set_product_key
    from servicing.session import changes_json, operation, options_from_args

    opts = options_from_args(args)
    key = check_product_key(args.key)
    with operation(args.target, opts, command=f"edition product-key {args.target}",
                   write=True) as t:
        path = set_product_key(t, key)
    if opts.json:
        print_json(changes_json(t) | {"answer_file": path})
    elif not opts.dry_run:
        print(f"product key placed in {path} (applied by Setup, specialize pass)")
    return 0
