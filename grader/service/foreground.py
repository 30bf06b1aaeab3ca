"""Grade one source now, in the foreground, without storing it as a submission (`grader run`, notebook cells)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from grader.db.engine import session_scope
from grader.grading import References, Score, diagnose, grade
from grader.results import Facts, JobResult, JobSpec
from grader.rundir import RunDir
from grader.scoring import Metrics
from grader.service.context import Context
from grader.service.grade import load_references
from grader.service.ingest import Ingested, ingest
from grader.service.references import wait_for_references
from grader.service.runs import prepare_run, run_foreground
from grader.service.submit import ensure_references
from grader.submission import check_source, read_submission


class LocalRun(BaseModel):
    """`grader run`: a run that trained here and now, scored, with advice, stored nowhere."""

    run_dir: str
    job: JobSpec
    result: JobResult
    metrics: Metrics | None
    facts: Facts
    notes: list[str]
    tips: list[str]
    warnings: list[str]


def run_once(ctx: Context, path: Path, *, exercise: str, profile: str | None = None, seed: int | None = None,
             on_progress: Callable[[dict[str, Any]], None] | None = None) -> LocalRun:
    spec = ctx.catalog.get(exercise)
    profile = profile or ctx.settings.profile
    spec.profile(profile)
    source, info = read_submission(path, spec)
    run, job = prepare_run(source, info, spec, profile, seed, ctx.settings)
    run_foreground(run, job, on_progress)
    got = ingest(run, job, ctx.labels(spec, profile))
    metrics = got.metrics.for_participant() if got.metrics is not None else None
    tips = diagnose(got.result, got.metrics, spec, References()) if got.metrics is not None else []
    return LocalRun(run_dir=str(run.path), job=job, result=got.result, metrics=metrics, facts=got.facts,
                    notes=got.notes, tips=tips, warnings=info.warnings)


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
    run, job = prepare_run(source, info, spec, profile, seed, ctx.settings)
    run_foreground(run, job, on_progress)
    got: Ingested = ingest(RunDir(run.path), job, ctx.labels(spec, profile))
    with session_scope(ctx.reader) as session:
        refs = load_references(session, spec, profile, spec.seed if seed is None else seed, rubric.board)
    score = grade(got.result, got.metrics, rubric, refs, spec)
    lines = [f"{c.title}: {c.points:g}/{c.max_points:g} - {c.feedback}" for c in score.criteria] + score.diagnostics
    return GradeReport(result=got.result, metrics=got.metrics, score=score.total, max_score=score.max_total,
                       feedback=lines, baseline_accuracy=refs.baseline.accuracy if refs.baseline else None, grade=score,
                       notes=got.notes)
