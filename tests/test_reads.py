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
from service_fixtures import INSTRUCTOR, FakeBackend, finish_run, job_of, make_context, source
from sqlalchemy import Engine, event
from typer.testing import CliRunner

from grader.backends.base import JobState
from grader.service.context import Context
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


# --- the server's board cache (grader/api/boards.py) and the version it keys on (schema 0003) ----------------------

def _graded(ctx: Context, fake: FakeBackend, who: str, accuracy: float, units: int) -> int:
    spec = ctx.catalog.get("mnist")
    src = source(units, who)
    receipt = submit_checked(ctx, INSTRUCTOR, src, check_source(src, "m.py", spec), "m.py", exercise="mnist",
                             student=who)
    job_id, job, run_dir = job_of(ctx, receipt.submission_id)
    finish_run(ctx, run_dir, job, accuracy=accuracy, units=units)
    fake.set(job_id, JobState.COMPLETED)
    return receipt.submission_id


def test_every_service_writer_moves_the_board_version(tmp_path: Path, db_url: str) -> None:
    """Submit, ingest, regrade, cancel: each committed change is a new version of every board."""
    from grader.db.reads import board_version
    from grader.service.grade import regrade
    from grader.service.submissions import cancel

    ctx, fake = make_context(tmp_path, db_url)
    seen = [board_version(ctx.reads)]

    def moved(what: str) -> None:
        now = board_version(ctx.reads)
        assert now > seen[-1], f"{what} left the board version at {now}"
        seen.append(now)

    spec = ctx.catalog.get("mnist")
    src = source(16, "ann")
    receipt = submit_checked(ctx, INSTRUCTOR, src, check_source(src, "m.py", spec), "m.py", exercise="mnist",
                             student="ann")
    moved("a submission (its count is on the board)")
    job_id, job, run_dir = job_of(ctx, receipt.submission_id)
    finish_run(ctx, run_dir, job, accuracy=0.8)
    fake.set(job_id, JobState.COMPLETED)
    reconcile(ctx)
    moved("an ingest")
    regrade(ctx, INSTRUCTOR, "mnist")
    moved("a regrade")
    src = source(20, "ann")
    second = submit_checked(ctx, INSTRUCTOR, src, check_source(src, "m.py", spec), "m.py", exercise="mnist",
                            student="ann")
    moved("a second submission")
    cancel(ctx, INSTRUCTOR, second.submission_id)  # asks the backend; the loop records it
    reconcile(ctx)
    moved("a cancel")
    ctx.close()


def test_the_board_cache_computes_once_per_version_and_only_for_who_may_see_it(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import threading

    from grader.api import boards
    from grader.errors import AccessError
    from grader.service.access import Actor
    from grader.service.grade import regrade

    ctx, fake = make_context(tmp_path)
    for i, who in enumerate(("alice", "bob", "carol")):
        _graded(ctx, fake, who, 0.7 + 0.05 * i, 16 + i)
    reconcile(ctx)
    computed: list[tuple[object, ...]] = []
    gate = threading.Event()
    gate.set()
    real = boards.leaderboard

    def counted(*args: object, **kwargs: object) -> boards.Leaderboard:
        computed.append((kwargs["private"], kwargs["top"]))
        gate.wait(30)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(boards, "leaderboard", counted)
    cache = boards.BoardCache()
    alice, prof = Actor(name="alice", instructor=False), INSTRUCTOR

    def board(who: Actor, private: bool = False) -> boards.Board:
        return cache.entry(ctx, who, exercise="mnist", profile=None, private=private, top=None)

    # 20 readers at once after a change: one computation, and everyone gets that board
    gate.clear()
    got: list[boards.Board] = []
    readers = [threading.Thread(target=lambda: got.append(board(alice))) for _ in range(20)]
    for t in readers:
        t.start()
    time.sleep(0.3)
    gate.set()
    for t in readers:
        t.join(30)
    assert len(got) == 20 and len({id(e) for e in got}) == 1 and computed == [(False, None)]
    first = got[0]
    assert json.loads(first.json) == json.loads(first.board.model_dump_json())
    assert [r["row"]["participant"] for r in json.loads(first.json)["rows"] if r["rank"]] == ["carol", "bob", "alice"]
    assert board(alice) is first and len(computed) == 1

    # the private board: refused to a participant, computed and kept apart for the instructor
    with pytest.raises(AccessError):
        board(alice, private=True)
    private = board(prof, private=True)
    assert private.board.board == "private" and computed[-1] == (True, None)
    with pytest.raises(AccessError):  # cached now, and still refused
        board(alice, private=True)
    assert board(alice).board.board == "public"

    # a change: computed in the background; meanwhile requests get the previous board after at most `wait`
    regrade(ctx, INSTRUCTOR, "mnist")
    gate.clear()
    start = time.monotonic()
    assert board(alice) is first and board(alice) is first
    assert time.monotonic() - start < 5 and computed.count((False, None)) == 2  # one computation for both
    gate.set()
    deadline = time.monotonic() + 30
    while (fresh := board(alice)) is first and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fresh.version > first.version and computed.count((False, None)) == 2
    assert board(alice) is fresh

    # a previous board no longer known current within max_stale is not served: the request waits
    cache.max_stale = 0
    regrade(ctx, INSTRUCTOR, "mnist")
    gate.clear()
    waiting = threading.Thread(target=lambda: got.append(board(alice)))
    waiting.start()
    time.sleep(0.3)
    assert waiting.is_alive()
    gate.set()
    waiting.join(30)
    assert got[-1].version > fresh.version and computed.count((False, None)) == 3

    # rendered HTML is kept with the board, per variant
    renders: list[int] = []
    html = fresh.rendered(("table", None), lambda b: (renders.append(1), f"<table>{len(b.rows)}</table>")[1])
    assert fresh.rendered(("table", None), lambda b: "other") == html and renders == [1]
    ctx.close()
