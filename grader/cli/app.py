"""Root Typer app: global options, one sub-app per command group, GraderError → red message + exit code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from grader import __version__
from grader.errors import GraderError

app = typer.Typer(help="Grade hands-on Keras exercises: submit, train in a sandbox, score, rank.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"grader {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[Path | None, typer.Option("--home", help="State folder (GRADER_HOME).")] = None,
    db_url: Annotated[str | None, typer.Option("--db-url", help="Database URL (GRADER_DB_URL).")] = None,
    backend: Annotated[str | None, typer.Option("--backend", help="local or slurm (GRADER_BACKEND).")] = None,
    course_dir: Annotated[Path | None, typer.Option("--course-dir", help="Folder with exercises/ and rubrics/.")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = False,
) -> None:
    """Global options override settings from GRADER_* variables and the config file."""
    overrides = {k: v for k, v in {"home": home, "db_url": db_url, "backend": backend,
                                   "course_dir": course_dir}.items() if v is not None}
    ctx.obj = overrides


def register() -> None:
    from grader.cli import data, doctor, exercises, grading, instructor, running

    app.add_typer(exercises.app, name="exercises")
    app.add_typer(data.app, name="data")
    app.add_typer(instructor.references_app, name="references")
    app.add_typer(instructor.export_app, name="export")
    app.add_typer(instructor.quota_app, name="quota")
    app.add_typer(instructor.nbgrader_app, name="nbgrader")
    running.register(app)
    grading.register(app)
    instructor.register(app)
    doctor.register(app)


register()


def main() -> None:
    """Console entry point: user errors are one red line and a nonzero exit code, never a traceback."""
    from grader.cli.render import err_console

    try:
        # standalone_mode=False makes click *return* the code of a `typer.Exit(n)` instead of exiting
        code = app(standalone_mode=False)
        if isinstance(code, int) and not isinstance(code, bool) and code != 0:
            sys.exit(code)
    except GraderError as exc:
        err_console.print(f"[red]error:[/] {exc.message}", highlight=False)
        if exc.hint:
            err_console.print(f"[dim]hint: {exc.hint}[/]", highlight=False)
        sys.exit(exc.exit_code)
    except ValidationError as exc:
        err_console.print(f"[red]error:[/] invalid configuration: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}")
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except Exception as exc:  # usage errors and aborts; typer >= 0.2x raises its vendored click's (typer._click)
        import click

        if isinstance(exc, typer.Exit | click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, click.ClickException | typer.TyperException) and hasattr(exc, "show"):
            exc.show()
            sys.exit(getattr(exc, "exit_code", 2))
        if isinstance(exc, typer.Abort | click.exceptions.Abort):
            sys.exit(1)
        raise
