"""Instructor commands: regrade, references, export, quotas, nbgrader import, flags, sync."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from grader.cli.common import client
from grader.errors import GraderError

references_app = typer.Typer(help="Measure baseline and reference solutions.", no_args_is_help=True)
export_app = typer.Typer(help="Export grades for a gradebook.", no_args_is_help=True)
quota_app = typer.Typer(help="Submission quotas.", no_args_is_help=True)
nbgrader_app = typer.Typer(help="Bring nbgrader notebook scores in.", no_args_is_help=True)

ProfileOpt = Annotated[str | None, typer.Option("--profile", "-p", help="Profile (default from settings).")]
OneExercise = Annotated[str | None, typer.Option("--exercise", "-e", help="Exercise.")]
AllOpt = Annotated[bool, typer.Option("--all", help="Every exercise.")]


def _exercises(ctx: typer.Context, exercise: str | None, all_: bool) -> list[str]:
    if all_:
        return [e.name for e in client(ctx).exercises()]
    if exercise is None:
        raise typer.BadParameter("give --exercise NAME or --all")
    return [exercise]


@references_app.command("compute")
def references_compute(ctx: typer.Context, exercise: OneExercise = None, all_: AllOpt = False,
                       profile: ProfileOpt = None,
                       wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until all are graded.")]
                       = True,
                       force: Annotated[bool, typer.Option("--force", help="Queue again even if measured.")]
                       = False) -> None:
    """Grade the baseline and reference solutions through the same pipeline and store them."""
    from grader.cli.render import console

    c = client(ctx)
    names = _exercises(ctx, exercise, all_)
    for name in names:
        queued = c.compute_references(exercise=name, profile=profile, force=force)
        console.print(f"{name}: queued {', '.join(queued) or 'nothing (all measured; --force to redo)'}")
    if wait:
        _wait_references(ctx, names, profile)
    for name in names:
        references_list(ctx, name, profile)


def _wait_references(ctx: typer.Context, names: list[str], profile: str | None) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from grader.cli.render import console

    c = client(ctx)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[now]}", markup=False), console=console) as bar:
        tasks = {n: bar.add_task(n, total=None, now="") for n in names}
        while True:
            pending = 0
            for name in names:
                rows = c.references(exercise=name, profile=profile)
                done = sum(1 for r in rows if not r.state.active)
                running = [r.name for r in rows if r.state.value == "running"]
                bar.update(tasks[name], total=len(rows), completed=done, now=", ".join(running)[:40])
                pending += len(rows) - done
            if pending == 0:
                return
            time.sleep(1.0)


@references_app.command("list")
def references_list(ctx: typer.Context, exercise: Annotated[str, typer.Option("--exercise", "-e", help="Exercise.")],
                    profile: ProfileOpt = None,
                    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show the measured reference results."""
    from grader.cli.render import Col, console, emit_json, fit, num, pct, state

    rows = client(ctx).references(exercise=exercise, profile=profile)
    if as_json:
        emit_json(rows)
        return
    console.print(fit(f"References: {exercise}", [Col("reference", keep=True), Col("state", keep=True),
                                                   Col("public acc", keep=True, justify="right"),
                                                   Col("params", priority=2, justify="right"),
                                                   Col("fit s", priority=1, justify="right")],
                      [[r.name, state(r.state.value), pct(r.public_accuracy, std=r.public_std), num(r.params),
                        num(r.fit_seconds, "{:.1f}")] for r in rows]))


@export_app.command("grades")
def export_grades(ctx: typer.Context, exercise: Annotated[str, typer.Option("--exercise", "-e", help="Exercise.")],
                  fmt: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
                  output: Annotated[Path | None, typer.Option("--output", "-o", help="File (default: stdout).")]
                  = None,
                  profile: ProfileOpt = None) -> None:
    """One row per participant of one exercise: id, name, e-mail, score, criteria, submission time."""
    from grader.cli.render import console
    from grader.service.export import FORMATS, render

    if fmt not in FORMATS:
        raise GraderError(f"unknown format {fmt!r}; available: {', '.join(FORMATS)}")
    text = render(client(ctx).export_grades(exercise=exercise, profile=profile), fmt)
    if output:
        output.write_text(text, encoding="utf-8")
        console.print(f"[green]✓[/] wrote {output}")
    else:
        typer.echo(text, nl=False)


@quota_app.command("set")
def quota_set(ctx: typer.Context, student: Annotated[str, typer.Argument(help="Participant.")],
              exercise: Annotated[str, typer.Option("--exercise", "-e", help="Exercise.")],
              limit: Annotated[int, typer.Option("--limit", help="Submissions per window for this participant.")])\
        -> None:
    """Override one participant's quota for an exercise (instructors)."""
    from rich.text import Text

    from grader.cli.render import cell, console

    q = client(ctx).set_quota(student, exercise=exercise, limit=limit)
    console.print(Text("✓ ", style="green") + cell(student) + Text(f": {q.limit} submissions per window on {exercise} "
                                                                   f"({q.used} used)"))


@nbgrader_app.command("import")
def nbgrader_import(ctx: typer.Context,
                    gradebook: Annotated[Path, typer.Argument(help="nbgrader's gradebook.db.")] = Path("gradebook.db"))\
        -> None:
    """Store nbgrader's notebook scores beside the leaderboard data (per assignment = exercise)."""
    from grader.cli.render import console

    n = client(ctx).import_notebooks(gradebook)
    console.print(f"[green]✓[/] imported {n} notebook score(s) from {gradebook}")


def regrade(ctx: typer.Context, exercise: OneExercise = None, all_: AllOpt = False, profile: ProfileOpt = None,
            seeds: Annotated[int | None, typer.Option("--seeds", help="Grade every submission under N seeds "
                                                      "(trains only the seeds not run yet).")] = None) -> None:
    """Re-apply the current rubric to stored results (no training), and say what changed."""
    from rich.progress import Progress

    from grader.cli.render import Col, cell, console, fit, num

    c = client(ctx)
    for name in _exercises(ctx, exercise, all_):
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(f"regrading {name}", total=None)
            report = c.regrade(exercise=name, profile=profile, seeds=seeds,
                               on_progress=functools.partial(_advance, bar, task))
        if seeds is not None:
            console.print(f"[green]✓[/] {name}: {report.regraded} submission(s) queued for {seeds} seeds; only seeds "
                          "not run before train. `grader leaderboard` shows mean ± std when they finish")
            continue
        console.print(f"[green]✓[/] regraded {report.regraded} result(s) of {name}; "
                      f"{len(report.changes)} score(s) changed")
        if report.changes:
            console.print(fit(None, [Col("id", keep=True, justify="right"), Col("participant", keep=True, wrap=True),
                                     Col("before", keep=True, justify="right"), Col("after", keep=True,
                                                                                    justify="right")],
                              [[ch.submission_id, cell(ch.participant), num(ch.before, "{:g}"),
                                num(ch.after, "{:g}")] for ch in report.changes]))


def _advance(bar: Any, task: Any, done: int, total: int) -> None:
    bar.update(task, completed=done, total=total)


def sync(ctx: typer.Context) -> None:
    """Reconcile active jobs with their backend and ingest finished runs (the worker does this by itself)."""
    from grader.cli.render import console, untrusted, warn

    report = client(ctx).sync()
    for w in report.warnings:
        warn(untrusted(w, 500))
    console.print(f"polled {report.polled}, ingested {len(report.ingested)}, requeued {len(report.requeued)}")


def flags(ctx: typer.Context, exercise: Annotated[str, typer.Option("--exercise", "-e", help="Exercise.")],
          profile: ProfileOpt = None,
          as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Integrity flags for instructors (never penalties): implausible scores, embedded tables, near-duplicates."""
    from grader.cli.render import Col, cell, console, emit_json, fit, untrusted

    report = client(ctx).flags(exercise=exercise, profile=profile)
    if as_json:
        emit_json(report)
        return
    if not report.flags:
        console.print(f"[green]✓[/] no integrity flags on {exercise} ({report.checked} submissions checked)")
        return
    console.print(fit(f"Integrity flags: {exercise} ({report.checked} checked)",
                      [Col("id", keep=True, justify="right"), Col("participant", keep=True, wrap=True),
                       Col("flag", keep=True), Col("evidence", keep=True, wrap=True)],
                      [[f.submission_id, cell(f.participant), f.kind.value, untrusted(f.evidence, 400)]
                       for f in report.flags]))
    console.print("[dim]flags are evidence for a conversation, not verdicts: see docs/integrity.md[/]")


def register(app: typer.Typer) -> None:
    app.command()(regrade)
    app.command()(sync)
    app.command()(flags)
