"""Benchmark: `grader leaderboard` on a database holding 100,000 graded submissions.

Fills a fresh SQLite file through grader's own engine (migrations applied) and models
(bulk inserts), then times

* `grader leaderboard -e EXERCISE` end to end, as a subprocess (median of --runs runs);
* the same command's service call in-process (`service.board.leaderboard`, no sync);
* the underlying queries alone (`best_per_participant` + `reference_rows`);

and prints SQLite's EXPLAIN QUERY PLAN for the best-per-participant query.

    .venv/bin/python bench/leaderboard_100k.py                 # 100k submissions, 2,000 people
    .venv/bin/python bench/leaderboard_100k.py --keep --home /tmp/lb100k
    .venv/bin/python bench/leaderboard_100k.py --submissions 10000 --runs 3
    .venv/bin/python bench/leaderboard_100k.py --home /tmp/lb100k --reuse   # time again, no fill

Nothing is trained and no backend is touched: every generated submission is already `done`
or `failed`, so the leaderboard's sync finds no active job.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import insert, text  # noqa: E402

from grader.db.engine import make_engine, session_scope  # noqa: E402
from grader.db.models import Participant, Result, Submission  # noqa: E402
from grader.db.queries import best_per_participant, reference_rows  # noqa: E402
from grader.settings import Settings  # noqa: E402
from grader.specs.catalog import ExerciseCatalog  # noqa: E402

EXERCISES = ("fashion_mnist", "mnist", "asl")
BATCH = 5_000


def _result_blobs(rng: random.Random, acc: float, params: int, epochs: int) -> tuple[dict, dict, dict]:
    """Small but realistic JSON columns (the leaderboard never reads them for participants)."""
    history = [{"epoch": e + 1, "loss": round(rng.uniform(0.1, 2.0), 4), "accuracy": round(acc * (e + 1) / epochs, 4)}
               for e in range(epochs)]
    job_result = {"outcome": "ok", "params": params, "epochs": epochs, "batch_size": 128, "optimizer": "adam",
                  "learning_rate": 0.001, "loss": "sparse_categorical_crossentropy", "history": history,
                  "timings": {"fit": round(rng.uniform(2, 60), 2)}}
    metrics = {"accuracy": acc, "public_accuracy": acc, "private_accuracy": acc, "train_accuracy": min(1.0, acc + 0.03)}
    grade = {"total": 7.0, "max_total": 10.0, "graded": True, "criteria": [
        {"id": "runs", "title": "Trains", "points": 2, "max_points": 2, "feedback": "ok"},
        {"id": "beats_baseline", "title": "Beats baseline", "points": 3, "max_points": 4, "feedback": "close"}],
        "diagnostics": []}
    return job_result, metrics, grade


def fill(home: Path, n_submissions: int, n_participants: int, profile: str, seed: int = 7) -> dict[str, float]:
    """Create HOME/grader.db with participants, submissions, results and reference rows."""
    rng = random.Random(seed)
    settings = Settings(home=home, course_dir=REPO)
    catalog = ExerciseCatalog(REPO)
    engine = make_engine(settings.resolved_db_url)
    t0 = time.perf_counter()
    now = datetime.now(UTC)
    with session_scope(engine) as s:
        s.execute(insert(Participant), [{"id": i + 1, "name": f"student{i:05d}", "created_at": now}
                                        for i in range(n_participants)])
        s.execute(insert(Participant), [{"id": n_participants + 1, "name": "reference", "created_at": now}])
    specs = {ex: catalog.get(ex) for ex in EXERCISES}
    sid = 0
    remaining = n_submissions
    while remaining > 0:
        n = min(BATCH, remaining)
        subs, results = [], []
        for _ in range(n):
            sid += 1
            ex = EXERCISES[rng.randrange(len(EXERCISES))]
            spec = specs[ex]
            created = now - timedelta(minutes=rng.uniform(0, 60 * 24 * 14))
            ok = rng.random() < 0.9
            sha = f"{rng.getrandbits(256):064x}"
            subs.append({
                "id": sid, "participant_id": rng.randrange(n_participants) + 1, "exercise": ex, "profile": profile,
                "seed": spec.seed, "spec_hash": spec.spec_hash(), "file_sha256": sha, "filename": "model.py",
                "kind": "py", "stored_path": f"/nonexistent/{sha}.py",
                "cache_key": f"{sha}:{spec.spec_hash()}:{spec.seed}:{profile}", "reference_name": None,
                "state": "done" if ok else "failed", "reason": None if ok else "participant_error",
                "message": None if ok else "your build_model() raised ValueError", "backend": "local",
                "job_id": f"{sid:07d}-bench", "run_dir": f"/nonexistent/runs/{sid:07d}", "cached_from": None,
                "counts_for_quota": True, "attempts": 0, "submitted_by": "bench", "created_at": created,
                "started_at": created, "finished_at": created + timedelta(seconds=30),
            })
            acc = rng.uniform(0.5, 0.99)
            params = rng.randrange(10_000, 1_500_000)
            epochs = rng.randrange(1, 3)
            job_result, metrics, grade = _result_blobs(rng, acc, params, epochs)
            if not ok:
                job_result = {"outcome": "failed", "error_kind": "build_error", "message": "ValueError"}
            results.append({
                "submission_id": sid, "outcome": "ok" if ok else "failed",
                "error_kind": None if ok else "build_error",
                "accuracy": acc if ok else None, "public_accuracy": acc if ok else None,
                "private_accuracy": (acc + rng.uniform(-0.02, 0.02)) if ok else None,
                "train_accuracy": min(1.0, acc + 0.03) if ok else None, "params": params if ok else None,
                "epochs": epochs if ok else None, "fit_seconds": rng.uniform(2, 60) if ok else None,
                "job_result": job_result, "metrics": metrics if ok else None,
                "score": rng.choice((4.0, 6.0, 7.5, 9.0, 10.0)) if ok else 0.0, "max_score": 10.0,
                "grade": grade, "rubric_hash": "0" * 64, "graded_at": now,
            })
        with session_scope(engine) as s:
            s.execute(insert(Submission), subs)
            s.execute(insert(Result), results)
        remaining -= n
    # the measured baseline and references of each exercise, as `grader references compute` stores them
    with session_scope(engine) as s:
        for ex, spec in specs.items():
            for path in catalog.references(ex):
                sid += 1
                acc = rng.uniform(0.6, 0.95)
                s.execute(insert(Submission), [{
                    "id": sid, "participant_id": n_participants + 1, "exercise": ex, "profile": profile,
                    "seed": spec.seed, "spec_hash": spec.spec_hash(), "file_sha256": "r" * 64, "filename": path.name,
                    "kind": "py", "stored_path": str(path), "cache_key": f"ref-{sid}", "reference_name": path.stem,
                    "state": "done", "backend": "local", "job_id": f"{sid:07d}-ref", "run_dir": "/nonexistent",
                    "counts_for_quota": False, "attempts": 0, "submitted_by": "bench", "created_at": now,
                }])
                job_result, metrics, grade = _result_blobs(rng, acc, 100_000, 2)
                s.execute(insert(Result), [{
                    "submission_id": sid, "outcome": "ok", "accuracy": acc, "public_accuracy": acc,
                    "private_accuracy": acc, "train_accuracy": acc, "params": 100_000, "epochs": 2,
                    "fit_seconds": 10.0, "job_result": job_result, "metrics": metrics, "score": 8.0,
                    "max_score": 10.0, "grade": grade, "rubric_hash": "0" * 64, "graded_at": now,
                }])
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    raw = sqlite3.connect(home / "grader.db")  # outside any transaction: fold the WAL into the main file
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()
    return {"fill_seconds": time.perf_counter() - t0, "submissions": sid}


def query_count(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT count(*) FROM submissions").fetchone()[0]
    finally:
        con.close()


def median_time(fn: Callable[[], object], runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def query_plan(home: Path, exercise: str, profile: str) -> list[str]:
    """EXPLAIN QUERY PLAN of the compiled best-per-participant statement."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    engine = make_engine(Settings(home=home).resolved_db_url)
    captured: list[tuple[str, object]] = []

    with Session(engine) as s:

        def grab(_conn, _cursor, statement, parameters, _context, _many):
            captured.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", grab)
        best_per_participant(s, exercise, profile, "public")
        event.remove(engine, "before_cursor_execute", grab)
    statement, params = next((st, p) for st, p in captured if "row_number" in st.lower())
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params).all()
    engine.dispose()
    return [f"{r[0]:>3} {r[1]:>3}  {r[3]}" for r in rows]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--submissions", type=int, default=100_000)
    ap.add_argument("--participants", type=int, default=2_000)
    ap.add_argument("--exercise", default="fashion_mnist")
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--runs", type=int, default=7, help="timed runs per figure (the median is reported)")
    ap.add_argument("--home", type=Path, default=None, help="state folder to fill (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the filled database")
    ap.add_argument("--reuse", action="store_true", help="time the database already in --home (no fill)")
    args = ap.parse_args()

    home = args.home or Path(tempfile.mkdtemp(prefix="grader-bench-"))
    db = home / "grader.db"
    if db.exists() and not args.reuse:
        sys.exit(f"{db} exists: pick an empty --home, or time it again with --reuse")
    if args.reuse and not db.exists():
        sys.exit(f"--reuse: {db} does not exist")
    try:
        if not args.reuse:
            filled = fill(home, args.submissions, args.participants, args.profile)
            print(f"filled {db}: {filled['submissions']:,} submissions ({args.participants:,} participants, "
                  f"{len(EXERCISES)} exercises) in {filled['fill_seconds']:.1f}s, {db.stat().st_size / 1e6:.1f} MB")
        else:
            print(f"timing {db}: {query_count(db):,} submissions, {db.stat().st_size / 1e6:.1f} MB")

        env = {**os.environ, "GRADER_HOME": str(home), "GRADER_COURSE_DIR": str(REPO), "COLUMNS": "200",
               "GRADER_CONFIG": str(home / "no-config.toml")}
        grader = str(Path(sys.executable).with_name("grader"))
        cmd = [grader, "leaderboard", "-e", args.exercise, "--profile", args.profile]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout  # warm-up
        n_rows = sum(1 for line in out.splitlines() if line.startswith("│"))
        cli_med, cli_all = median_time(lambda: subprocess.run(cmd, env=env, capture_output=True, check=True), args.runs)
        help_med, _ = median_time(lambda: subprocess.run([grader, "--help"], env=env, capture_output=True, check=True),
                                  args.runs)

        os.environ.update(env)  # the in-process figures below read the same settings
        from typer.testing import CliRunner

        from grader.cli.app import app
        from grader.service.board import leaderboard
        from grader.service.context import Context

        runner = CliRunner()
        inproc_med, _ = median_time(lambda: runner.invoke(app, cmd[1:], catch_exceptions=False), args.runs)

        ctx = Context(settings=Settings(home=home, course_dir=REPO))
        svc_med, _ = median_time(lambda: leaderboard(ctx, exercise=args.exercise, profile=args.profile,
                                                     do_sync=False), args.runs)
        spec = ctx.catalog.get(args.exercise)

        def queries() -> None:
            with session_scope(ctx.engine) as s:
                best_per_participant(s, args.exercise, args.profile, "public")
                reference_rows(s, args.exercise, args.profile, spec.seed, spec.spec_hash())

        q_med, q_all = median_time(queries, args.runs)

        print(f"`grader leaderboard -e {args.exercise}` end to end (subprocess): median {cli_med * 1000:.0f} ms "
              f"over {args.runs} runs ({', '.join(f'{t * 1000:.0f}' for t in cli_all)} ms); {n_rows} table rows")
        print(f"  of which interpreter + CLI start-up (`grader --help`): median {help_med * 1000:.0f} ms")
        print(f"  of which the command itself, in-process (sync + queries + rich table): median "
              f"{inproc_med * 1000:.0f} ms")
        print(f"service.board.leaderboard() in-process, no sync, no rendering: median {svc_med * 1000:.1f} ms")
        print(f"queries alone (best_per_participant + reference_rows): median {q_med * 1000:.1f} ms "
              f"({', '.join(f'{t * 1000:.1f}' for t in q_all)} ms)")
        print("EXPLAIN QUERY PLAN (best_per_participant, public board):")
        for line in query_plan(home, args.exercise, args.profile):
            print(f"  {line}")
    finally:
        if args.keep or args.home:
            print(f"database kept at {home / 'grader.db'}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
