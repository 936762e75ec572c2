"""INF files as Microsoft documents them: bytes in, sections of lines out.

Pure: no Target, no registry. The syntax rules (windows-driver-docs "General Syntax
Rules for INF Files", "INF Strings Section", "Creating International INF Files"):

* encoding: UTF-16LE/BE or UTF-8 by byte-order mark, otherwise ANSI -- Windows-1252
  unless the ``[Strings.<LANGID>]`` section in use implies another code page. Our one
  addition: text without a mark that is valid UTF-8 and not plain ASCII is read as UTF-8
  (ReactOS keeps its INF sources so; a real ANSI text with accents is almost never
  valid UTF-8);
* section names and keys are case-insensitive; sections of one name are merged;
* ``;`` starts a comment except inside double quotes; a trailing ``\\`` continues the line;
  a quote left open ends with its line (setupapi is as lenient);
* fields are comma-separated, an omitted middle field stays an empty field, quotes are
  removed and ``""`` inside quotes is one ``"``;
* ``%strkey%`` is replaced by the string of the language in use (the exact LANGID, then
  the primary language, then the neutral ``[Strings]``); ``%%`` is one ``%``; an unknown
  key such as a DIRID (``%11%``) is kept as written; in ``[Strings]`` values ``%%`` is
  one ``%`` and ``%key%`` is not substituted.

Semantics (Version, models, install sections) live in :mod:`servicing.formats.inf_driver`.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

from wimfs.errors import EXIT_BAD_IMAGE, WimfsError

MAX_LINE = 64 * 1024          # a logical line; the documented field limit is 4096
MAX_FIELD = 4096


class InfError(WimfsError):
    """An INF that cannot be used; the message names the file and, when known, the line."""

    exit_code = EXIT_BAD_IMAGE

    def __init__(self, name: str, message: str, line: int | None = None):
        where = f"{name}, line {line}" if line else name
        super().__init__(f"{where}: {message}")
        self.name = name
        self.line = line


class InfTemplateError(InfError):
    """A stampinf ``.inx`` template: it has to be stamped into an INF first."""


@dataclass
class InfLine:
    """One logical line: ``key = f1, f2`` (key lower-cased in ``key_ci``) or ``f1, f2``."""

    key: str | None
    fields: list[str]
    lineno: int
    raw_key: str | None = None      # the key before %strkey% substitution
    raw_fields: list[str] | None = None   # the fields before substitution

    @property
    def key_ci(self) -> str | None:
        return self.key.lower() if self.key is not None else None

    def field(self, i: int, default: str = "") -> str:
        return self.fields[i] if i < len(self.fields) else default


@dataclass
class InfSection:
    name: str
    lines: list[InfLine] = field(default_factory=list)
    lineno: int = 0

    def values(self, key: str) -> list[InfLine]:
        key = key.lower()
        return [ln for ln in self.lines if ln.key_ci == key]

    def first(self, key: str) -> InfLine | None:
        found = self.values(key)
        return found[0] if found else None


# Code pages implied by a primary language (LANGID & 0x3FF), from Windows' NLS tables.
_CODEPAGES = {
    0x11: "cp932", 0x12: "cp949", 0x1E: "cp874", 0x2A: "cp1258",
    0x02: "cp1251", 0x19: "cp1251", 0x22: "cp1251", 0x23: "cp1251", 0x2F: "cp1251",
    0x05: "cp1250", 0x0E: "cp1250", 0x15: "cp1250", 0x18: "cp1250", 0x1A: "cp1250",
    0x1B: "cp1250", 0x24: "cp1250", 0x1C: "cp1250",
    0x08: "cp1253", 0x1F: "cp1254", 0x0D: "cp1255", 0x01: "cp1256", 0x29: "cp1256",
    0x25: "cp1257", 0x26: "cp1257", 0x27: "cp1257",
}


def codepage_for(langid: int | None) -> str:
    if langid is None:
        return "cp1252"
    primary, sub = langid & 0x3FF, langid >> 10
    if primary == 0x04:                      # Chinese: Taiwan, Hong Kong, Macao use Big5
        return "cp950" if sub in (1, 3, 5) else "cp936"
    return _CODEPAGES.get(primary, "cp1252")


_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))
_STRINGS_RE = re.compile(r"^[ \t]*\[[ \t]*strings\.([0-9a-f]{1,4})[ \t]*\]", re.I | re.M)


def _decode(name: str, data: bytes, langid: int | None) -> tuple[str, str]:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            body, enc = data[len(bom):], encoding
            break
    else:
        body = data
        enc = codepage_for(_string_langid(data.decode("latin-1"), langid))
        if not body.isascii():
            try:
                return body.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                pass
    try:
        return body.decode(enc), enc
    except UnicodeDecodeError as e:
        line = body[:e.start].count(b"\n" if not enc.startswith("utf-16") else
                                    b"\n\0" if enc.endswith("le") else b"\0\n") + 1
        raise InfError(name, f"not valid {enc} text (bad byte at offset {e.start})",
                       line) from None


def _string_langid(text: str, langid: int | None) -> int | None:
    """The LANGID of the localized ``[Strings.<LANGID>]`` section that will be used."""
    present = {int(m.group(1), 16) for m in _STRINGS_RE.finditer(text)}
    return choose_langid(present, langid)


def choose_langid(present: set[int], langid: int | None) -> int | None:
    if langid is None or not present:
        return None
    if langid in present:
        return langid
    primary = langid & 0x3FF
    if primary in present:
        return primary
    same = sorted(p for p in present if p & 0x3FF == primary)
    return same[0] if same else None


def _logical_lines(name: str, text: str):
    """Yield (first line number, text without comment) with continuations joined."""
    pending, start = "", 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        if len(raw) > MAX_LINE:
            raise InfError(name, f"line longer than {MAX_LINE} characters", lineno)
        body = _strip_comment(raw).rstrip()
        if not pending:
            start = lineno
        if body.endswith("\\") and not body.endswith("\\\\"):
            pending += body[:-1]
            if len(pending) > MAX_LINE:
                raise InfError(name, f"line longer than {MAX_LINE} characters", start)
            continue
        yield start, pending + body
        pending = ""
    if pending:
        yield start, pending


def _strip_comment(raw: str) -> str:
    quoted = False
    for i, ch in enumerate(raw):
        if ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            return raw[:i]
    return raw


def _split(name: str, text: str, lineno: int, subst) -> tuple[str | None, list[str]]:
    """Split a line into key and fields: quotes, ``""``, ``%%`` and ``%strkey%``."""
    key, fields, cur, quoted, had_eq = None, [], [], False, False
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            if quoted and i + 1 < n and text[i + 1] == '"':
                cur.append('"')
                i += 2
                continue
            quoted = not quoted
        elif ch == "%" and subst is not None:
            end = text.find("%", i + 1)
            if end < 0:                  # a lone '%' stays a literal character
                cur.append(ch)
                i += 1
                continue
            cur.append(subst(text[i + 1:end]))
            i = end + 1
            continue
        elif quoted:
            cur.append(ch)
        elif ch == "=" and not had_eq and not fields:
            key, cur, had_eq = "".join(cur).strip(), [], True
        elif ch == ",":
            fields.append(_field(name, cur, lineno))
            cur = []
        else:
            cur.append(ch)
        i += 1
    fields.append(_field(name, cur, lineno))
    if fields == [""]:
        fields = []
    return key, fields


def _field(name: str, parts: list[str], lineno: int) -> str:
    value = "".join(parts).strip(" \t")
    if len(value) > MAX_FIELD:
        raise InfError(name, f"field longer than {MAX_FIELD} characters", lineno)
    return value


_QUOTED_SPAN = re.compile(r'"(?:[^"]|"")*"')


@dataclass
class Inf:
    """A parsed INF: merged sections, the string table in use and the text encoding."""

    name: str
    encoding: str
    sections: dict[str, InfSection]
    strings: dict[str, str]
    langid: int | None = None
    template: bool = False      # stampinf placeholders ($ARCH$) left: not installable

    def section(self, name: str) -> InfSection | None:
        return self.sections.get(name.lower())

    def has(self, name: str) -> bool:
        return name.lower() in self.sections

    def lines(self, name: str) -> list[InfLine]:
        sec = self.section(name)
        return sec.lines if sec else []


def parse_inf(data: bytes, name: str = "INF", *, langid: int | None = None) -> Inf:
    """Parse INF bytes. ``langid`` is the image's UI language (e.g. 0x0409)."""
    if name.lower().endswith(".inx"):
        raise InfTemplateError(name, "a stampinf template (.inx), not an INF")
    text, encoding = _decode(name, data, langid)
    raw = _raw_sections(name, text)
    localized = {int(k[8:], 16): v for k, v in raw.items()
                 if re.fullmatch(r"strings\.[0-9a-f]{1,4}", k)}
    chosen = choose_langid(set(localized), langid)
    strings = _strings(name, raw.get("strings"))
    if chosen is not None:
        strings.update(_strings(name, localized[chosen]))

    def subst(key: str) -> str:
        if key == "":
            return "%"
        found = strings.get(key.lower())
        return found if found is not None else f"%{key}%"

    sections = {}
    for key, rawsec in raw.items():
        sec = InfSection(rawsec.name, lineno=rawsec.lineno)
        is_strings = key == "strings" or key.startswith("strings.")
        for lineno, text_line in rawsec.body:
            k, fields = _split(name, text_line, lineno, None if is_strings else subst)
            raw_key, raw_fields = (k, fields) if is_strings or "%" not in text_line else \
                _split(name, text_line, lineno, None)
            sec.lines.append(InfLine(k, fields, lineno, raw_key, raw_fields))
        sections[key] = sec
    template = any("$ARCH$" in sec.upper() for sec in raw)
    return Inf(name, encoding, sections, strings, chosen, template)


@dataclass
class _RawSection:
    name: str
    lineno: int
    body: list[tuple[int, str]] = field(default_factory=list)


def _raw_sections(name: str, text: str) -> dict[str, _RawSection]:
    raw: dict[str, _RawSection] = {}
    current = None
    for lineno, line in _logical_lines(name, text):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("["):
            end = stripped.find("]")
            if end < 0:
                raise InfError(name, "section name without ']'", lineno)
            sec_name = stripped[1:end].strip().strip('"')
            if not sec_name or len(sec_name) > 255:
                raise InfError(name, "bad section name", lineno)
            key = sec_name.lower()
            if key not in raw:
                raw[key] = _RawSection(sec_name, lineno)
            current = raw[key].body
            continue
        if current is not None:          # text before the first section is ignored
            current.append((lineno, stripped))
    return raw


def _strings(name: str, section: _RawSection | None) -> dict[str, str]:
    table: dict[str, str] = {}
    if section is None:
        return table
    for lineno, line in section.body:
        key, fields = _split(name, line, lineno, None)
        if key is None:
            continue
        # a string value is the whole right-hand side: commas inside it are kept
        value = line.split("=", 1)[1].strip()
        if _QUOTED_SPAN.fullmatch(value):
            value = _unquote(value)
        elif '"' in value:
            value = ",".join(fields)
        table[key.lower()] = value.replace("%%", "%")
    return table


def _unquote(value: str) -> str:
    return value[1:-1].replace('""', '"')
