"""LocalBackend: a file-based queue drained by one detached worker process; no daemon to set up.

Spool layout under HOME/local-queue/<database key>: queue/, running/, done/, cancelled/ hold one
JSON entry per job; moving an entry between folders (an atomic rename) is how a job changes state,
so any number of `grader submit` processes and one worker never step on each other. Each entry
carries the coordinator's job spec, which the worker writes to job.json before every attempt.
The worker (grader.service.worker, started through `start_worker`) holds an exclusive flock on
worker.lock for its whole life: a running entry whose worker no longer holds the lock is an
orphan (the worker died) and is requeued once, then failed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import BaseModel

from grader.backends.base import Backend, JobHandle, JobState, JobStatus
from grader.results import JobSpec
from grader.rundir import RunDir, atomic_write_text
from grader.settings import Settings
from grader.untrusted import exists

MAX_ATTEMPTS = 2


class Entry(BaseModel):
    job_id: str
    run_dir: str
    job: str  # the coordinator's JobSpec JSON: job.json is rewritten from it before every attempt
    attempts: int = 0
    exit_code: int | None = None
    worker_died: bool = False
    gave_up: bool = False


class Spool:
    """The queue folders and the worker lock."""

    STATES = ("queue", "running", "done", "cancelled")

    def __init__(self, root: Path) -> None:
        self.root = root
        for state in self.STATES:
            (root / state).mkdir(parents=True, exist_ok=True)

    @property
    def lock_path(self) -> Path:
        return self.root / "worker.lock"

    def path(self, state: str, name: str) -> Path:
        return self.root / state / name

    def names(self, state: str) -> list[str]:
        return sorted(p.name for p in (self.root / state).glob("*.json"))

    def enqueue(self, entry: Entry) -> str:
        name = f"{time.time_ns():020d}-{entry.job_id}.json"
        atomic_write_text(self.path("queue", name), entry.model_dump_json())
        return name

    def read(self, state: str, name: str) -> Entry | None:
        try:
            return Entry.model_validate_json(self.path(state, name).read_text())
        except (OSError, ValueError):
            return None

    def write(self, state: str, name: str, entry: Entry) -> None:
        atomic_write_text(self.path(state, name), entry.model_dump_json())

    def move(self, name: str, src: str, dst: str) -> bool:
        """Atomic state change; False if someone else moved it first."""
        try:
            os.rename(self.path(src, name), self.path(dst, name))
        except FileNotFoundError:
            return False
        return True

    def find(self, job_id: str) -> tuple[str, str] | None:
        suffix = f"-{job_id}.json"
        for state in self.STATES:
            for p in (self.root / state).glob(f"*{suffix}"):
                return state, p.name
        return None

    def claim(self) -> tuple[str, Entry] | None:
        """Move the oldest queued entry to running (first mover wins) and return it."""
        for name in self.names("queue"):
            if self.move(name, "queue", "running"):
                entry = self.read("running", name)
                if entry is not None:
                    return name, entry
                self.move(name, "running", "done")
        return None

    def finish(self, name: str, exit_code: int | None) -> Entry | None:
        entry = self.read("running", name)
        if entry is not None:
            entry.exit_code = exit_code
            self.write("running", name, entry)
        self.move(name, "running", "done")
        return entry

    def orphan(self, name: str) -> JobStatus:
        """A running entry without a live worker: finished unrecorded, requeue, or give up."""
        entry = self.read("running", name)
        if entry is None:
            return JobStatus(state=JobState.UNKNOWN, reason="unreadable queue entry")
        if exists(Path(entry.run_dir), RunDir.SUPERVISOR):
            self.move(name, "running", "done")
            return JobStatus(state=JobState.COMPLETED)
        entry.worker_died = True
        if entry.attempts + 1 >= MAX_ATTEMPTS:
            entry.gave_up = True
            self.write("running", name, entry)
            self.move(name, "running", "done")
            return JobStatus(state=JobState.NODE_FAIL, reason="the local worker died repeatedly")
        entry.attempts += 1
        self.write("running", name, entry)
        self.move(name, "running", "queue")
        return JobStatus(state=JobState.PENDING, reason="requeued: the worker died while running this job",
                         queue_position=1)

    def recover(self) -> list[str]:
        """Called by a worker that has just taken the lock: every running entry is a dead worker's."""
        return [name for name in self.names("running") if self.orphan(name).state is not JobState.UNKNOWN]

    def cancel_flag(self, name: str) -> Path:
        return self.path("running", name[:-5] + ".cancel")

    def worker_alive(self) -> bool:
        """True while some process holds the worker lock (flock is released when a process dies)."""
        with self.lock_path.open("a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
            return False

    @contextlib.contextmanager
    def worker_lock(self) -> Iterator[bool]:
        """Hold the worker lock for a `with` block; yields False if another worker holds it."""
        with self.lock_path.open("a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


class GpuSlots:
    """Which GPU the next local job gets: the least busy of the configured ones, at most `per_gpu` each.

    Several small jobs share one GPU this way (memory growth or GRADER_GPU_MEMORY_MB in the job
    keeps them from taking it all); the job sees only its GPU, as CUDA_VISIBLE_DEVICES.
    """

    def __init__(self, gpus: str, per_gpu: int) -> None:
        self.busy: dict[str, int] = {g: 0 for g in gpus.split(",") if g}
        self.per_gpu = per_gpu

    @property
    def capacity(self) -> int | None:
        """Jobs at once, or None when no GPUs are handed out (local_max_jobs decides)."""
        return len(self.busy) * self.per_gpu if self.busy else None

    def take(self) -> str | None:
        if not self.busy:
            return None
        gpu = min(self.busy, key=lambda g: (self.busy[g], int(g)))
        if self.busy[gpu] >= self.per_gpu:
            return None
        self.busy[gpu] += 1
        return gpu

    def give(self, gpu: str | None) -> None:
        if gpu is not None and self.busy.get(gpu, 0) > 0:
            self.busy[gpu] -= 1


class LocalBackend(Backend):
    name = "local"
    retries_after_node_failure = False  # the spool requeues a dead worker's job itself

    def __init__(self, settings: Settings, **options: object) -> None:
        super().__init__(settings, **options)  # type: ignore[arg-type]
        self.spool = Spool(settings.home.expanduser().resolve() / "local-queue" / self.queue)

    def _start(self, run_dir: RunDir, job: JobSpec) -> str:
        job_id = run_dir.path.name
        self.spool.enqueue(Entry(job_id=job_id, run_dir=str(run_dir.path), job=job.model_dump_json()))
        self.ensure_worker()
        return job_id

    def ensure_worker(self) -> bool:
        """Start a detached worker unless one is alive; returns True if one was started."""
        if self.start_worker is None or self.spool.worker_alive():
            return False
        with (self.spool.root / "worker.log").open("ab") as log:
            subprocess.Popen(self.start_worker(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             start_new_session=True, cwd=str(self.spool.root))
        return True

    def pending(self) -> bool:
        return bool(self.spool.names("queue") or self.spool.names("running"))

    def poll_many(self, handles: Iterable[JobHandle]) -> dict[str, JobStatus]:
        handles = list(handles)
        alive = self.spool.worker_alive()
        queued = self.spool.names("queue")
        out: dict[str, JobStatus] = {}
        restart = False
        for h in handles:
            found = self.spool.find(h.job_id)
            if found is None:
                out[h.job_id] = JobStatus(state=JobState.VANISHED, reason="vanished from the local queue")
                continue
            state, name = found
            if state == "queue":
                out[h.job_id] = JobStatus(state=JobState.PENDING, queue_position=queued.index(name) + 1
                                          if name in queued else None, reason="waiting for the local worker")
                # a worker that decided to exit just as this entry was enqueued left it stranded: restart one
                restart = restart or not alive
            elif state == "running" and not alive:
                out[h.job_id] = self.spool.orphan(name)
                restart = restart or out[h.job_id].state is JobState.PENDING
            elif state == "running":
                out[h.job_id] = JobStatus(state=JobState.RUNNING)
            elif state == "done":
                entry = self.spool.read("done", name)
                if entry is not None and entry.gave_up:
                    out[h.job_id] = JobStatus(state=JobState.NODE_FAIL, reason="the local worker died repeatedly")
                else:
                    out[h.job_id] = JobStatus(state=JobState.COMPLETED, exit_code=entry.exit_code if entry else None)
            else:
                out[h.job_id] = JobStatus(state=JobState.CANCELLED, reason="cancelled before it started")
        if restart:
            self.ensure_worker()
        return out

    def cancel(self, handle: JobHandle) -> None:
        found = self.spool.find(handle.job_id)
        if found is None:
            return
        state, name = found
        if state == "queue" and self.spool.move(name, "queue", "cancelled"):
            return
        found = self.spool.find(handle.job_id)
        if found and found[0] == "running":
            atomic_write_text(self.spool.cancel_flag(found[1]), "cancel\n")

    def describe(self) -> str:
        state = "running" if self.spool.worker_alive() else "idle (starts on the next submission)"
        return f"local: worker {state}, queue at {self.spool.root}, {self.settings.local_max_jobs} job(s) at once"
