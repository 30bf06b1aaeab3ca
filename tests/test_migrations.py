"""Schema migrations (Alembic): version 1 is frozen, and a version-1 database upgrades to the current one.

Runs on SQLite and PostgreSQL (conftest.db_url). A pre-Alembic database (grader's own schema_version
table, steps 1 and 2) is recognised as version 1, stamped, and upgraded the same way.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime

import pytest
from conftest import POSTGRES_ENV, _fresh_postgres
from sqlalchemy import Connection, create_engine, inspect, text

from grader.db.engine import make_engine
from grader.db.migrations import HEAD, SCRIPTS, current_version, migrate


def _v1(url: str) -> None:
    """A database exactly as version 1 left it, with a participant's cancelled and graded submissions."""
    engine = create_engine(url)
    migrate(engine, target="0001")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO participants (id, name, created_at) VALUES (1, 'ada', :t)"), {"t": now})
        for sid, state, reason in ((1, "done", None), (2, "failed", "cancelled")):
            conn.execute(text(
                "INSERT INTO submissions (id, participant_id, exercise, profile, seed, spec_hash, file_sha256, filename,"
                " kind, stored_path, cache_key, state, reason, backend, counts_for_quota, attempts, submitted_by,"
                " created_at) VALUES (:id, 1, 'mnist', 'smoke', 42, 'h', 'f', 'm.py', 'py', '/x', 'k', :state, :reason,"
                " 'local', true, 0, 'ada', :t)"), {"id": sid, "state": state, "reason": reason, "t": now})
        conn.execute(text("INSERT INTO results (submission_id, outcome, job_result, public_accuracy, score) "
                          "VALUES (1, 'ok', '{}', 0.9, 8.5)"))
    engine.dispose()


def test_head_is_the_last_script() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD


def test_a_version_1_database_upgrades_to_the_current_schema(db_url: str) -> None:
    _v1(db_url)
    engine = make_engine(db_url)  # opening migrates
    with engine.connect() as conn:
        assert current_version(conn) == HEAD
        columns = {c["name"] for c in inspect(conn).get_columns("submissions")}
        assert {"job_spec", "parent_id", "seeds", "code_fingerprint"} <= columns
        assert {"wall_seconds", "facts", "notes", "public_std"} <= {c["name"] for c in inspect(conn).get_columns("results")}
        assert "accounts" in inspect(conn).get_table_names()
        states = dict(conn.execute(text("SELECT id, state FROM submissions")).all())
        assert states == {1: "done", 2: "cancelled"}  # a cancelled job is a state of its own now
        assert conn.execute(text("SELECT score FROM results WHERE submission_id = 1")).scalar() == 8.5
    engine.dispose()


def _version(conn: Connection) -> int:
    return int(conn.execute(text("SELECT version FROM board_version WHERE id = 1")).scalar_one())


def test_the_board_version_moves_with_every_change_a_board_shows(db_url: str) -> None:
    """Schema 0003: triggers raise board_version with each committed change to the tables a board reads."""
    _v1(db_url)
    engine = make_engine(db_url)  # 0001 → HEAD: the table and its triggers are added to an existing database
    changes = [
        "UPDATE results SET score = 9.0 WHERE submission_id = 1",  # a regrade
        "UPDATE submissions SET state = 'cancelled' WHERE id = 2",  # a cancel
        "INSERT INTO submissions (id, participant_id, exercise, profile, seed, spec_hash, file_sha256, filename, kind,"
        " stored_path, cache_key, state, backend, counts_for_quota, attempts, submitted_by, created_at) VALUES (3, 1,"
        " 'mnist', 'smoke', 42, 'h', 'f', 'm.py', 'py', '/x', 'k', 'queued', 'local', true, 0, 'ada', :t)",  # a submit
        "INSERT INTO results (submission_id, outcome, job_result, public_accuracy) VALUES (3, 'ok', '{}', 0.8)",  # ingest
        "DELETE FROM results WHERE submission_id = 3",
        "UPDATE participants SET name = 'ada2' WHERE id = 1",
    ]
    with engine.connect() as conn:
        before = _version(conn)
    for statement in changes:
        with engine.begin() as conn:
            conn.execute(text(statement), {"t": datetime.now(UTC)} if ":t" in statement else {})
        with engine.connect() as conn:
            after = _version(conn)
        assert after > before, statement
        before = after
    with engine.connect() as conn:  # a transaction rolled back changes nothing
        with conn.begin() as tx:
            conn.execute(text("UPDATE results SET score = 1.0 WHERE submission_id = 1"))
            tx.rollback()
        assert _version(conn) == before
    with engine.begin() as conn:  # one transaction, many rows: at least one step, and no error
        conn.execute(text("UPDATE submissions SET scheduler_reason = 'x'"))
        conn.execute(text("UPDATE results SET notes = '[]'"))
    with engine.connect() as conn:
        assert _version(conn) > before
    engine.dispose()


def test_board_version_triggers_never_deadlock_two_writers() -> None:
    """PostgreSQL: the counter row is taken at COMMIT (a deferred trigger), after every row lock a transaction holds.

    Two writers that lock rows in crossed order only wait for each other; with the counter taken at the first
    write (a plain row trigger) this order deadlocks: B holds row 2 and waits for the counter, A holds the
    counter and waits for row 2.
    """
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"PostgreSQL not configured ({POSTGRES_ENV})")
    url = _fresh_postgres("t_board_version_deadlock")
    _v1(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        start = _version(conn)
    a, b = engine.connect(), engine.connect()
    try:
        ta, tb = a.begin(), b.begin()
        for conn in (a, b):  # a lock wait that never ends fails the test instead of hanging it
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))
        a.execute(text("UPDATE submissions SET message = 'a' WHERE id = 1"))
        b.execute(text("UPDATE submissions SET message = 'b' WHERE id = 2"))
        errors: list[BaseException] = []

        def a_then_commit() -> None:
            try:
                a.execute(text("UPDATE submissions SET message = 'a' WHERE id = 2"))  # waits for B's row 2
                ta.commit()
            except BaseException as exc:
                errors.append(exc)

        waiter = threading.Thread(target=a_then_commit)
        waiter.start()
        time.sleep(0.5)
        tb.commit()  # B's deferred trigger takes the counter, B commits, A goes on
        waiter.join(timeout=30)
        assert not waiter.is_alive() and errors == []
    finally:
        a.close()
        b.close()
    with engine.connect() as conn:
        assert _version(conn) == start + 2  # once per transaction, however many rows it changed
    engine.dispose()


def test_downgrade_to_version_1_and_back(db_url: str) -> None:
    _v1(db_url)
    engine = create_engine(db_url)
    migrate(engine)
    from alembic import command

    from grader.db.migrations import _config

    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.connection.driver_connection.execute("PRAGMA foreign_keys = OFF")  # as migrate() does
        with conn.begin():
            command.downgrade(_config(conn), "0001")
    with engine.connect() as conn:
        assert current_version(conn) == "0001"
        assert not {"accounts", "board_version"} & set(inspect(conn).get_table_names())
        assert dict(conn.execute(text("SELECT id, state FROM submissions")).all()) == {1: "done", 2: "failed"}
    with engine.begin() as conn:  # no trigger left behind that would update the dropped board_version
        conn.execute(text("UPDATE submissions SET message = 'after downgrade' WHERE id = 1"))
    assert migrate(engine) == HEAD
    engine.dispose()


def test_a_pre_alembic_database_is_stamped_then_upgraded(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    _v1(url)
    engine = create_engine(url)
    with engine.begin() as conn:  # what grader wrote before Alembic: its own steps table, no alembic_version
        conn.execute(text("DROP TABLE alembic_version"))
        conn.execute(text("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
                          "applied_at TEXT NOT NULL)"))
        conn.execute(text("INSERT INTO schema_version VALUES (1, 'tables', 'then'), (2, 'indexes', 'then')"))
    engine.dispose()
    upgraded = make_engine(url)
    with upgraded.connect() as conn:
        assert current_version(conn) == HEAD
        assert conn.execute(text("SELECT count(*) FROM submissions")).scalar() == 2
    upgraded.dispose()


def test_opening_a_current_database_does_not_write(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/g.db"
    make_engine(url).dispose()
    statements: list[str] = []
    engine = create_engine(url)
    from sqlalchemy import event

    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    migrate(engine)
    assert statements and all(s.lstrip().upper().startswith(("SELECT", "PRAGMA")) for s in statements), statements
