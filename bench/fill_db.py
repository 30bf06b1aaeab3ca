"""A grader database full of graded submissions, for the benchmarks (nothing trained, no backend).

`fill(home, n_submissions, n_participants, profile)` creates HOME/grader.db through grader's own engine
(migrations at HEAD) and models, with bulk inserts: participants `student00000`..., submissions over
three exercises (90% done, 10% failed), each with its result row, plus the measured baseline and
reference rows of each exercise as `grader references compute` stores them. Every generated submission
is `done` or `failed`, so no sync, worker or backend has anything to do.

The JSON columns hold what grader itself writes, built through its own models (`JobSpec`, `JobResult`,
`Metrics`, `Score`, `Facts`) and checked by `check_rows`, so `grader show ID` on a generated row works
and a column added to those models shows up here as a validation error instead of a silently stale bench.

`RowMaker` makes one row pair at a time: `bench/server_leaderboard.py` inserts new graded results with it
while a server is read.

    .venv/bin/python bench/fill_db.py /tmp/home --submissions 10000 --participants 200
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sqlalchemy import insert, text  # noqa: E402

from grader import __version__  # noqa: E402
from grader.db.engine import make_engine, session_scope  # noqa: E402
from grader.db.models import Participant, Result, Submission  # noqa: E402
from grader.grading import Score  # noqa: E402
from grader.outcomes import ErrorKind  # noqa: E402
from grader.results import Facts, IsolationPolicy, JobResult, JobSpec  # noqa: E402
from grader.scoring import Metrics  # noqa: E402
from grader.settings import Settings  # noqa: E402
from grader.specs.catalog import ExerciseCatalog  # noqa: E402
from grader.specs.exercise import ExerciseSpec  # noqa: E402

EXERCISES = ("fashion_mnist", "mnist", "asl")
BATCH = 5_000
FAILED_MESSAGE = "build_model() raised ValueError: Input 0 of layer \"dense\" is incompatible with the layer"
SUMMARY = "\n".join(["Model: \"sequential\"", "─" * 60, " Layer (type)           Output Shape         Param #",
                     "═" * 60, " flatten (Flatten)      (None, 784)          0",
                     " dense (Dense)          (None, 128)          100480",
                     " dense_1 (Dense)        (None, 10)           1290", "═" * 60])


def participant_name(i: int) -> str:
    return f"student{i:05d}"


class RowMaker:
    """Submission and Result rows (dicts for `insert(Submission)` / `insert(Result)`) of the current schema."""

    def __init__(self, catalog: ExerciseCatalog, profile: str, rng: random.Random,
                 exercises: tuple[str, ...] = EXERCISES) -> None:
        self.catalog, self.profile, self.rng = catalog, profile, rng
        self.exercises = exercises
        self.specs = {ex: catalog.get(ex) for ex in exercises}
        self.hashes = {ex: spec.spec_hash() for ex, spec in self.specs.items()}
        self.templates = {ex: self._templates(ex, spec) for ex, spec in self.specs.items()}

    def _templates(self, ex: str, spec: ExerciseSpec) -> dict[str, dict[str, Any]]:
        """One validated blob of each JSON column per exercise; rows copy it and change the numbers."""
        prof = spec.profile(self.profile)
        now = datetime.now(UTC)
        job = JobSpec(run_id="0000000-template", exercise=spec, spec_hash=self.hashes[ex], profile_name=self.profile,
                      profile=prof, seed=spec.seed, epochs=min(2, prof.max_epochs or 2), batch_size=128,
                      submission_sha256="0" * 64, inputs_dir=f"/nonexistent/inputs/{ex}/{self.profile}",
                      wall_seconds=300, wall_basis="5 × the slowest reference (60 s)", build_seconds=120,
                      memory_mb=spec.limits.memory_mb, isolation=IsolationPolicy(namespaces="bwrap"),
                      grader_version=__version__, created_at=now)
        used = spec.labels.used
        n = len(used)
        per_class = [{"label": lab, "name": spec.class_name(lab), "accuracy": 0.9, "support": 50} for lab in used]
        confusion = [[45 if i == j else (1 if abs(i - j) == 1 else 0) for j in range(n)] for i in range(n)]
        confused = [{"true_label": used[i], "true_name": spec.class_name(used[i]), "predicted_label": used[i + 1],
                     "predicted_name": spec.class_name(used[i + 1]), "count": 3, "rate": 0.06} for i in range(3)]
        breakdown = {"per_class": per_class, "confusion": confusion, "labels": used, "most_confused": confused,
                     "n": 25 * n}
        metrics = Metrics.model_validate({
            "accuracy": 0.9, "public_accuracy": 0.9, "private_accuracy": 0.9, "train_accuracy": 0.93,
            "generalization_gap": 0.03, "per_class": per_class, "confusion": confusion, "labels": used,
            "most_confused": confused, "n_heldout": 50 * n, "public": breakdown})
        result = JobResult.model_validate({
            "outcome": "ok", "history": [{"epoch": e + 1, "loss": 0.5, "accuracy": 0.9, "seconds": 3.0}
                                         for e in range(2)],
            "timings": {"import": 2.1, "build": 0.4, "fit": 6.0, "predict": 0.7}, "params": 101_770,
            "trainable_params": 101_770, "layer_types": ["Flatten", "Dense", "Dense"], "model_summary": SUMMARY,
            "input_layout": "flat", "output_units": spec.labels.num_outputs, "label_encoding": "sparse", "epochs": 2,
            "batch_size": 128, "optimizer": "adam", "learning_rate": 0.001, "loss": "sparse_categorical_crossentropy",
            "compiled_by": "exercise defaults", "optimizer_steps": 100, "expected_steps": 100, "seed": spec.seed,
            "profile": self.profile, "versions": {"python": "3.11.7", "keras": "3.6.0", "tensorflow": "2.18.0"},
            "spec_hash": self.hashes[ex], "host": "bench", "backend": "local", "started_at": now, "finished_at": now,
            "n_predictions": 50 * n})
        rubric = tomllib.loads((self.catalog.root / "rubrics" / f"{ex}.toml").read_text(encoding="utf-8"))
        criteria = [{"id": c["id"], "title": c.get("title", c["id"]), "points": float(c.get("points", 1)),
                     "max_points": float(c.get("points", 1)), "feedback": "Held-out accuracy 90.0% beats the "
                     "baseline's 85.0% by +5.0%."} for c in rubric.get("criteria", [])]
        total = sum(c["max_points"] for c in criteria) or 10.0
        score = Score(total=total, max_total=total, graded=True, criteria=criteria, diagnostics=[])
        facts = Facts(wall_seconds=20.0, fit_seconds=6.0, build_seconds=3.0, peak_memory_mb=900.0, params=101_770,
                      filesystem_view=True, namespaces="bwrap", landlock_abi=4)
        failed = JobResult.failed(ErrorKind.BUILD_ERROR, FAILED_MESSAGE, spec_hash=self.hashes[ex], seed=spec.seed,
                                  profile=self.profile, backend="local")
        return {"job_spec": job.model_dump(mode="json"), "metrics": metrics.model_dump(mode="json"),
                "job_result": result.model_dump(mode="json"), "grade": score.model_dump(mode="json"),
                "facts": facts.model_dump(mode="json"), "failed": failed.model_dump(mode="json"),
                "failed_grade": Score(total=0.0, max_total=total, graded=True,
                                      criteria=[{**c, "points": 0.0, "feedback": "Your model did not finish."}
                                                for c in criteria]).model_dump(mode="json")}

    def graded(self, sid: int, participant_id: int, *, exercise: str | None = None, ok: bool | None = None,
               created: datetime | None = None, graded_at: datetime | None = None,
               reference: Path | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """A finished submission (done, or failed in the job) and its result row, as ingestion stores them."""
        rng = self.rng
        ex = exercise or self.exercises[rng.randrange(len(self.exercises))]
        spec, t = self.specs[ex], self.templates[ex]
        now = datetime.now(UTC)
        created = created or now
        ok = (rng.random() < 0.9) if ok is None else ok
        sha = f"{rng.getrandbits(256):064x}"
        wall = rng.uniform(8, 90)
        run_id = f"{sid:07d}-bench"
        job = {**t["job_spec"], "run_id": run_id, "submission_sha256": sha, "created_at": created.isoformat()}
        sub = {
            "id": sid, "participant_id": participant_id, "exercise": ex, "profile": self.profile, "seed": spec.seed,
            "spec_hash": self.hashes[ex], "file_sha256": sha,
            "filename": reference.name if reference else rng.choice(("model.py", "cnn.py", "exercise.ipynb")),
            "kind": "py", "stored_path": str(reference) if reference else f"/nonexistent/submissions/{sha}.py",
            "cache_key": f"{sha}:{self.hashes[ex]}:{spec.seed}:{self.profile}",
            "reference_name": reference.stem if reference else None, "state": "done" if ok else "failed",
            "reason": None if ok else "participant_error", "message": None if ok else FAILED_MESSAGE,
            "backend": "local", "job_id": run_id, "run_dir": f"/nonexistent/runs/{run_id}", "cached_from": None,
            "counts_for_quota": reference is None, "attempts": 1, "scheduler_state": None, "scheduler_reason": None,
            "submitted_by": "bench", "job_spec": job, "parent_id": None, "seeds": None,
            "code_fingerprint": f"{rng.getrandbits(256):064x}", "created_at": created,
            "started_at": created + timedelta(seconds=1), "finished_at": created + timedelta(seconds=1 + wall),
        }
        if not ok:
            res = {"submission_id": sid, "outcome": "failed", "error_kind": ErrorKind.BUILD_ERROR.value,
                   "accuracy": None, "public_accuracy": None, "private_accuracy": None, "train_accuracy": None,
                   "params": None, "epochs": None, "fit_seconds": None, "wall_seconds": wall,
                   "peak_memory_mb": rng.uniform(300, 600), "public_std": None, "private_std": None, "n_seeds": None,
                   "job_result": t["failed"], "metrics": None, "facts": {**t["facts"], "fit_seconds": None,
                                                                         "wall_seconds": wall, "params": None},
                   "notes": [], "score": 0.0, "max_score": t["failed_grade"]["max_total"], "grade": t["failed_grade"],
                   "rubric_hash": "0" * 64, "graded_at": graded_at or created + timedelta(seconds=2 + wall)}
            return sub, res
        lo, hi = (0.6, 0.95) if reference else (0.5, 0.99)
        pub = round(rng.uniform(lo, hi), 4)
        priv = round(min(1.0, max(0.0, pub + rng.uniform(-0.02, 0.02))), 4)
        acc = round((pub + priv) / 2, 4)
        train = round(min(1.0, acc + rng.uniform(0, 0.06)), 4)
        params = 100_000 if reference else rng.randrange(10_000, 1_500_000)
        epochs = rng.randrange(1, 3)
        fit = round(rng.uniform(2, 60), 2)
        history = [{"epoch": e + 1, "loss": round(rng.uniform(0.1, 2.0), 4), "accuracy": round(train * (e + 1) / epochs,
                                                                                               4),
                    "val_loss": None, "val_accuracy": None, "seconds": round(fit / epochs, 2)} for e in range(epochs)]
        score = rng.choice((4.0, 6.0, 7.5, 9.0, 10.0)) * t["grade"]["max_total"] / 10
        res = {"submission_id": sid, "outcome": "ok", "error_kind": None, "accuracy": acc, "public_accuracy": pub,
               "private_accuracy": priv, "train_accuracy": train, "params": params, "epochs": epochs,
               "fit_seconds": fit, "wall_seconds": wall, "peak_memory_mb": rng.uniform(600, 2500), "public_std": None,
               "private_std": None, "n_seeds": None,
               "job_result": {**t["job_result"], "history": history, "params": params, "trainable_params": params,
                              "epochs": epochs, "timings": {**t["job_result"]["timings"], "fit": fit}},
               "metrics": {**t["metrics"], "accuracy": acc, "public_accuracy": pub, "private_accuracy": priv,
                           "train_accuracy": train, "generalization_gap": round(train - pub, 4)},
               "facts": {**t["facts"], "wall_seconds": wall, "fit_seconds": fit, "params": params},
               "notes": [] if rng.random() < 0.8 else ["the model's output layer has no softmax: logits assumed"],
               "score": score, "max_score": t["grade"]["max_total"],
               "grade": {**t["grade"], "total": score, "criteria": [  # the criteria add up to the total
                   {**c, "points": round(c["max_points"] * score / t["grade"]["max_total"], 2)}
                   for c in t["grade"]["criteria"]]},
               "rubric_hash": "0" * 64, "graded_at": graded_at or created + timedelta(seconds=2 + wall)}
        return sub, res


def fill(home: Path, n_submissions: int, n_participants: int, profile: str = "smoke", seed: int = 7,
         course_dir: Path = REPO, quiet: bool = False) -> dict[str, Any]:
    """Create HOME/grader.db with participants, submissions, results and reference rows; ANALYZE; checkpoint."""
    rng = random.Random(seed)
    settings = Settings(home=home, course_dir=course_dir)
    catalog = ExerciseCatalog(settings.resolved_course_dir)
    maker = RowMaker(catalog, profile, rng)
    engine = make_engine(settings.resolved_db_url)
    t0 = time.perf_counter()
    now = datetime.now(UTC)
    with session_scope(engine) as s:
        s.execute(insert(Participant), [{"id": i + 1, "name": participant_name(i), "created_at": now}
                                        for i in range(n_participants)])
        s.execute(insert(Participant), [{"id": n_participants + 1, "name": "reference", "created_at": now}])
    sid = 0
    remaining = n_submissions
    while remaining > 0:
        n = min(BATCH, remaining)
        subs, results = [], []
        for _ in range(n):
            sid += 1
            created = now - timedelta(minutes=rng.uniform(0, 60 * 24 * 14))
            sub, res = maker.graded(sid, rng.randrange(n_participants) + 1, created=created, graded_at=now)
            subs.append(sub)
            results.append(res)
        with session_scope(engine) as s:
            s.execute(insert(Submission), subs)
            s.execute(insert(Result), results)
        remaining -= n
        if not quiet:
            print(f"  {sid:,} submissions ({time.perf_counter() - t0:.0f}s)", file=sys.stderr)
    with session_scope(engine) as s:  # the measured baseline and references, as `grader references compute` stores
        for ex in EXERCISES:
            for path in catalog.references(ex):
                sid += 1
                sub, res = maker.graded(sid, n_participants + 1, exercise=ex, ok=True, created=now, graded_at=now,
                                        reference=path)
                s.execute(insert(Submission), [sub])
                s.execute(insert(Result), [res])
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    raw = sqlite3.connect(home / "grader.db")  # outside any transaction: fold the WAL into the main file
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()
    return {"fill_seconds": time.perf_counter() - t0, "submissions": sid, "participants": n_participants}


def check_rows(db: Path, sample: int = 50, seed: int = 1) -> int:
    """Validate the JSON columns of `sample` random submissions (and all references) with grader's models."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        (top,), = con.execute("SELECT max(id) FROM submissions").fetchall()
        rng = random.Random(seed)
        ids = {rng.randrange(top) + 1 for _ in range(sample)}
        ids |= {r[0] for r in con.execute("SELECT id FROM submissions WHERE reference_name IS NOT NULL")}
        marks = ",".join("?" * len(ids))
        rows = con.execute(f"SELECT s.job_spec, r.job_result, r.metrics, r.grade, r.facts, r.notes FROM submissions s "
                           f"JOIN results r ON r.submission_id = s.id WHERE s.id IN ({marks})", sorted(ids)).fetchall()
    finally:
        con.close()
    for row in rows:  # what grader.service.submissions.show reads back
        job, result, metrics, grade, facts, notes = (None if v is None else json.loads(v) for v in row)
        JobSpec.model_validate(job)
        JobResult.model_validate(result)
        if metrics is not None:  # SQLAlchemy's JSON stores None as JSON null, as ingestion does
            Metrics.model_validate(metrics)
        Score.model_validate(grade)
        Facts.model_validate(facts)
        assert isinstance(notes, list)
    return len(rows)


def count(db: Path) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT count(*) FROM submissions").fetchone()[0])
    finally:
        con.close()


def open_home(home: Path | None, *, reuse: bool, submissions: int, participants: int, profile: str = "smoke",
              prefix: str = "grader-bench-", quiet: bool = True) -> Path:
    """A benchmark's home: `home` (or a new temporary folder) with grader.db filled, or with `reuse` the
    database already there; exits with a message when the two disagree."""
    home = home or Path(tempfile.mkdtemp(prefix=prefix))
    db = home / "grader.db"
    if db.exists() and not reuse:
        sys.exit(f"{db} exists: pick an empty --home, or use it with --reuse")
    if reuse and not db.exists():
        sys.exit(f"--reuse: {db} does not exist")
    if reuse:
        print(f"using {db}: {count(db):,} submissions, {db.stat().st_size / 1e6:.1f} MB")
    else:
        filled = fill(home, submissions, participants, profile, quiet=quiet)
        print(f"filled {db}: {filled['submissions']:,} submissions, {participants:,} participants, "
              f"{filled['fill_seconds']:.1f}s, {db.stat().st_size / 1e6:.1f} MB; {check_rows(db)} rows checked")
    return home


def close_home(home: Path, *, keep: bool, note: str = "") -> None:
    """Remove a benchmark's home, or say where it was kept."""
    if keep:
        print(f"home kept at {home}{note}")
    else:
        shutil.rmtree(home, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("home", type=Path, help="state folder to create (must not hold a grader.db yet)")
    ap.add_argument("--submissions", type=int, default=10_000)
    ap.add_argument("--participants", type=int, default=200)
    ap.add_argument("--profile", default="smoke")
    args = ap.parse_args()
    db = args.home / "grader.db"
    if db.exists():
        sys.exit(f"{db} exists: pick an empty folder")
    filled = fill(args.home, args.submissions, args.participants, args.profile)
    print(f"filled {db}: {filled['submissions']:,} submissions, {args.participants:,} participants, "
          f"{filled['fill_seconds']:.1f}s, {db.stat().st_size / 1e6:.1f} MB; {check_rows(db)} rows checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
