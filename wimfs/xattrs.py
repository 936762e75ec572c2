"""Extended attributes as ntfs-3g and the wimfs mount offer Windows metadata.

ntfs-3g answers EIO instead of ERANGE when the buffer is too small (e.g. a large
security descriptor), so values are read by asking for the size first."""

from __future__ import annotations

import ctypes
import errno
import os

NTFS_ATTRIB = "system.ntfs_attrib"
NTFS_ACL = "system.ntfs_acl"
NTFS_DOS_NAME = "system.ntfs_dos_name"
NTFS_REPARSE = "system.ntfs_reparse_data"
NTFS_TIMES = "system.ntfs_times"

_libc = None


def _lib():
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)      # the process's libc, no search
        lib.lgetxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p,
                                  ctypes.c_size_t]
        lib.lgetxattr.restype = ctypes.c_ssize_t
        _libc = lib
    return _libc


def lgetxattr(path: str, name: str) -> bytes:
    lib = _lib()
    bpath, bname = os.fsencode(path), name.encode()
    for _ in range(5):
        n = lib.lgetxattr(bpath, bname, None, 0)
        if n < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e), path)
        buf = ctypes.create_string_buffer(max(n, 1))
        m = lib.lgetxattr(bpath, bname, buf, n)
        if m < 0:
            e = ctypes.get_errno()
            if e == errno.ERANGE:
                continue
            raise OSError(e, os.strerror(e), path)
        return buf.raw[:m]
    raise OSError(errno.ERANGE, "xattr value keeps changing size", path)


def xattr_or_none(path: str, name: str) -> bytes | None:
    """The value, or None when the file has no such attribute (or no xattrs at all)."""
    try:
        return lgetxattr(path, name)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM,
                         errno.ENOENT):
            return None
        raise
