"""Read nbgrader's gradebook and store its notebook scores beside grader's own results."""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field
from sqlalchemy import select

from grader.db.engine import session_scope
from grader.db.models import NotebookScore as NotebookScoreRow
from grader.errors import GraderError, NotFoundError
from grader.service.access import Actor, require_instructor
from grader.service.context import Context
from grader.settings import Settings


class NotebookScore(BaseModel):
    """One notebook's total from nbgrader's gradebook, ready to store beside grader's own results."""

    student: str = Field(description="nbgrader student id.")
    assignment: str = Field(description="nbgrader assignment name (the folder under source/).")
    notebook: str = Field(description="Notebook name without .ipynb.")
    score: float = Field(description="Points nbgrader awarded (auto and manual grades).")
    max_score: float = Field(description="Points available in this notebook.")
    timestamp: datetime | None = Field(description="Submission time (UTC) from nbgrader's timestamp.txt, if any.")


def import_gradebook(gradebook_path: Path, *, settings: Settings) -> list[NotebookScore]:
    """Read every submitted notebook's score from nbgrader's gradebook.db.

    The gradebook is read from a consistent snapshot (SQLite's backup API), because nbgrader's
    `Gradebook` creates tables and rows when it opens a database and an autograde may be writing
    at the same moment: the instructor's file is never modified or locked for long.

    Args:
        settings: the caller's settings; snapshots are taken under its home folder.

    Raises:
        NotFoundError: no gradebook at that path.
        GraderError: nbgrader is not installed, or the file is not an nbgrader gradebook.
    """
    path = Path(gradebook_path).expanduser().resolve()
    if not path.is_file():
        raise NotFoundError(f"{path}: no nbgrader gradebook here",
                            hint="`nbgrader autograde` writes gradebook.db in the course folder")
    try:
        from nbgrader.api import Gradebook
    except ImportError:
        raise GraderError("nbgrader is not installed", hint="pip install 'grader[notebook]'") from None
    home = settings.home.expanduser()
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home, prefix=".gradebook-") as tmp:
        snapshot = Path(tmp) / "gradebook.db"
        try:
            with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as src, \
                    contextlib.closing(sqlite3.connect(snapshot)) as dst:
                src.backup(dst)
        except sqlite3.DatabaseError as exc:
            raise GraderError(f"{path}: not a readable SQLite database ({exc})") from None
        rows: list[NotebookScore] = []
        try:
            with Gradebook(f"sqlite:///{snapshot}", course_id="") as gb:
                for assignment in gb.assignments:
                    for submission in gb.assignment_submissions(assignment.name):
                        stamp = submission.timestamp
                        if stamp is not None and stamp.tzinfo is None:
                            stamp = stamp.replace(tzinfo=UTC)  # nbgrader stores naive UTC
                        rows.extend(NotebookScore(student=submission.student.id, assignment=assignment.name,
                                                  notebook=nb.name, score=float(nb.score),
                                                  max_score=float(nb.max_score), timestamp=stamp)
                                    for nb in submission.notebooks)
        except Exception as exc:  # SQLAlchemy errors: a SQLite file that is not a gradebook
            raise GraderError(f"{path}: cannot read it as an nbgrader gradebook ({type(exc).__name__}: {exc})") from None
    return sorted(rows, key=lambda r: (r.assignment, r.student, r.notebook))


def import_notebook_scores(ctx: Context, actor: Actor, gradebook: Path) -> int:
    """Upsert one row per (participant, assignment, notebook); nbgrader keeps no history itself."""
    require_instructor(actor, "importing notebook scores")
    if not gradebook.exists():
        raise GraderError(f"{gradebook}: no such gradebook (run this in the nbgrader course folder)")
    rows = import_gradebook(gradebook, settings=ctx.settings)
    now = datetime.now(UTC)
    with session_scope(ctx.engine) as session:
        for r in rows:
            existing = session.scalar(select(NotebookScoreRow).where(
                NotebookScoreRow.participant == r.student, NotebookScoreRow.assignment == r.assignment,
                NotebookScoreRow.notebook == r.notebook))
            if existing is None:
                existing = NotebookScoreRow(participant=r.student, assignment=r.assignment, notebook=r.notebook,
                                         score=r.score, max_score=r.max_score, imported_at=now)
                session.add(existing)
            existing.score, existing.max_score, existing.imported_at = r.score, r.max_score, now
            existing.submitted_at = r.timestamp
    return len(rows)
