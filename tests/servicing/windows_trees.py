"""Windows trees for servicing tests, built from the real corpus hives.

No real SOFTWARE hive exists in the corpus, so :func:`software_hive` writes one with our
regf writer holding the ``Microsoft\\Windows NT\\CurrentVersion`` values Windows keeps
there. The values rest on documented facts:

* Windows 7 SP1 is version 6.1 build 7601 (Microsoft's "Operating System Version" table
  and the SP1 build number); before Windows 10 the version is the REG_SZ
  ``CurrentVersion`` ("6.1") and the build ``CurrentBuildNumber`` (REG_SZ), with no
  ``CurrentMajorVersionNumber`` or ``UBR``;
* Windows 10 keeps ``CurrentVersion`` = "6.3" for compatibility and adds the DWORDs
  ``CurrentMajorVersionNumber`` = 10, ``CurrentMinorVersionNumber`` = 0 and ``UBR`` (the
  update build revision); version 1709 is build 16299 (Windows 10 release information);
* ``ProductName``, ``EditionID`` and ``InstallationType`` ("Client", "Server",
  "Server Core") are REG_SZ (servicing-facts.md section 5);
* Windows PE has the key ``CurrentVersion\\WinPE`` (dism-reference.md "Is this a WinPE
  image?").

The SYSTEM hives are real: regipy's ``SYSTEM`` is Windows 7 SP1 x86
(``Control\\Windows\\CSDBuildNumber`` = 17514 and ``CSDVersion`` = 0x100, i.e.
6.1.7601.17514 SP1; ``PROCESSOR_ARCHITECTURE`` = x86); regipy's
``SYSTEM_WIN_10_1709`` is Windows 10 1709 amd64 and has ``Control\\MiniNT``;
dissect.regf's ``SYSTEM`` is a clean Windows 10 amd64 hive. DEFAULT and the default
user's NTUSER.DAT are DFIRArtifactMuseum's Windows 10 ones.

:func:`ntoskrnl` builds a minimal valid PE file with a VERSIONINFO resource at test
time (pefile parses it) instead of shipping a Microsoft binary.
"""

from __future__ import annotations

import gzip
import lzma
import shutil
import struct
from pathlib import Path

from servicing.regf import REG_DWORD, REG_SZ, Hive

VERSION_KEY = "Microsoft\\Windows NT\\CurrentVersion"

SOFTWARE_7 = {"CurrentVersion": (REG_SZ, "6.1"), "CurrentBuildNumber": (REG_SZ, "7601"),
              "CurrentBuild": (REG_SZ, "7601"), "ProductName": (REG_SZ, "Windows 7 Ultimate"),
              "EditionID": (REG_SZ, "Ultimate"), "InstallationType": (REG_SZ, "Client")}
SOFTWARE_10 = {"CurrentVersion": (REG_SZ, "6.3"), "CurrentMajorVersionNumber": (REG_DWORD, 10),
               "CurrentMinorVersionNumber": (REG_DWORD, 0),
               "CurrentBuildNumber": (REG_SZ, "16299"), "CurrentBuild": (REG_SZ, "16299"),
               "UBR": (REG_DWORD, 125), "ProductName": (REG_SZ, "Windows 10 Pro"),
               "EditionID": (REG_SZ, "Professional"), "InstallationType": (REG_SZ, "Client")}


def software_hive(path: Path, values: dict, *, winpe: bool = False) -> Path:
    h = Hive.create(path)
    k = h.create_key(VERSION_KEY)
    for name, (vtype, data) in values.items():
        k.set_value(name, vtype, data)
    if winpe:
        h.create_key(VERSION_KEY + "\\WinPE").set_value("Version", REG_SZ, "10.0")
    h.commit()
    return path


# -- a minimal PE image with a version resource ----------------------------------------------

MACHINE = {"x86": 0x014C, "amd64": 0x8664, "arm64": 0xAA64}


def _version_info(version: tuple[int, int, int, int]) -> bytes:
    a, b, c, d = version
    ms, ls = a << 16 | b, c << 16 | d
    fixed = struct.pack("<13I", 0xFEEF04BD, 0x00010000, ms, ls, ms, ls, 0x3F, 0, 0x40004,
                        1, 0, 0, 0)
    key = "VS_VERSION_INFO\0".encode("utf-16-le")
    head_len = 6 + len(key)
    pad = (-head_len) % 4
    body = key + b"\0" * pad + fixed
    return struct.pack("<HHH", 6 + len(body), len(fixed), 0) + body


def _resources(rva: int, data: bytes) -> bytes:
    """Type 16 (RT_VERSION) -> name 1 -> language 0x409 -> data."""
    def directory(entry_id: int, target: int, leaf: bool) -> bytes:
        return struct.pack("<IIHHHH", 0, 0, 0, 0, 0, 1) + struct.pack(
            "<II", entry_id, target | (0 if leaf else 0x80000000))
    tree = directory(16, 24, False) + directory(1, 48, False) + directory(0x409, 72, True)
    entry = struct.pack("<IIII", rva + 88, len(data), 0, 0)
    return tree + entry + data


def ntoskrnl(arch: str, version: tuple[int, int, int, int]) -> bytes:
    plus = arch != "x86"
    rsrc = _resources(0x1000, _version_info(version))
    raw = (len(rsrc) + 0x1FF) & ~0x1FF
    dirs = [(0, 0)] * 16
    dirs[2] = (0x1000, len(rsrc))
    word = "Q" if plus else "I"
    opt = struct.pack("<HBBIIIII", 0x20B if plus else 0x10B, 14, 0, 0, raw, 0, 0, 0x1000)
    if not plus:
        opt += struct.pack("<I", 0x1000)
    opt += struct.pack(f"<{word}IIHHHHHHIIIIHH{word}{word}{word}{word}II",
                       0x140000000 if plus else 0x400000, 0x1000, 0x200, 6, 0, 6, 0, 6, 0,
                       0, 0x1000 + ((len(rsrc) + 0xFFF) & ~0xFFF), 0x200, 0, 1, 0,
                       0x80000, 0x1000, 0x100000, 0x1000, 0, 16)
    opt += b"".join(struct.pack("<II", *d) for d in dirs)
    coff = struct.pack("<HHIIIHH", MACHINE[arch], 1, 0, 0, 0, len(opt),
                       0x0022 if plus else 0x0102)
    section = struct.pack("<8sIIIIIIHHI", b".rsrc", len(rsrc), 0x1000, raw, 0x200, 0, 0, 0,
                          0, 0x40000040)
    head = b"MZ" + b"\0" * 0x3A + struct.pack("<I", 0x40) + b"PE\0\0" + coff + opt + section
    return head.ljust(0x200, b"\0") + rsrc.ljust(raw, b"\0")


# -- trees -------------------------------------------------------------------------------------

def unpack_to(src: Path, dst: Path) -> Path:
    """Copy a corpus hive to *dst*, decompressing ``.xz``/``.gz``."""
    opener = {".xz": lzma.open, ".gz": gzip.open}.get(src.suffix, open)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with opener(src, "rb") as f, open(dst, "wb") as g:
        shutil.copyfileobj(f, g)
    return dst


def windows_tree(root: Path, hives: Path, flavor: str, *, windir: str = "Windows",
                 kernel: bool = True) -> Path:
    """A Windows tree under *root*: "7" (regipy SYSTEM, x86), "10" (regipy 1709 SYSTEM,
    amd64, DEFAULT and default NTUSER.DAT) or "10clean" (dissect's clean SYSTEM)."""
    cfg = root / windir / "System32" / "config"
    cfg.mkdir(parents=True)
    museum = hives / "DFIRArtifactMuseum" / "Win10"
    if flavor == "7":
        unpack_to(hives / "regipy" / "SYSTEM", cfg / "SYSTEM")
        software_hive(cfg / "SOFTWARE", SOFTWARE_7)
        arch, version = "x86", (6, 1, 7601, 17514)
    else:
        src = hives / "regipy" / "SYSTEM_WIN_10_1709.xz" if flavor == "10" else \
            hives / "dissect.regf" / "SYSTEM.gz"
        unpack_to(src, cfg / "SYSTEM")
        software_hive(cfg / "SOFTWARE", SOFTWARE_10)
        for name in ("DEFAULT", "DEFAULT.LOG1", "DEFAULT.LOG2"):
            shutil.copyfile(museum / "RathbunVM" / name, cfg / name)
        user = root / "Users" / "Default"
        user.mkdir(parents=True)
        for name in ("NTUSER.DAT", "NTUSER.DAT.LOG1", "NTUSER.DAT.LOG2"):
            shutil.copyfile(museum / "RathbunVM" / "DEFAULT_NTUSER" / name, user / name)
        arch, version = "amd64", (10, 0, 16299, 125)
    for p in cfg.iterdir():
        p.chmod(0o644)
    if kernel:
        (root / windir / "System32" / "ntoskrnl.exe").write_bytes(ntoskrnl(arch, version))
    (root / windir / "System32" / "drivers").mkdir()
    (root / windir / "INF").mkdir()
    (root / windir / "INF" / "machine.inf").write_text("[Version]\r\nSignature=\"$Windows NT$\"\r\n")
    return root


def tree_fingerprint(root: Path) -> dict:
    """Every byte of a tree: each file's content, each directory by name."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}
