"""Grade one source now against the stored references, without storing it as a submission (notebook cells)."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from grader.db.engine import session_scope
from grader.grading import Score, grade
from grader.results import JobResult
from grader.scoring import Metrics
from grader.service.context import Context
from grader.service.foreground import train_now
from grader.service.grade import load_references
from grader.service.references import wait_for_references
from grader.service.submit import ensure_references
from grader.submission import check_source


class GradeReport(BaseModel):
    """A graded run that is not stored as a submission."""

    result: JobResult
    metrics: Metrics | None
    score: float
    max_score: float
    feedback: list[str]
    baseline_accuracy: float | None
    grade: Score
    notes: list[str]


def grade_source(source: str, *, exercise: str, profile: str, ctx: Context, seed: int | None = None,
                 on_progress: Callable[[dict[str, object]], None] | None = None, reference_timeout: float = 1800.0,
                 references: tuple[str, ...] | None = None) -> GradeReport:
    """Train + score + grade one source against measured references.

    References missing for this profile are queued on the local backend and awaited first, so
    the first call in a fresh course takes longer; `grader references compute` avoids that.
    `references` limits which are measured here (e.g. ("baseline",)); criteria needing others are
    then reported as not assessed yet.
    """
    spec = ctx.catalog.get(exercise)
    rubric = ctx.catalog.rubric(exercise)
    info = check_source(source, "submission.py", spec)
    ensure_references(ctx, spec, profile, backend="local", only=references)
    ctx.ensure_worker()
    wait_for_references(ctx, exercise, profile, timeout=reference_timeout)
    _, _, got = train_now(ctx, source, info, spec, profile, seed, on_progress)
    with session_scope(ctx.reader) as session:
        refs = load_references(session, spec, profile, spec.seed if seed is None else seed, rubric.board)
    score = grade(got.result, got.metrics, rubric, refs, spec)
    lines = [f"{c.title}: {c.points:g}/{c.max_points:g} - {c.feedback}" for c in score.criteria] + score.diagnostics
    return GradeReport(result=got.result, metrics=got.metrics, score=score.total, max_score=score.max_total,
                       feedback=lines, baseline_accuracy=refs.baseline.accuracy if refs.baseline else None, grade=score,
                       notes=got.notes)
