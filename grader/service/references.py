"""Reference solutions: what has been measured for a profile, and waiting until it has."""

from __future__ import annotations

import time

from pydantic import BaseModel
from sqlalchemy import select

from grader.db.engine import session_scope
from grader.db.models import Result, Submission
from grader.service.context import Context
from grader.service.states import ACTIVE
from grader.service.sync import sync


class ReferenceRow(BaseModel):
    name: str
    state: str
    public_accuracy: float | None
    fit_seconds: float | None


def reference_status(ctx: Context, exercise: str, profile: str) -> list[ReferenceRow]:
    """The latest run of each reference solution for an exercise profile."""
    with session_scope(ctx.engine) as session:
        rows = session.execute(
            select(Submission.reference_name, Submission.state, Result.public_accuracy, Result.fit_seconds)
            .outerjoin(Result, Result.submission_id == Submission.id)
            .where(Submission.exercise == exercise, Submission.profile == profile,
                   Submission.reference_name.is_not(None))
            .order_by(Submission.id)
        ).all()
    latest = {name: ReferenceRow(name=name, state=st, public_accuracy=acc, fit_seconds=fit)
              for name, st, acc, fit in rows}
    return list(latest.values())


def wait_for_references(ctx: Context, exercise: str, profile: str, timeout: float = 1800.0,
                        poll: float = 1.0) -> bool:
    """Sync until no reference run of this profile is queued or running; False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        sync(ctx)
        if all(r.state not in ACTIVE for r in reference_status(ctx, exercise, profile)):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
