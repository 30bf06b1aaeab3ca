"""Grade export for a gradebook: one row per participant of one exercise, as CSV or JSON. Instructors only."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from grader.db.engine import session_scope
from grader.db.models import Account, NotebookScore, Participant, Result, Submission
from grader.errors import GraderError
from grader.service.access import Actor, require_instructor
from grader.service.context import Context
from grader.text import csv_cell

FORMATS = ("csv", "json")


class GradeRow(BaseModel):
    participant_id: str = Field(description="The participant's login or account name.")
    display_name: str | None = None
    email: str | None = None
    assignment: str = Field(description="The exercise (nbgrader assignment of the same name for notebooks).")
    submission_id: int | None = None
    score: float | None = None
    max_score: float | None = None
    criteria: dict[str, float] = Field(default_factory=dict, description="Points per rubric criterion id.")
    public_accuracy: float | None = None
    private_accuracy: float | None = None
    submissions: int = 0
    submitted_at: datetime | None = None
    notebook_score: float | None = None
    notebook_max_score: float | None = None


class GradeExport(BaseModel):
    exercise: str
    profile: str
    criteria: list[str]
    rows: list[GradeRow]


def export_grades(ctx: Context, actor: Actor, *, exercise: str, profile: str | None = None) -> GradeExport:
    """Each participant's best graded submission (by score) of this exercise, and their notebook score for it."""
    require_instructor(actor, "exporting grades")
    profile = profile or ctx.settings.profile
    ctx.catalog.get(exercise).profile(profile)
    rubric = ctx.catalog.rubric(exercise)
    ids = [c.id for c in rubric.criteria]
    with session_scope(ctx.reader) as session:
        rows = session.execute(
            select(Participant.name, Submission.id, Submission.created_at, Result.score, Result.max_score,
                   Result.public_accuracy, Result.private_accuracy, Result.grade)
            .join(Submission, Submission.participant_id == Participant.id)
            .join(Result, Result.submission_id == Submission.id)
            .where(Submission.exercise == exercise, Submission.profile == profile, Submission.parent_id.is_(None),
                   Submission.reference_name.is_(None), Result.score.is_not(None))
            .order_by(Participant.name, Result.score.desc(), Submission.id)
        ).all()
        counts = dict(session.execute(
            select(Participant.name, func.count()).join(Submission, Submission.participant_id == Participant.id)
            .where(Submission.exercise == exercise, Submission.reference_name.is_(None),
                   Submission.parent_id.is_(None))
            .group_by(Participant.name)).all())
        notebooks = {p: (s, m) for p, s, m in session.execute(
            select(NotebookScore.participant, func.sum(NotebookScore.score), func.sum(NotebookScore.max_score))
            .where(NotebookScore.assignment == exercise).group_by(NotebookScore.participant)).all()}
        accounts = {a.name: a for a in session.scalars(select(Account))}
    out: dict[str, GradeRow] = {}
    for name, sid, created, score, max_score, pub, priv, grade in rows:
        if name in out:
            continue
        per = {c["id"]: c["points"] for c in (grade or {}).get("criteria", [])}
        out[name] = GradeRow(participant_id=name, assignment=exercise, submission_id=sid, score=score,
                             max_score=max_score, criteria={i: per.get(i, 0.0) for i in ids}, public_accuracy=pub,
                             private_accuracy=priv, submissions=counts.get(name, 0), submitted_at=created)
    for name, (nb_score, nb_max) in notebooks.items():  # notebook-only participants still belong in the gradebook
        row = out.setdefault(name, GradeRow(participant_id=name, assignment=exercise,
                                            submissions=counts.get(name, 0)))
        row.notebook_score, row.notebook_max_score = nb_score, nb_max
    for name, row in out.items():
        account = accounts.get(name)
        if account is not None:
            row.display_name, row.email = account.display_name, account.email
    return GradeExport(exercise=exercise, profile=profile, criteria=ids, rows=sorted(out.values(),
                                                                                   key=lambda r: r.participant_id))


def render(export: GradeExport, fmt: str) -> str:
    """CSV (cells that a spreadsheet would run as formulas are quoted inert) or JSON."""
    if fmt == "json":
        return json.dumps(export.model_dump(mode="json"), indent=2) + "\n"
    if fmt != "csv":
        raise GraderError(f"unknown format {fmt!r}; available: {', '.join(FORMATS)}")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["participant_id", "display_name", "email", "assignment", "submission_id", "score", "max_score",
                     *export.criteria, "public_accuracy", "private_accuracy", "submissions", "submitted_at",
                     "notebook_score", "notebook_max_score"])
    for r in export.rows:
        writer.writerow([csv_cell(v) for v in (
            r.participant_id, r.display_name or "", r.email or "", r.assignment, _blank(r.submission_id),
            _blank(r.score), _blank(r.max_score), *[_blank(r.criteria.get(c)) for c in export.criteria],
            _fmt(r.public_accuracy), _fmt(r.private_accuracy), r.submissions,
            r.submitted_at.isoformat() if r.submitted_at else "", _blank(r.notebook_score),
            _blank(r.notebook_max_score))])
    return buf.getvalue()


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.4f}"


def _blank(v: object) -> object:
    return "" if v is None else v
