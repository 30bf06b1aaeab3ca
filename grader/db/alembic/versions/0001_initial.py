"""Schema version 1, frozen: the tables and leaderboard indexes as first released.

Databases created before Alembic (a `schema_version` table with steps 1 and 2) are this version
and are stamped as 0001 when first opened.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "participants",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "submissions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("participant_id", sa.Integer, sa.ForeignKey("participants.id"), nullable=False),
        sa.Column("exercise", sa.String(100), nullable=False),
        sa.Column("profile", sa.String(50), nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(500), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("stored_path", sa.Text, nullable=False),
        sa.Column("cache_key", sa.String(200), nullable=False),
        sa.Column("reference_name", sa.String(100), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(40), nullable=True),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("backend", sa.String(20), nullable=False),
        sa.Column("job_id", sa.String(100), nullable=True),
        sa.Column("run_dir", sa.Text, nullable=True),
        sa.Column("cached_from", sa.Integer, sa.ForeignKey("submissions.id"), nullable=True),
        sa.Column("counts_for_quota", sa.Boolean, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("scheduler_state", sa.String(40), nullable=True),
        sa.Column("scheduler_reason", sa.Text, nullable=True),
        sa.Column("submitted_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_submissions_board_best", "submissions",
                    ["exercise", "profile", "reference_name", "state", "participant_id"])
    op.create_index("ix_submissions_board_counts", "submissions",
                    ["exercise", "profile", "reference_name", "participant_id", "created_at"])
    op.create_index("ix_submissions_participant", "submissions", ["participant_id", "exercise", "created_at"])
    op.create_index("ix_submissions_active", "submissions", ["state"])
    op.create_index("ix_submissions_cache", "submissions", ["cache_key"])
    op.create_table(
        "results",
        sa.Column("submission_id", sa.Integer, sa.ForeignKey("submissions.id"), primary_key=True),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("error_kind", sa.String(40), nullable=True),
        sa.Column("accuracy", sa.Float, nullable=True),
        sa.Column("public_accuracy", sa.Float, nullable=True),
        sa.Column("private_accuracy", sa.Float, nullable=True),
        sa.Column("train_accuracy", sa.Float, nullable=True),
        sa.Column("params", sa.Integer, nullable=True),
        sa.Column("epochs", sa.Integer, nullable=True),
        sa.Column("fit_seconds", sa.Float, nullable=True),
        sa.Column("job_result", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=True),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("max_score", sa.Float, nullable=True),
        sa.Column("grade", sa.JSON, nullable=True),
        sa.Column("rubric_hash", sa.String(64), nullable=True),
        sa.Column("graded_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_results_public", "results", ["public_accuracy"])
    op.create_index("ix_results_board", "results", ["submission_id", "public_accuracy", "private_accuracy"])
    op.create_table(
        "quota_overrides",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("participant", sa.String(200), nullable=False),
        sa.Column("exercise", sa.String(100), nullable=False),
        sa.Column("limit", sa.Integer, nullable=False),
        sa.UniqueConstraint("participant", "exercise"),
    )
    op.create_table(
        "notebook_scores",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("participant", sa.String(200), nullable=False),
        sa.Column("assignment", sa.String(200), nullable=False),
        sa.Column("notebook", sa.String(200), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("max_score", sa.Float, nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("participant", "assignment", "notebook"),
    )


def downgrade() -> None:
    for table in ("notebook_scores", "quota_overrides", "results", "submissions", "participants"):
        op.drop_table(table)
