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


def served(argv: list[str]) -> bool:
    """Whether `grader ARGV` may go to the command server (Linux only, GRADER_COMMAND_SERVER not off)."""
    from grader.cli.argv import requested

    if "_GRADER_COMPLETE" in os.environ or not sys.platform.startswith("linux"):
        return False
    if os.environ.get("GRADER_COMMAND_SERVER", "").strip().lower() in OFF:
        return False
    name = requested(argv)
    return name in SERVED if name is not None else argv in SERVED_ROOT


def describe_command_server() -> str:
    """One line for `grader doctor`: whether read commands here go to a command server, and where it listens."""
    import socket

    from grader.cli.command_client import runtime_dir, socket_path

    if not served(["status"]):
        return "off (GRADER_COMMAND_SERVER)" if sys.platform.startswith("linux") else "not used (Linux only)"
    if runtime_dir() is None:
        return "not used: the runtime folder ($XDG_RUNTIME_DIR or /tmp)/grader-UID is not private to this user"
    path = socket_path()
    if path is None:
        return "not used: the runtime folder's path is too long for a socket"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError:
            return f"not running (the next read command starts one at {path})"
    return f"listening at {path} (GRADER_COMMAND_SERVER=0 turns it off)"


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
