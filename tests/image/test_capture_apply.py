"""capture / append / apply against wimlib-imagex, both directions."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from tests.helpers import assert_same_tree, make_tree, snapshot
from tests.helpers.wimlib import wimlib_apply, wimlib_capture, wimlib_info, wimlib_verify
from tests.image.conftest import (KINDS_NO_MODES, file_times, metadata_view, wimfs)

pytestmark = pytest.mark.usefixtures("need_wimlib")

CASES = [("none", False), ("xpress", False), ("lzx", False), ("lzms", False), ("lzx", True)]


@pytest.mark.parametrize("compress,solid", CASES,
                         ids=[f"{c}{'-solid' if s else ''}" for c, s in CASES])
def test_capture_verifies_and_wimlib_applies_identical(tree, tmp_path, compress, solid):
    wim = tmp_path / "t.wim"
    args = ["capture", str(tree), str(wim), "--name", "T", "--compress", compress, "-q"]
    if solid:
        args.append("--solid")
    wimfs(*args)
    r = wimlib_verify(wim)
    assert r.returncode == 0, r.stdout + r.stderr
    out = tmp_path / "out"
    wimlib_apply(wim, 1, out)
    assert_same_tree(snapshot(out, xattrs=False), snapshot(tree, xattrs=False), "wimlib-apply",
                     "source")
    assert file_times(out) == file_times(tree)
    # 7-Zip reads it too
    r = subprocess.run(["7zz", "t", str(wim)], capture_output=True, text=True)
    assert r.returncode == 0 and "Everything is Ok" in r.stdout, (r.stdout + r.stderr)[-2000:]
    assert "WARNING" not in r.stdout, r.stdout[-2000:]


def test_capture_metadata_matches_wimlib(tree, tmp_path):
    """Dentry by dentry, the same attributes, reparse data, flags, times, links and
    UNIX data as wimlib's own capture of the same tree."""
    ours, theirs = tmp_path / "ours.wim", tmp_path / "theirs.wim"
    wimfs("capture", str(tree), str(ours), "--unix-data", "-q")
    wimlib_capture(tree, theirs, unix_data=True)
    a, b = metadata_view(ours), metadata_view(theirs)
    assert a.keys() == b.keys()
    diffs = [(k, a[k], b[k]) for k in a if a[k] != b[k]]
    assert not diffs, diffs[:5]
    # header: RP_FIX like wimlib
    from wimfs.wim import Wim

    with Wim(str(ours)) as w1, Wim(str(theirs)) as w2:
        assert w1.header.flags == w2.header.flags


def test_xml_counts_match_wimlib(tree, tmp_path):
    ours, theirs = tmp_path / "ours.wim", tmp_path / "theirs.wim"
    wimfs("capture", str(tree), str(ours), "--name", "X", "--description", "D", "-q", "--boot")
    wimlib_capture(tree, theirs, name="X", description="D")
    assert wimlib_info(ours)["header"]["boot_index"] == 1
    a, b = wimlib_info(ours)["images"][0], wimlib_info(theirs)["images"][0]
    for k in ("dir_count", "file_count", "total_bytes", "hard_link_bytes", "name",
              "description"):
        assert a[k] == b[k], k


@pytest.mark.parametrize("compress,solid", [("lzx", False), ("lzms", True), ("none", False)],
                         ids=["lzx", "solid", "none"])
def test_wimlib_capture_wimfs_apply(tree, tmp_path, compress, solid):
    wim = tmp_path / "w.wim"
    wimlib_capture(tree, wim, compress=compress, solid=solid)
    out = tmp_path / "out"
    wimfs("apply", str(wim), str(out), "-q")
    assert_same_tree(snapshot(out, xattrs=False), snapshot(tree, xattrs=False), "wimfs-apply",
                     "source")
    assert file_times(out) == file_times(tree)


def test_unix_data_roundtrip(tmp_path):
    src = make_tree(tmp_path / "src", "modes")
    os.mkfifo(src / "fifo")
    wim = tmp_path / "u.wim"
    wimfs("capture", str(src), str(wim), "--unix-data", "-q")
    fields = ("mode", "uid", "gid")
    expect = snapshot(src, xattrs=False, stat_fields=fields)
    # wimlib reads our UNIX data back
    out1 = tmp_path / "wl"
    wimlib_apply(wim, 1, out1, extra=["--unix-data"])
    assert_same_tree(snapshot(out1, xattrs=False, stat_fields=fields), expect, "wimlib", "src")
    assert stat.S_ISFIFO(os.lstat(out1 / "fifo").st_mode)
    # and we read wimlib's
    wim2 = tmp_path / "u2.wim"
    wimlib_capture(src, wim2, unix_data=True)
    out2 = tmp_path / "wf"
    wimfs("apply", str(wim2), str(out2), "--unix-data", "-q")
    assert_same_tree(snapshot(out2, xattrs=False, stat_fields=fields), expect, "wimfs", "src")
    assert stat.S_ISFIFO(os.lstat(out2 / "fifo").st_mode)


def test_append_dedups_and_keeps_both(tree, tmp_path):
    wim = tmp_path / "a.wim"
    wimfs("capture", str(tree), str(wim), "--name", "one", "-q")
    size1 = wim.stat().st_size
    wimfs("append", str(tree), str(wim), "--name", "two", "-q")
    size2 = wim.stat().st_size
    from wimfs.wim import Wim

    with Wim(str(wim)) as w:
        assert w.image_count == 2
        meta = w.blob_table.metadata[1].rdesc.size_in_wim
        table = w.header.blob_table_reshdr.size_in_wim
        xml = w.header.xml_data_reshdr.size_in_wim
    # growth: the new metadata resource + a new blob table and XML (appends never
    # overwrite the old ones)
    assert size2 - size1 <= meta + table + xml + 4096
    assert wimlib_verify(wim).returncode == 0
    info = wimlib_info(wim)
    assert [i["name"] for i in info["images"]] == ["one", "two"]
    out = tmp_path / "o2"
    wimlib_apply(wim, 2, out)
    assert_same_tree(snapshot(out, xattrs=False), snapshot(tree, xattrs=False))
    # a duplicate name is refused
    r = wimfs("append", str(tree), str(wim), "--name", "two", "-q", check=False)
    assert r == 1


def test_append_to_wimlib_wim(tree, tmp_path):
    wim = tmp_path / "w.wim"
    wimlib_capture(tree, wim, compress="xpress", name="wl")
    wimfs("append", str(tree), str(wim), "--name", "ours", "-q")
    assert wimlib_verify(wim).returncode == 0
    out = tmp_path / "o"
    wimlib_apply(wim, 2, out)
    assert_same_tree(snapshot(out, xattrs=False), snapshot(tree, xattrs=False))


def test_exclusion_config(tmp_path):
    src = tmp_path / "src"
    for p in ("keep.txt", "skip.tmp", "sub/skip.tmp", "sub/keep.tmp", "cache/x", "a/cache/y",
              "sub/deep/z.log"):
        f = src / p
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(p)
    cfg = tmp_path / "cfg.ini"
    cfg.write_text("[ExclusionList]\n*.tmp\n/cache\n\\sub\\deep\n; comment\n"
                   "[ExclusionException]\n/sub/keep.tmp\n")
    wim = tmp_path / "x.wim"
    wimfs("capture", str(src), str(wim), "--config", str(cfg), "-q")
    out = tmp_path / "out"
    wimfs("apply", str(wim), str(out), "-q")
    got = sorted(k for k, v in snapshot(out, xattrs=False).items() if v["type"] == "file")
    assert got == ["a/cache/y", "keep.txt", "sub/keep.tmp"]


def test_unreadable_source_fails_cleanly(tmp_path, monkeypatch, capsys):
    """An unreadable file stops the capture and leaves no WIM (nor temp file) behind;
    --skip-errors reports and skips it."""
    src = make_tree(tmp_path / "src", "chunks")
    import wimfs.capture as cap

    real = cap.check_readable

    def check(path):
        if path.endswith("rand_1.bin"):
            raise PermissionError(13, "Permission denied", path)
        real(path)

    monkeypatch.setattr(cap, "check_readable", check)
    out = tmp_path / "o"
    out.mkdir()
    wim = out / "x.wim"
    from wimfs.cli import main

    assert main(["capture", str(src), str(wim), "-q"]) == 1
    err = capsys.readouterr().err
    assert "rand_1.bin" in err and "Permission denied" in err and err.count("\n") == 1
    assert os.listdir(out) == []
    assert main(["capture", str(src), str(wim), "-q", "--skip-errors"]) == 0
    assert "skipping" in capsys.readouterr().err
    a = tmp_path / "a"
    wimfs("apply", str(wim), str(a), "-q")
    assert not (a / "rand_1.bin").exists()
    assert (a / "rand_32768.bin").exists()


def test_read_error_during_write_leaves_nothing(tmp_path, monkeypatch, capsys):
    """A file that fails while its data is being written (after the scan)."""
    src = make_tree(tmp_path / "src", "chunks")
    import wimfs.writer as writer

    real = writer.FileSource.chunks

    def chunks(self, cs):
        if self.path.endswith("rand_65536.bin"):
            raise OSError(5, "Input/output error", self.path)
        return real(self, cs)

    monkeypatch.setattr(writer.FileSource, "chunks", chunks)
    out = tmp_path / "o"
    out.mkdir()
    from wimfs.cli import main

    for extra in ([], ["--solid"], ["--compress", "none"]):
        assert main(["capture", str(src), str(out / "x.wim"), "-q", *extra]) == 1
        assert "rand_65536.bin" in capsys.readouterr().err
        assert os.listdir(out) == []


def test_unreadable_directory(tmp_path, capsys):
    src = make_tree(tmp_path / "src", "empty")
    wim = tmp_path / "x.wim"
    import wimfs.capture as cap

    real = os.scandir

    def scandir(p):
        if str(p).endswith("/sub"):
            raise PermissionError(13, "Permission denied", p)
        return real(p)

    from wimfs.cli import main

    old = cap.os.scandir
    cap.os.scandir = scandir
    try:
        assert main(["capture", str(src), str(wim), "-q"]) == 1
        assert "cannot read" in capsys.readouterr().err
        assert not wim.exists()
        assert main(["capture", str(src), str(wim), "-q", "--skip-errors"]) == 0
        assert "skipping" in capsys.readouterr().err
    finally:
        cap.os.scandir = old


def test_apply_refuses_path_traversal(corpus, tmp_path):
    wim = corpus / "wim" / "wimlib" / "dotdot.wim"
    dest = tmp_path / "a" / "b" / "c"
    dest.mkdir(parents=True)
    before = set(os.listdir(tmp_path))
    from wimfs.cli import main

    rc = main(["apply", str(wim), str(dest), "-q"])
    assert rc == 3
    assert set(os.listdir(tmp_path)) == before
    assert os.listdir(dest) == []


def test_apply_into_nonempty_target_refuses_symlink_escape(tree, tmp_path):
    """A pre-existing symlink in DIR where the image has a directory is not followed."""
    wim = tmp_path / "t.wim"
    wimfs("capture", str(tree / "hardlinks"), str(wim), "-q")
    dest = tmp_path / "dest"
    dest.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, dest / "a")
    from wimfs.cli import main

    assert main(["apply", str(wim), str(dest), "-q"]) != 0
    assert os.listdir(outside) == []


def test_duplicate_names_image_applies_rest(corpus, tmp_path):
    wim = corpus / "wim" / "wimlib" / "duplicate_names.wim"
    from wimfs.cli import main

    rc = main(["apply", str(wim), str(tmp_path / "o"), "-q"])
    assert rc == 0


@pytest.mark.parametrize("kind", KINDS_NO_MODES)
def test_roundtrip_per_kind_via_wimfs(tmp_path, kind):
    """capture + apply by wimfs alone (each tree kind on its own: empty roots, deep...)."""
    src = make_tree(tmp_path / "src", kind)
    wim = tmp_path / "k.wim"
    wimfs("capture", str(src), str(wim), "--compress", "xpress", "-q")
    out = tmp_path / "out"
    wimfs("apply", f"{wim}:1", str(out), "-q")
    assert_same_tree(snapshot(out, xattrs=False), snapshot(src, xattrs=False))
