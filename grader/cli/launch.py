"""The `grader` console script: read commands go to a warm command server when one is listening, everything
else (and everything when none is) runs in this process. Standard library only until it runs the CLI here."""

from __future__ import annotations

import os
import sys

# Commands that only read and print: no prompt, no training, no terminal of their own, done in milliseconds.
SERVED = frozenset({"status", "show", "history", "leaderboard", "exercises"})
SERVED_ROOT: tuple[list[str], ...] = ([], ["--help"], ["-h"], ["--version"])


def served(argv: list[str]) -> bool:
    from grader.cli.argv import requested

    if "_GRADER_COMPLETE" in os.environ:
        return False
    name = requested(argv)
    return name in SERVED if name is not None else argv in SERVED_ROOT


def main() -> None:
    argv = sys.argv[1:]
    from grader.cli.command_client import enabled, run

    if enabled(os.environ) and served(argv):
        try:
            code = run(argv)
        except KeyboardInterrupt:  # before the command started: nothing ran, nothing to undo
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        if code is not None:
            sys.exit(code)
    from grader.cli.app import main as run_here

    run_here()
