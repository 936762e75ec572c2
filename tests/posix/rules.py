"""The rules of a read-write mount of an image WITHOUT UNIX data (README, "POSIX
conformance"), as pjdfstest sees them, and the test files each rule makes fail.

Without UNIX data a WIM stores no owner, no mode and no special file, so such a mount
1. `special`: refuses FIFOs, sockets and device nodes (mknod/mkfifo/bind: EPERM);
2. `owner`: shows every file as owned by the mounting user (chown is accepted and
   ignored, as ntfs-3g's default does);
3. `mode`: derives modes from attributes (directories 0755, files 0644, 0444 with
   FILE_ATTRIBUTE_READONLY; chmod only sets or clears that attribute);
4. `other-user`: so what another user may do follows from those owners and modes, not
   from the ones pjdfstest set (EACCES where it expects success, or the reverse).

A file's first failed subtest must be explained by the rule listed for it; its later
failures follow from that one (a FIFO that was never made cannot be renamed ...).
"""

from __future__ import annotations

import re

_FIELDS = r"tried '(?:-\S+ \S+ )*[lf]?stat \S+ (?P<f>[a-z,]+)', expected (?P<e>\S+), got"
RULES = {
    "special": re.compile(r"tried '(?:-\S+ \S+ )*(mkfifo|mknod \S+ [bcf]|bind) .*got EPERM$"),
    "owner": re.compile(_FIELDS + r".*"),
    "mode": re.compile(_FIELDS + r".*"),
    "other-user": re.compile(r"tried '-u \d+ "),
}


def explains(rule: str, message: str) -> bool:
    m = RULES[rule].match(message)
    if m is None:
        return False
    if rule == "owner":
        return "uid" in m.group("f") or "gid" in m.group("f")
    if rule == "mode":
        return "mode" in m.group("f")
    return True


def classify(message: str) -> str | None:
    """The first rule (in the order above) that explains a failure message."""
    return next((r for r in RULES if explains(r, message)), None)

# Test files that fail on a mount without UNIX data, by the rule that explains them
# (measured; a file that starts passing is fine, a new one fails the CI test).
EXPECTED: dict[str, str] = {
    "chmod/01.t": "special", "chown/01.t": "special", "link/01.t": "special",
    "link/10.t": "special", "mkdir/01.t": "special", "mkdir/10.t": "special",
    "mkfifo/00.t": "special", "mkfifo/01.t": "special", "mkfifo/02.t": "special",
    "mkfifo/03.t": "special", "mkfifo/09.t": "special", "mknod/00.t": "special",
    "mknod/01.t": "special", "mknod/02.t": "special", "mknod/03.t": "special",
    "mknod/08.t": "special", "mknod/11.t": "special", "open/01.t": "special",
    "open/17.t": "special", "open/22.t": "special", "open/24.t": "special",
    "rename/00.t": "special", "rename/12.t": "special", "rename/13.t": "special",
    "rename/14.t": "special", "rename/20.t": "special", "rename/23.t": "special",
    "rmdir/01.t": "special", "rmdir/06.t": "special", "symlink/08.t": "special",
    "unlink/00.t": "special", "utimensat/00.t": "special",
    "chown/00.t": "owner", "chown/02.t": "owner", "chown/03.t": "owner",
    "link/00.t": "owner", "unlink/11.t": "owner",
    "chmod/00.t": "mode", "chmod/02.t": "mode", "chmod/03.t": "mode", "chmod/11.t": "mode",
    "mkdir/00.t": "mode", "open/00.t": "mode", "open/02.t": "mode", "open/03.t": "mode",
    "open/26.t": "mode",
    "chmod/05.t": "other-user", "chmod/07.t": "other-user", "chmod/12.t": "other-user",
    "chown/05.t": "other-user", "chown/07.t": "other-user", "ftruncate/00.t": "other-user",
    "ftruncate/05.t": "other-user", "link/06.t": "other-user", "link/07.t": "other-user",
    "link/11.t": "other-user", "mkdir/05.t": "other-user", "mkdir/06.t": "other-user",
    "mkfifo/05.t": "other-user", "mkfifo/06.t": "other-user", "mknod/05.t": "other-user",
    "mknod/06.t": "other-user", "open/05.t": "other-user", "open/06.t": "other-user",
    "open/07.t": "other-user", "rename/04.t": "other-user", "rename/05.t": "other-user",
    "rename/09.t": "other-user", "rename/10.t": "other-user", "rename/21.t": "other-user",
    "rmdir/07.t": "other-user", "rmdir/08.t": "other-user", "rmdir/11.t": "other-user",
    "symlink/05.t": "other-user", "symlink/06.t": "other-user",
    "truncate/05.t": "other-user", "unlink/05.t": "other-user", "unlink/06.t": "other-user",
    "utimensat/06.t": "other-user",
}
