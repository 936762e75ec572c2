"""`wimfs unattend check FILE.xml` and `wimfs unattend apply TARGET FILE.xml`: answer files
(DISM /Apply-Unattend). Syntax and text only; the work is in servicing.features.unattend and
the parsing in servicing.formats.unattend."""

from __future__ import annotations

import os
import sys

from servicing.commands import print_json


def add_parser(sub) -> None:
    from servicing.options import add_common_arguments

    u = sub.add_parser("unattend", help="check answer files (unattend.xml) and apply their "
                                        "offline part to a TARGET (DISM /Apply-Unattend)")
    us = u.add_subparsers(dest="unattend_command", metavar="COMMAND", required=True)
    c = us.add_parser("check", help="passes, components, settings, what applies offline, "
                                    "and schema mistakes with their line numbers")
    c.add_argument("file", metavar="FILE.xml")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=run_check)
    c = us.add_parser("apply", help="apply the offlineServicing pass and <servicing> "
                                    "(driver paths, offline settings)")
    c.add_argument("target", metavar="TARGET")
    c.add_argument("file", metavar="FILE.xml")
    c.add_argument("--path-map", action="append", default=[], metavar="WIN=LOCAL",
                   help="where a Windows path of the file is here, e.g. "
                        "'C:\\Drivers=/srv/drivers' (longest prefix wins)")
    c.add_argument("--strict", action="store_true",
                   help="fail when an offline setting cannot be applied")
    c.add_argument("--place", action="store_true",
                   help="also copy the file to <windir>\\Panther\\unattend.xml for Setup")
    add_common_arguments(c)
    c.set_defaults(func=run_apply)


def _read(path: str) -> bytes:
    from servicing.errors import TargetPathError
    from servicing.formats.unattend import MAX_FILE, UnattendError

    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE + 1)
    except OSError as e:
        raise TargetPathError(f"{path}: {e.strerror}") from None
    if len(data) > MAX_FILE:
        raise UnattendError(f"{path}: over {MAX_FILE} bytes; not an answer file")
    return data


def run_check(args) -> int:
    from servicing.features.unattend import plan
    from servicing.formats.unattend import parse

    answer = parse(_read(args.file), args.file)
    items = plan(answer)
    if args.json:
        print_json(answer.to_json() | {"items": [i.to_json() for i in items]})
        return 3 if answer.errors else 0
    print(f"Passes : {', '.join(answer.passes) or '-'}")
    for c in answer.components:
        print(f"Component : {c.name} ({c.pass_name}, {c.architecture or '-'}, line {c.line})")
    for i in items:
        if i.status in ("applied", "not applied"):
            verb = "applies offline" if i.status == "applied" else f"not applied: {i.detail}"
            print(f"line {i.line}: {i.component} {i.setting or ''} = {i.value or ''}: {verb}")
    for p in answer.problems:
        print(str(p))
    print(f"{len(answer.errors)} error(s)")
    return 3 if answer.errors else 0


def run_apply(args) -> int:
    from servicing.features.unattend import apply_answer_file, parse_path_maps
    from servicing.session import changes_json, operation, options_from_args

    opts = options_from_args(args)
    data = _read(args.file)
    maps = parse_path_maps(args.path_map)

    def warn(message: str) -> None:
        print(f"warning: {message}", file=sys.stderr)

    with operation(args.target, opts, command=f"unattend apply {args.file}",
                   write=True) as target:
        result = apply_answer_file(target, data, args.file, path_maps=maps,
                                   base_dir=os.path.dirname(os.path.abspath(args.file)),
                                   strict=args.strict, place=args.place, warn=warn)
    if opts.json:
        print_json(changes_json(target) | result.to_json())
        return 0
    for i in result.items:
        if i.status == "applied":
            print(f"applied: {i.component} {i.setting} = {i.value}")
        elif i.status == "not applied":
            print(f"not applied (line {i.line}): {i.component} {i.setting or ''}: {i.detail}")
    for d in result.drivers:
        if d["status"] == "added":
            print(f"driver {d['original_name']}: added as {d['published_name']}")
    for r in result.packages:
        what = r.get("identity") or r.get("name")
        print(f"{what}: {r['status']} ({r.get('message') or r.get('state') or ''})")
    if result.placed:
        print(f"answer file placed at {result.placed} (Windows Setup reads it there)")
    else:
        print("The answer file was not copied into the image (as DISM); --place does.")
    return 0
