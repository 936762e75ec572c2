"""Image-level registry, .reg import/export and ``wimfs reg`` (reg_main)."""

from __future__ import annotations

import io
import json

import pytest

import oracles
from tests.servicing.conftest import unpack
from servicing import regfile
from servicing.cli import reg_main
from servicing.regf import REG_QWORD, Hive


@pytest.fixture
def tree(hives, tmp_path):
    cfg = tmp_path / "win" / "windows" / "SYSTEM32" / "Config"      # odd case on purpose
    cfg.mkdir(parents=True)
    unpack(hives / "regipy" / "SYSTEM.xz", cfg, "system")
    h = Hive.create(cfg / "SOFTWARE")
    h.commit()
    return tmp_path / "win"


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    rc = reg_main([str(a) for a in argv], out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


def test_query_current_control_set(tree):
    cur = Hive.open(tree / "windows/SYSTEM32/Config/system").key("Select").get("Current")
    rc, out, err = run(tree, "query", "HKLM\\SYSTEM\\Select", "/v", "Current")
    assert rc == 0, err
    assert "Current    REG_DWORD    0x%x" % cur in out
    rc, out, _ = run(tree, "query", "HKLM\\SYSTEM\\CurrentControlSet\\Control", "--json")
    doc = json.loads(out)
    assert doc["key"] == "HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet%03d\\Control" % cur
    assert "Session Manager" in doc["subkeys"]


def test_add_delete_and_errors(tree):
    k = "HKLM\\SOFTWARE\\Wimfs\\Test"
    assert run(tree, "add", k, "-v", "D", "-t", "REG_DWORD", "-d", "0x10", "-f")[0] == 0
    assert run(tree, "add", k, "/v", "M", "/t", "REG_MULTI_SZ", "/d", "a\\0b")[0] == 0
    assert run(tree, "add", k, "/v", "Q", "/t", "REG_QWORD", "/d", "5")[0] == 0
    h = Hive.open(tree / "windows/SYSTEM32/Config/SOFTWARE")
    assert h.key("Wimfs\\Test").get("D") == 16
    assert h.key("Wimfs\\Test").get("M") == ["a", "b"]
    assert h.key("Wimfs\\Test").value("Q").type == REG_QWORD
    rc, _, err = run(tree, "add", k, "/v", "D", "/t", "REG_DWORD", "/d", "1")
    assert rc == 1 and err.startswith("wimfs reg: error: ") and err.count("\n") == 1
    assert run(tree, "query", k, "/v", "nope")[0] == 4
    assert run(tree, "query", "HKLM\\NOPE")[0] == 4
    assert run(tree, "frob")[0] == 2
    assert run(tree, "add", k, "/v", "x", "/t", "REG_DWORD", "/d", "zz")[0] == 2
    assert run(tree, "delete", k, "/v", "D", "/f")[0] == 0
    assert run(tree, "delete", "HKLM\\SOFTWARE\\Wimfs", "/f")[0] == 0
    assert not Hive.open(tree / "windows/SYSTEM32/Config/SOFTWARE").has_key("Wimfs")
    # corrupt hive -> exit 3
    p = tree / "windows/SYSTEM32/Config/SOFTWARE"
    p.write_bytes(b"regf" + b"\0" * 100)
    rc, _, err = run(tree, "query", "HKLM\\SOFTWARE")
    assert rc == 3 and "Traceback" not in err


REG = r'''Windows Registry Editor Version 5.00

; comment
[HKEY_LOCAL_MACHINE\SOFTWARE\Imp\Sub]
@="default"
"S"="quote \" and \\ backslash"
"D"=dword:0000002a
"B"=hex:01,02,03,\
  04,05
"E"=hex(2):25,00,57,00,00,00
"M"=hex(7):61,00,00,00,62,00,00,00,00,00
"Q"=hex(b):01,00,00,00,00,00,00,00
"U"=hex(12345):ff
"Gone"="x"
"Gone"=-

[HKEY_LOCAL_MACHINE\SOFTWARE\Imp\Del\Me]
[-HKEY_LOCAL_MACHINE\SOFTWARE\Imp\Del]
'''


@pytest.mark.parametrize("enc", ["utf-16", "utf-8"])
def test_import_export_roundtrip(tree, tmp_path, enc):
    f = tmp_path / "in.reg"
    f.write_bytes(regfile.encode_file(REG, enc))
    rc, _, err = run(tree, "import", f)
    assert rc == 0, err
    sw = tree / "windows/SYSTEM32/Config/SOFTWARE"
    h = Hive.open(sw)
    k = h.key("Imp\\Sub")
    assert k.get("") == "default"
    assert k.get("S") == 'quote " and \\ backslash'
    assert k.get("D") == 42
    assert k.value("B").raw == bytes([1, 2, 3, 4, 5])
    assert k.value("E").raw == "%W\0".encode("utf-16-le")
    assert k.get("M") == ["a", "b"]
    assert k.value("U").type == 0x12345 and k.value("U").raw == b"\xff"
    assert not h.has_key("Imp\\Del") and "Gone" not in [v.name for v in k.values()]
    before = h.dump()
    assert oracles.same_as_hivexml(oracles.ours(h), oracles.hivexml(sw)) == []
    out = tmp_path / "out.reg"
    assert run(tree, "export", "HKLM\\SOFTWARE\\Imp", out)[0] == 0
    assert out.read_bytes().startswith(b"\xff\xfe")
    assert run(tree, "delete", "HKLM\\SOFTWARE\\Imp", "/f")[0] == 0
    assert run(tree, "import", out)[0] == 0
    assert Hive.open(sw).dump() == before


def test_regedit4(tree, tmp_path):
    f = tmp_path / "v4.reg"
    f.write_bytes(b'REGEDIT4\r\n\r\n[HKEY_LOCAL_MACHINE\\SOFTWARE\\V4]\r\n'
                  b'"E"=hex(2):25,57,00\r\n"S"="caf\xe9"\r\n')
    assert run(tree, "import", f)[0] == 0
    k = Hive.open(tree / "windows/SYSTEM32/Config/SOFTWARE").key("V4")
    assert k.value("E").raw == "%W\0".encode("utf-16-le")
    assert k.get("S") == "café"
