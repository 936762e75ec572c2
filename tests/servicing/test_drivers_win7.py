"""driver add/remove on Windows 7 x86 (real regipy SYSTEM hive): neutral store names,
no DriverDatabase, CriticalDeviceDatabase and DevicePath; and the same add on a directory
and on IMAGE.wim:1 gives the same tree."""

from __future__ import annotations

import datetime
import re
import shutil
import subprocess

from servicing.features.driver_query import list_drivers, remove_drivers
from servicing.features.drivers import add_drivers
from servicing.target import open_target
from tests.servicing.drivers_helpers import build_tree, regipy_tree, stamp_viostor
from tests.servicing.test_drivers import _files, _hive_dump

CDDB = "\\ControlSet001\\Control\\CriticalDeviceDatabase"


def _with_device_path(tree):
    """Windows 7 ships ``DevicePath`` = ``%SystemRoot%\\inf`` (REG_EXPAND_SZ)."""
    from servicing.regf import Hive
    with Hive.open(tree / "Windows/System32/config/SOFTWARE", write=True) as h:
        h.create_key("Microsoft\\Windows\\CurrentVersion").set_value(
            "DevicePath", 2, "%SystemRoot%\\inf")
    return tree


def test_windows7_boot_critical_add_and_remove(tmp_path, hives):
    tree = _with_device_path(build_tree(tmp_path, "7"))
    inf = stamp_viostor(tmp_path / "viostor", "x86")
    text = inf.read_text("latin-1")
    files, hives_before = _files(tree), _hive_dump(tree)
    with open_target(str(tree), write=True) as t:
        [r] = add_drivers(t, [str(inf)])          # x86: no signature required
    assert r.status == "added" and not r.signed
    assert re.fullmatch(r"viostor\.inf_x86_neutral_[0-9a-f]{16}", r.store)
    system = tree / "Windows/System32/config/SYSTEM"
    from regipy.registry import RegistryHive
    assert not any(k.name == "DriverDatabase" for k in RegistryHive(str(system))
                   .get_key("\\").iter_subkeys())
    hwids = re.findall(r"= scsi_inst, (PCI\\[^,\s]+)", text)
    assert len(hwids) == 2
    for hwid in hwids:
        entry = regipy_tree(system, f"{CDDB}\\{hwid.replace(chr(92), '#').lower()}")[""]
        assert entry["Service"] == ("REG_SZ", "viostor")
        assert entry["ClassGUID"][1] == re.search(r"ClassGUID=(\S+)", text).group(1)
    svc = regipy_tree(system, "\\ControlSet001\\Services\\viostor")[""]
    assert svc["Start"][1] == 0 and svc["ImagePath"][1] == "System32\\drivers\\viostor.sys"
    assert isinstance(svc["Tag"][1], int)
    software = tree / "Windows/System32/config/SOFTWARE"
    device_path = regipy_tree(software, "\\Microsoft\\Windows\\CurrentVersion")[""]
    assert device_path["DevicePath"] == ("REG_EXPAND_SZ", "%SystemRoot%\\inf;%SystemRoot%"
                                         f"\\System32\\DriverStore\\FileRepository\\{r.store}")
    with open_target(str(tree)) as t:
        assert [e.published_name for e in list_drivers(t)] == [r.published_name]
    with open_target(str(tree), write=True) as t:
        remove_drivers(t, [r.published_name])
    assert _files(tree) == files and _hive_dump(tree) == hives_before


def test_same_add_on_directory_and_wim(tmp_path, hives):
    from tests.helpers import wimlib_apply, wimlib_capture
    tree = build_tree(tmp_path / "a", "10clean")
    wim = wimlib_capture(tree, tmp_path / "install.wim", compress="lzx", name="Windows")
    inf = stamp_viostor(tmp_path / "viostor", "amd64")
    when = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
    with open_target(str(tree), write=True) as t:
        [a] = add_drivers(t, [str(inf)], force_unsigned=True, now=when)
    with open_target(f"{wim}:1", write=True) as t:
        [b] = add_drivers(t, [str(inf)], force_unsigned=True, now=when)
    assert (a.published_name, a.store) == (b.published_name, b.store)
    applied = tmp_path / "applied"
    wimlib_apply(wim, 1, applied)
    assert _files(applied) == _files(tree)
    ours, theirs = _hive_dump(applied), _hive_dump(tree)
    assert ours == theirs
    out = subprocess.run(["wimlib-imagex", "verify", str(wim)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    shutil.rmtree(applied)
