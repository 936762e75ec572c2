"""Generate a small Windows-like tree and a driver package for scripts/demo.

Usage: demo_windows.py TREE PACKAGE_DIR

The tree holds a SYSTEM and a SOFTWARE hive written by our regf writer (no corpus data):
Windows 10 22H2 (10.0.19045) amd64, one control set, an empty DriverDatabase. The package
is a boot-critical storage driver INF (StartType 0, class SCSIAdapter) with a generated
.sys payload and no catalog (so the demo adds it with --force-unsigned).
"""

from __future__ import annotations

import pathlib
import sys

from servicing.regf import REG_BINARY, REG_DWORD, REG_SZ, Hive

INF = r"""; a generated demo driver package
[Version]
Signature   = "$Windows NT$"
Class       = SCSIAdapter
ClassGuid   = {4D36E97B-E325-11CE-BFC1-08002BE10318}
Provider    = %Maker%
DriverVer   = 05/06/2024,1.2.3.4
CatalogFile = demostor.cat

[SourceDisksNames]
1 = %Disk%,,,""

[SourceDisksFiles]
demostor.sys = 1,,

[DestinationDirs]
DefaultDestDir = 12

[Manufacturer]
%Maker% = Models,NTamd64.10.0...17763

[Models.NTamd64.10.0...17763]
%Desc% = demostor_inst, PCI\VEN_1AF4&DEV_1001&SUBSYS_00021AF4, PCI\VEN_1AF4&DEV_1001

[demostor_inst]
CopyFiles = @demostor.sys

[demostor_inst.Services]
AddService = demostor, 0x00000002, demostor_service

[demostor_service]
DisplayName    = %Desc%
ServiceType    = 1               ; SERVICE_KERNEL_DRIVER
StartType      = 0               ; SERVICE_BOOT_START
ErrorControl   = 1
ServiceBinary  = %12%\demostor.sys
LoadOrderGroup = SCSI miniport
AddReg         = demostor_params

[demostor_params]
HKR, Parameters, BusType, 0x00010001, 1

[Strings]
Maker = "wimfs demo"
Disk  = "Demo installation disk"
Desc  = "wimfs demo storage controller"
"""


def make_tree(root: pathlib.Path) -> None:
    cfg = root / "Windows" / "System32" / "config"
    cfg.mkdir(parents=True)
    (root / "Windows" / "System32" / "drivers").mkdir()
    (root / "Windows" / "INF").mkdir()
    with Hive.create(cfg / "SYSTEM", name="SYSTEM") as h:
        h.create_key("Select").set_value("Current", REG_DWORD, 1)
        env = h.create_key("ControlSet001\\Control\\Session Manager\\Environment")
        env.set_value("PROCESSOR_ARCHITECTURE", REG_SZ, "AMD64")
        h.create_key("ControlSet001\\Services")
        db = h.create_key("DriverDatabase")
        db.set_value("OemInfMap", REG_BINARY, b"\x00")
        for sub in ("DeviceIds", "DriverInfFiles", "DriverPackages"):
            db.create_key(sub)
    with Hive.create(cfg / "SOFTWARE", name="SOFTWARE") as h:
        cv = h.create_key("Microsoft\\Windows NT\\CurrentVersion")
        for name, vtype, value in (("CurrentVersion", REG_SZ, "6.3"),
                                   ("CurrentMajorVersionNumber", REG_DWORD, 10),
                                   ("CurrentMinorVersionNumber", REG_DWORD, 0),
                                   ("CurrentBuildNumber", REG_SZ, "19045"),
                                   ("UBR", REG_DWORD, 1),
                                   ("ProductName", REG_SZ, "Windows 10 Pro"),
                                   ("EditionID", REG_SZ, "Professional"),
                                   ("InstallationType", REG_SZ, "Client")):
            cv.set_value(name, vtype, value)


def make_package(folder: pathlib.Path, name: str = "demostor", *,
                 decoration: str = "NTamd64.10.0...17763", device: int = 0x1001) -> None:
    """A package ``name.inf`` + ``name.sys`` (service ``name``) for PCI device 1AF4:device."""
    folder.mkdir(parents=True)
    text = INF.replace("NTamd64.10.0...17763", decoration).replace("demostor", name)
    text = text.replace("DEV_1001", f"DEV_{device:04X}")
    (folder / f"{name}.inf").write_bytes(text.replace("\n", "\r\n").encode("ascii"))
    (folder / f"{name}.sys").write_bytes(b"MZ" + name.encode() + bytes(range(256)) * 64)


if __name__ == "__main__":
    make_tree(pathlib.Path(sys.argv[1]))
    make_package(pathlib.Path(sys.argv[2]))
