"""Rich rendering helpers: tables, colours and progress; no business logic here."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(width=int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else None)
err_console = Console(stderr=True)

STATE_STYLE = {"done": "green", "failed": "red", "queued": "yellow", "running": "cyan"}


def pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.1%}" if signed else f"{value:.1%}"


def num(value: float | int | None, fmt: str = "{:,}") -> str:
    return "-" if value is None else fmt.format(value)


def state(text: str) -> str:
    return f"[{STATE_STYLE.get(text, 'white')}]{text}[/]"


def table(title: str | None, columns: Iterable[str | tuple[str, dict[str, Any]]], rows: Iterable[Iterable[Any]]) -> Table:
    t = Table(title=title, header_style="bold")
    for col in columns:
        if isinstance(col, tuple):
            t.add_column(col[0], **col[1])
        else:
            t.add_column(col)
    for row in rows:
        t.add_row(*[str(c) for c in row])
    return t


def score_style(fraction: float) -> str:
    return "green" if fraction >= 0.8 else "yellow" if fraction >= 0.5 else "red"


class TrainingProgress:
    """A live progress bar fed with the job's progress events (one per epoch)."""

    def __init__(self, label: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("epochs"),
            TimeRemainingColumn(), TextColumn("{task.fields[stats]}"), console=console, transient=False,
        )
        self.task = self.progress.add_task(label, total=None, stats="starting")
        self.label = label

    def __enter__(self) -> TrainingProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def status(self, text: str) -> None:
        self.progress.update(self.task, stats=text)

    def event(self, ev: dict[str, Any]) -> None:
        kind = ev.get("event")
        if kind == "phase":
            self.progress.update(self.task, stats=str(ev.get("phase")))
            if ev.get("epochs"):
                self.progress.update(self.task, total=int(ev["epochs"]))
        elif kind == "epoch_start":
            self.progress.update(self.task, total=int(ev.get("epochs") or 0) or None,
                                 stats=f"epoch {ev.get('epoch')} running")
        elif kind == "epoch_end":
            loss, acc, secs = ev.get("loss"), ev.get("accuracy"), ev.get("seconds")
            stats = f"loss {loss:.4f}" if isinstance(loss, float) else "loss nan"
            if isinstance(acc, float):
                stats += f"  acc {acc:.3f}"
            if isinstance(secs, float):
                stats += f"  {secs:.1f}s/epoch"
            self.progress.update(self.task, completed=int(ev.get("epoch") or 0), stats=stats)
        elif kind == "end":
            self.progress.update(self.task, stats=str(ev.get("outcome")))


def render_result_summary(result: Any, metrics: Any) -> None:
    """Outcome line, then the metrics a participant may see (public half, train, gap, classes)."""
    if result.outcome != "ok" or metrics is None:
        console.print(f"[red]✗ {result.outcome}[/] ({result.error_kind}): {result.message}", highlight=False)
        return
    console.print(f"[green]✓ trained[/] {result.params:,} parameters, {result.epochs} epochs × batch "
                  f"{result.batch_size}, fit {result.timings.get('fit', 0):.1f}s")
    console.print(f"held-out accuracy (public half): [bold]{pct(metrics.public_accuracy)}[/]   "
                  f"training subset: {pct(metrics.train_accuracy)}   gap: {pct(metrics.generalization_gap, True)}")
    console.print(table("Per class (held-out)", ["class", "accuracy", "images"],
                        [[c.name, pct(c.accuracy), c.support] for c in metrics.per_class]))


def render_grade(grade: dict[str, Any] | None) -> None:
    if not grade:
        return
    frac = grade["total"] / grade["max_total"] if grade.get("max_total") else 0.0
    colour = score_style(frac) if grade.get("graded", True) else "magenta"
    title = f"Score [{colour}]{grade['total']:g} / {grade['max_total']:g}[/]"
    if not grade.get("graded", True):
        title += " (could not grade: not your fault)"
    console.print(table(title, ["criterion", ("points", {"justify": "right"}), "feedback"],
                        [[c["title"], f"[{score_style(c['points'] / c['max_points'] if c['max_points'] else 0)}]"
                          f"{c['points']:g}/{c['max_points']:g}[/]", c["feedback"]] for c in grade["criteria"]]))
    for tip in grade.get("diagnostics", []):
        console.print(f"  • {tip}", highlight=False)
