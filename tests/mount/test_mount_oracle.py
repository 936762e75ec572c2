"""Read-only mount vs. oracle: our FUSE mount must read exactly what ``wimlib-imagex apply`` extracts.

Generated tree captured with none / XPRESS / LZX / LZMS / solid LZMS / --unix-data, a 2-image WIM,
and the NTFS-rich WIM (oracle: wimlib apply onto a fresh NTFS volume, read through ntfs-3g).
Mounts are shared per module (MountPool). ``WIMFS_TEST_MOUNT_IMPL=wimlib`` runs the same tests
against ``wimlib-imagex mount`` (features it lacks are xfail/skip under that setting).
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import errno
import hashlib
import os
import stat
import subprocess

import pytest

from tests.helpers import (NTFS_PROBE_XATTRS, MountPool, assert_same_tree, make_ntfs_wim, make_tree,
                           require_fuse, require_tool, snapshot, using_wimlib_mount, wimfs_info_json,
                           wimlib_append, wimlib_apply, wimlib_capture, wimlib_info)

pytestmark = [pytest.mark.mount]

WIMLIB_MOUNT = using_wimlib_mount()


def xfail_wimlib(reason):
    return pytest.mark.xfail(WIMLIB_MOUNT, reason=f"wimlib-imagex mount: {reason}", strict=True)


CAPTURES = {
    "none": dict(compress="none"),
    "xpress": dict(compress="xpress"),
    "lzx": dict(compress="lzx"),
    "lzms": dict(compress="lzms"),
    "lzms_solid": dict(compress="lzms", solid=True),
    "unix_data": dict(compress="lzx", unix_data=True),
}
ALL_IMAGES = [*CAPTURES, "multi", "ntfs"]
# our mount exposes Windows metadata as system.ntfs_*; the Linux apply has no equivalent
GEN_IGNORE_XATTRS = ("system.*",)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    require_tool("wimlib-imagex")
    require_fuse()
    return tmp_path_factory.mktemp("mount_oracle")


@pytest.fixture(scope="module")
def images(work):
    """key -> WIM path, built once per module (per xdist worker)."""
    src = make_tree(work / "src", "all")
    out = {}
    for key, kw in CAPTURES.items():
        out[key] = wimlib_capture(src, work / f"{key}.wim", name=f"gen-{key}",
                                  description=f"generated tree, {key}", **kw)
    # 2-image WIM: chunks + symlinks trees
    multi = wimlib_capture(src / "chunks", work / "multi.wim", compress="lzx", name="first",
                           description="image one")
    wimlib_append(src / "symlinks", multi, name="second", description="image two")
    out["multi"] = multi
    out["_src"] = src
    return out


@pytest.fixture(scope="module")
def ntfs(work):
    require_tool("mkntfs", "ntfs-3g")
    return make_ntfs_wim(work / "ntfs")


@pytest.fixture(scope="module")
def wim_of(images, ntfs):
    def get(key):
        return ntfs.wim if key == "ntfs" else images[key]
    return get


@pytest.fixture(scope="module")
def pool(work):
    p = MountPool(work / "mnt")
    yield p
    p.close()


@pytest.fixture(scope="module")
def applied(work, images):
    """(key, index, unix_data) -> snapshot of wimlib apply, computed lazily and cached."""
    cache = {}

    def get(key, index=1, unix_data=False, stat_fields=()):
        ck = (key, index, unix_data, tuple(stat_fields))
        if ck not in cache:
            dest = work / "apply" / f"{key}_{index}_{int(unix_data)}"
            if not dest.exists():
                dest.mkdir(parents=True)
                wimlib_apply(images[key], index, dest, extra=["--unix-data"] if unix_data else [])
            cache[ck] = snapshot(dest, ignore_xattrs=GEN_IGNORE_XATTRS, stat_fields=stat_fields)
        return cache[ck]
    return get


# --------------------------------------------------------------------------- content


@pytest.mark.parametrize("key", list(CAPTURES))
def test_tree_matches_wimlib_apply(key, images, pool, applied):
    mnt = pool.get(images[key])
    assert_same_tree(snapshot(mnt, ignore_xattrs=GEN_IGNORE_XATTRS), applied(key), "mount", "apply")


@pytest.mark.parametrize("index,args", [(1, ["--index", "1"]), (2, ["--index", "2"]),
                                        (2, ["--name", "second"])])
def test_multi_image_select(index, args, images, pool, applied):
    mnt = pool.get(images["multi"], *args)
    assert_same_tree(snapshot(mnt, ignore_xattrs=GEN_IGNORE_XATTRS), applied("multi", index),
                     "mount", "apply")


def test_index_all_one_folder_per_image(images, pool, applied):
    mnt = pool.get(images["multi"], "--index", "all")
    tops = sorted(os.listdir(mnt))
    assert len(tops) == 2, f"--index all should show one folder per image, got {tops}"
    snaps = {t: snapshot(mnt / t, ignore_xattrs=GEN_IGNORE_XATTRS) for t in tops}
    for t in tops:
        assert os.path.isdir(mnt / t) and not os.path.islink(mnt / t)
    for index in (1, 2):
        exp = applied("multi", index)
        # absolute symlink targets are relative to the image root, i.e. <mnt>/<folder>
        matches = [t for t, s in snaps.items() if not _diff_ignoring_root(s, exp)]
        assert matches, (f"no top-level folder matches image {index}: "
                         + "; ".join(f"{t}: {_diff_ignoring_root(s, exp)[:5]}" for t, s in snaps.items()))


def _diff_ignoring_root(a, b):
    from tests.helpers import diff_snapshots

    a = {k: v for k, v in a.items() if k != "."}
    b = {k: v for k, v in b.items() if k != "."}
    return diff_snapshots(a, b)


def test_hard_links_share_inode(images, pool):
    mnt = pool.get(images["lzx"])
    h = mnt / "hardlinks"
    triple = [os.stat(h / p) for p in ("a/triple_1", "a/triple_2", "c/deeper/triple_3")]
    assert len({s.st_ino for s in triple}) == 1, "hard-linked names must share one st_ino"
    assert [s.st_nlink for s in triple] == [3, 3, 3]
    pair = [os.stat(h / p) for p in ("a/pair_1", "b/pair_2")]
    assert pair[0].st_ino == pair[1].st_ino and [s.st_nlink for s in pair] == [2, 2]
    empty = [os.stat(h / p) for p in ("a/empty_linked_1", "c/empty_linked_2")]
    assert empty[0].st_ino == empty[1].st_ino and empty[0].st_nlink == 2
    same = [os.stat(h / p) for p in ("a/same_content_1", "b/same_content_2")]
    assert same[0].st_ino != same[1].st_ino, "identical content must not merge distinct files"
    assert [s.st_nlink for s in same] == [1, 1]
    # inode numbers are unique across the mount for distinct files
    seen = {}
    for dirpath, dirnames, filenames in os.walk(mnt):
        for n in filenames:
            st = os.lstat(os.path.join(dirpath, n))
            seen.setdefault(st.st_ino, set()).add(st.st_nlink)
    assert all(len(v) == 1 for v in seen.values())


def test_symlinks(images, pool):
    mnt = pool.get(images["lzx"])
    s = mnt / "symlinks"
    assert os.readlink(s / "rel_link") == "target.txt"
    assert os.readlink(s / "dir" / "rel_up_link") == "../target.txt"
    assert os.readlink(s / "dangling_link") == "does/not/exist"
    assert os.readlink(s / "abs_outside_link") == "/etc/outside-of-tree/nonexistent"
    # rpfix'ed absolute links resolve inside the mount, like wimlib-imagex mount does
    assert os.readlink(s / "abs_inside_link") == f"{mnt}/symlinks/dir/inner.txt"
    assert (s / "abs_inside_link").read_bytes() == b"inner\n"
    assert os.path.realpath(s / "abs_inside_dir_link") == os.path.realpath(s / "dir")
    assert sorted(os.listdir(s / "dir_link")) == ["inner.txt", "rel_up_link"]
    assert (s / "rel_link").read_bytes() == b"symlink target\n"


# --------------------------------------------------------------------------- tools over the mount


def _run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, timeout=120, **kw)
    assert p.returncode == 0, f"{cmd} failed ({p.returncode}): {p.stderr.decode(errors='replace')[-2000:]}"
    return p


@pytest.mark.parametrize("key", ["lzx", "lzms_solid"])
def test_find_ls_tar_cp(key, images, pool, work, applied):
    mnt = pool.get(images[key])
    found = _run(["find", ".", "-print0"], cwd=mnt).stdout.split(b"\0")
    assert len([f for f in found if f]) == len(applied(key))
    _run(["ls", "-lR", "--time-style=full-iso", "."], cwd=mnt)
    tar = _run(["tar", "cf", "-", "."], cwd=mnt).stdout
    assert len(tar) > 3 * 1024 * 1024
    dest = work / f"cp_{key}"
    _run(["cp", "-a", f"{mnt}/.", str(dest)])
    # cp -a copies absolute symlink targets verbatim (they point into the mount), normalize
    got = snapshot(dest, xattrs=False)
    exp = snapshot(mnt, xattrs=False)
    for e in got.values():
        if e["target"] and e["target"].startswith(str(mnt) + "/"):
            e["target"] = e["target"][len(str(mnt)):]
    assert_same_tree(got, exp, "cp -a copy", "mount")


@pytest.mark.parametrize("key", ["lzx", "lzms_solid", "xpress"])
def test_parallel_readers(key, images, pool):
    mnt = pool.get(images[key])
    src = images["_src"]
    want = hashlib.sha1((src / "large" / "large.bin").read_bytes()).hexdigest()
    want2 = hashlib.sha1((src / "mixed" / "rand40k_zero200k.bin").read_bytes()).hexdigest()

    def cat(path):
        p = subprocess.run(["cat", str(path)], capture_output=True, timeout=120)
        assert p.returncode == 0, p.stderr
        return hashlib.sha1(p.stdout).hexdigest()

    paths = [mnt / "large" / "large.bin"] * 3 + [mnt / "mixed" / "rand40k_zero200k.bin"]
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        got = list(ex.map(cat, paths))
    assert got == [want, want, want, want2]


def test_random_access_reads(images, pool):
    """pread at chunk boundaries and odd offsets must match the source."""
    mnt = pool.get(images["lzms_solid"])
    src = images["_src"]
    for rel in ("large/large.bin", "mixed/rand40k_zero200k.bin", "chunks/rand_65537.bin"):
        data = (src / rel).read_bytes()
        fd = os.open(mnt / rel, os.O_RDONLY)
        try:
            for off, n in ((0, 1), (32767, 2), (32768, 32768), (65535, 70000), (len(data) - 1, 10),
                           (len(data), 10), (len(data) + 100, 10), (12345, 131072)):
                assert os.pread(fd, n, off) == data[off:off + n], (rel, off, n)
        finally:
            os.close(fd)


def test_statfs(images, pool):
    mnt = pool.get(images["lzx"])
    st = os.statvfs(mnt)
    assert st.f_bsize > 0
    assert st.f_namemax == 0 or st.f_namemax >= 255


@pytest.mark.parametrize("key", ["lzx"])
def test_read_only(key, images, pool):
    mnt = pool.get(images[key])
    with pytest.raises(OSError) as ei:
        open(mnt / "chunks" / "new_file", "wb")
    assert ei.value.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSYS)
    with pytest.raises(OSError):
        os.unlink(mnt / "chunks" / "rand_1.bin")
    with pytest.raises(OSError):
        with open(mnt / "chunks" / "rand_1.bin", "r+b") as f:
            f.write(b"x")
            f.flush()


def test_missing_path_enoent(images, pool):
    mnt = pool.get(images["lzx"])
    with pytest.raises(FileNotFoundError):
        os.stat(mnt / "no" / "such" / "file")
    with pytest.raises(FileNotFoundError):
        os.stat(mnt / "chunks" / "RAND_1.BIN")  # case-sensitive by default


# --------------------------------------------------------------------------- options


def test_case_insensitive(images, pool):
    mnt = pool.get(images["lzx"], "-o", "case_insensitive")
    src = images["_src"]
    assert (mnt / "CHUNKS" / "TEXT_32768.TXT").read_bytes() == (src / "chunks" / "text_32768.txt").read_bytes()
    assert os.path.isdir(mnt / "Deep" / "D00" / "d01")
    assert (mnt / "unicode" / "CAFÉ_PRECOMPOSED.TXT").exists()
    # listing keeps the stored case
    assert "chunks" in os.listdir(mnt) and "CHUNKS" not in os.listdir(mnt)
    assert "text_32768.txt" in os.listdir(mnt / "CHUNKS")


def test_unix_data_modes_and_owners(images, pool, applied):
    mnt = pool.get(images["unix_data"])
    fields = ("mode", "uid", "gid")
    got = snapshot(mnt / "modes", xattrs=False, stat_fields=fields)
    exp_all = applied("unix_data", 1, unix_data=True, stat_fields=fields)
    exp = {k[len("modes/"):]: v for k, v in exp_all.items() if k.startswith("modes/")}
    exp["."] = exp_all["modes"]
    for e in list(got.values()) + list(exp.values()):
        e["xattrs"] = {}
    assert_same_tree(got, exp, "mount", "apply --unix-data")
    assert got["f0600"]["mode"] == "0o600"
    if os.geteuid() == 0:
        assert (got["f0640"]["uid"], got["f0640"]["gid"]) == (1234, 5678)


@xfail_wimlib("shows mode 0777 for everything without UNIX data")
def test_default_modes_without_unix_data(images, pool):
    mnt = pool.get(images["lzx"])
    uid = os.getuid()
    for dirpath, dirnames, filenames in os.walk(mnt):
        for n in dirnames + filenames + ["."]:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                continue
            assert st.st_uid == uid, p
            if stat.S_ISDIR(st.st_mode):
                assert stat.S_IMODE(st.st_mode) == 0o755, (p, oct(st.st_mode))
            else:
                assert stat.S_IMODE(st.st_mode) in (0o644, 0o444), (p, oct(st.st_mode))


# --------------------------------------------------------------------------- NTFS-rich image


def test_ntfs_tree_and_streams_match_oracle(ntfs, pool):
    """Content, links, symlink/junction targets and named streams (user.*) vs the ntfs-3g oracle."""
    mnt = pool.get(ntfs.wim)
    got = snapshot(mnt, ignore_xattrs=("system.*",), raw_xattrs=True)
    exp = {k: dict(v, xattrs={x: h for x, h in v["xattrs"].items() if not x.startswith("system.")})
           for k, v in ntfs.expected.items()}
    assert_same_tree(got, exp, "mount", "ntfs-3g oracle")


@xfail_wimlib("exposes no system.ntfs_* xattrs")
@pytest.mark.parametrize("xattr", NTFS_PROBE_XATTRS)
def test_ntfs_metadata_xattr_matches_oracle(xattr, ntfs, pool):
    mnt = pool.get(ntfs.wim)
    got = snapshot(mnt, probe_xattrs=(xattr,), raw_xattrs=True)
    diffs = []
    for path, e in sorted(ntfs.expected.items()):
        want = e["xattrs"].get(xattr)
        have = got.get(path, {}).get("xattrs", {}).get(xattr)
        if want != have:
            diffs.append(f"{path!r}: mount={have} oracle={want}")
    assert not diffs, f"{xattr} differs for {len(diffs)} path(s):\n  " + "\n  ".join(diffs[:30])


@xfail_wimlib("shows mode 0777 for everything without UNIX data")
def test_ntfs_readonly_attribute_removes_write_bits(ntfs, pool):
    mnt = pool.get(ntfs.wim)
    assert stat.S_IMODE(os.stat(mnt / "readonly.txt").st_mode) == 0o444
    assert stat.S_IMODE(os.stat(mnt / "plain.txt").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(mnt / "hidden.txt").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(mnt / "hl").st_mode) == 0o755
    assert os.stat(mnt / "plain.txt").st_uid == os.getuid()


def test_ntfs_hard_links_and_dos_names_do_not_inflate_nlink(ntfs, pool):
    mnt = pool.get(ntfs.wim)
    t = [os.stat(mnt / p) for p in ("hl/triple_1", "hl/triple_2", "hl2/triple_3")]
    assert len({s.st_ino for s in t}) == 1 and {s.st_nlink for s in t} == {3}
    # a DOS name is not a hard link (ntfs-3g without posix_nlink would say 2)
    assert os.stat(mnt / "Long File Name.txt").st_nlink == 1


def test_ntfs_named_stream_values(ntfs, pool):
    mnt = pool.get(ntfs.wim)
    assert os.getxattr(mnt / "streams.txt", "user.stream1") == b"first named stream\n"
    assert os.getxattr(mnt / "stream_only.txt", "user.only") == b"data lives only in a named stream"
    assert os.getxattr(mnt / "dir_with_stream", "user.dirstream") == b"stream on a directory"
    assert len(os.getxattr(mnt / "big_with_stream.bin", "user.bigstream")) == 60_000
    assert (mnt / "stream_only.txt").read_bytes() == b""


# --------------------------------------------------------------------------- wimfs info --json


def _parse_wimlib_time(s: str) -> dt.datetime:
    return dt.datetime.strptime(s, "%a %b %d %H:%M:%S %Y UTC").replace(tzinfo=dt.timezone.utc)


def _parse_iso(s: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("key", ALL_IMAGES)
def test_info_json_matches_wimlib(key, wim_of):
    wim = wim_of(key)
    ref = wimlib_info(wim)
    got = wimfs_info_json(wim)
    for f, v in ref["header"].items():
        assert got["header"][f] == v, f"header.{f}: wimfs={got['header'][f]!r} wimlib={v!r}"
    assert len(got["images"]) == len(ref["images"]) == ref["header"]["image_count"]
    for gi, ri in zip(got["images"], ref["images"]):
        for f in ("index", "name", "description", "dir_count", "file_count", "total_bytes",
                  "hard_link_bytes", "flags"):
            assert gi[f] == ri[f], f"image {ri['index']} {f}: wimfs={gi[f]!r} wimlib={ri[f]!r}"
        for f in ("creation_time", "last_modification_time"):
            assert abs((_parse_iso(gi[f]) - _parse_wimlib_time(ri[f])).total_seconds()) < 1, f
        assert (gi["windows"] is not None) == ri["windows"], "windows info presence"


def test_info_json_index_selects_one_image(wim_of):
    got = wimfs_info_json(wim_of("multi"), "--index", "2")
    assert [im["index"] for im in got["images"]] == [2]
    assert got["images"][0]["name"] == "second"


# --------------------------------------------------------------------------- CLI behaviour (wimfs only)

wimfs_only = pytest.mark.skipif(WIMLIB_MOUNT, reason="tests wimfs's own CLI, not wimlib-imagex mount")


@wimfs_only
def test_foreground_exits_zero_on_unmount(images, tmp_path):
    from tests.helpers import mounted

    mp = tmp_path / "m"
    with mounted(images["xpress"], mp) as proc:
        r = subprocess.run(["fusermount3", "-u", str(mp)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert proc.wait(timeout=15) == 0


@wimfs_only
def test_daemon_mode_and_unmount_command(images, tmp_path):
    from tests.helpers import run_wimfs

    mp = tmp_path / "d"
    mp.mkdir()
    try:
        r = run_wimfs("mount", images["lzx"], mp, timeout=60)
        assert r.returncode == 0, r.stderr
        assert os.path.ismount(mp), "daemon mode must return only when the mount is ready"
        assert (mp / "chunks" / "rand_1.bin").stat().st_size == 1
        r = run_wimfs("unmount", mp, timeout=60)
        assert r.returncode == 0, r.stderr
        assert not os.path.ismount(mp)
    finally:
        if os.path.ismount(mp):
            subprocess.run(["fusermount3", "-uz", str(mp)], capture_output=True)


def _one_line_error(r):
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, f"want one error line, got:\n{r.stderr}"


@wimfs_only
@pytest.mark.parametrize("case,code", [("bad_wim", 3), ("no_index", 4), ("no_name", 4), ("missing_file", None)])
@pytest.mark.parametrize("mode", ["--foreground", "daemon"])
def test_mount_errors(case, code, mode, images, tmp_path):
    """The same one line and exit status whether the command serves the mount itself or
    its daemon finds the error and reports it through the ready pipe."""
    from tests.helpers import run_wimfs

    mp = tmp_path / "e"
    mp.mkdir()
    bogus = tmp_path / "bogus.wim"
    bogus.write_bytes(b"MSWIM\0\0\0" + bytes(200))
    args = {"bad_wim": [bogus], "no_index": [images["multi"], "--index", "9"],
            "no_name": [images["multi"], "--name", "nope"],
            "missing_file": [tmp_path / "nope.wim"]}[case]
    r = run_wimfs("mount", *([mode] if mode != "daemon" else []), args[0], mp, *args[1:],
                  timeout=30)
    try:
        assert r.returncode != 0 and not os.path.ismount(mp)
        if code is not None:
            assert r.returncode == code, f"exit {r.returncode}, want {code}: {r.stderr}"
        _one_line_error(r)
    finally:
        if os.path.ismount(mp):
            subprocess.run(["fusermount3", "-uz", str(mp)], capture_output=True)
