"""One participant's submissions: status, detail, history, cancel, and a live event stream. Reads only read."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select

from grader.backends.base import JobHandle
from grader.db.engine import session_scope
from grader.db.models import Participant, Result, Submission
from grader.errors import NotFoundError
from grader.grading import Score
from grader.results import FailureReason, JobResult
from grader.rundir import RunDir
from grader.scoring import Metrics
from grader.service.access import Actor, require_instructor, require_visible
from grader.service.board import private_visible
from grader.service.context import Context
from grader.service.ingest import Facts
from grader.service.quota import QuotaStatus, quota_status
from grader.service.runs import read_events
from grader.service.states import ACTIVE, State


class StatusRow(BaseModel):
    id: int
    participant: str
    exercise: str
    profile: str
    filename: str
    state: State
    reason: FailureReason | None
    message: str | None
    queue_position: int | None
    scheduler_reason: str | None
    score: float | None
    max_score: float | None
    public_accuracy: float | None
    public_std: float | None = None
    seeds: list[int] | None = None
    cached_from: int | None
    created_at: datetime
    finished_at: datetime | None = None


class StatusView(BaseModel):
    rows: list[StatusRow]
    quotas: dict[str, QuotaStatus]


class SeedRun(BaseModel):
    id: int
    seed: int
    state: State
    public_accuracy: float | None


class SubmissionDetail(BaseModel):
    status: StatusRow
    grade: Score | None = None
    metrics: Metrics | None = Field(default=None, description="Public-half figures unless the viewer may see more.")
    result: JobResult | None = Field(default=None, description="What the job reported (claims).")
    facts: Facts | None = Field(default=None, description="What grader measured itself.")
    notes: list[str] = Field(default_factory=list)
    spec_changed: bool = Field(default=False, description="The exercise file changed since this was graded.")
    seed_runs: list[SeedRun] = Field(default_factory=list)
    run_dir: str | None = Field(default=None, description="Instructors only.")


def _row_query() -> Any:
    return (select(Submission, Participant.name, Result.score, Result.max_score, Result.public_accuracy,
                   Result.public_std)
            .join(Participant, Participant.id == Submission.participant_id)
            .outerjoin(Result, Result.submission_id == Submission.id))


def _rows(session: Any, query: Any) -> list[StatusRow]:
    rows = session.execute(query).all()
    queued_ids = list(session.scalars(select(Submission.id).where(Submission.state == State.QUEUED.value,
                                                                  Submission.job_id.is_not(None))
                                      .order_by(Submission.id).limit(10_000)))
    position = {sid: i for i, sid in enumerate(queued_ids, start=1)}
    return [StatusRow(id=sub.id, participant=name, exercise=sub.exercise, profile=sub.profile,
                      filename=sub.filename, state=State(sub.state),
                      reason=FailureReason(sub.reason) if sub.reason in FailureReason._value2member_map_ else None,
                      message=sub.message, queue_position=position.get(sub.id), scheduler_reason=sub.scheduler_reason,
                      score=score, max_score=max_score, public_accuracy=pub, public_std=std, seeds=sub.seeds,
                      cached_from=sub.cached_from, created_at=sub.created_at, finished_at=sub.finished_at)
            for sub, name, score, max_score, pub, std in rows]


def status(ctx: Context, actor: Actor, *, submission_id: int | None = None, student: str | None = None,
           limit: int = 20, everyone: bool = False, exercise: str | None = None) -> StatusView:
    who = student or actor.name
    if who != actor.name or everyone:
        require_instructor(actor, "seeing other participants' submissions")
    if exercise is not None:
        ctx.catalog.get(exercise)
    with session_scope(ctx.reader) as session:
        query = _row_query().where(Submission.parent_id.is_(None))
        if submission_id is not None:
            query = _row_query().where(Submission.id == submission_id)
        elif not everyone:
            query = query.where(Participant.name == who, Submission.reference_name.is_(None))
        if exercise is not None:
            query = query.where(Submission.exercise == exercise)
        out = _rows(session, query.order_by(Submission.id.desc()).limit(limit))
        if submission_id is not None:
            if not out:
                raise NotFoundError(f"no submission with id {submission_id}")
            require_visible(actor, out[0].participant, f"submission with id {submission_id}")
        exercises = sorted({r.exercise for r in out} or set(ctx.catalog.names()))
        quotas = {ex: quota_status(ctx, session, who, ex, exempt=who == actor.name and actor.instructor)
                  for ex in exercises}
    return StatusView(rows=out, quotas=quotas)


def show(ctx: Context, actor: Actor, submission_id: int) -> SubmissionDetail:
    row = status(ctx, actor, submission_id=submission_id, limit=1).rows[0]
    with session_scope(ctx.reader) as session:
        sub = session.get_one(Submission, submission_id)
        res = session.get(Result, submission_id)
        seed_runs = [SeedRun(id=s.id, seed=s.seed, state=State(s.state), public_accuracy=acc) for s, acc in
                     session.execute(select(Submission, Result.public_accuracy)
                                     .outerjoin(Result, Result.submission_id == Submission.id)
                                     .where(Submission.parent_id == submission_id).order_by(Submission.seed)).all()]
        current = ctx.catalog.get(sub.exercise).spec_hash() if sub.exercise in ctx.catalog.names() else None
        detail = SubmissionDetail(status=row, spec_changed=current is not None and current != sub.spec_hash,
                                  seed_runs=seed_runs, run_dir=sub.run_dir if actor.instructor else None)
        if res is not None:
            metrics = Metrics.model_validate(res.metrics) if res.metrics else None
            if metrics is not None and not private_visible(ctx, actor, sub.exercise):
                metrics = metrics.for_participant()
            detail.grade = Score.model_validate(res.grade) if res.grade else None
            detail.metrics = metrics
            result = JobResult.model_validate(res.job_result)
            detail.result = result if actor.instructor else result.model_copy(update={"detail": None})
            detail.facts = Facts.model_validate(res.facts) if res.facts else None
            detail.notes = list(res.notes or [])
    return detail


def history(ctx: Context, actor: Actor, *, student: str | None = None, exercise: str | None = None,
            limit: int = 200) -> list[StatusRow]:
    """Every submission of a participant (default: you); instructors without --student see everyone's."""
    everyone = student is None and actor.instructor
    return status(ctx, actor, student=student, limit=limit, everyone=everyone, exercise=exercise).rows


class CancelResult(BaseModel):
    submission_id: int
    state: State
    message: str
    requested: bool


def cancel(ctx: Context, actor: Actor, submission_id: int) -> CancelResult:
    """Ask the backend to stop a queued or running job; the reconciler records the cancelled state."""
    with session_scope(ctx.reader) as session:
        sub = session.get(Submission, submission_id)
        if sub is None:
            raise NotFoundError(f"no submission with id {submission_id}")
        owner = session.get_one(Participant, sub.participant_id).name
        require_visible(actor, owner, f"submission with id {submission_id}")
        if sub.state not in ACTIVE:
            return CancelResult(submission_id=submission_id, state=State(sub.state), requested=False,
                                message=f"submission {submission_id} is already {sub.state}")
        targets = [sub] if not sub.seeds else list(session.scalars(
            select(Submission).where(Submission.parent_id == submission_id, Submission.state.in_(ACTIVE))))
        handles = [JobHandle(backend=t.backend, job_id=t.job_id or "", run_dir=t.run_dir or "") for t in targets
                   if t.job_id]
    for handle in handles:
        ctx.backend(handle.backend).cancel(handle)
    return CancelResult(submission_id=submission_id, state=State(sub.state), requested=True,
                        message=f"cancellation requested for submission {submission_id}")


def follow(ctx: Context, actor: Actor, submission_id: int, *, poll: float = 0.3,
           timeout: float | None = None) -> Iterator[dict[str, Any]]:
    """Live events of one submission until it ends: its state changes and its job's progress lines.

    Reads only: something else (the worker, the server's loop) moves the submission forward.
    """
    status(ctx, actor, submission_id=submission_id, limit=1)  # existence and visibility
    offsets: dict[str, int] = {}
    last: tuple[Any, ...] | None = None
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        row = status(ctx, actor, submission_id=submission_id, limit=1).rows[0]
        key = (row.state, row.queue_position, row.scheduler_reason)
        if key != last:
            last = key
            yield {"event": "state", "state": row.state.value, "queue_position": row.queue_position,
                   "detail": row.scheduler_reason}
        for run in _run_dirs(ctx, submission_id):
            events, offsets[str(run.path)] = read_events(run, offsets.get(str(run.path), 0))
            yield from events
        if not row.state.active:
            yield {"event": "finished", "state": row.state.value, "id": submission_id}
            return
        if deadline is not None and time.monotonic() > deadline:
            return
        time.sleep(poll)


def _run_dirs(ctx: Context, submission_id: int) -> list[RunDir]:
    with session_scope(ctx.reader) as session:
        sub = session.get_one(Submission, submission_id)
        if not sub.seeds:
            return [RunDir(Path(sub.run_dir))] if sub.run_dir and not sub.cached_from else []
        dirs = session.scalars(select(Submission.run_dir).where(Submission.parent_id == submission_id,
                                                                Submission.cached_from.is_(None),
                                                                Submission.run_dir.is_not(None))
                               .order_by(Submission.seed))
        return [RunDir(Path(d)) for d in dirs if d]
