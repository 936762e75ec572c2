"""Bootable Windows PE media: an ISO that boots on BIOS and UEFI (MakeWinPEMedia /ISO),
built with xorriso from a Windows installation medium (an ISO file or its files in a
folder) or an ADK media folder. An ISO source is read with pycdlib, which reads the UDF
file system Windows media keep their files in (xorriso reads no UDF).

The ISO holds the PE boot files of the source and ``sources/boot.wim``, with an El Torito
catalog of two no-emulation entries:

* BIOS (platform 0x00): ``boot/etfsboot.com``, 8 sectors loaded, no boot-info table
  (oscdimg's ``-b`` entry; etfsboot is not patched);
* UEFI (platform 0xEF): ``efi/microsoft/boot/efisys.bin``, the FAT image of the EFI
  loader.

Nothing is written to OUT.iso until xorriso has finished: the ISO is built under a
temporary name beside it and renamed at the end; a failure removes every temporary file.
``--start-script`` and ``--overlay`` edit a copy of boot.wim mount-free (the servicing
target), the image that boots: the WIM header's boot index (image 2 of a Setup boot.wim),
else image 1.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from servicing.errors import RefusedError, ServicingError, TargetPathError

#: ISO paths the PE medium needs: the two El Torito images, both boot managers, both
#: BCD stores and the ramdisk's SDI (the BCD's ramdisksdipath).
BIOS_BOOT = "boot/etfsboot.com"
UEFI_BOOT = "efi/microsoft/boot/efisys.bin"
REQUIRED = (BIOS_BOOT, UEFI_BOOT, "bootmgr", "bootmgr.efi", "boot/bcd",
            "efi/microsoft/boot/bcd", "boot/boot.sdi")
#: copied whole when present (fonts, resources, the EFI loaders under efi/boot)
TREES = ("boot", "efi")
BOOT_WIM = "sources/boot.wim"
# ISO 9660 stores a file's size in a 32-bit field (one extent); bootmgr does not read
# multi-extent files, so a boot.wim of 4 GiB or more cannot go on the ISO.
ISO9660_MAX_FILE = 0xFFFFFFFF


class MediaSourceError(ServicingError, FileNotFoundError):
    """The source lacks files a bootable PE medium needs."""

    exit_code = 4
    hresult = None
    win32 = 2


class IsoLimitError(RefusedError):
    """A file too large for ISO 9660 (boot.wim of 4 GiB or more)."""


class IsoSourceError(ServicingError):
    """SOURCE is not an ISO image that can be read."""

    exit_code = 3
    hresult = None
    win32 = 13                          # ERROR_INVALID_DATA


class IsoToolError(ServicingError):
    """xorriso failed or is missing."""


@dataclass
class MediaResult:
    iso: str
    boot_wim: str                   # where boot.wim came from
    boot_image: int | None          # the image edited (start script, overlay)
    files: int

    def to_json(self) -> dict:
        return vars(self).copy()


def _xorriso(argv: list[str]) -> str:
    exe = shutil.which("xorriso")
    if exe is None:
        raise IsoToolError("xorriso is not installed (apt-get install xorriso)")
    r = subprocess.run([exe, *argv], capture_output=True, text=True)
    if r.returncode != 0:
        lines = [ln for ln in r.stderr.splitlines() if "FAILURE" in ln or "SORRY" in ln]
        raise IsoToolError(f"xorriso failed: {(lines or r.stderr.splitlines() or ['?'])[-1]}")
    return r.stdout


def _index(root: str) -> dict[str, str]:
    """Lower-cased relative path -> real relative path of every file and folder under
    *root* (Windows media are case-insensitive)."""
    found = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
            found[rel.lower()] = rel
    return found


class IsoSource:
    """An ISO file read with pycdlib in the namespace that holds the medium's files: UDF
    (Windows media made by oscdimg ``-u2`` keep only a README.TXT in ISO 9660), else
    Joliet, else Rock Ridge, else plain ISO 9660."""

    def __init__(self, path: str) -> None:
        import pycdlib

        self.iso = pycdlib.PyCdlib()
        try:
            self.iso.open(path)
            self.ns = "udf_path" if self.iso.has_udf() else \
                "joliet_path" if self.iso.has_joliet() else \
                "rr_path" if self.iso.has_rock_ridge() else "iso_path"
            self.files = self._walk()
        except _iso_errors() as exc:
            raise IsoSourceError(f"{path}: not a readable ISO image ({exc})") from None

    def _walk(self) -> dict[str, tuple[str, int]]:
        """Lower-cased path (ISO 9660 versions ";1" dropped) -> (path as the ISO spells
        it, size; -1 for folders)."""
        found = {}
        for dirname, dirs, files in self.iso.walk(**{self.ns: "/"}):
            base = dirname.strip("/")
            for name in dirs:
                rel = f"{base}/{name}".strip("/")
                found[rel.lower()] = (rel, -1)
            for name in files:
                rel = f"{base}/{name}".strip("/")
                size = self.iso.get_record(**{self.ns: "/" + rel}).get_data_length()
                found[rel.split(";")[0].lower()] = (rel, size)
        return found

    def extract(self, rel: str, dest: str) -> None:
        """Extract a file, or a folder with everything under it, to *dest*."""
        real, size = self.files[rel.lower()]
        if size < 0:
            prefix = rel.lower() + "/"
            for low, (path, sz) in self.files.items():
                if low.startswith(prefix) and sz >= 0:
                    self.extract(low, os.path.join(dest, path.split(";")[0][len(prefix):]))
            return
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        try:
            self.iso.get_file_from_iso(dest, **{self.ns: "/" + real})
        except _iso_errors() as exc:
            raise IsoSourceError(f"cannot read {real} from the ISO ({exc})") from None

    def close(self) -> None:
        self.iso.close()


def _iso_errors() -> tuple[type[BaseException], ...]:
    from pycdlib.pycdlibexception import PyCdlibException

    return PyCdlibException, OSError, ValueError, IndexError, struct.error


def _plan(index: dict[str, str], boot_wim: str | None) -> list[str]:
    """The source paths to put on the ISO; every required one or an error naming all
    that are missing."""
    missing = [p for p in REQUIRED if p not in index]
    if boot_wim is None and BOOT_WIM not in index:
        missing.append(BOOT_WIM)
    if missing:
        raise MediaSourceError("the source is not a Windows installation or PE medium; "
                               f"missing: {', '.join(missing)}")
    picked = [real for low, real in index.items()
              if any(low == t or low.startswith(t + "/") for t in TREES)]
    picked += [index["bootmgr"], index["bootmgr.efi"]]
    if boot_wim is None:
        picked.append(index[BOOT_WIM])
    return sorted(set(picked))


def _check_size(path: str, size: int | None = None) -> None:
    size = os.path.getsize(path) if size is None else size
    if size > ISO9660_MAX_FILE:
        raise IsoLimitError(f"{path}: {size:,} bytes; ISO 9660 holds files below 4 GiB "
                            "(boot.wim must be smaller: remove components or export it "
                            "with --compress=lzx)")


def boot_image_index(wim_path: str) -> int:
    """The image a boot.wim boots: the header's boot index, else image 1."""
    from wimfs.wim import Wim

    with Wim(wim_path) as wim:
        return wim.header.boot_idx or 1


def make_media(source: str, out_iso: str, *, boot_wim: str | None = None,
               edit: Callable[[str], None] | None = None,
               label: str = "WINPE") -> MediaResult:
    """Build *out_iso* from *source*. *edit* (``edit("copy.wim:N")``) changes the boot.wim
    copy before it goes on the ISO (start script, overlay)."""
    if os.path.isdir(out_iso):
        raise TargetPathError(f"{out_iso} is a directory")
    if not os.path.exists(source):
        raise MediaSourceError(f"source not found: {source}")
    if boot_wim is not None and not os.path.isfile(boot_wim):
        raise MediaSourceError(f"boot.wim not found: {boot_wim}")
    out_dir = os.path.dirname(os.path.abspath(out_iso))
    if not os.path.isdir(out_dir):
        raise TargetPathError(f"output folder not found: {out_dir}")
    work = tempfile.mkdtemp(prefix=".wimfs-pe-", dir=out_dir)
    try:
        return _build(source, out_iso, work, boot_wim, edit, label)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _extract_medium(source: str, root: str, boot_wim: str | None) -> None:
    """The PE files of the ISO *source* under *root* (boot.wim's size checked first)."""
    iso = IsoSource(source)
    try:
        _plan({low: real for low, (real, _) in iso.files.items()}, boot_wim)
        want = list(TREES) + ["bootmgr", "bootmgr.efi"]
        if boot_wim is None:
            _check_size(f"{source}:{BOOT_WIM}", iso.files[BOOT_WIM][1])
            want.append(BOOT_WIM)
        for rel in want:
            iso.extract(rel, os.path.join(root, iso.files[rel][0].split(";")[0]))
    finally:
        iso.close()


def _graft(iso_path: str, local: str) -> str:
    """A mkisofs graft point ``ISO=LOCAL``; ``\\`` and ``=`` in either are escaped."""
    def esc(p: str) -> str:
        return p.replace("\\", "\\\\").replace("=", "\\=")
    return f"{esc(iso_path)}={esc(os.path.abspath(local))}"


def _build(source: str, out_iso: str, work: str, boot_wim: str | None,
           edit: Callable[[str], None] | None, label: str) -> MediaResult:
    root = source
    if not os.path.isdir(source):
        root = os.path.join(work, "src")
        _extract_medium(source, root, boot_wim)
    index = _index(root)
    picked = [p for p in _plan(index, boot_wim) if not os.path.isdir(os.path.join(root, p))]
    wim_iso = index.get(BOOT_WIM, BOOT_WIM)
    wim_src = boot_wim or os.path.join(root, wim_iso)
    image = None
    if edit is not None:
        _check_size(wim_src)
        copy = os.path.join(work, "boot.wim")
        shutil.copyfile(wim_src, copy)
        image = boot_image_index(copy)
        edit(f"{copy}:{image}")
        wim_src = copy
    _check_size(wim_src)
    tmp_iso = os.path.join(work, "out.iso")
    grafts = [_graft(p, os.path.join(root, p)) for p in picked if p != wim_iso]
    grafts.append(_graft(wim_iso, os.path.abspath(wim_src)))
    _xorriso(["-as", "mkisofs", "-quiet", "-iso-level", "2", "-R", "-J", "-joliet-long",
              "-V", label, "-o", tmp_iso, "-graft-points", "--boot-catalog-hide",
              "-b", index[BIOS_BOOT], "-no-emul-boot", "-boot-load-size", "8",
              "-eltorito-alt-boot", "-e", index[UEFI_BOOT], "-no-emul-boot", *grafts])
    os.replace(tmp_iso, out_iso)
    return MediaResult(iso=out_iso, boot_wim=boot_wim or f"{source}/{wim_iso}",
                       boot_image=image, files=len(grafts))
