r"""``wimfs reg``: a reg.exe-style command over a Windows tree.

Usage::

    wimfs reg TREE query  KEY [/v NAME | /ve] [/s] [--json]
    wimfs reg TREE add    KEY [/v NAME | /ve] [/t TYPE] [/d DATA] [/s SEP] [/f]
    wimfs reg TREE delete KEY [/v NAME | /ve | /va] [/f]
    wimfs reg TREE import FILE.reg
    wimfs reg TREE export KEY FILE.reg [/y] [--utf8]

Options may be spelled ``/v`` or ``-v`` (likewise ``/t /d /f /s /ve /va``).
KEY starts with HKLM (HKEY_LOCAL_MACHINE) or HKU (HKEY_USERS), e.g.
``HKLM\SYSTEM\CurrentControlSet\Services``.  ``add`` data: REG_DWORD/REG_QWORD
decimal or 0x-hex, REG_BINARY hex digits, REG_MULTI_SZ items separated by
``\0`` (or the /s separator).  Non-interactive: ``add`` over an existing value
and ``delete`` need ``/f`` (reg.exe would prompt).

Exit codes:

==  ==========================================================
0   success
1   operation failed (I/O error, value exists without /f, ...)
2   usage error (bad arguments, bad .reg syntax, bad data)
3   corrupt, unsupported or dirty hive
4   key, value, hive or file not found
==  ==========================================================

Errors are one line on stderr prefixed ``wimfs reg: error:``; a traceback
is printed only when the environment variable ``WIMFS_DEBUG`` is set.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

from . import regfile
from .registry import ImageRegistry
from .session import operation, pop_common
from wimfs.errors import WimfsError
from .regf import (TYPE_BY_NAME, RegfCorruptError, RegfDirtyError, RegfError,
                   RegfNotFoundError, decode_data)
from .regf.format import (REG_DWORD, REG_DWORD_BIG_ENDIAN, REG_EXPAND_SZ, REG_MULTI_SZ,
                          REG_QWORD, REG_SZ)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CORRUPT = 3
EXIT_NOT_FOUND = 4

PREFIX = "wimfs reg: error: "


class UsageError(Exception):
    pass


class OpError(Exception):
    pass


_FLAGS = {"f", "s", "ve", "va", "y", "json", "utf8"}
_ARGS = {"v", "t", "d", "se"}


def _parse_opts(args: list[str], cmd: str) -> tuple[list[str], dict]:
    pos, opts = [], {}
    i = 0
    while i < len(args):
        a = args[i]
        name = None
        if a.startswith("--") and len(a) > 2:
            name = a[2:].lower()
        elif a[:1] in "/-" and len(a) > 1 and a[1:].lower() in (_FLAGS | _ARGS):
            name = a[1:].lower()
        if name is None:
            pos.append(a)
            i += 1
            continue
        # reg add uses /s SEP for the multi-string separator, query /s = recurse
        if name == "s" and cmd == "add":
            name = "se"
        if name in _ARGS:
            if i + 1 >= len(args):
                raise UsageError("option %s needs an argument" % a)
            opts[name] = args[i + 1]
            i += 2
        elif name in _FLAGS:
            opts[name] = True
            i += 1
        else:
            raise UsageError("unknown option %s" % a)
    return pos, opts


def _parse_type(t: str) -> int:
    u = t.upper()
    if u in TYPE_BY_NAME:
        return TYPE_BY_NAME[u]
    if u.startswith("REG_0X"):
        return int(u[6:], 16)
    raise UsageError("unknown value type %r" % t)


def _parse_int(s: str, bits: int) -> int:
    try:
        v = int(s, 16) if s.lower().startswith("0x") else int(s, 10)
    except ValueError:
        raise UsageError("bad number %r" % s) from None
    if not 0 <= v < (1 << bits):
        raise UsageError("number %r out of range" % s)
    return v


def data_from_text(vtype: int, text: str | None, sep: str = "\\0") -> bytes:
    """Raw bytes from a /d argument, the way reg.exe interprets it."""
    text = "" if text is None else text
    if vtype in (REG_SZ, REG_EXPAND_SZ):
        return (text + "\0").encode("utf-16-le", "surrogatepass")
    if vtype == REG_MULTI_SZ:
        items = [x for x in text.split(sep)] if text else []
        return "".join(x + "\0" for x in items).encode("utf-16-le", "surrogatepass") + b"\0\0"
    if vtype == REG_DWORD:
        return _parse_int(text or "0", 32).to_bytes(4, "little")
    if vtype == REG_DWORD_BIG_ENDIAN:
        return _parse_int(text or "0", 32).to_bytes(4, "big")
    if vtype == REG_QWORD:
        return _parse_int(text or "0", 64).to_bytes(8, "little")
    # REG_BINARY, REG_NONE and other types: hex digits
    t = text.replace(" ", "")
    if len(t) % 2:
        raise UsageError("hex data must have an even number of digits")
    try:
        return bytes.fromhex(t)
    except ValueError:
        raise UsageError("bad hex data %r" % text) from None


def data_to_text(vtype: int, raw: bytes) -> str:
    """Data as reg.exe query prints it."""
    v = decode_data(vtype, raw)
    if vtype in (REG_DWORD, REG_DWORD_BIG_ENDIAN, REG_QWORD) and isinstance(v, int):
        return "0x%x" % v
    if vtype in (REG_SZ, REG_EXPAND_SZ) or (vtype == 6 and isinstance(v, str)):
        return v
    if vtype == REG_MULTI_SZ:
        return "\\0".join(v)
    return raw.hex().upper()


def _json_data(vtype: int, raw: bytes):
    v = decode_data(vtype, raw)
    if isinstance(v, bytes):
        return v.hex()
    return v


def _cmd_query(reg: ImageRegistry, pos, opts, out) -> int:
    if len(pos) != 1:
        raise UsageError("query needs exactly one KEY")
    h, sub, canon = reg.resolve(pos[0])
    key = h.key(sub)
    want = "" if opts.get("ve") else opts.get("v")
    recurse = bool(opts.get("s"))
    entries = []
    if recurse:
        walk = h.walk(sub)
    else:
        walk = [(sub, key)]
    for rel, k in walk:
        full = canon + (rel[len(sub):] if sub else ("\\" + rel if rel else ""))
        vals = k.values()
        if want is not None:
            vals = [v for v in vals if v.name.upper() == want.upper()]
            if not recurse and not vals:
                raise RegfNotFoundError("value %r not found in %s" % (want, full))
        entries.append((full, k, vals))
    if opts.get("json"):
        doc = []
        for full, k, vals in entries:
            item = {"key": full, "values": [
                {"name": v.name, "type": v.type_name, "data": _json_data(v.type, v.raw)}
                for v in vals]}
            if not recurse:
                item["subkeys"] = [s.name for s in k.subkeys()]
            doc.append(item)
        out.write(json.dumps(doc if recurse else doc[0], indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    for full, k, vals in entries:
        if want is not None and recurse and not vals:
            continue
        out.write("\n%s\n" % full)
        for v in vals:
            out.write("    %s    %s    %s\n" % (v.name or "(Default)", v.type_name,
                                                data_to_text(v.type, v.raw)))
        if not recurse and want is None:
            out.write("\n")
            for s in k.subkeys():
                out.write("%s\\%s\n" % (full, s.name))
    return EXIT_OK


def _cmd_add(reg, pos, opts, out) -> int:
    if len(pos) != 1:
        raise UsageError("add needs exactly one KEY")
    name = "" if opts.get("ve") else opts.get("v")
    vtype = _parse_type(opts.get("t", "REG_SZ"))
    if name is None:
        if "d" in opts or "t" in opts:
            raise UsageError("/t and /d need /v NAME or /ve")
        reg.create_key(pos[0])
        out.write("The operation completed successfully.\n")
        return EXIT_OK
    raw = data_from_text(vtype, opts.get("d"), opts.get("se", "\\0"))
    h, sub, canon = reg.resolve(pos[0])
    k = h.create_key(sub)
    if not opts.get("f"):
        try:
            k.value(name)
            raise OpError("value %r exists in %s; use /f to overwrite" % (name, canon))
        except RegfNotFoundError:
            pass
    k.set_value(name, vtype, raw)
    out.write("The operation completed successfully.\n")
    return EXIT_OK


def _cmd_delete(reg, pos, opts, out) -> int:
    if len(pos) != 1:
        raise UsageError("delete needs exactly one KEY")
    if not opts.get("f"):
        raise OpError("delete needs /f (no interactive confirmation)")
    h, sub, canon = reg.resolve(pos[0])
    if opts.get("va"):
        k = h.key(sub)
        for v in k.values():
            k.delete_value(v.name)
    elif opts.get("ve") or "v" in opts:
        name = "" if opts.get("ve") else opts["v"]
        h.key(sub).delete_value(name)
    else:
        if not sub:
            raise OpError("cannot delete the root of hive %s" % canon)
        h.delete_key(sub)
    out.write("The operation completed successfully.\n")
    return EXIT_OK


def _cmd_import(reg, pos, opts, out) -> int:
    if len(pos) != 1:
        raise UsageError("import needs exactly one FILE")
    try:
        with open(pos[0], "rb") as f:
            blob = f.read()
    except FileNotFoundError:
        raise RegfNotFoundError("file not found: %s" % pos[0]) from None
    reg.import_reg(regfile.decode_text(blob))
    out.write("The operation completed successfully.\n")
    return EXIT_OK


def _cmd_export(reg, pos, opts, out) -> int:
    if len(pos) != 2:
        raise UsageError("export needs KEY and FILE")
    if os.path.exists(pos[1]) and not opts.get("y"):
        raise OpError("%s exists; use /y to overwrite" % pos[1])
    text = reg.export_reg(pos[0])
    with open(pos[1], "wb") as f:
        f.write(regfile.encode_file(text, "utf-8" if opts.get("utf8") else "utf-16"))
    out.write("The operation completed successfully.\n")
    return EXIT_OK


COMMANDS = {"query": (_cmd_query, False), "add": (_cmd_add, True),
            "delete": (_cmd_delete, True), "import": (_cmd_import, True),
            "export": (_cmd_export, False)}


def reg_main(argv: list[str], out=None, err=None) -> int:
    """Entry point of ``wimfs reg``; *argv* are the arguments after ``reg``."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        if not argv or argv[0] in ("-h", "--help", "/?"):
            out.write(__doc__.split("Exit codes:")[0])
            return EXIT_OK if argv else EXIT_USAGE
        if len(argv) < 2:
            raise UsageError("usage: wimfs reg TREE {query|add|delete|import|export} ...")
        tree, cmd = argv[0], argv[1].lower()
        if cmd not in COMMANDS:
            raise UsageError("unknown command %r (query, add, delete, import, export)" % argv[1])
        fn, writes = COMMANDS[cmd]
        rest, common = pop_common(argv[2:])
        pos, opts = _parse_opts(rest, cmd)
        with operation(tree, common, command=" ".join(["reg", *argv[1:]]), write=writes,
                       out=out) as target:
            reg = ImageRegistry(target, write=writes)
            rc = fn(reg, pos, opts, out)
            if writes:
                reg.commit()
        return rc
    except Exception as e:  # noqa: BLE001 -- mapped to one line + exit code
        if os.environ.get("WIMFS_DEBUG"):
            traceback.print_exc(file=err)
        if isinstance(e, (UsageError, regfile.RegFileError)):
            code = EXIT_USAGE
        elif isinstance(e, (RegfCorruptError, RegfDirtyError)):
            code = EXIT_CORRUPT
        elif isinstance(e, RegfNotFoundError):
            code = EXIT_NOT_FOUND
        elif isinstance(e, WimfsError):
            code = e.exit_code
        elif isinstance(e, (OpError, RegfError, OSError)):
            code = EXIT_ERROR
        else:
            code = EXIT_ERROR
            e = "internal error: %s: %s" % (type(e).__name__, e)
        msg = " ".join(str(e).split()) or type(e).__name__
        err.write(PREFIX + msg + "\n")
        return code


def main() -> int:  # pragma: no cover - convenience for python -m
    return reg_main(sys.argv[1:])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
