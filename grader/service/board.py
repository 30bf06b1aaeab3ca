"""Read-side use cases: leaderboard, status, history, show, grade export."""

from __future__ import annotations

import csv
import io
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import func, select

from grader.db.engine import session_scope
from grader.db.models import NotebookScore, Participant, Result, Submission
from grader.db.queries import BoardRow, best_per_participant, reference_rows
from grader.errors import GraderError, NotFoundError
from grader.service.context import Context
from grader.service.quota import QuotaStatus, quota_status
from grader.service.states import ACTIVE
from grader.service.sync import sync


class RankedRow(BaseModel):
    rank: int | None  # None for reference rows
    row: BoardRow
    accuracy: float | None
    delta_baseline: float | None
    delta_best_reference: float | None
    rank_change: int | None = None  # public rank minus private rank (private board only)


class Leaderboard(BaseModel):
    exercise: str
    profile: str
    board: str
    rows: list[RankedRow]
    baseline: float | None
    best_reference: float | None


def leaderboard(ctx: Context, *, exercise: str, profile: str | None = None, private: bool = False,
                do_sync: bool = True) -> Leaderboard:
    """Ranked best-per-participant, with baseline and references placed where they rank."""
    spec = ctx.catalog.get(exercise)
    profile = profile or ctx.settings.profile
    spec.profile(profile)
    if private and not ctx.is_instructor:
        raise GraderError("the private leaderboard is for instructors only")
    if do_sync:
        sync(ctx)
    board = "private" if private else "public"
    with session_scope(ctx.engine) as session:
        people = best_per_participant(session, exercise, profile, board)
        refs = reference_rows(session, exercise, profile, spec.seed, spec.spec_hash())
        public_rank = {}
        if private:
            by_public = sorted(best_per_participant(session, exercise, profile, "public"),
                               key=lambda r: -(r.public_accuracy or 0))
            public_rank = {r.participant: i for i, r in enumerate(by_public, start=1)}

    def acc(r: BoardRow) -> float | None:
        return r.private_accuracy if private else r.public_accuracy

    baseline = next((acc(r) for r in refs if r.reference_name == "baseline"), None)
    best = max((acc(r) for r in refs if acc(r) is not None), default=None)
    merged = sorted(people + refs, key=lambda r: (-(acc(r) or 0.0), r.reference_name is not None, r.submission_id))
    out, rank = [], 0
    for r in merged:
        a = acc(r)
        if r.reference_name is None:
            rank += 1
        out.append(RankedRow(
            rank=rank if r.reference_name is None else None, row=r, accuracy=a,
            delta_baseline=None if a is None or baseline is None else a - baseline,
            delta_best_reference=None if a is None or best is None else a - best,
            rank_change=(public_rank.get(r.participant, rank) - rank) if private and r.reference_name is None
            else None,
        ))
    return Leaderboard(exercise=exercise, profile=profile, board=board, rows=out, baseline=baseline,
                       best_reference=best)


class StatusRow(BaseModel):
    id: int
    participant: str
    exercise: str
    profile: str
    filename: str
    state: str
    reason: str | None
    message: str | None
    queue_position: int | None
    scheduler_reason: str | None
    score: float | None
    max_score: float | None
    public_accuracy: float | None
    cached_from: int | None
    created_at: datetime


class StatusView(BaseModel):
    rows: list[StatusRow]
    quotas: dict[str, QuotaStatus]
    warnings: list[str]


def status(ctx: Context, *, submission_id: int | None = None, student: str | None = None, limit: int = 20,
           everyone: bool = False) -> StatusView:
    report = sync(ctx)
    who = student or ctx.user
    with session_scope(ctx.engine) as session:
        query = (select(Submission, Participant.name, Result.score, Result.max_score, Result.public_accuracy)
                 .join(Participant).outerjoin(Result, Result.submission_id == Submission.id))
        if submission_id is not None:
            query = query.where(Submission.id == submission_id)
        elif not (everyone and ctx.is_instructor):
            query = query.where(Participant.name == who)
        rows = session.execute(query.order_by(Submission.id.desc()).limit(limit)).all()
        if submission_id is not None and not rows:
            raise NotFoundError(f"no submission with id {submission_id}")
        queued_ids = list(session.scalars(select(Submission.id).where(Submission.state == "queued")
                                          .order_by(Submission.id)))
        out = []
        for sub, name, score, max_score, pub in rows:
            pos = queued_ids.index(sub.id) + 1 if sub.id in queued_ids else None
            out.append(StatusRow(id=sub.id, participant=name, exercise=sub.exercise, profile=sub.profile,
                                 filename=sub.filename, state=sub.state, reason=sub.reason, message=sub.message,
                                 queue_position=pos, scheduler_reason=sub.scheduler_reason, score=score,
                                 max_score=max_score, public_accuracy=pub, cached_from=sub.cached_from,
                                 created_at=sub.created_at))
        exercises = sorted({r.exercise for r in out} or set(ctx.catalog.names()))
        quotas = {ex: quota_status(ctx, session, who, ex) for ex in exercises}
    return StatusView(rows=out, quotas=quotas, warnings=report.warnings)


class SubmissionDetail(BaseModel):
    status: StatusRow
    grade: dict | None
    metrics: dict | None
    job_result: dict | None
    run_dir: str | None


def show(ctx: Context, submission_id: int) -> SubmissionDetail:
    view = status(ctx, submission_id=submission_id, limit=1)
    row = view.rows[0]
    if row.participant != ctx.user and not ctx.is_instructor:
        raise GraderError(f"submission {submission_id} belongs to someone else")
    with session_scope(ctx.engine) as session:
        sub = session.get_one(Submission, submission_id)
        res = session.get(Result, submission_id)
        return SubmissionDetail(status=row, grade=res.grade if res else None, metrics=res.metrics if res else None,
                                job_result=res.job_result if res else None, run_dir=sub.run_dir)


def history(ctx: Context, *, student: str | None = None, exercise: str | None = None, limit: int = 100) -> list[StatusRow]:
    if student and student != ctx.user and not ctx.is_instructor:
        raise GraderError("only instructors may see another participant's history")
    view = status(ctx, student=student, limit=limit, everyone=student is None and ctx.is_instructor)
    return [r for r in view.rows if exercise is None or r.exercise == exercise]


def export_grades(ctx: Context, *, exercise: str, profile: str | None = None) -> str:
    """CSV: one row per participant (best submission by score), a column per rubric criterion."""
    if not ctx.is_instructor:
        raise GraderError("exporting grades is for instructors only")
    profile = profile or ctx.settings.profile
    rubric = ctx.catalog.rubric(exercise)
    sync(ctx)
    with session_scope(ctx.engine) as session:
        rows = session.execute(
            select(Participant.name, Submission.id, Result.score, Result.max_score, Result.public_accuracy,
                   Result.private_accuracy, Result.grade)
            .join(Submission, Submission.participant_id == Participant.id)
            .join(Result, Result.submission_id == Submission.id)
            .where(Submission.exercise == exercise, Submission.profile == profile,
                   Submission.reference_name.is_(None), Result.score.is_not(None))
            .order_by(Participant.name, Result.score.desc(), Submission.id)
        ).all()
        counts = dict(session.execute(
            select(Participant.name, func.count()).join(Submission, Submission.participant_id == Participant.id)
            .where(Submission.exercise == exercise, Submission.reference_name.is_(None))
            .group_by(Participant.name)).all())
        notebooks = session.execute(select(NotebookScore.participant, func.sum(NotebookScore.score),
                                           func.sum(NotebookScore.max_score))
                                    .group_by(NotebookScore.participant)).all()
    nb = {p: (s, m) for p, s, m in notebooks}
    buf = io.StringIO()
    writer = csv.writer(buf)
    ids = [c.id for c in rubric.criteria]
    writer.writerow(["participant", "submission_id", "score", "max_score", *ids, "public_accuracy",
                     "private_accuracy", "submissions", "notebook_score", "notebook_max"])
    seen: set[str] = set()
    for name, sid, score, max_score, pub, priv, grade in rows:
        if name in seen:
            continue
        seen.add(name)
        per = {c["id"]: c["points"] for c in (grade or {}).get("criteria", [])}
        nb_score, nb_max = nb.get(name, (None, None))
        writer.writerow([name, sid, score, max_score, *[per.get(i, 0) for i in ids], _fmt(pub), _fmt(priv),
                         counts.get(name, 0), nb_score if nb_score is not None else "",
                         nb_max if nb_max is not None else ""])
    for name in sorted(set(nb) - seen):  # notebook-only participants still belong in the gradebook
        nb_score, nb_max = nb[name]
        writer.writerow([name, "", "", "", *["" for _ in ids], "", "", counts.get(name, 0), nb_score, nb_max])
    return buf.getvalue()


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.4f}"


def cancel(ctx: Context, submission_id: int) -> str:
    from grader.backends.base import JobHandle

    with session_scope(ctx.engine) as session:
        sub = session.get(Submission, submission_id)
        if sub is None:
            raise NotFoundError(f"no submission with id {submission_id}")
        owner = session.get_one(Participant, sub.participant_id).name
        if owner != ctx.user and not ctx.is_instructor:
            raise GraderError(f"submission {submission_id} belongs to someone else")
        if sub.state not in ACTIVE:
            return f"submission {submission_id} is already {sub.state}"
        handle = JobHandle(backend=sub.backend, job_id=sub.job_id or "", run_dir=sub.run_dir or "")
    ctx.backend(handle.backend).cancel(handle)
    sync(ctx, ids=[submission_id])
    return f"cancellation requested for submission {submission_id}"
