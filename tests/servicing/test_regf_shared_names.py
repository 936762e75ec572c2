"""Hives opened from the same bytes share the name indexes of the keys none of them
changed (``Hive.share_name_indexes``, used by ``IMAGE.wim:all`` runs). Oracle: a hive
opened from the same bytes with no sharing, given the same edits; after every random
edit both the editing hive and an unedited sharer must answer every lookup exactly as
their unshared twins (and the edited bytes equal), so an index leaking an edit into a
sharer, or a stale shared index, fails."""

from __future__ import annotations

import random

import pytest

from servicing.regf import REG_DWORD, REG_SZ, Hive, RegfError
from wimfs.format.xmlinfo import frozen_filetime


def _base() -> bytes:
    h = Hive.create(None, minor=5)
    rnd = random.Random(7)
    for k in range(12):
        key = h.root.create_key(f"K{k}")
        for v in range(rnd.randrange(0, 30)):
            key.set_value(f"v{v}", REG_DWORD, v)
        for s in range(rnd.randrange(0, 25)):
            key.create_key(f"S{s}").set_value("x", REG_SZ, f"{k}.{s}")
    return h.to_bytes()


def _answers(h: Hive, names: list[str]) -> list:
    out = []
    for k in range(14):
        try:
            key = h.key(f"K{k}")
        except RegfError:
            out.append(None)
            continue
        out.append([(n, key.get(n, "-")) for n in names])
        out.append(sorted(s.name for s in key.subkeys()))
        for s in (f"S{i}" for i in range(27)):
            try:
                out.append(key.key(s).get("x", "-") if hasattr(key, "key") else
                           h.key(f"K{k}\\{s}").get("x", "-"))
            except RegfError:
                out.append(None)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_shared_indexes_never_leak_edits(seed):
    with frozen_filetime():         # both hives stamp the same times: bytes comparable
        _run(seed)


def _run(seed: int) -> None:
    data = _base()
    shared = ({}, {})
    edited, reader = Hive.from_bytes(data, write=True), Hive.from_bytes(data)
    edited.share_name_indexes(shared)
    reader.share_name_indexes(shared)
    twin, fresh = Hive.from_bytes(data, write=True), Hive.from_bytes(data)
    names = [f"v{i}" for i in range(32)] + ["new", "NEW"]
    rnd = random.Random(seed)
    assert _answers(reader, names) == _answers(fresh, names)     # fills the shared dicts
    for _ in range(40):
        k = f"K{rnd.randrange(14)}"
        op = rnd.choice(["set", "new", "delv", "newkey", "delkey", "rename"])
        a, b = rnd.randrange(32), rnd.randrange(27)
        for h in (edited, twin):
            try:
                if op == "set":
                    h.key(k).set_value(f"v{a}", REG_DWORD, 99)
                elif op == "new":
                    h.key(k).set_value("new", REG_SZ, "n")
                elif op == "delv":
                    h.key(k).delete_value(f"v{a}")
                elif op == "newkey":
                    h.create_key(f"{k}\\S{b}").set_value("x", REG_SZ, "c")
                elif op == "delkey":
                    h.delete_key(f"{k}\\S{b}")
                else:
                    h.rename_key(f"{k}\\S{b}", f"S{a % 27}")
            except RegfError:
                pass
        assert _answers(edited, names) == _answers(twin, names)
        assert _answers(reader, names) == _answers(fresh, names)
    assert edited.to_bytes() == twin.to_bytes()
