"""Reconcile: ask backends about active jobs (one batched poll each), ingest finished runs exactly once.

This is the write path that moves submissions forward. It runs in the embedded worker, in
`grader sync`, and in the server's background loop; read commands never call it. One run that
cannot be read (a hostile run directory, a bug) becomes a stored outcome for that submission
only; the loop goes on to the next, so no submission can stop everyone's grading.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, Field
from sqlalchemy import select, update

from grader import advice
from grader.backends.base import JobHandle, JobState, JobStatus
from grader.db.engine import session_scope
from grader.db.models import Submission
from grader.errors import GraderError
from grader.outcomes import ErrorKind, Outcome
from grader.results import JobResult, JobSpec, Verdict
from grader.rundir import RunDir
from grader.service.context import Context
from grader.service.grade import apply_grade, grade_stored, regrade, result_row
from grader.service.ingest import Ingested, ingest, read_report
from grader.service.runs import read_events
from grader.service.seeds import refresh_group
from grader.service.states import ACTIVE, REFUNDED_REASONS, State
from grader.untrusted import read_bytes

log = logging.getLogger(__name__)
MAX_REQUEUES = 1
SCHEDULER_VERDICTS = (JobState.TIMEOUT, JobState.OUT_OF_MEMORY, JobState.NODE_FAIL, JobState.PREEMPTED)


class SyncReport(BaseModel):
    polled: int = 0
    waiting_remote: int = Field(default=0, description="Jobs still active on a scheduler that answered (not local).")
    ingested: list[int] = Field(default_factory=list)
    requeued: list[int] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


def reconcile(ctx: Context, ids: list[int] | None = None) -> SyncReport:
    """Reconcile every active submission (or the given ones) with its backend."""
    report = SyncReport()
    _fail_unstarted(ctx)
    with session_scope(ctx.reader) as session:
        query = select(Submission).where(Submission.state.in_(ACTIVE), Submission.job_id.is_not(None))
        if ids:
            query = query.where(Submission.id.in_(ids))
        active = list(session.scalars(query))
    by_backend: dict[str, list[Submission]] = defaultdict(list)
    for sub in active:
        by_backend[sub.backend].append(sub)
    touched_refs: set[tuple[str, str]] = set()
    for name, subs in by_backend.items():
        handles = [JobHandle(backend=name, job_id=s.job_id or "", run_dir=s.run_dir or "") for s in subs]
        try:
            statuses = ctx.backend(name).poll_many(handles)
        except GraderError as exc:
            report.warnings.append(f"{name}: {exc}")
            continue
        report.polled += len(subs)
        for sub in subs:
            status = statuses.get(sub.job_id or "", JobStatus(state=JobState.UNKNOWN, reason="not reported"))
            try:
                done = _apply(ctx, sub, status, report)
            except Exception as exc:  # one bad run must not stop the others: store it and go on
                log.exception("submission %s could not be reconciled", sub.id)
                done = _store(ctx, sub, Ingested(result=JobResult.failed(
                    ErrorKind.INVALID_RESULT, f"invalid result: grader could not read this run "
                    f"({type(exc).__name__}: {str(exc)[:300]})")), report)
            if done and sub.reference_name:
                touched_refs.add((sub.exercise, sub.profile))
            if not done and name != "local" and status.state in (JobState.PENDING, JobState.RUNNING):
                report.waiting_remote += 1
    for exercise, profile in touched_refs:  # grades waiting for a reference can now be completed
        regrade(ctx, None, exercise, profile, only_stale=True)
    return report


def _fail_unstarted(ctx: Context, grace_seconds: float = 120.0) -> None:
    """A row whose `grader submit` died before handing the job over must not stay queued forever."""
    cutoff = datetime.now(UTC) - timedelta(seconds=grace_seconds)
    with session_scope(ctx.reader) as session:
        stale = session.scalar(select(Submission.id).where(
            Submission.state.in_(ACTIVE), Submission.job_id.is_(None), Submission.seeds.is_(None),
            Submission.cached_from.is_(None), Submission.created_at < cutoff).limit(1))
    if stale is None:
        return  # nothing to do: no write transaction at all
    with session_scope(ctx.engine) as session:
        session.execute(
            update(Submission).where(Submission.state.in_(ACTIVE), Submission.job_id.is_(None),
                                     Submission.seeds.is_(None), Submission.cached_from.is_(None),
                                     Submission.created_at < cutoff)
            .values(state=State.FAILED.value, reason="infrastructure", counts_for_quota=False,
                    message="the submission was never handed to a backend (the submitting process stopped); "
                            "it does not count against your quota: please submit again",
                    finished_at=datetime.now(UTC)))


def job_of(sub: Submission) -> JobSpec | None:
    """The coordinator's own copy of the job spec (older rows: the run's job.json, read safely)."""
    if sub.job_spec:
        return JobSpec.model_validate(sub.job_spec)
    if sub.run_dir:
        try:
            return JobSpec.model_validate_json(read_bytes(Path(sub.run_dir), RunDir.JOB, 4_000_000))
        except (GraderError, ValueError):
            return None
    return None


def _apply(ctx: Context, sub: Submission, status: JobStatus, report: SyncReport) -> bool:
    run = RunDir(Path(sub.run_dir)) if sub.run_dir else None
    if status.state in (JobState.PENDING, JobState.RUNNING):
        _set_scheduler(ctx, sub.id, status)
        return False
    if status.state is JobState.UNKNOWN:
        report.warnings.append(f"submission {sub.id}: scheduler state unknown ({status.reason})")
        _set_scheduler(ctx, sub.id, status)
        return False
    job = job_of(sub)
    if run is None or job is None:
        return _store(ctx, sub, _failure(ErrorKind.INFRASTRUCTURE, detail="no run directory or job spec was "
                                         "recorded"), report)
    if status.state in (JobState.NODE_FAIL, JobState.PREEMPTED) and sub.attempts < MAX_REQUEUES \
            and ctx.backend(sub.backend).retries_after_node_failure:
        try:
            handle = ctx.backend(sub.backend).submit(run, job)  # job.json rewritten from our copy
        except Exception as exc:
            report.warnings.append(f"submission {sub.id}: requeue failed: {exc}")
        else:
            with session_scope(ctx.engine) as session:
                row = session.get_one(Submission, sub.id)
                row.job_id, row.attempts, row.state = handle.job_id, row.attempts + 1, State.QUEUED.value
                row.scheduler_reason = f"requeued after {status.state.value}"
            report.requeued.append(sub.id)
            return False
    supervised = _supervised(run)
    if status.state is JobState.VANISHED and supervised is None:
        return _store(ctx, sub, _failure(ErrorKind.INFRASTRUCTURE, detail="the job disappeared from the scheduler "
                                         "without a result"), report)
    if status.state is JobState.CANCELLED and supervised is not Verdict.COMPLETED:
        return _store(ctx, sub, _failure(ErrorKind.CANCELLED), report)
    if status.state not in (JobState.COMPLETED, JobState.VANISHED) and (
            supervised is None or (status.state in SCHEDULER_VERDICTS and supervised is not Verdict.COMPLETED)):
        # Slurm signals the supervisor before killing it at a limit; the supervisor then records
        # "cancelled", but the scheduler knows the real reason (time, memory, node), so it wins.
        return _store(ctx, sub, _scheduler_failure(status, job, run), report)
    return _store(ctx, sub, ingest(run, job, ctx.labels(job.exercise, sub.profile)), report)


def _supervised(run: RunDir) -> Verdict | None:
    try:
        return read_report(run).verdict
    except GraderError:
        return None


def _failure(kind: ErrorKind, **fields: object) -> Ingested:
    return Ingested(result=JobResult.failed(kind, advice.message(kind, **fields)))


def _last_phase(run: RunDir) -> str | None:
    """What the job was doing when the scheduler stopped it, from its progress events."""
    events, _ = read_events(run, 0)
    phases = [e["phase"] for e in events if e.get("event") == "phase" and isinstance(e.get("phase"), str)]
    return phases[-1] if phases else None


def _scheduler_failure(status: JobStatus, job: JobSpec, run: RunDir) -> Ingested:
    minutes, memory = job.wall_seconds / 60, job.memory_mb
    if status.state is JobState.TIMEOUT:
        return _failure(ErrorKind.TIMEOUT, phase=_last_phase(run), minutes=minutes)
    if status.state is JobState.OUT_OF_MEMORY:
        return _failure(ErrorKind.OUT_OF_MEMORY, memory_mb=memory)
    if status.state is JobState.NODE_FAIL:
        return _failure(ErrorKind.INFRASTRUCTURE, detail="the compute node failed while running your job")
    if status.state is JobState.PREEMPTED:
        return _failure(ErrorKind.INFRASTRUCTURE, detail="your job was preempted twice")
    if status.state is JobState.CANCELLED:
        return _failure(ErrorKind.CANCELLED)
    return _failure(ErrorKind.INFRASTRUCTURE, detail=f"the batch job ended {status.state.value.lower()} with exit "
                    f"code {status.exit_code} before grader's supervisor reported")


def _set_scheduler(ctx: Context, sub_id: int, status: JobStatus) -> None:
    with session_scope(ctx.reader) as session:
        row = session.get(Submission, sub_id)
        if row is None or row.state not in ACTIVE:
            return
        want = State(row.state)
        if status.state is JobState.RUNNING:
            want = State.RUNNING
        elif status.state is JobState.PENDING and want is State.RUNNING:
            want = State.QUEUED  # requeued (e.g. its worker died)
        reason = status.reason
        if row.attempts:  # keep saying it was requeued, whatever the scheduler says next
            reason = f"attempt {row.attempts + 1}, requeued after a node failure" + (f": {reason}" if reason else "")
        if want.value == row.state and row.scheduler_state == status.state.value and row.scheduler_reason == reason:
            return  # nothing changed: no write
    with session_scope(ctx.engine) as session:
        row = session.get_one(Submission, sub_id)
        if row.state not in ACTIVE:
            return
        if want is State.RUNNING and row.state != State.RUNNING.value:
            row.started_at = datetime.now(UTC)
        row.state, row.scheduler_state, row.scheduler_reason = want.value, status.state.value, reason


def state_for(result: JobResult) -> State:
    if result.outcome is Outcome.OK:
        return State.DONE
    return State.CANCELLED if result.error_kind is ErrorKind.CANCELLED else State.FAILED


def _store(ctx: Context, sub: Submission, got: Ingested, report: SyncReport) -> bool:
    """Store and grade a finished run exactly once (a conditional state update claims it)."""
    result = got.result
    ok = got.ok
    state = state_for(result) if not (result.outcome is Outcome.OK and not ok) else State.FAILED
    reason = None if ok else (result.reason.value if result.reason else "infrastructure")
    now = datetime.now(UTC)
    with session_scope(ctx.engine) as session:
        # An UPDATE's result is a CursorResult, which has rowcount; Session.execute is typed as Result.
        claimed = session.execute(
            update(Submission).where(Submission.id == sub.id, Submission.state.in_(ACTIVE))
            .values(state=state.value, reason=reason, message=None if ok else result.message, finished_at=now,
                    counts_for_quota=sub.counts_for_quota and reason not in REFUNDED_REASONS)
        ).rowcount  # type: ignore[attr-defined]
        if claimed != 1:
            return False  # another process ingested it first
        row = session.get_one(Submission, sub.id)
        res = result_row(sub.id, got)
        session.add(res)
        session.flush()
        apply_grade(res, grade_stored(ctx, session, row, result, got.metrics, got.facts))
        if row.parent_id is not None:
            refresh_group(ctx, session, row.parent_id)
    report.ingested.append(sub.id)
    return True
