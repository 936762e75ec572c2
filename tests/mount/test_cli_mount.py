"""The CLI contract on real mounts: every image-selector form mounts the image wimlib
names so (read-only and read-write), and `wimfs reg` refuses a read-only tree up front
with one line and exit 1, never printing success."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.helpers import mounted, require_fuse, require_tool, run_wimfs

NAME2 = "two: with colon"


@pytest.fixture(scope="module")
def wims(tmp_path_factory):
    require_tool("wimlib-imagex")
    d = tmp_path_factory.mktemp("climount")
    for i in (1, 2):
        (d / f"src{i}").mkdir()
        (d / f"src{i}" / f"file{i}").write_text(f"image {i}\n")
    cfg = d / "src1" / "Windows" / "System32" / "config"
    cfg.mkdir(parents=True)
    from servicing.regf import Hive

    h = Hive.create(cfg / "SOFTWARE")
    h.create_key("Contoso").set_value("Build", 4, (7).to_bytes(4, "little"))
    h.commit()
    w = d / "multi.wim"
    subprocess.run(["wimlib-imagex", "capture", d / "src1", w, "one"], check=True,
                   capture_output=True)
    subprocess.run(["wimlib-imagex", "append", d / "src2", w, NAME2], check=True,
                   capture_output=True)
    return d, w


@pytest.mark.parametrize("form", ["colon-index", "colon-name", "--index", "--name"])
def test_mount_forms(wims, tmp_path, form):
    d, w = wims
    args = {"colon-index": [f"{w}:2"], "colon-name": [f"{w}:{NAME2}"],
            "--index": [w, "--index", "2"], "--name": [w, "--name", NAME2]}[form]
    mp = tmp_path / "m"
    with mounted(args[0], mp, *args[1:]):
        assert os.listdir(mp) == ["file2"]


def test_mount_daemon_with_selector_and_all(wims, tmp_path):
    require_fuse()
    d, w = wims
    mp = tmp_path / "m"
    mp.mkdir()
    r = run_wimfs("mount", f"{w}:2", mp)
    try:
        assert r.returncode == 0, r.stderr
        assert os.listdir(mp) == ["file2"]
    finally:
        assert run_wimfs("unmount", mp).returncode == 0
    with mounted(f"{w}:all", mp):
        assert sorted(os.listdir(mp)) == ["1", "2"]
        assert os.listdir(mp / "2") == ["file2"]


def test_reg_on_a_read_only_mount(wims, tmp_path):
    d, w = wims
    mp = tmp_path / "m"
    with mounted(f"{w}:one", mp):
        r = run_wimfs("reg", mp, "add", r"HKLM\SOFTWARE\Contoso", "/v", "Build", "/t",
                      "REG_DWORD", "/d", "8", "/f")
        assert r.returncode == 1 and r.stdout == "", (r.stdout, r.stderr)
        assert r.stderr == f"wimfs reg: error: {mp} is read-only\n"
        q = run_wimfs("reg", mp, "query", r"HKLM\SOFTWARE\Contoso", "/v", "Build")
        assert q.returncode == 0 and "REG_DWORD    0x7" in q.stdout


def test_rw_mount_by_name_and_commit_without_terminal(wims, tmp_path):
    d, w = wims
    work = tmp_path / "rw.wim"
    work.write_bytes(w.read_bytes())
    mp = tmp_path / "m"
    mp.mkdir()
    r = run_wimfs("mount", "--rw", f"{work}:{NAME2}", mp)
    assert r.returncode == 0, r.stderr
    try:
        assert os.listdir(mp) == ["file2"]
        (mp / "new").write_bytes(b"x" * 100000)
        c = run_wimfs("commit", mp)
        assert c.returncode == 0 and "\r" not in c.stderr and c.stderr == ""
        bad = run_wimfs("unmount", mp)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    finally:
        assert run_wimfs("unmount", mp, "--discard").returncode == 0
    out = subprocess.run(["wimlib-imagex", "dir", work, "2"], check=True, text=True,
                         capture_output=True).stdout.split()
    assert "/new" in out


def test_capture_into_a_read_only_tree_names_the_output(wims, tmp_path):
    d, w = wims
    mp = tmp_path / "m"
    with mounted(f"{w}:2", mp):
        r = run_wimfs("capture", d / "src2", mp / "x.wim")
        assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
        assert r.stderr == f"wimfs: error: cannot write {mp / 'x.wim'}: Read-only file system\n"


def test_the_daemon_is_the_cli_forked_in_its_own_session(wims, tmp_path):
    """`wimfs mount` forks its daemon (no second interpreter start): the daemon's command
    line is the client's (no --foreground), it leads its own session, and its output
    goes to the mount log, not to the caller's pipes (run_wimfs returns at once)."""
    import json
    require_fuse()
    d, w = wims
    mp = tmp_path / "m"
    mp.mkdir()
    r = run_wimfs("mount", f"{w}:2", mp, timeout=30)
    assert r.returncode == 0, r.stderr
    try:
        rec = next(m for m in json.loads(run_wimfs("mounts", "--json").stdout)
                   if m["mountdir"] == str(mp))
        pid = rec["pid"]
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        assert b"mount" in cmdline and b"--foreground" not in cmdline
        assert os.getsid(pid) == pid
        assert os.readlink(f"/proc/{pid}/fd/1").endswith("mount.log")
    finally:
        assert run_wimfs("unmount", mp).returncode == 0
