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
from rich._pick import pick_bool
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.table import Column, Table
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


class _StdoutConsole(Console):
    def on_broken_pipe(self) -> None:
        """`grader leaderboard | head`: rich's own handling (quiet, stdout onto /dev/null), but ending with 0 as
        main() does for a BrokenPipeError; rich ends with 1, which a `set -o pipefail` script reads as a failure."""
        try:
            super().on_broken_pipe()
        except SystemExit:
            raise SystemExit(0) from None


console = _StdoutConsole(file=_SafeStream("stdout"), width=_width(), highlight=False)  # type: ignore[arg-type]
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


def _shown(console: Console, cell: Text | str) -> str:
    """What rich shows of a cell: a Text's plain text; a str after its markup and :emoji: codes."""
    if isinstance(cell, Text):
        return cell.plain
    if "[" in cell or cell.count(":") > 1:
        return console.render_str(cell, highlight=False).plain
    return cell


def _extent(text: str) -> tuple[int, int]:
    """rich's measurement of a Text: (its longest word, its longest line), in cells."""
    if text.isprintable() and " " not in text:
        width = cell_len(text)
        return width, width
    lines = text.splitlines()
    longest = max(cell_len(line) for line in lines) if lines else 0
    words = text.split()
    return (max(cell_len(word) for word in words) if words else longest), longest


class _FitTable(Table):
    """A rich Table of Text and str cells that lays itself out as rich does, without rendering every cell twice.

    rich measures a column by rendering each cell (markup, wrapping, segments) to find its narrowest and widest
    width; for text that is its longest word and its longest line, which this class computes once per cell
    (`_measure_column`), so rich's own width algorithm (collapsing, fixed minimums) runs on the same numbers.
    When no colour or style can reach the output (`console.color_system is None`: piped, a file, TERM=dumb) and
    every cell fits on one line of its column, the lines are written as plain strings (`__rich_console__`);
    otherwise rich renders them. tests/test_render.py compares both with rich's own output.
    """

    _shown_cells: list[list[str]] | None = None

    def _cells_shown(self, console: Console) -> list[list[str]]:
        """Per column: the header's text, then each cell's, as rich shows them."""
        if self._shown_cells is None:
            self._shown_cells = [[_shown(console, c) for c in (column.header, *column._cells)]  # type: ignore[arg-type]
                                 for column in self.columns]
        return self._shown_cells

    def _measure_column(self, console: Console, options: ConsoleOptions, column: Column) -> Measurement:
        if column.width is not None or not all(isinstance(c, Text | str) for c in (column.header, *column._cells)):
            return super()._measure_column(console, options, column)
        max_width = options.max_width
        if max_width < 1:
            return Measurement(0, 0)
        pad = self._get_padding_width(column._index)
        if max_width - pad < 1:
            measured = Measurement(max_width, max_width)
        else:  # what Measurement.get gives for Padding(Text) on each cell, then its maximum over the column
            extents = [_extent(text) for text in self._cells_shown(console)[column._index]]
            measured = Measurement(min(max(e[0] for e in extents) + pad, max_width),
                                   min(max(e[1] for e in extents) + pad, max_width))
        return measured.clamp(None if column.min_width is None else column.min_width + pad,
                              None if column.max_width is None else column.max_width + pad)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = self._plain_lines(console, options) if console.color_system is None else None
        if lines is None:
            yield from super().__rich_console__(console, options)
            return
        new_line = Segment.line()
        for line in lines:
            yield Segment(line)
            yield new_line

    def _plain_lines(self, console: Console, options: ConsoleOptions) -> list[str] | None:
        """The table as rich renders it without styles, or None where that takes rich (a cell or the title that
        would wrap, tabs or control characters, a justification other than left or right, Text options)."""
        if (not self.columns or self.caption or not self.show_header or self.show_footer or not self.show_edge
                or self.show_lines or self.leading or self.row_styles or self.box is None or self.collapse_padding
                or not self.pad_edge or tuple(self.padding) != (0, 1, 0, 1) or self.width is not None
                or any(row.end_section for row in self.rows) or self.title_justify != "left"
                or not all(isinstance(c, Text | str) for column in self.columns for c in (column.header, *column._cells))
                or any(c.justify or c.overflow or c.no_wrap is not None or c.tab_size
                       for column in self.columns for c in column._cells if isinstance(c, Text))):
            return None
        extra_width = self._extra_width
        widths = self._calculate_column_widths(console, options.update_width(options.max_width - extra_width))
        table_width = sum(widths) + extra_width
        lines: list[str] = []
        if self.title:
            if not isinstance(self.title, str):
                return None
            title = _shown(console, self.title)
            if not title.isprintable() or title != title.strip() or cell_len(title) > table_width:
                return None
            lines.append(title + " " * (table_width - cell_len(title)))
        columns = []
        for column, width, texts in zip(self.columns, widths, self._cells_shown(console), strict=True):
            inner = width - 2
            ignore = column.overflow == "ignore"  # rich neither justifies nor wraps these: left, as they are
            if not ignore and column.justify not in ("default", "left", "right"):
                return None
            right = not ignore and column.justify == "right"
            cells = []
            for text in texts:
                if not text.isprintable():
                    return None
                if right:
                    text = text.rstrip()
                size = cell_len(text)
                if size > inner or (not ignore and text != text.strip()):
                    return None
                cells.append(f" {' ' * (inner - size)}{text} " if right else f" {text}{' ' * (inner - size)} ")
            columns.append(cells)
        box = self.box.substitute(options, safe=pick_bool(self.safe_box, console.safe_box))
        rows = list(zip(*columns, strict=True))
        lines.append(box.get_top(widths))
        for index, row in enumerate(rows):
            if index == 0:
                start, divider, end = box.head_left, box.head_vertical, box.head_right
            elif index == len(rows) - 1:
                start, divider, end = box.foot_left, box.foot_vertical, box.foot_right
            else:
                start, divider, end = box.mid_left, box.mid_vertical, box.mid_right
            lines.append(start + divider.join(row) + end)
            if index == 0:
                lines.append(box.get_row(widths, "head", edge=True))
        lines.append(box.get_bottom(widths))
        return lines


def fit(title: str | None, columns: Sequence[Col], rows: Iterable[Sequence[Any]], width: int | None = None) -> Table:
    """A table for `width` columns: optional columns are dropped (lowest priority first) until it fits;
    columns that must not be cut (states, numbers, ids) never wrap; free text wraps instead."""
    cells = [[r[i] if isinstance(r[i], Text) else str(r[i]) for i in range(len(columns))] for r in rows]
    width = width or console.width
    cols = list(range(len(columns)))
    needs = []
    for i, c in enumerate(columns):
        longest = max([len(_plain(r[i])) for r in cells] + [len(c.name)])
        needs.append((min(longest, 12) if c.wrap else longest) + 3)  # padding and a border
    while sum(needs[i] for i in cols) + 1 > width:
        optional = [i for i in cols if not columns[i].keep]
        if not optional:
            break
        cols.remove(min(optional, key=lambda i: (columns[i].priority, -i)))
    t = _FitTable(title=title, header_style="bold", box=BOX, title_justify="left")
    for i in cols:
        c = columns[i]
        t.add_column(c.name, justify=c.justify, no_wrap=not c.wrap, overflow="fold" if c.wrap else "ignore",
                     min_width=None if c.wrap else min(needs[i] - 3, 40))
    for r in cells:
        t.add_row(*[r[i] for i in cols])
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
