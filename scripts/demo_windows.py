"""Generate a small Windows-like tree and a driver package for scripts/demo.

Usage: demo_windows.py TREE PACKAGE_DIR

The tree holds a SYSTEM and a SOFTWARE hive written by our regf writer (no corpus data):
Windows 10 22H2 (10.0.19045) amd64, one control set, an empty DriverDatabase. The package
is a boot-critical storage driver INF (StartType 0, class SCSIAdapter) with a generated
.sys payload and no catalog (so the demo adds it with --force-unsigned).
"""

from __future__ import annotations

import pathlib
import struct
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
        for zone in TIME_ZONES:
            _time_zone(h, *zone)


# Two entries of SOFTWARE\...\Time Zones with their TZI (REG_TZI_FORMAT: Bias, StandardBias,
# DaylightBias, then the SYSTEMTIMEs of the change to standard and to daylight time:
# year 0, month, day of week, week of month 1-5, hour, minute, second, ms).
TIME_ZONES = (
    ("W. Europe Standard Time", "(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna",
     "W. Europe Standard Time", "W. Europe Daylight Time", -60, (10, 0, 5, 3), (3, 0, 5, 2)),
    ("Pacific Standard Time", "(UTC-08:00) Pacific Time (US & Canada)",
     "Pacific Standard Time", "Pacific Daylight Time", 480, (11, 0, 1, 2), (3, 0, 2, 2)),
)


def _time_zone(h, key, display, std, dlt, bias, to_std, to_dlt) -> None:
    def systemtime(month, dow, week, hour):
        return struct.pack("<8H", 0, month, dow, week, hour, 0, 0, 0)

    k = h.create_key(f"Microsoft\\Windows NT\\CurrentVersion\\Time Zones\\{key}")
    for name, value in (("Display", display), ("Std", std), ("Dlt", dlt)):
        k.set_value(name, REG_SZ, value)
    k.set_value("TZI", REG_BINARY, struct.pack("<3l", bias, 0, -60) + systemtime(*to_std)
                + systemtime(*to_dlt))


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
