"""Docker's output helpers: human sizes and durations, Go time strings, tabwriter tables,
and the ``--format`` driver (``table ...``, ``json``, plain templates) shared by ps/images/etc."""

from __future__ import annotations

import sys
import time
import unicodedata
TYPE_CHECKING = False  # typing costs ~4 ms of start-up; these names are for annotations only
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, TextIO

from dockyard.apitypes.units import human_duration
from dockyard.cli.template import Template

_DECIMAL_UNITS = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]


def human_size(size: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision: decimal units, ``precision`` significant digits."""
    i = 0
    while size >= 1000.0 and i < len(_DECIMAL_UNITS) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.{precision}g}{_DECIMAL_UNITS[i]}"


def since(timestamp: float, now: float | None = None) -> str:
    return human_duration((now if now is not None else time.time()) - timestamp) + " ago"


def _zone(t: time.struct_time) -> tuple[str, str]:
    off = t.tm_gmtoff or 0
    sign = "+" if off >= 0 else "-"
    off = abs(off)
    return f"{sign}{off // 3600:02d}{off % 3600 // 60:02d}", t.tm_zone or "UTC"


def go_time_string(timestamp: float, nanos: int = 0) -> str:
    """Go's time.Time.String() for a local time: ``2006-01-02 15:04:05.999999999 -0700 MST``."""
    t = time.localtime(timestamp)
    offset, name = _zone(t)
    frac = f".{nanos:09d}".rstrip("0") if nanos else ""
    return time.strftime("%Y-%m-%d %H:%M:%S", t) + f"{frac} {offset} {name}"


def rfc3339(timestamp: float) -> str:
    """Go's time.RFC3339 in local time: ``2006-01-02T15:04:05Z07:00``."""
    t = time.localtime(timestamp)
    off = t.tm_gmtoff or 0
    zone = "Z" if off == 0 else f"{'+' if off > 0 else '-'}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + zone


def rfc3339_nano_fixed(seconds: int, nanos: int) -> str:
    """jsonmessage.RFC3339NanoFixed: ``2006-01-02T15:04:05.000000000Z07:00`` in local time."""
    t = time.localtime(seconds)
    off = t.tm_gmtoff or 0
    zone = "Z" if off == 0 else f"{'+' if off > 0 else '-'}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{nanos:09d}" + zone


def parse_api_time(value: str) -> tuple[int, int]:
    """An API RFC 3339 timestamp (nanosecond precision allowed) -> (unix seconds, nanoseconds).

    The zero time ("0001-01-01T00:00:00Z") and an empty string give (0, 0).
    """
    from datetime import datetime

    if not value or value.startswith("0001-01-01"):
        return 0, 0
    v = value.replace("Z", "+00:00")
    head, dot, rest = v.partition(".")
    digits = ""
    if dot:
        for ch in rest:
            if not ch.isdigit():
                break
            digits += ch
        v = head + rest[len(digits):]
    return int(datetime.fromisoformat(v).timestamp()), int(digits[:9].ljust(9, "0")) if digits else 0


def display_width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


def ellipsis(s: str, max_width: int) -> str:
    """docker's formatter.Ellipsis: cut to ``max_width`` display columns, ending with '…'."""
    if max_width <= 0:
        return ""
    if display_width(s) <= max_width:
        return s
    out, width = "", 0
    for ch in s:
        w = display_width(ch)
        if width + w > max_width - 1:
            break
        out += ch
        width += w
    return out + "…"


def truncate_id(id_: str) -> str:
    if ":" in id_:
        id_ = id_.split(":", 1)[1]
    return id_[:12]


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Go's text/tabwriter as docker configures it (minwidth 10, tabwidth 1, padding 3, spaces).

    Cells are tab-terminated; text after a line's last tab is not part of any column. A column
    block is a run of consecutive lines that have a cell in that column.
    """
    lines = [line.split("\t") for line in text.split("\n")]
    widths: list[list[int]] = [[0] * (len(cells) - 1) for cells in lines]

    def layout(start: int, end: int, column: int) -> None:
        row = start
        while row < end:
            if column >= len(lines[row]) - 1:
                row += 1
                continue
            block_end = row
            while block_end < end and column < len(lines[block_end]) - 1:
                block_end += 1
            width = minwidth
            for r in range(row, block_end):
                width = max(width, display_width(lines[r][column]) + padding)
            for r in range(row, block_end):
                widths[r][column] = width
            layout(row, block_end, column + 1)
            row = block_end

    layout(0, len(lines), 0)
    out = []
    for cells, ws in zip(lines, widths):
        parts = [cell + " " * (w - display_width(cell)) for cell, w in zip(cells, ws)]
        parts.append(cells[-1])
        out.append("".join(parts))
    return "\n".join(out)


class Formatter:
    """Runs docker's ``--format`` logic over rows of context objects.

    ``fmt`` is "table" (the default table), "table <tmpl>", "json", or a plain template;
    ``headers`` maps context field names to column titles.
    """

    def __init__(self, fmt: str, default_table: str, headers: dict[str, str],
                 quiet_format: str | None = None) -> None:
        if fmt == "json":
            fmt = "{{json .}}"
        elif fmt in ("table", ""):
            fmt = default_table
        self.is_table = fmt.startswith("table")
        if self.is_table:
            fmt = fmt[len("table"):]
        fmt = fmt.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
        self.template = Template(fmt)
        self.headers = headers

    def header(self) -> str:
        return self.template.render(_HeaderContext(self.headers))

    def render(self, rows: Iterable[Any], out: TextIO = sys.stdout) -> None:
        buf = []
        if self.is_table:
            buf.append(self.header() + "\n")
        for row in rows:
            buf.append(self.template.render(row) + "\n")
        text = "".join(buf)
        if self.is_table:
            text = tabwrite(text)
        out.write(text)


class _HeaderContext:
    """Answers every field with its column title, the way docker renders a table header."""

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def __getattr__(self, name: str) -> Callable[..., str]:
        if name.startswith("_"):
            raise AttributeError(name)
        title = self._headers.get(name)
        if title is None:
            raise AttributeError(name)
        return lambda *args: title

    def __json__(self) -> dict[str, str]:
        return self._headers


__all__ = ["Formatter", "human_size", "human_duration", "since", "tabwrite",
           "ellipsis", "truncate_id", "go_time_string", "rfc3339", "rfc3339_nano_fixed", "parse_api_time"]
