"""Schema migrations with Alembic (grader/db/alembic), applied on open; a read-only check when current.

Opening a database that is already at HEAD costs one SELECT and never imports Alembic, so read
commands stay fast and never write. A database from before Alembic (our own `schema_version`
table, steps 1-2) is schema version 0001 and is stamped as such before upgrading.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

READ_ONLY = "grader_read_only"  # execution option: a deferred (read) transaction on SQLite, see grader.db.engine
HEAD = "0003"  # tests/test_migrations.py checks that this is the head of grader/db/alembic/versions
SCRIPTS = Path(__file__).resolve().parent / "alembic"


def current_version(conn: Connection) -> str | None:
    """The schema version, '0001' for a pre-Alembic grader database, None for an empty one."""
    from sqlalchemy import inspect, text

    tables = set(inspect(conn).get_table_names())
    if "alembic_version" in tables:
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        if row is not None:
            return str(row[0])
    if "schema_version" in tables and "submissions" in tables:
        return "0001"
    return None


def _config(conn: Connection) -> Any:  # alembic.config.Config, imported lazily: read commands never need it
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.attributes["connection"] = conn
    return cfg


def migrate(engine: Engine, target: str = "head") -> str | None:
    """Bring the schema to `target`; concurrent openers are serialised by the database itself."""
    from sqlalchemy import inspect, text

    with engine.execution_options(**{READ_ONLY: True}).connect() as conn:  # checking takes no write lock
        if target == "head" and _at_head(conn):
            return HEAD
    from alembic import command

    with engine.connect() as conn:
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:  # a table rebuild (batch mode) must not trip over foreign keys; only possible outside a transaction
            conn.connection.driver_connection.execute("PRAGMA foreign_keys = OFF")  # type: ignore[union-attr]
        try:
            with conn.begin():  # SQLite: BEGIN IMMEDIATE, so one opener migrates and the rest wait
                if engine.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(727274)"))
                if target == "head" and _at_head(conn):
                    return HEAD
                cfg = _config(conn)
                tables = set(inspect(conn).get_table_names())
                if "alembic_version" not in tables and "schema_version" in tables and "submissions" in tables:
                    command.stamp(cfg, "0001")
                command.upgrade(cfg, target)
                return current_version(conn)
        finally:
            if sqlite:
                conn.connection.driver_connection.execute("PRAGMA foreign_keys = ON")  # type: ignore[union-attr]


def _at_head(conn: Connection) -> bool:
    from sqlalchemy import inspect, text

    if not inspect(conn).has_table("alembic_version"):
        return False
    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return row is not None and str(row[0]) == HEAD
