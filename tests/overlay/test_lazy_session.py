"""Read-write sessions on lazily parsed trees (wimfs.image_tree `make_writable`): a
session parses the directories it uses, a hard-link group whole, and its commit copies
every directory nobody parsed through from the old metadata resource.

Oracles: `wimlib-imagex apply` of the committed WIM against the same edits made on a
copy of wimlib's own apply of the original; `wimlib-imagex dir --detailed` (security
descriptors, named streams, short names, link counts) before and after; `wimlib-imagex
optimize`'s recount of the blob reference counts; and a session that parsed its whole
tree first (the object path every commit took before) writing the same metadata."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import (assert_same_tree, make_ntfs_wim, require_tool, snapshot,
                           wimlib_apply, wimlib_capture)
from tests.helpers.overlay import write
from tests.helpers.trees import layered_tree
from tests.helpers.wimlib import wimlib_dir_detailed, wimlib_recounted_refs, wimlib_xml
from wimfs.errors import WimCorruptError
from wimfs.image import Unparsed
from wimfs.overlay import Overlay
from wimfs.wim import Wim


@pytest.fixture(scope="module")
def layered(tmp_path_factory) -> tuple[Path, Path]:
    """(the layered tree captured by wimlib, wimlib's apply of it)."""
    require_tool("wimlib-imagex")
    d = tmp_path_factory.mktemp("lazy_session")
    layered_tree(d / "src")
    w = wimlib_capture(d / "src", d / "layered.wim")
    wimlib_apply(w, 1, d / "applied")
    return w, d / "applied"


@pytest.fixture(scope="module")
def ntfs_wim(tmp_path_factory) -> Path:
    """A WIM captured by wimlib from an NTFS volume (security descriptors, named streams,
    short names, reparse points, hard links)."""
    return Path(make_ntfs_wim(tmp_path_factory.mktemp("lazy_ntfs")).wim)


@pytest.fixture
def work(tmp_path, layered) -> Path:
    p = tmp_path / "work.wim"
    shutil.copyfile(layered[0], p)
    return p


def _expected(tmp_path: Path, applied: Path) -> Path:
    exp = tmp_path / "expect"
    subprocess.run(["cp", "-a", str(applied), str(exp)], check=True)   # keeps hard links
    return exp


def _check_against(wim: Path, expect: Path, tmp_path: Path) -> None:
    got = tmp_path / "got"
    wimlib_apply(wim, 1, got)
    assert_same_tree(snapshot(got, xattrs=False), snapshot(expect, xattrs=False),
                     "commit applied by wimlib", "expected")
    assert subprocess.run(["wimlib-imagex", "verify", str(wim)],
                          capture_output=True).returncode == 0
    have, recounted = wimlib_recounted_refs(wim, tmp_path)
    assert have == recounted


def _parsed(caplog) -> list[str]:
    return [r.getMessage().split(": parsed directory ", 1)[1].rsplit(" (", 1)[0]
            for r in caplog.records if ": parsed directory " in r.getMessage()]


def _session(wim: Path, tmp_path: Path, name: str = "st") -> Overlay:
    return Overlay(str(wim), 1, str(tmp_path / name))


def _copy_session(src: Path, tmp: Path, name: str, full: bool) -> tuple[Path, Overlay]:
    """(a copy of `src` named `name`.wim, a session on it); with `full`, the session has
    parsed every directory first (the path every commit took before lazy sessions)."""
    w = tmp / f"{name}.wim"
    shutil.copyfile(src, w)
    ov = _session(w, tmp, f"st-{name}")
    if full:
        for _ in ov.image.walk():
            pass
    return w, ov


def test_a_session_parses_only_the_directories_it_edits(work, layered, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="wimfs.image_tree")
    ov = _session(work, tmp_path)
    try:
        assert _parsed(caplog) == []                    # nothing at open
        write(ov, ov.resolve("a/b/c/d/e/deep.txt").inode, b"DEEP")
        assert _parsed(caplog) == ["/", "/a", "/a/b", "/a/b/c", "/a/b/c/d", "/a/b/c/d/e"]
        assert [e.path for e in ov.diff()] == ["/a/b/c/d/e/deep.txt"]
        ov.commit(final=True)
    finally:
        ov.close()
    exp = _expected(tmp_path, layered[1])
    (exp / "a/b/c/d/e/deep.txt").write_bytes(b"DEEP\n")     # (written over "deep\n")
    _check_against(work, exp, tmp_path)


def test_a_hard_link_group_is_parsed_whole_only_once_its_inode_changed(
        work, layered, tmp_path, caplog):
    """Meeting one name of a group parses nothing more; the inode counts the names
    still on disk. Changing it makes the commit parse the rest of the group, so that
    every name is written from the changed inode."""
    caplog.set_level(logging.DEBUG, logger="wimfs.image_tree")
    ov = _session(work, tmp_path)
    try:
        one = ov.resolve("links/x/one.txt").inode
        assert not {"/links/y", "/links/z", "/wide"} & set(_parsed(caplog))
        assert [d.path for d in one.dentries] == ["/links/x/one.txt"]
        assert one.nlink == 3
        write(ov, one, b"LINKED, CHANGED\n")
        ov.unlink(ov.resolve("links/y"), "two.txt")
        assert one.nlink == 2
        assert "/links/z" not in _parsed(caplog)
        links = ov.image.root.children["links"].children
        assert isinstance(links["z"]._children, Unparsed)
        ov.commit(final=True)
        assert isinstance(links["z"]._children, dict)   # the rest of the changed group
    finally:
        ov.close()
    exp = _expected(tmp_path, layered[1])
    (exp / "links/x/one.txt").write_bytes(b"LINKED, CHANGED\n")
    os.unlink(exp / "links/y/two.txt")
    _check_against(work, exp, tmp_path)
    info = wimlib_dir_detailed(work)
    assert info["links/z/three.txt"]["link_count"] == 2
    assert info["links/z/three.txt"]["streams"][""] == len(b"LINKED, CHANGED\n")


def test_a_changed_group_whose_parsed_names_are_gone_keeps_its_data(work, layered, tmp_path):
    """Written, then its only parsed name unlinked: the unlink parses the group's other
    names first (an inode with names keeps one in objects: journal paths, lookups by
    inode), the inode is not freed when forgotten (what the FUSE layer does once no one
    holds it), and the commit writes the other names with the new data."""
    ov = _session(work, tmp_path)
    try:
        one = ov.resolve("links/x/one.txt").inode
        write(ov, one, b"WRITTEN, THEN UNLINKED\n")
        ov.unlink(ov.resolve("links/x"), "one.txt")
        assert one.nlink == 2
        assert sorted(d.path for d in one.dentries) == ["/links/y/two.txt",
                                                        "/links/z/three.txt"]
        ov.forget_inode(one)
        ov.commit(final=True)
    finally:
        ov.close()
    exp = _expected(tmp_path, layered[1])
    os.unlink(exp / "links/x/one.txt")
    for p in ("links/y/two.txt", "links/z/three.txt"):
        (exp / p).write_bytes(b"WRITTEN, THEN UNLINKED\n")
    _check_against(work, exp, tmp_path)
    info = wimlib_dir_detailed(work)
    assert info["links/y/two.txt"]["link_count"] == 2


def test_an_unchanged_group_met_in_part_is_copied_through(work, layered, tmp_path, caplog):
    """One name of a group parsed (its directory edited), the others never: the commit
    copies them as stored, and the group stays one inode with its link count."""
    caplog.set_level(logging.DEBUG, logger="wimfs.image_tree")
    before = wimlib_dir_detailed(work)
    ov = _session(work, tmp_path)
    try:
        one = ov.resolve("links/x/one.txt").inode
        assert one.nlink == 3
        new = ov.create(ov.resolve("links/x"), "new.txt", 0o644, 0, 0)
        write(ov, new, b"beside a link\n")
        ov.commit(final=True)
        links = ov.image.root.children["links"].children
        # (the commit's copy-through visits them; none was parsed into objects)
        assert all(isinstance(links[n]._children, Unparsed) for n in ("y", "z"))
    finally:
        ov.close()
    exp = _expected(tmp_path, layered[1])
    (exp / "links/x/new.txt").write_bytes(b"beside a link\n")
    _check_against(work, exp, tmp_path)
    after = wimlib_dir_detailed(work)
    for p in ("links/x/one.txt", "links/y/two.txt", "links/z/three.txt"):
        assert after[p]["link_count"] == 3
        assert after[p]["streams"] == before[p]["streams"]


def test_rename_out_of_an_unvisited_directory_then_commit_twice(work, layered, tmp_path):
    ov = _session(work, tmp_path)
    try:
        ov.rename(ov.resolve("move/inner"), "m.txt", ov.image.root, "m.txt")
        ov.rename(ov.resolve("move/inner"), "deeper", ov.image.root, "deeper2")
        ov.commit()
        # after the commit: directories first parsed now, from the old metadata
        write(ov, ov.resolve("wide/s2/f").inode, b"two, changed\n")
        ov.rename(ov.resolve("wide"), "s3", ov.resolve("a/b"), "s3")
        ov.commit(final=True)
    finally:
        ov.close()
    exp = _expected(tmp_path, layered[1])
    os.rename(exp / "move/inner/m.txt", exp / "m.txt")
    os.rename(exp / "move/inner/deeper", exp / "deeper2")
    (exp / "wide/s2/f").write_bytes(b"two, changed\n")
    os.rename(exp / "wide/s3", exp / "a/b/s3")
    _check_against(work, exp, tmp_path)


FIXED_TIME = 132_000_000_000_000_000      # a FILETIME (2019)


def _metadata(wim: Path) -> bytes:
    with Wim(str(wim)) as w:
        return bytes(w.reader.read_all(w.blob_table.metadata[0]))


def _image_counts(wim: Path) -> list[str]:
    xml = wimlib_xml(wim).split("<IMAGE", 1)[1]
    return [xml.split(f"<{t}>", 1)[1].split("<", 1)[0]
            for t in ("DIRCOUNT", "FILECOUNT", "TOTALBYTES", "HARDLINKBYTES")]


@pytest.mark.parametrize("kind", ["generated", "ntfs"])
def test_a_lazy_commit_writes_what_a_fully_parsed_one_writes(kind, tmp_path, layered, request):
    """The same edits, once on a session that parsed only what they use, once on one that
    parsed every directory first: the same metadata resource, byte for byte, and the same
    image counts in the XML (counted from raw entries for what was not parsed)."""
    if kind == "ntfs":
        src = request.getfixturevalue("ntfs_wim")      # SDs, streams, short names
    else:
        src = layered[0]
    results = []
    for full in (False, True):
        w, ov = _copy_session(src, tmp_path, str(full), full)
        try:
            root = ov.image.root
            ino = ov.create(root, "new.txt", 0o100644, 0, 0)
            write(ov, ino, b"new file\n")
            for i in (ino, root.inode):         # the same times in both runs
                ov.set_times(i, FIXED_TIME, FIXED_TIME, FIXED_TIME)
            ov.commit(final=True)
        finally:
            ov.close()
        results.append((_metadata(w), _image_counts(w), wimlib_dir_detailed(w)))
    (lazy_md, lazy_counts, lazy_dir), (full_md, full_counts, full_dir) = results
    assert lazy_counts == full_counts
    assert lazy_dir == full_dir
    assert lazy_md == full_md


def test_commit_copies_unvisited_directories_through(ntfs_wim, tmp_path):
    """Security descriptors, named streams, short names, reparse points and link counts
    of every directory nobody parsed come out of the commit as they went in."""
    w = tmp_path / "n.wim"
    shutil.copyfile(ntfs_wim, w)
    before = wimlib_dir_detailed(w)
    ov = _session(w, tmp_path)
    try:
        ino = ov.create(ov.image.root, "added.txt", 0o100644, 0, 0)
        write(ov, ino, b"added\n")
        parsed = ov.image.tree.dirs
        assert len(parsed) == 1                         # the root only
        ov.commit(final=True)
    finally:
        ov.close()
    after = wimlib_dir_detailed(w)
    assert after.pop("added.txt")["streams"][""] == len(b"added\n")
    after.pop(".")
    before.pop(".")
    assert after == before
    have, recounted = wimlib_recounted_refs(w, tmp_path)
    assert have == recounted


def test_corrupt_directory_found_late_fails_only_what_needs_it(tmp_path):
    """A cyclic directory met after the session opened: using it is an error naming it;
    a commit, which must copy it, fails with one clear error and leaves the WIM as it
    was."""
    from tests.mount.test_lazy_tree import _patch_subdir_offset

    require_tool("wimlib-imagex")
    layered_tree(tmp_path / "src")
    w = wimlib_capture(tmp_path / "src", tmp_path / "bad.wim", compress="none")
    _patch_subdir_offset(w, "a/b/c", lambda buf, root_list: root_list)
    before = w.read_bytes()
    ov = _session(w, tmp_path)
    try:
        write(ov, ov.resolve("wide/w01").inode, b"fine")
        with pytest.raises(WimCorruptError, match="/a/b/c"):
            ov.resolve("a/b/c/d")
        with pytest.raises(WimCorruptError):
            ov.commit(final=True)
    finally:
        ov.close()
    assert w.read_bytes() == before


def test_metadata_chunks_an_edit_left_alone_are_reused_as_stored(tmp_path):
    """Rewriting one file's content changes one hash in the metadata resource: the
    commit takes every other chunk of it as stored (compared byte for byte with the old
    chunk first), and wimlib reads the result."""
    require_tool("wimlib-imagex")
    src = tmp_path / "src"
    (src / "many").mkdir(parents=True)
    for i in range(3000):
        (src / "many" / f"file-{i:05d}.txt").write_text(f"{i}\n")
    w = wimlib_capture(src, tmp_path / "m.wim")
    for round_ in range(2):             # the first commit rewrites wimlib's layout
        ov = _session(w, tmp_path, f"st{round_}")
        try:
            write(ov, ov.resolve("many/file-01500.txt").inode, f"R{round_}".encode())
            res = ov.commit(final=True)
        finally:
            ov.close()
    with Wim(str(w)) as wim:
        md = wim.blob_table.metadata[0]
        chunks = -(-md.size // wim.header.chunk_size)
    assert chunks >= 8
    assert res.reused_chunks >= chunks - 1
    assert subprocess.run(["wimlib-imagex", "verify", str(w)],
                          capture_output=True).returncode == 0
    info = wimlib_dir_detailed(w)
    assert len([p for p in info if p.startswith("many/")]) == 3000
    got = tmp_path / "got"
    wimlib_apply(w, 1, got)
    assert (got / "many/file-01500.txt").read_bytes() == b"R100\n"    # "1500\n", twice
    assert (got / "many/file-01499.txt").read_bytes() == b"1499\n"


# -- a random session, lazy against fully parsed --------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from wimfs.overlay.edits import Kind  # noqa: E402
from wimfs.overlay.errors import FsError  # noqa: E402

OPS = ("write", "create", "mkdir", "unlink", "rename", "link", "rmdir")


def _paths(ov: Overlay) -> tuple[list[str], list[str]]:
    """(files, directories) of a fully parsed session, sorted (the root as "")."""
    files, dirs = [], []
    for d in ov.image.walk():
        (dirs if d.inode.is_directory else files).append(d.path.lstrip("/"))
    return sorted(files), sorted(dirs)


def _split(path: str) -> tuple[str, str]:
    parent, _, name = path.rpartition("/")
    return parent, name


def _apply(ov: Overlay, op: tuple) -> None:
    kind, a, b, c = op
    node = (lambda p: ov.resolve(p) if p else ov.image.root)
    if kind == "write":
        write(ov, node(a).inode, b)
    elif kind in ("create", "mkdir"):
        ov.create(node(a), b, 0o40755 if kind == "mkdir" else 0o100644, 0, 0,
                  Kind.DIR if kind == "mkdir" else Kind.FILE)
    elif kind in ("unlink", "rmdir"):
        parent, name = _split(a)
        (ov.unlink if kind == "unlink" else ov.rmdir)(node(parent), name)
    elif kind == "rename":
        parent, name = _split(a)
        ov.rename(node(parent), name, node(b), c)
    elif kind == "link":
        ov.link(node(a).inode, node(b), c)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_edits_commit_the_same_lazily_as_fully_parsed(data, layered, tmp_path_factory,
                                                             monkeypatch):
    """Random creates, writes, links, renames and removals, applied by path to a session
    that parses only what they use and to one that parsed its whole tree first: both list
    the same changes, and the committed metadata resources and blob tables are the same
    bytes, with the same XML counts (every clock the session reads fixed). Hard-link
    groups met in part, changed or not, are in the layered tree (links/x, y, z)."""
    import wimfs.builder
    import wimfs.overlay.edits
    import wimfs.overlay.session
    import wimfs.overlay.staging
    for mod in (wimfs.overlay.edits, wimfs.overlay.session, wimfs.builder):
        monkeypatch.setattr(mod, "filetime_now", lambda: FIXED_TIME)
    monkeypatch.setattr(wimfs.overlay.staging.Staging, "mtime", lambda self, s: FIXED_TIME)
    tmp = tmp_path_factory.mktemp("random")
    (lazy_wim, lazy), (full_wim, full) = (_copy_session(layered[0], tmp, name, name == "full")
                                          for name in ("lazy", "full"))
    wims = [lazy_wim, full_wim]
    try:
        for _ in range(data.draw(st.integers(1, 8), label="steps")):
            files, dirs = _paths(full)
            kind = data.draw(st.sampled_from(OPS), label="op")
            name = data.draw(st.sampled_from(["n1", "n2", "n3", "other.txt"]), label="name")
            pick_dir = st.sampled_from(dirs)
            if kind in ("write", "unlink") and files:
                op = (kind, data.draw(st.sampled_from(files)),
                      data.draw(st.binary(min_size=1, max_size=40)), None)
            elif kind == "link" and files:
                op = (kind, data.draw(st.sampled_from(files)), data.draw(pick_dir), name)
            elif kind == "rename":
                op = (kind, data.draw(st.sampled_from(files + dirs[1:])), data.draw(pick_dir),
                      name)
            elif kind == "rmdir" and len(dirs) > 1:
                op = (kind, data.draw(st.sampled_from(dirs[1:])), None, None)
            else:
                op = ("create" if kind != "mkdir" else "mkdir", data.draw(pick_dir), name, None)
            try:
                _apply(full, op)
            except FsError as exc:
                with pytest.raises(FsError) as again:
                    _apply(lazy, op)
                assert again.value.errno == exc.errno, op
                continue
            _apply(lazy, op)
        def listed(ov):
            """The changes; a modified file by its inode number (which of a hard-linked
            file's names is shown depends on the order its names were parsed)."""
            out = []
            for e in ov.diff():
                out.append((e.change, ov.resolve(e.path.lstrip("/")).inode.ino, None)
                           if e.change == "modified" else (e.change, e.path, e.old_path))
            return sorted(out, key=repr)
        assert listed(lazy) == listed(full)
        for ov in (lazy, full):
            ov.commit(final=True)
    finally:
        lazy.close()
        full.close()
    got = []
    for w in wims:
        with Wim(str(w)) as wim:
            table = wim.reader.pread(wim.header.blob_table_reshdr.size_in_wim,
                                     wim.header.blob_table_reshdr.offset_in_wim)
            counts = {k: wim.xml_root.find("IMAGE").findtext(k)
                      for k in ("DIRCOUNT", "FILECOUNT", "TOTALBYTES", "HARDLINKBYTES")}
            got.append((_metadata(w), table, counts))
    assert got[0][0] == got[1][0]
    assert got[0][1] == got[1][1]
    assert got[0][2] == got[1][2]


def test_diff_lists_a_moved_directory_once_whatever_was_parsed(work, tmp_path):
    """Renaming a directory lists that directory, not what moved with it, both when its
    entries were parsed first and when they were not; a change under it is listed at its
    new path; a session that parsed everything first lists the same."""
    from wimfs.overlay.status import Change

    def run(name: str, full: bool) -> list:
        _w, ov = _copy_session(work, tmp_path, name, full)
        try:
            if not full:
                ov.resolve("a/b/c/d/e/deep.txt")            # parse a/... but not move/
            root = ov.image.root
            ov.rename(root, "a", root, "a2")
            ov.rename(ov.resolve("move"), "inner", root, "inner2")
            write(ov, ov.resolve("a2/b/other.txt").inode, b"OTHER")
            return [(e.change, e.path, e.old_path) for e in ov.diff()]
        finally:
            ov.close()

    lazy, full = run("lazy", False), run("full", True)
    assert lazy == full
    assert sorted(lazy) == sorted([
        (Change.RENAMED, "/a2", "/a"),
        (Change.RENAMED, "/inner2", "/move/inner"),
        (Change.MODIFIED, "/a2/b/other.txt", None)])


def test_diff_of_a_hard_link_renamed_whatever_was_parsed(work, tmp_path):
    """Renaming one name of a hard-link group whose other names are still on disk lists
    what a session that parsed every name lists: a name added and one deleted (a file
    with more than one name is not "renamed"); its link count counts the names on disk."""
    def run(name: str, full: bool) -> list:
        _w, ov = _copy_session(work, tmp_path, name, full)
        try:
            x = ov.resolve("links/x")
            assert x.children["one.txt"].inode.nlink == 3
            ov.rename(x, "one.txt", x, "uno.txt")
            return [(e.change, e.path, e.old_path) for e in ov.diff()]
        finally:
            ov.close()

    lazy, full = run("lazy", False), run("full", True)
    assert lazy == full
    assert sorted(lazy) == [("added", "/links/x/uno.txt", None),
                            ("deleted", "/links/x/one.txt", None)]
