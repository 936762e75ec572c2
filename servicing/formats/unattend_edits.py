"""Answer files wimfs writes (bytes in, bytes out; lxml without entities or network):

* the product key: ``Microsoft-Windows-Shell-Setup`` ``ProductKey`` of the specialize pass
  (Microsoft's unattend reference), added to an existing answer file or to a new one;
* a servicing answer file that installs and removes CBS packages by identity
  (``<servicing><package action="install|remove"><assemblyIdentity .../>``), as DISM
  /Apply-Unattend reads it (the Windows 7 edition switch of Set-WindowsCbsEdition)."""

from __future__ import annotations

from lxml import etree

from servicing.errors import ServicingError

NS = "urn:schemas-microsoft-com:unattend"
WCM = "http://schemas.microsoft.com/WMIConfig/2002/State"
SHELL_SETUP = "Microsoft-Windows-Shell-Setup"


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                           remove_blank_text=True)


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _child(parent, tag: str, attrs: dict[str, str] | None = None):
    for el in parent.findall(_q(tag)):
        if all(el.get(k) == v for k, v in (attrs or {}).items()):
            return el
    return etree.SubElement(parent, _q(tag), attrs or {})


def with_product_key(data: bytes | None, key: str, arch: str) -> bytes:
    """The answer file *data* (None: a new one) with *key* as the specialize-pass
    product key of Shell-Setup for *arch*."""
    if data is None:
        root = etree.Element(_q("unattend"), nsmap={None: NS, "wcm": WCM})
    else:
        try:
            root = etree.fromstring(data, _parser())
        except etree.XMLSyntaxError as exc:
            raise ServicingError(f"Panther\\unattend.xml is not valid XML: {exc}") from None
        if root.getroottree().docinfo.internalDTD is not None:
            raise ServicingError("Panther\\unattend.xml has a DOCTYPE (entity declarations "
                                 "are not accepted)")
        if root.tag != _q("unattend"):
            raise ServicingError("Panther\\unattend.xml is not an answer file (root "
                                 f"{root.tag}, expected unattend in {NS})")
    settings = _child(root, "settings", {"pass": "specialize"})
    comp = None
    for el in settings.findall(_q("component")):
        if el.get("name") == SHELL_SETUP and el.get("processorArchitecture") == arch:
            comp = el
    if comp is None:
        comp = etree.SubElement(settings, _q("component"), {
            "name": SHELL_SETUP, "processorArchitecture": arch,
            "publicKeyToken": "31bf3856ad364e35", "language": "neutral",
            "versionScope": "nonSxS"})
    _child(comp, "ProductKey").text = key
    etree.indent(root, space="    ")
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def package_actions(actions: list[tuple[str, dict[str, str]]]) -> bytes:
    """A servicing answer file with one ``<package action=...>`` per (action, identity),
    the identity's attributes in the order DISM's samples give them."""
    order = ("name", "version", "processorArchitecture", "publicKeyToken", "language")
    root = etree.Element(_q("unattend"), nsmap={None: NS})
    servicing = etree.SubElement(root, _q("servicing"))
    for action, identity in actions:
        package = etree.SubElement(servicing, _q("package"), {"action": action})
        etree.SubElement(package, _q("assemblyIdentity"),
                         {k: identity[k] for k in order})
    etree.indent(root, space="    ")
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")
