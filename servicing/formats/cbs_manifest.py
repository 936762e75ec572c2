"""CBS package manifests (``update.mum``, ``<identity>.mum``): namespace
``urn:schemas-microsoft-com:asm.v3`` (servicing-facts.md section 2; WitherOrNot/cbs-docs
GeneralOverview.md).

    <assembly xmlns="urn:schemas-microsoft-com:asm.v3" displayName= description= company=
              copyright= supportInformation= creationTimeStamp= lastUpdateTimeStamp=>
      <assemblyIdentity name= version= processorArchitecture= language= publicKeyToken=/>
      <package identifier= releaseType= restart=>
        <parent buildCompare= revisionCompare= disposition=><assemblyIdentity .../></parent>
        <customInformation><...>text</...></customInformation>
        <update name= displayName= description= restart=>
          <selectable disposition="staged|installed"/>      (a feature)
          <component|package|driver><assemblyIdentity .../></...>
        </update>
      </package>
    </assembly>

Pure parsing (lxml, no entities, no network); :class:`ManifestError` for anything else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from lxml import etree

from servicing.errors import ServicingError
from wimfs.errors import EXIT_BAD_IMAGE

NS = "urn:schemas-microsoft-com:asm.v3"
CBS_E_INVALID_PACKAGE = 0x800F0805
MAX_MANIFEST = 64 << 20


class ManifestError(ServicingError):
    """A package manifest that is not a CBS package manifest."""

    exit_code = EXIT_BAD_IMAGE
    hresult = CBS_E_INVALID_PACKAGE


@dataclass(frozen=True)
class Identity:
    """``name~publicKeyToken~arch~language~version``; language "" is neutral."""

    name: str
    public_key_token: str = ""
    arch: str = ""
    language: str = ""
    version: str = ""

    @property
    def key(self) -> str:
        return "~".join((self.name, self.public_key_token, self.arch, self.language,
                         self.version))

    @property
    def family(self) -> str:
        """The identity without its version (CBS's PackageIndex key uses 0.0.0.0)."""
        return "~".join((self.name, self.public_key_token, self.arch,
                         self.language)).lower()

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return version_tuple(self.version)

    @classmethod
    def parse(cls, key: str) -> Identity:
        parts = key.split("~")
        if len(parts) != 5 or not parts[0]:
            raise ManifestError(f"not a package identity (name~publicKeyToken~arch~"
                                f"language~version): {key!r}")
        return cls(*parts)

    def component_key(self, pseudokey: str) -> str:
        """The WinSxS key form ``arch_name_pkt_version_lang_pseudokey``, lower-cased,
        name and language truncated to 40 and 8 characters as ``first k..last k``,
        k = length/2 - 1 (cbs-docs CBSInternals.md). The pseudokey (a hash of the
        whole identity, haveSxS) is the caller's."""
        lang = self.language or "none"
        return "_".join((self.arch or "none", _truncate(self.name, 40),
                         self.public_key_token or "none", self.version or "0.0.0.0",
                         _truncate(lang, 8), pseudokey)).lower()

    def to_json(self) -> dict:
        return asdict(self) | {"identity": self.key}


def _truncate(value: str, length: int) -> str:
    if len(value) <= length:
        return value
    k = length // 2 - 1
    return f"{value[:k]}..{value[-k:]}"


def version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split(".")) if version else ()
    except ValueError:
        raise ManifestError(f"bad version {version!r}") from None


@dataclass
class Parent:
    identity: Identity
    build_compare: str = ""        # EQ, GE, ... against the parent's build
    revision_compare: str = ""
    disposition: str = ""

    def to_json(self) -> dict:
        return {"identity": self.identity.key, "build_compare": self.build_compare,
                "revision_compare": self.revision_compare, "disposition": self.disposition}


@dataclass
class Update:
    """One ``<update>``: a feature when it is selectable."""

    name: str
    display_name: str = ""
    description: str = ""
    restart: str = ""
    selectable: bool = False
    default: str = ""                      # the selectable disposition
    components: list[Identity] = field(default_factory=list)
    packages: list[Identity] = field(default_factory=list)
    drivers: list[Identity] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"name": self.name, "display_name": self.display_name,
                "description": self.description, "restart": self.restart,
                "selectable": self.selectable, "default": self.default,
                "components": [i.key for i in self.components],
                "packages": [i.key for i in self.packages],
                "drivers": [i.key for i in self.drivers]}


@dataclass
class Manifest:
    identity: Identity
    identifier: str = ""
    release_type: str = ""
    restart: str = ""
    display_name: str = ""
    description: str = ""
    company: str = ""
    copyright: str = ""
    product_name: str = ""
    product_version: str = ""
    support_information: str = ""
    creation_time: str = ""
    last_update_time: str = ""
    custom_properties: dict[str, str] = field(default_factory=dict)
    parents: list[Parent] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)

    @property
    def features(self) -> list[Update]:
        return [u for u in self.updates if u.selectable]

    def to_json(self) -> dict:
        doc = {k: v for k, v in asdict(self).items() if k not in ("identity", "parents",
                                                                  "updates")}
        return doc | {"identity": self.identity.key, "parents": [p.to_json() for p in
                                                                   self.parents],
                      "updates": [u.to_json() for u in self.updates]}


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _identity(el, where: str) -> Identity:
    ident = el.find(_q("assemblyIdentity"))
    if ident is None:
        raise ManifestError(f"{where}: <assemblyIdentity> missing")
    name = ident.get("name")
    if not name:
        raise ManifestError(f"{where}: <assemblyIdentity> without a name")
    lang = ident.get("language", "")
    version = ident.get("version", "")
    version_tuple(version)
    return Identity(name, ident.get("publicKeyToken", ""),
                    ident.get("processorArchitecture", ""),
                    "" if lang.lower() in ("neutral", "none", "*") else lang, version)


def parse(data: bytes, where: str = "manifest") -> Manifest:
    """Parse a package manifest; ManifestError names *where* and the reason."""
    if len(data) > MAX_MANIFEST:
        raise ManifestError(f"{where}: manifest too large")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                             load_dtd=False, dtd_validation=False)
    try:
        root = etree.fromstring(data, parser)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise ManifestError(f"{where}: not well-formed XML ({exc})") from None
    if root.tag != _q("assembly"):
        raise ManifestError(f"{where}: not a CBS manifest (root {root.tag!r}, expected "
                            f"<assembly> in {NS})")
    m = Manifest(_identity(root, where))
    for attr, name in (("displayName", "display_name"), ("description", "description"),
                       ("company", "company"), ("copyright", "copyright"),
                       ("supportInformation", "support_information"),
                       ("creationTimeStamp", "creation_time"),
                       ("lastUpdateTimeStamp", "last_update_time")):
        setattr(m, name, root.get(attr, ""))
    pkg = root.find(_q("package"))
    if pkg is None:
        raise ManifestError(f"{where}: no <package> element (a component manifest, "
                            "not a package)")
    m.identifier = pkg.get("identifier", "")
    m.release_type = pkg.get("releaseType", "")
    m.restart = pkg.get("restart", "")
    _package_body(pkg, m, where)
    m.product_name = m.custom_properties.get("ProductName", root.get("productName", ""))
    m.product_version = m.custom_properties.get("ProductVersion",
                                                root.get("productVersion", ""))
    return m


def _package_body(pkg, m: Manifest, where: str) -> None:
    for parent in pkg.findall(_q("parent")):
        m.parents.append(Parent(_identity(parent, f"{where} <parent>"),
                                parent.get("buildCompare", ""),
                                parent.get("revisionCompare", ""),
                                parent.get("disposition", "")))
    for info in pkg.iter(_q("customInformation")):
        for child in info:
            if isinstance(child.tag, str):
                m.custom_properties[etree.QName(child).localname] = (child.text or "").strip()
        for k, v in info.attrib.items():
            m.custom_properties[etree.QName(k).localname] = v
    for upd in pkg.findall(_q("update")):
        name = upd.get("name")
        if not name:
            raise ManifestError(f"{where}: <update> without a name")
        u = Update(name, upd.get("displayName", ""), upd.get("description", ""),
                   upd.get("restart", ""))
        sel = upd.find(_q("selectable"))
        if sel is not None:
            u.selectable, u.default = True, sel.get("disposition", "")
        for tag, into in (("component", u.components), ("package", u.packages),
                          ("driver", u.drivers)):
            for el in upd.findall(_q(tag)):
                into.append(_identity(el, f"{where} <update name={name!r}> <{tag}>"))
        m.updates.append(u)
