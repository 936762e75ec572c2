"""``<windir>\\servicing\\Editions\\EditionMatrix.xml``: the editions each edition of an
image can be changed to (``<Edition ID="Professional"><Target ID="Education"/>...``; the
layout DISM++'s converter reads). Bytes in, a mapping out; lxml without entities or
network."""

from __future__ import annotations

from lxml import etree

from servicing.errors import ServicingError


def parse_matrix(data: bytes) -> dict[str, list[str]]:
    """Edition ID -> target edition IDs (in file order), keys lower-cased."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ServicingError(f"EditionMatrix.xml is not valid XML: {exc}") from None
    if root.getroottree().docinfo.internalDTD is not None:
        raise ServicingError("EditionMatrix.xml has a DOCTYPE (entity declarations are not "
                             "accepted)")
    matrix: dict[str, list[str]] = {}
    for el in root.iter("{*}Edition", "Edition"):
        ident = el.get("ID")
        if ident:
            matrix.setdefault(ident.lower(), []).extend(
                t.get("ID") for t in el.iter("{*}Target", "Target") if t.get("ID"))
    return matrix
