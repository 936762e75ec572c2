"""Windows trees with Windows Installer applications, and msitools' view of the real MSIs
and MSPs in ``../shared/corpus/msi`` (the oracle; never our reader).

:func:`register_product` writes, with our regf writer into the tree's SOFTWARE hive, the
per-machine registration Windows Installer keeps for an installed package. Every value
comes from ``msiinfo`` (msitools): ``msiinfo export X.msi Property`` (ProductCode,
ProductName, ProductVersion, ProductLanguage, Manufacturer, UpgradeCode, ARPHELPLINK) and
``msiinfo suminfo`` (Revision number = the package code). The layout rests on the
documented facts of dism-reference.md 2.4.2 (Wine's ``MSIREG_Open*``; MsiGetProductInfoEx
/ MsiGetPatchInfoEx for the machine context):

* ``Classes\\Installer\\Products\\<P>``: ProductName, PackageCode (packed), Language and
  Version (DWORD = major << 24 | minor << 16 | build), Assignment = 1 (per machine);
  ``SourceList\\PackageName``; ``Patches`` with ``Patches`` (REG_MULTI_SZ of packed patch
  codes) and ``<X>`` = the patch's transforms (its summary information Last Saved By);
* ``Classes\\Installer\\UpgradeCodes\\<U>``: value ``<P>``;
* ``...\\Installer\\UserData\\S-1-5-18\\Products\\<P>\\InstallProperties``: DisplayName,
  DisplayVersion, Publisher, InstallDate, InstallSource, LocalPackage, HelpLink, Language,
  Version, WindowsInstaller = 1;
* ``...\\UserData\\S-1-5-18\\Products\\<P>\\Patches\\<X>``: State, Uninstallable (the
  patch's MsiPatchMetadata AllowRemoval), DisplayName, MoreInfoURL, Installed;
  ``...\\UserData\\S-1-5-18\\Patches\\<X>\\LocalPackage``.

Packed GUIDs are computed here from :mod:`uuid` (each byte of the little-endian GUID with
its two hex digits swapped), not with the code under test.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path

from servicing.regf import REG_DWORD, REG_EXPAND_SZ, REG_MULTI_SZ, REG_SZ, Hive

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "msi"
WIX = CORPUS / "wix3" / "BurnTestPayloads"
PRODUCT_MSI = WIX / "MSIsandMSPs" / "RtmProduct" / "product.msi"
MSPS = {n: WIX / "MSIsandMSPs" / d / f"{n}.msp" for n, d in
        (("rtmldr", "Baseliner"), ("gdr1", "GDR1"), ("ldr2", "LDR2"), ("ldr3", "LDR3"))}
VIGEM_MSI = CORPUS / "vgamepad" / "ViGEmBusSetup_x64.msi"
HELLO_MSI = WIX / "Products" / "Hello_World" / "hello_world.msi"

CLASSES = "Classes\\Installer"
USERDATA = "Microsoft\\Windows\\CurrentVersion\\Installer\\UserData\\S-1-5-18"


def packed(guid: str) -> str:
    return "".join(f"{b:02X}"[::-1] for b in uuid.UUID(guid).bytes_le)


def _run(*args) -> str:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True,
                          text=True).stdout


def msiinfo_table(path: Path, table: str) -> list[list[str]]:
    """`msiinfo export`: the rows (the three header lines dropped)."""
    lines = _run("msiinfo", "export", path, table).replace("\r\n", "\n").split("\n")
    return [ln.split("\t") for ln in lines[3:] if ln]


def msiinfo_properties(path: Path) -> dict[str, str]:
    return {r[0]: r[1] for r in msiinfo_table(path, "Property")}


def msiinfo_suminfo(path: Path) -> dict[str, str]:
    out = {}
    for ln in _run("msiinfo", "suminfo", path).splitlines():
        key, sep, value = ln.partition(": ")
        if sep:
            out[key] = value
    return out


def patch_metadata(path: Path) -> dict[str, str]:
    return {r[1]: r[2] for r in msiinfo_table(path, "MsiPatchMetadata") if r[0] == ""}


def gsf_transform(msp: Path, storage: str, work: Path) -> dict[str, str]:
    """libgsf's (msitools' compound-file library) reading of a transform's summary
    information: the substorage's stream copied into a compound file of its own."""
    work.mkdir(parents=True, exist_ok=True)
    stream = work / "\x05SummaryInformation"
    stream.write_bytes(subprocess.run(["gsf", "cat", str(msp), f"{storage}/\x05Summary"
                                       "Information"], check=True,
                                      capture_output=True).stdout)
    ole = work / "t.mst"
    ole.unlink(missing_ok=True)
    subprocess.run(["gsf", "createole", str(ole), stream.name], cwd=work, check=True,
                   capture_output=True)
    props = {}
    for name in ("gsf:character-count", "meta:editing-cycles", "meta:template"):
        text = _run("gsf", "props", ole, name).strip()
        props[name] = re.sub(r'^.*?=\s*"?|"$', "", text)
    return props


def version_dword(version: str) -> int:
    a, b, c = ([int(x) for x in version.split(".")] + [0, 0, 0])[:3]
    return a << 24 | b << 16 | c


def register_product(software: Path, msi: Path, *, version: str | None = None,
                     date: str = "20240115", cache: str = "1a2b3c.msi") -> dict:
    """Register *msi* as installed per machine (*version*: the installed version when a
    patch has changed it); returns the oracle's values it wrote."""
    props, si = msiinfo_properties(msi), msiinfo_suminfo(msi)
    pc = props["ProductCode"]
    fact = {"product_code": pc, "name": props["ProductName"],
            "version": version or props["ProductVersion"],
            "language": int(props["ProductLanguage"]), "publisher": props["Manufacturer"],
            "upgrade_code": props.get("UpgradeCode", ""),
            "package_code": si["Revision number (UUID)"], "package_name": msi.name,
            "help_link": props.get("ARPHELPLINK", ""), "install_date": date,
            "install_source": f"C:\\Setup\\{msi.stem}\\",
            "local_package": f"C:\\Windows\\Installer\\{cache}"}
    h = Hive.open(software, write=True)
    p = packed(pc)
    k = h.create_key(f"{CLASSES}\\Products\\{p}")
    for name, vtype, data in (
            ("ProductName", REG_SZ, fact["name"]),
            ("PackageCode", REG_SZ, packed(fact["package_code"])),
            ("Language", REG_DWORD, fact["language"]),
            ("Version", REG_DWORD, version_dword(fact["version"])),
            ("Assignment", REG_DWORD, 1), ("AdvertiseFlags", REG_DWORD, 0x184),
            ("InstanceType", REG_DWORD, 0), ("Clients", REG_MULTI_SZ, [":"])):
        k.set_value(name, vtype, data)
    src = h.create_key(f"{CLASSES}\\Products\\{p}\\SourceList")
    src.set_value("PackageName", REG_SZ, msi.name)
    src.set_value("LastUsedSource", REG_EXPAND_SZ, f"n;1;{fact['install_source']}")
    if fact["upgrade_code"]:
        h.create_key(f"{CLASSES}\\UpgradeCodes\\{packed(fact['upgrade_code'])}").set_value(
            p, REG_SZ, "")
    ip = h.create_key(f"{USERDATA}\\Products\\{p}\\InstallProperties")
    for name, vtype, data in (
            ("LocalPackage", REG_SZ, fact["local_package"]),
            ("DisplayName", REG_SZ, fact["name"]),
            ("DisplayVersion", REG_SZ, fact["version"]),
            ("Publisher", REG_SZ, fact["publisher"]), ("InstallDate", REG_SZ, date),
            ("InstallSource", REG_SZ, fact["install_source"]),
            ("HelpLink", REG_SZ, fact["help_link"]),
            ("Language", REG_DWORD, fact["language"]),
            ("Version", REG_DWORD, version_dword(fact["version"])),
            ("WindowsInstaller", REG_DWORD, 1),
            ("UninstallString", REG_EXPAND_SZ, f"MsiExec.exe /X{pc}")):
        ip.set_value(name, vtype, data)
    h.commit()
    h.close()
    return fact


def register_patch(software: Path, msp: Path, product_code: str, *, state: int = 1,
                   date: str = "20240201", cache: str = "4d5e6f.msp") -> dict:
    """Register *msp* as applied to (state 1) or superseded for (2) a product."""
    si, meta = msiinfo_suminfo(msp), patch_metadata(msp)
    code = si["Revision number (UUID)"][:38]
    fact = {"patch_code": code, "product_code": product_code,
            "name": meta.get("DisplayName", ""), "state": state,
            "uninstallable": meta.get("AllowRemoval") == "1",
            "help_link": meta.get("MoreInfoURL", ""), "transforms": si["Last author"],
            "local_package": f"C:\\Windows\\Installer\\{cache}", "install_date": date}
    h = Hive.open(software, write=True)
    p, x = packed(product_code), packed(code)
    k = h.create_key(f"{CLASSES}\\Products\\{p}\\Patches")
    applied = list(k.get("Patches") or []) if state == 1 else None
    if applied is not None:
        k.set_value("Patches", REG_MULTI_SZ, applied + [x])
    k.set_value(x, REG_SZ, fact["transforms"])
    u = h.create_key(f"{USERDATA}\\Products\\{p}\\Patches\\{x}")
    for name, vtype, data in (("State", REG_DWORD, state),
                              ("Uninstallable", REG_DWORD, int(fact["uninstallable"])),
                              ("DisplayName", REG_SZ, fact["name"]),
                              ("MoreInfoURL", REG_SZ, fact["help_link"]),
                              ("Installed", REG_SZ, date), ("MSI3", REG_DWORD, 1)):
        u.set_value(name, vtype, data)
    h.create_key(f"{USERDATA}\\Patches\\{x}").set_value("LocalPackage", REG_SZ,
                                                         fact["local_package"])
    h.commit()
    h.close()
    return fact


def software_of(tree: Path) -> Path:
    return tree / "Windows" / "System32" / "config" / "SOFTWARE"
