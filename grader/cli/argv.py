"""Which command a command line asks for, read without Typer (the launcher decides with it before any import)."""

from __future__ import annotations

# The root's options that take a value: skipped (with their value) to find the command asked for.
VALUE_OPTIONS = ("--home", "--db-url", "--backend", "--course-dir", "--server")


def requested(argv: list[str]) -> str | None:
    """The command or group `argv` asks for (after the root's options), or None: help, --version, completion,
    anything unexpected; those get the whole app, so that usage errors read exactly as before."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in VALUE_OPTIONS:
            i += 2
        elif arg.startswith(tuple(f"{o}=" for o in VALUE_OPTIONS)):
            i += 1
        elif arg.startswith("-"):
            return None  # -h, --help, --version, --install-completion, --, a typo: the whole app answers
        else:
            return arg
    return None
