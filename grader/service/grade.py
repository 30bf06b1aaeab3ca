"""Grading on the trusted side: references for a profile, rubric application, storing results, regrade."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.db.engine import session_scope
from grader.db.models import Participant, Result, Submission
from grader.grading import ReferencePoint, References, Score, grade
from grader.outcomes import Outcome
from grader.results import Facts, JobResult, JobSpec
from grader.scoring import Metrics
from grader.service.access import Actor, require_instructor
from grader.service.context import Context
from grader.service.ingest import Ingested
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
               Submission.parent_id.is_(None), Submission.state == State.DONE.value)
        .order_by(Submission.id)
    ).all()
    latest: dict[str, Result] = {}
    for name, res in rows:
        if name is not None:
            latest[name] = res
    points = {}
    for name, res in latest.items():
        acc = {"public": res.public_accuracy, "private": res.private_accuracy, "overall": res.accuracy}[board]
        if acc is not None:
            points[name] = ReferencePoint(name=name, accuracy=acc, params=res.params,
                                          fit_seconds=res.wall_seconds or res.fit_seconds)
    return References(baseline=points.pop("baseline", None), others=sorted(points.values(), key=lambda p: p.name))


def stored_spec(ctx: Context, sub: Submission) -> ExerciseSpec:
    """The exercise as the job ran it (the coordinator's copy), else the catalogue's current one."""
    if sub.job_spec:
        return JobSpec.model_validate(sub.job_spec).exercise
    return ctx.catalog.get(sub.exercise)


def stored_run(res: Result) -> tuple[JobResult, Metrics | None, Facts]:
    facts = Facts.model_validate(res.facts) if res.facts else Facts(params=res.params, fit_seconds=res.fit_seconds)
    return (JobResult.model_validate(res.job_result), Metrics.model_validate(res.metrics) if res.metrics else None,
            facts)


class GradedRow(BaseModel):
    score: Score
    rubric_hash: str


def grade_stored(ctx: Context, session: Session, sub: Submission, result: JobResult, metrics: Metrics | None,
                 facts: Facts | None = None, refs: References | None = None) -> GradedRow:
    spec = stored_spec(ctx, sub)
    rubric = ctx.catalog.rubric(sub.exercise)
    if refs is None:
        refs = load_references(session, spec, sub.profile, sub.seed, rubric.board)
    score = grade(_trusted(result, facts), metrics, rubric, refs, spec)
    return GradedRow(score=score, rubric_hash=rubric_hash(rubric))


def _trusted(result: JobResult, facts: Facts | None) -> JobResult:
    """The rubric judges facts where there are any: parameters from the weights, time by the supervisor."""
    if facts is None:
        return result
    timings = dict(result.timings)
    if facts.wall_seconds is not None:
        timings["fit"] = facts.wall_seconds
    return result.model_copy(update={"params": facts.params if facts.params is not None else result.params,
                                     "timings": timings})


def apply_grade(res: Result, graded: GradedRow) -> None:
    res.score = graded.score.total if graded.score.graded else None
    res.max_score = graded.score.max_total
    res.grade = graded.score.model_dump(mode="json")
    res.rubric_hash = graded.rubric_hash
    res.graded_at = datetime.now(UTC)


def result_row(submission_id: int, got: Ingested) -> Result:
    """One Result row from an ingested run (the only place that maps one onto the other)."""
    m, result, facts = got.metrics, got.result, got.facts
    return Result(
        submission_id=submission_id, outcome=result.outcome.value,
        error_kind=result.error_kind.value if result.error_kind else None,
        accuracy=m.accuracy if m else None, public_accuracy=m.public_accuracy if m else None,
        private_accuracy=m.private_accuracy if m else None, train_accuracy=m.train_accuracy if m else None,
        params=facts.params if facts.params is not None else result.params,
        epochs=len(result.history) or result.epochs, fit_seconds=facts.fit_seconds or result.timings.get("fit"),
        wall_seconds=facts.wall_seconds, peak_memory_mb=facts.peak_memory_mb,
        job_result=result.model_dump(mode="json"), metrics=m.model_dump(mode="json") if m else None,
        facts=facts.model_dump(mode="json"), notes=got.notes,
    )


def copy_result(submission_id: int, old: Result) -> Result:
    """A cached answer: the stored result of an identical run, under a new submission."""
    row = Result(submission_id=submission_id)
    for column in Result.__table__.columns:
        if column.name not in ("submission_id", "score", "max_score", "grade", "rubric_hash", "graded_at"):
            setattr(row, column.name, getattr(old, column.name))
    return row


class GradeChange(BaseModel):
    submission_id: int
    participant: str
    before: float | None
    after: float | None


class RegradeReport(BaseModel):
    exercise: str
    regraded: int
    changes: list[GradeChange] = Field(default_factory=list)


def regrade(ctx: Context, actor: Actor | None, exercise: str, profile: str | None = None,
            only_stale: bool = False,
            on_progress: Callable[[int, int], None] | None = None) -> RegradeReport:
    """Re-apply the current rubric to stored results. Never trains, never touches a backend.

    `actor` None is the system itself, after a reference run landed: `only_stale` then regrades just the
    grades compared against other reference results than those stored now (those that waited for it, and
    those made before it ran, the reference rows themselves included).
    """
    if actor is not None:
        require_instructor(actor, "regrading")
    ctx.catalog.get(exercise)
    rubric = ctx.catalog.rubric(exercise)
    report = RegradeReport(exercise=exercise, regraded=0)
    with session_scope(ctx.engine) as session:
        query = (select(Submission, Result, Participant.name).join(Result, Result.submission_id == Submission.id)
                 .join(Participant, Participant.id == Submission.participant_id)
                 .where(Submission.exercise == exercise))
        if profile:
            query = query.where(Submission.profile == profile)
        rows = session.execute(query).all()
        known: dict[tuple[str, str, int], References] = {}
        for i, (sub, res, name) in enumerate(rows, start=1):
            key = (sub.spec_hash, sub.profile, sub.seed)
            if key not in known:
                known[key] = load_references(session, stored_spec(ctx, sub), sub.profile, sub.seed, rubric.board)
            refs = known[key]
            if only_stale and not _stale(res, refs):
                continue
            before = res.score
            result, metrics, facts = stored_run(res)
            apply_grade(res, grade_stored(ctx, session, sub, result, metrics, facts, refs))
            report.regraded += 1
            if before != res.score:
                report.changes.append(GradeChange(submission_id=sub.id, participant=name, before=before,
                                                  after=res.score))
            if on_progress:
                on_progress(i, len(rows))
    return report


def _stale(res: Result, refs: References) -> bool:
    """Graded against other reference results than those stored now (a grade that waited for a missing
    reference included: it lacks that one). A failed run's grade does not depend on them."""
    return res.outcome == Outcome.OK.value and (res.grade or {}).get("references") != refs.measured
