"""CLI contract: one-line errors with documented exit codes; info agrees with wimlib."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from wimfs import errors
from wimfs.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "wimfs", *args], capture_output=True,
                          text=True)


def test_not_a_wim_one_line(tmp_path):
    p = tmp_path / "x.wim"
    p.write_text("nope")
    r = run_cli("info", str(p))
    assert r.returncode == errors.EXIT_BAD_IMAGE
    assert r.stderr.count("\n") == 1 and "not a WIM" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_file(tmp_path):
    r = run_cli("info", str(tmp_path / "missing.wim"))
    assert r.returncode == errors.EXIT_NOT_FOUND
    assert r.stderr.count("\n") == 1


def test_usage_error():
    assert main(["info"]) == errors.EXIT_USAGE
    assert main([]) == errors.EXIT_USAGE


def test_bad_index(mixed_wims):
    wims, _ = mixed_wims
    r = run_cli("info", wims["lzx"], "--index", "7")
    assert r.returncode == errors.EXIT_NOT_FOUND and "no image 7" in r.stderr


def test_ls_lists_directory(mixed_wims, capsys):
    wims, files = mixed_wims
    assert main(["ls", wims["lzx"] + ":1", "/sub"]) == 0
    assert capsys.readouterr().out.split() == ["dir/", "small"]
    assert main(["ls", wims["lzx"], "/nope"]) == errors.EXIT_NOT_FOUND


def test_info_json_agrees_with_wimlib(mixed_wims):
    wims, _ = mixed_wims
    for kind, path in wims.items():
        ours = json.loads(run_cli("info", path, "--json").stdout)
        text = subprocess.run(["wimlib-imagex", "info", path], check=True,
                              capture_output=True, text=True).stdout
        theirs = dict(re.findall(r"^([A-Z][\w ]+?):[ \t]*(.*?)[ \t]*$", text, re.M))
        assert ours["header"]["image_count"] == int(theirs["Image Count"])
        assert ours["header"]["compression"] == theirs["Compression"].lower(), kind
        assert ours["header"]["chunk_size"] == int(theirs["Chunk Size"].split()[0])
        assert ours["header"]["boot_index"] == int(theirs["Boot Index"])
        img = ours["images"][0]
        assert img["name"] == theirs["Name"]
        assert img["dir_count"] == int(theirs["Directory Count"])
        assert img["file_count"] == int(theirs["File Count"])
        assert img["total_bytes"] == int(theirs["Total Bytes"])
        assert img["hard_link_bytes"] == int(theirs["Hard Link Bytes"])


def test_one_command_parser_is_the_full_parsers_command():
    """build_parser(argv) registers only the command argv names (start-up time); the
    oracle is the full parser: each command's parser gives the same help and parses
    the same namespace."""
    import argparse

    from wimfs.cli import build_parser

    def commands(p):
        [sub] = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        return sub.choices

    full = commands(build_parser())
    assert len(full) > 25
    for name, parser in full.items():
        one = build_parser([name, "x"])
        mine = commands(one)
        assert name in mine and len(mine) <= 2, name      # (itself and an alias)
        assert mine[name].format_help() == parser.format_help(), name
    args = ["update", "x.wim:1", "--add", "a", "/b", "--delete", "/c", "--recursive"]
    def parsed(p):
        ns = vars(p.parse_args(args))
        return {k: v for k, v in ns.items() if k != "func"}, ns["func"].__qualname__

    assert parsed(build_parser(args)) == parsed(build_parser())
    # Not a command: the full parser, whose error lists every command.
    assert len(commands(build_parser(["no-such-command"]))) == len(full)
