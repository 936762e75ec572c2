"""``wimfs reg``: a reg.exe-style command over a Windows tree.

Options are spelled as reg.exe does (``/v NAME``) or with a dash (``-v NAME``); the
command line is parsed by argparse (so ``-h``/``--help``/``/?`` work anywhere) and
every error goes through the one mapping of wimfs (`wimfs.cli.run_guarded`,
`wimfs.errors.exit_code_for`): 0 ok, 1 failed (as reg.exe, e.g. access denied on a
read-only tree), 2 usage, malformed key path or bad .reg syntax, 3 corrupt,
unsupported or dirty hive, 4 key, value, hive or file not found. ``wimfs --debug reg``
adds the traceback. Nothing is reported as done before it is committed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from wimfs.cli import Parser, run_guarded
from wimfs.errors import PathNotFoundError, UsageError, WimfsError
from wimfs.fsutil import check_output_dir

from . import regfile
from .options import add_common_arguments, options_from_args
from .registry import ImageRegistry, RegistryPathError, split_key
from .session import changes_json, operation
from .regf import TYPE_BY_NAME, RegfNotFoundError
from .regf.values import decode_value, parse_value_text
from .regf.format import (REG_DWORD, REG_DWORD_BIG_ENDIAN, REG_EXPAND_SZ, REG_LINK,
                          REG_MULTI_SZ, REG_QWORD, REG_SZ)

PROG = "wimfs reg"
DONE = "The operation completed successfully."
KEY_HELP = r"key path: HKLM\SYSTEM\..., HKLM\SOFTWARE\..., HKU\.DEFAULT\..."


def _parse_type(t: str) -> int:
    u = t.upper()
    if u in TYPE_BY_NAME:
        return TYPE_BY_NAME[u]
    if u.startswith("REG_0X") and u[6:] and all(c in "0123456789ABCDEF" for c in u[6:]):
        return int(u[6:], 16)
    raise UsageError(f"unknown value type {t!r} (REG_SZ, REG_DWORD, ...)")


def data_to_text(vtype: int, raw: bytes) -> str:
    """Data as reg.exe query prints it."""
    v = decode_value(vtype, raw)
    if vtype in (REG_DWORD, REG_DWORD_BIG_ENDIAN, REG_QWORD) and isinstance(v, int):
        return "0x%x" % v
    if vtype in (REG_SZ, REG_EXPAND_SZ) or (vtype == REG_LINK and isinstance(v, str)):
        return v
    if vtype == REG_MULTI_SZ:
        return "\\0".join(v)
    return raw.hex().upper()


def _json_data(vtype: int, raw: bytes):
    v = decode_value(vtype, raw)
    if isinstance(v, bytes):
        return v.hex()
    return v


# -- the commands: each returns the message printed once its edits are committed ---------


def _key_path(text: str) -> str:
    """A well-formed key path (root + hive), else a usage error."""
    try:
        root, mount, _ = split_key(text)
    except RegistryPathError as exc:
        raise UsageError(f"bad key path '{text}': {exc}") from None
    if not mount:
        raise UsageError(f"bad key path '{text}': name a hive under {root} (e.g. "
                         f"{root}\\SOFTWARE)")
    return text


def _open_key(reg: ImageRegistry, path: str):
    """(hive, path in the hive, full name, key); a missing key is named by its full path."""
    h, sub, canon = reg.resolve(path)
    try:
        return h, sub, canon, h.key(sub)
    except RegfNotFoundError:
        raise RegfNotFoundError(f"key {canon} not found") from None


def _cmd_query(reg: ImageRegistry, a, out) -> str | None:
    h, sub, canon, key = _open_key(reg, a.key)
    want = "" if a.ve else a.v
    walk = h.walk(sub) if a.s else [(sub, key)]
    entries = []
    for rel, k in walk:
        full = canon + (rel[len(sub):] if sub else ("\\" + rel if rel else ""))
        vals = k.values()
        if want is not None:
            vals = [v for v in vals if v.name.upper() == want.upper()]
            if not a.s and not vals:
                raise RegfNotFoundError(f"value {want!r} not found in {full}")
        entries.append((full, k, vals))
    if a.json:
        _query_json(entries, a.s, out)
        return None
    for full, k, vals in entries:
        if want is not None and a.s and not vals:
            continue
        out.write(f"\n{full}\n")
        for v in vals:
            out.write(f"    {v.name or '(Default)'}    {v.type_name}    "
                      f"{data_to_text(v.type, v.raw)}\n")
        if not a.s and want is None:
            out.write("\n")
            for sk in k.subkeys():
                out.write(f"{full}\\{sk.name}\n")
    return None


def _query_json(entries, recurse: bool, out) -> None:
    doc = []
    for full, k, vals in entries:
        item = {"key": full, "values": [
            {"name": v.name, "type": v.type_name, "data": _json_data(v.type, v.raw)}
            for v in vals]}
        if not recurse:
            item["subkeys"] = [sk.name for sk in k.subkeys()]
        doc.append(item)
    out.write(json.dumps(doc if recurse else doc[0], indent=2, ensure_ascii=False) + "\n")


def _cmd_add(reg: ImageRegistry, a, out) -> str:
    name = "" if a.ve else a.v
    if name is None:
        if a.d is not None or a.t is not None:
            raise UsageError("/t and /d need /v NAME or /ve")
        reg.create_key(a.key)
        return DONE
    vtype = _parse_type(a.t or "REG_SZ")
    raw = parse_value_text(vtype, a.d, a.se if a.se is not None else "\\0")
    h, sub, canon = reg.resolve(a.key)
    k = h.create_key(sub)
    if not a.f:
        try:
            k.value(name)
        except RegfNotFoundError:
            pass
        else:
            raise WimfsError(f"value {name!r} exists in {canon}; use /f to overwrite")
    k.set_value(name, vtype, raw)
    return DONE


def _cmd_delete(reg: ImageRegistry, a, out) -> str:
    if not a.f:
        raise WimfsError("delete needs /f (there is no interactive confirmation)")
    h, sub, canon, key = _open_key(reg, a.key)
    if a.va:
        for v in key.values():
            key.delete_value(v.name)
    elif a.ve or a.v is not None:
        name = "" if a.ve else a.v
        try:
            key.delete_value(name)
        except RegfNotFoundError:
            raise RegfNotFoundError(f"value {name!r} not found in {canon}") from None
    elif not sub:
        raise WimfsError(f"cannot delete the root of hive {canon}")
    else:
        h.delete_key(sub)
    return DONE


def _cmd_import(reg: ImageRegistry, a, out) -> str:
    try:
        with open(a.file, "rb") as f:
            blob = f.read()
    except FileNotFoundError:
        raise PathNotFoundError(f"{a.file}: no such file") from None
    reg.import_reg(regfile.decode_text(blob))
    return DONE


def _cmd_export(reg: ImageRegistry, a, out) -> str:
    check_output_dir(a.file)
    if os.path.exists(a.file) and not a.y:
        raise WimfsError(f"{a.file} exists; use /y to overwrite")
    _open_key(reg, a.key)
    text = reg.export_reg(a.key)
    with open(a.file, "wb") as f:
        f.write(regfile.encode_file(text, "utf-8" if a.utf8 else "utf-16"))
    return DONE


# -- parsing -------------------------------------------------------------------------------

# name -> (function, writes, summary, examples); options: see _options
COMMANDS = {
    "query": (_cmd_query, False, "show a key's values and subkeys",
              r"  wimfs reg /mnt query 'HKLM\SYSTEM\Select' /v Current" "\n"
              r"  wimfs reg /mnt query 'HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion' "
              "--json\n"
              r"  wimfs reg /mnt query 'HKLM\SYSTEM\CurrentControlSet\Services' /s /v Start"),
    "add": (_cmd_add, True, "create a key or set a value",
            r"  wimfs reg /mnt add 'HKLM\SOFTWARE\Contoso'" "\n"
            r"  wimfs reg /mnt add 'HKLM\SOFTWARE\Contoso' /v Build /t REG_DWORD /d 42 /f" "\n"
            r"  wimfs reg /mnt add 'HKLM\SOFTWARE\Contoso' /v List /t REG_MULTI_SZ /d 'a\0b'"),
    "delete": (_cmd_delete, True, "delete a key, a value or all values of a key",
               r"  wimfs reg /mnt delete 'HKLM\SOFTWARE\Contoso' /f" "\n"
               r"  wimfs reg /mnt delete 'HKLM\SOFTWARE\Contoso' /v Build /f"),
    "import": (_cmd_import, True, "apply a .reg file (REGEDIT4 or version 5.00)",
               "  wimfs reg /mnt import changes.reg"),
    "export": (_cmd_export, False, "write a key and everything below it to a .reg file",
               r"  wimfs reg /mnt export 'HKLM\SYSTEM\CurrentControlSet\Control"
               r"\TimeZoneInformation' tz.reg"),
}

# option -> (takes a value, help); per command the subset of _options()
_OPTS = {
    "v": (True, "NAME", "the value NAME"), "ve": (False, None, "the default (unnamed) value"),
    "va": (False, None, "all values of the key"), "s": (False, None, "query subkeys too"),
    "t": (True, "TYPE", "value type: REG_SZ (default), REG_EXPAND_SZ, REG_MULTI_SZ, "
                        "REG_DWORD, REG_QWORD, REG_BINARY, REG_NONE, REG_0xN"),
    "d": (True, "DATA", "the data: decimal or 0x-hex numbers, hex bytes, strings"),
    "se": (True, "SEP", r"REG_MULTI_SZ separator (default \0); reg.exe spells it /s"),
    "f": (False, None, "do it without asking (needed to overwrite or delete)"),
    "y": (False, None, "overwrite FILE"),
}
_CMD_OPTS = {"query": ("v", "ve", "s"), "add": ("v", "ve", "t", "d", "se", "f"),
             "delete": ("v", "ve", "va", "f"), "import": (), "export": ("y",)}


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description="reg.exe-style access to the registry hives of a "
               "Windows tree (a wimfs mount, an extracted image, an ntfs-3g mount).\n"
               "Options are spelled /v or -v (likewise /t /d /f /s /ve /va /y).",
               epilog="examples:\n" + "\n".join(c[3] for c in COMMANDS.values()) +
               "\n\nexit codes: 0 ok, 1 failed (e.g. a read-only tree), 2 usage or bad .reg "
               "syntax, 3 corrupt or dirty hive, 4 key, value, hive or file not found")
    p.add_argument("tree", metavar="TARGET", help="a Windows tree (directory) or "
                   "IMAGE.wim[:N|:NAME|:all|:N,M,...], edited without mounting it")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (fn, writes, summary, examples) in COMMANDS.items():
        c = sub.add_parser(name, help=summary, description=summary[:1].upper() + summary[1:],
                           epilog="examples:\n" + examples)
        c.set_defaults(run=fn, writes=writes, prog=c.prog)
        add_common_arguments(c, writes=writes, json=name != "query")
        if name == "import":
            c.add_argument("file", metavar="FILE.reg")
        else:
            c.add_argument("key", metavar="KEY", type=_key_arg, help=KEY_HELP)
        if name == "export":
            c.add_argument("file", metavar="FILE.reg")
            c.add_argument("--utf8", action="store_true", help="write UTF-8 (default UTF-16)")
        if name == "query":
            c.add_argument("--json", action="store_true", help="machine-readable output")
        for opt in _CMD_OPTS[name]:
            takes, metavar, help_ = _OPTS[opt]
            spelled = "s" if opt == "se" else opt
            kind = {"metavar": metavar} if takes else {"action": "store_true"}
            c.add_argument(f"-{opt}", dest=opt, help=f"/{spelled}: {help_}", **kind)
    return p


def _key_arg(text: str) -> str:
    try:
        return _key_path(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def normalize(argv: list[str]) -> list[str]:
    """reg.exe spelling -> argparse: ``/V x`` -> ``-v=x``; ``/?`` -> ``-h``. Only the
    options of the command are recognised (so a FILE like /tmp/x.reg stays as it is);
    ``add /s`` is the separator."""
    if len(argv) < 2 or argv[1].lower() not in _CMD_OPTS:
        return [("-h" if a == "/?" else a) for a in argv]
    cmd = argv[1].lower()
    known = set(_CMD_OPTS[cmd]) | ({"s"} if cmd == "add" else set())
    out, i = [argv[0], cmd], 2
    while i < len(argv):
        a = argv[i]
        name = a[1:].lower() if a[:1] in "/-" and a[1:2] != "-" else None
        if a == "/?":
            out.append("-h")
        elif name in known:
            name = "se" if cmd == "add" and name == "s" else name
            if _OPTS[name][0]:
                if i + 1 >= len(argv):
                    raise UsageError(f"option {a} needs a value (see '{PROG} TREE {cmd} "
                                     "--help')")
                out.append(f"-{name}={argv[i + 1]}")
                i += 1
            else:
                out.append(f"-{name}")
        else:
            out.append(a)
        i += 1
    return out


def _check_writable(tree: str) -> None:
    """Refuse up front to edit a read-only tree (reg.exe: access denied)."""
    if os.path.isdir(tree) and (os.statvfs(tree).f_flag & os.ST_RDONLY
                                or not os.access(tree, os.W_OK)):
        raise WimfsError(f"{tree} is read-only")


def _run(argv: list[str], out) -> int:
    parser = build_parser()
    if not argv:
        parser.print_help(sys.stderr)
        return 2
    a = parser.parse_args(normalize(argv))
    if a.writes:
        _check_writable(a.tree)
    opts = options_from_args(a)
    command = " ".join(["reg", *argv[1:]])
    from servicing.editions import multi_spec, run_each
    if (found := multi_spec(a.tree)) is not None:     # IMAGE.wim:all, IMAGE.wim:1,3,5
        return run_each(*found, lambda spec, o: _run_one(a, opts, command, spec, o),
                        skip_not_applicable=opts.skip_not_applicable,
                        as_json=opts.json, dry_run=opts.dry_run, out=out)
    return _run_one(a, opts, command, a.tree, out)


def _run_one(a: argparse.Namespace, opts, command: str, spec: str, out) -> int:
    with operation(spec, opts, command=command, write=a.writes, out=out) as target:
        reg = ImageRegistry(target, write=a.writes)
        message = a.run(reg, a, out)
        if a.writes:
            reg.commit()
    if a.writes and opts.json and not opts.dry_run:
        out.write(json.dumps(changes_json(target), indent=2, ensure_ascii=False) + "\n")
    elif message:
        out.write(message + "\n")
    return 0


def reg_main(argv: list[str], out=None, err=None, *, debug: bool = False) -> int:
    """Entry point of ``wimfs reg``; *argv* are the arguments after ``reg``."""
    return run_guarded(lambda: _run(list(argv), out or sys.stdout), debug=debug, prog=PROG,
                       err=err)


def main() -> int:  # pragma: no cover - convenience for python -m
    return reg_main(sys.argv[1:])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
