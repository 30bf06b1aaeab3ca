"""Backend contract: submit a prepared run directory, poll many jobs at once, cancel one.

The shared flow lives here (template method); a backend overrides a few hooks only.
Every backend runs the same thing on its worker: `python -m grader.sandbox RUN_DIR`, the
supervisor that starts the sandboxed job and always leaves a result.json behind.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from grader.rundir import RunDir, atomic_write_json
from grader.settings import Settings


class JobState(StrEnum):
    """Scheduler-level states; values mirror Slurm's names."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    CANCELLED = "CANCELLED"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    UNKNOWN = "UNKNOWN"  # the scheduler could not be asked, or no longer knows the job

    @property
    def terminal(self) -> bool:
        return self not in (JobState.PENDING, JobState.RUNNING, JobState.UNKNOWN)


class JobHandle(BaseModel):
    """What the coordinator stores to find a job again."""

    model_config = ConfigDict(frozen=True)

    backend: str
    job_id: str
    run_dir: str


class JobStatus(BaseModel):
    state: JobState
    reason: str | None = None  # scheduler's words, e.g. Slurm's pending reason
    queue_position: int | None = None
    exit_code: int | None = None
    gpus: str | None = None  # GPUs the scheduler allocated, when known


class Backend(ABC):
    """Shared submit flow; subclasses implement `_start`, `poll_many` and `cancel`."""

    name: str = "base"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def submit(self, run_dir: RunDir) -> JobHandle:
        """Start the job for a run directory whose job.json and submission.py are written."""
        if not run_dir.job_json.exists() or not run_dir.submission.exists():
            raise FileNotFoundError(f"{run_dir.path} is not a prepared run directory")
        job_id = self._start(run_dir)
        handle = JobHandle(backend=self.name, job_id=job_id, run_dir=str(run_dir.path))
        atomic_write_json(run_dir.path / "handle.json", handle.model_dump())
        return handle

    @abstractmethod
    def _start(self, run_dir: RunDir) -> str:
        """Hand the run directory to the executor; return its job id."""

    @abstractmethod
    def poll_many(self, handles: Iterable[JobHandle]) -> dict[str, JobStatus]:
        """One query for all given jobs, keyed by job id. Never raises for scheduler trouble:
        unreachable schedulers give JobState.UNKNOWN with the error as reason."""

    @abstractmethod
    def cancel(self, handle: JobHandle) -> None:
        """Stop a job (queued or running). Cancelling a finished job is a no-op."""

    def describe(self) -> str:
        """One line for `grader doctor`."""
        return self.name

    def supervisor_command(self, run_dir: RunDir, python: str | None = None) -> list[str]:
        return [python or sys.executable, "-m", "grader.sandbox", str(run_dir.path)]
