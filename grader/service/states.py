"""Submission states and how scheduler outcomes map onto them."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


ACTIVE = (State.QUEUED.value, State.RUNNING.value)
# failures that say something about the submission (deterministic), so a cached copy is honest
CACHEABLE_REASONS = ("invalid_submission", "participant_error")
# failures that are not the participant's fault: the submission does not count against the quota
REFUNDED_REASONS = ("infrastructure", "cancelled")
