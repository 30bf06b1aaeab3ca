"""Every CLI command describes itself: help text on each command, group and option, and a docs entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from grader.cli.app import app

REPO = Path(__file__).resolve().parents[1]


def _walk(cmd: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    """(path, command) for the root, every group and every leaf command, depth first."""
    out = [(path, cmd)]
    for name in sorted(getattr(cmd, "commands", {})):  # a group (Typer vendors its own click: duck-type)
        out += _walk(cmd.commands[name], (*path, name))
    return out


COMMANDS = _walk(typer.main.get_command(app), ("grader",))
LEAVES = [(path, cmd) for path, cmd in COMMANDS if not hasattr(cmd, "commands")]


def _id(item: tuple[tuple[str, ...], Any]) -> str:
    return " ".join(item[0])


def test_the_walk_finds_the_command_tree() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    for expected in ("grader submit", "grader status", "grader leaderboard", "grader regrade", "grader export grades",
                     "grader quota set", "grader references compute", "grader cancel", "grader show"):
        assert expected in names


@pytest.mark.parametrize("item", COMMANDS, ids=_id)
def test_every_command_and_group_has_help(item: tuple[tuple[str, ...], Any]) -> None:
    path, cmd = item
    text = (cmd.help or cmd.short_help or "").strip()
    assert text, f"`{' '.join(path)}` has no help text: give its function a docstring (or help= for a group)"
    assert not text.endswith("..."), f"`{' '.join(path)}`: help text looks truncated: {text!r}"


@pytest.mark.parametrize("item", COMMANDS, ids=_id)
def test_every_option_and_argument_has_help(item: tuple[tuple[str, ...], Any]) -> None:
    path, cmd = item
    missing = [p.name for p in cmd.params if p.name != "help" and not (getattr(p, "help", None) or "").strip()]
    assert not missing, f"`{' '.join(path)}`: parameters without help: {missing}"


@pytest.mark.parametrize("item", COMMANDS, ids=_id)
def test_help_renders(item: tuple[tuple[str, ...], Any]) -> None:
    path, cmd = item
    result = CliRunner().invoke(app, [*path[1:], "--help"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    first_line = (cmd.help or "").strip().splitlines()[0]
    assert " ".join(first_line.split()[:3]) in " ".join(result.output.split())


@pytest.mark.parametrize("item", LEAVES, ids=_id)
def test_every_command_is_in_the_cli_reference(item: tuple[tuple[str, ...], Any]) -> None:
    path, _ = item
    reference = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert f"## `{' '.join(path)}`" in reference, (
        f"`{' '.join(path)}` is missing from docs/cli.md: regenerate it with `python tools/gen_docs.py`"
    )
