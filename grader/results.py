"""Models that cross the sandbox boundary: JobSpec (job.json in), JobResult (the job's claims out),
SupervisorReport (what the supervisor measured itself).

The coordinator validates what comes back with these models after reading it through
grader.untrusted; it never unpickles anything from a run directory and recomputes every metric
from predictions. Every string and list a job can fill is bounded (cut, not refused, so an honest
2,000-layer model is fine), and every count or duration must be in range (a negative one is refused).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from grader.errors import ResultError
from grader.outcomes import ErrorKind, FailureReason, Outcome
from grader.specs.exercise import ExerciseSpec, Profile

MAX_RESULT_BYTES = 2_000_000
MAX_MESSAGE_CHARS = 4_000
MAX_COUNT = 10**12


def utcnow() -> datetime:
    return datetime.now(UTC)


def _cut_str(limit: int) -> BeforeValidator:
    return BeforeValidator(lambda v: v[:limit] if isinstance(v, str) else v)


def _cut_list(limit: int) -> BeforeValidator:
    return BeforeValidator(lambda v: v[:limit] if isinstance(v, list) else v)


def _cut_dict(limit: int, key_chars: int = 64, value_chars: int = 500) -> BeforeValidator:
    def cut(v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        return {str(k)[:key_chars]: (x[:value_chars] if isinstance(x, str) else x) for k, x in list(v.items())[:limit]}
    return BeforeValidator(cut)


Text = Annotated[str, _cut_str(200)]
Message = Annotated[str, _cut_str(MAX_MESSAGE_CHARS)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Seconds = Annotated[float, Field(ge=0, le=1e8, allow_inf_nan=False)]


class _Model(BaseModel):
    # defer_build: each model's validator is built on its first use, not at import (`grader show` and the
    # feedback pages read two of these models; a job or an ingest builds what it uses)
    model_config = ConfigDict(extra="forbid", defer_build=True)


class IsolationPolicy(_Model):
    """How the supervisor isolates this job; chosen by the coordinator, read-only to the job."""

    namespaces: str = Field(default="auto", description="auto, bwrap, unshare or none.")
    landlock: bool = Field(default=True, description="The job confines itself with Landlock where the kernel has it.")
    scratch_mb: int = Field(default=512, ge=16, description="Size of the job's writable scratch folder.")
    output_mb: int = Field(default=256, ge=16, description="Total size of what the job may send back.")


class JobSpec(_Model):
    """job.json: all a job needs; self-contained so a compute node needs no course folder.

    The coordinator keeps its own copy (the database, the local queue entry) and writes job.json
    from it before every attempt, so nothing a job does to the file reaches a retry.
    """

    run_id: str = Field(description="Unique id of this run (also the run directory's name).")
    exercise: ExerciseSpec = Field(description="The exercise, embedded whole (its held-out split is blanked for the job).")
    spec_hash: str = Field(description="ExerciseSpec.spec_hash() at submission time.")
    profile_name: str = Field(description="Profile name, e.g. 'smoke' or 'full'.")
    profile: Profile = Field(description="The profile, embedded.")
    seed: int = Field(description="Seed for Python, NumPy and TensorFlow.")
    epochs: int | None = Field(default=None, ge=1, description="Epochs grader trains for (from the submission's "
                               "TRAINING, read statically, clamped by the profile); none = the job decides.")
    batch_size: int | None = Field(default=None, ge=1, description="Batch size grader trains with.")
    submission_sha256: str = Field(description="sha256 of submission.py in the run directory.")
    inputs_dir: str = Field(description="Absolute path of the prepared inputs (read-only, no held-out labels).")
    wall_seconds: int = Field(description="Wall-clock limit enforced by the supervisor.")
    wall_basis: str | None = Field(default=None, max_length=300,
                                   description="Where a derived wall_seconds comes from (told to the participant).")
    build_seconds: int = Field(default=300, description="Limit from start to the first epoch (import + build_model).")
    memory_mb: int = Field(description="Memory limit of the job process.")
    isolation: IsolationPolicy = Field(default_factory=IsolationPolicy, description="Sandbox layers for this job.")
    grader_version: str = Field(description="Version of grader that wrote this spec.")
    backend: str = Field(default="local", description="Backend that runs the job.")
    created_at: datetime = Field(default_factory=utcnow, description="When the coordinator wrote it.")

    def cache_key(self) -> str:
        return cache_key(self.submission_sha256, self.spec_hash, self.seed, self.profile_name)

    def for_job(self) -> str:
        """job.json as the job sees it: no public/private split, so it cannot tell which images count."""
        exercise = self.exercise.model_dump(mode="json")
        exercise["heldout"] = {"public_fraction": 0.5, "split_seed": 0}
        return self.model_copy(update={"exercise": ExerciseSpec.model_validate(exercise)}).model_dump_json(indent=2)


def cache_key(submission_sha256: str, spec_hash: str, seed: int, profile: str) -> str:
    """The identity of a deterministic job: the same key always gives the same predictions."""
    return f"{submission_sha256}:{spec_hash}:{seed}:{profile}"


class EpochRecord(_Model):
    epoch: int = Field(ge=0, le=100_000)
    loss: float | None = Field(default=None, allow_inf_nan=False)
    accuracy: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    val_loss: float | None = Field(default=None, allow_inf_nan=False)
    val_accuracy: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    seconds: Seconds = 0.0


class JobResult(_Model):
    """The job's report (result.json, always sent): claims, checked against facts on ingest."""

    outcome: Outcome
    error_kind: ErrorKind | None = None
    message: Message | None = Field(default=None, description="Participant-facing.")
    detail: Annotated[str | None, _cut_str(20_000)] = Field(default=None, description="Traceback tail for instructors.")
    history: Annotated[list[EpochRecord], _cut_list(10_000)] = Field(default_factory=list)
    timings: Annotated[dict[str, Seconds], _cut_dict(32)] = Field(default_factory=dict, description="Seconds per phase.")
    params: Count | None = None
    trainable_params: Count | None = None
    layer_types: Annotated[list[Text], _cut_list(5_000)] = Field(default_factory=list)
    model_summary: Annotated[str | None, _cut_str(50_000)] = None
    input_layout: Text | None = None
    output_units: Count | None = None
    label_encoding: Text | None = None
    epochs: Count | None = None
    batch_size: Count | None = None
    optimizer: Text | None = None
    learning_rate: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    loss: Text | None = None
    compiled_by: Text | None = Field(default=None, description="'submission' or 'exercise defaults'.")
    augment: bool = False
    optimizer_steps: Count | None = Field(default=None, description="Steps the optimizer took, counted after fit.")
    expected_steps: Count | None = Field(default=None, description="Steps the grader's fit should take.")
    seed: int | None = None
    profile: Text | None = None
    versions: Annotated[dict[str, Text], _cut_dict(16)] = Field(default_factory=dict)
    submission_sha256: Text | None = None
    spec_hash: Text | None = None
    host: Text | None = None
    backend: Text | None = None
    scheduler_job_id: Text | None = None
    gpu: Annotated[dict[str, Text], _cut_dict(16)] = Field(default_factory=dict)
    settings: Annotated[dict[str, Text], _cut_dict(32)] = Field(default_factory=dict,
                                                                description="Runtime settings in effect.")
    started_at: datetime | None = None
    finished_at: datetime | None = None
    n_predictions: Count | None = None
    warnings: Annotated[list[Annotated[str, _cut_str(500)]], _cut_list(20)] = Field(default_factory=list)

    @classmethod
    def failed(cls, kind: ErrorKind, message: str, **fields: Any) -> JobResult:
        return cls(outcome=kind.outcome, error_kind=kind, message=message[:MAX_MESSAGE_CHARS], **fields)

    @property
    def reason(self) -> FailureReason | None:
        return self.error_kind.reason if self.error_kind else None


class Verdict(StrEnum):
    """How the supervisor saw the job end (facts it observed itself)."""

    COMPLETED = "completed"  # the job sent its result and its end event
    EXITED = "exited"  # the job ended without sending a complete result
    TIMEOUT = "timeout"
    BUILD_TIMEOUT = "build_timeout"
    OUT_OF_MEMORY = "out_of_memory"
    CPU_LIMIT = "cpu_limit"
    DISK_QUOTA = "disk_quota"
    CANCELLED = "cancelled"


class SupervisorReport(_Model):
    """supervisor.json: written by the supervisor, outside the job's reach, after the job ended."""

    verdict: Verdict
    exit_code: int | None = None
    signal: int | None = None
    wall_seconds: Seconds
    cpu_seconds: Seconds | None = None
    peak_memory_mb: float | None = Field(default=None, ge=0)
    phases: dict[str, Seconds] = Field(default_factory=dict, description="When each phase began, in seconds.")
    last_phase: str | None = None
    epochs_seen: int = 0
    files: dict[str, int] = Field(default_factory=dict, description="Bytes of each file the job sent.")
    refused: list[str] = Field(default_factory=list, description="Frames the supervisor refused, and why.")
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    namespaces: str = "none"
    landlock_abi: int = Field(default=0, description="Landlock ABI the job confined itself with (0: none).")
    filesystem_view: bool = Field(default=False, description="Whether the job ran with a filesystem view.")
    cgroup: bool = False
    killed_strays: int = 0
    host: str = ""
    limits: dict[str, float] = Field(default_factory=dict)

    @field_validator("wall_seconds")
    @classmethod
    def _finite(cls, v: float) -> float:
        return v if math.isfinite(v) else 0.0


class Facts(_Model):
    """What the trusted side established itself (shown as measured, unlike the job's claims)."""

    wall_seconds: float | None = None
    fit_seconds: float | None = Field(default=None, description="From the first epoch to prediction, by the "
                                      "supervisor's clock.")
    build_seconds: float | None = None
    peak_memory_mb: float | None = None
    params: int | None = Field(default=None, description="Counted from the saved weights' tensor sizes.")
    filesystem_view: bool = False
    namespaces: str = "none"
    landlock_abi: int = 0


def validate_result(raw: object, name: str = "result.json") -> JobResult:
    """Validate an untrusted result; any problem is a ResultError naming the field, never a crash."""
    try:
        return JobResult.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ResultError(f"{name} does not match the result schema: {where}: {first['msg']}") from None
