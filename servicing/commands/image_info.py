"""`wimfs image-info TARGET [--json]`: what Windows a tree or IMAGE.wim[:N] holds."""

from __future__ import annotations

from servicing.commands import print_json


def add_parser(sub) -> None:
    from servicing.options import add_common_arguments

    c = sub.add_parser("image-info", help="Windows version, architecture, edition of a TARGET "
                                          "(a Windows tree or IMAGE.wim[:N])")
    c.add_argument("target", metavar="TARGET")
    add_common_arguments(c, writes=False)
    c.set_defaults(func=run_image_info)


_LABELS = (("version", "Version"), ("kernel_version", "Kernel version"),
           ("architecture", "Architecture"), ("product_name", "Product name"),
           ("edition_id", "Edition"), ("installation_type", "Installation type"),
           ("winpe", "Windows PE"), ("system_root", "System root"),
           ("languages", "Languages"), ("layout", "Servicing layout"))


def run_image_info(args) -> int:
    from servicing.features.image_info import image_info
    from servicing.session import operation, options_from_args

    opts = options_from_args(args)
    with operation(args.target, opts, command=f"image-info {args.target}",
                   write=False) as target:
        info = image_info(target)
    if opts.json:
        print_json(info.to_json())
        return 0
    doc = info.to_json()
    for key, label in _LABELS:
        value = doc[key]
        if isinstance(value, bool):
            value = "Yes" if value else "No"
        elif isinstance(value, list):
            value = ", ".join(value)
        print(f"{label} : {value if value not in (None, '') else '-'}")
    return 0
