"""The board version: one counter row that the database itself moves on every change a leaderboard could show.

`grader serve` caches each leaderboard until the data under it changes (grader/api/boards.py). Finding out
whether it changed used to be `SELECT count(*), max(graded_at) FROM results`, a scan of the whole results
table on every request (45 ms at 10,000 submissions, 405 ms at 100,000), which also missed changes that
add no result (a new or cancelled submission changes the counts on the board). Now triggers on
`submissions`, `results` and `participants` add one to `board_version.version` in the same transaction as
the change, whoever makes it (the server's loop, a CLI command, an instructor's SQL), and a request reads
that one row.

SQLite: a row trigger per statement kind (SQLite has no statement triggers); writers are serialised
anyway, so the counter row costs no concurrency, and a bulk UPDATE bumps it once per row (microseconds).

PostgreSQL: a deferred constraint trigger, so the counter row is updated at COMMIT, once per transaction
(a transaction-local setting remembers it was done). Taking the counter's row lock at commit, after
every other lock the transaction holds, means two writers can wait for each other's counter update
but never deadlock over it.

A later migration that rebuilds one of these tables on SQLite (batch mode) drops its triggers and must
create them again (`create_triggers`); tests/test_migrations.py checks they exist at HEAD.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("submissions", "results", "participants")
SQLITE_EVENTS = ("INSERT", "UPDATE", "DELETE")
PG_FUNCTION = "grader_bump_board_version"


def create_triggers(dialect: str) -> None:
    if dialect == "sqlite":
        for table in TABLES:
            for event in SQLITE_EVENTS:
                op.execute(f"CREATE TRIGGER board_version_{table}_{event.lower()} AFTER {event} ON {table} "
                           "BEGIN UPDATE board_version SET version = version + 1 WHERE id = 1; END")
        return
    op.execute(f"""
        CREATE OR REPLACE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF current_setting('grader.board_version_bumped', true) IS DISTINCT FROM 'on' THEN
                PERFORM set_config('grader.board_version_bumped', 'on', true);  -- until this transaction ends
                UPDATE board_version SET version = version + 1 WHERE id = 1;
            END IF;
            RETURN NULL;
        END $$""")
    for table in TABLES:
        op.execute(f"CREATE CONSTRAINT TRIGGER board_version_{table} AFTER INSERT OR UPDATE OR DELETE ON {table} "
                   f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {PG_FUNCTION}()")


def drop_triggers(dialect: str) -> None:
    if dialect == "sqlite":
        for table in TABLES:
            for event in SQLITE_EVENTS:
                op.execute(f"DROP TRIGGER IF EXISTS board_version_{table}_{event.lower()}")
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS board_version_{table} ON {table}")
    op.execute(f"DROP FUNCTION IF EXISTS {PG_FUNCTION}()")


def upgrade() -> None:
    op.create_table(
        "board_version",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO board_version (id, version) VALUES (1, 1)")
    create_triggers(op.get_context().dialect.name)


def downgrade() -> None:
    drop_triggers(op.get_context().dialect.name)
    op.drop_table("board_version")
