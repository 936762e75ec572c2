"""Catalog verdicts on the corpus driver packages, against osslsigncode and hashlib."""

from __future__ import annotations

import hashlib
import pathlib
import shutil
import subprocess

import pytest

from servicing.formats.catalog import CatalogError, is_pe, read_catalog, uncovered
from tests.servicing.conftest import corpus_dir


def catalogs() -> list[pathlib.Path]:
    root = corpus_dir()
    return sorted((root / "drivers").rglob("*.cat")) if root else []


def osslsigncode_covers(cat: pathlib.Path, path: pathlib.Path) -> bool:
    out = subprocess.run(["osslsigncode", "verify", "-catalog", str(cat), "-in", str(path)],
                         capture_output=True, text=True)
    return "File is signed in catalog" in out.stdout


def package_files(cat: pathlib.Path) -> list[pathlib.Path]:
    return [p for p in cat.parent.rglob("*") if p.is_file() and p.suffix.lower() != ".cat"]


@pytest.fixture(scope="module", autouse=True)
def _needs_osslsigncode():
    if shutil.which("osslsigncode") is None:
        pytest.skip("osslsigncode not installed (scripts/setup)")


@pytest.mark.parametrize("cat", catalogs(), ids=lambda p: p.name)
def test_pe_members_agree_with_osslsigncode(cat):
    catalog = read_catalog(cat.read_bytes(), cat.name)
    assert catalog.intact, catalog.problem
    pes = [p for p in package_files(cat) if is_pe(p.read_bytes())]
    ours = {p.name: catalog.covers(p.read_bytes()) for p in pes}
    theirs = {p.name: osslsigncode_covers(cat, p) for p in pes}
    assert ours == theirs


@pytest.mark.parametrize("cat", catalogs(), ids=lambda p: p.name)
def test_flat_members_are_plain_hashes(cat):
    """Non-PE files (the INF) are members by their plain SHA-1/SHA-256 digest."""
    catalog = read_catalog(cat.read_bytes(), cat.name)
    digests = {m.digest for m in catalog.members}
    for p in package_files(cat):
        data = p.read_bytes()
        if is_pe(data):
            continue
        expected = hashlib.sha1(data).digest() in digests or \
            hashlib.sha256(data).digest() in digests
        assert catalog.covers(data) == expected


def test_every_inf_is_covered_by_its_catalog():
    """Each corpus INF names its catalog in [Version]; the catalog signs the INF."""
    from servicing.formats.inf_driver import load_inf, version_info
    root = corpus_dir()
    if root is None:
        pytest.skip("corpus not found")
    infs = sorted((root / "drivers").rglob("*.inf"))
    for inf_path in infs:
        v = version_info(load_inf(inf_path.read_bytes(), inf_path.name))
        for arch in ("amd64", "x86"):
            name = v.catalog(arch)
            cat = inf_path.parent / name if name else None
            if cat is None or not cat.is_file():
                continue
            catalog = read_catalog(cat.read_bytes(), cat.name)
            assert uncovered(catalog, {inf_path.name: inf_path.read_bytes()}) == []


def test_changed_file_is_not_covered(tmp_path):
    root = corpus_dir()
    if root is None:
        pytest.skip("corpus not found")
    cat = root / "drivers" / "ViGEmBus" / "x64" / "ViGEmBus.cat"
    sys_file = tmp_path / "ViGEmBus.sys"
    data = bytearray((cat.parent / "ViGEmBus.sys").read_bytes())
    data[len(data) // 2] ^= 0xFF
    sys_file.write_bytes(data)
    catalog = read_catalog(cat.read_bytes())
    assert not catalog.covers(bytes(data))
    assert not osslsigncode_covers(cat, sys_file)
    assert uncovered(catalog, {"ViGEmBus.sys": bytes(data)}) == ["ViGEmBus.sys"]


def test_tampered_catalog_is_not_intact():
    root = corpus_dir()
    if root is None:
        pytest.skip("corpus not found")
    data = bytearray((root / "drivers" / "ViGEmBus" / "x64" / "ViGEmBus.cat").read_bytes())
    # flip one byte inside the first member's digest (the signed content)
    member = read_catalog(bytes(data)).members[0].digest
    at = bytes(data).find(member)
    data[at] ^= 1
    catalog = read_catalog(bytes(data))
    assert not catalog.intact and "does not match" in catalog.problem


@pytest.mark.parametrize("data", [b"", b"MZ not a catalog", b"\x30\x03\x02\x01\x01"])
def test_not_a_catalog(data):
    with pytest.raises(CatalogError, match="x.cat: not a signed catalog"):
        read_catalog(data, "x.cat")


def test_test_signed_catalog_agrees_with_osslsigncode(tmp_path):
    from tests.servicing.drivers_helpers import make_test_catalog, osslsigncode_verifies
    if corpus_dir() is None:
        pytest.skip("corpus not found")
    files = {"pkg.inf": b"[Version]\r\n", "pkg.sys": b"payload " * 100}
    cat = tmp_path / "pkg.cat"
    ca = make_test_catalog(files, cat)
    catalog = read_catalog(cat.read_bytes())
    assert catalog.intact and osslsigncode_verifies(cat, ca)
    assert catalog.signer == "wimfs test signer"
    assert uncovered(catalog, files) == []
    assert uncovered(catalog, {"pkg.sys": b"changed"}) == ["pkg.sys"]
    data = bytearray(cat.read_bytes())
    at = bytes(data).find(hashlib.sha1(files["pkg.sys"]).digest())
    data[at] ^= 1
    cat.write_bytes(data)
    assert not read_catalog(bytes(data)).intact
    assert not osslsigncode_verifies(cat, ca)
