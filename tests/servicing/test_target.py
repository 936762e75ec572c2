"""The servicing target: one test body on a directory and on ``IMAGE.wim:1``.

Oracles: hivexget reads the committed hives; wimlib-imagex applies and verifies the
committed WIM; the fingerprint (every byte of the WIM, or of every file of the tree)
proves that a failed operation changed nothing.
"""

from __future__ import annotations

import io
import subprocess

import pytest

import oracles
from servicing.cli import reg_main
from servicing.registry import regfile
from servicing.errors import ServicingError
from servicing.registry import RegEdit, EditKind, apply, transaction
from servicing.regf import REG_DWORD, REG_SZ
from servicing.target import open_target

CFG = "Windows/System32/config"


def reg(*argv):
    out, err = io.StringIO(), io.StringIO()
    rc = reg_main([str(a) for a in argv], out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


def hivexget(hive, key, name):
    r = subprocess.run(["hivexget", str(hive), key, name], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


REG_FILE = """Windows Registry Editor Version 5.00

[HKEY_LOCAL_MACHINE\\SOFTWARE\\Contoso\\App]
"Name"="wimfs"
"Build"=dword:0000002a

[HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\Contoso]
"Start"=dword:00000003

[HKEY_USERS\\.DEFAULT\\Control Panel\\Contoso]
"Locale"="00000409"
"""


def test_reg_add_without_mount(target):
    rc, _, err = reg(target.spec, "add", "HKLM\\SOFTWARE\\Contoso", "/v", "X", "/t",
                     "REG_DWORD", "/d", "1", "/f")
    assert rc == 0, err
    tree = target.tree()
    assert hivexget(tree / CFG / "SOFTWARE", "\\Contoso", "X") == "1"
    # nothing else moved: the SYSTEM hive is byte-identical
    assert hivexget(tree / CFG / "SYSTEM", "\\Select", "Current") == "1"


def test_import_spans_hives(target, tmp_path):
    f = tmp_path / "changes.reg"
    f.write_text(REG_FILE, encoding="utf-8")
    rc, _, err = reg(target.spec, "import", f)
    assert rc == 0, err
    tree = target.tree()
    assert hivexget(tree / CFG / "SOFTWARE", "\\Contoso\\App", "Build") == "42"
    assert hivexget(tree / CFG / "SOFTWARE", "\\Contoso\\App", "Name") == "wimfs"
    assert hivexget(tree / CFG / "SYSTEM", "\\ControlSet001\\Services\\Contoso", "Start") == "3"
    assert hivexget(tree / CFG / "DEFAULT", "\\Control Panel\\Contoso", "Locale") == "00000409"


@pytest.mark.parametrize("bad", [
    '"Bad"=dword:zz\n',                                   # a syntax error in the middle
    '\n[HKEY_LOCAL_MACHINE\\NOHIVE\\X]\n"A"="b"\n',        # fails while being applied
])
def test_failing_import_changes_nothing(target, tmp_path, bad):
    lines = REG_FILE.splitlines(keepends=True)
    f = tmp_path / "bad.reg"
    f.write_text("".join(lines[:8]) + bad + "".join(lines[8:]), encoding="utf-8")
    before = target.fingerprint()
    rc, _, err = reg(target.spec, "import", f)
    assert rc in (2, 4) and err.count("\n") == 1, err
    assert target.fingerprint() == before


def test_files_and_hives_in_one_transaction(target):
    with open_target(target.spec, write=True) as t:
        t.mkdirs("Windows/Contoso/Data")
        t.write_file("Windows/Contoso/Data/a.txt", b"alpha")
        t.write_file("Windows/INF/machine.inf", b"replaced")
        t.rename("Windows/Contoso/Data/a.txt", "Windows/Contoso/b.txt")
        t.remove("Windows/System32/drivers")
        with transaction(t) as r:
            apply(r, [RegEdit(EditKind.SET_VALUE, "HKLM\\SOFTWARE\\Contoso", "V", REG_SZ,
                              "x\0".encode("utf-16-le"))])
    tree = target.tree()
    assert (tree / "Windows/Contoso/b.txt").read_bytes() == b"alpha"
    assert not (tree / "Windows/Contoso/Data/a.txt").exists()
    assert (tree / "Windows/Contoso/Data").is_dir()
    assert (tree / "Windows/INF/machine.inf").read_bytes() == b"replaced"
    assert not (tree / "Windows/System32/drivers").exists()
    assert hivexget(tree / CFG / "SOFTWARE", "\\Contoso", "V") == "x"
    assert not [p for p in tree.iterdir() if p.name.startswith(".wimfs")]


def test_failure_leaves_target_as_it_was(target):
    before = target.fingerprint()
    with pytest.raises(ServicingError, match="boom"):
        with open_target(target.spec, write=True) as t:
            t.mkdirs("Windows/Contoso/Data")
            t.write_file("Windows/Contoso/Data/a.txt", b"alpha")
            t.write_file("Windows/INF/machine.inf", b"replaced")
            t.remove("Windows/System32/drivers")
            with transaction(t) as r:
                r.set_value("HKLM\\SYSTEM\\Select", "Current", REG_DWORD, 7)
                r.set_value("HKU\\.DEFAULT\\X", "Y", REG_DWORD, 1)
            raise ServicingError("boom")
    assert target.fingerprint() == before


def test_reads_see_staged_changes(target):
    with open_target(target.spec, write=True, dry_run=True) as t:
        t.write_file("Windows/new.txt", b"1")
        assert t.read_file("Windows/new.txt") == b"1"
        assert t.resolve("WINDOWS/new.TXT") == "Windows/new.txt"
        t.remove("Windows/INF/machine.inf")
        assert not t.exists("Windows/INF/machine.inf")
        assert "machine.inf" not in t.listdir("Windows/INF")
        assert "new.txt" in t.listdir("Windows")


def test_dry_run_prints_and_writes_nothing(target):
    before = target.fingerprint()
    rc, out, err = reg(target.spec, "add", "HKLM\\SOFTWARE\\Contoso", "/v", "X", "/t",
                       "REG_DWORD", "/d", "5", "/f", "--dry-run")
    assert rc == 0, err
    assert "would be value set: HKEY_LOCAL_MACHINE\\SOFTWARE\\Contoso X" in out
    assert "new=REG_DWORD:'0x5'" in out
    assert target.fingerprint() == before


def test_log_records_command_target_version_and_values(target, tmp_path):
    log = tmp_path / "s.log"
    assert reg(target.spec, "add", "HKLM\\SOFTWARE\\Contoso", "/v", "X", "/t", "REG_DWORD",
               "/d", "1", "/f", "--log-path", log)[0] == 0
    assert reg(target.spec, "add", "HKLM\\SOFTWARE\\Contoso", "/v", "X", "/t", "REG_SZ",
               "/d", "y" * 200, "/f", "--log-path", log)[0] == 0
    text = log.read_text()
    assert ", Info                  WIMFS  command: reg add HKLM\\SOFTWARE\\Contoso" in text
    assert "image version: 10.0.16299.125" in text
    assert "key created: HKEY_LOCAL_MACHINE\\SOFTWARE\\Contoso" in text
    assert "value set: HKEY_LOCAL_MACHINE\\SOFTWARE\\Contoso X new=REG_DWORD:'0x1'" in text
    # the second set names the old value and shortens the long new one
    assert "X old=REG_DWORD:'0x1' new=REG_SZ:'" + "y" * 64 + "...(402 bytes)'" in text
    quiet = tmp_path / "quiet.log"
    reg(target.spec, "query", "HKLM\\SOFTWARE\\Contoso", "--log-path", quiet, "--log-level", "1")
    assert quiet.read_text() == ""


def test_windir(hives, tmp_path):
    from windows_trees import windows_tree
    tree = windows_tree(tmp_path / "t", hives, "7", windir="WINNT")
    rc, out, err = reg(tree, "query", "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion",
                       "/v", "CurrentVersion", "--windir", "winnt")
    assert rc == 0 and "6.1" in out, err
    assert reg(tree, "query", "HKLM\\SOFTWARE\\Contoso")[0] == 4


def test_not_a_target(tmp_path):
    rc, _, err = reg(tmp_path / "nothing.wim:1", "query", "HKLM\\SOFTWARE")
    assert rc == 4 and "neither a directory nor a WIM" in err


def _operation(spec: str) -> None:
    with open_target(spec, write=True) as t:
        t.mkdirs("Windows/Contoso/Data")
        t.write_file("Windows/Contoso/Data/a.txt", b"alpha")
        t.write_file("Windows/INF/machine.inf", b"replaced")
        t.rename("Windows/INF/machine.inf", "Windows/INF/renamed.inf")
        t.link("Windows/Contoso/Data/a.txt", "Windows/Contoso/a-link.txt")
        t.remove("Windows/System32/drivers")
        with transaction(t) as r:
            apply(r, regfile.parse(REG_FILE))
            r.delete_value("HKLM\\SYSTEM\\Select", "LastKnownGood")


def test_same_result_on_both_kinds(hives, tmp_path):
    """The same operation on a directory and on IMAGE.wim:1: `wimlib-imagex apply` of the
    committed image equals the directory (files, links; hives compared through hivexml)."""
    from tests.helpers import assert_same_tree, snapshot, wimlib_apply, wimlib_capture
    from windows_trees import windows_tree
    tree = windows_tree(tmp_path / "dir", hives, "10clean")
    wim = wimlib_capture(tree, tmp_path / "x.wim", compress="xpress")
    _operation(str(tree))
    _operation(f"{wim}:1")
    wimlib_apply(wim, 1, tmp_path / "applied")
    hive_files = ("*/config/*", "Users/Default/NTUSER.DAT*")
    assert_same_tree(snapshot(tree, xattrs=False, exclude=hive_files),
                     snapshot(tmp_path / "applied", xattrs=False, exclude=hive_files),
                     "directory", "image")
    for rel in ("Windows/System32/config/SYSTEM", "Windows/System32/config/SOFTWARE",
                "Windows/System32/config/DEFAULT"):
        assert oracles.hivexml(tree / rel) == oracles.hivexml(tmp_path / "applied" / rel), rel
    assert oracles.hivexml(tree / "Windows/System32/config/SYSTEM")["Select"].get(
        "LastKnownGood") is None


def test_image_by_name(hives, tmp_path):
    from tests.helpers import wimlib_capture
    from windows_trees import windows_tree
    tree = windows_tree(tmp_path / "t", hives, "7", kernel=False)
    wim = wimlib_capture(tree, tmp_path / "x.wim", compress="none", name="Windows 7 Ultimate")
    rc, out, err = reg(f"{wim}:Windows 7 Ultimate", "query", "HKLM\\SYSTEM\\Select", "/v", "Current")
    assert rc == 0 and "0x1" in out, err
    rc, _, err = reg(f"{wim}:NoSuchImage", "query", "HKLM\\SYSTEM\\Select")
    assert rc == 4 and "no image named" in err


@pytest.mark.parametrize("kind", ["dir", "wim"])
def test_case_insensitive_lookup_as_windows(tmp_path, kind):
    """Windows upper-cases one UTF-16 unit at a time (RtlUpcaseUnicodeChar): 'ä' matches
    'Ä', but 'ß' is not 'SS' -- the same on a directory and inside an image."""
    tree = tmp_path / "tree"
    (tree / "Windows" / "Straße").mkdir(parents=True)
    (tree / "Windows" / "Ärger").mkdir()
    spec = str(tree)
    if kind == "wim":
        from tests.helpers import wimlib_capture
        spec = str(wimlib_capture(tree, tmp_path / "x.wim", compress="none", name="x")) + ":1"
    with open_target(spec) as t:
        assert t.resolve("WINDOWS/ärger") == "Windows/Ärger"
        assert t.resolve("windows/STRAßE") == "Windows/Straße"
        assert t.resolve("windows/STRASSE") is None


def test_directory_commit_failing_late_is_undone(hives, tmp_path, monkeypatch):
    """A directory commit that fails at its last step (the second hive, e.g. disk full)
    undoes the files already moved into place and writes back the hive already committed."""
    from servicing.regf import Hive, RegfError
    from windows_trees import tree_fingerprint, windows_tree
    tree = windows_tree(tmp_path / "t", hives, "10clean")
    before = tree_fingerprint(tree)
    real_commit, calls = Hive.commit, []

    def failing_commit(self, *a, **kw):
        calls.append(self)
        if len(calls) == 2:
            raise RegfError("cannot write: No space left on device")
        return real_commit(self, *a, **kw)

    monkeypatch.setattr(Hive, "commit", failing_commit)
    with pytest.raises(RegfError, match="No space left"):
        with open_target(str(tree), write=True) as t:
            t.write_file("Windows/INF/machine.inf", b"replaced")
            t.mkdirs("Windows/New")
            t.write_file("Windows/New/a.txt", b"a")
            t.remove("Windows/System32/drivers")
            with transaction(t) as r:
                r.set_value("HKLM\\SOFTWARE\\Contoso", "A", REG_DWORD, 1)
                r.set_value("HKLM\\SYSTEM\\Contoso", "B", REG_DWORD, 2)
    assert len(calls) == 2
    assert tree_fingerprint(tree) == before


def test_a_hive_read_again_after_a_write_in_the_same_operation_is_the_new_one(target):
    """Read-only hive opens may be shared within an operation (the image target parses
    SOFTWARE once for image-info, the log and the command); a write through the target
    must make the next read see it. Oracle for the value: the edit itself, and hivexget
    on the committed hive."""
    with open_target(target.spec, write=True) as t:
        before = t.open_hive(f"{CFG}/SYSTEM", write=False)
        assert before.key("Select").get("Current") == 1
        assert t.open_hive(f"{CFG}/SYSTEM", write=False).key("Select").get("Current") == 1
        with transaction(t) as r:
            apply(r, [RegEdit(EditKind.SET_VALUE, "HKLM\\SYSTEM\\Select", "Current", REG_DWORD,
                              (2).to_bytes(4, "little"))])
        after = t.open_hive(f"{CFG}/SYSTEM", write=False)
        assert after.key("Select").get("Current") == 2
        t.write_file("Windows/new.txt", b"x")       # any write: reads come fresh again
        assert t.open_hive(f"{CFG}/SYSTEM", write=False).key("Select").get("Current") == 2
    assert hivexget(target.tree() / CFG / "SYSTEM", "\\Select", "Current") == "2"
