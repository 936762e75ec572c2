"""The command-line contract, table-driven over every command: -h works (with examples);
a missing argument, an unknown option and each kind of bad value exit 2 with one line,
no traceback, before anything runs; a missing file exits 4; plus the cases of issue 14.
The WIMs are made by wimlib-imagex, whose `info` is the oracle of names and indexes."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import subprocess
import sys

import pytest

from tests.unit.conftest import require_tool
from wimfs.cli import main

SRC_FILES = {1: "first.txt", 2: "second.txt"}
NAME2 = "two: with colon"


def run(*args, env=None, stderr=subprocess.PIPE):
    return subprocess.run([sys.executable, "-m", "wimfs", *map(str, args)], text=True,
                          stdout=subprocess.PIPE, stderr=stderr, env=env, timeout=120)


def one_line_error(r, code: int, prog: str = "wimfs") -> str:
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"{prog}: error: "), r.stderr
    return r.stderr


def wimlib_names(wim) -> list[str]:
    out = subprocess.run(["wimlib-imagex", "info", str(wim)], check=True, text=True,
                         capture_output=True).stdout
    return [line.split(":", 1)[1].strip() for line in out.splitlines()
            if line.startswith("Name:")]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """multi.wim (image 1 'one', image 2 NAME2, different files), single.wim, a tree
    with a SYSTEM hive for `wimfs reg`."""
    require_tool("wimlib-imagex")
    d = tmp_path_factory.mktemp("contract")
    for i, fname in SRC_FILES.items():
        (d / f"src{i}").mkdir()
        (d / f"src{i}" / fname).write_text(f"image {i}\n")
    subprocess.run(["wimlib-imagex", "capture", d / "src1", d / "multi.wim", "one"],
                   check=True, capture_output=True)
    subprocess.run(["wimlib-imagex", "append", d / "src2", d / "multi.wim", NAME2],
                   check=True, capture_output=True)
    subprocess.run(["wimlib-imagex", "capture", d / "src1", d / "single.wim", "only"],
                   check=True, capture_output=True)
    assert wimlib_names(d / "multi.wim") == ["one", NAME2]
    (d / "mnt").mkdir()
    cfg = d / "tree" / "Windows" / "System32" / "config"
    cfg.mkdir(parents=True)
    from servicing.regf import Hive

    h = Hive.create(cfg / "SYSTEM")
    h.create_key("Select").set_value("Current", 4, (1).to_bytes(4, "little"))
    h.commit()
    return d


# -- help ----------------------------------------------------------------------------------

COMMANDS = ["info", "ls", "mount", "unmount", "commit", "status", "mounts", "remount",
            "cleanup", "capture", "append", "apply", "export", "delete", "optimize", "verify",
            "split", "join"]
REG_COMMANDS = ["query", "add", "delete", "import", "export"]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help(cmd, capsys):
    for flag in ("-h", "--help"):
        assert main([cmd, flag]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: wimfs {cmd}") and "examples:\n  wimfs " in out


def test_help_anywhere(capsys, work):
    assert main(["info", str(work / "multi.wim"), "--index", "1", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: wimfs info")
    assert main(["--help"]) == 0
    assert "Exit codes:" in capsys.readouterr().out


@pytest.mark.parametrize("cmd", REG_COMMANDS)
def test_reg_help(cmd, capsys, work):
    for argv in (["reg", str(work / "tree"), cmd, "-h"],
                 ["reg", str(work / "tree"), cmd, r"HKLM\SYSTEM", "--help"],
                 ["reg", str(work / "tree"), cmd, "/?"]):
        assert main(argv) == 0, argv
        out = capsys.readouterr().out
        assert re.match(rf"usage: wimfs reg (TREE|TARGET) {cmd} ", out), out[:80]
        assert "examples:" in out


def test_reg_help_and_bare(capsys):
    assert main(["reg", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: wimfs reg") and "``" not in out and "examples:" in out
    assert main(["reg"]) == 2
    assert capsys.readouterr().err.startswith("usage: wimfs reg")


# -- usage errors --------------------------------------------------------------------------

REQUIRED = [c for c in COMMANDS if c not in ("mounts", "cleanup")]


@pytest.mark.parametrize("cmd", REQUIRED)
def test_missing_argument(cmd):
    err = one_line_error(run(cmd), 2)
    assert "required" in err and f"wimfs {cmd} --help" in err


def _valid_args(work, cmd: str) -> list:
    w, m = work / "multi.wim", work / "mnt"
    return {"info": [w], "ls": [w], "mount": [w, m], "unmount": [m], "commit": [m],
            "status": [m], "mounts": [], "remount": [m], "cleanup": [],
            "capture": [work / "src1", work / "new.wim"], "append": [work / "src1", w],
            "apply": [w, work / "out"], "export": [w, work / "new.wim"], "delete": [w],
            "optimize": [w], "verify": [w], "split": [w, work / "p.swm", "--size", "1"],
            "join": [work / "new.wim", work / "p.swm"]}[cmd]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_unknown_option(cmd, work):
    err = one_line_error(run(cmd, *_valid_args(work, cmd), "--no-such-option"), 2)
    assert "--no-such-option" in err and f"wimfs {cmd} --help" in err


BAD_VALUES = [
    ("mount", ["--threads", "-3"]), ("mount", ["--threads", "0"]), ("mount", ["--threads", "x"]),
    ("mount", ["--cache-size", "-5"]), ("mount", ["--cache-size", "0"]),
    ("mount", ["--index", "0"]), ("mount", ["--index", "first"]), ("mount", ["-o", "bogus"]),
    ("remount", ["--cache-size", "-1"]),
    ("capture", ["--compress", "zip"]), ("capture", ["--chunk-size", "1000"]),
    ("capture", ["--threads", "0"]), ("append", ["--threads", "-1"]),
    ("split", ["--size", "0"]), ("split", ["--size", "-1"]), ("split", ["--size", "1x"]),
    ("info", ["--set-property", "BADFORMAT"]), ("info", ["--set-property", "=x"]),
    ("info", ["--boot", "-1"]), ("info", ["--index", "0"]), ("info", ["--index", "all"]),
    ("ls", ["--index", "-2"]), ("apply", ["--index", "x"]), ("verify", ["--index", "0"]),
    ("export", ["--compress", "foo"]), ("export", ["--chunk-size", "3"]),
    ("export", ["--threads", "0"]), ("optimize", ["--compress", "foo"]),
    ("optimize", ["--chunk-size", "65537"]), ("delete", ["--index", "0"]),
]


@pytest.mark.parametrize("cmd,extra", BAD_VALUES, ids=[f"{c} {' '.join(e)}" for c, e in
                                                       BAD_VALUES])
def test_bad_value(cmd, extra, work):
    before = sorted(os.listdir(work))
    err = one_line_error(run(cmd, *_valid_args(work, cmd), *extra), 2)
    assert cmd in err or "image" in err or "mount option" in err
    assert sorted(os.listdir(work)) == before          # nothing ran
    assert not os.path.ismount(work / "mnt")


def test_image_chosen_twice(work):
    w = work / "multi.wim"
    for args in (["ls", f"{w}:1", "--index", "2"], ["ls", w, "--index", "1", "--name", "one"],
                 ["delete", f"{w}:1", "2"], ["info", f"{w}:"]):
        one_line_error(run(*args), 2)


def test_multi_image_needs_a_selector(work):
    for cmd in ("ls", "mount", "apply", "export", "delete"):
        err = one_line_error(run(cmd, *_valid_args(work, cmd)), 2)
        assert "IMAGE:N, IMAGE:NAME, --index N or --name NAME" in err, cmd
    assert not os.path.ismount(work / "mnt")


REG_BAD = [
    ["query", r"HKXX\SYSTEM"], ["query", r"SYSTEM\Select"], ["query", ""], ["query", "HKLM"],
    ["query", r"HKLM\SYSTEM", "/v"], ["query", r"HKLM\SYSTEM", "/bogus"], ["frob", "x"],
    ["add", r"HKLM\SYSTEM\X", "/v", "n", "/t", "REG_FOO", "/d", "1"],
    ["add", r"HKLM\SYSTEM\X", "/v", "n", "/t", "REG_DWORD", "/d", "zz"],
    ["add", r"HKLM\SYSTEM\X", "/d", "1"], ["export", r"HKLM\SYSTEM"],
]


@pytest.mark.parametrize("argv", REG_BAD, ids=[" ".join(a) for a in REG_BAD])
def test_reg_usage_errors(argv, work):
    hive = work / "tree/Windows/System32/config/SYSTEM"
    before = hive.read_bytes()
    one_line_error(run("reg", work / "tree", *argv), 2, prog="wimfs reg")
    assert hive.read_bytes() == before


# -- not found: exit 4 ---------------------------------------------------------------------


@pytest.mark.parametrize("cmd", ["info", "ls", "mount", "apply", "export", "delete",
                                 "optimize", "verify", "split", "append"])
def test_missing_file(cmd, work):
    args = [a if a != work / "multi.wim" else work / "missing.wim"
            for a in _valid_args(work, cmd)]
    if cmd in ("delete",):
        args.append("1")
    err = one_line_error(run(cmd, *args), 4)
    assert "missing.wim" in err


def test_missing_inputs_elsewhere(work):
    one_line_error(run("join", work / "j.wim", work / "nope.swm"), 4)
    one_line_error(run("capture", work / "nosrc", work / "x.wim"), 4)
    one_line_error(run("reg", work / "tree", "import", work / "nope.reg"), 4, "wimfs reg")
    one_line_error(run("reg", work / "notree", "query", r"HKLM\SYSTEM"), 4, "wimfs reg")
    one_line_error(run("ls", f"{work / 'multi.wim'}:3"), 4)
    one_line_error(run("ls", work / "multi.wim", "--name", "nope"), 4)
    for cmd in ("info", "ls", "apply", "export", "verify"):
        args = [a if a != work / "multi.wim" else f"{a}:1" for a in _valid_args(work, cmd)]
        assert "--ref" in one_line_error(run(cmd, *args, "--ref", work / "nope*.swm"), 4)


# -- the cases of issue 14 -----------------------------------------------------------------


def test_errors_name_the_right_thing(work):
    err = one_line_error(run("capture", work / "src1", "/nonexistent/dir/x.wim"), 4)
    assert "/nonexistent/dir does not exist" in err and ".tmp" not in err
    assert "skip-errors" not in err
    err = one_line_error(run("info", work / "src1"), 3)
    assert str(work / "src1") in err and "directory" in err
    err = one_line_error(run("reg", work / "tree", "query", r"HKLM\SYSTEM\NoSuchKey"), 4,
                         "wimfs reg")
    assert "HKEY_LOCAL_MACHINE\\SYSTEM\\NoSuchKey" in err and "CMI-" not in err
    err = one_line_error(run("reg", work / "tree", "export", r"HKLM\SYSTEM",
                             "/nonexistent/x.reg"), 4, "wimfs reg")
    assert "/nonexistent does not exist" in err and "Errno" not in err


def test_debug_traceback_without_error_error_line(work):
    r = run("--debug", "info", work / "missing.wim")
    assert r.returncode == 4 and "Traceback" in r.stderr
    assert "ERROR: error" not in r.stderr
    assert r.stderr.splitlines()[-1].startswith("wimfs: error: ")
    r = run("--debug", "reg", work / "tree", "query", r"HKLM\SYSTEM\Nope")
    assert r.returncode == 4 and "Traceback" in r.stderr
    assert r.stderr.splitlines()[-1] == \
        r"wimfs reg: error: key HKEY_LOCAL_MACHINE\SYSTEM\Nope not found"
    assert "Traceback" not in run("reg", work / "tree", "query", r"HKLM\SYSTEM\Nope").stderr


def test_image_count_wording(work):
    err = one_line_error(run("ls", f"{work / 'single.wim'}:2"), 4)
    assert "(the WIM has 1 image)" in err


def test_info_header_shows_raw_fields(work):
    w = work / "multi.wim"
    ours = run("info", w, "--header").stdout
    assert ours != run("info", w).stdout
    theirs = subprocess.run(["wimlib-imagex", "info", w, "--header"], check=True, text=True,
                            capture_output=True).stdout

    def fields(text):
        out = {}
        for line in text.splitlines():
            if "=" in line:
                k, v = (x.strip() for x in line.split("=", 1))
                out[k.lower().replace("_", " ").replace("integrity table", "integrity")] = v
        return out
    a, b = fields(ours), fields(theirs)
    for key in ("header size", "version", "flags", "chunk size", "guid", "image count",
                "blob table size", "blob table offset", "blob table original size",
                "xml data size", "xml data offset", "boot index", "integrity size"):
        assert a[key].lower() == b[key].lower(), key
    raw = json.loads(run("info", w, "--header", "--json").stdout)["raw_header"]
    assert raw["image_count"] == 2 and raw["header_size"] == 208


def test_no_progress_without_a_terminal(work, tmp_path):
    r = run("capture", work / "src1", tmp_path / "a.wim")
    assert r.returncode == 0 and r.stderr == ""
    r = run("verify", tmp_path / "a.wim")
    assert r.returncode == 0 and "\r" not in r.stderr and r.stderr == ""


def _run_on_tty(*args) -> tuple[int, str]:
    """Run wimfs with stderr on a pseudo-terminal; (exit code, what the terminal got)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "wimfs", *map(str, args)],
                         stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return p.wait(timeout=120), b"".join(chunks).decode("utf-8", "replace")


def test_progress_bar_on_a_terminal(work, tmp_path):
    big = tmp_path / "big"
    big.mkdir()
    (big / "data").write_bytes(os.urandom(3 << 20))
    rc, tty = _run_on_tty("capture", big, tmp_path / "b.wim", "--compress", "none")
    assert rc == 0 and "writing" in tty and "3.00M" in tty and "B/s" in tty
    rc, tty = _run_on_tty("apply", tmp_path / "b.wim", tmp_path / "out")
    assert rc == 0 and "applying" in tty and "100%" in tty
    rc, tty = _run_on_tty("verify", tmp_path / "b.wim", "-q")
    assert rc == 0 and tty == ""


# -- every image command with every selector form -----------------------------------------


def _forms(w):
    return [[f"{w}:2"], [f"{w}:{NAME2}"], [w, "--index", "2"], [w, "--name", NAME2]]


def test_info_and_ls_forms(work):
    w = work / "multi.wim"
    for form in _forms(w):
        doc = json.loads(run("info", *form, "--json").stdout)
        assert [i["index"] for i in doc["images"]] == [2], form
        assert doc["images"][0]["name"] == NAME2
        r = run("ls", *form)
        assert r.returncode == 0 and r.stdout.split() == [SRC_FILES[2]], form
    assert run("ls", f"{w}:one").stdout.split() == [SRC_FILES[1]]
    assert run("ls", w, "--index", "1").stdout.split() == [SRC_FILES[1]]


def test_apply_forms(work, tmp_path):
    w = work / "multi.wim"
    for k, form in enumerate(_forms(w)):
        out = tmp_path / f"out{k}"
        r = run("apply", *form, out)
        assert r.returncode == 0, r.stderr
        assert os.listdir(out) == [SRC_FILES[2]]
    assert run("apply", f"{w}:all", tmp_path / "all").returncode == 0
    assert sorted(os.listdir(tmp_path / "all")) == ["one", NAME2.replace("/", "_")]


def test_export_forms(work, tmp_path):
    w = work / "multi.wim"
    forms = [[f"{w}:2"], [f"{w}:{NAME2}"], [w, "--index", "2"]]
    for k, form in enumerate(forms):
        dst = tmp_path / f"e{k}.wim"
        r = run("export", *form, dst)
        assert r.returncode == 0, r.stderr
        assert wimlib_names(dst) == [NAME2]
    assert run("export", f"{w}:all", tmp_path / "all.wim").returncode == 0
    assert wimlib_names(tmp_path / "all.wim") == ["one", NAME2]


def test_delete_forms(work, tmp_path):
    w = work / "multi.wim"
    for k, form in enumerate([[":2"], [f":{NAME2}"], ["", "2"], ["", NAME2],
                              ["", "--index", "2"], ["", "--name", NAME2]]):
        copy = tmp_path / f"d{k}.wim"
        shutil.copy(w, copy)
        r = run("delete", f"{copy}{form[0]}", *form[1:])
        assert r.returncode == 0, (form, r.stderr)
        assert wimlib_names(copy) == ["one"], form


def test_verify_forms(work):
    w = work / "multi.wim"
    for form in _forms(w) + [[f"{w}:all"], [w]]:
        r = run("verify", *form)
        assert r.returncode == 0 and r.stdout.strip() == f"{w}: OK", (form, r.stderr)
    one_line_error(run("verify", f"{w}:3"), 4)


def test_info_edit_forms(work, tmp_path):
    w = work / "multi.wim"
    for k, form in enumerate(_forms(w)):
        copy = tmp_path / f"i{k}.wim"
        shutil.copy(w, copy)
        form = [str(a).replace(str(w), str(copy)) for a in form]
        r = run("info", *form, "--set-description", f"edited {k}")
        assert r.returncode == 0, (form, r.stderr)
        out = subprocess.run(["wimlib-imagex", "info", copy, "2"], check=True, text=True,
                             capture_output=True).stdout
        assert f"Description:            edited {k}" in out, form
    err = one_line_error(run("info", w, "--set-name", "x"), 2)
    assert "choose the one to edit" in err


def test_the_program_ends_with_its_output_whole(work, tmp_path):
    """`wimfs` leaves with os._exit when done (wimfs.cli.leave): its output is flushed
    first, output that cannot be written fails the command with one line (as Python's own
    exit would), a reader that goes away early is not an error, and atexit handlers run.
    The oracle of the output is the same command run in process."""
    import contextlib
    import io

    big = tmp_path / "big"
    big.mkdir()
    for i in range(300):
        (big / f"file-{i:04d}.txt").write_text(str(i))
    wim = tmp_path / "big.wim"
    subprocess.run(["wimlib-imagex", "capture", big, wim], check=True, capture_output=True)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["ls", f"{wim}:1", "--long"]) == 0
    # Buffered output, as a user's shell has it (this suite may run unbuffered).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    r = run("ls", f"{wim}:1", "--long", env=env)
    assert r.returncode == 0 and r.stdout == out.getvalue() and len(r.stdout) > 6000
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "wimfs", "ls", f"{wim}:1", "--long"],
                           stdout=full, stderr=subprocess.PIPE, text=True, timeout=120,
                           env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and "No space left on device" in r.stderr, r.stderr
    p = subprocess.Popen([sys.executable, "-m", "wimfs", "ls", f"{wim}:1", "--long"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    p.stdout.readline()
    p.stdout.close()                                  # the reader goes away (| head -1)
    assert p.wait(120) == 0 and b"Traceback" not in p.stderr.read()
    # atexit handlers run before the end: a program registering one sees it called.
    code = ("import atexit, sys; from wimfs.cli import main; "
            "atexit.register(lambda: print('atexit ran', file=sys.stderr)); "
            f"sys.argv = ['wimfs', 'info', {str(wim)!r}]; sys.exit(main())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 0 and r.stderr == "atexit ran\n", r.stderr
