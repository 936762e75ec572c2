"""Windows answer files (unattend.xml), read with lxml into passes, components, settings
and ``<servicing>`` package actions, each with its line number. Pure parsing: what can be
applied to an image is decided in servicing.features.unattend.

The shape (Microsoft, "Answer files (unattend.xml)" and the Unattended Windows Setup
Reference)::

    <unattend xmlns="urn:schemas-microsoft-com:unattend"
              xmlns:wcm="http://schemas.microsoft.com/WMIConfig/2002/State">
      <servicing>
        <package action="install|stage|remove|configure">
          <assemblyIdentity name= version= processorArchitecture= publicKeyToken=
                            language=/>
          <source location="..."/>
          <selection name="FEATURE" state="true|false"/>
        </package>
      </servicing>
      <settings pass="windowsPE|offlineServicing|generalize|specialize|auditSystem|
                      auditUser|oobeSystem">
        <component name= processorArchitecture= publicKeyToken= language= versionScope=>
          ... settings; list items carry wcm:action="add|modify|remove" and
              wcm:keyValue (or a key element such as Order) ...

Hostile input is refused with one error before anything is used: a file over
:data:`MAX_FILE` bytes, any DOCTYPE (so no entity, internal or external, is ever declared,
as defusedxml does), a text or attribute value over :data:`MAX_VALUE` characters. The
parser never touches the network, never resolves entities and keeps lxml's default
tree limits (``huge_tree`` off). Mistakes that Setup would trip over (an unknown pass, the
asm.v3 namespace of Microsoft's own driver sample, a list item without its key, a bad
wcm:action) are collected as :class:`Problem` s with their line numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from lxml import etree

from servicing.errors import ServicingError
from wimfs.errors import EXIT_BAD_IMAGE

NS = "urn:schemas-microsoft-com:unattend"
WCM = "http://schemas.microsoft.com/WMIConfig/2002/State"
ASM_V3 = "urn:schemas-microsoft-com:asm.v3"
CPI = "urn:schemas-microsoft-com:cpi"      # Windows SIM's <cpi:offlineImage> note
PASSES = ("windowsPE", "offlineServicing", "generalize", "specialize", "auditSystem",
          "auditUser", "oobeSystem")
ACTIONS = ("add", "modify", "remove")
PACKAGE_ACTIONS = ("install", "stage", "remove", "configure")
#: list items that are keyed by a child element instead of wcm:keyValue (Unattended
#: Windows Setup Reference: the command and partition lists by Order, Disk by DiskID,
#: MetaData by Key, LocalAccount by Name, Interface and Route by Identifier)
KEY_ELEMENTS = {"RunSynchronousCommand": "Order", "RunAsynchronousCommand": "Order",
                "SynchronousCommand": "Order", "AsynchronousCommand": "Order",
                "CreatePartition": "Order", "ModifyPartition": "Order", "Disk": "DiskID",
                "MetaData": "Key", "LocalAccount": "Name", "Interface": "Identifier",
                "Route": "Identifier"}
#: list items whose wcm:keyValue Setup needs (PathAndCredentials: "one unique key per path")
KEYVALUE_REQUIRED = {"PathAndCredentials"}
MAX_FILE = 4 * 1024 * 1024        # answer files are a few dozen KiB
MAX_VALUE = 64 * 1024             # the largest setting (an offline domain-join blob) is KiB


class UnattendError(ServicingError):
    """The answer file cannot be read (not XML, hostile, not an answer file)."""

    exit_code = EXIT_BAD_IMAGE


@dataclass
class Problem:
    """A schema mistake; ``error`` ones stop ``apply``, warnings are only reported."""

    line: int | None
    message: str
    error: bool = True

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{'' if self.error else 'warning: '}{self.message}"


@dataclass
class Setting:
    """A leaf of a component: ``path`` like ``DriverPaths/PathAndCredentials[1]/Path``."""

    pass_name: str
    component: str
    path: str
    value: str | None
    line: int | None
    action: str | None = None            # wcm:action of the nearest list item

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Component:
    pass_name: str
    name: str
    architecture: str
    public_key_token: str
    language: str
    line: int | None
    settings: list[Setting] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class PackageAction:
    action: str
    identity: dict[str, str]
    source: str | None
    selections: list[tuple[str, bool]]
    line: int | None

    def to_json(self) -> dict:
        return {"action": self.action, "identity": self.identity, "source": self.source,
                "selections": [{"name": n, "state": s} for n, s in self.selections],
                "line": self.line}


@dataclass
class AnswerFile:
    passes: list[str] = field(default_factory=list)
    components: list[Component] = field(default_factory=list)
    packages: list[PackageAction] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"passes": self.passes,
                "components": [c.to_json() for c in self.components],
                "packages": [p.to_json() for p in self.packages],
                "problems": [asdict(p) for p in self.problems]}

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.error]


def _local(el) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _ns(el) -> str | None:
    return etree.QName(el).namespace if isinstance(el.tag, str) else None


def _load(data: bytes, name: str):
    if len(data) > MAX_FILE:
        raise UnattendError(f"{name}: {len(data)} bytes; an answer file is at most "
                            f"{MAX_FILE} bytes")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                             load_dtd=False, dtd_validation=False, remove_comments=True,
                             remove_pis=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        raise UnattendError(f"{name}: not well-formed XML (line {e.lineno}: "
                            f"{e.msg})") from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise UnattendError(f"{name}: a DOCTYPE (entity declarations) is not allowed in "
                            "an answer file")
    for el in root.iter():
        if not isinstance(el.tag, str):
            raise UnattendError(f"{name}: line {el.sourceline}: entity references are "
                                "not allowed in an answer file")
        texts = [el.text or "", el.tail or "", *el.attrib.values()]
        if any(len(t) > MAX_VALUE for t in texts):
            raise UnattendError(f"{name}: line {el.sourceline}: a value over {MAX_VALUE} "
                                "characters")
    return root


def parse(data: bytes, name: str = "answer file") -> AnswerFile:
    """Read an answer file; UnattendError when it cannot be used at all."""
    root = _load(data, name)
    if _local(root) != "unattend":
        raise UnattendError(f"{name}: the root element is <{_local(root)}>, not <unattend>")
    out = AnswerFile()
    if _ns(root) != NS:
        hint = " (Microsoft's driver sample wrongly uses it)" if _ns(root) == ASM_V3 else ""
        out.problems.append(Problem(root.sourceline, f"namespace {_ns(root)!r}{hint}; an "
                                    f"answer file uses {NS!r}"))
        if _ns(root) not in (ASM_V3,):
            raise UnattendError(f"{name}: {out.problems[-1]}")
    ns = _ns(root)
    for el in root:
        if _ns(el) == CPI:
            continue
        if _ns(el) != ns:
            out.problems.append(Problem(el.sourceline, f"<{_local(el)}> is not in the "
                                        "answer-file namespace", error=False))
        elif _local(el) == "settings":
            _settings(el, out)
        elif _local(el) == "servicing":
            _servicing(el, out)
        else:
            out.problems.append(Problem(el.sourceline, f"unknown element <{_local(el)}>"))
    return out


def _settings(el, out: AnswerFile) -> None:
    name = el.get("pass")
    if name not in PASSES:
        out.problems.append(Problem(el.sourceline, f"unknown pass {name!r} (passes: "
                                    f"{', '.join(PASSES)})"))
        return
    if name not in out.passes:
        out.passes.append(name)
    for comp in el:
        if _local(comp) != "component":
            out.problems.append(Problem(comp.sourceline, f"<{_local(comp)}> in <settings> "
                                        "(only <component>)"))
            continue
        c = Component(name, comp.get("name") or "", comp.get("processorArchitecture") or "",
                      comp.get("publicKeyToken") or "", comp.get("language") or "",
                      comp.sourceline)
        if not c.name:
            out.problems.append(Problem(comp.sourceline, "a component without a name"))
        _leaves(comp, c, "", None, out)
        out.components.append(c)


def _leaves(el, comp: Component, prefix: str, action: str | None, out: AnswerFile) -> None:
    for child in el:
        tag = _local(child)
        act = child.get(f"{{{WCM}}}action")
        if act is not None and act not in ACTIONS:
            out.problems.append(Problem(child.sourceline, f"wcm:action={act!r} (add, "
                                        "modify or remove)"))
        key = child.get(f"{{{WCM}}}keyValue")
        if act == "add" and key is None:
            _check_key(child, tag, out)
        name = f"{tag}[{key}]" if key is not None else tag
        path = f"{prefix}/{name}" if prefix else name
        if len(child):
            _leaves(child, comp, path, act or action, out)
        else:
            text = child.text.strip() if child.text is not None else None
            comp.settings.append(Setting(comp.pass_name, comp.name, path, text,
                                         child.sourceline, act or action))


def _check_key(item, tag: str, out: AnswerFile) -> None:
    need = KEY_ELEMENTS.get(tag)
    if need is not None and item.find(f"{{{_ns(item)}}}{need}") is not None:
        return
    what = f"<{need}>" if need else "wcm:keyValue"
    out.problems.append(Problem(item.sourceline, f"list item <{tag}> without {what}",
                                error=tag in KEYVALUE_REQUIRED))


def _servicing(el, out: AnswerFile) -> None:
    for pkg in el:
        if _local(pkg) != "package":
            out.problems.append(Problem(pkg.sourceline, f"<{_local(pkg)}> in <servicing> "
                                        "(only <package>)"))
            continue
        action = pkg.get("action") or ""
        if action not in PACKAGE_ACTIONS:
            out.problems.append(Problem(pkg.sourceline, f"package action={action!r} "
                                        f"({', '.join(PACKAGE_ACTIONS)})"))
            continue
        identity, source, selections = {}, None, []
        for child in pkg:
            tag = _local(child)
            if tag == "assemblyIdentity":
                identity = {k: v for k, v in child.attrib.items() if "}" not in k}
            elif tag == "source":
                source = child.get("location")
            elif tag == "selection":
                state = (child.get("state") or "").lower()
                if state not in ("true", "false") or not child.get("name"):
                    out.problems.append(Problem(child.sourceline, "<selection> needs a "
                                                "name and state=\"true|false\""))
                    continue
                selections.append((child.get("name"), state == "true"))
        if not identity.get("name") and source is None:
            out.problems.append(Problem(pkg.sourceline, "<package> without "
                                        "<assemblyIdentity name=> or <source location=>"))
            continue
        out.packages.append(PackageAction(action, identity, source, selections,
                                          pkg.sourceline))
