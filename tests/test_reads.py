"""Reads only read (issue 9): read commands issue no write statement and take no write lock.

The real CLI runs in-process against a real SQLite file while another connection holds the write
lock, as an ingest would: every read command must finish at once (SQLite's busy timeout is 30 s, so
a command that wanted the lock would hang). Every statement is watched twice: SQLAlchemy's cursor
events (the ORM side) and, on the plain sqlite3 read side (grader.db.reads), SQLite's own authorizer,
which reports each action a statement performs and here refuses every one that would write.
"""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

import pytest
from service_fixtures import INSTRUCTOR, finish_run, job_of, make_context, source
from sqlalchemy import Engine, event
from typer.testing import CliRunner

from grader.backends.base import JobState
from grader.service.reconcile import reconcile
from grader.service.submit import submit_checked
from grader.submission import check_source

REAL_CONNECT = sqlite3.connect  # the test's own "ingest" connection must not be watched
WRITES = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|BEGIN\s+IMMEDIATE|BEGIN\s+EXCLUSIVE)",
                    re.I)


@pytest.fixture
def graded_db(tmp_path: Path) -> Path:
    ctx, fake = make_context(tmp_path)
    spec = ctx.catalog.get("mnist")
    for i, who in enumerate(("alice", "bob", "carol")):
        src = source(16 + i, who)
        receipt = submit_checked(ctx, INSTRUCTOR, src, check_source(src, "m.py", spec), "m.py", exercise="mnist",
                                 student=who)
        job_id, job, run_dir = job_of(ctx, receipt.submission_id)
        finish_run(ctx, run_dir, job, accuracy=0.7 + 0.05 * i, units=16 + i)
        fake.set(job_id, JobState.COMPLETED)
    reconcile(ctx)
    for job_id, _ in fake.started:  # the references queued on the way: left queued, like a busy class
        fake.set(job_id, JobState.PENDING)
    return tmp_path / "home"


@pytest.mark.parametrize("args", [["status", "--all"], ["show", "1"], ["history"], ["leaderboard", "-e", "mnist"],
                                  ["export", "grades", "-e", "mnist"], ["status", "--json"],
                                  ["leaderboard", "-e", "mnist", "--json"]],
                         ids=["status", "show", "history", "leaderboard", "export", "status-json", "board-json"])
def test_read_commands_issue_no_write_and_wait_for_no_lock(graded_db: Path, monkeypatch: pytest.MonkeyPatch,
                                                           args: list[str]) -> None:
    from grader.cli.app import app

    db = graded_db / "grader.db"
    monkeypatch.setenv("GRADER_HOME", str(graded_db))
    monkeypatch.setenv("GRADER_COURSE_DIR", str(Path(__file__).resolve().parents[1]))
    monkeypatch.setenv("GRADER_CONFIG", str(graded_db / "none.toml"))
    monkeypatch.setenv("COLUMNS", "160")
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    denied: list[str] = []
    allowed = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_PRAGMA,
               getattr(sqlite3, "SQLITE_RECURSIVE", 33)}
    real_connect = REAL_CONNECT

    def authorizer(action: int, arg1: object, arg2: object, db_name: object, source: object) -> int:
        if action in allowed:
            return sqlite3.SQLITE_OK
        denied.append(f"action {action} on {arg1}/{arg2}")
        return sqlite3.SQLITE_DENY

    def watched(*args: object, **kwargs: object) -> sqlite3.Connection:
        conn = real_connect(*args, **kwargs)  # type: ignore[arg-type]
        conn.set_trace_callback(statements.append)
        conn.set_authorizer(authorizer)
        return conn

    monkeypatch.setattr("grader.db.reads.sqlite3.connect", watched)
    ingest = REAL_CONNECT(db, isolation_level=None, timeout=1)
    ingest.execute("BEGIN IMMEDIATE")  # an ingest holds the write lock for as long as this test runs the command
    ingest.execute("UPDATE submissions SET scheduler_reason = 'ingesting' WHERE id = 1")
    try:
        start = time.monotonic()
        result = CliRunner().invoke(app, args, catch_exceptions=False)
        elapsed = time.monotonic() - start
    finally:
        ingest.execute("ROLLBACK")
        ingest.close()
        event.remove(Engine, "before_cursor_execute", record)
    assert result.exit_code == 0, result.output
    assert elapsed < 10, f"{args} waited {elapsed:.1f} s: it wanted the write lock"
    assert statements, "nothing was read?"
    writes = [s for s in statements if WRITES.match(s)]
    assert writes == [] and denied == [], f"{args} wrote: {writes} {denied}"
