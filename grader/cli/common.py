"""Shared CLI plumbing: settings from global options (with readable errors), and the client to talk to."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from grader.errors import GraderError

if TYPE_CHECKING:
    from grader.client.base import Client
    from grader.settings import Settings


class ConfigError(GraderError):
    """A setting in the environment or the config file has the wrong form."""

    exit_code = 2


def settings_error(exc: Exception) -> ConfigError:
    """Name the variable or the file and line, and say what form is expected."""
    import tomllib

    from pydantic import ValidationError

    from grader.settings import config_file

    if isinstance(exc, tomllib.TOMLDecodeError):
        return ConfigError(f"{config_file()}: not valid TOML ({exc})", hint="fix that line, or point GRADER_CONFIG "
                           "at another file")
    if isinstance(exc, ValidationError):
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "(settings)"
            lines.append(f"{field} (GRADER_{field.upper()} or `{field} = ...` in {config_file()}): {err['msg']}")
        return ConfigError("invalid setting: " + "; ".join(lines[:5]))
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, Exception) and cause is not exc:
        return settings_error(cause)  # a parse error wrapped in another exception: report the parse error
    return ConfigError(f"invalid setting: {exc}", hint="see docs/configuration.md for each setting's form")


def settings(ctx: typer.Context) -> Settings:
    root = ctx.find_root()
    cached = root.meta.get("grader.settings")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    from grader.settings import Settings

    overrides: dict[str, Any] = dict(root.obj or {})
    try:
        result = Settings(**overrides)
    except Exception as exc:  # ValidationError, TOMLDecodeError, OSError: all configuration mistakes
        raise settings_error(exc) from None
    root.meta["grader.settings"] = result
    return result


def client(ctx: typer.Context) -> Client:
    root = ctx.find_root()
    cached: Client | None = root.meta.get("grader.client")
    if cached is None:
        from grader.client import open_client

        cached = root.meta["grader.client"] = open_client(settings(ctx))
    return cached


def embedded_only(c: Client, what: str) -> None:
    if c.mode != "embedded":
        raise GraderError(f"{what} runs where the grader's state is, not through a server",
                          hint="run it on the server's machine as the server's account (without GRADER_SERVER)")
