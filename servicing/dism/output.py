"""DISM's console text (dism-reference.md section 3): the banner, `Label : value`
records, /Format:Table, the progress bar, `Error: 87` / `Error: 0x800f081e` with the
log-file footer, and the --json documents. The only place that formats a DISM code."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from servicing.dism.codes import exit_status, is_hresult

TOOL = "Deployment Image Servicing and Management tool"
SUCCESS = "The operation completed successfully."
BAR_WIDTH = 58          # '=' cells between the brackets around the percentage

Record = Sequence[tuple[str, object]]


def format_code(code: int) -> str:
    """`87` for a Win32 code, `0x800f081e` (lower-case hex) for an HRESULT."""
    return f"0x{code:x}" if is_hresult(code) else str(code)


def group_digits(n: int) -> str:
    return f"{n:,}"


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("wimfs")
    except PackageNotFoundError:
        return "0.1.0"


@dataclass
class Console:
    """Where one DISM run writes: `out` (stdout), /Quiet, /Format and --json."""

    out: object
    quiet: bool = False
    table: bool = False
    json: bool = False
    log_path: str = ""
    _bar: DismBar | None = field(default=None, repr=False)

    def write(self, text: str) -> None:
        if not self.quiet and not self.json:
            self.out.write(text)

    def banner(self) -> None:
        self.write(f"\n{TOOL}\nVersion: {version()}\n\n")

    def image_version(self, image_version: str | None) -> None:
        """`Image Version: 10.0.19041.1` under the banner, for /Image commands."""
        self.write(f"Image Version: {image_version or '<undefined>'}\n\n")

    def lines(self, lines: Iterable[str]) -> None:
        self.write("".join(f"{line}\n" for line in lines))

    def records(self, records: Sequence[Record], *, table_ok: bool = True) -> None:
        """Records as `Label : value` blocks (one blank line after each), or as DISM's
        table with /Format:Table."""
        if self.table and table_ok and records:
            self.lines(table_lines(records))
            self.write("\n")
            return
        for rec in records:
            self.lines(record_lines(rec))
            self.write("\n")

    def success(self, doc: object = None) -> None:
        if self.json:
            self.out.write(json.dumps(doc if doc is not None else {"code": 0, "message": SUCCESS},
                                      indent=2, ensure_ascii=False) + "\n")
        else:
            self.write(f"{SUCCESS}\n")

    def error(self, code: int, message: str) -> None:
        """DISM's error block; /Quiet does not hide it. With --json: an error document
        that carries the full code."""
        if self.json:
            self.out.write(json.dumps({"error": {
                "code": code, "text": format_code(code), "exit_status": exit_status(code),
                "message": message, "log_path": self.log_path}}, indent=2) + "\n")
            return
        self.out.write(f"\nError: {format_code(code)}\n\n{message}\n\n"
                       f"The DISM log file can be found at {self.log_path}\n")

    def progress(self, quiet: bool = False):
        """The progress renderer for wimfs.progress: DISM's bar on a terminal only."""
        if self.quiet or self.json or not _isatty(self.out):
            return None
        return DismBar(self.out)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def record_lines(rec: Record) -> list[str]:
    out = []
    for label, value in rec:
        if isinstance(value, list):        # a label whose values follow, indented
            out.append(f"{label} :")
            out += [f"        {v}" for v in value]
        else:
            out.append(f"{label} : {value}")
    return out


def table_lines(records: Sequence[Record]) -> list[str]:
    """/Format:Table: columns padded to the widest cell, joined by ` | `, a dashed rule
    above and below the header (dism-reference.md 3.2)."""
    labels = [label for label, _ in records[0]]
    rows = [[_cell(v) for _, v in rec] for rec in records]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(labels)]

    def line(cells: Sequence[str]) -> str:
        return " | ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    rule = line(["-" * w for w in widths])
    return [rule, line(labels), rule] + [line(r) for r in rows]


def _cell(value: object) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def bar_text(fraction: float) -> str:
    """`[====   42.0%        ]`: DISM's bar, the percentage in its middle."""
    fraction = min(max(fraction, 0.0), 1.0)
    pct = f"{fraction * 100:.1f}%"
    cells = list(" " * BAR_WIDTH)
    for i in range(round(fraction * BAR_WIDTH)):
        cells[i] = "="
    mid = (BAR_WIDTH - len(pct)) // 2
    cells[mid:mid + len(pct)] = pct
    return "[" + "".join(cells) + "]"


class DismBar:
    """A wimfs.progress callback that draws DISM's bar in place (carriage returns)."""

    def __init__(self, out) -> None:
        self.out = out
        self.drawn = False

    def __call__(self, ev) -> None:
        total = max(ev.total, ev.done)
        fraction = 1.0 if ev.finished else (ev.done / total if total else 0.0)
        self.out.write("\r" + bar_text(fraction))
        self.out.flush()
        self.drawn = True
        if ev.finished:
            self.close()

    def close(self) -> None:
        if self.drawn:
            self.out.write("\n")
            self.out.flush()
        self.drawn = False
