"""Root Typer app: global options, one sub-app per command group, errors → one red message + exit code.

Exit codes (docs/cli.md): 0 ok; 1 a run or submission failed, or an unexpected error; 2 usage or
configuration; 3 data; 4 submission refused; 5 backend; 6 result; 7 not found; 8 quota; 9 not
allowed (instructors only); 10 server unreachable; 11 not logged in / token refused; 130 interrupted.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from grader import __version__
from grader.cli.argv import requested
from grader.errors import GraderError

CONTEXT = {"help_option_names": ["-h", "--help"]}
HELP = "Grade hands-on Keras exercises: submit, train in a sandbox, score, rank."


def _new_app() -> typer.Typer:
    return typer.Typer(help=HELP, no_args_is_help=True, pretty_exceptions_enable=False, context_settings=CONTEXT,
                       rich_markup_mode=None)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"grader {__version__}")
        raise typer.Exit()


def root(
    ctx: typer.Context,
    home: Annotated[Path | None, typer.Option("--home", help="State folder (GRADER_HOME).")] = None,
    db_url: Annotated[str | None, typer.Option("--db-url", help="Database URL (GRADER_DB_URL).")] = None,
    backend: Annotated[str | None, typer.Option("--backend", help="local or slurm (GRADER_BACKEND).")] = None,
    course_dir: Annotated[Path | None, typer.Option("--course-dir", help="Folder with exercises/ and rubrics/.")]
    = None,
    server: Annotated[str | None, typer.Option("--server", help="A `grader serve` URL (GRADER_SERVER).")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")]
    = False,
) -> None:
    """Global options override settings from GRADER_* variables and the config file."""
    overrides = {k: v for k, v in {"home": home, "db_url": db_url, "backend": backend, "course_dir": course_dir,
                                   "server": server}.items() if v is not None}
    ctx.obj = overrides


def register(app: typer.Typer) -> None:
    """Every command and group. The command modules import only typer at their top (their services, pydantic
    models and rich inside the commands), so this costs little; typer's building of the click commands is what
    costs, and main() has it build only the command asked for."""
    from grader.cli import data, doctor, exercises, housekeeping, instructor, reading, reports, running, server

    app.callback()(root)
    app.add_typer(exercises.app, name="exercises")
    app.add_typer(data.app, name="data")
    app.add_typer(instructor.references_app, name="references")
    app.add_typer(instructor.export_app, name="export")
    app.add_typer(instructor.quota_app, name="quota")
    app.add_typer(instructor.nbgrader_app, name="nbgrader")
    app.add_typer(server.accounts_app, name="accounts")
    app.add_typer(housekeeping.runs_app, name="runs")
    app.add_typer(housekeeping.config_app, name="config")
    running.register(app)
    reading.register(app)
    instructor.register(app)
    server.register(app)
    doctor.register(app)
    reports.register(app)


app = _new_app()
register(app)


def _command_name(info: typer.models.CommandInfo) -> str:
    return info.name or typer.main.get_command_name(info.callback.__name__ if info.callback else "")


def only(name: str) -> typer.Typer:
    """The root app with just one command or group registered (the same root options and help settings), or
    the whole app if there is no such command: typer then builds one click command instead of 38."""
    one = _new_app()
    register(one)
    one.registered_commands = [c for c in one.registered_commands if _command_name(c) == name]
    one.registered_groups = [g for g in one.registered_groups if g.name == name]
    return one if one.registered_commands or one.registered_groups else app


def main() -> None:
    """Console entry point: user errors are one red line and a nonzero exit code, never a traceback."""
    import os

    # No pydantic plugin is loaded into the CLI: finding them scans the entry points of every installed
    # distribution on the first model built (tens of ms with TensorFlow's environment; bench/README.md).
    # typer builds its own parameter adapters with plugins off too. An explicit setting is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    name = None if "_GRADER_COMPLETE" in os.environ else requested(sys.argv[1:])
    target = only(name) if name else app
    try:
        # standalone_mode=False makes click *return* the code of a `typer.Exit(n)` instead of exiting
        code = target(standalone_mode=False)
        if isinstance(code, int) and not isinstance(code, bool) and code != 0:
            sys.exit(code)
    except GraderError as exc:
        from rich.text import Text

        from grader.cli.render import err_console
        from grader.text import inert

        err_console.print(Text("error: ", style="red") + Text(inert(exc.message, 4000)))
        if exc.hint:
            err_console.print(Text(f"hint: {inert(exc.hint, 1000)}", style="dim"))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        from grader.cli.render import err_console

        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)  # `grader leaderboard | head`
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
