"""Per-key name indexes: ``{upcase(name): offset}`` of a key's subkeys and
of its values, built on the first lookup in that key and kept up to date by
the edits, so ``set_value`` / ``create_key`` cost O(1) instead of a scan of
the key's list.

The first entry of a name in stored order wins, as a linear search would.
Subkey names are compared, not lh hashes, so hives with wrong hashes
(hivex writes them for non-ASCII names) still work.
"""

from __future__ import annotations

from . import lists
from .cells import Cells
from .format import upcase


class NameIndex:
    """The name indexes of one hive's keys (cached by nk offset)."""

    def __init__(self, cells: Cells):
        self.cells = cells
        self._subkeys: dict[int, dict[str, int]] = {}    # nk -> {upcase name: subkey nk}
        self._values: dict[int, dict[str, int]] = {}     # nk -> {upcase name: vk}

    def subkey(self, nk: int, name: str) -> int | None:
        """The subkey *name* of key *nk*, or None."""
        idx = self._subkeys.get(nk)
        if idx is None:
            idx = self._subkeys[nk] = {}
            cells = self.cells
            for o, _ in lists.read(cells, nk)[1]:
                idx.setdefault(upcase(cells.nk_name(cells.nk(o))), o)
        return idx.get(upcase(name))

    def value(self, nk: int, name: str) -> int | None:
        """The vk of value *name* of key *nk*, or None."""
        idx = self._values.get(nk)
        if idx is None:
            idx = self._values[nk] = {}
            for o in self.cells.value_offsets(nk):
                idx.setdefault(upcase(self.cells.vk(o)[0]), o)
        return idx.get(upcase(name))

    def added_subkey(self, nk: int, name: str, sub: int) -> None:
        idx = self._subkeys.get(nk)
        if idx is not None:
            idx.setdefault(upcase(name), sub)

    def added_value(self, nk: int, name: str, vk: int) -> None:
        idx = self._values.get(nk)
        if idx is not None:
            idx[upcase(name)] = vk

    def drop_subkeys(self, nk: int) -> None:
        """Forget the subkey index of *nk* (its list was rewritten)."""
        self._subkeys.pop(nk, None)

    def drop_values(self, nk: int) -> None:
        """Forget the value index of *nk* (a value was deleted)."""
        self._values.pop(nk, None)

    def drop(self, nk: int) -> None:
        """Forget both indexes of *nk* (its cell was freed)."""
        self._subkeys.pop(nk, None)
        self._values.pop(nk, None)
