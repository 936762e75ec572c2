"""`sources\\lang.ini` of a Windows distribution folder (DISM /Gen-LangINI,
/Set-SetupUILang; dism-reference.md 2.2.2).

The languages of a distribution are the language folders of ``sources`` (``sources\\
en-us``: Setup's resources of that language) and of ``Langpacks`` (``Langpacks\\de-DE\\
lp.cab``: language packs to add). lang.ini lists them under ``[Available UI Languages]``,
Setup's default language with 3 and the others with 0 (the numbers of Microsoft's
examples), and ``[Fallback Languages]`` maps the default language to its fallback,
``en-us``. The file is rewritten without asking, as DISM does.
"""

from __future__ import annotations

import os
import tempfile

from servicing.errors import TargetPathError
from servicing.features.intl import IntlRefusedError, find_locale, locale_of

DEFAULT_MARK = "3"


def distribution_languages(dist: str) -> list[str]:
    """Locale names of the language folders of *dist* (sources\\xx-yy, Langpacks\\xx-YY)."""
    found: dict[str, str] = {}
    for sub in ("sources", "Langpacks"):
        folder = _child(dist, sub)
        if folder is None:
            continue
        for name in sorted(os.listdir(folder)):
            loc = find_locale(name) if "-" in name else None
            if loc is not None and os.path.isdir(os.path.join(folder, name)):
                found.setdefault(loc.name.lower(), loc.name)
    return list(found.values())


def _child(parent: str, name: str) -> str | None:
    """*name* inside *parent*, looked up case-insensitively as Windows does."""
    try:
        entries = os.listdir(parent)
    except OSError:
        return None
    hit = next((e for e in entries if e.lower() == name.lower()), None)
    return os.path.join(parent, hit) if hit is not None else None


def current_default(path: str) -> str | None:
    """The language lang.ini marks as Setup's default (= 3), if the file exists."""
    try:
        text = open(path, encoding="utf-8-sig", errors="replace").read()
    except OSError:
        return None
    section = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]").lower()
        elif section == "available ui languages" and "=" in line:
            lang, mark = (p.strip() for p in line.split("=", 1))
            if mark == DEFAULT_MARK:
                return lang
    return None


def _sources(dist: str) -> str:
    sources = _child(dist, "sources")
    if sources is None:
        raise TargetPathError(f"{dist} is not a Windows distribution (no sources folder)")
    return sources


def distribution_info(dist: str) -> dict:
    """The languages of *dist* and Setup's default (from its lang.ini, if any)."""
    sources = _sources(dist)
    languages = distribution_languages(dist)
    path = _child(sources, "lang.ini")
    marked = current_default(path) if path else None
    default = next((lang for lang in languages if marked and lang.lower() == marked.lower()),
                   None)
    return {"languages": languages, "default": default}


def render(languages: list[str], default: str) -> str:
    lines = ["[Available UI Languages]"]
    lines += [f"{lang} = {DEFAULT_MARK if lang == default else '0'}" for lang in languages]
    lines += ["", "[Fallback Languages]", f"{default} = en-us", ""]
    return "\r\n".join(lines)


def gen_lang_ini(dist: str, setup_ui_lang: str | None = None) -> dict:
    """Write ``<dist>\\sources\\lang.ini``; returns its languages and default."""
    sources = _sources(dist)
    languages = distribution_languages(dist)
    if not languages:
        raise IntlRefusedError(f"no language folders found in {dist} (sources\\xx-yy, "
                               "Langpacks\\xx-YY)")
    path = _child(sources, "lang.ini") or os.path.join(sources, "lang.ini")
    wanted = setup_ui_lang or current_default(path) or "en-US"
    default = next((lang for lang in languages if lang.lower() == wanted.lower()), None)
    if default is None and setup_ui_lang is not None:
        raise IntlRefusedError(f"{locale_of(setup_ui_lang).name} is not a language of "
                               f"the distribution ({', '.join(languages)})")
    default = default or languages[0]
    fd, tmp = tempfile.mkstemp(dir=sources, prefix=".lang.ini.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(render(languages, default))
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return {"path": path, "languages": languages, "default": default}
