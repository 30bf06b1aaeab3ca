"""Sync: ask backends about active jobs (one batched poll each), ingest finished run dirs once."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, Field
from sqlalchemy import select, update

from grader.backends.base import JobHandle, JobState, JobStatus
from grader.db.engine import session_scope
from grader.db.models import Result, Submission
from grader.errors import GraderError, ResultError
from grader.results import ErrorKind, JobResult, JobSpec, Outcome, load_result
from grader.rundir import RunDir
from grader.service.context import Context
from grader.service.grade import apply_grade, grade_stored, regrade
from grader.service.runs import ingest
from grader.service.states import ACTIVE, REFUNDED_REASONS, State

SCHEDULER_FAILURES = {
    JobState.TIMEOUT: (ErrorKind.TIMEOUT, "your job hit the {minutes:g}-minute limit: use fewer epochs, a smaller "
                                          "model or a larger batch size"),
    JobState.OUT_OF_MEMORY: (ErrorKind.OUT_OF_MEMORY, "your job exceeded its {memory} MB memory limit: use a smaller "
                                                      "model or batch size"),
    JobState.CANCELLED: (ErrorKind.CANCELLED, "the job was cancelled"),
    JobState.NODE_FAIL: (ErrorKind.INFRASTRUCTURE, "the compute node failed while running your job; it does not "
                                                   "count against your quota"),
    JobState.PREEMPTED: (ErrorKind.INFRASTRUCTURE, "your job was preempted twice; it does not count against your "
                                                   "quota"),
    JobState.FAILED: (ErrorKind.INFRASTRUCTURE, "the job failed outside your code (exit code {exit})"),
}
MAX_REQUEUES = 1


class SyncReport(BaseModel):
    polled: int = 0
    ingested: list[int] = Field(default_factory=list)
    requeued: list[int] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


def sync(ctx: Context, ids: list[int] | None = None) -> SyncReport:
    """Reconcile every active submission (or the given ones) with its backend."""
    report = SyncReport()
    _fail_unstarted(ctx)
    with session_scope(ctx.engine) as session:
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
            done = _apply(ctx, sub, status, report)
            if done and sub.reference_name:
                touched_refs.add((sub.exercise, sub.profile))
    for exercise, profile in touched_refs:  # grades waiting for a reference can now be completed
        regrade(ctx, exercise, profile, only_missing_references=True)
    return report


def _fail_unstarted(ctx: Context, grace_seconds: float = 120.0) -> None:
    """A row whose `grader submit` died before handing the job over must not stay queued forever."""
    cutoff = datetime.now(UTC) - timedelta(seconds=grace_seconds)
    with session_scope(ctx.engine) as session:
        session.execute(
            update(Submission).where(Submission.state.in_(ACTIVE), Submission.job_id.is_(None),
                                     Submission.cached_from.is_(None), Submission.created_at < cutoff)
            .values(state=State.FAILED.value, reason="infrastructure", counts_for_quota=False,
                    message="the submission was never handed to a backend (the submitting process stopped); "
                            "it does not count against your quota: please submit again",
                    finished_at=datetime.now(UTC)))


def _apply(ctx: Context, sub: Submission, status: JobStatus, report: SyncReport) -> bool:
    run = RunDir(Path(sub.run_dir)) if sub.run_dir else None
    if status.state in (JobState.PENDING, JobState.RUNNING):
        _set_scheduler(ctx, sub.id, status)
        return False
    if status.state is JobState.UNKNOWN:
        if status.reason and "vanished" in status.reason and run is not None:
            if run.supervisor_json.exists():
                return _ingest(ctx, sub, run, None, report)
            return _ingest(ctx, sub, run, JobResult.failed(
                ErrorKind.INFRASTRUCTURE, "the job disappeared from the scheduler without a result; it does not "
                "count against your quota"), report)
        report.warnings.append(f"submission {sub.id}: scheduler state unknown ({status.reason})")
        _set_scheduler(ctx, sub.id, status)
        return False
    if status.state in (JobState.NODE_FAIL, JobState.PREEMPTED) and sub.attempts < MAX_REQUEUES and run \
            and sub.backend != "local":
        try:
            handle = ctx.backend(sub.backend).submit(run)
        except Exception as exc:
            report.warnings.append(f"submission {sub.id}: requeue failed: {exc}")
        else:
            with session_scope(ctx.engine) as session:
                row = session.get_one(Submission, sub.id)
                row.job_id, row.attempts, row.state = handle.job_id, row.attempts + 1, State.QUEUED.value
                row.scheduler_reason = f"requeued after {status.state.value}"
            report.requeued.append(sub.id)
            return False
    forced = None
    if run is None:
        forced = JobResult.failed(ErrorKind.INFRASTRUCTURE, "no run directory was recorded")
    elif status.state is not JobState.COMPLETED and (
            not run.supervisor_json.exists() or (status.state in SCHEDULER_VERDICTS and not _result_ok(run))):
        # Slurm signals the supervisor before killing it at a limit; the supervisor then records
        # "cancelled", but the scheduler knows the real reason (time, memory, node), so it wins.
        kind, template = SCHEDULER_FAILURES.get(status.state, SCHEDULER_FAILURES[JobState.FAILED])
        job = _job_spec(run)
        forced = JobResult.failed(kind, template.format(
            minutes=(job.wall_seconds / 60) if job else 0, memory=job.memory_mb if job else "?",
            exit=status.exit_code))
    return _ingest(ctx, sub, run, forced, report)


SCHEDULER_VERDICTS = (JobState.TIMEOUT, JobState.OUT_OF_MEMORY, JobState.NODE_FAIL, JobState.PREEMPTED)


def _result_ok(run: RunDir) -> bool:
    try:
        return load_result(run.result_json).outcome is Outcome.OK
    except ResultError:
        return False


def _job_spec(run: RunDir) -> JobSpec | None:
    try:
        return JobSpec.model_validate_json(run.job_json.read_text())
    except (OSError, ValueError):
        return None


def _set_scheduler(ctx: Context, sub_id: int, status: JobStatus) -> None:
    with session_scope(ctx.engine) as session:
        row = session.get_one(Submission, sub_id)
        if row.state not in ACTIVE:
            return
        if status.state is JobState.RUNNING and row.state != State.RUNNING.value:
            row.state, row.started_at = State.RUNNING.value, datetime.now(UTC)
        elif status.state is JobState.PENDING and row.state == State.RUNNING.value:
            row.state = State.QUEUED.value  # requeued (e.g. its worker died)
        row.scheduler_state = status.state.value
        row.scheduler_reason = status.reason


def _ingest(ctx: Context, sub: Submission, run: RunDir | None, forced: JobResult | None, report: SyncReport) -> bool:
    """Score and grade a finished run, then store it exactly once (conditional state update)."""
    spec = ctx.catalog.get(sub.exercise)
    if forced is None and run is not None:
        ingested = ingest(run, spec, sub.profile, ctx.settings)
        result, metrics = ingested.result, ingested.metrics
    else:
        result, metrics = forced or JobResult.failed(ErrorKind.INFRASTRUCTURE, "no result"), None
    ok = result.outcome is Outcome.OK and metrics is not None
    reason = None if ok else (result.reason.value if result.reason else "infrastructure")
    now = datetime.now(UTC)
    with session_scope(ctx.engine) as session:
        claimed = session.execute(
            update(Submission).where(Submission.id == sub.id, Submission.state.in_(ACTIVE))
            .values(state=State.DONE.value if ok else State.FAILED.value, reason=reason,
                    message=None if ok else result.message, finished_at=now,
                    counts_for_quota=sub.reference_name is None and reason not in REFUNDED_REASONS)
        ).rowcount
        if claimed != 1:
            return False  # another process ingested it first
        row = session.get_one(Submission, sub.id)
        res = Result(
            submission_id=sub.id, outcome=result.outcome.value,
            error_kind=result.error_kind.value if result.error_kind else None,
            accuracy=metrics.accuracy if metrics else None,
            public_accuracy=metrics.public_accuracy if metrics else None,
            private_accuracy=metrics.private_accuracy if metrics else None,
            train_accuracy=metrics.train_accuracy if metrics else None, params=result.params,
            epochs=len(result.history) or result.epochs, fit_seconds=result.timings.get("fit"),
            job_result=result.model_dump(mode="json"), metrics=metrics.model_dump(mode="json") if metrics else None,
        )
        session.add(res)
        session.flush()
        apply_grade(res, grade_stored(ctx, session, row, result, metrics))
    report.ingested.append(sub.id)
    return True
