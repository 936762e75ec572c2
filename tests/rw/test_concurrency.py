"""Several processes writing different files and reading shared ones at once (with commits
running in the middle): no errors, no lost writes; the committed WIM matches the mount."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import time

import pytest

from tests.helpers import assert_same_tree, snapshot, wimlib_apply, wimlib_verify

pytestmark = [pytest.mark.mount]

WORKER = textwrap.dedent(r'''
    import hashlib, os, random, sys
    root, wid, shared = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    r = random.Random(wid)
    d = os.path.join(root, f"w{wid}")
    os.makedirs(d)
    want = {}
    names = {}
    log = open(os.path.join(d, "append.log"), "ab")
    for i in range(60):
        data = r.randbytes(r.choice([0, 1, 4096, 65536, 200_000]))
        p = os.path.join(d, f"f{i}")
        with open(p, "wb") as f:
            for off in range(0, len(data), 8192):
                f.write(data[off:off + 8192])
        want[p] = hashlib.sha1(data).hexdigest()
        names[i] = p
        log.write(b"%d:%d\n" % (wid, i))
        log.flush()
        if i % 10 == 5:                         # rewrite part of an earlier file in place
            q = names[i - 5]
            if os.path.getsize(q) > 10:
                with open(q, "r+b") as f:
                    f.seek(3)
                    f.write(b"ZZZ")
                old = bytearray(open(q, "rb").read())
                want[q] = hashlib.sha1(old).hexdigest()
        if i % 7 == 0:                          # rename within our directory
            os.rename(p, p + ".renamed")
            want[p + ".renamed"] = want.pop(p)
            names[i] = p + ".renamed"
        for s in shared:                         # read the shared files from the image
            name, h = s.split("=")
            got = hashlib.sha1(open(os.path.join(root, name), "rb").read()).hexdigest()
            assert got == h, (name, got, h)
    log.close()
    for p, h in want.items():
        got = hashlib.sha1(open(p, "rb").read()).hexdigest()
        assert got == h, (p, got, h)
    lines = open(os.path.join(d, "append.log"), "rb").read().splitlines()
    assert lines == [b"%d:%d" % (wid, i) for i in range(60)], lines[-3:]
    print("ok", len(want))
''')


def _sha(p):
    return hashlib.sha1(open(p, "rb").read()).hexdigest()


def test_parallel_writers_and_readers(tmp_path, wim_copy, rw_factory, rw_src):
    wim = wim_copy("lzx")
    m = rw_factory(wim)
    shared = ["chunks/rand_131073.bin", "large/large.bin", "mixed/rand40k_zero200k.bin"]
    shared_sha = {s: _sha(rw_src / s) for s in shared}
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [subprocess.Popen([sys.executable, str(script), str(m.mnt), str(w),
                               *(f"{s}={h}" for s, h in shared_sha.items())],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for w in range(6)]
    # readers of the shared files, checking content while the writers run
    readers_ok = 0
    commits = 0
    while any(p.poll() is None for p in procs):
        for s in shared:
            assert _sha(m.mnt / s) == shared_sha[s]
            readers_ok += 1
        if commits < 2:
            time.sleep(0.2)
            m.commit("--force")          # writers hold files open: --force
            commits += 1
    for p in procs:
        out, err = p.communicate()
        assert p.returncode == 0, err.decode()[-3000:]
        assert out.startswith(b"ok")
    assert commits >= 1 and readers_ok > 0
    seen = snapshot(m.mnt, xattrs=False)
    m.unmount("--commit")
    assert wimlib_verify(wim).returncode == 0
    wimlib_apply(wim, 1, tmp_path / "out")
    assert_same_tree(seen, snapshot(tmp_path / "out", xattrs=False), "mount", "apply")
    _ = os
