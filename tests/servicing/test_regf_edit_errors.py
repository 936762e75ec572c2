"""An edit either completes or changes nothing usable: errors found before
any cell changed leave the hive as it was and editable; an error once cells
started changing makes the handle unusable, so a half-applied edit can never
be written (to a file or by to_bytes)."""

from __future__ import annotations

import pytest

from servicing.regf import (REG_BINARY, REG_DWORD, Hive, KeyNotFoundError, RegfCorruptError,
                            RegfStateError, ValueNotFoundError)


@pytest.fixture
def data():
    with Hive.from_bytes(Hive.create(None).to_bytes(), write=True) as h:
        h.create_key("Old\\Child").set_value("v", REG_DWORD, 1)
    return h.to_bytes()


@pytest.mark.parametrize("edit,exc", [
    (lambda h: h.create_key("New\\" + "x" * 600), RegfStateError),      # name too long
    (lambda h: h.create_key("New\\Ünï\\" + "ü" * 300), RegfStateError),  # 600 bytes UTF-16
    (lambda h: h.delete_key("Old\\Nope"), KeyNotFoundError),
    (lambda h: h.delete_key(""), RegfStateError),                       # the root
    (lambda h: h.rename_key("", "x"), RegfStateError),
    (lambda h: h.rename_key("Nope", "x"), KeyNotFoundError),
    (lambda h: h.rename_key("Old", "y" * 513), RegfStateError),
    (lambda h: h.key("Old").set_value("v", -1, b""), RegfStateError),    # bad type
    (lambda h: h.key("Old").set_value("v", REG_BINARY, 5), RegfStateError),  # not bytes
    (lambda h: h.key("Old").delete_value("nope"), ValueNotFoundError),
])
def test_refused_edit_changes_nothing(data, edit, exc):
    h = Hive.from_bytes(data, write=True)
    with pytest.raises(exc):
        edit(h)
    assert not h.changed and not h.has_key("New")
    assert h.to_bytes() == data
    h.create_key("After")                   # still usable
    assert Hive.from_bytes(h.to_bytes()).dump()["After"] == {}


def test_failure_while_changing_breaks_the_handle(data, tmp_path, monkeypatch):
    p = tmp_path / "hive"
    p.write_bytes(data)
    h = Hive.open(p, write=True)
    h.create_key("First")

    def boom(length):
        raise RegfCorruptError("simulated failure half-way")
    monkeypatch.setattr(h._alloc, "alloc", boom)
    with pytest.raises(RegfCorruptError):
        h.create_key("Second\\Third")
    monkeypatch.undo()
    for action in (lambda: h.create_key("X"), h.commit, h.to_bytes):
        with pytest.raises(RegfStateError, match="failed"):
            action()
    assert p.read_bytes() == data
