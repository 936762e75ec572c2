"""The compact form of a lazily loaded image (wimfs.image_tree) against the object model
of the same image loaded whole: every entry, every field, the same inode numbers; the
read-only adapter serving it (WimOperations over a lazy image) against the adapter over
the loaded image; and what a walked compact tree keeps in memory.

The object model is itself checked against wimlib elsewhere (tests/mount/test_corpus.py,
test_mount_oracle.py); here the oracle of the compact form is the object model, built
from the same metadata resource by the other path, plus `wimlib-imagex dir` for the names
each directory lists."""

from __future__ import annotations

import gc
import os
import subprocess
import tracemalloc

import pyfuse3
import pytest

from tests.helpers import corpus_dir, make_ntfs_wim, require_tool, wimlib_capture
from wimfs.errors import WimfsError
from wimfs.fuse.ops import WimOperations
from wimfs.image import Dentry, Inode
from wimfs import image_tree
from wimfs.image_tree import LazyTree
from wimfs.wim import Wim

ROOT = pyfuse3.ROOT_INODE
CTX = None


def _stream(s) -> tuple | None:
    return None if s is None else (s.name, s.hash, s.size, s.blob.hash if s.blob else None)


def _fields(ino: Inode) -> dict:
    return {
        "ino": ino.ino, "attributes": ino.attributes, "security_id": ino.security_id,
        "times": (ino.creation_time, ino.last_access_time, ino.last_write_time),
        "reparse": (ino.reparse_tag, ino.rp_reserved, ino.rp_flags),
        "tagged_items": ino.tagged_items, "nlink": ino.nlink, "size": ino.size,
        "unix": ino.unix, "missing_blobs": ino.missing_blobs,
        "data": _stream(ino.data), "reparse_data": _stream(ino.reparse),
        "named": sorted((n, _stream(s)) for n, s in ino.named_streams.items()),
        # (a view has the one dentry it was made from; objects have every name's)
        "short_name": ino.dentries[0].short_name if ino.nlink == 1 or ino.is_directory
        else None,
    }


def _walk_both(path: str, index: int = 1) -> int:
    """Compare image `index` of `path` entry by entry; return the entries compared."""
    with Wim(path) as lazy_wim, Wim(path) as whole_wim:
        tree: LazyTree = lazy_wim.image(index, lazy=True).tree
        whole = whole_wim.image(index)
        seen = plains = 0
        stack: list[tuple[Dentry, int]] = [(whole.root, tree.ino_start)]
        while stack:
            d, ino = stack.pop()
            if d.children is not None:
                tree.entries(ino)   # (visited first: an invalid entry counts until then)
            tree._views.clear()
            plain = tree.plain(ino)
            view = tree.inode(ino)
            if plain is not None:
                assert plain == (view.attributes, view.size, view.nlink,
                                 view.last_access_time, view.last_write_time), d.path
                assert view.unix is None and not view.named_streams and not view.tagged_items
                plains += 1
            assert _fields(view) == _fields(d.inode), d.path
            assert view.dentries[0].name == (d.inode.dentries[0].name if d.parent else "")
            if view.nlink == 1 or view.is_directory:    # (a hard link's: one of its names)
                assert tree.path(ino) == d.path
            seen += 1
            if d.children is None:
                continue
            names = [tree.name_at(o << 3) for o in tree.entries(ino)]
            assert names == list(d.children), d.path       # the same entries, disk order
            for name, child in d.children.items():
                off = tree.lookup(ino, name)
                assert off is not None and tree.name_at(off) == name
                number = tree.ino_at(off)
                assert number == child.inode.ino, child.path
                tree._views.clear()
                assert tree.listed(off) == (number, tree.plain(number))   # (readdir's)
                if child.inode.is_directory:
                    assert tree.parent(number) == ino
                stack.append((child, number))
            assert tree.lookup(ino, "no such name") is None
        assert seen == sum(1 for _ in whole.walk())
        assert tree.invalid == whole.invalid_names
    assert plains or seen < 3       # (wimlib captures plain entries, without UNIX data)
    return seen


@pytest.fixture(scope="module")
def ntfs_wim(tmp_path_factory):
    return make_ntfs_wim(tmp_path_factory.mktemp("compact_ntfs")).wim


def test_compact_form_equals_the_object_model_generated_tree(ov_base):
    assert _walk_both(str(ov_base)) > 100


def test_compact_form_equals_the_object_model_ntfs(ntfs_wim):
    """Short names, named streams, reparse points, security descriptors, hard links."""
    assert _walk_both(str(ntfs_wim)) > 10


def _corpus_images() -> list[tuple[str, int]]:
    root = corpus_dir()
    out = []
    for p in sorted((root / "wim").rglob("*.wim")):
        try:
            with Wim(str(p)) as w:
                out += [(str(p), i) for i in range(1, len(w.blob_table.metadata) + 1)]
        except WimfsError:
            continue        # (the hostile ones that do not open: test_corpus covers them)
    return out


def test_compact_form_equals_the_object_model_corpus():
    compared = 0
    for path, index in _corpus_images():
        try:
            with Wim(path) as w:
                w.image(index)
        except WimfsError:
            continue        # corrupt trees: the late-corruption tests cover them
        compared += _walk_both(path, index)
    assert compared > 100


def test_entries_are_what_wimlib_lists(ov_base):
    require_tool("wimlib-imagex")
    out = subprocess.run(["wimlib-imagex", "dir", str(ov_base), "1"], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    got = []
    with Wim(str(ov_base)) as w:
        tree = w.image(1, lazy=True).tree
        stack = [(tree.ino_start, "")]
        while stack:
            ino, path = stack.pop()
            got.append(path or "/")
            for o in tree.entries(ino):
                child = tree.ino_at(o << 3)
                stack.append((child, f"{path}/{tree.name_at(o << 3)}"))
    assert sorted(got) == sorted(out)


def test_hard_links_one_number_across_visited_and_unvisited_directories(ov_base, ov_src):
    """The first lookup of a hard link, its other names' directories unvisited, already
    has the group's number and link count."""
    with Wim(str(ov_base)) as w:
        tree = w.image(1, lazy=True).tree
        hl = tree.ino_at(tree.lookup(tree.ino_start, "hardlinks"))
        a = tree.ino_at(tree.lookup(hl, "a"))
        first = tree.ino_at(tree.lookup(a, "triple_1"))
        visited = set(tree.dirs)
        st = os.stat(ov_src / "hardlinks/a/triple_1")
        assert tree.inode(first).nlink == st.st_nlink == 3
        names = [p for p in _tree_files(ov_src / "hardlinks")
                 if os.stat(ov_src / "hardlinks" / p).st_ino == st.st_ino]
        assert len(names) == 3
        numbers = set()
        for rel in names:
            ino = hl
            for part in rel.split("/"):
                ino = tree.ino_at(tree.lookup(ino, part))
            numbers.add(ino)
        assert numbers == {first}
        assert set(tree.dirs) >= visited


def _tree_files(top) -> list[str]:
    return [os.path.relpath(os.path.join(dp, f), top) for dp, _d, fs in os.walk(top)
            for f in fs]


def test_unknown_numbers_are_not_entries(ov_base):
    with Wim(str(ov_base)) as w:
        tree = w.image(1, lazy=True).tree
        for bad in (0, 2, 999_999, tree.ino_start + 1):
            with pytest.raises(KeyError):
                tree.inode(bad)
        sub = tree.ino_at(tree.lookup(tree.ino_start, "hardlinks"))
        tree.inode(sub)                 # handed out by a lookup: known
        with pytest.raises(KeyError):
            tree.inode(sub + 1)         # the middle of that entry


def test_a_walked_compact_tree_keeps_almost_nothing_per_entry(tmp_path, monkeypatch):
    monkeypatch.setattr(image_tree, "VIEWS_KEPT", 16)   # (the bounded cache of views aside)
    src = tmp_path / "src"
    for d in range(50):
        (src / f"d{d:02d}").mkdir(parents=True)
        for f in range(100):
            (src / f"d{d:02d}" / f"file{f:03d}.txt").write_bytes(b"x" * (d * 100 + f))
    w_path = wimlib_capture(src, tmp_path / "5k.wim")
    with Wim(str(w_path)) as w:
        tree = w.image(1, lazy=True).tree
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            n = 0
            for o in tree.entries(tree.ino_start):
                d = tree.ino_at(o << 3)
                for c in tree.entries(d):
                    tree.inode(tree.ino_at(c << 3))
                    tree.lookup(d, tree.name_at(c << 3))
                    n += 1
            gc.collect()
            kept = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    assert n == 5000
    assert kept / n < 64, f"{kept / n:.0f} bytes kept per entry"     # objects: ~1,200


# -- the read-only adapter over the compact form -------------------------------------------

_ATTR_KEYS = ("st_ino", "st_mode", "st_nlink", "st_size", "st_uid", "st_gid", "st_rdev",
              "st_blocks", "st_atime_ns", "st_mtime_ns", "st_ctime_ns", "entry_timeout",
              "attr_timeout")


async def _attrs(ops: WimOperations, ino: int) -> tuple:
    a = await ops.getattr(ino, CTX)
    return (a.st_ino, a.st_mode, a.st_nlink, a.st_size, a.st_uid, a.st_gid, a.st_atime_ns,
            a.st_mtime_ns, a.st_ctime_ns)


async def _compare_adapters(path: str, case_insensitive: bool = False) -> int:
    with Wim(path) as lw, Wim(path) as ww:
        lazy = WimOperations(lw, [lw.image(1, lazy=True)], case_insensitive=case_insensitive)
        whole = WimOperations(ww, [ww.image(1)], case_insensitive=case_insensitive)
        assert lazy._single is not None and whole._single is None
        n = plains = 0
        stack = [(ROOT, ww.image(1).root)]
        while stack:
            ino, d = stack.pop()
            assert await _attrs(lazy, ino) == await _attrs(whole, ino), d.path
            lazy._single._views.clear()
            plain = lazy._single.plain(ino)
            if plain is not None:       # what readdir answers for it
                plains += 1
                attributes, size, nlink, atime, mtime = plain
                a = lazy._fill(ino, lazy._plain_mode(attributes), None, size, nlink,
                               attributes, atime, mtime, None)
                b = await whole.getattr(ino, CTX)
                assert [getattr(a, k) for k in _ATTR_KEYS] == \
                    [getattr(b, k) for k in _ATTR_KEYS], d.path
            for x in (b"user.none", b"system.ntfs_attrib", b"system.ntfs_dos_name"):
                assert await _xattr(lazy, ino, x) == await _xattr(whole, ino, x)
            assert await lazy.listxattr(ino, CTX) == await whole.listxattr(ino, CTX)
            n += 1
            for name, child in (d.children or {}).items():
                b = name.encode("utf-8", "surrogatepass")
                a1, a2 = await lazy.lookup(ino, b, CTX), await whole.lookup(ino, b, CTX)
                assert a1.st_ino == a2.st_ino == child.inode.ino
                if case_insensitive:
                    up = await lazy.lookup(ino, name.upper().encode("utf-8", "surrogatepass"),
                                           CTX)
                    assert up.st_ino == (await whole.lookup(
                        ino, name.upper().encode("utf-8", "surrogatepass"), CTX)).st_ino
                stack.append((a1.st_ino, child))
            if d.children is not None:
                dot = await lazy.lookup(ino, b"..", CTX)
                assert dot.st_ino == (await whole.lookup(ino, b"..", CTX)).st_ino
        assert (await lazy.statfs(CTX)).f_files == n
        assert plains > n // 2
        return n


async def _xattr(ops, ino, name):
    try:
        return await ops.getxattr(ino, name, CTX)
    except pyfuse3.FUSEError as exc:
        return exc.errno


async def test_the_adapter_answers_the_same_from_the_compact_form(sd_wim):
    assert await _compare_adapters(str(sd_wim)) > 100


async def test_the_adapter_answers_the_same_case_insensitively(ov_base):
    assert await _compare_adapters(str(ov_base), case_insensitive=True) > 100


async def test_the_adapter_reads_and_links_from_the_compact_form(ov_base, ov_src):
    """Every file read through the compact form, each opened on a view made for it (and
    dropped before the next: the reader's caches know a resource by its descriptor)."""
    with Wim(str(ov_base)) as w:
        ops = WimOperations(w, [w.image(1, lazy=True)])
        sub = (await ops.lookup(ROOT, b"symlinks", CTX)).st_ino
        link = await ops.lookup(sub, b"rel_link", CTX)
        assert await ops.readlink(link.st_ino, CTX) == os.fsencode(
            os.readlink(ov_src / "symlinks/rel_link"))
        n = 0
        for rel in sorted(_tree_files(ov_src)):
            if os.path.islink(ov_src / rel):
                continue
            ino = ROOT
            for part in rel.split("/"):
                ino = (await ops.lookup(ino, os.fsencode(part), CTX)).st_ino
            ops._single._views.clear()
            gc.collect()
            fi = await ops.open(ino, os.O_RDONLY, CTX)
            want = (ov_src / rel).read_bytes()
            got = b"".join([await ops.read(fi.fh, off, 1 << 16)
                            for off in range(0, len(want) + 1, 1 << 16)])
            assert got == want, rel
            await ops.release(fi.fh)
            n += 1
        assert n > 40
        assert not ops.lookup_counts        # nothing counted: compact inodes are never freed


async def test_all_images_adapter_serves_each_image_from_its_compact_tree(tmp_path, ov_src):
    """`--index all`: the folder of an image not opened is a placeholder (asked again after
    1 s); entering it opens the image as a compact tree numbered from N << 32."""
    w_path = wimlib_capture(ov_src / "hardlinks", tmp_path / "two.wim")
    wimlib_capture(ov_src / "symlinks", w_path, append=True)
    with Wim(str(w_path)) as w:
        ops = WimOperations(w, [], all_images=True, indexes=[1, 2])
        folder = await ops.lookup(ROOT, b"2", CTX)
        assert folder.st_ino == (2 << 32) + 1 and folder.attr_timeout == 1.0
        assert 2 not in ops.images
        target = await ops.lookup(folder.st_ino, b"target.txt", CTX)
        assert target.st_ino >> 32 == 2 and ops._tree_of(target.st_ino) is not None
        assert target.st_size == (ov_src / "symlinks/target.txt").stat().st_size
        root = await ops.getattr(folder.st_ino, CTX)
        assert root.attr_timeout > 1.0            # the image's root now, not the placeholder
        assert (await ops.lookup(folder.st_ino, b"..", CTX)).st_ino == ROOT
        fi = await ops.open(target.st_ino, os.O_RDONLY, CTX)
        assert await ops.read(fi.fh, 0, 100) == (ov_src / "symlinks/target.txt").read_bytes()
        await ops.release(fi.fh)
        one = await ops.lookup(ROOT, b"1", CTX)
        a = await ops.lookup(one.st_ino, b"a", CTX)
        assert a.st_ino >> 32 == 1
        assert (await ops.statfs(CTX)).f_files >= 3


def test_a_first_lookup_by_scan_answers_as_the_sorted_lookups_and_the_objects(tmp_path):
    """A directory's first lookup scans its entries (no sorting); later ones search the
    sorted names. Both give, for exact and case-insensitive names, what the object model's
    `Dentry.lookup` gives (its own dictionaries: exact name, else the first entry in
    on-disk order with the same upper-cased name)."""
    require_tool("wimlib-imagex")
    src = tmp_path / "src"
    names = ["abc", "ABC", "aBc", "Abd", "abcd", "ÄBC", "äbc", "x" * 40, "ß", "SS", "ǅ"]
    (src / "dir").mkdir(parents=True)
    for n in names:
        (src / "dir" / n).write_text(n)
    w = wimlib_capture(src, tmp_path / "n.wim")
    queries = names + ["ABc", "abd", "ABCD", "äBC", "X" * 40, "missing", "ss", "ǆ", "Ǆ"]
    with Wim(str(w)) as wim:
        objects = wim.image(1)          # parsed whole: Dentry objects
        want = {}
        for q in queries:
            for ci in (False, True):
                d = objects.lookup_path(f"dir/{q}", case_insensitive=ci)
                want[q, ci] = None if d is None else d.name
    for q in queries:
        for ci in (False, True):
            with Wim(str(w)) as wim:        # a fresh tree: the first lookup of `dir` scans
                tree = wim.image(1, lazy=True).tree
                dir_ino = tree.ino_at(tree.lookup(tree.ino_start, "dir"))
                for how in ("scan", "sorted"):
                    off = tree.lookup(dir_ino, q, ci)
                    got = None if off is None else tree.name_at(off)
                    assert got == want[q, ci], (q, ci, how)
