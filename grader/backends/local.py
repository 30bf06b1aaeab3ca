"""LocalBackend: a file-based queue drained by one detached worker process; no daemon to set up.

Spool layout under HOME/local-queue: queue/, running/, done/, cancelled/ hold one JSON entry per
job; moving an entry between folders (an atomic rename) is how a job changes state, so any
number of `grader submit` processes and one worker never step on each other. The worker holds
an exclusive flock on worker.lock for its whole life: a running entry whose worker no longer
holds the lock is an orphan (the worker died) and is requeued once, then failed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel

from grader.backends.base import Backend, JobHandle, JobState, JobStatus
from grader.rundir import RunDir, atomic_write_text
from grader.settings import Settings

WORKER_MODULE = "grader.service.worker"  # referred to by name: backends never import service
MAX_ATTEMPTS = 2


class Entry(BaseModel):
    job_id: str
    run_dir: str
    attempts: int = 0
    note: str | None = None


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

    def worker_alive(self) -> bool:
        """True while some process holds the worker lock (flock is released when a process dies)."""
        with self.lock_path.open("a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
            return False


class LocalBackend(Backend):
    name = "local"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.spool = Spool(settings.home.expanduser().resolve() / "local-queue")

    def _start(self, run_dir: RunDir) -> str:
        job_id = run_dir.path.name
        self.spool.enqueue(Entry(job_id=job_id, run_dir=str(run_dir.path)))
        self.ensure_worker()
        return job_id

    def ensure_worker(self) -> bool:
        """Start a detached worker unless one is alive; returns True if one was started."""
        if self.spool.worker_alive():
            return False
        log = (self.spool.root / "worker.log").open("ab")
        env = {**os.environ, "GRADER_HOME": str(self.settings.home.expanduser().resolve())}
        subprocess.Popen([sys.executable, "-m", WORKER_MODULE], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         start_new_session=True, env=env, cwd=str(self.spool.root))
        log.close()
        return True

    def poll_many(self, handles: Iterable[JobHandle]) -> dict[str, JobStatus]:
        handles = list(handles)
        alive = self.spool.worker_alive()
        queued = self.spool.names("queue")
        out: dict[str, JobStatus] = {}
        requeued = False
        for h in handles:
            found = self.spool.find(h.job_id)
            if found is None:
                out[h.job_id] = JobStatus(state=JobState.UNKNOWN, reason="vanished from the local queue")
                continue
            state, name = found
            if state == "queue":
                out[h.job_id] = JobStatus(state=JobState.PENDING, queue_position=queued.index(name) + 1
                                          if name in queued else None, reason="waiting for the local worker")
                # a worker that decided to exit just as this entry was enqueued left it stranded: restart one
                requeued = requeued or not alive
            elif state == "running" and not alive:
                out[h.job_id] = self._orphan(name)
                requeued = requeued or out[h.job_id].state is JobState.PENDING
            elif state == "running":
                out[h.job_id] = JobStatus(state=JobState.RUNNING)
            elif state == "done":
                entry = self.spool.read("done", name)
                code = None
                if entry and entry.note and entry.note.startswith("exit "):
                    code = int(entry.note.split()[1])
                if entry and entry.note == "failed: worker died repeatedly":
                    out[h.job_id] = JobStatus(state=JobState.NODE_FAIL, reason=entry.note)
                else:
                    out[h.job_id] = JobStatus(state=JobState.COMPLETED, exit_code=code)
            else:
                out[h.job_id] = JobStatus(state=JobState.CANCELLED, reason="cancelled before it started")
        if requeued:
            self.ensure_worker()
        return out

    def _orphan(self, name: str) -> JobStatus:
        """A running entry without a live worker: finished unrecorded, requeue, or give up."""
        entry = self.spool.read("running", name)
        if entry is None:
            return JobStatus(state=JobState.UNKNOWN, reason="unreadable queue entry")
        run = RunDir(Path(entry.run_dir))
        supervisor_done = run.supervisor_json.exists() and run.result_json.exists()
        if supervisor_done:
            self.spool.move(name, "running", "done")
            return JobStatus(state=JobState.COMPLETED)
        if entry.attempts + 1 >= MAX_ATTEMPTS:
            entry.note = "failed: worker died repeatedly"
            atomic_write_text(self.spool.path("running", name), entry.model_dump_json())
            self.spool.move(name, "running", "done")
            return JobStatus(state=JobState.NODE_FAIL, reason=entry.note)
        entry.attempts += 1
        entry.note = "requeued: the worker died while running this job"
        atomic_write_text(self.spool.path("running", name), entry.model_dump_json())
        self.spool.move(name, "running", "queue")
        return JobStatus(state=JobState.PENDING, reason=entry.note, queue_position=1)

    def cancel(self, handle: JobHandle) -> None:
        found = self.spool.find(handle.job_id)
        if found is None:
            return
        state, name = found
        if state == "queue" and self.spool.move(name, "queue", "cancelled"):
            return
        found = self.spool.find(handle.job_id)
        if found and found[0] == "running":
            atomic_write_text(self.spool.path("running", found[1][:-5] + ".cancel"), "cancel\n")

    def describe(self) -> str:
        state = "running" if self.spool.worker_alive() else "idle (starts on the next submission)"
        return f"local: worker {state}, queue at {self.spool.root}, {self.settings.local_max_jobs} job(s) at once"


def run_worker(settings: Settings, on_finished: object = None, idle_seconds: float = 5.0) -> int:
    """Drain the queue with bounded concurrency; exit when idle. Returns the number of jobs run.

    `on_finished(job_id)` is called after each job (the service uses it to ingest at once).
    """
    spool = Spool(settings.home.expanduser().resolve() / "local-queue")
    lock = spool.lock_path.open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another worker is draining the queue
    running: dict[str, subprocess.Popen[bytes]] = {}
    count, idle_since = 0, time.monotonic()
    try:
        while True:
            for name, proc in list(running.items()):
                cancel_flag = spool.path("running", name[:-5] + ".cancel")
                if cancel_flag.exists() and proc.poll() is None:
                    proc.terminate()  # the supervisor records a cancelled result
                    cancel_flag.unlink(missing_ok=True)
                if proc.poll() is not None:
                    entry = spool.read("running", name)
                    if entry is not None:
                        entry.note = f"exit {proc.returncode}"
                        atomic_write_text(spool.path("running", name), entry.model_dump_json())
                    spool.move(name, "running", "done")
                    del running[name]
                    count += 1
                    if callable(on_finished) and entry is not None:
                        with contextlib.suppress(Exception):
                            on_finished(entry.job_id)
            while len(running) < settings.local_max_jobs:
                name = next((n for n in spool.names("queue") if spool.move(n, "queue", "running")), None)
                if name is None:
                    break
                entry = spool.read("running", name)
                if entry is None:
                    spool.move(name, "running", "done")
                    continue
                running[name] = subprocess.Popen(
                    [sys.executable, "-m", "grader.sandbox", entry.run_dir], stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=(Path(entry.run_dir) / "supervisor.log").open("ab"),
                    preexec_fn=_die_with_parent,
                )
            if running:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > idle_seconds:
                return count
            time.sleep(0.2)
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _die_with_parent() -> None:
    """If the worker is killed, its supervisors (and through bwrap/PDEATHSIG their jobs) die too."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
