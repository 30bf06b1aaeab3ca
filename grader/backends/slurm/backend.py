"""SlurmBackend: submit run directories as batch jobs, reconcile them in one query, map Slurm's states to ours."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from grader.backends.base import Backend, JobHandle, JobState, JobStatus
from grader.backends.slurm.builders import build_batch_script, build_job_description
from grader.backends.slurm.drivers import SchedulerError, SlurmDriver, SlurmJob, make_driver
from grader.errors import BackendError
from grader.results import JobSpec
from grader.rundir import RunDir, atomic_write_text
from grader.settings import Settings

_SCHEDULER_STATES: dict[str, JobState] = {
    "PENDING": JobState.PENDING,
    "REQUEUED": JobState.PENDING,
    "REQUEUE_HOLD": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,
    "RESIZING": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,  # the script has ended; Slurm is still cleaning up the node
    "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "SUSPENDED": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,
    "COMPLETED": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "SPECIAL_EXIT": JobState.FAILED,
    "TIMEOUT": JobState.TIMEOUT,
    "DEADLINE": JobState.TIMEOUT,
    "CANCELLED": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED,
    "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY,
    "NODE_FAIL": JobState.NODE_FAIL,
    "BOOT_FAIL": JobState.NODE_FAIL,
    "PREEMPTED": JobState.PREEMPTED,
}

_PENDING_REASONS = {
    "None": "queued",
    "Priority": "waiting behind jobs with higher priority",
    "Resources": "waiting for a free GPU/CPU/memory",
    "Dependency": "waiting for another job",
    "BeginTime": "waiting for its start time (requeued jobs wait a little)",
    "JobHeldAdmin": "held by an administrator",
    "JobHeldUser": "held",
    "PartitionDown": "the partition is down",
    "PartitionInactive": "the partition is not accepting jobs",
    "ReqNodeNotAvail": "the nodes it needs are unavailable (maintenance or failure)",
    "Reservation": "waiting for its reservation to start",
    "NodeDown": "a node it needs is down",
}

def queue_positions(jobs: Iterable[SlurmJob]) -> dict[str, int]:
    """1-based place of each pending job in its partition: higher priority first, then earlier submission."""
    by_partition: dict[str | None, list[SlurmJob]] = {}
    for job in jobs:
        if _SCHEDULER_STATES.get(job.state) is JobState.PENDING:
            by_partition.setdefault(job.partition, []).append(job)
    positions: dict[str, int] = {}
    for queue in by_partition.values():
        queue.sort(key=lambda j: (-(j.priority or 0), j.submit_time or 0, int(j.job_id) if j.job_id.isdigit() else 0))
        positions.update({job.job_id: place for place, job in enumerate(queue, start=1)})
    return positions


def status_from_job(job: SlurmJob, queue_position: int | None = None) -> JobStatus:
    """Map Slurm's state to ours, with a reason a workshop participant can read."""
    state = _SCHEDULER_STATES.get(job.state, JobState.UNKNOWN)
    raw_reason = (job.reason or "None").split(",")[0]
    reason: str | None
    if state is JobState.PENDING:
        reason = f"{_PENDING_REASONS.get(raw_reason, 'waiting')} (Slurm: {raw_reason})"
    elif state is JobState.TIMEOUT:
        limit = f"{job.time_limit}-minute" if job.time_limit else "Slurm"
        reason = f"your job hit the {limit} time limit"
    elif state is JobState.OUT_OF_MEMORY:
        limit = f"its {job.memory_mb} MB" if job.memory_mb else "its"
        reason = f"your job used more than {limit} memory allocation"
    elif state is JobState.NODE_FAIL:
        reason = f"the compute node failed ({job.state}); an infrastructure problem, not your code"
    elif state is JobState.PREEMPTED:
        reason = "the job was preempted by higher-priority work"
    elif state is JobState.CANCELLED:
        reason = "the job was cancelled"
    elif state is JobState.FAILED:
        how = f"signal {job.signal}" if job.signal else f"exit code {job.exit_code}"
        reason = f"the batch job failed with {how}" + (f" (Slurm: {raw_reason})" if raw_reason != "None" else "")
    elif state is JobState.UNKNOWN:
        reason = f"unknown Slurm state {job.state!r}"
    else:
        reason = "suspended by the scheduler" if job.state in ("SUSPENDED", "STOPPED") else None
    return JobStatus(
        state=state,
        reason=reason,
        queue_position=queue_position if state is JobState.PENDING else None,
        exit_code=job.exit_code,
        gpus=job.gpus,
    )


class SlurmBackend(Backend):
    """Submits run directories as Slurm batch jobs and reconciles their states in one query per poll."""

    name = "slurm"

    def __init__(self, settings: Settings, driver: SlurmDriver | None = None, **options: Any) -> None:
        super().__init__(settings, **options)
        self._driver = driver
        self._why = "given by the caller" if driver else ""
        self._finished: dict[str, JobStatus] = {}  # terminal states never change: ask Slurm once

    @property
    def driver(self) -> SlurmDriver:
        if self._driver is None:
            self._driver, self._why = make_driver(self.settings)
        return self._driver

    def _start(self, run_dir: RunDir, spec: JobSpec) -> str:
        description = build_job_description(run_dir, spec, self.settings)
        script = build_batch_script(run_dir, spec, self.settings)
        atomic_write_text(run_dir.batch_script, script)
        try:
            return self.driver.submit(description, script)
        except SchedulerError as exc:
            raise BackendError(f"Slurm did not accept the job for {run_dir.path.name}: {exc}") from None

    def poll_many(self, handles: Iterable[JobHandle]) -> dict[str, JobStatus]:
        ids = list(dict.fromkeys(handle.job_id for handle in handles))
        statuses = {job_id: self._finished[job_id] for job_id in ids if job_id in self._finished}
        active = [job_id for job_id in ids if job_id not in statuses]
        if not active:
            return statuses
        try:
            snapshot = self.driver.jobs()
        except Exception as exc:  # any scheduler trouble is a state, never a crash of `grader sync`
            reason = f"Slurm could not be asked: {exc}"
            return statuses | {job_id: JobStatus(state=JobState.UNKNOWN, reason=reason) for job_id in active}
        positions = queue_positions(snapshot.values())
        for job_id in active:
            job = snapshot.get(job_id)
            try:
                job = job or self.driver.job(job_id)  # finished jobs may have left squeue already
            except Exception as exc:
                statuses[job_id] = JobStatus(state=JobState.UNKNOWN, reason=f"Slurm could not be asked: {exc}")
                continue
            status = (
                JobStatus(state=JobState.VANISHED, reason="Slurm no longer knows the job")
                if job is None
                else (status_from_job(job, positions.get(job_id)))
            )
            if status.state.terminal:
                self._finished[job_id] = status
            statuses[job_id] = status
        return statuses

    def cancel(self, handle: JobHandle) -> None:
        try:
            self.driver.cancel(handle.job_id)
        except SchedulerError as exc:
            raise BackendError(f"could not cancel Slurm job {handle.job_id}: {exc}") from None

    def describe(self) -> str:
        try:
            driver = self.driver.name
        except BackendError as exc:
            return f"slurm: unusable ({exc})"
        return f"slurm via the {driver} driver ({self._why})"
