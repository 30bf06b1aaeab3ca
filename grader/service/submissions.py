"""One participant's submissions: status, detail, history, cancel, and a live event stream. Reads only read.

`status` and `history` import what they show and no more (the read side, quotas, states): `show`'s models
(the rubric's Score, the Metrics, the job's claims and the supervisor's facts, some 50 pydantic models with
what they import) live in grader.service.detail, which only `show` imports, so `grader status` does not
build them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from grader.db import reads
from grader.db.reads import loads, when
from grader.errors import NotFoundError
from grader.outcomes import FailureReason
from grader.service.access import Actor, require_instructor, require_visible
from grader.service.quota import QuotaStatus, quota_status
from grader.service.states import ACTIVE, State

if TYPE_CHECKING:
    from grader.rundir import RunDir
    from grader.service.context import Context
    from grader.service.detail import SubmissionDetail


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


def _status_row(r: tuple[Any, ...], position: dict[int, int]) -> StatusRow:
    (sid, name, exercise, profile, filename, state, reason, message, sched, cached, created, finished, seeds, score,
     max_score, pub, std) = r[:17]
    return StatusRow(id=sid, participant=name, exercise=exercise, profile=profile, filename=filename, state=State(state),
                     reason=FailureReason(reason) if reason in FailureReason._value2member_map_ else None,
                     message=message, queue_position=position.get(sid), scheduler_reason=sched, score=score,
                     max_score=max_score, public_accuracy=pub, public_std=std, seeds=loads(seeds), cached_from=cached,
                     created_at=when(created), finished_at=when(finished))


def status(ctx: Context, actor: Actor, *, submission_id: int | None = None, student: str | None = None,
           limit: int = 20, everyone: bool = False, exercise: str | None = None) -> StatusView:
    who = student or actor.name
    if who != actor.name or everyone:
        require_instructor(actor, "seeing other participants' submissions")
    if exercise is not None:
        ctx.catalog.get(exercise)
    raw = reads.submissions(ctx.reads, submission_id=submission_id, participant=None if everyone else who,
                            exercise=exercise, include_references=everyone, limit=limit)
    position = reads.queue_positions(ctx.reads, [r[0] for r in raw if r[5] == State.QUEUED.value and r[17]])
    out = [_status_row(r, position) for r in raw]
    if submission_id is not None:
        if not out:
            raise NotFoundError(f"no submission with id {submission_id}")
        require_visible(actor, out[0].participant, f"submission with id {submission_id}")
    exercises = sorted({r.exercise for r in out} or set(ctx.catalog.names()))
    quotas = {ex: quota_status(ctx, who, ex, exempt=who == actor.name and actor.instructor) for ex in exercises}
    return StatusView(rows=out, quotas=quotas)


def show(ctx: Context, actor: Actor, submission_id: int) -> SubmissionDetail:
    from grader.grading import Score
    from grader.results import Facts, JobResult
    from grader.scoring import Metrics
    from grader.service.board import private_visible
    from grader.service.detail import SeedRun, SubmissionDetail

    raw = reads.submissions(ctx.reads, submission_id=submission_id, limit=1)
    if not raw:
        raise NotFoundError(f"no submission with id {submission_id}")
    row = _status_row(raw[0], reads.queue_positions(ctx.reads, [submission_id] if raw[0][5] == "queued" else []))
    require_visible(actor, row.participant, f"submission with id {submission_id}")
    run_dir, spec_hash = raw[0][19], raw[0][20]
    seed_runs = [SeedRun(id=sid, seed=seed, state=State(st), public_accuracy=acc)
                 for sid, seed, st, acc, _, _ in reads.seed_runs(ctx.reads, submission_id)]
    current = ctx.catalog.get(row.exercise).spec_hash() if row.exercise in ctx.catalog.names() else None
    detail = SubmissionDetail(status=row, spec_changed=current is not None and current != spec_hash,
                              seed_runs=seed_runs, run_dir=run_dir if actor.instructor else None)
    job = reads.job_spec(ctx.reads, submission_id)
    if job is not None and isinstance(job.get("wall_seconds"), int):
        basis = job.get("wall_basis")
        detail.time_limit = f"{job['wall_seconds']} s" + (f" ({basis})" if isinstance(basis, str) else "")
    stored = reads.result(ctx.reads, submission_id)
    if stored is not None:
        grade, metrics_raw, job_result, facts, notes = (loads(v) for v in stored)
        metrics = Metrics.model_validate(metrics_raw) if metrics_raw else None
        if metrics is not None and not private_visible(ctx, actor, row.exercise):
            metrics = metrics.for_participant()
        detail.grade = Score.model_validate(grade) if grade else None
        detail.metrics = metrics
        result = JobResult.model_validate(job_result)
        detail.result = result if actor.instructor else result.model_copy(update={"detail": None})
        detail.facts = Facts.model_validate(facts) if facts else None
        detail.notes = list(notes or [])
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
    from grader.backends.base import JobHandle

    raw = reads.submissions(ctx.reads, submission_id=submission_id, limit=1)
    if not raw:
        raise NotFoundError(f"no submission with id {submission_id}")
    row = _status_row(raw[0], {})
    require_visible(actor, row.participant, f"submission with id {submission_id}")
    if not row.state.active:
        return CancelResult(submission_id=submission_id, state=row.state, requested=False,
                            message=f"submission {submission_id} is already {row.state.value}")
    handles = []
    if row.seeds:
        for sid, _, st, _, run_dir, _ in reads.seed_runs(ctx.reads, submission_id):
            child = reads.submissions(ctx.reads, submission_id=sid, limit=1)[0]
            if st in ACTIVE and child[17]:
                handles.append(JobHandle(backend=child[21], job_id=child[17], run_dir=run_dir or ""))
    elif raw[0][17]:
        handles.append(JobHandle(backend=raw[0][21], job_id=raw[0][17], run_dir=raw[0][19] or ""))
    for handle in handles:
        ctx.backend(handle.backend).cancel(handle)
    return CancelResult(submission_id=submission_id, state=row.state, requested=True,
                        message=f"cancellation requested for submission {submission_id}")


def follow(ctx: Context, actor: Actor, submission_id: int, *, poll: float = 0.3,
           timeout: float | None = None) -> Iterator[dict[str, Any]]:
    """Live events of one submission until it ends: its state changes and its job's progress lines.

    Reads only: something else (the worker, the server's loop) moves the submission forward.
    """
    from grader.service.runs import read_events

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
    from grader.rundir import RunDir

    raw = reads.submissions(ctx.reads, submission_id=submission_id, limit=1)
    if not raw:
        return []
    if not loads(raw[0][12]):
        run_dir, cached = raw[0][19], raw[0][9]
        return [RunDir(Path(run_dir))] if run_dir and not cached else []
    return [RunDir(Path(d)) for _, _, _, _, d, cached in reads.seed_runs(ctx.reads, submission_id) if d and not cached]
