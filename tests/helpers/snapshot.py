"""Comparable snapshots of directory trees (a mount, a wimlib apply, an ntfs-3g volume).

``snapshot(root)`` -> ``{relpath: entry}`` where relpath is a POSIX path relative to root ("." = root)
and entry is::

    {"type": "file|dir|symlink|other",
     "size": int | None,          # files only (dirs/symlinks: None; wimlib's mount reports 0 for symlinks)
     "sha1": hex | None,          # files only; "<error errno=N>" if reading failed and on_error="record"
     "target": str | None,        # symlinks; absolute targets inside root are rewritten to "/<path>"
     "link_group": str | None,    # files with st_nlink > 1: smallest relpath sharing the st_ino
     "nlink": int | None,         # files only (directory link counts differ legitimately between FSes)
     "xattrs": {name: sha1 hex of value (or hex of value with raw_xattrs=True)},
     # plus any ``stat_fields`` requested, e.g. "mode" (permission bits, octal string), "uid", "gid"
    }
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fnmatch
import hashlib
import os
import stat

DEFAULT_TRANSFORMS = {
    # creation + last write only: last access moves when the oracle is read, change time is not
    # stored in a WIM (wimlib apply leaves "now").
    "system.ntfs_times": lambda v: v[:16],
}

NTFS_PROBE_XATTRS = (
    "system.ntfs_attrib",
    "system.ntfs_acl",
    "system.ntfs_dos_name",
    "system.ntfs_reparse_data",
    "system.ntfs_times",
)


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.lgetxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
_libc.lgetxattr.restype = ctypes.c_ssize_t


def lgetxattr(path, name: str) -> bytes:
    """getxattr the way getfattr does it: ask the size first, then read exactly that much.

    (ntfs-3g answers EIO instead of ERANGE when the value - e.g. the root's security
    descriptor - is larger than the buffer, so Python's os.getxattr 128-byte first try fails.)
    """
    bpath, bname = os.fsencode(path), name.encode()
    for _ in range(5):
        n = _libc.lgetxattr(bpath, bname, None, 0)
        if n < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e), path)
        buf = ctypes.create_string_buffer(max(n, 1))
        m = _libc.lgetxattr(bpath, bname, buf, n)
        if m < 0:
            e = ctypes.get_errno()
            if e == errno.ERANGE:
                continue  # grew in between
            raise OSError(e, os.strerror(e), path)
        return buf.raw[:m]
    raise OSError(errno.ERANGE, "xattr value keeps changing size", path)


def _hash_file(path: str) -> str:
    h = hashlib.sha1()
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _norm_target(target: str, roots: list[str]) -> str:
    if target.startswith("/"):
        for r in roots:
            if target == r:
                return "/"
            if target.startswith(r + "/"):
                return target[len(r):]
    return target


def _xattrs(path, *, ignore, probe, transforms, raw, on_error):
    out = {}
    names = []
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno not in (errno.ENOTSUP, errno.EPERM):
            if on_error == "raise":
                raise
            out["<listxattr error>"] = f"errno={e.errno}"
    for n in probe:
        if n not in names:
            names.append(n)
    for name in names:
        if any(fnmatch.fnmatchcase(name, pat) for pat in ignore):
            continue
        try:
            value = lgetxattr(path, name)
        except OSError as e:
            if e.errno in (errno.ENODATA, errno.ENOTSUP, errno.EPERM, errno.EOPNOTSUPP):
                continue  # probed but absent
            if on_error == "raise":
                raise
            out[name] = f"<error errno={e.errno}>"
            continue
        t = transforms.get(name)
        if t is not None:
            value = t(value)
        out[name] = value.hex() if raw else hashlib.sha1(value).hexdigest()
    return out


def snapshot(root, xattrs=True, ignore_xattrs=(), *, probe_xattrs=(), stat_fields=(),
             xattr_transforms=None, raw_xattrs=False, include_root=True, on_error="raise",
             exclude=()) -> dict:
    """Snapshot the tree under ``root`` (never follows symlinks).

    ignore_xattrs: fnmatch patterns of xattr names to drop (e.g. ``"system.*"``).
    probe_xattrs: names to getxattr even when listxattr does not list them (ntfs-3g hides system.ntfs_*).
    stat_fields: extra per-entry fields: "mode" (0o7777 bits as octal str), "uid", "gid".
    on_error: "raise", or "record" to store ``"<error errno=N>"`` for unreadable files.
    exclude: fnmatch patterns of relpaths to leave out.
    """
    root = os.path.abspath(os.fspath(root))
    roots = [root]
    real = os.path.realpath(root)
    if real != root:
        roots.append(real)
    transforms = dict(DEFAULT_TRANSFORMS)
    transforms.update(xattr_transforms or {})
    entries: dict[str, dict] = {}
    inodes: dict[int, list[str]] = {}

    def visit(path: str, rel: str) -> None:
        st = os.lstat(path)
        e = {"type": "other", "size": None, "sha1": None, "target": None,
             "link_group": None, "nlink": None, "xattrs": {}}
        if stat.S_ISDIR(st.st_mode):
            e["type"] = "dir"
        elif stat.S_ISLNK(st.st_mode):
            e["type"] = "symlink"
            e["target"] = _norm_target(os.readlink(path), roots)
        elif stat.S_ISREG(st.st_mode):
            e["type"] = "file"
            e["size"] = st.st_size
            e["nlink"] = st.st_nlink
            try:
                e["sha1"] = _hash_file(path)
            except OSError as ex:
                if on_error == "raise":
                    raise
                e["sha1"] = f"<error errno={ex.errno}>"
            if st.st_nlink > 1:
                inodes.setdefault(st.st_ino, []).append(rel)
        if xattrs:
            e["xattrs"] = _xattrs(path, ignore=ignore_xattrs, probe=probe_xattrs,
                                  transforms=transforms, raw=raw_xattrs, on_error=on_error)
        for f in stat_fields:
            if f == "mode":
                e["mode"] = oct(stat.S_IMODE(st.st_mode))
            elif f in ("uid", "gid", "ino", "nlink_raw"):
                e[f] = getattr(st, "st_" + f) if f != "nlink_raw" else st.st_nlink
            else:
                raise ValueError(f"unknown stat field {f!r}")
        if rel != "." or include_root:
            entries[rel] = e
        if e["type"] == "dir":
            for name in sorted(os.listdir(path)):
                crel = name if rel == "." else f"{rel}/{name}"
                if any(fnmatch.fnmatchcase(crel, p) for p in exclude):
                    continue
                visit(os.path.join(path, name), crel)

    visit(root, ".")
    for paths in inodes.values():
        canon = min(paths)
        for p in paths:
            entries[p]["link_group"] = canon
    return entries


def _short(v) -> str:
    s = repr(v)
    return s if len(s) <= 120 else s[:117] + "..."


def diff_snapshots(a: dict, b: dict, a_name: str = "a", b_name: str = "b") -> list[str]:
    """Human-readable differences between two snapshots (empty list = identical)."""
    out = []
    for k in sorted(set(a) | set(b)):
        if k not in b:
            out.append(f"only in {a_name}: {k!r} ({a[k]['type']})")
            continue
        if k not in a:
            out.append(f"only in {b_name}: {k!r} ({b[k]['type']})")
            continue
        ea, eb = a[k], b[k]
        for field in sorted(set(ea) | set(eb)):
            va, vb = ea.get(field), eb.get(field)
            if va == vb:
                continue
            if field == "xattrs":
                va, vb = va or {}, vb or {}
                for xn in sorted(set(va) | set(vb)):
                    if va.get(xn) != vb.get(xn):
                        out.append(f"{k!r}: xattr {xn}: {a_name}={_short(va.get(xn))} "
                                   f"{b_name}={_short(vb.get(xn))}")
            else:
                out.append(f"{k!r}: {field}: {a_name}={_short(va)} {b_name}={_short(vb)}")
    return out


def assert_same_tree(a: dict, b: dict, a_name: str = "mount", b_name: str = "oracle",
                     limit: int = 30) -> None:
    diffs = diff_snapshots(a, b, a_name, b_name)
    if diffs:
        shown = "\n  ".join(diffs[:limit])
        more = f"\n  ... and {len(diffs) - limit} more" if len(diffs) > limit else ""
        raise AssertionError(f"{len(diffs)} difference(s) between {a_name} and {b_name}:\n  {shown}{more}")
