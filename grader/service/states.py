"""Submission states and the failure reasons that decide refunds and caching."""

from __future__ import annotations

from enum import StrEnum

from grader.outcomes import FailureReason


class State(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        return self in (State.QUEUED, State.RUNNING)


ACTIVE = (State.QUEUED.value, State.RUNNING.value)
FINISHED = (State.DONE.value, State.FAILED.value, State.CANCELLED.value)
# failures that say something about the submission (deterministic), so a cached copy is honest
CACHEABLE_REASONS = (FailureReason.INVALID_SUBMISSION.value, FailureReason.PARTICIPANT_ERROR.value)
# failures that are not the participant's fault: the submission does not count against the quota
REFUNDED_REASONS = (FailureReason.INFRASTRUCTURE.value, FailureReason.CANCELLED.value)
