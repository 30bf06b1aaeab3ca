"""The `grader` console script: read commands go to a warm command server when one is listening, everything
else (and everything when none is) runs in this process. Standard library only until it runs the CLI here,
and a command that is not served imports nothing more than the argument check below."""

from __future__ import annotations

import os
import sys

# Commands that only read and print: no prompt, no training, no terminal of their own, done in milliseconds.
SERVED = frozenset({"status", "show", "history", "leaderboard", "exercises"})
SERVED_ROOT: tuple[list[str], ...] = ([], ["--help"], ["-h"], ["--version"])
OFF = ("0", "off", "false", "no")


def server_wanted() -> bool:
    """Linux (descriptors passed over a Unix socket, SO_PEERCRED), and GRADER_COMMAND_SERVER not off."""
    return sys.platform.startswith("linux") and os.environ.get("GRADER_COMMAND_SERVER", "").strip().lower() not in OFF


def served(argv: list[str]) -> bool:
    """Whether `grader ARGV` may go to the command server."""
    from grader.cli.argv import requested

    if "_GRADER_COMPLETE" in os.environ or not server_wanted():
        return False
    name = requested(argv)
    return name in SERVED if name is not None else argv in SERVED_ROOT


def main() -> None:
    argv = sys.argv[1:]
    if served(argv):
        from grader.cli.command_client import run

        try:
            code = run(argv)
        except KeyboardInterrupt:  # before the command started: nothing ran, nothing to undo
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        if code is not None:
            sys.exit(code)
    from grader.cli.app import main as run_here

    run_here()
