"""Real tools on read-write mounts of LZX and XPRESS images, then commit and check the WIM
against wimlib (verify, apply = the tree the mount showed; named streams via dir --detailed)."""

from __future__ import annotations

import os
import subprocess
import tarfile

import pytest

from tests.helpers import (assert_same_tree, make_tree, require_tool, run, snapshot,
                           wimlib_apply, wimlib_capture, wimlib_verify)
from tests.helpers.wimlib import wimlib_dir_detailed

pytestmark = [pytest.mark.mount]

GIT = ["git", "-c", "user.name=wimfs test", "-c", "user.email=t@example.invalid",
       "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"]


def sh(*cmd, cwd=None):
    return run(list(cmd), cwd=cwd, timeout=120)


@pytest.mark.parametrize("compress", ["lzx", "xpress"])
def test_real_tools_then_commit(compress, tmp_path, rw_src, rw_factory):
    require_tool("tar", "git", "sqlite3", "setfattr", "getfattr", "dd", "cp", "mv", "rm")
    wim = wimlib_capture(rw_src, tmp_path / "t.wim", compress=compress, name="tools")
    m = rw_factory(wim)
    mnt = m.mnt
    # cp -a of a tree (hard links, symlinks, unicode names, empty files, deep paths)
    extra = make_tree(tmp_path / "extra", "all")
    sh("cp", "-a", str(extra), str(mnt / "copied"))
    # tar x of an archive
    tpath = tmp_path / "a.tar"
    with tarfile.open(tpath, "w") as t:
        t.add(rw_src / "chunks", arcname="chunks_from_tar")
        t.add(rw_src / "hardlinks", arcname="hl_from_tar")
    (mnt / "tarx").mkdir()
    sh("tar", "xf", str(tpath), "-C", str(mnt / "tarx"))
    # git
    repo = mnt / "repo"
    repo.mkdir()
    for i in range(20):
        (repo / f"file{i}.txt").write_text(f"line {i}\n" * (i + 1))
    (repo / "sub").mkdir()
    (repo / "sub" / "x.py").write_text("print('hi')\n")
    sh(*GIT, "init", "-q", cwd=repo)
    sh(*GIT, "add", "-A", cwd=repo)
    sh(*GIT, "commit", "-q", "-m", "first", cwd=repo)
    (repo / "file3.txt").write_text("changed\n")
    sh(*GIT, "commit", "-q", "-am", "second", cwd=repo)
    sh(*GIT, "gc", "-q", cwd=repo)
    sh(*GIT, "fsck", "--strict", cwd=repo)
    # sqlite3
    db = mnt / "data.sqlite"
    sql = ("PRAGMA journal_mode=DELETE; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
           "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<5000) "
           "INSERT INTO t(v) SELECT hex(randomblob(40)) FROM c;"
           "CREATE INDEX iv ON t(v); UPDATE t SET v='x' WHERE id % 7 = 0;"
           "DELETE FROM t WHERE id % 11 = 0;")
    sh("sqlite3", str(db), sql)
    q = sh("sqlite3", str(db), "SELECT count(*), sum(v='x') FROM t; PRAGMA integrity_check;")
    assert q.stdout.decode().split() == ["4546|650", "ok"]
    # rm -rf of a directory from the image, mv across directories
    sh("rm", "-rf", str(mnt / "deep"))
    sh("mv", str(mnt / "chunks"), str(mnt / "copied" / "chunks_moved"))
    sh("mv", str(mnt / "mixed" / "rand32k_zero32k.bin"), str(mnt / "tarx"))
    # overwrite in place with dd conv=notrunc (a file from the image and a new one)
    target = mnt / "large" / "large.bin"
    size = os.path.getsize(target)
    sh("dd", "if=/dev/urandom", f"of={target}", "bs=4096", "seek=100", "count=50",
       "conv=notrunc", "status=none")
    assert os.path.getsize(target) == size
    sh("dd", "if=/dev/zero", f"of={mnt / 'tarx' / 'rand32k_zero32k.bin'}", "bs=1", "seek=10",
       "count=5", "conv=notrunc", "status=none")
    # setfattr of a named stream
    sh("setfattr", "-n", "user.Zone.Identifier", "-v", "0x5b5a6f6e655d0d0a", str(db))
    sh("setfattr", "-n", "user.note", "-v", "hello stream", str(repo / "file1.txt"))
    g = sh("getfattr", "-n", "user.note", "--only-values", str(repo / "file1.txt"))
    assert g.stdout == b"hello stream"

    seen = snapshot(mnt, xattrs=True, ignore_xattrs=("system.*",), raw_xattrs=True)
    m.unmount("--commit")
    v = wimlib_verify(wim)
    assert v.returncode == 0, v.stderr
    out = tmp_path / "apply"
    wimlib_apply(wim, 1, out)
    # a Linux apply drops named streams: compare them through dir --detailed
    got = snapshot(out, xattrs=False)
    plain = {k: dict(e, xattrs={}) for k, e in seen.items()}
    assert_same_tree(plain, got, "mount", "wimlib apply")
    det = wimlib_dir_detailed(wim, 1)
    streams = {p: {n: s for n, s in e["streams"].items() if n}
               for p, e in det.items() if any(n for n in e["streams"])}
    assert streams == {"data.sqlite": {"Zone.Identifier": 8},
                       "repo/file1.txt": {"note": 12}}, streams
    sh(*GIT, "fsck", "--strict", cwd=out / "repo")
    assert sh(*GIT, "log", "--oneline", cwd=out / "repo").stdout.count(b"\n") == 2
    q = sh("sqlite3", str(out / "data.sqlite"), "PRAGMA integrity_check; SELECT count(*) FROM t;")
    assert q.stdout.decode().split() == ["ok", "4546"]
    _ = subprocess
