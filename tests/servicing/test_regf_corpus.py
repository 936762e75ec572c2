"""Reading every corpus hive; agreement with hivexml; log replay vs Windows."""

from __future__ import annotations

import os

import pytest

import oracles
from tests.servicing.conftest import corpus_dir, require_corpus, unpack
from servicing.regf import Hive, RegfCorruptError, RegfDirtyError, RegfUnsupportedError
from servicing.regf.format import lh_hash

_C = corpus_dir()
ALL = sorted(p for p in (_C / "hives").rglob("*") if p.is_file()) if _C else []
PRIMARY = [p for p in ALL if not p.name.lower().endswith((".xz", ".gz", ".txt", ".md"))
           and not p.name.upper().startswith("README") and ".LOG" not in p.name.upper()]


def _header(p):
    """(seq1, seq2, major, minor) straight from the base block, read here independently of
    the engine: a hive whose sequence numbers differ was left dirty by Windows."""
    import struct
    with open(p, "rb") as f:
        raw = f.read(28)
    if len(raw) < 28 or raw[:4] != b"regf":
        return None
    seq1, seq2, _ts, major, minor = struct.unpack_from("<IIQII", raw, 4)
    return seq1, seq2, major, minor


def _is_clean(p):
    h = _header(p)
    return h is not None and h[0] == h[1] and (h[2], h[3]) >= (1, 2)


def _is_nt3(p):
    h = _header(p)
    return h is not None and h[2] == 1 and h[3] < 2


CLEAN = [p for p in PRIMARY if "Dirty" not in str(p) and p.name not in
         ("SYSTEM.DAT", "USER.DAT", "TruncatedHive") and _is_clean(p)
         and not (p.name == "SECURITY" and "regipy" in str(p) or
                  p.name == "SECURITY" and "Zimmerman" in str(p))]


def _id(p):
    return str(p.relative_to(_C / "hives")) if _C else str(p)


def test_corpus_present():
    require_corpus()
    assert PRIMARY


@pytest.mark.parametrize("path", PRIMARY, ids=_id)
def test_every_hive_opens(path):
    if path.name in ("SYSTEM.DAT", "USER.DAT"):           # Windows 9x CREG negatives
        with pytest.raises(RegfUnsupportedError, match="CREG"):
            Hive.open(path)
        return
    if _is_nt3(path):                                     # NT 3.x layout (hivex refuses too)
        with pytest.raises(RegfUnsupportedError, match="NT 3"):
            Hive.open(path)
        return
    if path.name == "TruncatedHive":                      # bins cut after 8 KiB
        with pytest.raises(RegfCorruptError, match="truncated"):
            Hive.open(path)
        return
    h = Hive.open(path)
    d = h.dump()
    assert "" in d
    assert len(d) >= 1


@pytest.mark.parametrize("path", CLEAN, ids=_id)
def test_clean_hive_matches_hivexml(path):
    h = Hive.open(path)
    assert not h.dirty
    assert oracles.same_as_hivexml(oracles.ours(h), oracles.hivexml(path)) == []


# regipy decodes compressed (Latin-1) names as UTF-8 with replacement and
# mangles some multi-strings: the hives exercising that (hivex/special,
# nt-hive/testhive, yarp/CompHive) are checked against hivexml only.
REGIPY_LOSSY = ("special", "testhive", "CompHive")


@pytest.mark.parametrize("path", [p for p in CLEAN if p.stat().st_size < 1_000_000
                                  and p.name not in REGIPY_LOSSY], ids=_id)
def test_clean_hive_matches_regipy(path):
    ours = oracles.ours(str(path))
    theirs = oracles.regipy_norm(str(path))
    assert set(ours) == set(theirs)
    for key, vals in ours.items():
        assert set(vals) == set(theirs[key]), key
        for n, (t, data) in vals.items():
            rt, rdata = theirs[key][n]
            assert rt == (t if t != "unknown" else rt), (key, n)
            if isinstance(data, int):
                assert data == rdata, (key, n)
            elif t in (1, 2) and isinstance(rdata, str):
                # regipy's recurse_subkeys trims long strings: prefix check
                assert data.startswith(rdata) and len(rdata) >= min(len(data), 200), (key, n)


@pytest.mark.parametrize("dirty,recovered", [
    ("NewDirtyHive1/NewDirtyHive", "NewDirtyHive1/RecoveredHive_Windows10"),   # HvLE logs
    ("OldDirtyHive/OldDirtyHive", "OldDirtyHive/RecoveredHive_Windows7"),      # DIRT logs
])
def test_log_replay_matches_windows(hives, tmp_path, dirty, recovered):
    src = hives / "yarp" / dirty
    for f in src.parent.iterdir():
        if f.name.startswith(src.name):
            unpack(f, tmp_path)
    work = tmp_path / src.name
    # the primary alone is not what Windows recovered
    raw = Hive.open(work, replay_logs=False)
    assert raw.dirty
    want = Hive.open(hives / "yarp" / recovered).dump()
    assert raw.dump() != want
    with pytest.raises(RegfDirtyError):
        Hive.open(work, write=True, replay_logs=False)
    h = Hive.open(work)
    assert h.replayed_logs and not h.dirty
    assert h.dump() == want
    # editing replays, commits a clean hive and neutralises the logs
    with Hive.open(work, write=True) as w:
        w.create_key("after_replay")
    h2 = Hive.open(work)
    assert h2.base.seq1 == h2.base.seq2 and h2.base.checksum_ok
    exp = dict(want)
    exp["after_replay"] = {}
    assert h2.dump() == exp
    assert all(os.path.getsize(f) == 0 for f in tmp_path.iterdir() if ".LOG" in f.name)
    assert oracles.same_as_hivexml(oracles.ours(h2), oracles.hivexml(work)) == []


def test_dirty_without_logs_refused(hives, tmp_path):
    p = unpack(hives / "regipy" / "SECURITY", tmp_path)
    h = Hive.open(p)
    assert h.dirty
    with pytest.raises(RegfDirtyError, match="dirty"):
        Hive.open(p, write=True)


def test_regipy_dirty_hive_with_logs(hives, tmp_path):
    for n in ("transactions_NTUSER.DAT.xz", "transactions_ntuser.dat.log1.xz",
              "transactions_ntuser.dat.log2.xz"):
        unpack(hives / "regipy" / n, tmp_path)
    p = tmp_path / "transactions_NTUSER.DAT"
    h = Hive.open(p)
    assert h.replayed_logs and not h.dirty
    # our replay is a valid hive according to hivexml after commit
    with Hive.open(p, write=True):
        pass
    assert oracles.same_as_hivexml(oracles.ours(str(p)), oracles.hivexml(p)) == []


def test_lh_hash_matches_windows(hives):
    """Every lh entry Windows wrote carries lh_hash(name) -- incl. non-ASCII."""
    checked = 0
    for p in [hives / "yarp" / "UnicodeHive", hives / "regipy" / "SYSTEM",
              hives / "hivex" / "special", hives / "notatin" / "NTUSER.DAT"]:
        h = Hive.open(p)
        if h.base.minor < 5 and "UnicodeHive" not in str(p):
            continue
        for _, k in h.walk():
            kind, ents = h._sub_entries(k.offset)
            if kind != "lh":
                continue
            for off, stored in ents:
                name = h._nk_name(off)
                if "special" in str(p) and not name.isascii():
                    continue     # written by hivex, whose hash is wrong for non-ASCII
                assert stored == lh_hash(name), (p.name, name)
                checked += 1
    assert checked > 1000
