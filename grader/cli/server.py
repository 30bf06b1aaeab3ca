"""`grader serve` (the class's one trusted coordinator), `grader login|logout`, `grader accounts ...`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from grader.cli.common import client, settings
from grader.errors import GraderError

if TYPE_CHECKING:
    from grader.service.accounts import IssuedToken

accounts_app = typer.Typer(help="Accounts of a served class (instructors).", no_args_is_help=True)


def serve(ctx: typer.Context,
          host: Annotated[str, typer.Option("--host", help="Address to listen on (a reverse proxy adds TLS).")]
          = "127.0.0.1",
          port: Annotated[int, typer.Option("--port", help="Port.")] = 8420,
          workers: Annotated[int, typer.Option("--loop-seconds", help="Seconds between reconciliation passes.")]
          = 2) -> None:
    """Run the coordinator: HTTP API and pages, the database, the labels, the backends and the loop."""
    from grader.api.server import run_server

    run_server(settings(ctx), host=host, port=port, loop_seconds=float(workers))


def login(ctx: typer.Context, url: Annotated[str, typer.Argument(help="The server, e.g. https://grader.example.org")],
          token: Annotated[str | None, typer.Option("--token", help="Your token (asked for if not given).")]
          = None) -> None:
    """Keep a server URL and your token in a private credentials file; the CLI then talks to the server."""
    from rich.text import Text

    from grader.cli.render import cell, console
    from grader.client.credentials import Credentials, save_credentials
    from grader.client.remote import RemoteClient

    if token is None:
        token = typer.prompt("token", hide_input=True).strip()
    actor = RemoteClient(url, token).whoami()
    path = save_credentials(Credentials(server=url.rstrip("/"), token=token, name=actor.name))
    role = "instructor" if actor.instructor else "participant"
    console.print(Text("✓ logged in to ", style="green") + Text(url) + Text(" as ") + cell(actor.name)
                  + Text(f" ({role}); credentials in {path} (readable by you only)"))


def logout(ctx: typer.Context) -> None:
    """Forget the saved server and token."""
    from grader.cli.render import console
    from grader.client.credentials import forget_credentials

    console.print("✓ logged out" if forget_credentials() else "not logged in")


def whoami(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Who grader thinks you are, and where it keeps your work."""
    from rich.text import Text

    from grader.cli.render import cell, console, emit_json

    c = client(ctx)
    actor = c.whoami()
    if as_json:
        emit_json({"name": actor.name, "instructor": actor.instructor, "mode": c.mode, "where": c.where})
        return
    console.print(cell(actor.name) + Text(f" ({'instructor' if actor.instructor else 'participant'}), {c.mode}: "
                                          f"{c.where}"))


def _show_tokens(issued: list[IssuedToken], output: Path | None) -> None:
    from rich.text import Text

    from grader.cli.render import cell, console, err_console

    if output is not None:
        import csv
        import os

        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "role", "token"])
            for t in issued:
                writer.writerow([t.name, t.role, t.token])
        console.print(f"[green]✓[/] {len(issued)} token(s) written to {output} (mode 0600): hand each participant "
                      "their own; they are not stored anywhere else")
        return
    for t in issued:
        console.print(cell(t.name) + Text(f" ({t.role}): ") + Text(t.token, style="bold"))
    err_console.print("[dim]tokens are shown once; the server keeps only their hashes[/]")


@accounts_app.command("add")
def accounts_add(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Login name (participant id).")],
                 instructor: Annotated[bool, typer.Option("--instructor", help="Give this account the instructor "
                                                          "role.")] = False,
                 display_name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
                 email: Annotated[str | None, typer.Option("--email", help="E-mail (for grade exports).")] = None)\
        -> None:
    """Create an account and print its token (once)."""
    _show_tokens([client(ctx).add_account(name, instructor=instructor, display_name=display_name, email=email)], None)


@accounts_app.command("import")
def accounts_import(ctx: typer.Context, roster: Annotated[Path, typer.Argument(help="CSV: id, display name, e-mail.")],
                    output: Annotated[Path, typer.Option("--output", "-o", help="Tokens CSV to hand out.")]
                    = Path("tokens.csv")) -> None:
    """Create an account per roster line (existing ones are kept) and write their tokens to a private CSV."""
    try:
        text = roster.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise GraderError(f"{roster}: cannot read the roster ({exc})") from None
    _show_tokens(client(ctx).import_roster(text), output)


@accounts_app.command("list")
def accounts_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False)\
        -> None:
    """Every account, its role and whether it is revoked."""
    from grader.cli.render import Col, cell, console, emit_json, fit

    rows = client(ctx).accounts()
    if as_json:
        emit_json(rows)
        return
    console.print(fit("Accounts", [Col("name", keep=True, wrap=True), Col("role", keep=True),
                                   Col("display name", priority=3, wrap=True), Col("e-mail", priority=2, wrap=True),
                                   Col("state", keep=True)],
                      [[cell(a.name), a.role, cell(a.display_name or ""), cell(a.email or ""),
                        "revoked" if a.revoked else "active"] for a in rows]))


@accounts_app.command("revoke")
def accounts_revoke(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Account.")]) -> None:
    """Revoke an account: its token stops working at once."""
    from rich.text import Text

    from grader.cli.render import cell, console

    client(ctx).revoke(name)
    console.print(Text("✓ revoked ", style="green") + cell(name))


@accounts_app.command("rotate")
def accounts_rotate(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Account.")]) -> None:
    """Issue a new token for an account (the old one stops working)."""
    _show_tokens([client(ctx).rotate(name)], None)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(login)
    app.command()(logout)
    app.command()(whoami)
