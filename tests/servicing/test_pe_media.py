"""`wimfs pe media`: a BIOS + UEFI bootable PE ISO from a synthetic Windows installation
medium (dummy boot files with the real names; efisys.bin the size of the real one, a
1.44 MB floppy image, 1,474,560 bytes), checked with xorriso's El Torito report, 7-Zip's
listing, wimlib-imagex (the boot.wim's start script) and, with qemu-system-x86, a BIOS
boot of a stub etfsboot.com that prints a marker on the serial port."""

from __future__ import annotations

import io
import os
import re
import shutil
import struct
import subprocess
import time

import pytest

from tests.helpers import wimlib_capture
from tests.servicing.test_winpe import pe_tree, wimfs

BOOT_FILES = {"boot/etfsboot.com": 4096, "efi/microsoft/boot/efisys.bin": 1474560,
              "bootmgr": 413738, "bootmgr.efi": 1506760, "boot/bcd": 16384,
              "efi/microsoft/boot/bcd": 16384, "boot/boot.sdi": 3170304,
              "efi/boot/bootx64.efi": 1506760, "boot/fonts/wgl4_boot.ttf": 47452}
MARKER = b"WIMFS-PE-BIOS-OK"
# 16-bit real mode, loaded at 0000:7C00: DS=0; SI=msg; write each byte to COM1 (0x3F8)
# until NUL; halt.
STUB = bytes.fromhex("FA31C08ED8BE167CBAF803AC84C07403EEEBF8F4EBFD") + MARKER + b"\r\n\0"


def medium(root, boot_wim: bytes | None = b"\0" * 65536):
    """A Windows installation medium's layout (boot files, sources/boot.wim, and an
    install.wim that must not go on the PE ISO)."""
    for rel, size in BOOT_FILES.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(STUB.ljust(size, b"\0") if rel.endswith("etfsboot.com")
                      else os.urandom(size))
    (root / "sources").mkdir()
    if boot_wim is not None:
        (root / "sources/boot.wim").write_bytes(boot_wim)
    (root / "sources/install.wim").write_bytes(b"install")
    (root / "setup.exe").write_bytes(b"MZ")
    return root


def el_torito(iso) -> list[str]:
    r = subprocess.run(["xorriso", "-indev", str(iso), "-report_el_torito", "plain"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return [ln for ln in r.stdout.splitlines() if ln.startswith("El Torito")]


def listing(iso) -> dict[str, int]:
    """Files of the ISO with their sizes, from `7zz l -slt` (the El Torito images 7-Zip
    shows as [BOOT]/... left out)."""
    r = subprocess.run(["7zz", "l", "-slt", str(iso)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    files, path = {}, None
    for line in r.stdout.splitlines():
        if line.startswith("Path = "):
            path = line[7:]
        elif line.startswith("Size = ") and line[7:].isdigit() and path \
                and not path.startswith("[BOOT]"):
            files[path] = int(line[7:])
        elif line.startswith("Folder = +"):
            files.pop(path, None)
    files.pop(str(iso), None)
    return files


def expected(root) -> dict[str, int]:
    want = {}
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel.split("/")[0] in ("boot", "efi", "bootmgr", "bootmgr.efi",
                                                 "sources") and rel != "sources/install.wim":
            want[rel] = p.stat().st_size
    return want


def check_boot_entries(iso) -> None:
    report = el_torito(iso)
    entries = [ln.split()[5:9] for ln in report if ln.startswith("El Torito boot img")]
    assert entries == [["1", "BIOS", "y", "none"], ["2", "UEFI", "y", "none"]], report
    paths = [ln.split()[-1] for ln in report if ln.startswith("El Torito img path")]
    assert paths == ["/boot/etfsboot.com", "/efi/microsoft/boot/efisys.bin"]
    bios = next(ln for ln in report if ln.startswith("El Torito boot img") and "BIOS" in ln)
    assert bios.split()[-2] == "8"              # 8 sectors of etfsboot loaded


def no_leftovers(folder) -> None:
    assert [p.name for p in folder.iterdir() if p.name.startswith(".wimfs-pe-")] == []


def test_folder_medium(tmp_path):
    src = medium(tmp_path / "media")
    (src / "boot/resources").mkdir()
    (src / "boot/resources/a=b.txt").write_bytes(b"graft-point escape")
    out = tmp_path / "out" / "pe.iso"
    out.parent.mkdir()
    r = wimfs("pe", "media", src, out)
    assert r.returncode == 0, r.stderr
    check_boot_entries(out)
    assert listing(out) == expected(src)
    no_leftovers(out.parent)


def test_iso_medium(tmp_path):
    """SOURCE given as an ISO (built here with xorriso from the synthetic medium)."""
    src = medium(tmp_path / "media")
    source_iso = tmp_path / "windows.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-o",
                    str(source_iso), str(src)], check=True)
    out = tmp_path / "pe.iso"
    r = wimfs("pe", "media", source_iso, out, "--json")
    assert r.returncode == 0, r.stderr
    check_boot_entries(out)
    assert listing(out) == expected(src)
    no_leftovers(tmp_path)


def test_udf_only_iso_medium(tmp_path):
    """A Windows ISO as oscdimg -u2 makes it: the files only in UDF, ISO 9660 holding just a
    README.TXT (built here with pycdlib, which writes UDF; xorriso shows only the README)."""
    import pycdlib

    src = medium(tmp_path / "media")
    iso = pycdlib.PyCdlib()
    iso.new(udf="2.60", interchange_level=3)
    iso.add_fp(io.BytesIO(b"udf"), 3, "/README.TXT;1")
    for p in sorted(src.rglob("*")):
        rel = "/" + p.relative_to(src).as_posix()
        if p.is_dir():
            iso.add_directory(udf_path=rel)
        else:
            iso.add_file(str(p), udf_path=rel)
    source_iso = tmp_path / "windows.iso"
    iso.write(str(source_iso))
    iso.close()
    r = subprocess.run(["xorriso", "-indev", str(source_iso), "-find", "/", "-exec", "lsdl"],
                       capture_output=True, text=True)
    assert [ln.split()[-1] for ln in r.stdout.splitlines()] == ["'/'", "'/README.TXT'"]
    out = tmp_path / "pe.iso"
    r = wimfs("pe", "media", source_iso, out)
    assert r.returncode == 0, r.stderr
    check_boot_entries(out)
    assert listing(out) == expected(src)
    no_leftovers(tmp_path)


def test_boot_wim_option(tmp_path):
    """--boot-wim replaces the medium's sources/boot.wim (here the medium has none)."""
    src = medium(tmp_path / "media", boot_wim=None)
    wim = tmp_path / "custom.wim"
    wim.write_bytes(os.urandom(12345))
    out = tmp_path / "pe.iso"
    r = wimfs("pe", "media", src, out, "--boot-wim", wim)
    assert r.returncode == 0, r.stderr
    assert listing(out) == expected(src) | {"sources/boot.wim": 12345}
    got = tmp_path / "got.wim"
    subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(out), "-extract",
                    "/sources/boot.wim", str(got)], check=True, capture_output=True)
    assert got.read_bytes() == wim.read_bytes()
    r = wimfs("pe", "media", src, tmp_path / "x.iso", "--boot-wim", tmp_path / "none.wim")
    assert r.returncode == 4 and "none.wim" in r.stderr


def test_missing_boot_files_named(tmp_path):
    src = medium(tmp_path / "media", boot_wim=None)
    (src / "efi/microsoft/boot/efisys.bin").unlink()
    (src / "bootmgr").unlink()
    out = tmp_path / "pe.iso"
    r = wimfs("pe", "media", src, out)
    assert r.returncode == 4
    assert r.stderr.strip().count("\n") == 0
    for name in ("efi/microsoft/boot/efisys.bin", "bootmgr,", "sources/boot.wim"):
        assert name in r.stderr
    assert not out.exists()
    no_leftovers(tmp_path)


def test_boot_wim_over_4_gib(tmp_path):
    """A sparse boot.wim of 4 GiB: ISO 9660 cannot hold it; a clear error, and an existing
    OUT.iso is left as it was."""
    src = medium(tmp_path / "media", boot_wim=None)
    with open(src / "sources/boot.wim", "wb") as f:
        f.truncate(4 << 30)
    out = tmp_path / "pe.iso"
    out.write_bytes(b"old")
    r = wimfs("pe", "media", src, out)
    assert r.returncode == 9 and "below 4 GiB" in r.stderr, r.stderr
    assert out.read_bytes() == b"old"
    no_leftovers(tmp_path)


def test_not_an_iso(tmp_path):
    bad = tmp_path / "bad.iso"
    bad.write_bytes(os.urandom(70000))
    r = wimfs("pe", "media", bad, tmp_path / "pe.iso")
    assert r.returncode == 3 and "not a readable ISO image" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "pe.iso").exists()
    no_leftovers(tmp_path)


def _setup_boot_wim(tmp_path, hives):
    """A Setup-style boot.wim: image 1 and image 2 (bootable) hold a PE tree."""
    tree = pe_tree(tmp_path / "pe", hives)
    wim = wimlib_capture(tree, tmp_path / "boot.wim", compress="xpress", name="PE")
    subprocess.run(["wimlib-imagex", "append", str(tree), str(wim), "Setup", "--boot"],
                   check=True, capture_output=True)
    return wim


def _wim_file(wim, image: int, path: str, dest) -> bytes | None:
    r = subprocess.run(["wimlib-imagex", "extract", str(wim), str(image), path,
                        f"--dest-dir={dest}", "--no-acls"], capture_output=True)
    p = dest / path.rsplit("/", 1)[-1]
    return p.read_bytes() if r.returncode == 0 and p.exists() else None


def test_start_script_and_overlay_edit_the_boot_image(tmp_path, hives):
    wim = _setup_boot_wim(tmp_path, hives)
    src = medium(tmp_path / "media", boot_wim=wim.read_bytes())
    script = tmp_path / "go.cmd"
    script.write_bytes(b"echo go\r\n")
    overlay = tmp_path / "overlay"
    (overlay / "Tools").mkdir(parents=True)
    (overlay / "Tools/tool.exe").write_bytes(b"MZtool")
    out = tmp_path / "pe.iso"
    r = wimfs("pe", "media", src, out, "--start-script", script, "--overlay", overlay,
              "--json")
    assert r.returncode == 0, r.stderr
    check_boot_entries(out)
    got = tmp_path / "got"
    subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(out), "-extract",
                    "/sources/boot.wim", str(got / "boot.wim")], check=True,
                   capture_output=True)
    assert (src / "sources/boot.wim").read_bytes() == wim.read_bytes()   # source untouched
    ini = _wim_file(got / "boot.wim", 2, "/Windows/System32/winpeshl.ini", tmp_path / "x2")
    assert b"System32\\go.cmd" in ini and b"startnet.cmd" in ini
    assert _wim_file(got / "boot.wim", 2, "/Windows/System32/go.cmd", tmp_path / "x3") == \
        b"echo go\r\n"
    assert _wim_file(got / "boot.wim", 2, "/Tools/tool.exe", tmp_path / "x4") == b"MZtool"
    assert _wim_file(got / "boot.wim", 1, "/Windows/System32/winpeshl.ini",
                     tmp_path / "x5") is None
    info = subprocess.run(["wimlib-imagex", "info", str(got / "boot.wim")],
                          capture_output=True, text=True).stdout
    assert re.search(r"^Boot Index: +2$", info, re.M)
    no_leftovers(tmp_path)


def test_start_script_on_a_non_pe_boot_wim(tmp_path, hives):
    from windows_trees import windows_tree
    tree = windows_tree(tmp_path / "win", hives, "10clean")
    wim = wimlib_capture(tree, tmp_path / "boot.wim", compress="xpress", name="W")
    src = medium(tmp_path / "media", boot_wim=wim.read_bytes())
    script = tmp_path / "go.cmd"
    script.write_bytes(b"echo go\r\n")
    r = wimfs("pe", "media", src, tmp_path / "pe.iso", "--start-script", script)
    assert r.returncode == 9 and "not a Windows PE image" in r.stderr
    assert not (tmp_path / "pe.iso").exists()
    no_leftovers(tmp_path)


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                    reason="qemu-system-x86 not installed")
def test_bios_boot_in_qemu(tmp_path):
    """SeaBIOS loads the El Torito BIOS image (our stub in place of etfsboot.com), which
    prints the marker on the serial console."""
    src = medium(tmp_path / "media")
    out = tmp_path / "pe.iso"
    assert wimfs("pe", "media", src, out).returncode == 0
    serial = tmp_path / "serial.log"
    proc = subprocess.Popen(["qemu-system-x86_64", "-cdrom", str(out), "-boot", "d",
                             "-display", "none", "-serial", f"file:{serial}", "-m", "64",
                             "-no-reboot", "-nodefaults"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if serial.exists() and MARKER in serial.read_bytes():
                break
            time.sleep(0.5)
    finally:
        proc.kill()
        proc.wait()
    assert MARKER in serial.read_bytes()


# -- UEFI: a stub efisys.bin (a FAT12 floppy image holding EFI/BOOT/BOOTX64.EFI) -----------

UEFI_MARKER = "WIMFS-PE-UEFI-OK"
OVMF = "/usr/share/OVMF/OVMF_CODE.fd"


def efi_app() -> bytes:
    """A PE32+ EFI application (subsystem 10): ConOut->OutputString(marker), then spin.
    x64 code: sub rsp,28h; mov rcx,[rdx+40h] (SystemTable->ConOut); lea rdx,[rip+5];
    call [rcx+8] (OutputString); jmp $; the UTF-16 marker."""
    code = bytes.fromhex("4883EC28488B4A40488D1505000000FF5108EBFE") + \
        (UEFI_MARKER + "\r\n\0").encode("utf-16-le")
    raw = 0x200
    opt = struct.pack("<HBBIIIIIQIIHHHHHHIIIIHHQQQQII", 0x20B, 0, 0, raw, 0, 0, 0x1000,
                      0x1000, 0, 0x1000, 0x200, 0, 0, 0, 0, 0, 0, 0, 0x2000, 0x200, 0, 10, 0,
                      0x10000, 0x1000, 0x10000, 0x1000, 0, 16) + b"\0" * 128
    coff = struct.pack("<HHIIIHH", 0x8664, 1, 0, 0, 0, len(opt), 0x0022)
    section = struct.pack("<8sIIIIIIHHI", b".text", len(code), 0x1000, raw, 0x200, 0, 0, 0,
                          0, 0x60000020)
    head = b"MZ" + b"\0" * 58 + struct.pack("<I", 0x40) + b"PE\0\0" + coff + opt + section
    return head.ljust(0x200, b"\0") + code.ljust(raw, b"\0")


def fat12_floppy(app: bytes) -> bytes:
    """A 1.44 MB FAT12 image (the size of the real efisys.bin): EFI (cluster 2), EFI/BOOT
    (cluster 3), EFI/BOOT/BOOTX64.EFI (clusters 4...)."""
    img = bytearray(2880 * 512)
    img[0:62] = b"\xeb\x3c\x90MSWIN4.1" + struct.pack(
        "<HBHBHHBHHHIIBBBI11s8s", 512, 1, 1, 2, 224, 2880, 0xF0, 9, 18, 2, 0, 0, 0, 0, 0x29,
        0x1234, b"EFISYS     ", b"FAT12   ")
    img[510:512] = b"\x55\xaa"
    fat = bytearray(9 * 512)

    def link(n: int, value: int) -> None:            # 12-bit entries, two in three bytes
        off = n * 3 // 2
        if n % 2 == 0:
            fat[off], fat[off + 1] = value & 0xFF, (fat[off + 1] & 0xF0) | value >> 8
        else:
            fat[off], fat[off + 1] = (fat[off] & 0x0F) | (value << 4 & 0xF0), value >> 4
    clusters = (len(app) + 511) // 512
    for n, value in [(0, 0xFF0), (1, 0xFFF), (2, 0xFFF), (3, 0xFFF)] + \
            [(4 + i, 0xFFF if i == clusters - 1 else 5 + i) for i in range(clusters)]:
        link(n, value)
    img[512:512 + len(fat)] = img[512 * 10:512 * 10 + len(fat)] = fat

    def entry(name: str, attr: int, cluster: int, size: int = 0) -> bytes:
        return name.ljust(11).encode() + bytes([attr]) + b"\0" * 14 + \
            struct.pack("<HI", cluster, size)

    def at(cluster: int) -> int:                    # data starts at sector 33
        return 512 * (31 + cluster)
    img[512 * 19:512 * 19 + 32] = entry("EFI", 0x10, 2)
    img[at(2):at(2) + 96] = entry(".", 0x10, 2) + entry("..", 0x10, 0) + entry("BOOT", 0x10, 3)
    img[at(3):at(3) + 96] = entry(".", 0x10, 3) + entry("..", 0x10, 2) + \
        entry("BOOTX64 EFI", 0x20, 4, len(app))
    img[at(4):at(4) + len(app)] = app
    return bytes(img)


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None or not os.path.exists(OVMF),
                    reason="qemu-system-x86 or ovmf not installed")
def test_uefi_boot_in_qemu(tmp_path):
    """OVMF boots the ISO's El Torito UEFI entry: it reads efisys.bin (our FAT12 stub) and
    runs its EFI/BOOT/BOOTX64.EFI, which prints the marker (OVMF copies ConOut to serial)."""
    src = medium(tmp_path / "media")
    (src / "efi/microsoft/boot/efisys.bin").write_bytes(fat12_floppy(efi_app()))
    out = tmp_path / "pe.iso"
    assert wimfs("pe", "media", src, out).returncode == 0
    vars_fd = tmp_path / "vars.fd"
    shutil.copyfile(OVMF.replace("CODE", "VARS"), vars_fd)
    serial = tmp_path / "serial.log"
    proc = subprocess.Popen(["qemu-system-x86_64", "-machine", "q35", "-m", "256",
                             "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF}",
                             "-drive", f"if=pflash,format=raw,file={vars_fd}",
                             "-cdrom", str(out), "-boot", "d", "-display", "none",
                             "-serial", f"file:{serial}", "-net", "none", "-no-reboot"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if serial.exists() and UEFI_MARKER.encode() in serial.read_bytes():
                break
            time.sleep(1)
    finally:
        proc.kill()
        proc.wait()
    assert UEFI_MARKER.encode() in serial.read_bytes()
