"""Reference solutions: what has been measured for a profile, and waiting until it has."""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import BaseModel
from sqlalchemy import select

from grader.db.engine import session_scope
from grader.db.models import Result, Submission
from grader.service.access import Actor, require_instructor
from grader.service.context import Context
from grader.service.states import ACTIVE, State
from grader.service.submit import ensure_references


class ReferenceRow(BaseModel):
    name: str
    state: State
    public_accuracy: float | None
    public_std: float | None = None
    fit_seconds: float | None
    params: int | None = None


def reference_status(ctx: Context, exercise: str, profile: str) -> list[ReferenceRow]:
    """The latest run of each reference solution for an exercise profile."""
    with session_scope(ctx.reader) as session:
        rows = session.execute(
            select(Submission.reference_name, Submission.state, Result.public_accuracy, Result.public_std,
                   Result.fit_seconds, Result.params)
            .outerjoin(Result, Result.submission_id == Submission.id)
            .where(Submission.exercise == exercise, Submission.profile == profile,
                   Submission.reference_name.is_not(None), Submission.parent_id.is_(None))
            .order_by(Submission.id)
        ).all()
    latest = {name: ReferenceRow(name=name, state=State(st), public_accuracy=acc, public_std=std, fit_seconds=fit,
                                 params=params)
              for name, st, acc, std, fit, params in rows}
    return list(latest.values())


def wait_for_references(ctx: Context, exercise: str, profile: str, timeout: float = 1800.0, poll: float = 1.0,
                        on_progress: Callable[[list[ReferenceRow]], None] | None = None) -> bool:
    """Wait (reading only) until no reference run of this profile is queued or running; False on timeout.

    The background worker (or the server's loop) does the work meanwhile.
    """
    deadline = time.monotonic() + timeout
    while True:
        rows = reference_status(ctx, exercise, profile)
        if on_progress:
            on_progress(rows)
        if all(r.state.value not in ACTIVE for r in rows):
            return True
        if time.monotonic() > deadline:
            return False
        ctx.ensure_worker()
        time.sleep(poll)


def compute_references(ctx: Context, actor: Actor, *, exercise: str, profile: str | None = None,
                       force: bool = False) -> list[str]:
    """Queue the baseline and references of one exercise profile that are not measured yet (or all: force)."""
    require_instructor(actor, "measuring references")
    spec = ctx.catalog.get(exercise)
    profile = profile or ctx.settings.profile
    spec.profile(profile)
    queued = ensure_references(ctx, spec, profile, force=force)
    ctx.ensure_worker()
    return queued
