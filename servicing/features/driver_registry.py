"""The registry entries of a staged driver package, as RegEdit data.

Modelled on the entries Windows itself wrote for third-party packages in the corpus
Windows 10 1709 SYSTEM hive (regipy ``SYSTEM_WIN_10_1709``: ``oem0.inf`` ->
``vmusbmouse.inf_amd64_64ac7a0aab2a032c``, ``oem2.inf`` -> ``vmci.inf_amd64_...``):

``DriverDatabase``
    ``OemInfMap`` REG_BINARY bitmap (byte 0 bit 7 = oem0.inf), ``UpdateDate`` REG_BINARY
    FILETIME;
``DriverInfFiles\\oemN.inf``
    (default) REG_MULTI_SZ [package], ``Active`` REG_SZ package, ``Configurations``
    REG_MULTI_SZ [install sections];
``DriverPackages\\<package>``
    (default) REG_SZ oemN.inf, ``Version`` REG_BINARY(48) (``00 ff 09 00 00 00 00 00``,
    class GUID, DriverVer date as FILETIME, version as four u16 rev/build/minor/major,
    8 zero bytes), ``Provider``, ``InfName``, ``OemPath``, ``Catalog``, ``SignerName``
    REG_SZ, ``ImportDate`` REG_BINARY FILETIME, ``SignerScore`` and ``StatusFlags``
    REG_DWORD (0x112 as on every corpus entry); subkeys ``Configurations\\<section>``
    (``ConfigFlags`` 0, ``ConfigScope`` 7, ``Service``, ``IncludedInfs``; ``Device`` and
    ``Driver`` hold the .HW and DDInstall ``HKR`` values), ``Descriptors\\<hardware id>``
    (``Configuration``, ``Manufacturer`` and ``Description`` as ``%strkey%``) and
    ``Strings`` (strkey -> text);
``DeviceIds\\<hardware id>``
    value ``oemN.inf`` REG_BINARY ``01 ff 00 00`` for a hardware ID, ``02 ff 00 00`` for a
    compatible ID; ``DeviceIds\\{class guid}`` value ``oemN.inf`` REG_NONE.

Services (``Services\\<name>``) follow the corpus third-party services (vmci, VMUsbMouse):
Type, Start, ErrorControl, Tag, ImagePath (REG_EXPAND_SZ ``System32\\drivers\\x.sys`` for
boot-start drivers, ``\\SystemRoot\\System32\\drivers\\x.sys`` otherwise), DisplayName
(``@oemN.inf,%key%;text``), Group, DependOnService/DependOnGroup, Owners
[oemN.inf, ``!``package].
"""

from __future__ import annotations

import datetime
import re
import uuid

from servicing.features.driver_package import DriverPackage
from servicing.formats.inf_install import RegLine, ServiceInstall, split_dirid
from servicing.regf.values import encode_value
from servicing.registry.edits import EditKind, RegEdit

REG_NONE, REG_SZ, REG_EXPAND_SZ, REG_BINARY, REG_DWORD, REG_MULTI_SZ = 0, 1, 2, 3, 4, 7
EPOCH = datetime.datetime(1601, 1, 1, tzinfo=datetime.timezone.utc)
STATUS_FLAGS = 0x112
SCORE_WHQL, SCORE_AUTHENTICODE, SCORE_UNSIGNED = 0x0D000005, 0x0F000000, 0x80000000
HW_ID, COMPAT_ID = b"\x01\xff\x00\x00", b"\x02\xff\x00\x00"


def filetime(when: datetime.datetime) -> bytes:
    ticks = (when - EPOCH) // datetime.timedelta(microseconds=1) * 10
    return ticks.to_bytes(8, "little")


def version_blob(pkg: DriverPackage) -> bytes:
    guid = uuid.UUID(pkg.version.class_guid).bytes_le if pkg.version.class_guid else \
        bytes(16)
    ver = pkg.version.driver_ver
    date = filetime(datetime.datetime(*ver.date, tzinfo=datetime.timezone.utc)) \
        if ver and ver.date else bytes(8)
    major, minor, build, rev = ver.version if ver else (0, 0, 0, 0)
    nums = b"".join(n.to_bytes(2, "little") for n in (rev, build, minor, major))
    return b"\x00\xff\x09\x00\x00\x00\x00\x00" + guid + date + nums + bytes(8)


def _set(key: str, name: str | None, vtype: int, value) -> RegEdit:
    return RegEdit(EditKind.SET_VALUE, key, name or "", vtype, encode_value(vtype, value))


def _key(key: str) -> RegEdit:
    return RegEdit(EditKind.CREATE_KEY, key)


def id_path(hwid: str) -> str:
    """A hardware ID as a key path: ``PCI\\VEN_1&DEV_2`` stays two levels."""
    return hwid.strip("\\")


def oem_map_with(current: bytes | None, index: int, used: bool) -> bytes:
    data = bytearray(current or b"")
    need = index // 8 + 1
    if len(data) < need:
        data += bytes(need - len(data))
    bit = 0x80 >> (index % 8)
    data[index // 8] = (data[index // 8] | bit) if used else (data[index // 8] & ~bit)
    return bytes(data)


def signer_score(pkg: DriverPackage) -> int:
    if not pkg.signed:
        return SCORE_UNSIGNED
    return SCORE_WHQL if "Microsoft Windows Hardware" in (pkg.signer or "") else \
        SCORE_AUTHENTICODE


def database_edits(db: str, pkg: DriverPackage, published: str, store: str,
                   store_path: str, oem_map: bytes, now: datetime.datetime) -> list[RegEdit]:
    """Every DriverDatabase entry of one package (``db`` is the DriverDatabase key)."""
    pkey = f"{db}\\DriverPackages\\{store}"
    configs = list(dict.fromkeys(inst.section for inst in pkg.installs.values()
                                 if inst.section))
    e = [_set(db, "OemInfMap", REG_BINARY, oem_map),
         _set(db, "UpdateDate", REG_BINARY, filetime(now)),
         _set(f"{db}\\DriverInfFiles\\{published}", "", REG_MULTI_SZ, [store]),
         _set(f"{db}\\DriverInfFiles\\{published}", "Active", REG_SZ, store)]
    if configs:
        e.append(_set(f"{db}\\DriverInfFiles\\{published}", "Configurations", REG_MULTI_SZ,
                      configs))
    e += [_set(pkey, "", REG_SZ, published),
          _set(pkey, "Version", REG_BINARY, version_blob(pkg)),
          _set(pkey, "Provider", REG_SZ, pkg.version.provider),
          _set(pkey, "InfName", REG_SZ, pkg.inf_name),
          _set(pkey, "OemPath", REG_SZ, store_path),
          _set(pkey, "SignerName", REG_SZ, pkg.signer or ""),
          _set(pkey, "ImportDate", REG_BINARY, filetime(now)),
          _set(pkey, "SignerScore", REG_DWORD, signer_score(pkg)),
          _set(pkey, "StatusFlags", REG_DWORD, STATUS_FLAGS)]
    if pkg.catalog_name:
        e.append(_set(pkey, "Catalog", REG_SZ, pkg.catalog_name))
    e += _configurations(pkey, pkg)
    e += _descriptors(pkey, pkg)
    e += _device_ids(db, pkg, published)
    return e


def _configurations(pkey: str, pkg: DriverPackage) -> list[RegEdit]:
    out = []
    for inst in pkg.installs.values():
        if not inst.section:
            continue
        ckey = f"{pkey}\\Configurations\\{inst.section}"
        out += [_set(ckey, "ConfigFlags", REG_DWORD, 0), _set(ckey, "ConfigScope", REG_DWORD, 7)]
        function = [s.name for s in inst.services if s.flags & 0x2 and s.name]
        if function:
            out.append(_set(ckey, "Service", REG_SZ, function[0]))
        if inst.includes:
            out.append(_set(ckey, "IncludedInfs", REG_MULTI_SZ,
                            list(dict.fromkeys(i.lower() for i in inst.includes))))
        out += hkr_edits(f"{ckey}\\Device", inst.hw_add_reg)
        out += hkr_edits(f"{ckey}\\Driver", inst.add_reg)
    return out


def _descriptors(pkey: str, pkg: DriverPackage) -> list[RegEdit]:
    out, strings = [], {}
    lines = {ln.lineno: ln for sec in pkg.inf.sections.values() for ln in sec.lines}
    manufacturers = {ln.key: ln.raw_key for ln in pkg.inf.lines("Manufacturer")}
    for entry in pkg.entries:
        if not entry.hardware_id:
            continue
        raw_desc = lines[entry.lineno].raw_key or entry.description
        raw_mfg = manufacturers.get(entry.manufacturer) or entry.manufacturer
        for raw, text in ((raw_desc, entry.description), (raw_mfg, entry.manufacturer)):
            m = re.fullmatch(r"%([^%]+)%", raw.strip())
            if m:
                strings[m.group(1)] = text
        dkey = f"{pkey}\\Descriptors\\{id_path(entry.hardware_id)}"
        inst = pkg.installs[entry.install_section]
        out += [_set(dkey, "Configuration", REG_SZ, inst.section or entry.install_section),
                _set(dkey, "Manufacturer", REG_SZ, raw_mfg),
                _set(dkey, "Description", REG_SZ, raw_desc)]
    out += [_set(f"{pkey}\\Strings", k, REG_SZ, v) for k, v in strings.items()]
    return out


def _device_ids(db: str, pkg: DriverPackage, published: str) -> list[RegEdit]:
    out = {}
    for entry in (e for e in pkg.entries if e.hardware_id):
        for hwid, rank in [(entry.hardware_id, HW_ID)] + [(c, COMPAT_ID)
                                                          for c in entry.compatible_ids]:
            key = f"{db}\\DeviceIds\\{id_path(hwid)}"
            if key.upper() not in out or rank == HW_ID:
                out[key.upper()] = _set(key, published, REG_BINARY, rank)
    if pkg.version.class_guid:
        key = f"{db}\\DeviceIds\\{pkg.version.class_guid.lower()}"
        out[key.upper()] = RegEdit(EditKind.SET_VALUE, key, published, REG_NONE, b"")
    return list(out.values())


def hkr_edits(base: str, lines: list[RegLine], hklm: str | None = None) -> list[RegEdit]:
    """AddReg lines as edits: HKR below ``base``; HKLM below ``hklm`` when given."""
    out = []
    for ln in lines:
        if ln.root == "HKR":
            key = "\\".join(p for p in (base, ln.subkey) if p)
        elif ln.root == "HKLM" and hklm is not None:
            key = f"{hklm}\\{ln.subkey}"
        else:
            continue
        if ln.delete:
            out.append(RegEdit(EditKind.DELETE_VALUE, key, ln.name or "") if ln.name
                       else RegEdit(EditKind.DELETE_KEY, key))
        elif ln.key_only:
            out.append(_key(key))
        else:
            out.append(_set(key, ln.name, ln.vtype, ln.value()))
    return out


def image_path(svc: ServiceInstall, store_rel: str) -> str:
    """ImagePath as Windows writes it for a ServiceBinary."""
    dirid, rest = split_dirid(svc.binary)
    rest = rest.replace("/", "\\")
    if dirid == 13:
        return f"\\SystemRoot\\{store_rel}\\{rest}"
    if dirid == 12:
        path = f"System32\\drivers\\{rest}"
    elif dirid == 11:
        path = f"System32\\{rest}"
    elif dirid == 10:
        path = rest
    else:
        return svc.binary
    return path if svc.start_type == 0 else f"\\SystemRoot\\{path}"


def service_edits(svc_root: str, svc: ServiceInstall, pkg: DriverPackage, published: str,
                  store: str, store_rel: str, tag: int | None) -> list[RegEdit]:
    key = f"{svc_root}\\{svc.name}"
    e = [_set(key, "Type", REG_DWORD, svc.service_type),
         _set(key, "Start", REG_DWORD, svc.start_type),
         _set(key, "ErrorControl", REG_DWORD, svc.error_control),
         _set(key, "ImagePath", REG_EXPAND_SZ, image_path(svc, store_rel))]
    if tag is not None:
        e.append(_set(key, "Tag", REG_DWORD, tag))
    raw = svc.display_name_raw.strip()
    if svc.display_name:
        shown = f"@{published},{raw};{svc.display_name}" \
            if re.fullmatch(r"%[^%]+%", raw) else svc.display_name
        e.append(_set(key, "DisplayName", REG_SZ, shown))
    if svc.description:
        e.append(_set(key, "Description", REG_SZ, svc.description))
    if svc.group:
        e.append(_set(key, "Group", REG_SZ, svc.group))
    groups = [d[1:] for d in svc.dependencies if d.startswith("+")]
    services = [d for d in svc.dependencies if not d.startswith("+")]
    if services:
        e.append(_set(key, "DependOnService", REG_MULTI_SZ, services))
    if groups:
        e.append(_set(key, "DependOnGroup", REG_MULTI_SZ, groups))
    e.append(_set(key, "Owners", REG_MULTI_SZ, [published, f"!{store}"]))
    e += hkr_edits(key, svc.add_reg, hklm="HKLM")
    return e
