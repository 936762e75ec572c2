"""Cabinets read with libarchive (servicing.formats.cab): the hostile and malformed cabinets
of the corpus (libmspack/cabextract test files: dirwalk-vulns, CVE cases, truncated,
multi-volume, Quantum) are one clear error, and nothing is ever written outside the
extraction folder."""

from __future__ import annotations

import io
import os
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from tests.servicing.conftest import corpus_dir
from servicing.formats import cab


def _cabs() -> list[Path]:
    root = corpus_dir()
    return sorted((root / "cab").rglob("*.cab")) if root else []


def _gcab_names(path: Path) -> list[str]:
    """gcab's listing (the oracle); CAB stores "\\" as the separator, we give "/"."""
    r = subprocess.run(["gcab", "-t", str(path)], capture_output=True, text=True,
                       check=True)
    return [n.replace("\\", "/") for n in r.stdout.split()]


@pytest.mark.parametrize("path", _cabs(), ids=lambda p: p.name)
def test_every_corpus_cabinet_reads_or_is_one_clear_error(path, tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    outside = {p for p in tmp_path.rglob("*")}
    try:
        names = cab.members(str(path))
    except cab.CabError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)
        with pytest.raises(cab.CabError):
            cab.extract(str(path), str(dest))
        assert not any(dest.iterdir())
        return
    assert all(not n.startswith("/") and ".." not in n.split("/") for n in names)
    written = cab.extract(str(path), str(dest))
    assert sorted(os.path.relpath(w, dest) for w in written) == sorted(names)
    assert {p for p in tmp_path.rglob("*")} - outside <= {p for p in dest.rglob("*")}


def test_path_climbing_names_are_refused(tmp_path):
    vuln = corpus_dir() / "cab" / "cabextract-tests" / "dirwalk-vulns.cab"
    with pytest.raises(cab.CabError, match="unsafe member name"):
        cab.members(str(vuln))
    (tmp_path / "x").mkdir()
    with pytest.raises(cab.CabError):
        cab.extract(str(vuln), str(tmp_path / "x"))
    assert list(tmp_path.rglob("*")) == [tmp_path / "x"]


@pytest.mark.parametrize("name", ["cabextract-tests/dirwalk-vulns.cab",
                                  "libmspack/cve-2015-4470-mszip-over-read.cab",
                                  "libmspack/partial_shortfile1.cab",
                                  "cabextract-tests/split-3.cab",
                                  "libmspack/mszip_lzx_qtm.cab",
                                  "cabextract-tests/simple.cab"])
def test_package_check_on_hostile_cab_is_one_line(target, name):
    from wimfs.cli import main
    path = corpus_dir() / "cab" / name
    before = target.fingerprint()
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(["package", "check", target.spec, str(path)])
    assert rc == 3, err.getvalue()
    assert err.getvalue().count("\n") == 1 and "Traceback" not in err.getvalue()
    assert target.fingerprint() == before


def test_gcab_made_cabinet_round_trips(tmp_path):
    from cbs_fixture import build_cab
    files = {"update.mum": b"<x/>", "sub/dir/a.bin": os.urandom(70000)}
    c = build_cab(tmp_path / "t.cab", files)
    assert sorted(cab.members(str(c))) == sorted(_gcab_names(c))
    assert cab.read(str(c), lambda n: True) == files
