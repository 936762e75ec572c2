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
    """The name indexes of one hive's keys (cached by nk offset).

    Hives parsed from identical bytes may share the indexes of the keys none of them
    changed (:meth:`share`): an ``IMAGE.wim:all`` run edits the same SYSTEM hive of
    every edition, and builds each big key's index once. A key whose lists this hive
    edits (every edit reports it here) gets a private copy first and stops using the
    shared one."""

    def __init__(self, cells: Cells):
        self.cells = cells
        self._subkeys: dict[int, dict[str, int]] = {}    # nk -> {upcase name: subkey nk}
        self._values: dict[int, dict[str, int]] = {}     # nk -> {upcase name: vk}
        self._shared: tuple[dict, dict] | None = None
        self._touched: set[int] = set()

    def share(self, shared: tuple[dict, dict]) -> None:
        """Use (and fill) *shared* (subkey, value) indexes of untouched keys: only for
        hives opened from the same bytes, before any lookup."""
        self._shared = shared

    def _index(self, which: int, nk: int, build) -> dict[str, int]:
        local = self._values if which else self._subkeys
        idx = local.get(nk)
        if idx is not None:
            return idx
        if self._shared is not None and nk not in self._touched:
            shared = self._shared[which]
            idx = shared.get(nk)
            if idx is None:
                idx = shared[nk] = build(nk)
            return idx
        idx = local[nk] = build(nk)
        return idx

    def _build_subkeys(self, nk: int) -> dict[str, int]:
        idx: dict[str, int] = {}
        cells = self.cells
        for o, _ in lists.read(cells, nk)[1]:
            idx.setdefault(upcase(cells.nk_name(cells.nk(o))), o)
        return idx

    def _build_values(self, nk: int) -> dict[str, int]:
        idx: dict[str, int] = {}
        for o in self.cells.value_offsets(nk):
            idx.setdefault(upcase(self.cells.vk(o)[0]), o)
        return idx

    def subkey(self, nk: int, name: str) -> int | None:
        """The subkey *name* of key *nk*, or None."""
        return self._index(0, nk, self._build_subkeys).get(upcase(name))

    def value(self, nk: int, name: str) -> int | None:
        """The vk of value *name* of key *nk*, or None."""
        return self._index(1, nk, self._build_values).get(upcase(name))

    def _own(self, which: int, nk: int) -> dict[str, int] | None:
        """*nk*'s index of this hive alone (copied from the shared one), before an edit
        changes it; None when none is built."""
        local = self._values if which else self._subkeys
        idx = local.get(nk)
        if idx is None and self._shared is not None and nk not in self._touched:
            shared = self._shared[which].get(nk)
            if shared is not None:
                idx = local[nk] = dict(shared)
        self._touched.add(nk)
        return idx

    def added_subkey(self, nk: int, name: str, sub: int) -> None:
        idx = self._own(0, nk)
        if idx is not None:
            idx.setdefault(upcase(name), sub)

    def added_value(self, nk: int, name: str, vk: int) -> None:
        idx = self._own(1, nk)
        if idx is not None:
            idx[upcase(name)] = vk

    def drop_subkeys(self, nk: int) -> None:
        """Forget the subkey index of *nk* (its list was rewritten)."""
        self._touched.add(nk)
        self._subkeys.pop(nk, None)

    def drop_values(self, nk: int) -> None:
        """Forget the value index of *nk* (a value was deleted)."""
        self._touched.add(nk)
        self._values.pop(nk, None)

    def drop(self, nk: int) -> None:
        """Forget both indexes of *nk* (its cell was freed)."""
        self._touched.add(nk)
        self._subkeys.pop(nk, None)
        self._values.pop(nk, None)
