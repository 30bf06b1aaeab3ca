"""How a run ended, in three enums: Outcome (the run), FailureReason (what a participant sees), ErrorKind (what
exactly went wrong, each mapping to one reason).

Kept apart from grader.results' pydantic models so that the read commands (status, history, the web
pages) can name a state without building the 50 models that validate a job's result.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"
    INVALID = "invalid"
    CANCELLED = "cancelled"


class FailureReason(StrEnum):
    """The participant-facing category of a failure (what the status table shows)."""

    INVALID_SUBMISSION = "invalid_submission"
    PARTICIPANT_ERROR = "participant_error"
    TIMEOUT = "timeout"
    OUT_OF_MEMORY = "out_of_memory"
    INVALID_RESULT = "invalid_result"
    INFRASTRUCTURE = "infrastructure"
    CANCELLED = "cancelled"


class ErrorKind(StrEnum):
    """What exactly went wrong; each maps to one FailureReason."""

    SYNTAX_ERROR = "syntax_error"
    IMPORT_ERROR = "import_error"
    MISSING_BUILD_MODEL = "missing_build_model"
    BUILD_ERROR = "build_error"
    NOT_A_MODEL = "not_a_model"
    KERAS2_API = "keras2_api"
    WRONG_INPUT_SHAPE = "wrong_input_shape"
    WRONG_OUTPUT_SIZE = "wrong_output_size"
    LOGITS_WITHOUT_FROM_LOGITS = "logits_without_from_logits"
    TOO_MANY_PARAMS = "too_many_params"
    BAD_TRAINING_CONFIG = "bad_training_config"
    BAD_AUGMENT = "bad_augment"
    NAN_LOSS = "nan_loss"
    FIT_ERROR = "fit_error"
    PREDICT_ERROR = "predict_error"
    TIMEOUT = "timeout"
    BUILD_TIMEOUT = "build_timeout"
    OUT_OF_MEMORY = "out_of_memory"
    DISK_QUOTA = "disk_quota"
    KILLED = "killed"
    NO_RESULT = "no_result"
    INVALID_RESULT = "invalid_result"
    INFRASTRUCTURE = "infrastructure"
    CANCELLED = "cancelled"

    @property
    def reason(self) -> FailureReason:
        return _REASONS.get(self, FailureReason.PARTICIPANT_ERROR)

    @property
    def outcome(self) -> Outcome:
        if self in (ErrorKind.TIMEOUT, ErrorKind.BUILD_TIMEOUT):
            return Outcome.TIMEOUT
        if self is ErrorKind.CANCELLED:
            return Outcome.CANCELLED
        if self.reason in (FailureReason.INVALID_SUBMISSION, FailureReason.INVALID_RESULT):
            return Outcome.INVALID
        return Outcome.FAILED


_REASONS = {
    ErrorKind.SYNTAX_ERROR: FailureReason.INVALID_SUBMISSION,
    ErrorKind.MISSING_BUILD_MODEL: FailureReason.INVALID_SUBMISSION,
    ErrorKind.BAD_TRAINING_CONFIG: FailureReason.INVALID_SUBMISSION,
    ErrorKind.TOO_MANY_PARAMS: FailureReason.INVALID_SUBMISSION,
    ErrorKind.TIMEOUT: FailureReason.TIMEOUT,
    ErrorKind.BUILD_TIMEOUT: FailureReason.TIMEOUT,
    ErrorKind.OUT_OF_MEMORY: FailureReason.OUT_OF_MEMORY,
    ErrorKind.INVALID_RESULT: FailureReason.INVALID_RESULT,
    ErrorKind.NO_RESULT: FailureReason.INVALID_RESULT,
    ErrorKind.DISK_QUOTA: FailureReason.INVALID_RESULT,
    ErrorKind.INFRASTRUCTURE: FailureReason.INFRASTRUCTURE,
    ErrorKind.CANCELLED: FailureReason.CANCELLED,
}
