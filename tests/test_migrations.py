"""Schema migrations (Alembic): version 1 is frozen, and a version-1 database upgrades to the current one.

Runs on SQLite and PostgreSQL (conftest.db_url). A pre-Alembic database (grader's own schema_version
table, steps 1 and 2) is recognised as version 1, stamped, and upgraded the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import create_engine, inspect, text

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
        assert "accounts" not in inspect(conn).get_table_names()
        assert dict(conn.execute(text("SELECT id, state FROM submissions")).all()) == {1: "done", 2: "failed"}
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
