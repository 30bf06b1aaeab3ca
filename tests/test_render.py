"""grader.cli.render's tables: laid out and written exactly as rich lays out and writes them (issue 12).

fit() hands rich each cell's width instead of letting it render every cell to measure it, and writes the
lines itself when no style can reach the output (piped, no colour). Both must give rich's own output, byte for
byte: these tests print random tables both ways, in a plain console and in a colour terminal.
"""

from __future__ import annotations

import io
import random

import pytest
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from grader.cli.render import Col, _FitTable, fit

WORDS = ["1", "42", "1,234,567", "99.0%", "+16.1%", "-2.0%", "9/10", "7.5/10", "done", "queued", "running",
         "student00140", "fashion_mnist", "smoke", "model.py", "01-30 12:55", "≈13", "Δ", "±0.4%", "ünïcödé",
         "幅広い文字", "a-very-long-participant-name-that-wraps", "[bold]markup[/]", "[not markup", ":smile:",
         "a:b:c", "x  y", "", " lead", "trail ", "tab\there", "line\nbreak", "\\x1b[2J", "emoji 🎉", "é"]
STYLES = ["", "green", "bold red", "italic cyan", "dim"]


def _cell(rng: random.Random) -> object:
    words = " ".join(rng.choice(WORDS) for _ in range(rng.choice([1, 1, 1, 2, 3, 6])))
    kind = rng.random()
    if kind < 0.3:
        return Text(words, style=rng.choice(STYLES))
    if kind < 0.4:
        return rng.randint(-5, 10**7)
    return words


def _columns(rng: random.Random, n: int) -> list[Col]:
    names = ["id", "participant", "public acc", "Δ base", "score", "params", "state", "detail", "[x] odd", "±"]
    return [Col(rng.choice(names) + ("" if i % 2 else " "), priority=rng.randint(0, 7), keep=rng.random() < 0.4,
                wrap=rng.random() < 0.4, justify=rng.choice(["left", "right", "left", "center", "default"]))
            for i in range(n)]


def _rich_table(title: str | None, columns: list[Col], rows: list[list[object]], width: int) -> Table:
    """The table as fit() built it before it laid columns out itself: a plain rich Table."""
    t = fit(title, columns, rows, width)
    plain = Table(title=t.title, header_style="bold", box=t.box, title_justify="left")
    for column in t.columns:
        plain.add_column(column.header, justify=column.justify, no_wrap=column.no_wrap, overflow=column.overflow,
                         min_width=column.min_width)
    for cells in zip(*(column._cells for column in t.columns), strict=True):
        plain.add_row(*cells)
    return plain


class _Ascii(io.StringIO):
    encoding = "ascii"  # what PYTHONIOENCODING=ascii gives: rich draws the box in ASCII


def _print(table: Table, width: int, colour: bool, ascii_only: bool = False) -> str:
    out = _Ascii() if ascii_only else io.StringIO()
    if colour:
        console = Console(file=out, width=width, force_terminal=True, color_system="truecolor", highlight=False)
    else:
        console = Console(file=out, width=width, highlight=False, no_color=True)
    console.print(table)
    return out.getvalue()


@pytest.mark.parametrize("seed", range(300))
def test_fit_writes_what_rich_writes(seed: int) -> None:
    rng = random.Random(seed)
    columns = _columns(rng, rng.randint(1, 10))
    rows = [[_cell(rng) for _ in columns] for _ in range(rng.choice([0, 1, 3, 20]))]
    width = rng.choice([20, 40, 60, 80, 100, 160, 250])
    title = rng.choice([None, "Leaderboard: fashion_mnist (smoke, public half)", "Submissions", "[dim]x[/] y",
                        "a title much longer than a narrow table could ever hold on one line"])
    for colour in (False, True):
        assert _print(fit(title, columns, rows, width), width, colour) == \
            _print(_rich_table(title, columns, rows, width), width, colour), (seed, colour)


CLEAN = [w for w in WORDS if w.isprintable() and w == w.strip() and len(w) < 20]


@pytest.mark.parametrize("seed", range(300))
def test_fit_writes_what_rich_writes_when_every_cell_fits(seed: int) -> None:
    """Cells of one short line each: mostly the plain writer's case (a narrow width still wraps some)."""
    rng = random.Random(seed)
    columns = _columns(rng, rng.randint(1, 8))
    rows = [[rng.choice([Text(rng.choice(CLEAN), style=rng.choice(STYLES)), rng.choice(CLEAN),
                         " ".join(rng.sample(CLEAN, 2))]) for _ in columns] for _ in range(rng.choice([0, 1, 5, 30]))]
    width = rng.choice([30, 60, 80, 120, 200])
    title = rng.choice([None, "Leaderboard: fashion_mnist (smoke, public half)", "Submissions", "Rubric (10 points)"])
    for colour in (False, True):
        assert _print(fit(title, columns, rows, width), width, colour) == \
            _print(_rich_table(title, columns, rows, width), width, colour), (seed, colour)


@pytest.mark.parametrize("seed", range(40))
def test_fit_writes_what_rich_writes_in_ascii(seed: int) -> None:
    rng = random.Random(seed)
    columns = _columns(rng, rng.randint(1, 6))
    rows = [[_cell(rng) for _ in columns] for _ in range(5)]
    got, want = fit("T", columns, rows, 80), _rich_table("T", columns, rows, 80)
    got.box = want.box = box.ROUNDED  # as on a UTF-8 stdout: rich substitutes ASCII for an ASCII console
    text = _print(got, 80, False, ascii_only=True)
    assert text == _print(want, 80, False, ascii_only=True)
    assert "╭" not in text and "+--" in text


def test_a_leaderboard_of_200_rows_is_written_without_rich_rendering_each_cell() -> None:
    rows = [[str(i), "" if i % 3 else "+1", Text(f"student{i:05d}"), f"{90 + i / 100:.1f}%", "+1.0%", "-0.5%", "9/10",
             f"{1000 * i:,}", "12", "34.5", str(i % 30), "01-30 12:55"] for i in range(200)]
    columns = [Col("rank", keep=True, justify="right"), Col("±", keep=True, justify="right"),
               Col("participant", keep=True, wrap=True), Col("public acc", keep=True, justify="right"),
               Col("Δ base", priority=6, justify="right"), Col("Δ best", priority=3, justify="right"),
               Col("score", priority=7, justify="right"), Col("params", priority=5, justify="right"),
               Col("epochs", priority=2, justify="right"), Col("time s", priority=1, justify="right"),
               Col("subs", priority=4, justify="right"), Col("last", priority=0)]
    table = fit("Leaderboard", columns, rows, 160)
    assert isinstance(table, _FitTable)
    console = Console(file=io.StringIO(), width=160, highlight=False)
    assert table._plain_lines(console, console.options) is not None  # the fast path applies
    assert _print(table, 160, False) == _print(_rich_table("Leaderboard", columns, rows, 160), 160, False)
