"""Install sections: files, sources, destinations, registry lines, services, Include and
Needs, and hostile INFs -- expectations written from the INF text and the docs."""

from __future__ import annotations

import re

import pytest

from servicing.formats.inf import InfError
from servicing.formats.inf_driver import Platform, load_inf, models
from servicing.formats.inf_install import (
    dirid_path, install, package_sources, split_dirid)
from tests.servicing.conftest import corpus_dir
from tests.servicing.test_inf import corpus_infs

AMD64 = Platform("amd64", 10, 0, 19041)
X86 = Platform("x86", 6, 1, 7601)


def _corpus():
    root = corpus_dir()
    if root is None:
        pytest.skip("corpus not found")
    return root


def test_every_corpus_driver_installs_on_every_arch():
    """Every applicable hardware entry's install resolves; the only failure is the one
    INF that names a CopyFiles section it does not have."""
    failures = {}
    for path in corpus_infs():
        data = path.read_bytes()
        try:
            inf = load_inf(data, path.name)
        except InfError:
            continue                      # templates and INFs without a driver [Version]
        for platform in (AMD64, X86, Platform("arm64", 10, 0, 22000)):
            for entry in models(inf, platform):
                try:
                    install(inf, entry.install_section, platform)
                except InfError as e:
                    failures[path.name] = str(e)
    for name, message in failures.items():
        section = re.search(r"section \[([^\]]+)\] not found", message).group(1)
        text = next(p for p in corpus_infs() if p.name == name).read_text("latin-1")
        assert f"[{section.lower()}]" not in text.lower()
    assert set(failures) <= {"msmouse.inf"}


def test_vigembus_install():
    root = _corpus() / "drivers" / "ViGEmBus" / "x64"
    inf = load_inf((root / "ViGEmBus.inf").read_bytes(), "ViGEmBus.inf")
    [entry] = models(inf, AMD64)
    assert (entry.hardware_id, entry.install_section) == ("Nefarius\\ViGEmBus\\Gen1",
                                                          "ViGEmBus_Device")
    inst = install(inf, entry.install_section, AMD64)
    assert inst.section == "ViGEmBus_Device.NT"
    [copy] = inst.copy_files
    assert (copy.name, copy.dirid, copy.subdir, copy.source_path) == \
        ("ViGEmBus.sys", 12, "", "ViGEmBus.sys")
    assert (root / copy.source_path).is_file()
    [svc] = inst.services
    assert (svc.name, svc.flags, svc.service_type, svc.start_type, svc.error_control) == \
        ("ViGEmBus", 2, 1, 1, 1)
    assert svc.binary == "%12%\\ViGEmBus.sys"
    assert svc.display_name == "Nefarius Virtual Gamepad Emulation Service"


@pytest.mark.parametrize("platform,folder", [(AMD64, "amd64"), (X86, "i386")])
def test_ftdi_per_arch_sources(platform, folder):
    root = _corpus() / "drivers" / "arduino" / "FTDI_USB_Drivers"
    inf = load_inf((root / "ftdibus.inf").read_bytes(), "ftdibus.inf")
    entries = models(inf, platform)
    assert entries
    inst = install(inf, entries[0].install_section, platform)
    sources = {c.name.lower(): c.source_path for c in inst.copy_files}
    assert sources["ftdibus.sys"] == f"{folder}/ftdibus.sys"
    on_disk = {str(p.relative_to(root)).lower() for p in root.rglob("*")}
    assert all(s.lower() in on_disk for s in sources.values())
    listed = package_sources(inf, platform)
    assert all(s.lower() in on_disk for s in listed.values())
    # the [SourceDisksFiles.amd64] lines, read with a regular expression
    text = (root / "ftdibus.inf").read_text("latin-1")
    section = "SourceDisksFiles.amd64" if folder == "amd64" else "SourceDisksFiles"
    body = text.split(f"[{section}]")[1].split("[")[0]
    expected = {n.lower(): f"{sub}/{n}" for n, sub in
                re.findall(r"^(\S+)\s*=\s*1,(\w+)", body, re.M)}
    assert {k: v.lower() for k, v in listed.items()} == \
        {k: v.lower() for k, v in expected.items()}


def test_dirids():
    assert dirid_path(12, platform=AMD64) == "Windows/System32/drivers"
    assert dirid_path(11, platform=AMD64, system_root="WINNT") == "WINNT/System32"
    assert dirid_path(16425, platform=AMD64) == "Windows/SysWOW64"
    assert dirid_path(16425, platform=X86) == "Windows/System32"
    assert dirid_path(13, platform=AMD64, store_dir="S/x") == "S/x"
    assert dirid_path(53, platform=AMD64) is None
    assert split_dirid("%12%\\x.sys") == (12, "x.sys")
    assert split_dirid("%13%\\sub\\y.sys") == (13, "sub\\y.sys")
    assert split_dirid("x.sys") == (None, "x.sys")


PKG = """[Version]
Signature="$Windows NT$"
Class=SCSIAdapter
ClassGuid={4D36E97B-E325-11CE-BFC1-08002BE10318}
Provider=%P%
CatalogFile=pkg.cat
DriverVer=01/02/2023,1.2.3.4
[SourceDisksNames]
1=%D%,,,"\\{disk}"
[SourceDisksFiles]
{file}=1,{sub}
[DestinationDirs]
DefaultDestDir=12
{dest}
[Manufacturer]
%P%=M,NTamd64
[M.NTamd64]
%Desc%=Inst,PCI\\VEN_1AF4&DEV_1001,PCI\\VEN_1AF4
[Inst.NTamd64]
CopyFiles=Files
AddReg=Reg
[Files]
{file}
[Reg]
HKR,,Sz,0,"text"
HKR,,Multi,0x00010000,"a","b"
HKR,,Expand,0x00020000,"%%SystemRoot%%\\x"
HKR,,Dword,0x00010001,0x20
HKR,,DwordBytes,0x00010001,01,02,00,00
HKR,,Bin,1,de,ad,be,ef
HKR,,Qword,0x000B0001,0x100000000
HKR,,None,0x00020001,01
HKR,Sub
HKR,,Keep,0x00000002,"kept"
[Inst.NTamd64.Services]
AddService=pkgsvc,0x00000002,Svc
[Svc]
ServiceType=1
StartType=0
ErrorControl=1
ServiceBinary=%12%\\{file}
LoadOrderGroup=SCSI miniport
Dependencies=FltMgr,+Base
AddReg=SvcReg
[SvcReg]
HKR,Parameters,BusType,0x00010001,1
[Strings]
P="Provider"
D="Disk"
Desc="Device"
"""


def pkg(disk="", file="pkg.sys", sub="", dest=""):
    text = PKG
    for key, value in (("disk", disk), ("file", file), ("sub", sub), ("dest", dest)):
        text = text.replace("{" + key + "}", value)
    return text.encode()


def test_registry_lines_and_services():
    inf = load_inf(pkg(), "pkg.inf")
    inst = install(inf, "Inst", AMD64)
    values = {r.name: (r.vtype, r.value()) for r in inst.add_reg if not r.key_only}
    assert values == {
        "Sz": (1, "text"), "Multi": (7, ["a", "b"]), "Expand": (2, "%SystemRoot%\\x"),
        "Dword": (4, 0x20), "DwordBytes": (4, 0x201), "Bin": (3, b"\xde\xad\xbe\xef"),
        "Qword": (11, 1 << 32), "None": (0, b"\x01"), "Keep": (1, "kept")}
    assert [r.subkey for r in inst.add_reg if r.key_only] == ["Sub"]
    assert [r.flags for r in inst.add_reg if r.name == "Keep"] == [2]
    [svc] = inst.services
    assert (svc.start_type, svc.group, svc.dependencies) == (0, "SCSI miniport",
                                                             ["FltMgr", "+Base"])
    [reg] = svc.add_reg
    assert (reg.subkey, reg.name, reg.value()) == ("Parameters", "BusType", 1)


@pytest.mark.parametrize("kwargs,match", [
    ({"sub": "..\\..\\evil"}, r"line 11: source subdirectory climbs out"),
    ({"disk": "..\\up"}, r"line 9: source disk path climbs out"),
    ({"file": "..\\x.sys"}, r"line 23: destination file name climbs out"),
    ({"file": "C:\\x.sys"}, r"line 23: destination file name is an absolute path"),
    ({"dest": "Files=-1,C:\\Windows"}, r"line 14: absolute destination directory"),
    ({"dest": "Files=12,..\\..\\..\\etc"}, r"line 14: destination subdirectory climbs"),
])
def test_hostile_paths(kwargs, match):
    inf = load_inf(pkg(**kwargs), "pkg.inf")
    with pytest.raises(InfError, match=rf"^pkg\.inf, {match}"):
        install(inf, "Inst", AMD64)
        package_sources(inf, AMD64)


def test_missing_section_reported_with_line():
    text = pkg().replace(b"CopyFiles=Files", b"CopyFiles=Nope")
    with pytest.raises(InfError, match=r"^pkg\.inf, line 20: CopyFiles section \[Nope\]"):
        install(load_inf(text, "pkg.inf"), "Inst", AMD64)


MAIN = b"""[Version]
Signature="$Windows NT$"
[Inst.NT]
Include=a.inf
Needs=A.Section
CopyFiles=Own
[Own]
own.sys
[DestinationDirs]
DefaultDestDir=12
"""
A = b"""[Version]
Signature="$Windows NT$"
[A.Section]
Include=b.inf
Needs=B.Section
AddReg=AReg
[AReg]
HKR,,FromA,,"a"
[Inst.NT]
"""
B = b"""[Version]
Signature="$Windows NT$"
[B.Section]
AddReg=BReg
CopyFiles=BFiles
[BReg]
HKR,,FromB,,"b"
[BFiles]
b.sys
[DestinationDirs]
BFiles=11
"""


def test_include_and_needs():
    infs = {"a.inf": A, "b.inf": B}
    inst = install(load_inf(MAIN, "main.inf"), "Inst", AMD64, loader=infs.get)
    assert sorted(r.name for r in inst.add_reg) == ["FromA", "FromB"]
    assert [(c.inf, c.name, c.dirid) for c in inst.copy_files] == \
        [("b.inf", "b.sys", 11), ("main.inf", "own.sys", 12)]
    assert "a.inf" in inst.includes


def test_include_without_loader_skips_what_it_cannot_read():
    inst = install(load_inf(MAIN, "main.inf"), "Inst", AMD64)
    assert [c.name for c in inst.copy_files] == ["own.sys"]


def test_include_loop():
    loop_b = B.replace(b"[B.Section]", b"[B.Section]\nInclude=a.inf")
    with pytest.raises(InfError, match=r"Include loop"):
        install(load_inf(MAIN, "main.inf"), "Inst", AMD64,
                loader={"a.inf": A, "b.inf": loop_b}.get)
    # an included INF the image does not have: its sections are skipped, ours are not
    inst = install(load_inf(MAIN, "main.inf"), "Inst", AMD64, loader={}.get)
    assert [c.name for c in inst.copy_files] == ["own.sys"]
    broken = MAIN.replace(b"CopyFiles=Own", b"CopyFiles=Own,Nowhere")
    inst = install(load_inf(broken, "main.inf"), "Inst", AMD64, loader={}.get)
    assert [c.name for c in inst.copy_files] == ["own.sys"]
    no_include = broken.replace(b"Include=a.inf\n", b"").replace(b"Needs=A.Section\n", b"")
    with pytest.raises(InfError, match=r"main\.inf, line 4: CopyFiles section \[Nowhere\]"):
        install(load_inf(no_include, "main.inf"), "Inst", AMD64, loader={}.get)


def test_needs_loop():
    text = b'[Version]\nSignature="$Windows NT$"\n[I.NT]\nNeeds=X\n[X]\nNeeds=Y\n[Y]\nNeeds=x\n'
    with pytest.raises(InfError, match=r"line 8: Needs loop: i\.nt -> x -> y -> x"):
        install(load_inf(text, "n.inf"), "I", AMD64)
