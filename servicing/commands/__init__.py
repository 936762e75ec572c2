"""Front ends of the servicing commands that wimfs's command line offers besides
`wimfs reg` (servicing/cli.py): `wimfs image-info` and `wimfs update`. Syntax and text
only; the work is in servicing.features, servicing.session and the overlay.

`wimfs.cli` registers these parsers by name (``servicing.commands:add_parsers``), so the
wimfs engine never imports servicing; importing this package loads only argparse."""

from __future__ import annotations

import json

# The servicing command modules, in the order `wimfs --help` lists them.
MODULES = ("image_info", "update", "driver", "package", "feature", "firstboot", "unattend",
           "intl", "app", "pe", "edition")


def add_parsers(sub) -> None:
    from importlib import import_module

    from servicing.editions import wrap_parsers

    before = set(sub.choices)
    wanted = getattr(sub, "wanted", None)      # one command only (wimfs.cli.build_parser)
    for name in MODULES:
        if wanted is None or wanted == name.replace("_", "-"):
            import_module(f"servicing.commands.{name}").add_parser(sub)
    # Every servicing command takes IMAGE.wim:all and IMAGE.wim:1,3,5 (servicing.editions).
    for name in set(sub.choices) - before:
        wrap_parsers(sub.choices[name])


def print_json(doc) -> None:
    """A command's --json document on stdout (the one format of every servicing command)."""
    print(json.dumps(doc, indent=2, ensure_ascii=False))
