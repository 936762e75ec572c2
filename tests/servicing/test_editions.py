"""Every edition at once: ``IMAGE.wim:all`` and ``IMAGE.wim:1,3,5`` as a servicing TARGET.

A four-image WIM of two editions (editions_fixture) is serviced in one run and checked
with wimlib-imagex (apply, verify, the blob table) and hivexget/hivexml against the same
operation done per image on directories.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import oracles
import pytest

from servicing.cli import reg_main
from servicing.errors import NotApplicableError
from servicing.features.image_info import image_info
from servicing.options import CommonOptions
from servicing.session import operation
from servicing.editions import run_each
from editions_fixture import EDITIONS, editions_wim
from tests.helpers import (assert_same_tree, corpus_dir, snapshot, wimlib_apply,
                           wimlib_verify)

CFG = "Windows/System32/config"
HIVES = ("*/config/*", "Users/Default/NTUSER.DAT*")
REG = ("REGEDIT4\n\n[HKEY_LOCAL_MACHINE\\SOFTWARE\\Contoso]\n\"A\"=dword:00000007\n"
       "\"Who\"=\"editions\"\n\n[HKEY_LOCAL_MACHINE\\SYSTEM\\Contoso]\n\"B\"=dword:00000002\n")


def reg(*argv):
    out, err = io.StringIO(), io.StringIO()
    rc = reg_main([str(a) for a in argv], out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


def wimfs(*argv):
    return subprocess.run([sys.executable, "-m", "wimfs", *map(str, argv)],
                          capture_output=True, text=True)


def hivexget(hive, key, name):
    r = subprocess.run(["hivexget", str(hive), key, name], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def blob_count(wim) -> int:
    out = subprocess.run(["wimlib-imagex", "info", str(wim), "--blobs"], check=True,
                         capture_output=True, text=True).stdout
    return len(re.findall(r"^Hash\s*=", out, re.M))


@pytest.fixture(scope="module")
def base_wim(tmp_path_factory):
    return editions_wim(tmp_path_factory.mktemp("editions"), corpus_dir() / "hives")


@pytest.fixture
def wim(base_wim, tmp_path):
    p = tmp_path / "install.wim"
    shutil.copyfile(base_wim, p)
    return p


def test_reg_import_all_equals_the_import_per_directory(wim, tmp_path):
    (tmp_path / "x.reg").write_text(REG)
    original = tmp_path / "orig.wim"
    shutil.copyfile(wim, original)
    before = blob_count(wim)
    rc, out, err = reg(f"{wim}:all", "import", tmp_path / "x.reg")
    assert rc == 0, err
    # The same edit of the same hive is stored once: one new SYSTEM (the four images had
    # the same one), one new SOFTWARE per edition (two).
    assert blob_count(wim) == before + 3
    assert [int(m) for m in re.findall(r"^image (\d) \(", out, re.M)] == [1, 2, 3, 4]
    assert wimlib_verify(wim).returncode == 0
    for i, edition in EDITIONS.items():
        assert f"image {i} (Windows 10 " in out and f"edition {edition}): done" in out
        tree = tmp_path / f"dir{i}"
        wimlib_apply(original, i, tree)
        rc, _, err = reg(tree, "import", tmp_path / "x.reg")
        assert rc == 0, err
        got = tmp_path / f"applied{i}"
        wimlib_apply(wim, i, got)
        assert_same_tree(snapshot(tree, xattrs=False, exclude=HIVES),
                         snapshot(got, xattrs=False, exclude=HIVES), "directory", "image")
        for rel in ("SYSTEM", "SOFTWARE", "DEFAULT"):
            assert oracles.hivexml(tree / CFG / rel) == oracles.hivexml(got / CFG / rel), rel
        assert hivexget(got / CFG / "SOFTWARE", "\\Contoso", "Who") == "editions"
        assert hivexget(got / CFG / "SOFTWARE", "\\Microsoft\\Windows NT\\CurrentVersion",
                        "EditionID") == edition


def test_a_list_changes_only_the_images_named(wim, tmp_path):
    (tmp_path / "x.reg").write_text(REG)
    rc, out, err = reg(f"{wim}:2,4", "import", tmp_path / "x.reg", "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["committed"] is True
    assert [(r["index"], r["edition"], r["result"]) for r in doc["images"]] == \
        [(2, "Enterprise", "done"), (4, "Enterprise", "done")]
    assert all(any(c["change"] == "value set" for c in r["changes"]) for r in doc["images"])
    for i in EDITIONS:
        got = tmp_path / f"a{i}"
        wimlib_apply(wim, i, got)
        assert hivexget(got / CFG / "SYSTEM", "\\Contoso", "B") == \
            ("2" if i in (2, 4) else None), i


def test_update_all_stores_the_new_file_once(wim, tmp_path):
    driver = tmp_path / "contoso.sys"
    driver.write_bytes(os.urandom(100_000))
    before, size = blob_count(wim), wim.stat().st_size
    r = wimfs("update", f"{wim}:all", "--add", driver, "/Windows/System32/drivers/contoso.sys")
    assert r.returncode == 0, r.stderr
    assert wimlib_verify(wim).returncode == 0
    # One new blob (the driver) for four images; the metadata resources are replaced.
    assert blob_count(wim) == before + 1
    assert wim.stat().st_size - size < 100_000 + 60_000
    for i in EDITIONS:
        out = subprocess.run(["wimlib-imagex", "extract", str(wim), str(i),
                              "/Windows/System32/drivers/contoso.sys", "--to-stdout"],
                             capture_output=True, check=True).stdout
        assert out == driver.read_bytes()


def test_dry_run_and_read_only_commands(wim, tmp_path):
    (tmp_path / "x.reg").write_text(REG)
    original = wim.read_bytes()
    rc, out, err = reg(f"{wim}:all", "import", tmp_path / "x.reg", "--dry-run")
    assert rc == 0, err
    assert out.count("would be value set") == 12         # three values per image
    r = wimfs("image-info", f"{wim}:all", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["committed"] is False
    assert [(x["index"], x["edition"], x["output"]["edition_id"]) for x in doc["images"]] \
        == [(i, e, e) for i, e in EDITIONS.items()]
    assert wim.read_bytes() == original


def _enterprise_only(spec: str, opts: CommonOptions) -> None:
    """A test feature that applies to Enterprise images only (as a package for one
    edition): adds a file, refuses other editions with NotApplicableError."""
    with operation(spec, opts, command="test enterprise-only", write=True) as target:
        info = image_info(target)
        target.write_file(target.system_path("contoso.txt"), b"enterprise\n")
        if info.edition_id != "Enterprise":
            raise NotApplicableError(f"needs Enterprise, the image is {info.edition_id}")


def test_not_applicable_changes_none_unless_skipped(wim, tmp_path):
    path = str(wim)
    original = wim.read_bytes()
    out = io.StringIO()
    with pytest.raises(NotApplicableError) as e:
        run_each(path, [1, 2, 3, 4], lambda spec, _o: _enterprise_only(spec, CommonOptions()),
                 skip_not_applicable=False, as_json=False, dry_run=False, out=out)
    assert "not applicable to image 1, 3" in str(e.value) and e.value.exit_code == 8
    assert "image 1 (Windows 10 Pro #1, edition Professional): not applicable" in \
        out.getvalue()
    assert "image 2 (Windows 10 Enterprise #2, edition Enterprise): done" in out.getvalue()
    assert wim.read_bytes() == original
    out = io.StringIO()
    rc = run_each(path, [1, 2, 3, 4], lambda spec, _o: _enterprise_only(spec, CommonOptions()),
                  skip_not_applicable=True, as_json=True, dry_run=False, out=out)
    assert rc == 0
    doc = json.loads(out.getvalue())
    assert [r["result"] for r in doc["images"]] == ["skipped", "done", "skipped", "done"]
    assert wimlib_verify(wim).returncode == 0
    for i in EDITIONS:
        r = subprocess.run(["wimlib-imagex", "extract", path, str(i), "/Windows/contoso.txt",
                            "--to-stdout"], capture_output=True)
        assert (r.returncode == 0) == (EDITIONS[i] == "Enterprise"), i


def test_another_error_stops_and_changes_nothing(wim, tmp_path):
    original = wim.read_bytes()
    r = wimfs("update", f"{wim}:all", "--delete", "/Windows/extra3.txt")
    assert r.returncode == 4 and "image 1:" in r.stderr and "\n" not in r.stderr.strip()
    assert wim.read_bytes() == original


def _state(wim, tmp_path, n) -> set:
    seen = set()
    for i in EDITIONS:
        out = tmp_path / f"k{n}-{i}"
        wimlib_apply(wim, i, out)
        payload = out / "Windows/payload.bin"
        seen.add((hivexget(out / CFG / "SOFTWARE", "\\Contoso", "Who"),
                  payload.read_bytes() if payload.exists() else None))
        shutil.rmtree(out)
    return seen


@pytest.mark.slow
def test_kill_minus_9_during_an_all_commit(wim, tmp_path):
    """20 trials: `update WIM:all` or `reg WIM:all import` killed at a random point leaves
    a WIM that wimlib-imagex verifies, every image old or every image new."""
    (tmp_path / "x.reg").write_text(REG)
    payload = os.urandom(3 << 20)
    (tmp_path / "payload.bin").write_bytes(payload)
    trial = tmp_path / "trial.wim"
    cmds = [[sys.executable, "-m", "wimfs", "update", f"{trial}:all", "--add",
             str(tmp_path / "payload.bin"), "/Windows/payload.bin"],
            [sys.executable, "-m", "wimfs", "reg", f"{trial}:all", "import",
             str(tmp_path / "x.reg")]]
    whole = []
    for cmd in cmds:
        shutil.copyfile(wim, trial)
        t0 = time.monotonic()
        subprocess.run(cmd, check=True, capture_output=True)
        whole.append(time.monotonic() - t0)
    rng = random.Random(4321)
    outcomes = set()
    for n in range(20):
        shutil.copyfile(wim, trial)
        p = subprocess.Popen(cmds[n % 2], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(whole[n % 2] * 0.3, whole[n % 2] * 1.05))
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert wimlib_verify(trial).returncode == 0, f"trial {n}"
        seen = _state(trial, tmp_path, n)
        new = {("editions", None)} if n % 2 else {(None, payload)}
        assert seen in ({(None, None)}, new), f"trial {n}: {len(seen)} states"
        outcomes.add((n % 2, seen == new))
        if seen == new:
            # Finished before the kill: the timed run was slower than this one (a busy
            # machine). Kill this command sooner next time, so that some trials do
            # interrupt it.
            whole[n % 2] *= 0.7
    assert (0, False) in outcomes and (1, False) in outcomes


def test_busy_wim_is_refused_for_all(wim, tmp_path):
    from wimfs.overlay import open_image
    (tmp_path / "x.reg").write_text(REG)
    original = wim.read_bytes()
    session = open_image(str(wim), 2)           # holds the WIM's flock, as a rw mount does
    try:
        r = wimfs("reg", f"{wim}:all", "import", tmp_path / "x.reg")
    finally:
        session.discard()
    assert r.returncode == 7 and "already mounted read-write" in r.stderr, r.stderr
    assert wim.read_bytes() == original


def test_driver_add_all_equals_the_add_per_directory(wim, tmp_path):
    """`wimfs driver add WIM:all` (the drivers command, made multi-image only by being
    registered with the servicing commands): refused for every amd64 edition without
    --force-unsigned (nothing changes), then the same result as the add on each image
    applied to a directory (files; hives through hivexml)."""
    from tests.servicing.drivers_helpers import stamp_viostor
    inf = stamp_viostor(tmp_path / "viostor", "amd64")
    original = tmp_path / "orig.wim"
    shutil.copyfile(wim, original)
    r = wimfs("driver", "add", f"{wim}:all", inf)
    assert r.returncode == 9 and "refused for image 1, 2, 3, 4" in r.stderr, r.stderr
    assert wim.read_bytes() == original.read_bytes()
    r = wimfs("driver", "add", f"{wim}:all", inf, "--force-unsigned")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(": done\n") == 4
    assert wimlib_verify(wim).returncode == 0
    dates = set()
    for i in EDITIONS:
        tree = tmp_path / f"dir{i}"
        wimlib_apply(original, i, tree)
        d = wimfs("driver", "add", tree, inf, "--force-unsigned")
        assert d.returncode == 0, d.stderr
        got = tmp_path / f"applied{i}"
        wimlib_apply(wim, i, got)
        assert_same_tree(snapshot(tree, xattrs=False, exclude=HIVES),
                         snapshot(got, xattrs=False, exclude=HIVES), "directory", "image")
        for rel in ("SYSTEM", "SOFTWARE"):
            want, have = oracles.hivexml(tree / CFG / rel), oracles.hivexml(got / CFG / rel)
            dates.add(_dates(have))
            assert _dates(want) != _dates(have) or not _dates(want)   # separate runs
            assert _undated(want) == _undated(have), rel
        shutil.rmtree(tree)
        shutil.rmtree(got)
    # The import times are the same in every edition: one time stamp per run.
    assert len(dates - {()}) == 1


DATED = ("UpdateDate", "ImportDate")        # FILETIMEs of the operation (DriverDatabase)


def _dates(dump: dict) -> tuple:
    return tuple(sorted((k, n, v) for k, vals in dump.items() for n, v in vals.items()
                        if n in DATED))


def _undated(dump: dict) -> dict:
    return {k: {n: v for n, v in vals.items() if n not in DATED} for k, vals in dump.items()}


def test_dism_image_all_goes_the_same_way(wim, tmp_path):
    """`wimfs dism /Image:WIM:all` runs the DISM command per image through the same
    multi-image run: one record per image (edition from the image), DISM's refusal code
    for all when any edition refuses, one commit whose images hold what `wimfs driver
    add` on each image gives (compared with the native listing of each image)."""
    from tests.servicing.dism.conftest import dism, native_json
    from tests.servicing.drivers_helpers import stamp_viostor
    inf = stamp_viostor(tmp_path / "viostor", "amd64")
    original = wim.read_bytes()
    rc, out = dism(f"/Image:{wim}:all", "/Add-Driver", f"/Driver:{inf}")
    assert rc == 50 and "\nError: 50\n" in out and "image 1, 2, 3, 4" in out, out
    assert wim.read_bytes() == original
    rc, out = dism(f"/Image:{wim}:all", "/Add-Driver", f"/Driver:{inf}",
                   "--skip-not-applicable", "--json")
    assert rc == 0, out
    assert [r["result"] for r in json.loads(out)["images"]] == ["skipped"] * 4
    assert wim.read_bytes() == original
    rc, out = dism(f"/Image:{wim}:all", "/Get-CurrentEdition", "--json")
    assert rc == 0, out
    doc = json.loads(out)
    assert doc["committed"] is False
    assert [(r["index"], r["output"]["edition"]) for r in doc["images"]] == \
        sorted(EDITIONS.items())
    rc, out = dism(f"/Image:{wim}:1,3", "/Add-Driver", f"/Driver:{inf}", "/ForceUnsigned")
    assert rc == 0, out
    assert [int(i) for i in re.findall(r"^image (\d) \(", out, re.M)] == [1, 3]
    assert out.count("Found 1 driver package(s) to install.") == 2
    assert out.endswith("The operation completed successfully.\n")
    assert wimlib_verify(wim).returncode == 0
    for i in EDITIONS:
        listed = native_json("driver", "list", f"{wim}:{i}")
        assert [d["original_name"] for d in listed] == (["viostor.inf"] if i in (1, 3)
                                                        else []), i
