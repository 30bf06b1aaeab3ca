"""`grader data list|verify|import|fetch`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from grader.cli.common import settings
from grader.errors import DataError

if TYPE_CHECKING:
    from rich.text import Text


def state_text(present: bool) -> Text:
    from rich.text import Text

    return Text("present", style="green") if present else Text("missing", style="yellow")


app = typer.Typer(help="Manage the full datasets (the smoke profile needs none).", no_args_is_help=True)


def _show(ctx: typer.Context, verify: bool) -> None:
    from grader.cli.render import console, table
    from grader.datasets import dataset_status

    s = settings(ctx)
    rows = dataset_status(s, verify=verify)
    console.print(table(f"Datasets in {s.resolved_data_dir}", ["name", "title", "state", "detail"],
                        [[r.name, r.title, state_text(r.present), r.detail] for r in rows]))
    if verify and any(r.verified is False for r in rows):
        raise typer.Exit(3)
    if verify and not any(r.present for r in rows):
        raise DataError(f"no dataset to verify in {s.resolved_data_dir}",
                        hint="`grader data import PATH` or set GRADER_DATA_DIR; the smoke profile needs none")


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
    from grader.cli.render import console
    from grader.datasets import import_dataset

    info, target = import_dataset(path, settings(ctx))
    console.print(f"[green]✓[/] imported {info.title} ({info.train:,} train / {info.test:,} test) → {target}")


@app.command()
def fetch(ctx: typer.Context,
          name: Annotated[str, typer.Argument(help="mnist, fashion_mnist or sign_mnist.")],
          mirror: Annotated[str | None, typer.Option(help="Base URL of a mirror holding the same files.")] = None,
          timeout: Annotated[float, typer.Option(help="Seconds per download.")] = 30.0) -> None:
    """Download a dataset from its canonical public location (checksummed)."""
    from grader.cli.render import console
    from grader.datasets import fetch_dataset

    target = fetch_dataset(name, settings(ctx), mirror=mirror, timeout=timeout)
    console.print(f"[green]✓[/] {name} downloaded and verified → {target}")
