"""Windows metadata through ntfs-3g: capture from an ntfs-3g mount (system.ntfs_* and
user.* xattrs) and apply onto one, against wimlib's own NTFS-3G capture/apply."""

from __future__ import annotations

import shutil

import pytest

from tests.helpers import assert_same_tree, fuse_missing_reason
from tests.helpers.ntfs import mkntfs, ntfs3g_mounted, ntfs_snapshot, populate_ntfs
from tests.helpers.wimlib import wimlib_apply, wimlib_capture
from tests.image.conftest import wimfs


@pytest.fixture(scope="module")
def ntfs(tmp_path_factory):
    if fuse_missing_reason() or not shutil.which("ntfs-3g") or not shutil.which("mkntfs"):
        pytest.skip("needs FUSE, ntfs-3g and mkntfs")
    if not shutil.which("wimlib-imagex"):
        pytest.skip("wimlib-imagex is not installed")
    d = tmp_path_factory.mktemp("ntfs")
    img = mkntfs(d / "src.img")
    with ntfs3g_mounted(img, d / "mnt") as m:
        populate_ntfs(m)
    wl = wimlib_capture(img, d / "wl.wim", name="x")
    with ntfs3g_mounted(img, d / "mnt") as m:
        wimfs("capture", m, d / "wf.wim", "--name", "x", "-q")
    # what wimlib's NTFS apply of its own capture gives: the oracle tree
    exp = mkntfs(d / "exp.img")
    wimlib_apply(wl, 1, exp)
    with ntfs3g_mounted(exp, d / "m-exp") as m:
        expected = ntfs_snapshot(m, raw_xattrs=True)
    return {"dir": d, "wl": wl, "wf": d / "wf.wim", "expected": expected}


def _view(path):
    from wimfs.wim import Wim

    out = {}
    with Wim(str(path)) as w:
        img = w.image(1)
        for d in img.walk():
            i = d.inode
            rp = w.read_blob(i.reparse.blob) if i.reparse and i.reparse.blob else None
            out[d.path] = dict(
                attr=i.attributes, sd=img.security_descriptor(i), times=(
                    i.creation_time, i.last_write_time), tag=i.reparse_tag,
                rp_flags=i.rp_flags, rp=rp, short=d.short_name,
                streams={k: v.hash for k, v in i.named_streams.items()},
                data=i.data.hash if i.data and any(i.data.hash) else None,
                links=len(i.dentries))
    return out


def test_capture_from_ntfs3g_matches_wimlib_ntfs_capture(ntfs):
    a, b = _view(ntfs["wf"]), _view(ntfs["wl"])
    assert a.keys() == b.keys()
    diffs = {k: {f: (a[k][f], b[k][f]) for f in a[k] if a[k][f] != b[k][f]}
             for k in a if a[k] != b[k]}
    assert not diffs, diffs


def test_wimlib_applies_our_ntfs_capture(ntfs):
    d = ntfs["dir"]
    img = mkntfs(d / "wl-of-wf.img")
    wimlib_apply(ntfs["wf"], 1, img)
    with ntfs3g_mounted(img, d / "m1") as m:
        got = ntfs_snapshot(m, raw_xattrs=True)
    assert_same_tree(got, ntfs["expected"], "wimlib-apply(wimfs capture)", "wimlib")


@pytest.mark.parametrize("which", ["wl", "wf"])
def test_apply_onto_ntfs3g(ntfs, which):
    d = ntfs["dir"]
    img = mkntfs(d / f"apply-{which}.img")
    with ntfs3g_mounted(img, d / f"m-{which}") as m:
        wimfs("apply", ntfs[which], m, "-q")
    with ntfs3g_mounted(img, d / f"m-{which}") as m:
        got = ntfs_snapshot(m, raw_xattrs=True)
    assert_same_tree(got, ntfs["expected"], "wimfs-apply", "wimlib-apply")


def test_capture_from_wimfs_mount_keeps_windows_metadata(ntfs, tmp_path):
    """A wimfs mount offers the same xattrs as ntfs-3g: recapturing it gives the image
    back (attributes, SDs, DOS names, reparse data, times, named streams, links)."""
    from tests.helpers.mount import mounted

    mnt = tmp_path / "mnt"
    with mounted(ntfs["wl"], mnt, impl="wimfs"):
        wimfs("capture", mnt, tmp_path / "re.wim", "-q")
    a, b = _view(tmp_path / "re.wim"), _view(ntfs["wl"])
    assert a == b
