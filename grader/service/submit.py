"""Submit: validate statically, store by content hash, answer from cache or queue a job."""

from __future__ import annotations

import fcntl
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.db.engine import session_scope
from grader.db.models import Participant, Result, Submission
from grader.errors import BackendError, GraderError, QuotaError, SubmissionError
from grader.results import JobResult
from grader.scoring import Metrics
from grader.service.context import Context
from grader.service.grade import apply_grade, grade_stored
from grader.service.quota import quota_status
from grader.service.runs import prepare_run
from grader.service.states import ACTIVE, CACHEABLE_REASONS, State
from grader.specs.exercise import ExerciseSpec
from grader.submission import SubmissionInfo, read_submission, store_source


class Receipt(BaseModel):
    submission_id: int
    state: str
    cached_from: int | None = None
    run_dir: str | None = None
    warnings: list[str] = Field(default_factory=list)
    references_queued: list[str] = Field(default_factory=list)


def participant_row(session: Session, name: str) -> Participant:
    row = session.scalar(select(Participant).where(Participant.name == name))
    if row is None:
        row = Participant(name=name, created_at=datetime.now(UTC))
        session.add(row)
        session.flush()
    return row


def submit(ctx: Context, path: Path, *, exercise: str, profile: str | None = None, student: str | None = None,
           backend: str | None = None) -> Receipt:
    """The `grader submit` use case: every check that can fail does so before anything is queued."""
    spec = ctx.catalog.get(exercise)
    profile = profile or ctx.settings.profile
    spec.profile(profile)
    ctx.catalog.rubric(exercise)
    participant = student or ctx.user
    if participant != ctx.user and not ctx.is_instructor:
        raise SubmissionError(f"only instructors may submit for someone else (you are {ctx.user!r})")
    source, info = read_submission(path, spec)
    with session_scope(ctx.engine) as session:
        quota = quota_status(ctx, session, participant, exercise)
        if quota.remaining == 0:
            when = quota.next_slot_at.strftime("%Y-%m-%d %H:%M UTC") if quota.next_slot_at else "later"
            raise QuotaError(f"{participant} has used all {quota.limit} submissions for {exercise} in the last "
                             f"{ctx.settings.quota_window_hours:g} h; the next slot opens at {when}")
    refs = ensure_references(ctx, spec, profile, backend)
    receipt = submit_job(ctx, source, info, spec, profile, participant, filename=path.name, backend=backend)
    receipt.references_queued = refs
    receipt.warnings = info.warnings
    return receipt


def submit_job(ctx: Context, source: str, info: SubmissionInfo, spec: ExerciseSpec, profile: str, participant: str,
               *, filename: str, backend: str | None = None, reference_name: str | None = None) -> Receipt:
    """Lower tier: built objects in, a submission row (cached or queued) out."""
    backend_name = backend or ctx.settings.backend
    stored = store_source(source, ctx.settings.store_dir)
    seed = spec.seed
    key = f"{info.sha256}:{spec.spec_hash()}:{seed}:{profile}"
    now = datetime.now(UTC)
    with session_scope(ctx.engine) as session:
        who = participant_row(session, participant)
        sub = Submission(participant_id=who.id, exercise=spec.name, profile=profile, seed=seed,
                         spec_hash=spec.spec_hash(), file_sha256=info.sha256, filename=filename, kind=info.kind,
                         stored_path=str(stored), cache_key=key, reference_name=reference_name,
                         state=State.QUEUED.value, backend=backend_name, submitted_by=ctx.user, created_at=now,
                         counts_for_quota=reference_name is None, attempts=0)
        session.add(sub)
        session.flush()
        hit = _cached(session, key)
        if hit is not None:
            old_sub, old_res = hit
            sub.state, sub.reason, sub.message = old_sub.state, old_sub.reason, old_sub.message
            sub.cached_from, sub.run_dir, sub.finished_at, sub.started_at = old_sub.id, old_sub.run_dir, now, now
            res = Result(submission_id=sub.id, outcome=old_res.outcome, error_kind=old_res.error_kind,
                         accuracy=old_res.accuracy, public_accuracy=old_res.public_accuracy,
                         private_accuracy=old_res.private_accuracy, train_accuracy=old_res.train_accuracy,
                         params=old_res.params, epochs=old_res.epochs, fit_seconds=old_res.fit_seconds,
                         job_result=old_res.job_result, metrics=old_res.metrics)
            session.add(res)
            metrics = Metrics.model_validate(old_res.metrics) if old_res.metrics else None
            apply_grade(res, grade_stored(ctx, session, sub, JobResult.model_validate(old_res.job_result), metrics))
            return Receipt(submission_id=sub.id, state=sub.state, cached_from=old_sub.id, run_dir=sub.run_dir)
        sub_id = sub.id
    run_id = f"{sub_id:07d}-{secrets.token_hex(3)}"
    try:
        run, _job = prepare_run(source, info.sha256, spec, profile, seed, ctx.settings, backend=backend_name,
                                run_id=run_id)
        handle = ctx.backend(backend_name).submit(run)
    except Exception as exc:  # the job never started: an infrastructure failure, refunded
        with session_scope(ctx.engine) as session:
            sub = session.get_one(Submission, sub_id)
            sub.state, sub.reason, sub.counts_for_quota = State.FAILED.value, "infrastructure", False
            sub.message = f"could not start the job: {exc}"
            sub.finished_at = datetime.now(UTC)
        if isinstance(exc, GraderError):
            raise
        # an OSError from a full disk or a dead worker spawn is not a bug to show as a traceback
        raise BackendError(f"submission {sub_id} could not be started: {exc}; it does not count against your "
                           "quota") from exc
    with session_scope(ctx.engine) as session:
        sub = session.get_one(Submission, sub_id)
        sub.job_id, sub.run_dir = handle.job_id, handle.run_dir
    return Receipt(submission_id=sub_id, state=State.QUEUED.value, run_dir=str(run.path))


def _cached(session: Session, key: str) -> tuple[Submission, Result] | None:
    row = session.execute(
        select(Submission, Result).join(Result, Result.submission_id == Submission.id)
        .where(Submission.cache_key == key, Submission.cached_from.is_(None),
               (Submission.state == State.DONE.value) | Submission.reason.in_(CACHEABLE_REASONS))
        .order_by(Submission.id.desc()).limit(1)
    ).first()
    return (row[0], row[1]) if row else None


def ensure_references(ctx: Context, spec: ExerciseSpec, profile: str, backend: str | None = None,
                      force: bool = False, only: tuple[str, ...] | None = None) -> list[str]:
    """Queue each reference solution not yet measured (or queued) for this spec, profile and seed.

    `only` limits this to some references (a notebook's partial credit needs just the baseline).
    """
    queued = []
    with file_lock(ctx.settings.home.expanduser() / "references.lock"):
        with session_scope(ctx.engine) as session:
            have = set(session.scalars(
                select(Submission.reference_name).where(
                    Submission.exercise == spec.name, Submission.profile == profile, Submission.seed == spec.seed,
                    Submission.spec_hash == spec.spec_hash(), Submission.reference_name.is_not(None),
                    Submission.state.in_((*ACTIVE, State.DONE.value)))))
        # still under the file lock, so concurrent submitters queue each reference once
        for path in ctx.catalog.references(spec.name):
            if (path.stem in have and not force) or (only is not None and path.stem not in only):
                continue
            source, info = read_submission(path, spec)
            submit_job(ctx, source, info, spec, profile, "reference", filename=path.name, backend=backend,
                       reference_name=path.stem)
            queued.append(path.stem)
    return queued


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
