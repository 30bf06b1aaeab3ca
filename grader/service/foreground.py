"""Train and score one source now, in the foreground, stored nowhere (`grader run`).

Nothing here touches the database, so `grader run` starts the job without importing SQLAlchemy;
grading against stored references (notebook cells) is grader.service.graded_run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from grader.grading import References, diagnose
from grader.results import Facts, JobResult, JobSpec
from grader.rundir import RunDir
from grader.scoring import Metrics
from grader.service.context import Context
from grader.service.ingest import Ingested, ingest
from grader.service.runs import prepare_run, run_foreground
from grader.specs.exercise import ExerciseSpec
from grader.submission import SubmissionInfo, read_submission


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


def train_now(ctx: Context, source: str, info: SubmissionInfo, spec: ExerciseSpec, profile: str, seed: int | None,
              on_progress: Callable[[dict[str, Any]], None] | None) -> tuple[RunDir, JobSpec, Ingested]:
    """Prepare a run directory, train in the sandbox in the foreground, ingest what the job left."""
    run, job = prepare_run(source, info, spec, profile, seed, ctx.settings)
    run_foreground(run, job, on_progress)
    return run, job, ingest(run, job, ctx.labels(spec, profile))


def run_once(ctx: Context, path: Path, *, exercise: str, profile: str | None = None, seed: int | None = None,
             on_progress: Callable[[dict[str, Any]], None] | None = None) -> LocalRun:
    spec = ctx.catalog.get(exercise)
    profile = profile or ctx.settings.profile
    spec.profile(profile)
    source, info = read_submission(path, spec)
    run, job, got = train_now(ctx, source, info, spec, profile, seed, on_progress)
    metrics = got.metrics.for_participant() if got.metrics is not None else None
    tips = diagnose(got.result, got.metrics, spec, References()) if got.metrics is not None else []
    return LocalRun(run_dir=str(run.path), job=job, result=got.result, metrics=metrics, facts=got.facts,
                    notes=got.notes, tips=tips, warnings=info.warnings)
