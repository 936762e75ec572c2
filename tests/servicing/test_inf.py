"""The INF engine: syntax, encodings, strings, decorations, against the corpus and
against expectations written from Microsoft's documented rules."""

from __future__ import annotations

import codecs
import pathlib
import re

import pytest

from servicing.formats.inf import InfError, InfTemplateError, parse_inf
from servicing.formats.inf_driver import (
    Platform, best_decoration, load_inf, models, parse_decoration, version_info)
from tests.servicing.conftest import corpus_dir


def corpus_infs(ext: tuple[str, ...] = (".inf",)) -> list[pathlib.Path]:
    root = corpus_dir()
    if root is None:
        return []
    return sorted(p for d in ("inf", "drivers") for p in (root / d).rglob("*")
                  if p.suffix.lower() in ext)


def _sections_by_regex(path: pathlib.Path) -> set[str]:
    """Section names found with a plain regular expression on the decoded text."""
    data = path.read_bytes()
    for bom, enc in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                     (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            text = data[len(bom):].decode(enc)
            break
    else:
        text = data.decode("latin-1")
    return {m.group(1).strip().lower()
            for m in re.finditer(r"^[ \t]*\[([^\]\r\n]+)\]", text, re.M)}


def test_corpus_has_infs():
    if corpus_dir() is None:
        pytest.skip("corpus not found")
    assert len(corpus_infs()) > 100 and len(corpus_infs((".inx",))) > 50


@pytest.mark.parametrize("path", corpus_infs(), ids=lambda p: p.name)
def test_every_corpus_inf_parses(path):
    inf = parse_inf(path.read_bytes(), path.name)
    assert set(inf.sections) == _sections_by_regex(path)
    assert inf.template == ("$arch$" in " ".join(inf.sections))


@pytest.mark.parametrize("path", corpus_infs((".inx",)), ids=lambda p: p.name)
def test_inx_templates_are_refused(path):
    with pytest.raises(InfTemplateError, match="template.*not an INF"):
        parse_inf(path.read_bytes(), path.name)


def test_template_named_inf_refused_as_driver():
    paths = [p for p in corpus_infs() if b"NT$ARCH$" in p.read_bytes()]
    if not paths:
        pytest.skip("corpus not found")
    with pytest.raises(InfTemplateError, match="not an INF"):
        load_inf(paths[0].read_bytes(), paths[0].name)


def test_stamped_template_loads():
    """Stamping an .inx as stampinf does (NT$ARCH$ -> NTamd64) gives a working INF."""
    paths = [p for p in corpus_infs((".inx",)) if p.name.lower() == "viostor.inx"]
    if not paths:
        pytest.skip("corpus not found")
    text = paths[0].read_bytes().replace(b"$ARCH$", b"amd64")
    inf = load_inf(text, "viostor.inf")
    entries = models(inf, Platform("amd64", 10, 0, 19041))
    hwids = set(re.findall(rb"PCI\\VEN_1AF4&DEV_[0-9A-F]{4}[^\s,;]*", text, re.I))
    assert {e.hardware_id.encode().upper() for e in entries} <= {h.upper() for h in hwids}
    assert entries


# ---------------------------------------------------------------- syntax

SYNTAX = b"""; leading comment
junk before any section is ignored
[Version]
Signature = "$Windows NT$"   ; comment
Class=Sample
[strings]
Q = "say ""hi"" ; not a comment"
pct = "100%%"
Plain = plain text, with comma
[Data]
a = 1, ,3,,   ; empty fields are kept
b = "x;y", "a,b"
C = first \\
    second
d = %q%, %PCT%, %%, %11%\\drv.sys, %unknown%
[DATA]
e = merged
"""


def test_syntax_rules():
    inf = parse_inf(SYNTAX, "syntax.inf")
    data = inf.section("data")
    assert data.first("A").fields == ["1", "", "3", "", ""]
    assert data.first("b").fields == ["x;y", "a,b"]
    assert data.first("c").fields == ["first     second"]
    d = data.first("D").fields
    assert d[0] == 'say "hi" ; not a comment'
    assert d[1] == "100%"
    assert d[2:] == ["%", "%11%\\drv.sys", "%unknown%"]
    assert data.first("e").fields == ["merged"]
    assert data.first("e").lineno == 17
    assert inf.strings["plain"] == "plain text, with comma"


def test_keyless_lines_and_equals_in_quotes():
    inf = parse_inf(b'[S]\nx.sys,,,0x4000\n"a=b" = c\n', "k.inf")
    lines = inf.lines("s")
    assert lines[0].key is None and lines[0].fields == ["x.sys", "", "", "0x4000"]
    assert lines[1].key == "a=b" and lines[1].fields == ["c"]


LOCALIZED = """[Version]
Signature="$Windows NT$"
[Strings]
Desc="Neutral"
Only="neutral only"
[Strings.0407]
Desc="Deutsch"
[Strings.0411]
Desc="{ja}"
[M]
x=%Desc%,%Only%
"""


@pytest.mark.parametrize("langid,expected", [
    (None, "Neutral"), (0x0409, "Neutral"), (0x0407, "Deutsch"),
    (0x0807, "Deutsch"),               # German (Switzerland): same primary language
    (0x0411, "日本語"),
])
def test_strings_language(langid, expected):
    text = LOCALIZED.replace("{ja}", "日本語")
    data = text.encode("cp932")      # ANSI in the Japanese code page
    inf = parse_inf(data, "loc.inf", langid=langid)
    assert inf.lines("M")[0].fields == [expected, "neutral only"]


@pytest.mark.parametrize("encoding,bom", [
    ("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", codecs.BOM_UTF16_BE),
    ("utf-8", codecs.BOM_UTF8), ("cp1252", b"")])
def test_encodings(encoding, bom):
    text = '[Version]\r\nSignature="$Windows NT$"\r\n[S]\r\nk = "Café ™"\r\n'
    inf = parse_inf(bom + text.encode(encoding), "enc.inf")
    assert inf.section("s").first("k").fields == ["Café ™"]


@pytest.mark.parametrize("data,line", [
    (codecs.BOM_UTF8 + b"[Version]\nx=\xff\xfe\xfd\n", 2),
    (codecs.BOM_UTF16_LE + "[A]\n".encode("utf-16-le") + b"\x00\xdc", 2),
    (b"[A]\nx=\x81\x8d\x8f\n", 2),           # neither UTF-8 nor Windows-1252
])
def test_bad_encoding_is_one_clear_error(data, line):
    with pytest.raises(InfError, match=rf"^bad\.inf, line {line}: not valid") as e:
        parse_inf(data, "bad.inf")
    assert e.value.exit_code == 3


def test_broken_syntax_reports_file_and_line():
    with pytest.raises(InfError, match=r"^b\.inf, line 3: section name without"):
        parse_inf(b"[Version]\n\n[Broken\nx=1\n", "b.inf")


def test_100_mb_line_refused():
    data = b"[Version]\nSignature=\"$Windows NT$\"\n[S]\nk=" + b"a" * (100 << 20) + b"\n"
    with pytest.raises(InfError, match=r"^big\.inf, line 4: line longer than"):
        parse_inf(data, "big.inf")


def test_long_field_refused():
    with pytest.raises(InfError, match=r"line 2: field longer than 4096"):
        parse_inf(b"[S]\nk=" + b"b" * 5000 + b"\n", "f.inf")


# ---------------------------------------------------------------- decorations

MANUFACTURER = b"""[Version]
Signature="$Windows NT$"
[Manufacturer]
%M%=Models,NTamd64,NTamd64.6.1,NTamd64.10.0...16299,NTx86,NTarm64.10.0,NT.6.0
[Models]
d=i,ID_BASE
[Models.NTamd64]
d=i,ID_AMD64
[Models.NTamd64.6.1]
d=i,ID_AMD64_61
[Models.NTamd64.10.0...16299]
d=i,ID_AMD64_1709
[Models.NTx86]
d=i,ID_X86
[Models.NTarm64.10.0]
d=i,ID_ARM64
[Models.NT.6.0]
d=i,ID_NT60,COMPAT1,COMPAT2
[Strings]
M="Maker"
"""


@pytest.mark.parametrize("platform,hwid", [
    (Platform("amd64", 6, 0, 6002), "ID_NT60"),        # 6.0 beats an undecorated version
    (Platform("amd64", 6, 1, 7601), "ID_AMD64_61"),
    (Platform("amd64", 10, 0, 15063), "ID_AMD64_61"),  # build below 16299
    (Platform("amd64", 10, 0, 16299), "ID_AMD64_1709"),
    (Platform("amd64", 10, 0, 22621), "ID_AMD64_1709"),
    (Platform("x86", 6, 1, 7601), "ID_NT60"),
    (Platform("x86", 5, 1, 2600), "ID_X86"),
    (Platform("arm64", 10, 0, 19041), "ID_ARM64"),
    (Platform("arm64", 6, 3, 9600), "ID_NT60"),
    (Platform("ia64", 5, 2, 3790), None),              # nothing applies, no base on 64-bit
])
def test_models_best_match(platform, hwid):
    inf = load_inf(MANUFACTURER, "m.inf")
    entries = models(inf, platform)
    assert [e.hardware_id for e in entries] == ([hwid] if hwid else [])
    if hwid == "ID_NT60":
        assert entries[0].compatible_ids == ["COMPAT1", "COMPAT2"]
        assert entries[0].manufacturer == "Maker"


def test_undecorated_models_only_on_x86():
    inf = load_inf(b'[Version]\nSignature="$Windows NT$"\n[Manufacturer]\nm=Mod\n'
                   b'[Mod]\nd=i,HWID\n', "u.inf")
    assert [e.hardware_id for e in models(inf, Platform("x86", 6, 1))] == ["HWID"]
    assert models(inf, Platform("amd64", 6, 1)) == []


def test_decoration_parsing():
    d = parse_decoration("NTamd64.10.0.1.0x80.16299")
    assert (d.arch, d.major, d.minor, d.product_type, d.build) == ("amd64", 10, 0, 1, 16299)
    assert parse_decoration("Services") is None and parse_decoration("NTmips") is None
    best = best_decoration([parse_decoration("NT"), parse_decoration("NTamd64")],
                           Platform("amd64", 6, 1))
    assert best.text == "NTamd64"


# ---------------------------------------------------------------- Version

def test_version_of_corpus_driver():
    root = corpus_dir()
    if root is None:
        pytest.skip("corpus not found")
    path = root / "drivers" / "ViGEmBus" / "x64" / "ViGEmBus.inf"
    text = path.read_text("latin-1")
    inf = load_inf(path.read_bytes(), path.name)
    v = version_info(inf)
    field = {m.group(1).lower(): m.group(2).strip() for m in
             re.finditer(r"^(\w+)\s*=\s*([^;\r\n]*)", text.split("[Version]")[1]
                         .split("[")[0], re.M)}
    assert v.class_name == field["class"]
    assert v.class_guid == field["classguid"].upper()
    assert v.catalog("amd64") == field["catalogfile"]
    month, day, year = field["driverver"].split(",")[0].strip().split("/")
    assert v.driver_ver.date == (int(year), int(month), int(day))
    assert v.driver_ver.version_text == field["driverver"].split(",")[1].strip()
    provider_key = field["provider"].strip("%").lower()
    strings = dict(re.findall(r'^(\w+)\s*=\s*"([^"]*)"', text, re.M))
    assert v.provider == {k.lower(): s for k, s in strings.items()}[provider_key]
    assert v.pnp_lockdown


def test_catalog_decorations():
    inf = load_inf(b'[Version]\nSignature="$Windows NT$"\nCatalogFile=all.cat\n'
                   b'CatalogFile.NTamd64=x64.cat\nCatalogFile.NTx86=x86.cat\n', "c.inf")
    v = version_info(inf)
    assert (v.catalog("amd64"), v.catalog("x86"), v.catalog("arm64")) == \
        ("x64.cat", "x86.cat", "all.cat")


@pytest.mark.parametrize("text,match", [
    (b'[Version]\nSignature="$Windows 3.1$"\n', r"line 2: \[Version\] Signature"),
    (b'[Version]\nSignature="$Windows NT$"\nDriverVer=2020/1/1,1.0\n', r"line 3: DriverVer"),
    (b'[Version]\nSignature="$Windows NT$"\nDriverVer=1/1/2020,1.x\n', r"line 3: DriverVer"),
    (b'[Strings]\n', r"no \[Version\]"),
])
def test_bad_version(text, match):
    with pytest.raises(InfError, match=match):
        version_info(load_inf(text, "v.inf"))
