"""In-process service tier (issue 9): a real SQLite file, a fake backend, and a fake job's run directory.

No TensorFlow: `finish_run` writes exactly what the supervisor and the job would leave behind
(supervisor.json with a verdict, output/result.json, predictions with a chosen accuracy, weights),
so reconciliation, ingestion and grading run for real on it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from grader.backends.base import Backend, JobHandle, JobState, JobStatus
from grader.outcomes import Outcome
from grader.results import EpochRecord, JobResult, JobSpec, SupervisorReport, Verdict
from grader.rundir import RunDir
from grader.service.access import Actor
from grader.service.context import Context
from grader.settings import Settings

REPO = Path(__file__).resolve().parents[1]
INSTRUCTOR = Actor(name="prof", instructor=True)

MODEL_SOURCE = '''import keras

TRAINING = {{"epochs": 2, "batch_size": 64}}


def build_model(num_classes):
    # variant {tag}
    return keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense({units}, activation="relu"),
                             keras.layers.Dense(num_classes, activation="softmax")])
'''


def source(units: int = 16, tag: str = "a") -> str:
    return MODEL_SOURCE.format(units=units, tag=tag)


def params_of(units: int) -> int:
    return 784 * units + units + units * 10 + 10


class FakeBackend(Backend):
    """A scheduler the test drives: it answers whatever state the test sets for each job."""

    name = "fake"

    def __init__(self, settings: Settings, **options: Any) -> None:
        super().__init__(settings, **options)
        self.states: dict[str, JobStatus] = {}
        self.started: list[tuple[str, JobSpec]] = []
        self.cancelled: list[str] = []
        self._n = 0

    def _start(self, run_dir: RunDir, job: JobSpec) -> str:
        self._n += 1
        job_id = f"fake-{self._n}"
        self.states[job_id] = JobStatus(state=JobState.PENDING, queue_position=self._n)
        self.started.append((job_id, job))
        return job_id

    def poll_many(self, handles: Iterable[JobHandle]) -> dict[str, JobStatus]:
        return {h.job_id: self.states.get(h.job_id, JobStatus(state=JobState.VANISHED)) for h in handles}

    def cancel(self, handle: JobHandle) -> None:
        self.cancelled.append(handle.job_id)
        self.states[handle.job_id] = JobStatus(state=JobState.CANCELLED)

    def set(self, job_id: str, state: JobState, **fields: Any) -> None:
        self.states[job_id] = JobStatus(state=state, **fields)


def make_context(tmp_path: Path, db_url: str | None = None) -> tuple[Context, FakeBackend]:
    settings = Settings(home=tmp_path / "home", course_dir=REPO, profile="smoke", db_url=db_url, server=None)
    settings.backend = "fake"  # type: ignore[assignment]  # a test backend: not one of the settings' choices
    ctx = Context(settings=settings, spawn_workers=False)
    fake = FakeBackend(settings)
    ctx._backends["fake"] = fake
    return ctx, fake


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def weights(units: int) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, w0=np.zeros((784, units), np.float32), w1=np.zeros(units, np.float32),
             w2=np.zeros((units, 10), np.float32), w3=np.zeros(10, np.float32))
    return buf.getvalue()


def finish_run(ctx: Context, run_dir: str, job: JobSpec, *, accuracy: float = 0.8, units: int = 16,
               verdict: Verdict = Verdict.COMPLETED, result: JobResult | None = None, claimed_units: int | None = None,
               train_accuracy: float = 1.0, model_json: dict[str, Any] | None = None, wall_seconds: float = 5.0,
               **claims: Any) -> None:
    """Leave a run directory as a supervised job that reached `accuracy` on the held-out set would.

    `claimed_units`: what result.json says the model has, when it should differ from its weights (a forgery).
    """
    claimed_params = params_of(claimed_units if claimed_units is not None else units)
    run = RunDir(Path(run_dir))
    key = ctx.labels(job.exercise, job.profile_name)
    labels, train = key.labels.copy(), key.train_eval_labels.copy()
    wrong = np.arange(len(labels)) >= round(accuracy * len(labels))
    labels[wrong] = (labels[wrong] + 1) % 10
    train_wrong = np.arange(len(train)) >= round(train_accuracy * len(train))
    train[train_wrong] = (train[train_wrong] + 1) % 10
    files = {}
    if verdict is Verdict.COMPLETED:
        fields: dict[str, Any] = dict(
            outcome=Outcome.OK, params=claimed_params, trainable_params=claimed_params, epochs=job.epochs,
            batch_size=job.batch_size, layer_types=["Dense", "Dense"], optimizer="Adam", learning_rate=0.001,
            loss="sparse_categorical_crossentropy", history=[EpochRecord(epoch=i + 1, loss=1.0 / (i + 1),
                                                                         accuracy=0.5 + 0.1 * i, seconds=1.0)
                                                             for i in range(job.epochs or 1)],
            timings={"fit": 2.0}, n_predictions=len(labels), seed=job.seed)
        claimed = result or JobResult(**{**fields, **claims})
        files = {RunDir.PREDICTIONS: npy(labels.astype(np.int16)), RunDir.TRAIN_PREDICTIONS: npy(train.astype(np.int16)),
                 RunDir.WEIGHTS: weights(units), RunDir.RESULT: claimed.model_dump_json().encode()}
        if model_json is not None:
            files[RunDir.MODEL] = json.dumps(model_json).encode()
        for name, data in files.items():
            (run.path / name).parent.mkdir(parents=True, exist_ok=True)
            (run.path / name).write_bytes(data)
    report = SupervisorReport(verdict=verdict, exit_code=0, wall_seconds=wall_seconds, phases={
        "building model": 1.0, "training": 1.5, "predicting": 4.0}, last_phase="training", namespaces="bwrap",
        filesystem_view=True, files={k: len(v) for k, v in files.items()},
        limits={"wall_seconds": job.wall_seconds, "build_seconds": job.build_seconds, "output_mb": 256})
    (run.path / RunDir.SUPERVISOR).write_text(report.model_dump_json())


def job_of(ctx: Context, submission_id: int) -> tuple[str, JobSpec, str]:
    from grader.db.engine import session_scope
    from grader.db.models import Submission

    with session_scope(ctx.reader) as session:
        sub = session.get_one(Submission, submission_id)
        return sub.job_id or "", JobSpec.model_validate(sub.job_spec), sub.run_dir or ""


def row(ctx: Context, submission_id: int) -> dict[str, Any]:
    from grader.db.engine import session_scope
    from grader.db.models import Result, Submission

    with session_scope(ctx.reader) as session:
        sub = session.get_one(Submission, submission_id)
        res = session.get(Result, submission_id)
        return {"state": sub.state, "reason": sub.reason, "message": sub.message, "attempts": sub.attempts,
                "counts": sub.counts_for_quota, "score": res.score if res else None,
                "public": res.public_accuracy if res else None, "result": res is not None,
                "grade": json.loads(json.dumps(res.grade)) if res and res.grade else None}
