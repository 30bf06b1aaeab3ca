"""Models that cross the sandbox boundary: JobSpec (job.json in) and JobResult (result.json out).

The coordinator validates result.json with these models and a size cap; it never unpickles
anything from a run directory and recomputes every metric from predictions.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from grader.errors import ResultError
from grader.specs.exercise import ExerciseSpec, Profile

MAX_RESULT_BYTES = 2_000_000
MAX_MESSAGE_CHARS = 4_000


def utcnow() -> datetime:
    return datetime.now(UTC)


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
    OUT_OF_MEMORY = "out_of_memory"
    KILLED = "killed"
    NO_RESULT = "no_result"
    INVALID_RESULT = "invalid_result"
    INFRASTRUCTURE = "infrastructure"
    CANCELLED = "cancelled"

    @property
    def reason(self) -> FailureReason:
        return _REASONS.get(self, FailureReason.PARTICIPANT_ERROR)


_REASONS = {
    ErrorKind.SYNTAX_ERROR: FailureReason.INVALID_SUBMISSION,
    ErrorKind.MISSING_BUILD_MODEL: FailureReason.INVALID_SUBMISSION,
    ErrorKind.BAD_TRAINING_CONFIG: FailureReason.INVALID_SUBMISSION,
    ErrorKind.TOO_MANY_PARAMS: FailureReason.INVALID_SUBMISSION,
    ErrorKind.TIMEOUT: FailureReason.TIMEOUT,
    ErrorKind.OUT_OF_MEMORY: FailureReason.OUT_OF_MEMORY,
    ErrorKind.INFRASTRUCTURE: FailureReason.INFRASTRUCTURE,
    ErrorKind.CANCELLED: FailureReason.CANCELLED,
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobSpec(_Model):
    """job.json: all a job needs; self-contained so a compute node needs no course folder."""

    run_id: str = Field(description="Unique id of this run (also the run directory's name).")
    exercise: ExerciseSpec = Field(description="The exercise, embedded whole.")
    spec_hash: str = Field(description="ExerciseSpec.spec_hash() at submission time.")
    profile_name: str = Field(description="Profile name, e.g. 'smoke' or 'full'.")
    profile: Profile = Field(description="The profile, embedded.")
    seed: int = Field(description="Seed for Python, NumPy and TensorFlow.")
    submission_sha256: str = Field(description="sha256 of submission.py in the run directory.")
    inputs_dir: str = Field(description="Absolute path of the prepared inputs (read-only, no held-out labels).")
    wall_seconds: int = Field(description="Wall-clock limit enforced by the supervisor.")
    memory_mb: int = Field(description="Memory limit of the job process.")
    grader_version: str = Field(description="Version of grader that wrote this spec.")
    backend: str = Field(default="local", description="Backend that runs the job.")
    created_at: datetime = Field(default_factory=utcnow, description="When the coordinator wrote it.")

    def cache_key(self) -> str:
        return f"{self.submission_sha256}:{self.spec_hash}:{self.seed}:{self.profile_name}"


class EpochRecord(_Model):
    epoch: int
    loss: float | None = None
    accuracy: float | None = None
    seconds: float = 0.0


class JobResult(_Model):
    """result.json: always written, on success and on every kind of failure."""

    outcome: Outcome
    error_kind: ErrorKind | None = None
    message: str | None = Field(default=None, max_length=MAX_MESSAGE_CHARS, description="Participant-facing.")
    detail: str | None = Field(default=None, max_length=20_000, description="Traceback tail for instructors.")
    history: list[EpochRecord] = Field(default_factory=list, max_length=1000)
    timings: dict[str, float] = Field(default_factory=dict, description="Seconds per phase.")
    params: int | None = None
    trainable_params: int | None = None
    layer_types: list[str] = Field(default_factory=list, max_length=2000)
    model_summary: str | None = Field(default=None, max_length=50_000)
    input_layout: str | None = None
    output_units: int | None = None
    label_encoding: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    learning_rate: float | None = None
    loss: str | None = None
    augment: bool = False
    seed: int | None = None
    profile: str | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    submission_sha256: str | None = None
    spec_hash: str | None = None
    host: str | None = None
    backend: str | None = None
    scheduler_job_id: str | None = None
    gpu: dict[str, str] = Field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    n_predictions: int | None = None

    @classmethod
    def failed(cls, kind: ErrorKind, message: str, **fields: object) -> JobResult:
        outcome = {
            ErrorKind.TIMEOUT: Outcome.TIMEOUT,
            ErrorKind.CANCELLED: Outcome.CANCELLED,
        }.get(kind, Outcome.INVALID if kind.reason is FailureReason.INVALID_SUBMISSION else Outcome.FAILED)
        return cls(outcome=outcome, error_kind=kind, message=message[:MAX_MESSAGE_CHARS], **fields)  # type: ignore[arg-type]

    @property
    def reason(self) -> FailureReason | None:
        return self.error_kind.reason if self.error_kind else None


def read_json_capped(path: Path, limit: int = MAX_RESULT_BYTES) -> object:
    """Read JSON written by untrusted code: refuse anything large before parsing it."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ResultError(f"{path.name} is missing") from None
    if size > limit:
        raise ResultError(f"{path.name} is {size} bytes, over the {limit}-byte limit")
    try:
        return json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultError(f"{path.name} is not valid JSON: {exc}") from None


def load_result(path: Path) -> JobResult:
    """Validate an untrusted result.json; any problem is a ResultError, never a crash."""
    raw = read_json_capped(path)
    try:
        return JobResult.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ResultError(f"{path.name} does not match the result schema: {first['loc']}: {first['msg']}") from None
