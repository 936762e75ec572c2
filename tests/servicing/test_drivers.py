"""driver add / list / info / remove on a directory and on IMAGE.wim:1 (the ``target``
fixture: Windows 10 amd64 with a real SYSTEM hive), and on a Windows 7 x86 tree.

Expectations come from the INF text (regular expressions), the source files, and the
entries Windows itself wrote in the corpus Windows 10 1709 SYSTEM hive; the hives are
read back with hivexget and regipy."""

from __future__ import annotations

import datetime
import pathlib
import re
import shutil
import struct
import subprocess
import uuid

import pytest

from servicing.errors import EXIT_NOT_APPLICABLE, EXIT_REFUSED
from servicing.features.driver_query import driver_info, list_drivers, remove_drivers
from servicing.features.drivers import add_drivers
from servicing.target import open_target
from tests.servicing.conftest import corpus_dir
from tests.servicing.drivers_helpers import (
    build_tree, hivexget, inf_value, regipy_tree, stamp_viostor)

VIGEM = "ViGEmBus/x64"


def _vigem(tmp_path) -> pathlib.Path:
    dst = tmp_path / "pkg" / "vigem"
    shutil.copytree(corpus_dir() / "drivers" / VIGEM, dst)
    return dst / "ViGEmBus.inf"


def _system(tree: pathlib.Path) -> pathlib.Path:
    return tree / "Windows" / "System32" / "config" / "SYSTEM"


def _expected_oem(system: pathlib.Path, inf_dir: pathlib.Path) -> int:
    """Lowest N free in the INF folder, DriverInfFiles and OemInfMap (read with regipy)."""
    from regipy.registry import RegistryHive
    reg = RegistryHive(str(system))
    used = {int(m.group(1)) for p in inf_dir.iterdir()
            if (m := re.fullmatch(r"oem(\d+)\.inf", p.name, re.I))}
    used |= {int(m.group(1)) for k in reg.get_key("\\DriverDatabase\\DriverInfFiles")
             .iter_subkeys() if (m := re.fullmatch(r"oem(\d+)\.inf", k.name, re.I))}
    bitmap = bytes.fromhex(next(v.value for v in reg.get_key("\\DriverDatabase").iter_values()
                                if v.name == "OemInfMap"))
    used |= {i for i in range(len(bitmap) * 8) if bitmap[i // 8] & (0x80 >> i % 8)}
    return min(set(range(len(used) + 1)) - used)


def test_add_signed_boot_critical_package(target, tmp_path):
    inf = _vigem(tmp_path)
    text = inf.read_text("latin-1")
    before = target.tree()
    n = _expected_oem(_system(before), before / "Windows" / "INF")
    with open_target(target.spec, write=True) as t:
        [r] = add_drivers(t, [str(inf)])
    assert (r.status, r.published_name, r.signed, r.boot_critical) == \
        ("added", f"oem{n}.inf", True, True)
    tree = target.tree()
    store = tree / "Windows/System32/DriverStore/FileRepository" / r.store
    assert re.fullmatch(r"vigembus\.inf_amd64_[0-9a-f]{16}", r.store)
    for name in ("ViGEmBus.inf", "ViGEmBus.cat", "ViGEmBus.sys"):
        assert (store / name).read_bytes() == (inf.parent / name).read_bytes()
    assert (tree / "Windows/INF" / r.published_name).read_bytes() == inf.read_bytes()
    assert (tree / "Windows/System32/drivers/ViGEmBus.sys").read_bytes() == \
        (inf.parent / "ViGEmBus.sys").read_bytes()
    system = _system(tree)
    oem = r.published_name
    assert hivexget(system, f"DriverDatabase\\DriverInfFiles\\{oem}", "Active") == r.store
    hwid = re.search(r"=ViGEmBus_Device,\s*(\S+)", text).group(1)
    ids = regipy_tree(system, "\\DriverDatabase\\DeviceIds\\" + hwid)
    assert ids[""][oem] == ("REG_BINARY", "01ff0000")
    svc = regipy_tree(system, "\\ControlSet001\\Services\\ViGEmBus")[""]
    assert svc["Type"][1] == int(inf_value(text, "ServiceType"))
    assert svc["Start"][1] == int(inf_value(text, "StartType"))
    assert svc["ErrorControl"][1] == int(inf_value(text, "ErrorControl"))
    assert svc["ImagePath"] == ("REG_EXPAND_SZ", "\\SystemRoot\\System32\\drivers\\ViGEmBus.sys")
    assert svc["Owners"] == ("REG_MULTI_SZ", [oem, f"!{r.store}"])
    _check_version_blob(system, r.store, text)


def _check_version_blob(system, store, text):
    blob = bytes.fromhex(regipy_tree(system, f"\\DriverDatabase\\DriverPackages\\{store}")
                         [""]["Version"][1])
    assert len(blob) == 48 and blob[:8] == bytes.fromhex("00ff090000000000")
    assert blob[8:24] == uuid.UUID(inf_value(text, "ClassGuid")).bytes_le
    date, version = (p.strip() for p in inf_value(text, "DriverVer").split(","))
    month, day, year = map(int, date.split("/"))
    ticks = struct.unpack("<Q", blob[24:32])[0]
    assert datetime.datetime(1601, 1, 1) + datetime.timedelta(microseconds=ticks // 10) == \
        datetime.datetime(year, month, day)
    rev, build, minor, major = struct.unpack("<4H", blob[32:40])
    assert f"{major}.{minor}.{build}.{rev}" == version and blob[40:] == bytes(8)


def test_database_layout_matches_windows_own_entries(tmp_path, hives):
    """Our DriverDatabase entries have the key names, value names and types of the
    third-party entries Windows wrote itself (oem0.inf, vmusbmouse) in the 1709 hive."""
    tree = build_tree(tmp_path, "10clean")
    with open_target(str(tree), write=True) as t:
        [r] = add_drivers(t, [str(_vigem(tmp_path))])
    ours = regipy_tree(_system(tree), f"\\DriverDatabase\\DriverPackages\\{r.store}")
    from tests.servicing.windows_trees import unpack_to
    theirs_hive = unpack_to(hives / "regipy" / "SYSTEM_WIN_10_1709.xz", tmp_path / "w" / "S")
    theirs = regipy_tree(theirs_hive, "\\DriverDatabase\\DriverPackages\\"
                                      "vmusbmouse.inf_amd64_64ac7a0aab2a032c")

    def shape(tree, rel):
        return {n: t for n, (t, _) in tree[rel].items()}
    assert shape(ours, "") == shape(theirs, "")
    our_cfg = next(k for k in ours if k.startswith("Configurations\\") and k.count("\\") == 1)
    their_cfg = "Configurations\\VMUsbMouse"
    assert shape(ours, our_cfg).items() <= shape(theirs, their_cfg).items()
    our_desc = [k for k in ours if k.startswith("Descriptors\\") and ours[k]]
    assert all(shape(ours, k) == shape(theirs, "Descriptors\\HID\\VID_0E0F&PID_0003&MI_00")
               for k in our_desc) and our_desc
    assert set(shape(ours, "Strings").values()) == {"REG_SZ"}
    our_inf = regipy_tree(_system(tree), f"\\DriverDatabase\\DriverInfFiles\\"
                                         f"{r.published_name}")[""]
    their_inf = regipy_tree(theirs_hive, "\\DriverDatabase\\DriverInfFiles\\oem0.inf")[""]
    assert {n: v[0] for n, v in our_inf.items()} == {n: v[0] for n, v in their_inf.items()}


def _hive_dump(tree: pathlib.Path) -> dict:
    """Every key and value of SYSTEM and SOFTWARE as hivexml prints them, without key
    times, cell offsets and DriverDatabase's UpdateDate (Windows refreshes it on every
    driver change)."""
    out = {}
    for name in ("SYSTEM", "SOFTWARE"):
        path = tree / "Windows/System32/config" / name
        xml = subprocess.run(["hivexml", str(path)], capture_output=True, text=True,
                             check=True).stdout
        xml = re.sub(r"<mtime>[^<]*</mtime>|<byte_runs>.*?</byte_runs>", "", xml, flags=re.S)
        out[name] = re.sub(r'<value [^>]*key="UpdateDate"[^>]*>.*?</value>', "", xml,
                           flags=re.S)
    return out


def _files(tree: pathlib.Path) -> dict:
    return {str(p.relative_to(tree)): p.read_bytes() for p in sorted(tree.rglob("*"))
            if p.is_file() and "config" not in p.parts}


def test_add_twice_then_remove(target, tmp_path):
    inf = _vigem(tmp_path)
    before = target.tree()
    files, hives_before = _files(before), _hive_dump(before)
    with open_target(target.spec, write=True) as t:
        [first] = add_drivers(t, [str(inf)])
    snapshot = target.fingerprint()
    with open_target(target.spec, write=True) as t:
        [again] = add_drivers(t, [str(inf)])
        assert not t.changed
    assert (again.status, again.published_name) == ("present", first.published_name)
    assert target.fingerprint() == snapshot
    with open_target(target.spec) as t:
        listed = list_drivers(t)
    assert [(e.published_name, e.original_name, e.store) for e in listed
            if e.store == first.store] == [(first.published_name, "ViGEmBus.inf", first.store)]
    with open_target(target.spec, write=True) as t:
        assert remove_drivers(t, [first.published_name]) == [first.published_name]
    after = target.tree()
    assert _files(after) == files
    assert _hive_dump(after) == hives_before


def test_unsigned_refused_on_x64_unless_forced(target, tmp_path):
    inf = stamp_viostor(tmp_path / "viostor", "amd64")
    snapshot = target.fingerprint()
    with pytest.raises(Exception) as e:
        with open_target(target.spec, write=True) as t:
            add_drivers(t, [str(inf)])
    assert e.value.exit_code == EXIT_REFUSED
    assert "unsigned driver package refused" in str(e.value)
    assert "names no catalog" in str(e.value) or "not found" in str(e.value)
    assert target.fingerprint() == snapshot
    with open_target(target.spec, write=True) as t:
        [r] = add_drivers(t, [str(inf)], force_unsigned=True)
    assert (r.status, r.signed, r.boot_critical) == ("added", False, True)
    tree = target.tree()
    svc = regipy_tree(_system(tree), "\\ControlSet001\\Services\\viostor")
    assert svc[""]["Start"][1] == 0 and svc[""]["Group"][1] == "SCSI miniport"
    assert svc[""]["ImagePath"][1] == "System32\\drivers\\viostor.sys"
    assert svc["Parameters"]["BusType"] == ("REG_DWORD", 1)
    assert svc["Parameters\\PnpInterface"]["5"] == ("REG_DWORD", 1)


def test_not_applicable_and_inbox_refusals(target, tmp_path):
    inf = stamp_viostor(tmp_path / "x86only", "x86")
    snapshot = target.fingerprint()
    with pytest.raises(Exception, match="not applicable to this image") as e:
        with open_target(target.spec, write=True) as t:
            add_drivers(t, [str(inf)], force_unsigned=True)
    assert e.value.exit_code == EXIT_NOT_APPLICABLE
    with pytest.raises(Exception, match="inbox drivers are refused") as e:
        with open_target(target.spec, write=True) as t:
            remove_drivers(t, ["machine.inf"])
    assert e.value.exit_code == EXIT_REFUSED
    assert target.fingerprint() == snapshot


@pytest.mark.parametrize("change,match", [
    (lambda d: (d / "viostor.sys").unlink(), "missing source file viostor.sys"),
    (lambda d: (d / "viostor.inf").write_bytes((d / "viostor.inf").read_bytes().replace(
        b"viostor.sys = 1,,", b"viostor.sys = 1,..\\..\\..\\etc")), "climbs out"),
    (lambda d: (d / "viostor.inf").write_bytes((d / "viostor.inf").read_bytes().replace(
        b"viostor_Files_Driver = 12", b"viostor_Files_Driver = -1,C:\\x")),
     "absolute destination"),
    (lambda d: (d / "viostor.inf").write_bytes((d / "viostor.inf").read_bytes().replace(
        b"CatalogFile=viostor.cat", b"CatalogFile=..\\..\\other.cat")), "CatalogFile climbs"),
    (lambda d: (d / "viostor.inf").write_bytes((d / "viostor.inf").read_bytes().replace(
        b"[Manufacturer]", b"[Manufacturer]\r\n" + b"x" * (1 << 17) + b"\r\n")),
     "line longer than"),
])
def test_hostile_packages_change_nothing(target, tmp_path, change, match):
    inf = stamp_viostor(tmp_path / "bad", "amd64")
    change(inf.parent)
    snapshot = target.fingerprint()
    with pytest.raises(Exception, match=match) as e:
        with open_target(target.spec, write=True) as t:
            add_drivers(t, [str(inf)], force_unsigned=True)
    assert e.value.exit_code == 3
    assert target.fingerprint() == snapshot


def test_folder_skips_invalid_infs(target, tmp_path):
    folder = tmp_path / "many"
    stamp_viostor(folder / "good", "amd64")
    (folder / "broken.inf").write_bytes(b"[Version]\nSignature=\"$Windows 3.1$\"\n")
    warnings = []
    with open_target(target.spec, write=True) as t:
        results = add_drivers(t, [str(folder)], recurse=True, force_unsigned=True,
                              warn=warnings.append)
    assert sorted(r.status for r in results) == ["added", "skipped"]
    assert len(warnings) == 1 and "broken.inf" in warnings[0]
    with open_target(target.spec, write=True) as t:
        assert [r.status for r in add_drivers(t, [str(folder)], force_unsigned=True,
                                              warn=warnings.append)] == ["skipped"]


def test_driver_info(target, tmp_path):
    inf = _vigem(tmp_path)
    text = inf.read_text("latin-1")
    with open_target(target.spec, write=True) as t:
        [r] = add_drivers(t, [str(inf)])
    with open_target(target.spec) as t:
        info = driver_info(t, r.published_name)
        host = driver_info(t, str(inf))
    assert (info.store, info.class_name, info.signed, info.boot_critical) == \
        (r.store, inf_value(text, "Class"), True, True)
    assert info.signer == "Microsoft Windows Hardware Compatibility Publisher"
    class_key = "ControlSet001\\Control\\Class\\" + inf_value(text, "ClassGuid")
    assert info.class_description == hivexget(_system(target.tree()), class_key, "ClassDesc")
    [hw] = info.hardware
    assert hw["hardware_id"] == re.search(r"=ViGEmBus_Device,\s*(\S+)", text).group(1)
    assert (hw["architecture"], hw["service"]) == ("amd64", "ViGEmBus")
    assert host.hardware == info.hardware and host.signed


def test_database_in_drivers_hive(tmp_path):
    """An image that keeps its DriverDatabase in the DRIVERS hive gets the entries there."""
    from servicing.regf import Hive
    tree = build_tree(tmp_path, "10clean")
    drivers = tree / "Windows/System32/config/DRIVERS"
    with Hive.create(drivers, name="DRIVERS") as h:
        h.create_key("DriverDatabase\\DriverInfFiles")
    with open_target(str(tree), write=True) as t:
        [r] = add_drivers(t, [str(_vigem(tmp_path))])
    assert hivexget(drivers, f"DriverDatabase\\DriverInfFiles\\{r.published_name}",
                    "Active") == r.store
    out = subprocess.run(["hivexget", str(_system(tree)),
                          f"DriverDatabase\\DriverInfFiles\\{r.published_name}"],
                         capture_output=True, text=True)
    assert out.returncode != 0


def _signed_viostor(tmp_path) -> pathlib.Path:
    from tests.servicing.drivers_helpers import make_test_catalog
    inf = stamp_viostor(tmp_path / "signed", "amd64")
    files = {p.name: p.read_bytes() for p in inf.parent.iterdir()}
    make_test_catalog(files, inf.parent / "viostor.cat")
    return inf


def test_test_signed_package(target, tmp_path):
    inf = _signed_viostor(tmp_path)
    with open_target(target.spec, write=True) as t:
        [r] = add_drivers(t, [str(inf)])
    assert r.signed and r.status == "added"
    pkg = regipy_tree(_system(target.tree()), f"\\DriverDatabase\\DriverPackages\\{r.store}")
    assert pkg[""]["SignerName"] == ("REG_SZ", "wimfs test signer")
    assert pkg[""]["SignerScore"] == ("REG_DWORD", 0x0F000000)
    assert pkg[""]["Catalog"] == ("REG_SZ", "viostor.cat")


def test_catalog_not_covering_a_file_is_refused(target, tmp_path):
    inf = _signed_viostor(tmp_path)
    (inf.parent / "viostor.sys").write_bytes(b"MZ changed after signing")
    snapshot = target.fingerprint()
    with pytest.raises(Exception, match="viostor.cat does not sign viostor.sys") as e:
        with open_target(target.spec, write=True) as t:
            add_drivers(t, [str(inf)])
    assert e.value.exit_code == EXIT_REFUSED
    assert target.fingerprint() == snapshot


def test_real_signed_packages_from_a_folder(tmp_path):
    """The corpus arduino folder (--recurse): FTDI's two INFs with per-arch folders, the
    libusb0 and Arduino INFs, the CP210x package that lacks a file it lists, and an INF
    copying the inbox usbser.sys without shipping it."""
    tree = build_tree(tmp_path, "10clean")
    folder = tmp_path / "arduino"
    shutil.copytree(corpus_dir() / "drivers" / "arduino", folder)
    with open_target(str(tree), write=True) as t:
        results = {r.original_name: r for r in add_drivers(t, [str(folder)], recurse=True)}
    slab = (folder / "CP210x_6.7.4" / "slabvcp.inf").read_text("latin-1")
    listed = re.findall(r"^(\w+\.dll)\s*=", slab, re.M)
    present = {p.name.lower() for p in folder.rglob("*")}
    missing = [n for n in listed if n.lower() not in present]
    assert missing and results["slabvcp.inf"].status == "skipped"
    assert missing[0] in results["slabvcp.inf"].reason
    ada = (folder / "AdafruitCircuitPlayground.inf").read_text("latin-1")
    sources = re.search(r"^\[SourceDisksFiles\][^\[]*", ada, re.M | re.I).group(0)
    assert "usbser.sys" in ada.lower() and "usbser" not in sources.lower()
    assert results["AdafruitCircuitPlayground.inf"].status == "skipped"
    added = [r for r in results.values() if r.status == "added"]
    assert len(added) == len(results) - 2 and all(r.signed for r in added)
    repo = tree / "Windows/System32/DriverStore/FileRepository"
    for r in added:
        src = pathlib.Path(r.source)
        assert (repo / r.store / src.name).read_bytes() == src.read_bytes()
        assert (tree / "Windows/INF" / r.published_name).read_bytes() == src.read_bytes()
    ftdi = results["ftdibus.inf"]
    text = (folder / "FTDI_USB_Drivers" / "ftdibus.inf").read_text("latin-1")
    body = text.split("[SourceDisksFiles.amd64]")[1].split("[")[0]
    for name, sub in re.findall(r"^(\S+)\s*=\s*1,(\w+)", body, re.M):
        staged = {p.name.lower() for p in (repo / ftdi.store / sub).iterdir()}
        assert name.lower() in staged
    (tree / "Windows/System32/drivers/usbser.sys").write_bytes(b"MZ inbox usbser")
    with open_target(str(tree), write=True) as t:
        [r] = add_drivers(t, [str(folder / "AdafruitCircuitPlayground.inf")])
    assert r.status == "added" and not (repo / r.store / "usbser.sys").exists()


def _utf16_printer_packages(dst: pathlib.Path) -> list[pathlib.Path]:
    """The corpus UTF-16LE printer INFs, each in a folder with generated files where the
    INF's source media sections put them for amd64 (setup only: the test checks that
    add stages them)."""
    from servicing.formats.inf_driver import Platform, load_inf
    from servicing.formats.inf_install import package_sources
    root = corpus_dir() / "inf" / \
        "Windows-driver-samples-print@6ea518dd65b6c2c3b298bb8e7ed5e9124b8a4981"
    out = []
    for inf in sorted(root.rglob("*.inf")):
        data = inf.read_bytes()
        if not data.startswith(b"\xff\xfe"):
            continue
        folder = dst / inf.stem
        folder.mkdir(parents=True)
        (folder / inf.name).write_bytes(data)
        sources = package_sources(load_inf(data, inf.name), Platform("amd64", 10, 0, 16299))
        for rel in sources.values():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(b"generated " + rel.encode())
        out.append(folder / inf.name)
    return out


def test_utf16_printer_packages(tmp_path):
    tree = build_tree(tmp_path, "10clean")
    infs = _utf16_printer_packages(tmp_path / "printers")
    assert len(infs) >= 10
    with open_target(str(tree), write=True) as t:
        results = add_drivers(t, [str(p.parent) for p in infs], force_unsigned=True)
    assert [(r.status, r.reason) for r in results if r.status != "added"] == []
    repo = tree / "Windows/System32/DriverStore/FileRepository"
    for r in results:
        published = tree / "Windows/INF" / r.published_name
        assert published.read_bytes() == pathlib.Path(r.source).read_bytes()
        shipped = {str(p.relative_to(pathlib.Path(r.source).parent)).lower() for p in
                   pathlib.Path(r.source).parent.rglob("*") if p.is_file()}
        staged = {str(p.relative_to(repo / r.store)).lower()
                  for p in (repo / r.store).rglob("*") if p.is_file()}
        assert staged == shipped
    with open_target(str(tree)) as t:
        classes = {e.class_name for e in list_drivers(t)}
    assert "Printer" in classes
