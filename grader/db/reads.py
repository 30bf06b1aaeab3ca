"""The read side in plain SQL: what `status`, `show`, `history` and the leaderboard ask, one statement each.

Why not the ORM here: importing SQLAlchemy costs about 0.3 s, more than the whole budget of a read
command (issue: a CLI that answers at once), and a class refreshing the leaderboard wants the
cheapest path too. On SQLite these statements run on the standard library's sqlite3 with read-only
connections, one per statement in flight (they cannot write, and in WAL mode never wait for a writer);
on any other database they run through SQLAlchemy with the same text. The schema is SQLAlchemy's (grader.db.models, Alembic);
tests run these statements on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from grader.db.migrations import HEAD

Row = tuple[Any, ...]


class Reader:
    """Read-only connections shared by the threads of a process: `rows(sql, **params)` with `:name` parameters.

    On SQLite a pool of sqlite3 connections (opened read-only, `query_only` on): each statement borrows
    one for its run, opening a new one when none is idle, so the threads of a server read side by side
    (sqlite3 releases the GIL while SQLite works) and never queue for a connection; at most `keep` idle
    ones are kept. A connection is only ever used by one thread at a time, which is what
    `check_same_thread` protects; it is off because the borrowing thread need not be the one that opened
    it (the server's thread pool starts and ends threads as it likes). `close()` closes the idle
    connections and those in use as they come back; a later statement opens fresh ones. Elsewhere an
    SQLAlchemy engine with a pool of a quarter of that (16 + 16 overflow), the database's connections being
    scarcer.
    """

    def __init__(self, url: str, *, keep: int = 64) -> None:
        self.url = url
        self.sqlite = url.startswith("sqlite:///")
        self._path = url.removeprefix("sqlite:///")
        self._keep = keep
        self._lock = threading.Lock()
        self._idle: list[tuple[int, sqlite3.Connection]] = []
        self._generation = 0  # raised by close(): connections of an older generation are closed when returned
        self._engine: Any = None
        if self.sqlite:
            self._idle.append((0, self._open()))  # the first one now: a missing file fails here, as callers expect
        else:
            from sqlalchemy import create_engine

            self._engine = create_engine(url, pool_pre_ping=True, pool_size=keep // 4, max_overflow=keep // 4)

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA query_only = ON")
        return conn

    def current(self) -> bool:
        """The schema is at HEAD (else the caller opens it for writing once, which migrates)."""
        try:
            found = self.rows("SELECT version_num FROM alembic_version")
        except Exception:  # no such table yet: a database from before migrations, or empty
            return False
        return bool(found) and found[0][0] == HEAD

    def rows(self, sql: str, **params: Any) -> list[Row]:
        if not self.sqlite:
            from sqlalchemy import text

            with self._engine.connect() as engine_conn:
                return [tuple(r) for r in engine_conn.execute(text(sql), params).all()]
        with self._lock:
            generation, conn = self._idle.pop() if self._idle else (self._generation, None)
        if conn is None:
            conn = self._open()
        try:
            return [tuple(r) for r in conn.execute(sql, params).fetchall()]  # fetched to the end: no read stays open
        finally:
            with self._lock:
                keep = generation == self._generation and len(self._idle) < self._keep
                if keep:
                    self._idle.append((generation, conn))
            if not keep:
                conn.close()

    def close(self) -> None:
        with self._lock:
            self._generation += 1
            idle, self._idle = self._idle, []
        for _, conn in idle:
            conn.close()
        if self._engine is not None:
            self._engine.dispose()


def board_version(db: Reader) -> int:
    """A number that grows with every committed change to submissions, results or participants (schema 0003).

    Kept by the database's own triggers, whoever writes; one row read, whatever the size of the tables.
    """
    found = db.rows("SELECT version FROM board_version WHERE id = 1")
    return int(found[0][0]) if found else 0


def when(value: Any) -> datetime | None:
    """A timestamp as stored (SQLite: naive UTC text; PostgreSQL: an aware datetime) → aware UTC."""
    if value is None:
        return None
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def loads(value: Any) -> Any:
    if value is None or not isinstance(value, str | bytes):
        return value
    return json.loads(value)


def stamp(value: datetime) -> Any:
    """A parameter compared with stored timestamps: SQLite stores naive UTC text."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


class BoardRow(BaseModel):
    participant: str
    submission_id: int
    reference_name: str | None
    public_accuracy: float | None
    private_accuracy: float | None
    score: float | None
    max_score: float | None
    params: int | None
    epochs: int | None
    fit_seconds: float | None
    n_submissions: int
    last_submitted: datetime | None
    wall_seconds: float | None = None
    public_std: float | None = None
    private_std: float | None = None
    n_seeds: int | None = None


_BOARD_COLUMNS = ("r.public_accuracy, r.private_accuracy, r.score, r.max_score, r.params, r.epochs, r.fit_seconds, "
                  "r.wall_seconds, r.public_std, r.private_std, r.n_seeds")


def _board(row: Row, name: str, reference: str | None, n: int, last: Any) -> BoardRow:
    (sid, pub, priv, score, max_score, params, epochs, fit, wall, pstd, xstd, nseeds) = row[:12]
    return BoardRow(participant=name, submission_id=sid, reference_name=reference, public_accuracy=pub,
                    private_accuracy=priv, score=score, max_score=max_score, params=params, epochs=epochs,
                    fit_seconds=fit, n_submissions=n, last_submitted=when(last), wall_seconds=wall, public_std=pstd,
                    private_std=xstd, n_seeds=nseeds)


def best_per_participant(db: Reader, exercise: str, profile: str, board: str) -> list[BoardRow]:
    """Each participant's best graded submission on `board` (ties: earliest wins), plus their counts.

    Walks the covering indexes ix_submissions_board_best / _counts and ix_results_board (bench/).
    """
    acc = "r.private_accuracy" if board == "private" else "r.public_accuracy"
    sql = f"""
        WITH ranked AS (
            SELECT s.id AS sid, s.participant_id AS pid,
                   row_number() OVER (PARTITION BY s.participant_id ORDER BY {acc} DESC, s.id ASC) AS rn
            FROM submissions s JOIN results r ON r.submission_id = s.id
            WHERE s.exercise = :exercise AND s.profile = :profile AND s.reference_name IS NULL
              AND s.state = 'done' AND s.parent_id IS NULL AND {acc} IS NOT NULL),
        counts AS (
            SELECT participant_id AS pid, count(*) AS n, max(created_at) AS last FROM submissions
            WHERE exercise = :exercise AND profile = :profile AND reference_name IS NULL AND parent_id IS NULL
            GROUP BY participant_id)
        SELECT ranked.sid, {_BOARD_COLUMNS}, p.name, counts.n, counts.last
        FROM ranked JOIN results r ON r.submission_id = ranked.sid JOIN participants p ON p.id = ranked.pid
             JOIN counts ON counts.pid = ranked.pid
        WHERE ranked.rn = 1"""
    return [_board(r, r[12], None, r[13], r[14]) for r in db.rows(sql, exercise=exercise, profile=profile)]


def reference_rows(db: Reader, exercise: str, profile: str, seed: int, spec_hash: str) -> list[BoardRow]:
    """The latest successful run of each reference for this spec, profile and seed."""
    sql = f"""
        SELECT s.id, {_BOARD_COLUMNS}, s.reference_name, s.created_at
        FROM submissions s JOIN results r ON r.submission_id = s.id
        WHERE s.id IN (SELECT max(id) FROM submissions
                       WHERE exercise = :exercise AND profile = :profile AND seed = :seed AND spec_hash = :spec_hash
                         AND reference_name IS NOT NULL AND state = 'done' AND parent_id IS NULL
                       GROUP BY reference_name)"""
    return [_board(r, f"{r[12]} (reference)", r[12], 1, r[13])
            for r in db.rows(sql, exercise=exercise, profile=profile, seed=seed, spec_hash=spec_hash)]


SUBMISSION_COLUMNS = ("s.id, p.name, s.exercise, s.profile, s.filename, s.state, s.reason, s.message, "
                      "s.scheduler_reason, s.cached_from, s.created_at, s.finished_at, s.seeds, r.score, r.max_score, "
                      "r.public_accuracy, r.public_std, s.job_id, s.reference_name, s.run_dir, s.spec_hash, s.backend")


def submissions(db: Reader, *, submission_id: int | None = None, participant: str | None = None,
                exercise: str | None = None, include_references: bool = True, limit: int = 20) -> list[Row]:
    where = ["1 = 1"]
    params: dict[str, Any] = {"limit": limit}
    if submission_id is not None:
        where.append("s.id = :sid")
        params["sid"] = submission_id
    else:
        where.append("s.parent_id IS NULL")
        if participant is not None:
            where.append("p.name = :participant")
            params["participant"] = participant
        if not include_references:
            where.append("s.reference_name IS NULL")
    if exercise is not None:
        where.append("s.exercise = :exercise")
        params["exercise"] = exercise
    sql = (f"SELECT {SUBMISSION_COLUMNS} FROM submissions s JOIN participants p ON p.id = s.participant_id "
           f"LEFT JOIN results r ON r.submission_id = s.id WHERE {' AND '.join(where)} ORDER BY s.id DESC LIMIT :limit")
    return db.rows(sql, **params)


def queue_positions(db: Reader, ids: Sequence[int]) -> dict[int, int]:
    """1-based place in the local queue of each queued submission asked about."""
    if not ids:
        return {}
    rows = db.rows("SELECT id FROM submissions WHERE state = 'queued' AND job_id IS NOT NULL AND id <= :top "
                   "ORDER BY id", top=max(ids))
    return {sid: i for i, (sid,) in enumerate(rows, start=1) if sid in set(ids)}


def result(db: Reader, submission_id: int) -> Row | None:
    found = db.rows("SELECT grade, metrics, job_result, facts, notes FROM results WHERE submission_id = :sid",
                    sid=submission_id)
    return found[0] if found else None


def job_spec(db: Reader, submission_id: int) -> dict[str, Any] | None:
    """The coordinator's stored job spec (limits decided for this submission), parsed."""
    found = db.rows("SELECT job_spec FROM submissions WHERE id = :sid", sid=submission_id)
    value = loads(found[0][0]) if found else None
    return value if isinstance(value, dict) else None


def seed_runs(db: Reader, group_id: int) -> list[Row]:
    return db.rows("SELECT s.id, s.seed, s.state, r.public_accuracy, s.run_dir, s.cached_from FROM submissions s "
                   "LEFT JOIN results r ON r.submission_id = s.id WHERE s.parent_id = :gid ORDER BY s.seed",
                   gid=group_id)


def quota_counts(db: Reader, participant: str, exercise: str, since: datetime) -> tuple[int | None, int, Any]:
    """(override limit or None, submissions counted since `since`, the oldest of them)."""
    override = db.rows("SELECT \"limit\" FROM quota_overrides WHERE participant = :p AND exercise = :e",
                       p=participant, e=exercise)
    used = db.rows(
        "SELECT count(*), min(s.created_at) FROM submissions s JOIN participants p ON p.id = s.participant_id "
        "WHERE p.name = :p AND s.exercise = :e AND s.reference_name IS NULL AND s.counts_for_quota = :yes "
        "AND s.parent_id IS NULL AND s.created_at >= :since", p=participant, e=exercise, yes=True,
        since=stamp(since) if db.sqlite else since)
    return (override[0][0] if override else None), int(used[0][0] or 0), used[0][1]
