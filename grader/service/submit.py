"""Submit: validate statically, store by content hash, answer from cache or queue a job (or N seeds)."""

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
from grader.results import cache_key
from grader.service.access import Actor, require_instructor
from grader.service.context import Context
from grader.service.grade import RegradeReport, apply_grade, copy_result, grade_stored, stored_run
from grader.service.limits import wall_limit
from grader.service.quota import quota_status
from grader.service.runs import prepare_run, training_epochs
from grader.service.seeds import refresh_group, seeds_for
from grader.service.states import ACTIVE, CACHEABLE_REASONS, State
from grader.specs.exercise import ExerciseSpec
from grader.submission import SubmissionInfo, code_fingerprint, parse_submission, read_submission, store_source
from grader.text import base_name

MAX_SEEDS = 10


class Receipt(BaseModel):
    submission_id: int
    state: State
    cached_from: int | None = None
    run_dir: str | None = None
    seeds: list[int] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    references_queued: list[str] = Field(default_factory=list)


def participant_row(session: Session, name: str) -> Participant:
    row = session.scalar(select(Participant).where(Participant.name == name))
    if row is None:
        row = Participant(name=name, created_at=datetime.now(UTC))
        session.add(row)
        session.flush()
    return row


def submit(ctx: Context, actor: Actor, path: Path, *, exercise: str, profile: str | None = None,
           student: str | None = None, backend: str | None = None, seeds: int | None = None) -> Receipt:
    """`grader submit FILE` in embedded mode: the file is read here, then `submit_source`."""
    spec = ctx.catalog.get(exercise)
    source, info = read_submission(path, spec)
    return submit_checked(ctx, actor, source, info, path.name, exercise=exercise, profile=profile, student=student,
                          backend=backend, seeds=seeds)


def submit_upload(ctx: Context, actor: Actor, data: bytes, filename: str, *, exercise: str,
                  profile: str | None = None, student: str | None = None, seeds: int | None = None) -> Receipt:
    """A file uploaded to the server (CLI client or web page): the same checks as a local file."""
    spec = ctx.catalog.get(exercise)
    filename = base_name(filename)
    source, info = parse_submission(data, filename, spec)
    return submit_checked(ctx, actor, source, info, filename, exercise=exercise, profile=profile, student=student,
                          seeds=seeds)


def submit_checked(ctx: Context, actor: Actor, source: str, info: SubmissionInfo, filename: str, *, exercise: str,
                   profile: str | None = None, student: str | None = None, backend: str | None = None,
                   seeds: int | None = None) -> Receipt:
    """Every check that can fail does so before anything is queued."""
    spec = ctx.catalog.get(exercise)
    profile = profile or ctx.settings.profile
    prof = spec.profile(profile)
    ctx.catalog.rubric(exercise)
    participant = student or actor.name
    if participant != actor.name:
        require_instructor(actor, "submitting for someone else")
    if seeds is not None:
        require_instructor(actor, "choosing the number of seeds")
        if not 1 <= seeds <= MAX_SEEDS:
            raise SubmissionError(f"--seeds must be between 1 and {MAX_SEEDS}")
    n_seeds = seeds or prof.seeds
    quota = quota_status(ctx, participant, exercise, exempt=participant == actor.name and actor.instructor)
    if quota.remaining == 0:
        when = quota.next_slot_at.strftime("%Y-%m-%d %H:%M UTC") if quota.next_slot_at else "later"
        raise QuotaError(f"{participant} has used all {quota.limit} submissions for {exercise} in the last "
                         f"{ctx.settings.quota_window_hours:g} h; the next slot opens at {when}")
    refs = ensure_references(ctx, spec, profile, backend)
    if n_seeds > 1:
        receipt = submit_group(ctx, source, info, spec, profile, participant, filename=filename, backend=backend,
                               seeds=seeds_for(spec, n_seeds), submitted_by=actor.name)
    else:
        receipt = submit_job(ctx, source, info, spec, profile, participant, filename=filename, backend=backend,
                             submitted_by=actor.name)
    receipt.references_queued = refs
    receipt.warnings = info.warnings
    return receipt


def submit_job(ctx: Context, source: str, info: SubmissionInfo, spec: ExerciseSpec, profile: str, participant: str,
               *, filename: str, backend: str | None = None, reference_name: str | None = None,
               seed: int | None = None, parent_id: int | None = None, submitted_by: str | None = None,
               counts_for_quota: bool | None = None) -> Receipt:
    """Lower tier: built objects in, a submission row (cached or queued) out."""
    backend_name = backend or ctx.settings.backend
    stored = store_source(source, ctx.settings.store_dir)
    seed = spec.seed if seed is None else seed
    key = cache_key(info.sha256, spec.spec_hash(), seed, profile)
    now = datetime.now(UTC)
    with session_scope(ctx.engine) as session:
        who = participant_row(session, participant)
        sub = Submission(participant_id=who.id, exercise=spec.name, profile=profile, seed=seed,
                         spec_hash=spec.spec_hash(), file_sha256=info.sha256, filename=filename, kind=info.kind,
                         stored_path=str(stored), cache_key=key, reference_name=reference_name,
                         state=State.QUEUED.value, backend=backend_name, submitted_by=submitted_by or participant,
                         created_at=now, attempts=0, parent_id=parent_id,
                         counts_for_quota=(reference_name is None and parent_id is None) if counts_for_quota is None
                         else counts_for_quota, code_fingerprint=code_fingerprint(source))
        session.add(sub)
        session.flush()
        hit = _cached(session, key)
        if hit is not None:
            old_sub, old_res = hit
            sub.state, sub.reason, sub.message = old_sub.state, old_sub.reason, old_sub.message
            sub.cached_from, sub.run_dir, sub.finished_at, sub.started_at = old_sub.id, old_sub.run_dir, now, now
            sub.job_spec = old_sub.job_spec
            res = copy_result(sub.id, old_res)
            session.add(res)
            session.flush()
            result, metrics, facts = stored_run(old_res)
            apply_grade(res, grade_stored(ctx, session, sub, result, metrics, facts))
            if parent_id is not None:
                refresh_group(ctx, session, parent_id)
            return Receipt(submission_id=sub.id, state=State(sub.state), cached_from=old_sub.id, run_dir=sub.run_dir)
        sub_id = sub.id
    run_id = f"{sub_id:07d}-{secrets.token_hex(3)}"
    try:
        limit = None
        if reference_name is None:  # references run under the exercise's limit: they are what limits derive from
            derived = wall_limit(ctx, spec, profile, backend_name, training_epochs(info, spec, profile))
            limit = (derived.seconds, derived.basis)
        run, job = prepare_run(source, info, spec, profile, seed, ctx.settings, backend=backend_name, run_id=run_id,
                               wall=limit)
        with session_scope(ctx.engine) as session:
            session.get_one(Submission, sub_id).job_spec = job.model_dump(mode="json")
        handle = ctx.backend(backend_name).submit(run, job)
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
    return Receipt(submission_id=sub_id, state=State.QUEUED, run_dir=str(run.path))


def submit_group(ctx: Context, source: str, info: SubmissionInfo, spec: ExerciseSpec, profile: str, participant: str,
                 *, filename: str, seeds: list[int], backend: str | None = None,
                 reference_name: str | None = None, submitted_by: str | None = None,
                 existing: int | None = None) -> Receipt:
    """A group row and one run per seed; `existing` makes a stored single-seed run the group's first seed."""
    stored = store_source(source, ctx.settings.store_dir)
    now = datetime.now(UTC)
    with session_scope(ctx.engine) as session:
        who = participant_row(session, participant)
        group = Submission(participant_id=who.id, exercise=spec.name, profile=profile, seed=seeds[0],
                           spec_hash=spec.spec_hash(), file_sha256=info.sha256, filename=filename, kind=info.kind,
                           stored_path=str(stored), cache_key=f"group:{info.sha256}:{spec.spec_hash()}:{profile}",
                           reference_name=reference_name, state=State.QUEUED.value,
                           backend=backend or ctx.settings.backend, submitted_by=submitted_by or participant,
                           created_at=now, attempts=0, seeds=seeds, counts_for_quota=reference_name is None,
                           code_fingerprint=code_fingerprint(source))
        if existing is not None:
            old = session.get_one(Submission, existing)
            group.created_at, group.counts_for_quota = old.created_at, old.counts_for_quota
        session.add(group)
        session.flush()
        group_id = group.id
        if existing is not None:
            old = session.get_one(Submission, existing)
            old.parent_id, old.counts_for_quota = group_id, False
    have = {seed for (seed,) in _seeds_of(ctx, group_id)}
    for seed in seeds:
        if seed not in have:
            submit_job(ctx, source, info, spec, profile, participant, filename=filename, backend=backend,
                       reference_name=reference_name, seed=seed, parent_id=group_id, submitted_by=submitted_by)
    with session_scope(ctx.engine) as session:
        refresh_group(ctx, session, group_id)
        state = State(session.get_one(Submission, group_id).state)
    return Receipt(submission_id=group_id, state=state, seeds=seeds)


def _seeds_of(ctx: Context, group_id: int) -> list[tuple[int]]:
    with session_scope(ctx.reader) as session:
        return [(s,) for s in session.scalars(select(Submission.seed).where(Submission.parent_id == group_id))]


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
    With a multi-seed profile, references are measured under the same seeds as submissions.
    """
    queued = []
    n_seeds = spec.profile(profile).seeds
    with file_lock(ctx.settings.home.expanduser() / "references.lock"):
        with session_scope(ctx.reader) as session:
            have = set(session.scalars(
                select(Submission.reference_name).where(
                    Submission.exercise == spec.name, Submission.profile == profile, Submission.seed == spec.seed,
                    Submission.spec_hash == spec.spec_hash(), Submission.reference_name.is_not(None),
                    Submission.parent_id.is_(None), Submission.state.in_((*ACTIVE, State.DONE.value)))))
        # still under the file lock, so concurrent submitters queue each reference once
        for path in ctx.catalog.references(spec.name):
            if (path.stem in have and not force) or (only is not None and path.stem not in only):
                continue
            source, info = read_submission(path, spec)
            if n_seeds > 1:
                submit_group(ctx, source, info, spec, profile, "reference", filename=path.name, backend=backend,
                             reference_name=path.stem, seeds=seeds_for(spec, n_seeds))
            else:
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


def regrade_with_seeds(ctx: Context, actor: Actor, *, exercise: str, profile: str | None = None,
                       seeds: int) -> RegradeReport:
    """Grade stored submissions (and the references) under `seeds` seeds, reusing every seed already run.

    A single-seed submission becomes the first seed of a new group; a smaller group gets its missing
    seeds. Only the missing seeds train; running this again when all are there queues nothing.
    """
    require_instructor(actor, "multi-seed regrading")
    if not 1 <= seeds <= MAX_SEEDS:
        raise SubmissionError(f"--seeds must be between 1 and {MAX_SEEDS}")
    spec = ctx.catalog.get(exercise)
    profile = profile or ctx.settings.profile
    spec.profile(profile)
    wanted = seeds_for(spec, seeds)
    with session_scope(ctx.reader) as session:
        rows = session.execute(
            select(Submission, Participant.name).join(Participant, Participant.id == Submission.participant_id)
            .where(Submission.exercise == exercise, Submission.profile == profile, Submission.parent_id.is_(None),
                   Submission.state == State.DONE.value, Submission.spec_hash == spec.spec_hash())
            .order_by(Submission.id)).all()
        singles = [(s.id, s.stored_path, s.filename, s.reference_name, name, s.backend) for s, name in rows
                   if not s.seeds and s.seed == spec.seed]
        groups = [(s.id, s.seeds or [], s.stored_path, s.filename, s.reference_name, name, s.backend)
                  for s, name in rows if s.seeds]
    report = RegradeReport(exercise=exercise, regraded=0)
    for sub_id, stored_path, filename, reference, name, backend in singles:
        source, info = parse_submission(Path(stored_path).read_bytes(), filename, spec)
        submit_group(ctx, source, info, spec, profile, name, filename=filename, seeds=wanted, backend=backend,
                     reference_name=reference, submitted_by=actor.name, existing=sub_id)
        report.regraded += 1
    for group_id, have, stored_path, filename, reference, name, backend in groups:
        missing = [s for s in wanted if s not in have]
        if not missing:
            continue
        source, info = parse_submission(Path(stored_path).read_bytes(), filename, spec)
        with session_scope(ctx.engine) as session:
            group = session.get_one(Submission, group_id)
            group.seeds = sorted({*have, *wanted})
            group.state = State.QUEUED.value
            existing = session.get(Result, group_id)
            if existing is not None:
                session.delete(existing)  # re-aggregated when the new seeds finish
        for seed in missing:
            submit_job(ctx, source, info, spec, profile, name, filename=filename, backend=backend,
                       reference_name=reference, seed=seed, parent_id=group_id, submitted_by=actor.name)
        report.regraded += 1
    return report
