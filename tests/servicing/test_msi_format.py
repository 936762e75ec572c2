"""servicing.formats.msi / msp against msitools (msiinfo), libgsf (gsf) and 7-Zip on the
real MSIs and MSPs of the corpus, the packed-GUID rules, and hostile compound files."""

from __future__ import annotations

import struct
import subprocess
import time
import uuid

import pytest

from servicing.features.msi_apps import squash_guid, unsquash_guid
from servicing.formats.msi import (
    CompoundFile, Database, MsiError, Validate, decode_stream_name, validation_flags)
from servicing.formats.msp import read_patch
from tests.servicing.msi_build import gsf_prop, patch_summary, rebuild
from tests.servicing.msi_fixture import CORPUS, MSPS, gsf_transform, msiinfo_suminfo, packed

FILES = sorted(p for p in CORPUS.rglob("*") if p.suffix in (".msi", ".msp"))
pytestmark = pytest.mark.skipif(not FILES, reason="MSI corpus not found")
GDR1 = MSPS["gdr1"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_tables_equal_msiinfo_export(path, tmp_path):
    """Every table, byte for byte as `msiinfo export` writes it (rows in stored order;
    it writes stream columns' data as files in its working folder: tmp_path)."""
    db = Database(CompoundFile(path.read_bytes(), path.name))
    listed = subprocess.run(["msiinfo", "tables", str(path)], check=True,
                            capture_output=True, text=True).stdout.split()
    assert set(db.tables()) == set(listed) - {"_SummaryInformation", "_ForceCodepage"}
    for table in db.tables():
        out = subprocess.run(["msiinfo", "export", str(path), table], check=True,
                             capture_output=True, cwd=tmp_path).stdout
        body = out.split(b"\r\n", 3)[3]
        ours = "".join("\t".join("" if v is None else str(v) for v in row.values()) + "\r\n"
                       for row in db.rows(table))
        assert ours.encode("cp1252") == body, table


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_summary_equals_msiinfo(path):
    si = CompoundFile(path.read_bytes(), path.name).summary()
    theirs = msiinfo_suminfo(path)
    for pid, label in ((2, "Title"), (3, "Subject"), (4, "Author"), (7, "Template"),
                       (8, "Last author"), (9, "Revision number (UUID)"),
                       (18, "Application")):
        assert si.text(pid) == theirs.get(label, ""), label
    for pid, label in ((14, "Version"), (15, "Source"), (19, "Security")):
        if label in theirs:
            assert si.number(pid) == int(theirs[label].split()[0]), label


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_stream_names_equal_7zip(path):
    """7-Zip decodes Windows Installer stream names too (``!`` for tables, ``[5]`` for
    the \\005 of the summary information)."""
    out = subprocess.run(["7zz", "l", "-slt", "-tCompound", str(path)], check=True,
                         capture_output=True, text=True).stdout
    theirs = {ln[7:] for ln in out.splitlines() if ln.startswith("Path = ")} - {str(path)}
    cf = CompoundFile(path.read_bytes(), path.name)
    ours = set()
    for st in [()] + [(s,) for s in cf.storages()]:
        prefix = "".join(f"{s}/" for s in st)
        ours |= {prefix + decode_stream_name(n).replace("\x05", "[5]")
                 for n in cf.streams(st)}
        ours |= {s for s in st}
    assert ours == theirs


@pytest.mark.parametrize("name", sorted(MSPS))
def test_patch_and_transforms_equal_msitools_and_gsf(name, tmp_path):
    msp = MSPS[name]
    p = read_patch(msp.read_bytes(), msp.name)
    si = msiinfo_suminfo(msp)
    assert p.patch_code == si["Revision number (UUID)"][:38]
    assert list(p.targets) == si["Template"].split(";")
    assert [f":{t.name}" for t in p.transforms] == \
        [t for t in si["Last author"].split(";") if not t.startswith(":#")]
    meta = subprocess.run(["msiinfo", "export", str(msp), "MsiPatchMetadata"], check=True,
                          capture_output=True, text=True).stdout.splitlines()[3:]
    assert p.metadata == {r.split("\t")[1]: r.split("\t")[2] for r in meta
                          if r.startswith("\t")}
    for t in p.transforms:
        g = gsf_transform(msp, t.name, tmp_path / t.name)
        cc = int(g["gsf:character-count"])
        assert (t.flags, t.error_flags) == (cc >> 16, cc & 0xFFFF)
        assert f"{t.from_product}{t.from_version};{t.to_product}{t.to_version};" \
               f"{t.upgrade_code}" == g["meta:editing-cycles"]
        assert f"{t.platform};{','.join(map(str, t.languages))}" == g["meta:template"]


def test_validation_word_is_the_high_word():
    """The corpus' transforms decide it (NOTES-h-msi.md): the low word is the five
    error-condition flags, the high word a coherent validation set."""
    flags = set()
    for msp in MSPS.values():
        for t in read_patch(msp.read_bytes(), msp.name).transforms:
            assert t.error_flags == 0x1F
            flags.add(t.flags)
    assert flags == {Validate.UPGRADECODE | Validate.NEWEQUALBASEVERSION |
                     Validate.UPDATEVERSION | Validate.PRODUCT,
                     Validate.UPGRADECODE | Validate.NEWEQUALBASEVERSION |
                     Validate.UPDATEVERSION}
    assert validation_flags(0x0922001F) == (0x0922, 0x001F)


GUIDS = ["{CB2F7EDD-9D1F-43C1-90FC-4F52EAE172A1}"] + [
    msiinfo_suminfo(p)["Revision number (UUID)"][:38] for p in FILES]


@pytest.mark.parametrize("guid", GUIDS)
def test_packed_guids(guid):
    assert squash_guid(guid) == packed(guid) == squash_guid(guid.lower())
    assert unsquash_guid(packed(guid)) == guid.upper()
    assert unsquash_guid(packed(guid).lower()) == guid.upper()


def test_packed_guid_known_pair():
    # Office 2007 Professional's product code and the key name Windows Installer gives it
    # (Classes\Installer\Products\00002109030000000000000000F01FEC, widely quoted in
    # Microsoft's removal articles). dism-reference.md 2.4.1's own example mistypes the
    # last group (AE2E711A for AE1E271A; its stated rule gives the latter).
    assert squash_guid("{90120000-0030-0000-0000-0000000FF1CE}") == \
        "00002109030000000000000000F01FEC"
    assert squash_guid("{CB2F7EDD-9D1F-43C1-90FC-4F52EAE172A1}") == \
        "DDE7F2BCF1D91C3409CFF425AE1E271A"


@pytest.mark.parametrize("bad", ["", "CB2F7EDD9D1F43C190FC4F52EAE172A1", "{CB2F7EDD}",
                                 "{CB2F7EDD-9D1F-43C1-90FC-4F52EAE172AZ}",
                                 "{CB2F7EDD-9D1F-43C1-90FC4F52EAE172A1}", "x" * 1000])
def test_guids_of_the_wrong_shape(bad):
    with pytest.raises(ValueError, match="is not a GUID"):
        squash_guid(bad)


@pytest.mark.parametrize("bad", ["", "G" * 32, "A" * 31, "A" * 33, "{CB2F7EDD}",
                                 "DDE7F2BC-F1D9-1C34-09CF-F425AE1E27"])
def test_packed_guids_of_the_wrong_shape(bad):
    assert unsquash_guid(bad) is None


# -- hostile compound files ----------------------------------------------------------------

def _header(data: bytes) -> tuple[int, int, int, int]:
    ss = 1 << struct.unpack_from("<H", data, 0x1E)[0]
    return ss, struct.unpack_from("<I", data, 0x30)[0], \
        struct.unpack_from("<I", data, 0x3C)[0], struct.unpack_from("<I", data, 0x4C)[0]


def _set_fat(data: bytes, sector: int, value: int) -> bytes:
    ss, _, _, fat0 = _header(data)
    out = bytearray(data)
    struct.pack_into("<I", out, (fat0 + 1) * ss + sector * 4, value)
    return bytes(out)


def _hostile() -> dict[str, bytes]:
    data = GDR1.read_bytes()
    ss, dir_start, minifat, _ = _header(data)
    root = (dir_start + 1) * ss
    cases = {f"truncated to {n}": data[:n] for n in (0, 100, 511, 512, 1500, 4096,
                                                      len(data) // 2)}
    cases["cyclic directory chain"] = _set_fat(data, dir_start, dir_start)
    cases["cyclic MiniFAT chain"] = _set_fat(data, minifat, minifat)
    ministream = struct.unpack_from("<I", data, root + 0x74)[0]
    cases["cyclic mini stream chain"] = _set_fat(data, ministream, ministream)
    looped = bytearray(data)
    struct.pack_into("<I", looped, root + 0x4C, 0)          # root's child: itself
    cases["cyclic directory tree"] = bytes(looped)
    huge = bytearray(data)
    struct.pack_into("<I", huge, root + 0x78, 0x7FFFFFF0)   # mini stream of 2 GiB
    cases["stream larger than the file"] = bytes(huge)
    cases["not a compound file"] = b"MSCF" + bytes(4000)
    return cases


@pytest.mark.parametrize("case", sorted(_hostile()))
def test_hostile_compound_files(case):
    data = _hostile()[case]
    t = time.monotonic()
    with pytest.raises(MsiError) as exc:
        read_patch(data, "evil.msp")
    text = str(exc.value)
    assert text.startswith("evil.msp: ") and "\n" not in text and len(text) < 300
    assert time.monotonic() - t < 5


def _patch_with(tmp_path, targets: str, revision: str, transforms: str | None = None):
    out = tmp_path / "p.msp"
    si = patch_summary(targets, revision, transforms or ":rtm.2;:#rtm.2")
    return rebuild(GDR1, out, tmp_path / "w", {"\x05SummaryInformation": si})


def _guids(n: int) -> str:
    return ";".join(f"{{{uuid.UUID(int=i)}}}".upper() for i in range(1, n + 1))


def test_property_set_builder_is_read_by_gsf(tmp_path):
    """The hostile patches' summary information, read back by libgsf (which refuses
    property strings of 64 KiB or more, so 1,000 targets here)."""
    targets = _guids(1000)
    msp = _patch_with(tmp_path, targets, "{780B530E-03AD-47AF-A128-DA08DB495253}")
    assert gsf_prop(msp, "meta:template") == targets
    assert gsf_prop(msp, "gsf:last-saved-by") == ":rtm.2;:#rtm.2"
    assert len(read_patch(msp.read_bytes(), msp.name).targets) == 1000


def test_ten_thousand_targets(tmp_path, monkeypatch):
    real = msiinfo_suminfo(GDR1)["Template"]
    msp = _patch_with(tmp_path, _guids(9_999) + ";" + real,
                      "{780B530E-03AD-47AF-A128-DA08DB495253}")
    t = time.monotonic()
    p = read_patch(msp.read_bytes(), msp.name)
    assert time.monotonic() - t < 5
    assert len(p.targets) == 10_000 and p.targets[-1] == real
    assert [x.name for x in p.transforms] == ["rtm.2"]
    import servicing.formats.msp as msp_format
    monkeypatch.setattr(msp_format, "MAX_TARGETS", 5_000)
    with pytest.raises(MsiError, match=r"^p.msp: 10000 target product codes \(more than 5000\)$"):
        read_patch(msp.read_bytes(), "p.msp")


@pytest.mark.parametrize("targets,revision,transforms,message", [
    ("{FB94421B-7FA3-4495-A9D7-212099C1914}", "{780B530E-03AD-47AF-A128-DA08DB495253}", None,
     "target product code '{FB94421B-7FA3-4495-A9D7-212099C1914}' is not a GUID"),
    ("FB94421B-7FA3-4495-A9D7-212099C19147", "{780B530E-03AD-47AF-A128-DA08DB495253}", None,
     "is not a GUID"),
    ("{FB94421B-7FA3-4495-A9D7-212099C19147}", "780B530E", None, "patch code"),
    ("{FB94421B-7FA3-4495-A9D7-212099C19147}", "{780B530E-03AD-47AF-A128-DA08DB495253}x",
     None, "patch code"),
    ("", "{780B530E-03AD-47AF-A128-DA08DB495253}", None, "no target product codes"),
    ("{FB94421B-7FA3-4495-A9D7-212099C19147}", "{780B530E-03AD-47AF-A128-DA08DB495253}",
     ":nothere;:#nothere", "transform :nothere"),
    ("{FB94421B-7FA3-4495-A9D7-212099C19147}", "{780B530E-03AD-47AF-A128-DA08DB495253}",
     "rtm.2", "not a substorage"),
])
def test_bad_patch_summaries(tmp_path, targets, revision, transforms, message):
    msp = _patch_with(tmp_path, targets, revision, transforms)
    with pytest.raises(MsiError) as exc:
        read_patch(msp.read_bytes(), "bad.msp")
    text = str(exc.value)
    assert text.startswith("bad.msp: ") and message in text and "\n" not in text
