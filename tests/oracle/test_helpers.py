"""Tests of the test infrastructure itself (generators, snapshots, wimlib parsers, the oracles).

Fast except the two FUSE-backed validations (ntfs-3g oracle self-check; wimlib's own mount vs
wimlib apply), which prove the oracle pipeline before it is used to judge wimfs.
"""

from __future__ import annotations

import os
import struct

import pytest

from tests.helpers import (assert_same_tree, diff_snapshots, make_ntfs_wim,
                           make_tree, mounted, ntfs3g_mounted, ntfs_snapshot, require_fuse,
                           require_tool, snapshot, wimlib_apply, wimlib_capture, wimlib_info)
from tests.helpers.ntfs import ARCHIVE, HIDDEN, READONLY, mkntfs, security_descriptor, sid
from tests.helpers.trees import KINDS
from tests.helpers.wimlib import wimlib_append, wimlib_dir_detailed

# --------------------------------------------------------------------------- generators


def test_generators_deterministic(tmp_path):
    a = snapshot(make_tree(tmp_path / "a", "all"), xattrs=False, stat_fields=("mode",))
    b = snapshot(make_tree(tmp_path / "b", "all"), xattrs=False, stat_fields=("mode",))
    # absolute symlinks differ only by root, which snapshot normalizes away
    assert diff_snapshots(a, b) == []
    assert len(a) > 100


def test_generator_contents(tmp_path):
    root = make_tree(tmp_path / "t", "all")
    sizes = {p.name: p.stat().st_size for p in (root / "chunks").iterdir()}
    for n in (32767, 32768, 32769, 65535, 65536, 65537):
        assert sizes[f"rand_{n}.bin"] == n
    assert (root / "empty" / "empty.bin").stat().st_size == 0
    assert (root / "large" / "large.bin").stat().st_size > 3 * 1024 * 1024
    mixed = (root / "mixed" / "rand40k_zero200k.bin").read_bytes()
    assert len(mixed) == 240 * 1024 and mixed[40 * 1024:] == bytes(200 * 1024)
    names = os.listdir(root / "unicode")
    assert any(len(n.encode()) == 255 and len(n.encode("utf-16-le")) == 510 for n in names)
    assert any(len(n.encode()) == 255 and len(n) == 85 for n in names)
    assert any("\u0301" in n for n in names) and any("😀" in n for n in names)
    deep = root / "deep"
    assert len(list(deep.rglob("bottom.txt"))[0].relative_to(deep).parts) == 41
    h = root / "hardlinks"
    assert os.stat(h / "a" / "triple_1").st_nlink == 3
    assert os.stat(h / "a" / "triple_1").st_ino == os.stat(h / "c" / "deeper" / "triple_3").st_ino
    s = root / "symlinks"
    assert os.readlink(s / "abs_inside_link").startswith(str(s))
    assert not (s / "dangling_link").exists() and (s / "dangling_link").is_symlink()
    assert (root / "emptydir" / "empty_dir").is_dir() and not os.listdir(root / "emptydir" / "empty_dir")
    assert set(KINDS) <= set(os.listdir(root))


# --------------------------------------------------------------------------- snapshot


def test_snapshot_detects_differences(tmp_path):
    a = tmp_path / "a"
    make_tree(a, "hardlinks")
    base = snapshot(a)
    assert diff_snapshots(base, snapshot(a)) == []
    # content
    (a / "b" / "same_content_2").write_bytes(b"other content\n")
    d = diff_snapshots(base, snapshot(a))
    assert any("same_content_2" in x and "sha1" in x for x in d) and any("size" in x for x in d)
    base = snapshot(a)
    # breaking a hard link
    os.unlink(a / "a" / "triple_2")
    (a / "a" / "triple_2").write_bytes((a / "a" / "triple_1").read_bytes())
    d = diff_snapshots(base, snapshot(a))
    assert any("triple_2" in x and "link_group" in x for x in d)
    assert any("triple_1" in x and "nlink" in x for x in d)
    base = snapshot(a)
    # xattr
    try:
        os.setxattr(a / "a" / "same_content_1", "user.test", b"v1")
    except OSError as e:
        pytest.skip(f"no user xattrs on tmp fs: {e}")
    d = diff_snapshots(base, snapshot(a))
    h = snapshot(a)["a/same_content_1"]["xattrs"]["user.test"]
    assert d == [f"'a/same_content_1': xattr user.test: a=None b='{h}'"]
    base = snapshot(a)
    os.setxattr(a / "a" / "same_content_1", "user.test", b"v2")
    assert len(diff_snapshots(base, snapshot(a))) == 1
    assert diff_snapshots(base, snapshot(a, ignore_xattrs=("user.*",))) != []
    assert diff_snapshots(snapshot(a, ignore_xattrs=("user.*",)), snapshot(a, ignore_xattrs=("user.t*",))) == []
    # type change and missing paths
    os.unlink(a / "b" / "same_content_2")
    os.symlink("x", a / "b" / "same_content_2")
    (a / "new").mkdir()
    d = diff_snapshots(base, snapshot(a))
    assert any("same_content_2" in x and "type" in x for x in d)
    assert any("only in b: 'new'" in x for x in d)
    with pytest.raises(AssertionError, match="difference"):
        assert_same_tree(base, snapshot(a))


def test_snapshot_symlink_target_normalization(tmp_path):
    for name in ("x", "y"):
        r = tmp_path / name
        r.mkdir()
        (r / "f").write_text("f")
        os.symlink(str(r / "f"), r / "abs")
        os.symlink(str(r), r / "root_link")
        os.symlink("/elsewhere", r / "out")
    a, b = snapshot(tmp_path / "x"), snapshot(tmp_path / "y")
    assert a["abs"]["target"] == "/f" and a["root_link"]["target"] == "/"
    assert a["out"]["target"] == "/elsewhere"
    assert diff_snapshots(a, b) == []


def test_snapshot_records_read_errors(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    s = snapshot(tmp_path / "d", on_error="record", stat_fields=("mode", "uid"))
    assert s["f"]["sha1"] and s["f"]["mode"] == "0o644" or s["f"]["mode"]


def test_sd_builder():
    assert sid("S-1-5-32-544").hex() == "01020000000000052000000020020000"
    sd = security_descriptor("S-1-5-32-544", "S-1-5-18", None)
    rev, _, ctrl, o, g, sacl, dacl = struct.unpack_from("<BBHIIII", sd)
    assert (rev, ctrl & 0x8000, o, sacl, dacl) == (1, 0x8000, 20, 0, 0)


# --------------------------------------------------------------------------- wimlib parsers


def test_wimlib_info_parser(tmp_path):
    require_tool("wimlib-imagex")
    src = make_tree(tmp_path / "src", "hardlinks")
    wim = wimlib_capture(src, tmp_path / "x.wim", compress="xpress", name="one", description="first")
    wimlib_append(src / "a", wim, name="two")
    info = wimlib_info(wim)
    h = info["header"]
    assert (h["image_count"], h["compression"], h["chunk_size"], h["part_number"], h["total_parts"],
            h["boot_index"]) == (2, "xpress", 32768, 1, 1, 0)
    assert len(h["guid"]) == 32 and h["flags"] & 0x2  # WIM_HDR_FLAG_COMPRESSION
    assert [i["name"] for i in info["images"]] == ["one", "two"]
    assert [i["description"] for i in info["images"]] == ["first", None]
    im = info["images"][0]
    assert im["index"] == 1 and im["dir_count"] == 5 and im["file_count"] == 9
    assert im["hard_link_bytes"] == 5000 + 2 * 70000  # extra names of the pair and the triple
    assert "UTC" in im["creation_time"] and im["windows"] is False
    assert "<NAME>two</NAME>" in info["xml"]
    solid = wimlib_info(wimlib_capture(src, tmp_path / "s.wim", compress="lzms", solid=True))
    assert solid["header"]["compression"] == "lzms" and solid["header"]["version"] == 0xE00


def test_wimlib_dir_detailed_parser(tmp_path):
    require_tool("wimlib-imagex")
    src = make_tree(tmp_path / "src", "hardlinks")
    wim = wimlib_capture(src, tmp_path / "x.wim", compress="none")
    d = wimlib_dir_detailed(wim)
    assert d["."]["attributes"] & 0x10
    assert d["a/triple_1"]["link_count"] == 3 and d["a/triple_1"]["streams"] == {"": 70000}


# --------------------------------------------------------------------------- oracle validation (FUSE)


@pytest.fixture(scope="module")
def ntfs_fixture(tmp_path_factory):
    require_fuse()
    require_tool("mkntfs", "ntfs-3g", "wimlib-imagex")
    return make_ntfs_wim(tmp_path_factory.mktemp("ntfs_oracle"))


def test_ntfs_oracle_preserves_what_we_put_in(ntfs_fixture):
    """wimlib capture -> wimlib apply -> ntfs-3g must round-trip everything we set (self-check)."""
    src, exp = ntfs_fixture.source, ntfs_fixture.expected
    assert_same_tree(exp, src, "oracle (applied)", "source volume")
    x = src["streams.txt"]["xattrs"]
    assert {"user.stream1", "user.binary", "user.Zone.Identifier"} <= set(x)
    assert bytes.fromhex(src["Long File Name.txt"]["xattrs"]["system.ntfs_dos_name"]) == b"LONGFI~1.TXT"
    attrib = lambda p: struct.unpack("<I", bytes.fromhex(src[p]["xattrs"]["system.ntfs_attrib"]))[0]
    assert attrib("readonly.txt") & READONLY and attrib("hidden.txt") & HIDDEN
    assert attrib("plain.txt") == ARCHIVE
    acls = {src[p]["xattrs"]["system.ntfs_acl"] for p in
            ("acl_everyone.txt", "acl_user.txt", "acl_dir", "acl_dir/inherits.txt", "empty_dacl.txt", "plain.txt")}
    assert len(acls) == 6, "the fixture's security descriptors must be distinct"
    assert src["junction"]["type"] == "symlink" and src["junction"]["target"] == "/acl_dir"
    assert src["abs_symlink"]["target"] == "/acl_dir/inherits.txt"
    assert src["rel_symlink"]["target"] == "plain.txt"
    assert src["hl/triple_1"]["nlink"] == 3 and src["hl2/triple_3"]["link_group"] == "hl/triple_1"


def test_ntfs_oracle_agrees_with_wimlib_dir(ntfs_fixture):
    """The ntfs-3g view of the applied volume agrees with ``wimlib-imagex dir --detailed``."""
    detail = wimlib_dir_detailed(ntfs_fixture.wim)
    exp = ntfs_fixture.expected
    assert set(detail) == set(exp)
    for path, d in detail.items():
        x = exp[path]["xattrs"]
        assert struct.unpack("<I", bytes.fromhex(x["system.ntfs_attrib"]))[0] == d["attributes"], path
        assert x.get("system.ntfs_acl") == d["sd"], path
        if path != ".":
            got_dos = bytes.fromhex(x["system.ntfs_dos_name"]).decode() if "system.ntfs_dos_name" in x else None
            assert got_dos == d["short_name"], path
        named = {k for k in d["streams"] if k}
        assert {k[len("user."):] for k in x if k.startswith("user.")} == named, path


def test_wimlib_mount_agrees_with_apply_lzx(tmp_path):
    """wimlib's own mount vs wimlib apply on a generated LZX image: proves snapshot + mounted()."""
    require_fuse()
    require_tool("wimlib-imagex")
    src = make_tree(tmp_path / "src", "all")
    wim = wimlib_capture(src, tmp_path / "g.wim", compress="lzx")
    dest = tmp_path / "apply"
    dest.mkdir()
    wimlib_apply(wim, 1, dest)
    with mounted(wim, tmp_path / "mnt", impl="wimlib") as proc:
        assert proc is None
        got = snapshot(tmp_path / "mnt")
    assert not os.path.ismount(tmp_path / "mnt")
    exp = snapshot(dest)
    assert_same_tree(got, exp, "wimlib mount", "wimlib apply")
    # and the apply equals the source (modulo nothing: no unix data, so compare content only)
    src_snap = snapshot(src, xattrs=False)
    assert_same_tree(snapshot(dest, xattrs=False), src_snap, "apply", "source")


def test_mounted_reports_failure_with_log(tmp_path):
    require_fuse()
    bogus = tmp_path / "not_a.wim"
    bogus.write_bytes(b"not a wim at all")
    from tests.helpers import MountFailed

    with pytest.raises(MountFailed) as ei:
        with mounted(bogus, tmp_path / "mnt", impl="wimlib", timeout=10):
            pass
    assert ei.value.returncode not in (None, 0) and ei.value.log
    assert not os.path.ismount(tmp_path / "mnt")


def _corpus_valid():
    from tests.mount.test_corpus import VALID

    return [v for v in VALID if not v[0].endswith(".swm")]


@pytest.mark.parametrize("rel,index", _corpus_valid(), ids=[f"{r.removeprefix('wim/')}:{i}" for r, i in _corpus_valid()])
def test_corpus_ntfs_oracle_agrees_with_wimlib_dir(rel, index, corpus, tmp_path):
    """Self-check of the NTFS oracle used by tests/mount/test_corpus.py on third-party WIMs."""
    require_fuse()
    require_tool("mkntfs", "ntfs-3g", "wimlib-imagex")
    wim = corpus / rel
    detail = wimlib_dir_detailed(wim, index)
    img = mkntfs(tmp_path / "v.img", 32)
    wimlib_apply(wim, index, img)
    with ntfs3g_mounted(img, tmp_path / "v") as vol:
        exp = ntfs_snapshot(vol, raw_xattrs=True)
    assert set(detail) == set(exp)
    problems = []
    for path, d in sorted(detail.items()):
        x = exp[path]["xattrs"]
        attrib = struct.unpack("<I", bytes.fromhex(x["system.ntfs_attrib"]))[0]
        if attrib != d["attributes"]:
            problems.append(f"{path}: attrib ntfs-3g={attrib:#x} wim={d['attributes']:#x}")
        if d["sd"] is not None and x.get("system.ntfs_acl") != d["sd"]:
            problems.append(f"{path}: acl ntfs-3g={x.get('system.ntfs_acl')} wim={d['sd']}")
        if path != ".":
            dos = bytes.fromhex(x["system.ntfs_dos_name"]).decode() if "system.ntfs_dos_name" in x else None
            # quirk: ntfs-3g returns a DOS name that equals the long name case-insensitively
            # (WIN32_AND_DOS namespace) upper-cased: WIM "A.txt" -> ntfs-3g "A.TXT"
            if (dos or "").upper() != (d["short_name"] or "").upper():
                problems.append(f"{path}: dos ntfs-3g={dos} wim={d['short_name']}")
        named = {k for k in d["streams"] if k}
        if {k[len("user."):] for k in x if k.startswith("user.")} != named:
            problems.append(f"{path}: streams ntfs-3g={sorted(x)} wim={sorted(named)}")
    assert not problems, "\n".join(problems[:30])
