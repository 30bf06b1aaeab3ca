"""`grader data list|verify|import|fetch`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from grader.cli.common import context
from grader.cli.render import console, table

app = typer.Typer(help="Manage the full datasets (the smoke profile needs none).", no_args_is_help=True)


def _show(ctx: typer.Context, verify: bool) -> None:
    from grader.datasets import dataset_status

    c = context(ctx)
    rows = dataset_status(c.settings, verify=verify)
    console.print(table(f"Datasets in {c.settings.resolved_data_dir}", ["name", "title", "state", "detail"],
                        [[r.name, r.title, "[green]present[/]" if r.present else "[yellow]missing[/]", r.detail]
                         for r in rows]))
    if verify and any(r.verified is False for r in rows):
        raise typer.Exit(3)


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Show which datasets are present."""
    _show(ctx, verify=False)


@app.command()
def verify(ctx: typer.Context) -> None:
    """Check each present dataset's checksum (exit 3 on a mismatch)."""
    _show(ctx, verify=True)


@app.command("import")
def import_(ctx: typer.Context,
            path: Annotated[Path, typer.Argument(help="A .npz, or a folder of IDX .gz or Kaggle CSV files.")]) -> None:
    """Import a dataset you have; it is identified and verified by content."""
    from grader.datasets import import_dataset

    info, target = import_dataset(path, context(ctx).settings)
    console.print(f"[green]✓[/] imported {info.title} ({info.train:,} train / {info.test:,} test) → {target}")


@app.command()
def fetch(ctx: typer.Context,
          name: Annotated[str, typer.Argument(help="mnist, fashion_mnist or sign_mnist.")],
          mirror: Annotated[str | None, typer.Option(help="Base URL of a mirror holding the same files.")] = None,
          timeout: Annotated[float, typer.Option(help="Seconds per download.")] = 30.0) -> None:
    """Download a dataset from its canonical public location (checksummed)."""
    from grader.datasets import fetch_dataset

    target = fetch_dataset(name, context(ctx).settings, mirror=mirror, timeout=timeout)
    console.print(f"[green]✓[/] {name} downloaded and verified → {target}")
