"""`grader exercises list|show|validate`."""

from __future__ import annotations

from typing import Annotated

import typer

from grader.cli.common import context
from grader.cli.render import console, table
from grader.errors import SpecError

app = typer.Typer(help="List, show and validate exercise and rubric files.", no_args_is_help=True)


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List the exercises of the course."""
    c = context(ctx)
    rows = []
    for name in c.catalog.names():
        spec = c.catalog.get(name)
        rows.append([name, spec.title, spec.dataset, spec.num_classes, ", ".join(sorted(spec.profiles)),
                     len(c.catalog.references(name))])
    console.print(table(f"Exercises in {c.catalog.root}", ["name", "title", "dataset", "classes", "profiles",
                                                           "references"], rows))


@app.command()
def show(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Exercise name.")]) -> None:
    """Show one exercise: data, limits, profiles, rubric and references."""
    c = context(ctx)
    spec = c.catalog.get(name)
    console.print(f"[bold]{spec.title}[/] ({spec.name}) - dataset {spec.dataset}, seed {spec.seed}")
    if spec.description:
        console.print(spec.description)
    names = [spec.class_name(i) for i in spec.labels.used]
    console.print(f"classes ({spec.num_classes}): {', '.join(names)}")
    units = ", ".join(f"{u} ({enc})" for u, enc in sorted(spec.labels.accepted_output_units().items()))
    console.print(f"accepted output units: {units}; input {tuple(spec.input_shape)} or (784,)")
    lim = spec.limits
    console.print(f"limits: epochs <= {lim.max_epochs}, params <= {lim.max_params:,}, wall <= {lim.max_wall_seconds}s, "
                  f"batch {lim.min_batch_size}..{lim.max_batch_size}, memory {lim.memory_mb} MB")
    console.print(f"defaults: {spec.training.epochs} epochs, batch {spec.training.batch_size}, "
                  f"{spec.compile.optimizer} lr {spec.compile.learning_rate}")
    console.print(table("Profiles", ["name", "data", "train/class", "test/class", "max epochs"],
                        [[n, p.source, p.train_per_class or "all", p.test_per_class or "all", p.max_epochs or "-"]
                         for n, p in sorted(spec.profiles.items())]))
    rubric = c.catalog.rubric(name)
    console.print(table(f"Rubric ({rubric.total_points:g} points, {rubric.board} board)", ["criterion", "kind", "points"],
                        [[cr.title, cr.kind, f"{cr.points:g}"] for cr in rubric.criteria]))
    console.print("references: " + ", ".join(p.stem for p in c.catalog.references(name)))


@app.command()
def validate(ctx: typer.Context) -> None:
    """Load every exercise and rubric and report every problem (exit 2 if any)."""
    c = context(ctx)
    problems = c.catalog.validate_all()
    if problems:
        for p in problems:
            console.print(f"[red]✗[/] {p}", highlight=False)
        raise SpecError(f"{len(problems)} problem(s) in {c.catalog.root}")
    console.print(f"[green]✓[/] {len(c.catalog.names())} exercises and their rubrics are valid")
