"""export / delete / optimize / verify / split / join / info edits."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.helpers import assert_same_tree, snapshot
from tests.helpers.wimlib import (wimlib_apply, wimlib_capture, wimlib_info, wimlib_verify,
                                  wimlib_xml)
from tests.image.conftest import wimfs

pytestmark = pytest.mark.usefixtures("need_wimlib")

TYPES = ["none", "xpress", "lzx", "lzms", "solid"]


@pytest.fixture(scope="module")
def base_wims(tree, tmp_path_factory):
    """wimlib-made WIMs of the tree in every type."""
    d = tmp_path_factory.mktemp("base")
    out = {}
    for t in TYPES:
        out[t] = wimlib_capture(tree, d / f"{t}.wim", compress="lzms" if t == "solid" else t,
                                solid=t == "solid", name=f"base-{t}")
    return out


def _same(wim, index, tree, tmp_path, tag):
    out = tmp_path / f"apply-{tag}"
    wimlib_apply(wim, index, out)
    assert_same_tree(snapshot(out, xattrs=False), snapshot(tree, xattrs=False), tag, "source")


@pytest.mark.parametrize("src", TYPES)
def test_export_between_all_types(base_wims, tree, tmp_path, src):
    for dst in TYPES:
        out = tmp_path / f"{src}-to-{dst}.wim"
        args = ["export", f"{base_wims[src]}:1", str(out), "-q"]
        args += ["--compress", "lzms", "--solid"] if dst == "solid" else ["--compress", dst]
        wimfs(*args)
        r = wimlib_verify(out)
        assert r.returncode == 0, (src, dst, r.stdout, r.stderr)
        info = wimlib_info(out)
        assert info["images"][0]["name"] == f"base-{src}"
        assert info["header"]["compression"] == ("lzms" if dst == "solid" else dst)
        if dst in ("solid", "none"):
            _same(out, 1, tree, tmp_path, f"{src}-{dst}")


def test_export_all_into_existing_dedups(base_wims, tree, tmp_path):
    multi = tmp_path / "multi.wim"
    shutil.copy(base_wims["lzx"], multi)
    subprocess.run(["wimlib-imagex", "append", str(tree / "hardlinks"), str(multi), "second"],
                   check=True, capture_output=True)
    dst = tmp_path / "dst.wim"
    wimfs("capture", str(tree), str(dst), "--name", "own", "-q")
    size0 = dst.stat().st_size
    wimfs("export", f"{multi}:all", str(dst), "-q")
    # everything was already there: only metadata, blob table and XML were added
    assert dst.stat().st_size - size0 < 64 * 1024
    info = wimlib_info(dst)
    assert [i["name"] for i in info["images"]] == ["own", "base-lzx", "second"]
    assert wimlib_verify(dst).returncode == 0
    _same(dst, 3, tree / "hardlinks", tmp_path, "second")
    # names must stay unique
    assert wimfs("export", f"{multi}:1", str(dst), "-q", check=False) == 1
    wimfs("export", f"{multi}:1", str(dst), "--name", "renamed", "-q")
    assert wimlib_info(dst)["images"][-1]["name"] == "renamed"


def test_export_recovery_is_solid_esd(base_wims, tmp_path):
    out = tmp_path / "x.esd"
    wimfs("export", str(base_wims["xpress"]), str(out), "--compress", "recovery", "-q")
    info = wimlib_info(out)
    assert info["header"]["version"] == 0xE00 and info["header"]["compression"] == "lzms"
    assert wimlib_verify(out).returncode == 0


def test_corpus_microsoft_wims_export_and_verify(corpus, tmp_path):
    d = corpus / "wim" / "pebakery"
    n = 0
    for name in ("LZX.wim", "XPRESS.wim", "LZMS.wim", "MultiImage.wim", "BootLZX.wim"):
        src = d / name
        if not src.exists():
            continue
        for ctype in ("lzx", "xpress"):
            out = tmp_path / f"{name}.{ctype}.wim"
            wimfs("export", f"{src}:all", str(out), "--compress", ctype, "-q")
            r = wimlib_verify(out)
            assert r.returncode == 0, (name, r.stdout, r.stderr)
            assert len(wimlib_info(out)["images"]) == len(wimlib_info(src)["images"])
            n += 1
    assert n


def test_delete_in_place_and_rebuild(base_wims, tree, tmp_path):
    wim = tmp_path / "d.wim"
    wimfs("capture", str(tree / "chunks"), str(wim), "--name", "one", "-q")
    wimfs("append", str(tree / "large"), str(wim), "--name", "two", "-q")
    wimfs("append", str(tree / "hardlinks"), str(wim), "--name", "three", "-q")
    wimfs("info", str(wim), "--boot", "3")
    before = wim.stat().st_size
    wimfs("delete", str(wim), "2", "-q")
    info = wimlib_info(wim)
    assert [i["name"] for i in info["images"]] == ["one", "three"]
    assert info["header"]["boot_index"] == 2
    assert wimlib_verify(wim).returncode == 0
    assert wim.stat().st_size >= before - 4096          # DISM-style: space not reclaimed
    _same(wim, 2, tree / "hardlinks", tmp_path, "after-delete")
    wimfs("delete", str(wim), "one", "--rebuild", "-q")
    info = wimlib_info(wim)
    assert [i["name"] for i in info["images"]] == ["three"]
    assert info["header"]["boot_index"] == 1
    assert wim.stat().st_size < before // 2             # large.bin's 3 MiB are gone
    assert wimlib_verify(wim).returncode == 0
    _same(wim, 1, tree / "hardlinks", tmp_path, "after-rebuild")
    assert wimfs("delete", str(wim), "7", "-q", check=False) == 4


def test_optimize_reclaims_space(tree, tmp_path):
    wim = tmp_path / "o.wim"
    wimfs("capture", str(tree), str(wim), "--name", "a", "-q")
    for k in range(3):
        wimfs("info", str(wim), "--index", "1", "--set-description", f"rev {k}")
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "r.bin").write_bytes(os.urandom(3 << 20))
    wimfs("append", str(extra), str(wim), "--name", "b", "-q")
    wimfs("delete", str(wim), "2", "-q")
    before = wim.stat().st_size
    wimfs("optimize", str(wim), "-q")                 # resources copied as stored
    assert wim.stat().st_size < before - (2 << 20)
    assert wimlib_verify(wim).returncode == 0
    info = wimlib_info(wim)
    assert info["images"][0]["description"] == "rev 2"
    _same(wim, 1, tree, tmp_path, "optimized")
    size = wim.stat().st_size
    wimfs("optimize", str(wim), "-q")                 # nothing left to reclaim
    assert abs(wim.stat().st_size - size) < 512
    wimfs("optimize", str(wim), "--recompress", "--compress", "xpress", "-q")
    assert wimlib_info(wim)["header"]["compression"] == "xpress"
    assert wimlib_verify(wim).returncode == 0
    wimfs("optimize", str(wim), "--solid", "-q")     # solid: recompressed
    assert wimlib_info(wim)["header"]["version"] == 0xE00
    wimfs("optimize", str(wim), "-q")
    assert wimlib_verify(wim).returncode == 0
    _same(wim, 1, tree, tmp_path, "optimized-solid")


def test_info_edits(base_wims, tmp_path):
    wim = tmp_path / "i.wim"
    shutil.copy(base_wims["xpress"], wim)
    wimfs("info", str(wim), "--index", "1", "--set-name", "New Name", "--set-description",
          "A description", "--set-property", "WINDOWS/EDITIONID=Professional",
          "--set-property", "FLAGS=Professional", "--boot", "1")
    assert wimlib_verify(wim).returncode == 0
    info = wimlib_info(wim)
    img = info["images"][0]
    assert img["name"] == "New Name" and img["description"] == "A description"
    assert img["flags"] == "Professional"
    assert info["header"]["boot_index"] == 1
    assert "<EDITIONID>Professional</EDITIONID>" in wimlib_xml(wim)
    # removing a property with an empty value
    wimfs("info", str(wim), "--index", "1", "--set-property", "FLAGS=")
    assert wimlib_info(wim)["images"][0]["flags"] is None
    assert wimfs("info", str(wim), "--index", "5", "--set-name", "x", check=False) == 4


def test_verify(base_wims, tmp_path, corpus, capsys):
    for t in TYPES:
        wimfs("verify", str(base_wims[t]), "-q")
    bad = tmp_path / "bad.wim"
    shutil.copy(base_wims["none"], bad)
    # flip a byte inside the data of the largest file (uncompressed WIM)
    from wimfs.wim import Wim

    with Wim(str(bad)) as w:
        blob = max(w.blob_table.blobs.values(), key=lambda b: b.size)
        off = blob.rdesc.offset_in_wim + 100
    with open(bad, "r+b") as f:
        f.seek(off)
        c = f.read(1)
        f.seek(off)
        f.write(bytes([c[0] ^ 0xFF]))
    assert wimfs("verify", str(bad), "-q", check=False) == 3
    assert blob.hex in capsys.readouterr().err
    for name in ("corrupted_file_1.wim", "corrupted_file_2.wim"):
        assert wimfs("verify", str(corpus / "wim" / "wimlib" / name), "-q", check=False) == 3
    # integrity tables: written with --check, checked by verify
    ok = tmp_path / "chk.wim"
    wimfs("capture", str(base_wims["none"].parent), str(ok), "--check", "-q",
          "--compress", "xpress")
    r = subprocess.run(["wimlib-imagex", "verify", str(ok)], capture_output=True, text=True)
    assert r.returncode == 0 and "integrity" not in r.stderr.lower(), r.stderr
    wimfs("verify", str(ok), "-q")
    pe = corpus / "wim" / "pebakery"
    if (pe / "VerifyFail.wim").exists():
        assert wimfs("verify", str(pe / "VerifyFail.wim"), "-q", check=False) == 3
        wimfs("verify", str(pe / "VerifySuccess.wim"), "-q")


def test_split_join(tree, tmp_path):
    wim = tmp_path / "s.wim"
    wimfs("capture", str(tree), str(wim), "--compress", "none", "-q")
    part = tmp_path / "p.swm"
    wimfs("split", str(wim), str(part), "--size", "1", "-q")
    parts = sorted(tmp_path.glob("p*.swm"))
    assert len(parts) >= 3
    r = wimlib_verify(part, extra=[f"--ref={tmp_path}/p*.swm"])
    assert r.returncode == 0, r.stdout + r.stderr
    # wimlib applies our split set, we apply it with --ref, we join it
    out = tmp_path / "wl"
    wimlib_apply(part, 1, out, extra=[f"--ref={tmp_path}/p*.swm"])
    assert_same_tree(snapshot(out, xattrs=False), snapshot(tree, xattrs=False))
    out2 = tmp_path / "wf"
    wimfs("apply", str(part), str(out2), "--ref", f"{tmp_path}/p*.swm", "-q")
    assert_same_tree(snapshot(out2, xattrs=False), snapshot(tree, xattrs=False))
    wimfs("verify", str(part), "--ref", f"{tmp_path}/p*.swm", "-q")
    joined = tmp_path / "j.wim"
    wimfs("join", str(joined), *map(str, parts), "-q")
    assert wimlib_verify(joined).returncode == 0
    _same(joined, 1, tree, tmp_path, "joined")
    # without the other parts: a clear error
    assert wimfs("apply", str(part), str(tmp_path / "x"), "-q", check=False) == 3
    # wimlib's split parts join with wimfs
    subprocess.run(["wimlib-imagex", "split", str(wim), str(tmp_path / "w.swm"), "1"],
                   check=True, capture_output=True)
    j2 = tmp_path / "j2.wim"
    wimfs("join", str(j2), f"{tmp_path}/w*.swm", "-q")
    assert wimlib_verify(j2).returncode == 0
    _same(j2, 1, tree, tmp_path, "joined-wimlib")


def test_corpus_split_with_ref(corpus, tmp_path):
    d = corpus / "wim" / "pebakery"
    if not (d / "Split.swm").exists():
        pytest.skip("no split WIM in the corpus")
    out = tmp_path / "o"
    wimfs("apply", str(d / "Split.swm"), str(out), "--ref", str(d / "Split*.swm"), "-q")
    ref = tmp_path / "r"
    wimlib_apply(d / "Split.swm", 1, ref, extra=[f"--ref={d}/Split*.swm"])
    assert_same_tree(snapshot(out, xattrs=False), snapshot(ref, xattrs=False))
    assert wimfs("info", str(d / "Split.swm"), "--ref", str(d / "Split2.swm")) == 0
