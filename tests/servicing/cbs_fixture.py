"""CBS package state for servicing tests: SOFTWARE hive keys, installed manifests and
package files (.cab/.msu built with gcab at test time).

No real SOFTWARE or COMPONENTS hive exists in the corpus, so the package keys are written
with our regf writer to the layout Microsoft and public reverse engineering document
(servicing-facts.md section 2):

* ``SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Component Based Servicing\\Packages\\
  <name~publicKeyToken~arch~language~version>`` with ``CurrentState`` (REG_DWORD, the CBS
  state code of Microsoft's "CBS Servicing States Chart": 0x40 Staged, 0x50 Superseded,
  0x60 Install Pending, 0x70 Installed, 0x80 Permanent; negative codes are invalid
  states), ``InstallTimeHigh``/``InstallTimeLow`` (REG_DWORD halves of a FILETIME),
  ``InstallClient``, ``InstallName``, ``Visibility`` (REG_SZ/REG_DWORD, as written by a
  public script that registers a package offline);
* ``...\\Packages\\<identity>\\Updates``: one REG_DWORD per selectable update holding its
  state code (the per-feature layout servicing-facts.md gives, marked unverified);
* ``Windows\\servicing\\Packages\\<identity>.mum``: the package manifest.

Manifests follow the asm.v3 package schema of update.mum files (servicing-facts.md 2):
``<assembly xmlns="urn:schemas-microsoft-com:asm.v3">`` with ``<assemblyIdentity>`` and
``<package identifier releaseType restart>`` holding ``<parent>`` and ``<update>``s.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import quoteattr

from servicing.regf import REG_DWORD, REG_SZ, Hive

PKT = "31bf3856ad364e35"
CBS_KEY = "Microsoft\\Windows\\CurrentVersion\\Component Based Servicing"


@dataclass
class Pkg:
    name: str
    version: str
    state: int                               # the DWORD as stored (0..0xFFFFFFFF)
    arch: str = "amd64"
    language: str = ""
    release_type: str = "Update"
    install_time: int | None = None          # FILETIME
    features: dict[str, int] = field(default_factory=dict)
    mum_features: dict[str, str] = field(default_factory=dict)   # name -> disposition
    parents: list[tuple[str, str, str, str]] = field(default_factory=list)
    restart: str = "possible"

    @property
    def identity(self) -> str:
        return f"{self.name}~{PKT}~{self.arch}~{self.language}~{self.version}"


def identity_xml(name: str, version: str, arch: str, language: str) -> str:
    return (f"<assemblyIdentity name={quoteattr(name)} version={quoteattr(version)} "
            f"processorArchitecture={quoteattr(arch)} "
            f"language={quoteattr(language or 'neutral')} publicKeyToken=\"{PKT}\"/>")


def manifest(p: Pkg, *, extra_attrs: str = "", custom: dict[str, str] | None = None) -> bytes:
    """An update.mum for *p* (asm.v3 package schema)."""
    parents = "".join(
        f"<parent buildCompare={quoteattr(bc)} revisionCompare={quoteattr(rc)} "
        f"disposition=\"detect\">{identity_xml(name, ver, p.arch, '')}</parent>"
        for name, ver, bc, rc in p.parents)
    updates = "".join(
        f"<update name={quoteattr(n)} displayName={quoteattr(n + ' feature')} "
        f"description={quoteattr('The ' + n + ' feature.')}>"
        f"<selectable disposition={quoteattr(d)}/>"
        f"<component>{identity_xml('Microsoft-Windows-' + n, p.version, p.arch, '')}"
        f"</component></update>" for n, d in p.mum_features.items())
    if not updates:
        updates = (f"<update name=\"{p.name}-main\"><component>"
                   f"{identity_xml(p.name + '-Component', p.version, p.arch, p.language)}"
                   f"</component></update>")
    info = ""
    if custom:
        info = "<customInformation>" + "".join(
            f"<{k}>{v}</{k}>" for k, v in custom.items()) + "</customInformation>"
    return (f"<?xml version=\"1.0\" encoding=\"utf-8\" standalone=\"yes\"?>\r\n"
            f"<assembly xmlns=\"urn:schemas-microsoft-com:asm.v3\" manifestVersion=\"1.0\" "
            f"displayName={quoteattr(p.name + ' display')} company=\"Microsoft Corporation\" "
            f"copyright=\"Copyright (c) Microsoft Corporation.\" "
            f"supportInformation=\"http://support.microsoft.com/?kbid=1\" "
            f"creationTimeStamp=\"2017-09-29T05:13:17Z\" "
            f"lastUpdateTimeStamp=\"2017-09-29T05:13:17Z\" {extra_attrs}>"
            f"{identity_xml(p.name, p.version, p.arch, p.language)}"
            f"<package identifier={quoteattr(p.name)} releaseType={quoteattr(p.release_type)}"
            f" restart={quoteattr(p.restart)}>{parents}{info}{updates}</package>"
            f"</assembly>").encode()


def write_cbs(software: Path, packages: list[Pkg], *, reboot_pending: bool = False) -> None:
    """Add the CBS package keys of *packages* to the SOFTWARE hive file."""
    with Hive.open(software, write=True) as h:
        root = h.create_key(CBS_KEY + "\\Packages")
        for p in packages:
            k = root.create_key(p.identity)
            k.set_value("CurrentState", REG_DWORD, p.state)
            k.set_value("InstallClient", REG_SZ, "DISM Package Manager Provider")
            k.set_value("InstallName", REG_SZ, f"{p.identity}.mum")
            k.set_value("Visibility", REG_DWORD, 1)
            if p.install_time is not None:
                k.set_value("InstallTimeHigh", REG_DWORD, p.install_time >> 32)
                k.set_value("InstallTimeLow", REG_DWORD, p.install_time & 0xFFFFFFFF)
            if p.features:
                u = k.create_key("Updates")
                for name, code in p.features.items():
                    u.set_value(name, REG_DWORD, code)
        if reboot_pending:
            h.create_key(CBS_KEY + "\\RebootPending")
        h.commit()


def write_mums(windir: Path, packages: list[Pkg]) -> None:
    d = windir / "servicing" / "Packages"
    d.mkdir(parents=True, exist_ok=True)
    for p in packages:
        (d / f"{p.identity}.mum").write_bytes(manifest(p))


# -- a Windows 10 (10.0.16299, amd64) package set -------------------------------------------

FOUNDATION = Pkg("Microsoft-Windows-Foundation-Package", "10.0.16299.15", 0x70,
                 release_type="Foundation", install_time=0x01D3391AB0F7C000,
                 features={"TelnetClient": 0x40, "SMB1Protocol": 0x70, "NetFx3": 0x00,
                           "TFTP": 0x60},
                 mum_features={"TelnetClient": "staged", "SMB1Protocol": "installed",
                               "NetFx3": "staged", "TFTP": "staged",
                               "SimpleTCP": "staged", "Printing-XPSServices-Features":
                               "installed"})
LANGPACK = Pkg("Microsoft-Windows-Client-LanguagePack-Package", "10.0.16299.15", 0x70,
               language="en-US", release_type="Language Pack",
               install_time=0x01D3391C7A5F3E00)
ROLLUP = Pkg("Package_for_RollupFix", "16299.125.1.6", 0x70, release_type="Security Update",
             install_time=0x01D37A2B11111111,
             parents=[("Microsoft-Windows-Foundation-Package", "10.0.16299.15", "EQ", "GE")])
OLD_KB = Pkg("Package_for_KB4000002", "10.0.1.0", 0x50, install_time=0x01D3500000000000)
NEW_KB = Pkg("Package_for_KB4000002", "10.0.2.0", 0x70, install_time=0x01D3600000000000)
BROKEN = Pkg("Package_for_KB4000003", "10.0.1.0", 0xFFFFFF90)       # -0x70
STAGED = Pkg("Microsoft-Windows-EnterpriseEdition", "10.0.16299.15", 0x40,
             release_type="Product")
PERMANENT = Pkg("Microsoft-Windows-ServicingStack", "10.0.16299.15", 0x80,
                release_type="Update")
PENDING = Pkg("Package_for_KB4000004", "10.0.1.0", 0x60)
WIN10_PACKAGES = [FOUNDATION, LANGPACK, ROLLUP, OLD_KB, NEW_KB, BROKEN, STAGED, PERMANENT,
                  PENDING]


def add_cbs_state(tree: Path, packages: list[Pkg] = WIN10_PACKAGES, **kw) -> Path:
    """The CBS state of *packages* in the Windows tree *tree* (hive keys and .mum files;
    BROKEN has no .mum, as a damaged store would lack it)."""
    write_cbs(tree / "Windows/System32/config/SOFTWARE", packages, **kw)
    write_mums(tree / "Windows", [p for p in packages if p is not BROKEN])
    return tree


# -- package files ---------------------------------------------------------------------------

def build_cab(out: Path, files: dict[str, bytes]) -> Path:
    """A cabinet of *files* (name -> content) made by gcab."""
    src = out.parent / (out.name + ".src")
    src.mkdir(parents=True)
    for name, data in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    subprocess.run(["gcab", "-c", "-z", str(out), *files], cwd=src, check=True)
    return out


def package_cab(out: Path, p: Pkg, **kw) -> Path:
    """A CBS package cabinet: update.mum, a component manifest and a payload file."""
    comp = (f"<?xml version=\"1.0\"?><assembly xmlns=\"urn:schemas-microsoft-com:asm.v3\" "
            f"manifestVersion=\"1.0\">{identity_xml(p.name + '-Component', p.version, p.arch, p.language)}"
            f"</assembly>").encode()
    return build_cab(out, {"update.mum": manifest(p, **kw), "component.manifest": comp,
                           "payload/readme.txt": b"payload\r\n"})


def msu(out: Path, cabs: list[Path]) -> Path:
    """An .msu (KB934307 layout): WSUSSCAN.cab, the package cabinets, a pkgProperties
    text and the pkgmgr .xml."""
    wsus = build_cab(out.parent / "WSUSSCAN.cab", {"package.xml": b"<x/>"})
    files = {"WSUSSCAN.cab": wsus.read_bytes()}
    for c in cabs:
        files[c.name] = c.read_bytes()
    stem = out.stem
    files[f"{stem}-pkgProperties.txt"] = b'ApplicabilityInfo="Windows 10.0"\r\n'
    files[f"{stem}.xml"] = b"<unattend/>"
    return build_cab(out, files)
