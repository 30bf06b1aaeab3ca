"""Per-exercise submission quotas in a rolling window; instructors are exempt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel

from grader.db.reads import quota_counts, when
from grader.errors import GraderError
from grader.service.access import Actor, require_instructor

if TYPE_CHECKING:  # the catalogue and its spec models are not needed to count submissions
    from grader.service.context import Context


class QuotaStatus(BaseModel):
    limit: int | None  # None = unlimited
    used: int
    remaining: int | None
    next_slot_at: datetime | None  # when the oldest counted submission leaves the window
    exempt: bool


def quota_status(ctx: Context, participant: str, exercise: str, *, exempt: bool = False) -> QuotaStatus:
    """How many submissions `participant` has left on `exercise` in the rolling window (reads only)."""
    if exempt:
        return QuotaStatus(limit=None, used=0, remaining=None, next_slot_at=None, exempt=True)
    since = datetime.now(UTC) - timedelta(hours=ctx.settings.quota_window_hours)
    override, used, oldest = quota_counts(ctx.reads, participant, exercise, since)
    limit = override if override is not None else ctx.settings.quota_per_window
    if limit is None:
        return QuotaStatus(limit=None, used=used, remaining=None, next_slot_at=None, exempt=False)
    next_slot = None
    first = when(oldest)
    if used >= limit and first is not None:
        next_slot = first + timedelta(hours=ctx.settings.quota_window_hours)
    return QuotaStatus(limit=limit, used=used, remaining=max(limit - used, 0), next_slot_at=next_slot, exempt=False)


def set_override(ctx: Context, actor: Actor, participant: str, exercise: str, limit: int) -> QuotaStatus:
    """An instructor's per-participant limit for one exercise."""
    require_instructor(actor, "changing quotas")
    ctx.catalog.get(exercise)
    if limit < 0:
        raise GraderError("a quota limit cannot be negative")
    from sqlalchemy import select

    from grader.db.engine import session_scope
    from grader.db.models import QuotaOverride

    with session_scope(ctx.engine) as session:
        row = session.scalar(select(QuotaOverride).where(QuotaOverride.participant == participant,
                                                         QuotaOverride.exercise == exercise))
        if row is None:
            session.add(QuotaOverride(participant=participant, exercise=exercise, limit=limit))
        else:
            row.limit = limit
    return quota_status(ctx, participant, exercise)
