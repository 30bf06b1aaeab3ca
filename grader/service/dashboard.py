"""The class picture and queue health: accuracy against size for every best submission; how the queue is doing."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from grader.db.engine import session_scope
from grader.db.models import Submission
from grader.service.access import Actor, require_instructor
from grader.service.board import leaderboard
from grader.service.context import Context
from grader.service.states import State


class ClassView(BaseModel):
    exercise: str
    profile: str
    points: list[tuple[str, int | None, float | None, bool]] = Field(
        description="(label, parameters, public accuracy, is a reference) of each best submission.")
    scores: list[float] | None = Field(default=None, description="Instructors: every participant's best score.")
    max_score: float | None = None


class QueueView(BaseModel):
    queued: int
    running: int
    failed_by_reason: dict[str, int]
    median_wait_seconds: float | None
    oldest_queued_seconds: float | None


def class_view(ctx: Context, actor: Actor, *, exercise: str, profile: str | None = None) -> ClassView:
    """Participants see the points without names (only references are labelled); instructors also the scores."""
    board = leaderboard(ctx, actor, exercise=exercise, profile=profile)
    points = [(r.row.reference_name or "", r.row.params, r.accuracy, r.row.reference_name is not None)
              for r in board.rows]
    scores = None
    max_score = None
    if actor.instructor:
        scores = [r.row.score for r in board.rows if r.row.reference_name is None and r.row.score is not None]
        max_score = next((r.row.max_score for r in board.rows if r.row.max_score), None)
    return ClassView(exercise=exercise, profile=board.profile, points=points, scores=scores, max_score=max_score)


def queue_health(ctx: Context, actor: Actor, *, recent: int = 200) -> QueueView:
    require_instructor(actor, "queue health")
    now = datetime.now(UTC)
    with session_scope(ctx.reader) as session:
        counts = dict(session.execute(select(Submission.state, func.count()).where(Submission.job_id.is_not(None))
                                      .group_by(Submission.state)).all())
        failed = dict(session.execute(select(Submission.reason, func.count())
                                      .where(Submission.state == State.FAILED.value, Submission.job_id.is_not(None))
                                      .group_by(Submission.reason)).all())
        started = session.execute(select(Submission.created_at, Submission.started_at)
                                  .where(Submission.started_at.is_not(None), Submission.job_id.is_not(None))
                                  .order_by(Submission.id.desc()).limit(recent)).all()
        oldest = session.scalar(select(func.min(Submission.created_at)).where(Submission.state == State.QUEUED.value,
                                                                              Submission.job_id.is_not(None)))
    waits = [(_utc(s) - _utc(c)).total_seconds() for c, s in started if s is not None]
    return QueueView(queued=counts.get(State.QUEUED.value, 0), running=counts.get(State.RUNNING.value, 0),
                     failed_by_reason={str(k or "unknown"): v for k, v in failed.items()},
                     median_wait_seconds=statistics.median(waits) if waits else None,
                     oldest_queued_seconds=(now - _utc(oldest)).total_seconds() if oldest else None)


def _utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
