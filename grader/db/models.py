"""Tables. Submissions carry their state; results hold metrics and the current grade."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Participant(Base):
    __tablename__ = "participants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Account(Base):
    """A served class's identities: the role lives here, never in a participant's environment.

    Tokens are random and shown once; only their SHA-256 is stored (a stolen database reveals none).
    """

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    role: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Submission(Base):
    """One graded attempt. `state` moves queued → running → done | failed | cancelled.

    A multi-seed submission is a group row (`seeds` set) whose seed runs are rows of their own with
    `parent_id` pointing at it; only group rows and single-seed rows appear on boards and in quotas.
    """

    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    exercise: Mapped[str] = mapped_column(String(100))
    profile: Mapped[str] = mapped_column(String(50))
    seed: Mapped[int] = mapped_column(Integer)
    spec_hash: Mapped[str] = mapped_column(String(64))
    file_sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(10))  # py | ipynb
    stored_path: Mapped[str] = mapped_column(Text)
    cache_key: Mapped[str] = mapped_column(String(200))
    reference_name: Mapped[str | None] = mapped_column(String(100), nullable=True)  # set for baseline/references
    state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    backend: Mapped[str] = mapped_column(String(20))
    job_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    run_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    cached_from: Mapped[int | None] = mapped_column(ForeignKey("submissions.id"), nullable=True)
    counts_for_quota: Mapped[bool] = mapped_column(Boolean, default=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    scheduler_state: Mapped[str | None] = mapped_column(String(40), nullable=True)
    scheduler_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    submitted_by: Mapped[str] = mapped_column(String(200))
    job_spec: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # the coordinator's copy, for retries
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id"), nullable=True)  # one seed of a group
    seeds: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)  # a multi-seed group's seeds
    code_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    participant: Mapped[Participant] = relationship()
    result: Mapped[Result | None] = relationship(back_populates="submission", uselist=False)

    __table_args__ = (
        # leaderboard (bench/leaderboard_100k.py): covering indexes, so ranking the best submission per
        # participant and counting submissions read index pages only, never the full rows (schema 0001, 0002)
        Index("ix_submissions_board_best", "exercise", "profile", "reference_name", "state", "parent_id",
              "participant_id"),
        Index("ix_submissions_board_counts", "exercise", "profile", "reference_name", "parent_id", "participant_id",
              "created_at"),
        Index("ix_submissions_participant", "participant_id", "exercise", "created_at"),
        Index("ix_submissions_active", "state"),
        Index("ix_submissions_cache", "cache_key"),
        Index("ix_submissions_parent", "parent_id"),
        Index("ix_submissions_fingerprint", "exercise", "code_fingerprint"),
    )


class Result(Base):
    """Metrics recomputed on the trusted side, plus the grade under the current rubric."""

    __tablename__ = "results"

    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(20))
    error_kind: Mapped[str | None] = mapped_column(String(40), nullable=True)
    accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    public_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    private_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    train_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    params: Mapped[int | None] = mapped_column(Integer, nullable=True)
    epochs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    fit_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    wall_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)  # measured by the supervisor
    peak_memory_mb: Mapped[float | None] = mapped_column(Float, nullable=True)
    public_std: Mapped[float | None] = mapped_column(Float, nullable=True)  # multi-seed groups
    private_std: Mapped[float | None] = mapped_column(Float, nullable=True)
    n_seeds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    job_result: Mapped[dict[str, Any]] = mapped_column(JSON)  # validated JobResult (the job's claims)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # Metrics
    facts: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # ingest.Facts
    notes: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)  # grader's own remarks
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    grade: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # grading.Score
    rubric_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    graded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    submission: Mapped[Submission] = relationship(back_populates="result")

    __table_args__ = (
        Index("ix_results_public", "public_accuracy"),
        # covering index for the leaderboard join: the rows themselves carry large JSON columns
        Index("ix_results_board", "submission_id", "public_accuracy", "private_accuracy"),
    )


class QuotaOverride(Base):
    __tablename__ = "quota_overrides"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant: Mapped[str] = mapped_column(String(200))
    exercise: Mapped[str] = mapped_column(String(100))
    limit: Mapped[int] = mapped_column(Integer)
    __table_args__ = (UniqueConstraint("participant", "exercise"),)


class NotebookScore(Base):
    """Scores imported from nbgrader's gradebook (which keeps no history of its own)."""

    __tablename__ = "notebook_scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant: Mapped[str] = mapped_column(String(200))
    assignment: Mapped[str] = mapped_column(String(200))
    notebook: Mapped[str] = mapped_column(String(200))
    score: Mapped[float] = mapped_column(Float)
    max_score: Mapped[float] = mapped_column(Float)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    __table_args__ = (UniqueConstraint("participant", "assignment", "notebook"),)


class BoardVersion(Base):
    """One row whose `version` the database's own triggers raise on every change to submissions, results or
    participants (schema 0003): what the server's leaderboard cache compares, one row read per request."""

    __tablename__ = "board_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)
