"""Leaderboard and export queries: one indexed SQL statement each, no per-row lookups."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from grader.db.models import Participant, Result, Submission


class BoardRow(BaseModel):
    participant: str
    submission_id: int
    reference_name: str | None
    public_accuracy: float | None
    private_accuracy: float | None
    score: float | None
    max_score: float | None
    params: int | None
    epochs: int | None
    fit_seconds: float | None
    n_submissions: int
    last_submitted: datetime | None
    wall_seconds: float | None = None
    public_std: float | None = None
    private_std: float | None = None
    n_seeds: int | None = None


def best_per_participant(session: Session, exercise: str, profile: str, board: str) -> list[BoardRow]:
    """Each participant's best graded submission on `board` (ties: earliest wins), plus counts."""
    acc = Result.private_accuracy if board == "private" else Result.public_accuracy
    ranked = (
        select(
            Submission.id.label("sid"), Submission.participant_id.label("pid"),
            func.row_number().over(partition_by=Submission.participant_id,
                                   order_by=(acc.desc(), Submission.id.asc())).label("rn"),
        )
        .join(Result, Result.submission_id == Submission.id)
        .where(Submission.exercise == exercise, Submission.profile == profile, Submission.reference_name.is_(None),
               Submission.state == "done", Submission.parent_id.is_(None), acc.is_not(None))
        .subquery()
    )
    counts = (
        select(Submission.participant_id.label("pid"), func.count().label("n"),
               func.max(Submission.created_at).label("last"))
        .where(Submission.exercise == exercise, Submission.profile == profile, Submission.reference_name.is_(None),
               Submission.parent_id.is_(None))
        .group_by(Submission.participant_id)
        .subquery()
    )
    rows = session.execute(
        select(Participant.name, Submission.id, Result.public_accuracy, Result.private_accuracy, Result.score,
               Result.max_score, Result.params, Result.epochs, Result.fit_seconds, counts.c.n, counts.c.last,
               Result.wall_seconds, Result.public_std, Result.private_std, Result.n_seeds)
        .select_from(ranked)
        .join(Submission, Submission.id == ranked.c.sid)
        .join(Result, Result.submission_id == Submission.id)
        .join(Participant, Participant.id == ranked.c.pid)
        .join(counts, counts.c.pid == ranked.c.pid)
        .where(ranked.c.rn == 1)
    ).all()
    return [BoardRow(participant=r[0], submission_id=r[1], reference_name=None, public_accuracy=r[2],
                     private_accuracy=r[3], score=r[4], max_score=r[5], params=r[6], epochs=r[7], fit_seconds=r[8],
                     n_submissions=r[9], last_submitted=r[10], wall_seconds=r[11], public_std=r[12],
                     private_std=r[13], n_seeds=r[14]) for r in rows]


def reference_rows(session: Session, exercise: str, profile: str, seed: int, spec_hash: str) -> list[BoardRow]:
    """Latest successful run of each reference for this spec, profile and seed."""
    latest = (
        select(func.max(Submission.id).label("sid"))
        .where(Submission.exercise == exercise, Submission.profile == profile, Submission.seed == seed,
               Submission.spec_hash == spec_hash, Submission.reference_name.is_not(None), Submission.state == "done",
               Submission.parent_id.is_(None))
        .group_by(Submission.reference_name)
        .subquery()
    )
    rows = session.execute(
        select(Submission, Result).join(Result, Result.submission_id == Submission.id)
        .where(Submission.id.in_(select(latest.c.sid)))
    ).all()
    return [BoardRow(participant=f"{s.reference_name} (reference)", submission_id=s.id, reference_name=s.reference_name,
                     public_accuracy=r.public_accuracy, private_accuracy=r.private_accuracy, score=r.score,
                     max_score=r.max_score, params=r.params, epochs=r.epochs, fit_seconds=r.fit_seconds,
                     n_submissions=1, last_submitted=s.created_at, wall_seconds=r.wall_seconds,
                     public_std=r.public_std, private_std=r.private_std, n_seeds=r.n_seeds) for s, r in rows]

