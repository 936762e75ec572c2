"""``wimfs update``: the same commands given to ``wimlib-imagex update`` on a copy of the
same WIM are the oracle; both results are applied with wimlib-imagex and compared."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers.wimlib import wimlib_recounted_refs
from tests.helpers import (assert_same_tree, make_tree, snapshot, wimlib_apply,
                           wimlib_capture, wimlib_verify)


def wimfs(*argv, **kw):
    return subprocess.run([sys.executable, "-m", "wimfs", *map(str, argv)],
                          capture_output=True, text=True, **kw)


@pytest.fixture
def wims(tmp_path):
    base = tmp_path / "base"
    (base / "Windows" / "System32").mkdir(parents=True)
    (base / "Windows" / "System32" / "old.dll").write_bytes(b"old" * 1000)
    (base / "Windows" / "Temp").mkdir()
    (base / "Windows" / "Temp" / "junk.tmp").write_bytes(b"junk")
    (base / "readme.txt").write_text("hello")
    ours = wimlib_capture(base, tmp_path / "ours.wim", compress="lzx", unix_data=True)
    theirs = tmp_path / "theirs.wim"
    shutil.copyfile(ours, theirs)
    return ours, theirs


@pytest.fixture
def source(tmp_path):
    src = make_tree(tmp_path / "src", "mixed")
    (src / "sub").mkdir(exist_ok=True)
    (src / "sub" / "a.txt").write_text("a")
    (src / "sub" / "skip.log").write_text("excluded")
    os.link(src / "sub" / "a.txt", src / "sub" / "hard.txt")
    os.symlink("a.txt", src / "sub" / "link")
    os.chmod(src / "sub" / "a.txt", 0o600)
    (tmp_path / "one.bin").write_bytes(os.urandom(5000))
    return src


def wimlib_update(wim, commands: str, *extra):
    subprocess.run(["wimlib-imagex", "update", str(wim), "1", *extra], input=commands,
                   text=True, check=True, capture_output=True)


def applied(wim, dest):
    wimlib_apply(wim, 1, dest, extra=["--unix-data"])
    return snapshot(dest, xattrs=False, stat_fields=("mode", "uid", "gid"))


def test_update_matches_wimlib(wims, source, tmp_path):
    ours, theirs = wims
    cfg = tmp_path / "excl.ini"
    cfg.write_text("[ExclusionList]\n*.log\n")
    one = tmp_path / "one.bin"
    r = wimfs("update", f"{ours}:1", "--unix-data", "--config", cfg,
              "--add", source, "/Program Files/Src", "--add", one, "/Windows",
              "--delete", "/Windows/Temp", "--recursive",
              "--rename", "/readme.txt", "/README.TXT")
    assert r.returncode == 0, r.stderr
    wimlib_update(theirs, f"add '{source}' '/Program Files/Src'\nadd '{one}' /Windows/one.bin\n"
                  "delete --recursive /Windows/Temp\nrename /readme.txt /README.TXT\n",
                  "--unix-data", f"--config={cfg}")
    assert wimlib_verify(ours).returncode == 0
    assert_same_tree(applied(ours, tmp_path / "a"), applied(theirs, tmp_path / "b"),
                     "wimfs update", "wimlib-imagex update")


def test_commands_file_and_json(wims, source, tmp_path):
    ours, theirs = wims
    cmds = tmp_path / "cmds"
    cmds.write_text(f"# comment\n\nadd '{source / 'sub'}' /new\ndelete --force /nothing\n"
                    "delete /Windows/System32/old.dll\n")
    r = wimfs("update", ours, "--commands", cmds, "--json")
    assert r.returncode == 0, r.stderr
    assert '"change": "file removed"' in r.stdout
    wimlib_update(theirs, cmds.read_text().replace("delete --force /nothing\n", ""))
    assert_same_tree(applied(ours, tmp_path / "a"), applied(theirs, tmp_path / "b"),
                     "wimfs update", "wimlib-imagex update")


@pytest.mark.parametrize("args", [
    ["--add", "/nonexistent/src", "/x"],
    ["--delete", "/Windows/Temp"],                  # not empty, no --recursive
    ["--rename", "/nothing", "/x"],
])
def test_failing_update_leaves_wim_byte_identical(wims, source, args):
    ours, _ = wims
    before = ours.read_bytes()
    r = wimfs("update", ours, "--add", source, "/first", *args)
    assert r.returncode != 0 and r.stderr.count("\n") == 1, r.stderr
    assert "left unchanged" in r.stderr
    assert ours.read_bytes() == before


def test_dry_run_and_refusals(wims, source, tmp_path):
    ours, _ = wims
    before = ours.read_bytes()
    r = wimfs("update", ours, "--dry-run", "--add", source / "sub", "/x")
    assert r.returncode == 0, r.stderr
    assert "would be file added: x/a.txt (1 bytes)" in r.stdout
    assert ours.read_bytes() == before
    assert wimfs("update", ours).returncode == 2
    assert wimfs("update", tmp_path, "--delete", "/x").returncode == 2


def test_reference_counts_follow_the_edit(wims, source, tmp_path):
    """Replacing, deleting and adding files (two names of one content, hard links) moves
    the blob table's reference counts as the images now reference them. Oracle:
    `wimlib-imagex optimize` of a copy rebuilds the WIM and counts every reference
    anew; blobs it drops must be at 0 in ours."""
    ours, _ = wims
    (tmp_path / "same1.txt").write_text("same content")
    (tmp_path / "same2.txt").write_text("same content")
    r = wimfs("update", f"{ours}:1", "--add", source, "/Windows/New",
              "--add", tmp_path / "same1.txt", "/readme.txt",
              "--add", tmp_path / "same2.txt", "/Windows/same.txt",
              "--delete", "/Windows/Temp", "--recursive")
    assert r.returncode == 0, r.stderr
    got, want = wimlib_recounted_refs(ours, tmp_path)
    assert got == want
    assert want[min(want, key=lambda h: -want[h])] >= 2      # the shared content counts 2+


def test_reference_counts_when_reading_the_windows_version_parses_more(tmp_path):
    """A commit reads the Windows version from System32 (kernel32.dll) after the session's
    tree was taken for the write: the directories that parses are unchanged, and their
    files must count on both sides of the reference counts (else a blob only they hold
    drops to 0). Oracle: `wimlib-imagex optimize`'s recount."""
    base = tmp_path / "base"
    (base / "Windows" / "System32").mkdir(parents=True)
    (base / "Windows" / "System32" / "kernel32.dll").write_bytes(b"not a PE file" * 10)
    (base / "Windows" / "System32" / "only-here.dll").write_bytes(b"only here" * 300)
    (base / "readme.txt").write_text("hello")
    wim = wimlib_capture(base, tmp_path / "w.wim", compress="lzx")
    (tmp_path / "new.txt").write_text("replaced")
    r = wimfs("update", f"{wim}:1", "--add", tmp_path / "new.txt", "/readme.txt")
    assert r.returncode == 0, r.stderr
    got, want = wimlib_recounted_refs(wim, tmp_path)
    assert got == want
    wimlib_verify(wim)


def test_a_large_source_changing_during_the_commit_leaves_wim_byte_identical(
        wims, tmp_path, monkeypatch, capsys):
    """A file over the writer's hold size is streamed into the WIM; random bytes do not
    compress, so the writer reads it again to store it raw. The file is changed between
    the two reads: one error line, and the WIM is byte-identical (the appended bytes are
    cut off again)."""
    from wimfs import writer
    from wimfs.cli import main

    ours, _ = wims
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(writer.ResourceWriter.HOLD_BYTES + 100_000))
    real = writer._Streamed.finish

    def finish(self, src, digest, flags):
        with open(big, "r+b") as f:                 # same size, other bytes
            f.write(bytes(4096))
        return real(self, src, digest, flags)

    monkeypatch.setattr(writer._Streamed, "finish", finish)
    before = ours.read_bytes()
    assert main(["update", f"{ours}:1", "--add", str(big), "/big.bin"]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "changed while being read" in err, err
    assert ours.read_bytes() == before
