"""`wimfs app list|info|patches|patch-info|check-patch TARGET ...`: the Windows Installer
applications and patches of a Windows tree or of IMAGE.wim[:N], mount-free (DISM
/Get-Apps, /Get-AppInfo, /Get-AppPatches, /Get-AppPatchInfo, /Check-AppPatch). Syntax
and text only; the work is in servicing.features.msi_apps and msi_patch."""

from __future__ import annotations

from servicing.commands import print_json


def add_parser(sub) -> None:
    from servicing.options import add_common_arguments

    a = sub.add_parser("app", help="Windows Installer applications and patches of a TARGET "
                                   "(a Windows tree or IMAGE.wim[:N])")
    s = a.add_subparsers(dest="app_command", metavar="COMMAND", required=True)
    c = s.add_parser("list", help="products installed per machine (DISM /Get-Apps)")
    _common(c, add_common_arguments, run_list)
    c = s.add_parser("info", help="product details (DISM /Get-AppInfo)")
    c.add_argument("--product-code", metavar="GUID", help="only this product")
    _common(c, add_common_arguments, run_info)
    c = s.add_parser("patches", help="installed patches (DISM /Get-AppPatches)")
    c.add_argument("--product-code", metavar="GUID", help="only this product's patches")
    _common(c, add_common_arguments, run_patches)
    c = s.add_parser("patch-info", help="patch details (DISM /Get-AppPatchInfo)")
    c.add_argument("--patch-code", metavar="GUID", help="only this patch")
    c.add_argument("--product-code", metavar="GUID", help="only this product's patches")
    _common(c, add_common_arguments, run_patch_info)
    c = s.add_parser("check-patch", help="which installed products .msp patches apply to, "
                                         "and why not (DISM /Check-AppPatch)")
    c.add_argument("target", metavar="TARGET")
    c.add_argument("patches", metavar="PATCH.msp", nargs="+")
    add_common_arguments(c, writes=False)
    c.set_defaults(func=run_check)


def _common(c, add_common_arguments, func) -> None:
    c.add_argument("target", metavar="TARGET")
    add_common_arguments(c, writes=False)
    c.set_defaults(func=func)



def _records(records: list[list[tuple[str, object]]], empty: str) -> None:
    for rec in records:
        print("\n".join(f"{label} : {value}" for label, value in rec) + "\n")
    if not records:
        print(empty)


def _read(args, what: str, work):
    from servicing.session import operation, options_from_args

    opts = options_from_args(args)
    with operation(args.target, opts, command=f"app {what} {args.target}",
                   write=False) as target:
        return opts, work(target)


def _code(args, name: str, what: str) -> str | None:
    from servicing.features.msi_apps import product_code_arg
    value = getattr(args, name, None)
    return None if value is None else product_code_arg(value, what)


def run_list(args) -> int:
    from servicing.features.msi_apps import list_products

    opts, products = _read(args, "list", list_products)
    if opts.json:
        print_json([{"product_code": p.product_code, "name": p.name} for p in products])
        return 0
    _records([[("Product Code", p.product_code), ("Product Name", p.name)]
              for p in products], "No Windows Installer products are installed.")
    return 0


def product_record(p: dict) -> list[tuple[str, object]]:
    """DISM /Get-AppInfo's labels of a product (its --json record)."""
    assign = "" if p["assignment"] is None else f"{p['assignment']} ({p['assignment_name']})"
    return [("Product Code", p["product_code"]), ("Product Name", p["name"]),
            ("Product State", f"{p['state']} ({p['state_name']})"),
            ("Package Code", p["package_code"]), ("Product Version", p["version"]),
            ("Assignment Type", assign), ("Publisher", p["publisher"]),
            ("Language", "" if p["language"] is None else p["language"]),
            ("Install Source", p["install_source"]), ("Package Name", p["package_name"]),
            ("Help Link", p["help_link"]), ("Transforms", p["transforms"]),
            ("Local Package", p["local_package"]), ("Install Date", p["install_date"])]


def run_info(args) -> int:
    from servicing.features.msi_apps import product_info

    code = _code(args, "product_code", "product code")
    opts, products = _read(args, "info", lambda t: product_info(t, code))
    docs = [p.to_json() for p in products]
    if opts.json:
        print_json(docs)
        return 0
    _records([product_record(d) for d in docs], "No Windows Installer products are "
                                                "installed.")
    return 0


def patch_record(p: dict, full: bool) -> list[tuple[str, object]]:
    """DISM /Get-AppPatches (full=False) or /Get-AppPatchInfo labels of a patch."""
    rec = [("Patch Code", p["patch_code"]), ("Product Code", p["product_code"]),
           ("Patch Name", p["name"])]
    if full:
        state = "" if p["state"] is None else f"{p['state']} ({p['state_name']})"
        unin = "" if p["uninstallable"] is None else \
            ("1 (Yes)" if p["uninstallable"] else "0 (No)")
        rec += [("Patch State", state), ("Patch Uninstallable", unin),
                ("Help Link", p["help_link"]), ("Transforms", p["transforms"]),
                ("Local Package", p["local_package"]), ("Install Date", p["install_date"])]
    return rec


def _patches(args, full: bool) -> int:
    from servicing.features.msi_apps import list_patches

    product = _code(args, "product_code", "product code")
    patch = _code(args, "patch_code", "patch code")
    what = "patch-info" if full else "patches"
    opts, patches = _read(args, what, lambda t: list_patches(t, product, patch))
    docs = [p.to_json() for p in patches]
    if opts.json:
        print_json(docs)
        return 0
    _records([patch_record(d, full) for d in docs], "No patches are installed.")
    return 0


def run_patches(args) -> int:
    return _patches(args, False)


def run_patch_info(args) -> int:
    return _patches(args, True)


def run_check(args) -> int:
    from servicing.features.msi_patch import check_patches

    opts, results = _read(args, "check-patch", lambda t: check_patches(t, args.patches))
    if opts.json:
        print_json([r.to_json() for r in results])
        return 0
    for r in results:
        verdict = "applicable" if r.applicable else "not applicable"
        installed = " (already installed)" if r.already_installed else ""
        print(f"{r.patch}: {verdict} to {r.product_code} ({r.product_name}){installed}: "
              f"{r.reason}")
    if not results:
        print("No Windows Installer products are installed.")
    return 0
