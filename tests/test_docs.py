"""Docs stay true: generated references are fresh, and every relative Markdown link resolves."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\[[^\]]*\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_generated_docs_are_fresh() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "gen_docs.py"), "--check"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("doc", sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")]), ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path) -> None:
    broken = [target for target in LINK.findall(doc.read_text(encoding="utf-8"))
              if not target.startswith(("http://", "https://", "mailto:")) and not (doc.parent / target).exists()]
    assert not broken, f"{doc.name} links to missing files: {broken}"


def test_readme_quick_start_commands_exist() -> None:
    """The quick start names real files and commands."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert "grader submit reference_solutions/fashion_mnist/baseline.py --exercise fashion_mnist --wait" in text
    assert (REPO / "reference_solutions" / "fashion_mnist" / "baseline.py").exists()
    assert "pytest" in (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_architecture_names_every_service_and_backend_module() -> None:
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    modules = [p for p in (REPO / "grader" / "service").glob("*.py") if p.stem != "__init__"]
    modules += [p for p in (REPO / "grader" / "backends").rglob("*.py") if p.stem != "__init__"]
    missing = [str(p.relative_to(REPO / "grader")) for p in modules
               if f"`{p.name}`" not in text and f"`{p.parent.name}/{p.name}`" not in text]
    assert not missing, f"docs/architecture.md does not describe: {missing}"
