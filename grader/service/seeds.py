"""Multi-seed grading: one submission trained under N seeds, graded on the mean, shown as mean ± std.

A group is a submission row with `seeds` set; each seed is a submission row of its own with
`parent_id` pointing at the group, so it runs, caches and retries like any single-seed run (and a
seed already graded for the same file is answered from the cache). When the last seed finishes,
the group gets a Result of its own: the means, their standard deviations, and the grade of the mean.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.db.models import Result, Submission
from grader.scoring import Metrics
from grader.service.context import Context
from grader.service.grade import apply_grade, copy_result, grade_stored, stored_run
from grader.service.states import ACTIVE, State
from grader.specs.exercise import ExerciseSpec


def seeds_for(spec: ExerciseSpec, n: int) -> list[int]:
    """The exercise's seed first, so a group's first seed is the single-seed run everyone already has."""
    return [spec.seed + i for i in range(n)]


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def refresh_group(ctx: Context, session: Session, parent_id: int) -> bool:
    """Give a group its state and, once every seed has finished, its aggregated, graded Result."""
    parent = session.get(Submission, parent_id)
    if parent is None or not parent.seeds:
        return False
    rows = session.execute(select(Submission, Result).outerjoin(Result, Result.submission_id == Submission.id)
                           .where(Submission.parent_id == parent_id).order_by(Submission.seed)).all()
    if any(sub.state in ACTIVE for sub, _ in rows) or len(rows) < len(parent.seeds):
        if any(sub.state == State.RUNNING.value for sub, _ in rows) and parent.state == State.QUEUED.value:
            parent.state, parent.started_at = State.RUNNING.value, datetime.now(UTC)
        return False
    if session.get(Result, parent_id) is not None:
        return False  # already aggregated
    bad = next(((s, r) for s, r in rows if s.state != State.DONE.value or r is None), None)
    now = datetime.now(UTC)
    if bad is not None:
        sub, res = bad
        parent.state, parent.reason, parent.message = sub.state, sub.reason, sub.message
        parent.finished_at = now
        if res is not None:
            row = copy_result(parent_id, res)
            session.add(row)
            session.flush()
            result, metrics, facts = stored_run(res)
            apply_grade(row, grade_stored(ctx, session, parent, result, metrics, facts))
        return True
    results = [r for _, r in rows if r is not None]
    first = results[0]
    pub = _mean_std([r.public_accuracy or 0.0 for r in results])
    priv = _mean_std([r.private_accuracy or 0.0 for r in results])
    overall = statistics.fmean(r.accuracy or 0.0 for r in results)
    trains = [r.train_accuracy for r in results if r.train_accuracy is not None]
    row = copy_result(parent_id, first)
    row.public_accuracy, row.public_std = pub
    row.private_accuracy, row.private_std = priv
    row.accuracy, row.n_seeds = overall, len(results)
    row.train_accuracy = statistics.fmean(trains) if trains else None
    walls = [r.wall_seconds for r in results if r.wall_seconds is not None]
    row.wall_seconds = statistics.fmean(walls) if walls else None
    result, metrics, facts = stored_run(first)
    if metrics is not None:
        gap = None if row.train_accuracy is None else row.train_accuracy - pub[0]
        metrics = metrics.model_copy(update={"public_accuracy": pub[0], "private_accuracy": priv[0],
                                             "accuracy": overall, "train_accuracy": row.train_accuracy,
                                             "generalization_gap": gap})
        row.metrics = metrics.model_dump(mode="json")
    session.add(row)
    session.flush()
    apply_grade(row, grade_stored(ctx, session, parent, result, metrics, facts))
    parent.state, parent.reason, parent.message, parent.finished_at = State.DONE.value, None, None, now
    return True


def group_metrics(res: Result) -> Metrics | None:
    return Metrics.model_validate(res.metrics) if res.metrics else None
