"""Rendering for the terminal: tables that fit any width, inert untrusted text, JSON; no business logic.

Everything a participant or a job chose (names, file names, messages, layer names) is printed as
`rich.text.Text` after grader.text.inert, so neither rich markup nor terminal escapes in it act.
Tables drop low-value columns to fit the width instead of cutting states or numbers; output
survives an ASCII-only terminal.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from grader.text import ascii_safe, inert
from grader.text import name as short_name


def _encoding(stream: TextIO) -> str:
    return (getattr(stream, "encoding", None) or "utf-8").lower().replace("_", "-")


class _SafeStream:
    """sys.stdout or sys.stderr (looked up at each write, so redirections apply), transliterating what its
    encoding cannot carry (PYTHONIOENCODING=ascii)."""

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def _stream(self) -> TextIO:
        stream: TextIO = getattr(sys, self._name)
        return stream

    @property
    def encoding(self) -> str:
        return _encoding(self._stream)

    def write(self, text: str) -> int:
        try:
            text.encode(self.encoding)
        except (UnicodeEncodeError, LookupError):
            text = ascii_safe(text)
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()


def _utf(stream: TextIO) -> bool:
    return _encoding(stream).startswith("utf")


def _width() -> int | None:
    cols = os.environ.get("COLUMNS", "")
    return int(cols) if cols.isdigit() and int(cols) > 20 else None


console = Console(file=_SafeStream("stdout"), width=_width(), highlight=False)  # type: ignore[arg-type]
err_console = Console(file=_SafeStream("stderr"), stderr=True, highlight=False)  # type: ignore[arg-type]
BOX = box.ROUNDED if _utf(sys.stdout) else box.ASCII

STATE_STYLE = {"done": "green", "failed": "red", "queued": "yellow", "running": "cyan", "cancelled": "magenta"}


def pct(value: float | None, signed: bool = False, std: float | None = None) -> str:
    if value is None:
        return "-"
    text = f"{value:+.1%}" if signed else f"{value:.1%}"
    return f"{text}±{std:.1%}" if std is not None else text


def num(value: float | int | None, fmt: str = "{:,}") -> str:
    return "-" if value is None else fmt.format(value)


def state(text: str) -> Text:
    return Text(str(text), style=STATE_STYLE.get(str(text), ""))


def untrusted(value: object, limit: int = 2000) -> Text:
    """Participant- or job-chosen text: inert (escapes shown, no markup), bounded."""
    return Text(inert(value, limit))


def cell(value: object) -> Text:
    """A participant-chosen name in a table cell: one line, short, inert."""
    return Text(short_name(value))


@dataclass(frozen=True)
class Col:
    """A table column: `keep` columns are never dropped; lower `priority` columns go first when narrow."""

    name: str
    priority: int = 5
    keep: bool = False
    wrap: bool = False
    justify: Literal["default", "left", "center", "right", "full"] = "left"


def _plain(value: object) -> str:
    return value.plain if isinstance(value, Text) else str(value)


def fit(title: str | None, columns: Sequence[Col], rows: Iterable[Sequence[Any]], width: int | None = None) -> Table:
    """A table for `width` columns: optional columns are dropped (lowest priority first) until it fits;
    columns that must not be cut (states, numbers, ids) never wrap; free text wraps instead."""
    rows = [list(r) for r in rows]
    width = width or console.width
    cols = list(range(len(columns)))

    def need(i: int) -> int:
        longest = max([len(_plain(r[i])) for r in rows] + [len(columns[i].name)])
        return (min(longest, 12) if columns[i].wrap else longest) + 3  # padding and a border

    while sum(need(i) for i in cols) + 1 > width:
        optional = [i for i in cols if not columns[i].keep]
        if not optional:
            break
        cols.remove(min(optional, key=lambda i: (columns[i].priority, -i)))
    t = Table(title=title, header_style="bold", box=BOX, title_justify="left")
    for i in cols:
        c = columns[i]
        t.add_column(c.name, justify=c.justify, no_wrap=not c.wrap, overflow="fold" if c.wrap else "ignore",
                     min_width=None if c.wrap else min(need(i) - 3, 40))
    for r in rows:
        t.add_row(*[r[i] if isinstance(r[i], Text) else str(r[i]) for i in cols])
    return t


def table(title: str | None, columns: Iterable[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A plain table whose columns are all kept (short, fixed content)."""
    return fit(title, [Col(c, keep=True, wrap=True) for c in columns], rows)


def emit_json(value: Any) -> None:
    """`--json`: the service's models as JSON on stdout, nothing else (stable schema, docs/json.md)."""
    from pydantic import BaseModel

    data: Any
    if isinstance(value, BaseModel):
        data = value.model_dump(mode="json")
    elif isinstance(value, list):
        data = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    else:
        data = value
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=not _utf(sys.stdout)) + "\n")


def score_style(fraction: float) -> str:
    return "green" if fraction >= 0.8 else "yellow" if fraction >= 0.5 else "red"


def warn(text: str | Text) -> None:
    line = Text("warning: ", style="yellow")
    line.append(text if isinstance(text, Text) else Text(text))
    err_console.print(line)


def tip_line(text: str) -> Text:
    return Text("  • ") + untrusted(text, 1000)


def framed(label: str, text: str, limit: int = 2000) -> None:
    """Output of the participant's code, clearly framed as theirs (never mixed with grader's own lines)."""
    from rich.panel import Panel

    console.print(Panel(untrusted(text, limit), title=label, title_align="left", box=BOX, border_style="dim"))
