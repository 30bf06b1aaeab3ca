"""`grader exercises list|show|validate`."""

from __future__ import annotations

from typing import Annotated

import typer

from grader.cli.common import client, settings
from grader.errors import SpecError

app = typer.Typer(help="List, show and validate exercise and rubric files.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON (schema: docs/json.md).")]


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the exercises of the course."""
    from grader.cli.render import Col, console, emit_json, fit

    rows = client(ctx).exercises()
    if as_json:
        emit_json(rows)
        return
    console.print(fit("Exercises", [Col("name", keep=True), Col("title", priority=4, wrap=True),
                                    Col("dataset", priority=2), Col("classes", priority=3, justify="right"),
                                    Col("profiles", priority=1, wrap=True), Col("references", priority=0,
                                                                                  justify="right")],
                      [[e.name, e.title, e.dataset, e.classes, ", ".join(e.profiles), e.references] for e in rows]))


@app.command()
def show(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Exercise name.")], as_json: JsonOpt = False)\
        -> None:
    """Show one exercise: data, limits, profiles, rubric and references."""
    from rich.text import Text

    from grader.cli.render import Col, console, emit_json, fit, untrusted

    d = client(ctx).exercise(name)
    if as_json:
        emit_json(d)
        return
    console.print(Text(d.title, style="bold") + Text(f" ({d.name}) - dataset {d.dataset}, seed {d.seed}"))
    if d.description:
        console.print(untrusted(d.description, 2000))
    console.print(Text(f"classes ({d.classes}): ") + untrusted(", ".join(d.class_names), 1000))
    units = ", ".join(f"{u} ({enc})" for u, enc in d.accepted_output_units.items())
    console.print(f"accepted output units: {units}; input {tuple(d.input_shape)} or (784,)")
    lo, hi = d.batch_size_range
    console.print(f"limits: epochs <= {d.max_epochs}, params <= {d.max_params:,}, wall <= {d.max_wall_seconds}s, "
                  f"batch {lo}..{hi}, memory {d.memory_mb} MB")
    console.print(f"defaults: {d.default_epochs} epochs, batch {d.default_batch_size}, {d.default_optimizer} "
                  f"lr {d.default_learning_rate:g}")
    console.print(fit("Profiles", [Col("name", keep=True), Col("data", keep=True), Col("train/class", priority=2),
                                   Col("test/class", priority=1), Col("max epochs", priority=3),
                                   Col("seeds", priority=4)],
                      [[p.name, p.source, p.train_per_class or "all", p.test_per_class or "all", p.max_epochs or "-",
                        p.seeds] for p in d.profile_details]))
    console.print(fit(f"Rubric ({d.rubric_points:g} points, {d.rubric_board} board)",
                      [Col("criterion", keep=True, wrap=True), Col("kind", priority=1), Col("points", keep=True)],
                      [[c.title, c.kind, f"{c.points:g}"] for c in d.criteria]))
    console.print("references: " + ", ".join(d.reference_names))


@app.command()
def validate(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Check every exercise, rubric, reference solution and starter; list every problem (exit 2 if any)."""
    from rich.text import Text

    from grader.cli.render import console, emit_json, untrusted
    from grader.service.context import Context
    from grader.service.exercises import validate_course

    report = validate_course(Context(settings=settings(ctx)))
    if as_json:
        emit_json(report)
    else:
        for p in report.problems:
            console.print(Text("✗ ", style="red") + untrusted(p, 1000), soft_wrap=True)
    if report.problems:
        raise SpecError(f"{len(report.problems)} problem(s) in {report.root}",
                        hint="each line names the file and the field or line to fix")
    if not as_json:
        console.print(f"[green]✓[/] {report.exercises} exercises, their rubrics, references and starters are valid")
