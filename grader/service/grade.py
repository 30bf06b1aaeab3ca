"""Grading on the trusted side: references for a profile, rubric application, regrade."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.db.models import Result, Submission
from grader.grading import ReferencePoint, References, Score, grade
from grader.results import JobResult
from grader.scoring import Metrics
from grader.service.context import Context
from grader.service.states import State
from grader.specs.exercise import ExerciseSpec
from grader.specs.rubric import RubricSpec


def rubric_hash(rubric: RubricSpec) -> str:
    return hashlib.sha256(rubric.model_dump_json().encode()).hexdigest()


def load_references(session: Session, spec: ExerciseSpec, profile: str, seed: int, board: str) -> References:
    """Latest successful run of each reference under the same spec hash, profile and seed."""
    rows = session.execute(
        select(Submission.reference_name, Result).join(Result, Result.submission_id == Submission.id)
        .where(Submission.exercise == spec.name, Submission.profile == profile, Submission.seed == seed,
               Submission.spec_hash == spec.spec_hash(), Submission.reference_name.is_not(None),
               Submission.state == State.DONE.value)
        .order_by(Submission.id)
    ).all()
    latest: dict[str, Result] = {}
    for name, res in rows:
        latest[name] = res
    points = {}
    for name, res in latest.items():
        acc = {"public": res.public_accuracy, "private": res.private_accuracy, "overall": res.accuracy}[board]
        if acc is not None:
            points[name] = ReferencePoint(name=name, accuracy=acc, params=res.params, fit_seconds=res.fit_seconds)
    return References(baseline=points.pop("baseline", None), others=sorted(points.values(), key=lambda p: p.name))


class GradedRow(BaseModel):
    score: Score
    rubric_hash: str


def grade_stored(ctx: Context, session: Session, sub: Submission, result: JobResult, metrics: Metrics | None) -> GradedRow:
    spec = ctx.catalog.get(sub.exercise)
    rubric = ctx.catalog.rubric(sub.exercise)
    refs = load_references(session, spec, sub.profile, sub.seed, rubric.board)
    return GradedRow(score=grade(result, metrics, rubric, refs, spec), rubric_hash=rubric_hash(rubric))


def apply_grade(res: Result, graded: GradedRow) -> None:
    res.score = graded.score.total if graded.score.graded else None
    res.max_score = graded.score.max_total
    res.grade = graded.score.model_dump(mode="json")
    res.rubric_hash = graded.rubric_hash
    res.graded_at = datetime.now(UTC)


def regrade(ctx: Context, exercise: str, profile: str | None = None, only_missing_references: bool = False) -> int:
    """Re-apply the current rubric to stored results. Never trains, never touches a backend."""
    if not ctx.is_instructor and not only_missing_references:
        from grader.errors import GraderError

        raise GraderError("regrading is for instructors only")
    ctx.catalog.get(exercise)
    count = 0
    from grader.db.engine import session_scope

    with session_scope(ctx.engine) as session:
        query = (select(Submission, Result).join(Result, Result.submission_id == Submission.id)
                 .where(Submission.exercise == exercise))
        if profile:
            query = query.where(Submission.profile == profile)
        for sub, res in session.execute(query).all():
            if only_missing_references and not (res.grade or {}).get("missing_references"):
                continue
            job_result = JobResult.model_validate(res.job_result)
            metrics = Metrics.model_validate(res.metrics) if res.metrics else None
            apply_grade(res, grade_stored(ctx, session, sub, job_result, metrics))
            count += 1
    return count


class GradeReport(BaseModel):
    """A graded run that is not stored as a submission (notebook cells, `grader run`)."""

    result: JobResult
    metrics: Metrics | None
    score: float
    max_score: float
    feedback: list[str]
    baseline_accuracy: float | None
    grade: Score


def grade_source(source: str, *, exercise: str, profile: str, settings: object, seed: int | None = None,
                 on_progress: object = None, reference_timeout: float = 1800.0,
                 references: tuple[str, ...] | None = None) -> GradeReport:
    """Train + score + grade one source in the foreground, against measured references.

    References missing for this profile are queued on the local backend and awaited first, so
    the first call in a fresh course takes longer; `grader references compute` avoids that.
    `references` limits which are measured here (e.g. ("baseline",)); criteria needing others are
    then reported as not assessed yet.
    """
    import time

    from grader.db.engine import session_scope
    from grader.service.runs import ingest, prepare_run, run_foreground
    from grader.service.submit import ensure_references  # submit imports this module: import here
    from grader.service.sync import sync
    from grader.settings import Settings
    from grader.submission import check_source

    if not isinstance(settings, Settings):
        raise TypeError("settings must be a grader Settings")
    ctx = Context(settings=settings)
    spec = ctx.catalog.get(exercise)
    rubric = ctx.catalog.rubric(exercise)
    info = check_source(source, "submission.py", spec)
    ensure_references(ctx, spec, profile, backend="local", only=references)
    deadline = time.monotonic() + reference_timeout
    while True:
        sync(ctx)
        with session_scope(ctx.engine) as session:
            pending = session.scalar(select(Submission.id).where(
                Submission.exercise == exercise, Submission.profile == profile,
                Submission.reference_name.is_not(None), Submission.state.in_(("queued", "running"))).limit(1))
        if pending is None or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    run, _ = prepare_run(source, info.sha256, spec, profile, seed, settings)
    run_foreground(run, on_progress if callable(on_progress) else None)  # type: ignore[arg-type]
    got = ingest(run, spec, profile, settings)
    with session_scope(ctx.engine) as session:
        refs = load_references(session, spec, profile, spec.seed if seed is None else seed, rubric.board)
    score = grade(got.result, got.metrics, rubric, refs, spec)
    lines = [f"{c.title}: {c.points:g}/{c.max_points:g} - {c.feedback}" for c in score.criteria] + score.diagnostics
    return GradeReport(result=got.result, metrics=got.metrics, score=score.total, max_score=score.max_total,
                       feedback=lines, baseline_accuracy=refs.baseline.accuracy if refs.baseline else None, grade=score)
