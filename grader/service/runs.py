"""Prepare run directories, run them in the foreground, and ingest what they produced."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from grader import __version__
from grader.datasets import heldout_labels, prepare_inputs
from grader.errors import ResultError
from grader.results import ErrorKind, JobResult, JobSpec, Outcome, load_result
from grader.rundir import RunDir, atomic_write_text
from grader.scoring import Metrics, load_predictions, score
from grader.settings import Settings
from grader.specs.exercise import ExerciseSpec

ProgressFn = Callable[[dict[str, object]], None]


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(4)


def prepare_run(source: str, sha256: str, spec: ExerciseSpec, profile: str, seed: int | None,
                settings: Settings, backend: str = "local", run_id: str | None = None) -> tuple[RunDir, JobSpec]:
    """Write a run dir (submission.py + job.json) ready for any backend."""
    prof = spec.profile(profile)
    inputs = prepare_inputs(spec, profile, settings)
    run_id = run_id or new_run_id()
    run = RunDir(settings.runs_dir / run_id).create()
    atomic_write_text(run.submission, source)
    job = JobSpec(
        run_id=run_id, exercise=spec, spec_hash=spec.spec_hash(), profile_name=profile, profile=prof,
        seed=spec.seed if seed is None else seed, submission_sha256=sha256, inputs_dir=str(inputs),
        wall_seconds=prof.max_wall_seconds or spec.limits.max_wall_seconds, memory_mb=spec.limits.memory_mb,
        grader_version=__version__, backend=backend,
    )
    atomic_write_text(run.job_json, job.model_dump_json(indent=2))
    return run, job


def follow_progress(run: RunDir, done: Callable[[], bool], poll: float = 0.25) -> Iterator[dict[str, object]]:
    """Yield progress events as the job appends them (tail -f on progress.jsonl)."""
    offset = 0
    while True:
        finished = done()
        if run.progress.exists():
            with run.progress.open("rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            offset += len(complete)
            for line in complete.splitlines():
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(event, dict):
                    yield event
        if finished:
            return
        time.sleep(poll)


def run_foreground(run: RunDir, on_progress: ProgressFn | None = None) -> None:
    """Run the sandbox supervisor as a child process and stream progress while it works."""
    proc = subprocess.Popen([sys.executable, "-m", "grader.sandbox", str(run.path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for event in follow_progress(run, lambda: proc.poll() is not None):
            if on_progress:
                on_progress(event)
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        raise
    _, err = proc.communicate()
    if proc.returncode != 0 and not run.result_json.exists():
        atomic_write_text(run.result_json, JobResult.failed(
            ErrorKind.INFRASTRUCTURE, f"the sandbox supervisor failed: {err.decode(errors='replace')[-500:]}",
        ).model_dump_json())


@dataclass
class Ingested:
    result: JobResult
    metrics: Metrics | None


def ingest(run: RunDir, spec: ExerciseSpec, profile: str, settings: Settings) -> Ingested:
    """Trust nothing in the run dir: validate result.json, recompute metrics from predictions."""
    try:
        result = load_result(run.result_json)
    except ResultError as exc:
        return Ingested(JobResult.failed(ErrorKind.INVALID_RESULT, f"no trustworthy result: {exc}"), None)
    if result.outcome is not Outcome.OK:
        return Ingested(result, None)
    key = heldout_labels(spec, profile, settings)
    try:
        pred = load_predictions(run.predictions, len(key.labels), spec.labels.used)
        train_pred = load_predictions(run.train_predictions, len(key.train_eval_labels), spec.labels.used)
    except ResultError as exc:
        return Ingested(result.model_copy(update={
            "outcome": Outcome.FAILED, "error_kind": ErrorKind.INVALID_RESULT,
            "message": f"the job's predictions cannot be scored: {exc}"}), None)
    metrics = score(pred, key.labels, key.public, spec, train_pred, key.train_eval_labels)
    return Ingested(result, metrics)


