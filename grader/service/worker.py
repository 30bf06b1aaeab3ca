"""The background loop: run local jobs, reconcile every backend, ingest; exits when there is nothing to do.

Embedded mode starts it detached (`python -m grader.service.worker SETTINGS_FILE`, handed the
resolved settings of the command that started it); `grader serve` runs the same loop in a thread.
It starts the next job before ingesting the last one, so the queue never waits on bookkeeping.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from grader.backends.base import write_job_json
from grader.backends.local import GpuSlots, LocalBackend, Spool
from grader.entrypoints import supervisor_argv
from grader.results import JobSpec
from grader.rundir import RunDir, atomic_write_text
from grader.service.context import Context
from grader.service.reconcile import reconcile
from grader.settings import Settings

log = logging.getLogger(__name__)
POLL_SECONDS = 0.2
RECONCILE_SECONDS = 5.0


def _die_with_parent() -> None:
    """If the worker is killed, its supervisors (and through bwrap/PDEATHSIG their jobs) die too."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


class LocalRunner:
    """Drains the local spool with bounded concurrency; job.json is rewritten from the entry each attempt."""

    def __init__(self, ctx: Context) -> None:
        backend = ctx.backend("local")
        assert isinstance(backend, LocalBackend)
        self.spool: Spool = backend.spool
        self.gpus = GpuSlots(ctx.settings.local_gpus, ctx.settings.local_jobs_per_gpu)
        self.max_jobs = self.gpus.capacity or ctx.settings.local_max_jobs
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.gpu_of: dict[str, str | None] = {}

    def reap(self) -> list[str]:
        """Finished entries (moved to done); cancel flags honoured on the way."""
        finished = []
        for name, proc in list(self.running.items()):
            flag = self.spool.cancel_flag(name)
            if flag.exists() and proc.poll() is None:
                proc.terminate()  # the supervisor records a cancelled verdict
                flag.unlink(missing_ok=True)
            if proc.poll() is not None:
                entry = self.spool.finish(name, proc.returncode)
                del self.running[name]
                self.gpus.give(self.gpu_of.pop(name, None))
                if entry is not None:
                    finished.append(entry.job_id)
        return finished

    def start(self) -> int:
        started = 0
        while len(self.running) < self.max_jobs:
            claimed = self.spool.claim()
            if claimed is None:
                break
            name, entry = claimed
            run = RunDir(Path(entry.run_dir))
            try:
                write_job_json(run, JobSpec.model_validate_json(entry.job))
            except (OSError, ValueError) as exc:
                log.error("queue entry %s cannot be started: %s", name, exc)
                self.spool.finish(name, None)
                continue
            gpu = self.gpus.take()
            env = dict(os.environ)
            if gpu is not None:
                env["CUDA_VISIBLE_DEVICES"] = gpu
                _record_allocation(run, entry.job_id, gpu, self.gpus.busy[gpu])
            with (self.spool.root / "supervisors.log").open("ab") as err:
                self.running[name] = subprocess.Popen(supervisor_argv(run.path), stdin=subprocess.DEVNULL,
                                                      stdout=subprocess.DEVNULL, stderr=err, env=env,
                                                      preexec_fn=_die_with_parent)
            self.gpu_of[name] = gpu
            started += 1
        return started


def _record_allocation(run: RunDir, job_id: str, gpu: str, sharing: int) -> None:
    """What this job was given, in the same file and shape a Slurm job's batch script writes."""
    record = {"job_id": job_id, "node": socket.gethostname(), "gpus": gpu, "cuda_visible_devices": gpu,
              "shards": "", "cpus": "", "mem_mb": "", "jobs_on_gpu": sharing}
    atomic_write_text(run.allocation, json.dumps(record) + "\n")


def run_worker(ctx: Context, *, idle_seconds: float | None = 5.0, stop: threading.Event | None = None) -> int:
    """Work until idle for `idle_seconds` (None: until `stop` is set); returns the jobs run here.

    One worker per queue: a second one returns at once.
    """
    runner = LocalRunner(ctx)
    count = 0
    with runner.spool.worker_lock() as mine:
        if not mine:
            return 0  # another worker is draining this queue
        for name in runner.spool.recover():  # a previous worker (or the server holding it) was killed
            log.warning("queue entry %s was running when its worker died: requeued or given up", name)
        idle_since = time.monotonic()
        next_reconcile = 0.0
        waiting_remote = 0
        while stop is None or not stop.is_set():
            finished = runner.reap()
            count += len(finished)
            runner.start()  # the next job first, then the bookkeeping of the last one
            now = time.monotonic()
            if finished or now >= next_reconcile:
                waiting_remote = _safe_reconcile(ctx)
                next_reconcile = now + RECONCILE_SECONDS
            if runner.running or runner.spool.names("queue") or waiting_remote:
                idle_since = now  # jobs a scheduler (Slurm) still runs keep the worker polling
            elif idle_seconds is not None and now - idle_since > idle_seconds:
                _safe_reconcile(ctx)
                return count
            time.sleep(POLL_SECONDS)
    return count


def _safe_reconcile(ctx: Context) -> int:
    """Reconcile once; returns how many jobs a (non-local) scheduler still runs for us."""
    try:
        report = reconcile(ctx)
    except Exception:  # the loop keeps going; each submission's own trouble is stored by reconcile
        log.exception("reconcile failed")
        return 0
    for warning in report.warnings:
        log.warning(warning)
    return report.waiting_remote


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m grader.service.worker SETTINGS_FILE", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.model_validate_json(Path(argv[0]).read_text(encoding="utf-8"))
    run_worker(Context(settings=settings))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
