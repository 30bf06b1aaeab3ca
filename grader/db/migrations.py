"""Versioned schema steps, applied in order on open; `schema_version` records what ran."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, text

from grader.db.models import Base


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _initial(conn: Connection) -> None:
    Base.metadata.create_all(conn)


def _leaderboard_indexes(conn: Connection) -> None:
    """Covering indexes for the leaderboard at 100k submissions (bench/leaderboard_100k.py).

    ix_submissions_board_best extends the old ix_submissions_board with participant_id, so the old
    one is dropped. checkfirst: a database created after this change already has them (step 1
    creates the tables from the current models).
    """
    conn.execute(text("DROP INDEX IF EXISTS ix_submissions_board"))
    tables = Base.metadata.tables
    for table, name in (("submissions", "ix_submissions_board_best"), ("submissions", "ix_submissions_board_counts"),
                        ("results", "ix_results_board")):
        index = next(i for i in tables[table].indexes if i.name == name)
        index.create(conn, checkfirst=True)


MIGRATIONS: list[Migration] = [
    Migration(1, "participants, submissions, results, quota overrides, notebook scores", _initial),
    Migration(2, "covering indexes for the leaderboard", _leaderboard_indexes),
]


def _ensure_table(conn: Connection) -> None:
    conn.execute(text("CREATE TABLE IF NOT EXISTS schema_version "
                      "(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"))


def applied(engine: Engine) -> list[int]:
    with engine.begin() as conn:
        _ensure_table(conn)
        return [row[0] for row in conn.execute(text("SELECT version FROM schema_version ORDER BY version"))]


def migrate(engine: Engine) -> list[int]:
    """Apply pending steps, each in its own transaction (concurrent openers are serialized)."""
    done: list[int] = []
    for step in MIGRATIONS:
        with engine.begin() as conn:
            _ensure_table(conn)
            exists = conn.execute(text("SELECT 1 FROM schema_version WHERE version = :v"), {"v": step.version}).first()
            if exists:
                continue
            step.apply(conn)
            conn.execute(text("INSERT INTO schema_version (version, description, applied_at) VALUES (:v, :d, :t)"),
                         {"v": step.version, "d": step.description, "t": datetime.now(UTC).isoformat()})
            done.append(step.version)
    return done
