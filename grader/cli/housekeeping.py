"""`grader runs prune` and `grader config show`."""

from __future__ import annotations

from typing import Annotated

import typer

from grader.cli.common import client, embedded_only, settings

runs_app = typer.Typer(help="Run directories on this machine.", no_args_is_help=True)
config_app = typer.Typer(help="Settings in effect.", no_args_is_help=True)


@runs_app.command("prune")
def runs_prune(ctx: typer.Context,
               older_than: Annotated[float | None, typer.Option("--older-than", help="Days; runs older than this.")]
               = None,
               superseded: Annotated[bool, typer.Option("--superseded", help="Runs that are not their participant's "
                                                         "best.")] = False,
               dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would go.")] = False) -> None:
    """Drop weights, logs and TensorBoard files of old or superseded runs; results and predictions stay."""
    from grader.cli.render import console
    from grader.client.local import LocalClient
    from grader.service.housekeeping import prune_runs

    c = client(ctx)
    embedded_only(c, "pruning runs")
    assert isinstance(c, LocalClient)
    if older_than is None and not superseded:
        raise typer.BadParameter("give --older-than DAYS and/or --superseded")
    report = prune_runs(c.ctx, c.actor, older_than_days=older_than, superseded=superseded, dry_run=dry_run)
    verb = "would free" if dry_run else "freed"
    console.print(f"[green]✓[/] {report.pruned} of {report.runs} run(s) pruned: {verb} "
                  f"{report.freed_bytes / 1e6:.1f} MB")


@config_app.command("show")
def config_show(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False)\
        -> None:
    """Every setting in effect and where it came from (default, GRADER_* variable, config file)."""
    import os

    from grader.cli.render import Col, console, emit_json, fit
    from grader.settings import Settings, config_file

    s = settings(ctx)
    file_values: dict[str, object] = {}
    path = config_file()
    if path.exists():
        import tomllib

        file_values = tomllib.loads(path.read_text(encoding="utf-8"))
    data = s.model_dump(mode="json")
    data["token"] = "(set)" if s.token else None
    if as_json:
        emit_json(data)
        return
    overrides = ctx.find_root().obj or {}
    rows = []
    for name in Settings.model_fields:
        if name in overrides:
            source = "command line"
        elif f"GRADER_{name.upper()}" in os.environ:
            source = f"GRADER_{name.upper()}"
        elif name in file_values:
            source = str(path)
        else:
            source = "default"
        rows.append([name, str(data[name]), source])
    console.print(fit(f"Settings (config file: {path})", [Col("setting", keep=True), Col("value", keep=True, wrap=True),
                                                         Col("from", priority=1, wrap=True)], rows))
