"""Prepare run directories, run them in the foreground, and follow their progress safely."""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from grader import __version__
from grader.backends.base import write_job_json
from grader.entrypoints import supervisor_argv
from grader.results import IsolationPolicy, JobSpec
from grader.rundir import RunDir, atomic_write_text
from grader.settings import Settings
from grader.specs.exercise import ExerciseSpec
from grader.submission import SubmissionInfo
from grader.untrusted import UntrustedFileError, parse_json, read_from

ProgressFn = Callable[[dict[str, Any]], None]
MAX_PROGRESS_CHUNK = 1_000_000


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(4)


def isolation_policy(settings: Settings) -> IsolationPolicy:
    return IsolationPolicy(namespaces=settings.isolation, landlock=settings.landlock,
                           scratch_mb=settings.job_scratch_mb, output_mb=settings.job_output_mb)


def training_epochs(info: SubmissionInfo, spec: ExerciseSpec, profile: str) -> int:
    """Epochs grader trains for: the submission's TRAINING (read statically), clamped by the profile."""
    prof = spec.profile(profile)
    epochs = int(info.training.get("epochs", prof.epochs or spec.training.epochs))
    return min(epochs, prof.max_epochs) if prof.max_epochs is not None else epochs


def training_batch_size(info: SubmissionInfo, spec: ExerciseSpec, profile: str) -> int:
    """Batch size grader trains with: the submission's TRAINING (read statically), clamped by the profile."""
    prof = spec.profile(profile)
    batch_size = int(info.training.get("batch_size", spec.training.batch_size))
    return min(batch_size, prof.max_batch_size) if prof.max_batch_size is not None else batch_size


def job_spec(info: SubmissionInfo, spec: ExerciseSpec, profile: str, seed: int | None, settings: Settings,
             *, inputs_dir: str, run_id: str, backend: str = "local", wall: tuple[int, str] | None = None) -> JobSpec:
    """The coordinator's job spec: limits, isolation and training settings decided here, not by the job.

    `wall` is a derived time limit and what it is based on (grader.service.limits); without it the
    profile's or exercise's limit applies.
    """
    prof = spec.profile(profile)
    epochs = training_epochs(info, spec, profile)
    wall_seconds, basis = wall or (prof.max_wall_seconds or spec.limits.max_wall_seconds, None)
    return JobSpec(
        run_id=run_id, exercise=spec, spec_hash=spec.spec_hash(), profile_name=profile, profile=prof,
        seed=spec.seed if seed is None else seed, epochs=epochs,
        batch_size=training_batch_size(info, spec, profile), submission_sha256=info.sha256,
        inputs_dir=inputs_dir, wall_seconds=wall_seconds, wall_basis=basis,
        build_seconds=min(settings.build_seconds, wall_seconds),
        memory_mb=spec.limits.memory_mb, isolation=isolation_policy(settings), grader_version=__version__,
        backend=backend,
    )


def prepare_run(source: str, info: SubmissionInfo, spec: ExerciseSpec, profile: str, seed: int | None,
                settings: Settings, backend: str = "local", run_id: str | None = None,
                wall: tuple[int, str] | None = None) -> tuple[RunDir, JobSpec]:
    """A run directory holding submission.py, and the job spec a backend will write as job.json."""
    from grader.datasets import prepare_inputs  # NumPy: only when preparing, never for reading progress

    inputs = prepare_inputs(spec, profile, settings)
    run_id = run_id or new_run_id()
    run = RunDir(settings.runs_dir / run_id).create()
    atomic_write_text(run.submission, source)
    return run, job_spec(info, spec, profile, seed, settings, inputs_dir=str(inputs), run_id=run_id, backend=backend,
                         wall=wall)


def read_events(run: RunDir, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Complete progress lines appended since `offset` (the supervisor writes them; read safely anyway)."""
    try:
        chunk = read_from(run.path, RunDir.PROGRESS, offset, MAX_PROGRESS_CHUNK)
    except UntrustedFileError:
        return [], offset
    complete = chunk[: chunk.rfind(b"\n") + 1]
    events = []
    for line in complete.splitlines():
        try:
            event = parse_json(line, "progress.jsonl")
        except UntrustedFileError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events, offset + len(complete)


def follow_progress(run: RunDir, done: Callable[[], bool], poll: float = 0.25,
                    pause: Callable[[float], None] = time.sleep) -> Iterator[dict[str, Any]]:
    """Yield progress events as the supervisor appends them (tail -f on progress.jsonl).

    `pause(poll)` waits between reads; a caller holding the process passes one that returns when it ends.
    """
    offset = 0
    while True:
        finished = done()
        events, offset = read_events(run, offset)
        yield from events
        if finished:
            return
        pause(poll)


def _until_exit(proc: subprocess.Popen[bytes]) -> Callable[[float], None]:
    def pause(seconds: float) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=seconds)
    return pause


def run_foreground(run: RunDir, job: JobSpec, on_progress: ProgressFn | None = None) -> None:
    """Run the sandbox supervisor as a child process and stream progress while it works."""
    write_job_json(run, job)
    proc = subprocess.Popen(supervisor_argv(run.path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for event in follow_progress(run, lambda: proc.poll() is not None, pause=_until_exit(proc)):
            if on_progress:
                on_progress(event)
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        raise
    _, err = proc.communicate()
    if proc.returncode != 0:
        # no supervisor.json: ingest reports "the sandbox supervisor left no report"; keep its words
        atomic_write_text(run.path / "supervisor.log", err.decode(errors="replace")[-4000:])


def event_json(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), default=str)
