"""`grader report ID --html FILE` and `grader tensorboard ID [ID...]`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from grader.cli.common import client, embedded_only
from grader.errors import GraderError


def report(ctx: typer.Context, submission_id: Annotated[int, typer.Argument(help="Submission id.")],
           html: Annotated[Path, typer.Option("--html", help="Write a self-contained HTML report to this file.")])\
        -> None:
    """One submission's feedback with plots as one HTML file (inline SVG, no network): mail it, publish it."""
    from grader.cli.render import console
    from grader.web.pages import report_html

    c = client(ctx)
    detail = c.show(submission_id)
    title = c.exercise(detail.status.exercise).title
    html.write_text(report_html(detail, exercise_title=title), encoding="utf-8")
    console.print(f"[green]✓[/] wrote {html}")


def tensorboard(ctx: typer.Context, ids: Annotated[list[int], typer.Argument(help="Submission ids to compare.")],
                port: Annotated[int, typer.Option("--port", help="TensorBoard's port.")] = 6006,
                dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print the command.")] = False) -> None:
    """Open TensorBoard on these runs' training curves, side by side (needs the `tensorboard` extra)."""
    import shutil
    import subprocess
    import tempfile

    from grader.cli.render import console
    from grader.client.local import LocalClient
    from grader.rundir import RunDir

    c = client(ctx)
    embedded_only(c, "tensorboard")
    assert isinstance(c, LocalClient)
    if not c.actor.instructor and any(c.show(i).status.participant != c.actor.name for i in ids):
        raise GraderError("you may compare only your own runs")
    logdir = Path(tempfile.mkdtemp(prefix="grader-tensorboard-"))
    found = 0
    for sub_id in ids:
        detail = c.show(sub_id)
        run_dir = detail.run_dir
        source = RunDir(Path(run_dir)).tensorboard if run_dir else None
        if source is None or not source.is_dir():
            console.print(f"[yellow]submission {sub_id} has no TensorBoard logs (run before the extra was "
                          "installed, or pruned)[/]")
            continue
        shutil.copytree(source, logdir / f"{sub_id}-{detail.status.participant}"[:80], symlinks=False)
        found += 1
    if not found:
        raise GraderError("none of these submissions has TensorBoard logs")
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--port", str(port), "--bind_all"]
    if dry_run:
        console.print(" ".join(cmd), soft_wrap=True)
        return
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise GraderError("TensorBoard is not installed", hint="pip install 'keras-grader[tensorboard]'") from None
    console.print(f"TensorBoard on http://localhost:{port} (Ctrl-C stops it)")
    subprocess.run(cmd, check=False)


def register(app: typer.Typer) -> None:
    app.command()(report)
    app.command()(tensorboard)
