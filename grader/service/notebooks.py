"""Store nbgrader notebook scores (imported from its gradebook) beside grader's own results."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from grader.db.engine import session_scope
from grader.db.models import NotebookScore
from grader.errors import GraderError
from grader.service.context import Context


def import_notebook_scores(ctx: Context, gradebook: Path) -> int:
    """Upsert one row per (participant, assignment, notebook); nbgrader keeps no history itself."""
    if not gradebook.exists():
        raise GraderError(f"{gradebook}: no such gradebook (run this in the nbgrader course folder)")
    from grader.notebook import import_gradebook

    rows = import_gradebook(gradebook, settings=ctx.settings)
    now = datetime.now(UTC)
    with session_scope(ctx.engine) as session:
        for r in rows:
            existing = session.scalar(select(NotebookScore).where(
                NotebookScore.participant == r.student, NotebookScore.assignment == r.assignment,
                NotebookScore.notebook == r.notebook))
            if existing is None:
                existing = NotebookScore(participant=r.student, assignment=r.assignment, notebook=r.notebook,
                                         score=r.score, max_score=r.max_score, imported_at=now)
                session.add(existing)
            existing.score, existing.max_score, existing.imported_at = r.score, r.max_score, now
            existing.submitted_at = r.timestamp
    return len(rows)
