"""Per-exercise submission quotas in a rolling window; instructors are exempt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from grader.db.engine import session_scope
from grader.db.models import Participant, QuotaOverride, Submission
from grader.errors import GraderError
from grader.service.access import Actor, require_instructor
from grader.service.context import Context


class QuotaStatus(BaseModel):
    limit: int | None  # None = unlimited
    used: int
    remaining: int | None
    next_slot_at: datetime | None  # when the oldest counted submission leaves the window
    exempt: bool


def quota_status(ctx: Context, session: Session, participant: str, exercise: str, *, exempt: bool = False) -> QuotaStatus:
    override = session.scalar(select(QuotaOverride.limit).where(QuotaOverride.participant == participant,
                                                                QuotaOverride.exercise == exercise))
    limit = override if override is not None else ctx.settings.quota_per_window
    if exempt or limit is None:
        return QuotaStatus(limit=None, used=0, remaining=None, next_slot_at=None, exempt=exempt)
    since = datetime.now(UTC) - timedelta(hours=ctx.settings.quota_window_hours)
    counted = (select(Submission.created_at).join(Participant)
               .where(Participant.name == participant, Submission.exercise == exercise,
                      Submission.reference_name.is_(None), Submission.counts_for_quota.is_(True),
                      Submission.parent_id.is_(None),
                      Submission.created_at >= since))
    used = session.scalar(select(func.count()).select_from(counted.subquery())) or 0
    oldest = session.scalar(select(func.min(counted.subquery().c.created_at)))
    next_slot = None
    if used >= limit and oldest is not None:
        oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
        next_slot = oldest + timedelta(hours=ctx.settings.quota_window_hours)
    return QuotaStatus(limit=limit, used=used, remaining=max(limit - used, 0), next_slot_at=next_slot, exempt=False)


def set_override(ctx: Context, actor: Actor, participant: str, exercise: str, limit: int) -> QuotaStatus:
    """An instructor's per-participant limit for one exercise."""
    require_instructor(actor, "changing quotas")
    ctx.catalog.get(exercise)
    if limit < 0:
        raise GraderError("a quota limit cannot be negative")
    with session_scope(ctx.engine) as session:
        row = session.scalar(select(QuotaOverride).where(QuotaOverride.participant == participant,
                                                         QuotaOverride.exercise == exercise))
        if row is None:
            session.add(QuotaOverride(participant=participant, exercise=exercise, limit=limit))
        else:
            row.limit = limit
        session.flush()
        return quota_status(ctx, session, participant, exercise)
