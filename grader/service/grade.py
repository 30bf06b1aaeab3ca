"""Grading on the trusted side: references for a profile, rubric application, regrade."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.db.engine import session_scope
from grader.db.models import Result, Submission
from grader.errors import GraderError
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
        raise GraderError("regrading is for instructors only")
    ctx.catalog.get(exercise)
    count = 0
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

