"""Instructor commands: references, grade export, quotas, nbgrader import."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from grader.cli.common import context
from grader.cli.render import console, pct, state, table
from grader.errors import GraderError

references_app = typer.Typer(help="Measure baseline and reference solutions.", no_args_is_help=True)
export_app = typer.Typer(help="Export grades for a gradebook.", no_args_is_help=True)
quota_app = typer.Typer(help="Submission quotas.", no_args_is_help=True)
nbgrader_app = typer.Typer(help="Bring nbgrader notebook scores in.", no_args_is_help=True)


@references_app.command("compute")
def references_compute(ctx: typer.Context, exercise: Annotated[str, typer.Option("--exercise", "-e", help="Exercise.")],
                       profile: Annotated[str | None, typer.Option("--profile", "-p", help="Profile.")] = None,
                       wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until all are graded.")] = True,
                       force: Annotated[bool, typer.Option(help="Queue again even if measured.")] = False) -> None:
    """Grade the baseline and reference solutions through the same pipeline and store them."""
    from grader.service.references import wait_for_references
    from grader.service.submit import ensure_references

    c = context(ctx)
    spec = c.catalog.get(exercise)
    profile = profile or c.settings.profile
    spec.profile(profile)
    queued = ensure_references(c, spec, profile, force=force)
    console.print(f"queued: {', '.join(queued) or 'nothing (all measured; --force to redo)'}")
    if wait:
        with console.status("running reference solutions…"):
            wait_for_references(c, exercise, profile, poll=2.0)
    references_list(ctx, exercise, profile)


@references_app.command("list")
def references_list(ctx: typer.Context, exercise: Annotated[str, typer.Option("--exercise", "-e", help="Exercise.")],
                    profile: Annotated[str | None, typer.Option("--profile", "-p", help="Profile.")] = None) -> None:
    """Show the measured reference results."""
    from grader.service.references import reference_status

    c = context(ctx)
    profile = profile or c.settings.profile
    rows = reference_status(c, exercise, profile)
    console.print(table(f"References: {exercise} ({profile})", ["reference", "state", "public acc", "fit s"],
                        [[r.name, state(r.state), pct(r.public_accuracy),
                          "-" if r.fit_seconds is None else f"{r.fit_seconds:.1f}"] for r in rows]))


@export_app.command("grades")
def export_grades(ctx: typer.Context, exercise: Annotated[str, typer.Option("--exercise", "-e", help="Exercise.")],
                  fmt: Annotated[str, typer.Option("--format", help="Output format (csv).")] = "csv",
                  output: Annotated[Path | None, typer.Option("--output", "-o", help="File (default: stdout).")] = None,
                  profile: Annotated[str | None, typer.Option("--profile", "-p", help="Profile.")] = None) -> None:
    """One row per participant with per-criterion columns, ready for a gradebook import."""
    from grader.service.board import export_grades as do

    if fmt != "csv":
        raise GraderError(f"unknown format {fmt!r}; available: csv")
    text = do(context(ctx), exercise=exercise, profile=profile)
    if output:
        output.write_text(text, encoding="utf-8")
        console.print(f"[green]✓[/] wrote {output}")
    else:
        typer.echo(text, nl=False)


@quota_app.command("set")
def quota_set(ctx: typer.Context, student: Annotated[str, typer.Argument(help="Participant.")],
              exercise: Annotated[str, typer.Option("--exercise", "-e", help="Exercise.")],
              limit: Annotated[int, typer.Option(help="Submissions per window for this participant.")]) -> None:
    """Override one participant's quota for an exercise (instructors)."""
    from grader.db.engine import session_scope
    from grader.service.quota import set_override

    c = context(ctx)
    if not c.is_instructor:
        raise GraderError("only instructors may change quotas")
    c.catalog.get(exercise)
    with session_scope(c.engine) as s:
        set_override(c, s, student, exercise, limit)
    console.print(f"[green]✓[/] {student}: {limit} submissions per {c.settings.quota_window_hours:g} h on {exercise}")


@nbgrader_app.command("import")
def nbgrader_import(ctx: typer.Context,
                    gradebook: Annotated[Path, typer.Argument(help="nbgrader's gradebook.db.")] = Path("gradebook.db")) -> None:
    """Store nbgrader's notebook scores beside the leaderboard data."""
    from grader.service.notebooks import import_notebook_scores

    n = import_notebook_scores(context(ctx), gradebook)
    console.print(f"[green]✓[/] imported {n} notebook score(s) from {gradebook}")


def register(app: typer.Typer) -> None:
    """No top-level commands here; groups are attached in app.register()."""
