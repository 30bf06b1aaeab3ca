"""Served classes and trustworthy numbers: accounts, the coordinator's job-spec copy, measured facts,
multi-seed groups and code fingerprints.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("display_name", sa.String(200), nullable=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=True, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    # plain ADD COLUMNs (no table rebuild, which would rewrite every submission on a big SQLite file)
    op.add_column("submissions", sa.Column("job_spec", sa.JSON, nullable=True))
    op.add_column("submissions", sa.Column("parent_id", sa.Integer, nullable=True))
    op.add_column("submissions", sa.Column("seeds", sa.JSON, nullable=True))
    op.add_column("submissions", sa.Column("code_fingerprint", sa.String(64), nullable=True))
    if op.get_context().dialect.name != "sqlite":  # SQLite cannot add a constraint to an existing table
        op.create_foreign_key("fk_submissions_parent", "submissions", "submissions", ["parent_id"], ["id"])
    op.create_index("ix_submissions_parent", "submissions", ["parent_id"])
    # the leaderboard's covering indexes now also filter out the seed runs of a group
    op.drop_index("ix_submissions_board_best", "submissions")
    op.drop_index("ix_submissions_board_counts", "submissions")
    op.create_index("ix_submissions_board_best", "submissions",
                    ["exercise", "profile", "reference_name", "state", "parent_id", "participant_id"])
    op.create_index("ix_submissions_board_counts", "submissions",
                    ["exercise", "profile", "reference_name", "parent_id", "participant_id", "created_at"])
    op.create_index("ix_submissions_fingerprint", "submissions", ["exercise", "code_fingerprint"])
    for name in ("wall_seconds", "peak_memory_mb", "public_std", "private_std"):
        op.add_column("results", sa.Column(name, sa.Float, nullable=True))
    op.add_column("results", sa.Column("n_seeds", sa.Integer, nullable=True))
    op.add_column("results", sa.Column("facts", sa.JSON, nullable=True))
    op.add_column("results", sa.Column("notes", sa.JSON, nullable=True))
    # states were strings all along; a cancelled job used to be failed/cancelled
    op.execute("UPDATE submissions SET state = 'cancelled' WHERE state = 'failed' AND reason = 'cancelled'")


def downgrade() -> None:
    op.execute("UPDATE submissions SET state = 'failed' WHERE state = 'cancelled'")
    with op.batch_alter_table("results") as batch:
        for name in ("wall_seconds", "peak_memory_mb", "public_std", "private_std", "n_seeds", "facts", "notes"):
            batch.drop_column(name)
    op.drop_index("ix_submissions_fingerprint", "submissions")
    op.drop_index("ix_submissions_parent", "submissions")
    op.drop_index("ix_submissions_board_best", "submissions")
    op.drop_index("ix_submissions_board_counts", "submissions")
    op.create_index("ix_submissions_board_best", "submissions",
                    ["exercise", "profile", "reference_name", "state", "participant_id"])
    op.create_index("ix_submissions_board_counts", "submissions",
                    ["exercise", "profile", "reference_name", "participant_id", "created_at"])
    if op.get_context().dialect.name != "sqlite":
        op.drop_constraint("fk_submissions_parent", "submissions", type_="foreignkey")
    with op.batch_alter_table("submissions") as batch:
        for name in ("job_spec", "parent_id", "seeds", "code_fingerprint"):
            batch.drop_column(name)
    op.drop_table("accounts")
