"""Backend contract: submit a prepared run directory, poll many jobs at once, cancel one.

The shared flow lives here (template method); a backend overrides a few hooks only.
Every backend runs the same thing on its worker: `python -m grader.sandbox RUN_DIR`, the
supervisor that starts the sandboxed job and always leaves supervisor.json behind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from grader.results import JobSpec
from grader.rundir import RunDir, write_at
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
    VANISHED = "VANISHED"  # the scheduler no longer knows the job (it kept no record of how it ended)
    UNKNOWN = "UNKNOWN"  # the scheduler could not be asked right now

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


def write_job_json(run_dir: RunDir, job: JobSpec) -> None:
    """job.json from the coordinator's copy, read-only, link-proof: written again before every attempt."""
    write_at(run_dir.path, RunDir.JOB, job.for_job().encode(), mode=0o444)


class Backend(ABC):
    """Shared submit flow; subclasses implement `_start`, `poll_many` and `cancel`.

    Args:
        queue: a name that keeps one database's jobs apart from another's (local backend).
        start_worker: returns the argv of the process that drains the local queue (the service's
            worker); backends never import the service, the service hands this in.
    """

    name: str = "base"
    retries_after_node_failure: bool = True

    def __init__(self, settings: Settings, *, queue: str = "default",
                 start_worker: Callable[[], list[str]] | None = None) -> None:
        self.settings = settings
        self.queue = queue
        self.start_worker = start_worker

    def submit(self, run_dir: RunDir, job: JobSpec) -> JobHandle:
        """Start the job for a run directory (submission.py written); job.json comes from `job`."""
        if not run_dir.submission.exists():
            raise FileNotFoundError(f"{run_dir.path} is not a prepared run directory")
        write_job_json(run_dir, job)
        job_id = self._start(run_dir, job)
        handle = JobHandle(backend=self.name, job_id=job_id, run_dir=str(run_dir.path))
        write_at(run_dir.path, RunDir.HANDLE, handle.model_dump_json().encode())
        return handle

    @abstractmethod
    def _start(self, run_dir: RunDir, job: JobSpec) -> str:
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
