"""Engine setup: SQLite in WAL mode with a busy timeout, PostgreSQL by URL; write and read sessions.

Writes take SQLite's write lock at BEGIN (IMMEDIATE), so a read-then-write transaction never fails
half-way with SQLITE_BUSY; reads use plain deferred transactions on a reader engine, so any number
of readers (a class refreshing the leaderboard) run beside an ingest without touching the lock.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from grader.db.migrations import READ_ONLY, migrate

BUSY_TIMEOUT_MS = 30_000


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    _journal_mode_wal(cur)
    cur.execute("PRAGMA synchronous = NORMAL")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.close()


def _journal_mode_wal(cur: Any) -> None:
    """Switch to WAL once per file, retrying on a lock.

    Changing the journal mode needs exclusive access, and SQLite may answer SQLITE_BUSY at once
    instead of running the busy handler; with 20 `grader submit` processes opening the same file
    (tests/test_queue.py) one of them failed with "database is locked". WAL is a property of the
    file, so after the first conversion the mode is only read.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cur.execute("PRAGMA journal_mode = WAL")  # answers the old mode where WAL is impossible (:memory:)
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def _begin(conn: Any) -> None:
    # writes take the write lock at BEGIN; reads stay deferred (WAL readers never wait for it)
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, *, migrate_schema: bool = True) -> Engine:
    """Create an engine and bring its schema up to date (a read-only check when it already is)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            path = Path(parsed.database)
            fresh = not path.exists()
            path.parent.mkdir(parents=True, exist_ok=True)
            if fresh:  # the database holds everyone's code and grades: private to its owner from the start
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "isolation_level": None})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _begin)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    if migrate_schema:
        migrate(engine)
    return engine


def reader(engine: Engine) -> Engine:
    """The same database and pool, with deferred (read) transactions."""
    return engine.execution_options(**{READ_ONLY: True})


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    session = sessionmaker(bind=engine, expire_on_commit=False)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
