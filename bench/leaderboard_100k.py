"""Benchmark: `grader leaderboard` on a database holding 100,000 graded submissions.

Fills a fresh SQLite file with bench/fill_db.py (grader's own engine with migrations at HEAD, its
models, bulk inserts, JSON columns built with grader's own result models), then times

* `grader leaderboard -e EXERCISE` end to end, as a subprocess (median of --runs runs);
* the same command in-process (Typer's CliRunner: the queries and the rich table);
* its service call in-process (`service.board.leaderboard`, no rendering);
* the underlying queries alone (`db.reads.best_per_participant` + `reference_rows`);

and prints SQLite's EXPLAIN QUERY PLAN for the best-per-participant statement, captured as
`db.reads` sends it.

    .venv/bin/python bench/leaderboard_100k.py                 # 100k submissions, 2,000 people
    .venv/bin/python bench/leaderboard_100k.py --keep --home /tmp/lb100k
    .venv/bin/python bench/leaderboard_100k.py --submissions 10000 --runs 3
    .venv/bin/python bench/leaderboard_100k.py --home /tmp/lb100k --reuse   # time again, no fill

Nothing is trained and no backend is touched: every generated submission is already `done`
or `failed`.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from fill_db import close_home, open_home  # noqa: E402

from grader.db.reads import Reader, best_per_participant, reference_rows  # noqa: E402
from grader.service.access import Actor  # noqa: E402
from grader.settings import Settings  # noqa: E402


def median_time(fn: Callable[[], object], runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


class RecordingReader(Reader):
    """A Reader that keeps every statement it runs, with its parameters, as sent to SQLite."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.statements: list[tuple[str, dict[str, Any]]] = []

    def rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        self.statements.append((sql, params))
        return super().rows(sql, **params)


def query_plan(home: Path, exercise: str, profile: str) -> list[str]:
    """EXPLAIN QUERY PLAN of the statement reads.best_per_participant sends (public board)."""
    db = home / "grader.db"
    reader = RecordingReader(f"sqlite:///{db}")
    try:
        best_per_participant(reader, exercise, profile, "public")
    finally:
        reader.close()
    (statement, params), = reader.statements
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute(f"EXPLAIN QUERY PLAN {statement}", params).fetchall()
    finally:
        con.close()
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

    home = open_home(args.home, reuse=args.reuse, submissions=args.submissions, participants=args.participants,
                     profile=args.profile, quiet=False)
    try:
        env = {k: v for k, v in os.environ.items()  # embedded mode, no server; .pyc cached as when installed
               if not k.startswith("GRADER_") and k != "PYTHONDONTWRITEBYTECODE"}
        env.update({"PYTHONPYCACHEPREFIX": str(home / "pycache"),
                    "GRADER_HOME": str(home), "GRADER_COURSE_DIR": str(REPO), "COLUMNS": "200",
                    "GRADER_CONFIG": str(home / "no-config.toml"), "GRADER_CREDENTIALS": str(home / "no-credentials")})
        grader = str(Path(sys.executable).with_name("grader"))
        cmd = [grader, "leaderboard", "-e", args.exercise, "--profile", args.profile]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout  # warm-up
        n_rows = sum(1 for line in out.splitlines() if line.startswith("│"))
        cli_med, cli_all = median_time(lambda: subprocess.run(cmd, env=env, capture_output=True, check=True), args.runs)
        help_med, _ = median_time(lambda: subprocess.run([grader, "--help"], env=env, capture_output=True, check=True),
                                  args.runs)

        for key in [k for k in os.environ if k.startswith("GRADER_")]:
            del os.environ[key]
        os.environ.update(env)  # the in-process figures below read the same settings
        from typer.testing import CliRunner

        from grader.cli.app import app
        from grader.service.board import leaderboard
        from grader.service.context import Context

        runner = CliRunner()
        inproc_med, _ = median_time(lambda: runner.invoke(app, cmd[1:], catch_exceptions=False), args.runs)

        ctx = Context(settings=Settings(home=home, course_dir=REPO))
        actor = Actor(name="bench", instructor=True)
        svc_med, _ = median_time(lambda: leaderboard(ctx, actor, exercise=args.exercise, profile=args.profile),
                                 args.runs)
        spec = ctx.catalog.get(args.exercise)

        def queries() -> None:
            best_per_participant(ctx.reads, args.exercise, args.profile, "public")
            reference_rows(ctx.reads, args.exercise, args.profile, spec.seed, spec.spec_hash())

        q_med, q_all = median_time(queries, args.runs)

        print(f"`grader leaderboard -e {args.exercise}` end to end (subprocess): median {cli_med * 1000:.0f} ms "
              f"over {args.runs} runs ({', '.join(f'{t * 1000:.0f}' for t in cli_all)} ms); {n_rows} table rows")
        print(f"  of which interpreter + CLI start-up (`grader --help`): median {help_med * 1000:.0f} ms")
        print(f"  of which the command itself, in-process (queries + rich table): median {inproc_med * 1000:.0f} ms")
        print(f"service.board.leaderboard() in-process, no rendering: median {svc_med * 1000:.1f} ms")
        print(f"queries alone (best_per_participant + reference_rows): median {q_med * 1000:.1f} ms "
              f"({', '.join(f'{t * 1000:.1f}' for t in q_all)} ms)")
        print("EXPLAIN QUERY PLAN (reads.best_per_participant, public board):")
        for line in query_plan(home, args.exercise, args.profile):
            print(f"  {line}")
    finally:
        close_home(home, keep=args.keep or args.home is not None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
