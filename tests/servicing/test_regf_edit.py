"""Edits verified by hivexml, hivexget and regipy (independent readers)."""

from __future__ import annotations

import os
import struct
import subprocess

import pytest

import oracles
from tests.servicing.conftest import unpack
from servicing.regf import (REG_BINARY, REG_DWORD, REG_DWORD_BIG_ENDIAN, REG_EXPAND_SZ,
                            REG_LINK, REG_MULTI_SZ, REG_NONE, REG_QWORD, REG_SZ, Hive,
                            KeyNotFoundError, RegfStateError, ValueNotFoundError)
from servicing.regf.format import checksum


def check_oracles(path, expect: dict):
    """hivexml, regipy and our reader all see exactly *expect* (raw dump)."""
    ours = Hive.open(path)
    assert ours.base.seq1 == ours.base.seq2
    assert ours.base.checksum_ok
    raw = open(path, "rb").read(512)
    assert struct.unpack_from("<I", raw, 508)[0] == checksum(raw)
    assert ours.dump() == expect
    norm = {p: {n: (oracles._tag(t), oracles.norm_data(t, d)) for n, (t, d) in v.items()}
            for p, v in expect.items()}
    assert oracles.same_as_hivexml(norm, oracles.hivexml(path)) == []
    theirs = oracles.regipy_norm(str(path))
    assert set(theirs) == set(expect)
    for p, vals in norm.items():
        assert set(theirs[p]) == set(vals)


@pytest.fixture(params=[5, 3])
def fresh(request, tmp_path):
    p = tmp_path / "hive"
    h = Hive.create(p, minor=request.param)
    h.commit()
    return p


def test_new_hive_valid(fresh):
    check_oracles(fresh, {"": {}})


SIZES = [0, 4, 5, 16344, 16345, 1 << 20]


def test_value_types_and_sizes(fresh):
    exp = {"": {}, "K": {}}
    with Hive.open(fresh, write=True) as h:
        k = h.create_key("K")
        for vtype, data in [(REG_SZ, "hello"), (REG_EXPAND_SZ, "%SystemRoot%\\x"),
                            (REG_MULTI_SZ, ["a", "bb", ""][:2]), (REG_DWORD, 0xDEADBEEF),
                            (REG_DWORD_BIG_ENDIAN, 7), (REG_QWORD, 1 << 40),
                            (REG_NONE, b""), (REG_LINK, "\\Registry\\Machine\\X"),
                            (0x12345, b"raw-unknown")]:
            v = k.set_value("t%d" % vtype, vtype, data)
            exp["K"]["t%d" % vtype] = (vtype, v.raw)
        for n in SIZES:
            blob = bytes((i * 7 + n) & 0xFF for i in range(n))
            k.set_value("b%d" % n, REG_BINARY, blob)
            exp["K"]["b%d" % n] = (REG_BINARY, blob)
        k.set_value("", REG_SZ, "default")
        exp["K"][""] = (REG_SZ, "default\0".encode("utf-16-le"))
    check_oracles(fresh, exp)
    h = Hive.open(fresh)
    assert h.key("k").get("t4") == 0xDEADBEEF
    assert h.key("K").get("t7") == ["a", "bb"]
    # big data records only where the format allows them
    k = h.key("K")
    vk = k.value("b16345").offset
    doff = struct.unpack_from("<I", h._d, vk + 12)[0]
    sig = bytes(h._d[doff + 4: doff + 6])
    assert (sig == b"db") == (h.base.minor >= 4)
    vk = k.value("b16344").offset
    doff = struct.unpack_from("<I", h._d, vk + 12)[0]
    assert struct.unpack_from("<i", h._d, doff)[0] <= -16348      # one plain cell
    # hivexget reads a value back byte-exact
    out = subprocess.run(["hivexget", str(fresh), "\\K", "t4"], capture_output=True,
                         text=True, check=True).stdout.strip()
    assert int(out) & 0xFFFFFFFF == 0xDEADBEEF   # hivexget prints int32


def test_many_subkeys_ri_and_unicode(fresh):
    names = ["k%05d" % i for i in range(3000)] + ["Привет", "straße", "ÄÖÜ", "日本語", "z\u0130"]
    with Hive.open(fresh, write=True) as h:
        p = h.create_key("Many")
        for n in reversed(names):
            p.create_key(n)
    h = Hive.open(fresh)
    kind, ents = h._sub_entries(h.key("Many").offset)
    lst = struct.unpack_from("<I", h._d, h.key("Many").offset + 32)[0]
    assert bytes(h._d[lst + 4: lst + 6]) == b"ri"
    got = [k.name for k in h.key("Many").subkeys()]
    from servicing.regf.format import sort_key
    assert got == sorted(names, key=sort_key)
    assert h.key("many\\ПРИВЕТ").name == "Привет"
    exp = {"": {}, "Many": {}}
    exp.update({"Many\\" + n: {} for n in names})
    check_oracles(fresh, exp)
    for n in ["Привет", "k01234", "日本語"]:
        r = subprocess.run(["hivexsh", str(fresh)], input="cd \\Many\\%s\nls\n" % n,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


def test_delete_frees_cells_and_reuses(fresh):
    blob = os.urandom(200_000)
    with Hive.open(fresh, write=True) as h:
        k = h.create_key("A\\B\\C")
        k.set_value("big", REG_BINARY, blob)
        for i in range(50):
            h.create_key("A\\B\\S%d" % i).set_value("v", REG_SZ, "x" * i)
    size1 = os.path.getsize(fresh)
    with Hive.open(fresh, write=True) as h:
        h.delete_key("A\\B")
        assert not h.has_key("A\\B")
    check_oracles(fresh, {"": {}, "A": {}})
    with Hive.open(fresh, write=True) as h:
        k = h.create_key("A\\B\\C")
        k.set_value("big", REG_BINARY, blob)
        for i in range(50):
            h.create_key("A\\B\\S%d" % i).set_value("v", REG_SZ, "x" * i)
    assert os.path.getsize(fresh) == size1          # freed cells were reused
    with Hive.open(fresh, write=True) as h:
        h.key("A\\B\\C").delete_value("big")
        with pytest.raises(ValueNotFoundError):
            h.key("A\\B\\C").delete_value("big")
    h = Hive.open(fresh)
    assert h.key("A\\B\\C").values() == []


def test_security_refcounts(fresh):
    with Hive.open(fresh, write=True) as h:
        sk = h.root.security_offset
        rc0 = struct.unpack_from("<I", h._d, sk + 16)[0]
        h.create_key("X\\Y\\Z")
        assert struct.unpack_from("<I", h._d, sk + 16)[0] == rc0 + 3
        assert h.key("X\\Y").security_descriptor == h.root.security_descriptor
        h.delete_key("X")
        assert struct.unpack_from("<I", h._d, sk + 16)[0] == rc0


def test_rename_key(fresh):
    with Hive.open(fresh, write=True) as h:
        h.create_key("Old\\Child").set_value("v", REG_DWORD, 1)
        h.create_key("Aaa")
        h.rename_key("Old", "Zzz-new-longer-name")
        with pytest.raises(RegfStateError):
            h.rename_key("Aaa", "zzz-NEW-longer-name")
    check_oracles(fresh, {"": {}, "Aaa": {}, "Zzz-new-longer-name": {},
                          "Zzz-new-longer-name\\Child": {"v": (REG_DWORD, b"\1\0\0\0")}})
    assert Hive.open(fresh).key("zzz-new-longer-name\\child").parent.name == "Zzz-new-longer-name"


def test_transaction_all_or_nothing(fresh):
    before = open(fresh, "rb").read()
    with pytest.raises(RuntimeError):
        with Hive.open(fresh, write=True) as h:
            h.create_key("A").set_value("x", REG_DWORD, 1)
            raise RuntimeError("boom")
    assert open(fresh, "rb").read() == before
    with pytest.raises(KeyNotFoundError):
        with Hive.open(fresh, write=True) as h:
            h.create_key("B")
            h.delete_key("does\\not\\exist")
    assert open(fresh, "rb").read() == before
    assert not [f for f in os.listdir(os.path.dirname(fresh)) if f.endswith(".tmp")]


def test_edit_real_hive(hives, tmp_path):
    p = unpack(hives / "regipy" / "SYSTEM.xz", tmp_path)
    h = Hive.open(p)
    exp = h.dump()
    with Hive.open(p, write=True) as w:
        w.key("Select").set_value("Current", REG_DWORD, 2)
        w.create_key("ControlSet001\\Services\\wimfs\\Parameters").set_value(
            "ImagePath", REG_EXPAND_SZ, "system32\\drivers\\wimfs.sys")
        w.delete_key("ControlSet002")
        w.key("Setup").delete_value(w.key("Setup").values()[0].name)
    first = h.key("Setup").values()[0].name
    svc = "ControlSet001\\" + h.key("ControlSet001\\Services").name
    exp["Select"]["Current"] = (REG_DWORD, b"\2\0\0\0")
    exp[svc + "\\wimfs"] = {}
    exp[svc + "\\wimfs\\Parameters"] = {
        "ImagePath": (REG_EXPAND_SZ, "system32\\drivers\\wimfs.sys\0".encode("utf-16-le"))}
    exp = {k: v for k, v in exp.items() if not k.lower().startswith("controlset002")}
    del exp["Setup"][first]
    got = Hive.open(p).dump()
    assert got == exp
    assert oracles.same_as_hivexml(oracles.ours(str(p)), oracles.hivexml(p)) == []
