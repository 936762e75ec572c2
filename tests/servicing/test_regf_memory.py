"""Hives held in memory: ``Hive.from_bytes(data, write=..., logs=...)`` and
``to_bytes()``, checked against the file-backed reader, Windows' own log
recovery and independent readers (hivexml, hivexget, regipy)."""

from __future__ import annotations

import lzma
import os
import struct
import subprocess

import pytest

import oracles
from servicing.regf import (REG_BINARY, REG_DWORD, REG_EXPAND_SZ, REG_MULTI_SZ, REG_QWORD,
                            REG_SZ, Hive, KeyNotFoundError, RegfDirtyError, RegfStateError)
from test_regf_corpus import CLEAN, _id
from test_regf_edit import check_oracles


def header(blob: bytes) -> dict:
    """Base block fields read with struct, independently of the engine, and
    the XOR checksum of the first 127 dwords recomputed ([regf] "Base block")."""
    seq1, seq2, _ts, major, minor, ftype, fmt, root, bins = struct.unpack_from("<IIQIIIIII",
                                                                                blob, 4)
    x = 0
    for (d,) in struct.iter_unpack("<I", blob[:508]):
        x ^= d
    x = {0: 1, 0xFFFFFFFF: 0xFFFFFFFE}.get(x, x)
    return {"seq1": seq1, "seq2": seq2, "file_type": ftype, "bins": bins, "root": root,
            "checksum_ok": struct.unpack_from("<I", blob, 508)[0] == x}


@pytest.mark.parametrize("path", CLEAN, ids=_id)
def test_memory_dump_equals_file_dump(path):
    blob = path.read_bytes()
    mem = Hive.from_bytes(blob)
    assert mem.path is None and not mem.dirty and not mem.changed
    assert mem.dump() == Hive.open(path).dump()
    # unchanged clean hive: a clean image, byte for byte the input
    out = mem.to_bytes()
    hd = header(out)
    assert hd["seq1"] == hd["seq2"] and hd["checksum_ok"] and hd["file_type"] == 0
    assert hd["bins"] == len(out) - 4096
    if header(blob)["checksum_ok"]:
        assert out == blob[:len(out)]


def test_memory_edit_written_back_read_by_oracles(tmp_path):
    data = Hive.create(None, minor=5).to_bytes()
    with Hive.from_bytes(data, write=True) as h:
        assert not h.changed
        k = h.create_key("Soft\\Ware")
        k.set_value("sz", REG_SZ, "hello")
        k.set_value("ex", REG_EXPAND_SZ, "%SystemRoot%\\x")
        k.set_value("multi", REG_MULTI_SZ, ["a", "bb"])
        k.set_value("dw", REG_DWORD, 0xDEADBEEF)
        k.set_value("qw", REG_QWORD, 1 << 40)
        k.set_value("big", REG_BINARY, bytes(range(256)) * 100)
        h.create_key("Gone\\Child")
        h.delete_key("Gone")
        assert h.changed
    assert not list(tmp_path.iterdir())             # nothing written anywhere
    out = h.to_bytes()
    assert header(out)["seq1"] == header(out)["seq2"] == header(data)["seq1"] + 1
    p = tmp_path / "SOFTWARE"
    p.write_bytes(out)
    expect = {"": {}, "Soft": {}, "Soft\\Ware": {
        "sz": (REG_SZ, "hello\0".encode("utf-16-le")),
        "ex": (REG_EXPAND_SZ, "%SystemRoot%\\x\0".encode("utf-16-le")),
        "multi": (REG_MULTI_SZ, "a\0bb\0\0".encode("utf-16-le")),
        "dw": (REG_DWORD, bytes.fromhex("efbeadde")),
        "qw": (REG_QWORD, bytes.fromhex("0000000000010000")),
        "big": (REG_BINARY, bytes(range(256)) * 100)}}
    check_oracles(p, expect)
    got = subprocess.run(["hivexget", str(p), "\\Soft\\Ware", "sz"], capture_output=True,
                         text=True, check=True).stdout
    assert got == "hello\n"


def test_memory_edit_of_real_hive(hives, tmp_path):
    blob = lzma.decompress((hives / "regipy" / "SYSTEM.xz").read_bytes())
    exp = Hive.from_bytes(blob).dump()
    with Hive.from_bytes(blob, write=True) as w:
        w.key("Select").set_value("Current", REG_DWORD, 2)
        w.create_key("WimfsTest\\Parameters").set_value("ImagePath", REG_EXPAND_SZ,
                                                        "system32\\drivers\\wimfs.sys")
        w.delete_key("ControlSet002")
    exp["Select"]["Current"] = (REG_DWORD, b"\2\0\0\0")
    exp["WimfsTest"] = {}
    exp["WimfsTest\\Parameters"] = {
        "ImagePath": (REG_EXPAND_SZ, "system32\\drivers\\wimfs.sys\0".encode("utf-16-le"))}
    exp = {k: v for k, v in exp.items() if not k.lower().startswith("controlset002")}
    out = w.to_bytes()
    hd, old = header(out), header(blob)
    assert hd["seq1"] == hd["seq2"] == max(old["seq1"], old["seq2"]) + 1 and hd["checksum_ok"]
    p = tmp_path / "SYSTEM"
    p.write_bytes(out)
    assert Hive.open(p).dump() == exp
    assert oracles.same_as_hivexml(oracles.ours(str(p)), oracles.hivexml(p)) == []
    got = subprocess.run(["hivexget", str(p), "\\Select", "Current"], capture_output=True,
                         text=True, check=True).stdout
    assert int(got) == 2


@pytest.mark.parametrize("dirty,recovered", [
    ("NewDirtyHive1/NewDirtyHive", "NewDirtyHive1/RecoveredHive_Windows10"),   # HvLE logs
    ("OldDirtyHive/OldDirtyHive", "OldDirtyHive/RecoveredHive_Windows7"),      # DIRT logs
])
def test_memory_log_replay_matches_windows(hives, tmp_path, dirty, recovered):
    src = hives / "yarp" / dirty
    blob = src.read_bytes()
    logs = [(src.parent / (src.name + s)).read_bytes() for s in (".LOG1", ".LOG2")]
    want = Hive.open(hives / "yarp" / recovered).dump()
    raw = Hive.from_bytes(blob)
    assert raw.dirty and raw.dump() != want
    with pytest.raises(RegfDirtyError):
        Hive.from_bytes(blob, write=True)
    for order in (logs, logs[::-1]):
        h = Hive.from_bytes(blob, logs=order)
        assert h.replayed_logs and not h.dirty
        assert h.dump() == want
    with Hive.from_bytes(blob, write=True, logs=logs) as w:
        w.create_key("after_replay")
    out = w.to_bytes()
    hd = header(out)
    assert hd["seq1"] == hd["seq2"] and hd["checksum_ok"] and hd["bins"] == len(out) - 4096
    exp = dict(want)
    exp["after_replay"] = {}
    assert Hive.from_bytes(out).dump() == exp
    p = tmp_path / "hive"
    p.write_bytes(out)
    assert oracles.same_as_hivexml(oracles.ours(str(p)), oracles.hivexml(p)) == []


def test_memory_context_manager_discards_on_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = Hive.create(None).to_bytes()
    with pytest.raises(RuntimeError):
        with Hive.from_bytes(data, write=True) as h:
            h.create_key("A")
            raise RuntimeError("boom")
    with pytest.raises(RegfStateError):
        h.to_bytes()
    # a failed edit inside the block: the hive is discarded as well
    with pytest.raises(KeyNotFoundError):
        with Hive.from_bytes(data, write=True) as h:
            h.create_key("B")
            h.delete_key("does\\not\\exist")
    with pytest.raises(RegfStateError):
        h.to_bytes()
    assert not os.listdir(tmp_path)
    # read-only in-memory hives refuse edits; an untouched writable one is unchanged
    with pytest.raises(RegfStateError):
        Hive.from_bytes(data).create_key("C")
    with Hive.from_bytes(data, write=True) as h:
        h.create_key("")                      # the root: nothing to do
    assert not h.changed and h.to_bytes() == data


def test_memory_hive_commits_to_a_path(tmp_path):
    data = Hive.create(None).to_bytes()
    h = Hive.from_bytes(data, write=True)
    h.create_key("X").set_value("v", REG_DWORD, 5)
    p = tmp_path / "hive"
    h.commit(p)
    assert h.path == str(p) and not h.changed
    assert Hive.open(p).key("X").get("v") == 5
    assert p.read_bytes() == h.to_bytes()
