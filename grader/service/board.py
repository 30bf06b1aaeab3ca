"""The leaderboard: best submission per participant, references in place, noise-aware ranks. Reads only."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from grader.db.reads import BoardRow, best_per_participant, reference_rows
from grader.service.access import Actor, require_instructor
from grader.service.context import Context

if TYPE_CHECKING:
    from grader.specs.exercise import ExerciseSpec


class RankedRow(BaseModel):
    rank: int | None = Field(description="None for baseline and reference rows.")
    row: BoardRow
    accuracy: float | None
    std: float | None = Field(default=None, description="Standard deviation over seeds (multi-seed rows).")
    within_noise: bool = Field(default=False, description="Within seed noise of the participant ranked above.")
    delta_baseline: float | None
    delta_best_reference: float | None
    rank_change: int | None = Field(default=None, description="Public rank minus private rank (private board).")


class Leaderboard(BaseModel):
    exercise: str
    profile: str
    board: str
    rows: list[RankedRow]
    baseline: float | None
    best_reference: float | None
    noise: float | None = Field(default=None, description="Typical seed-to-seed standard deviation here, if measured.")


def private_visible(ctx: Context, actor: Actor, exercise: str) -> bool:
    return actor.instructor or exercise in ctx.settings.revealed_exercises


def require_board(ctx: Context, actor: Actor, *, exercise: str, profile: str, private: bool) -> ExerciseSpec:
    """The exercise's spec if `actor` may see this board: NotFoundError for an unknown exercise or profile,
    AccessError for a private board not revealed to a participant. Checked before any board is computed or
    served from a cache."""
    spec = ctx.catalog.get(exercise)
    spec.profile(profile)
    if private and not private_visible(ctx, actor, exercise):
        require_instructor(actor, "the private leaderboard")
    return spec


def leaderboard(ctx: Context, actor: Actor, *, exercise: str, profile: str | None = None, private: bool = False,
                top: int | None = None) -> Leaderboard:
    """Ranked best-per-participant, with baseline and references placed where they rank."""
    profile = profile or ctx.settings.profile
    spec = require_board(ctx, actor, exercise=exercise, profile=profile, private=private)
    board = "private" if private else "public"
    people = best_per_participant(ctx.reads, exercise, profile, board)
    refs = reference_rows(ctx.reads, exercise, profile, spec.seed, spec.spec_hash())
    public_rank: dict[str, int] = {}
    if private:
        by_public = sorted(best_per_participant(ctx.reads, exercise, profile, "public"),
                           key=lambda r: -(r.public_accuracy or 0))
        public_rank = {r.participant: i for i, r in enumerate(by_public, start=1)}

    def acc(r: BoardRow) -> float | None:
        return r.private_accuracy if private else r.public_accuracy

    def std(r: BoardRow) -> float | None:
        return r.private_std if private else r.public_std

    stds = [s for r in people + refs if (s := std(r)) is not None and (r.n_seeds or 0) > 1]
    noise = math.sqrt(sum(s * s for s in stds) / len(stds)) if stds else None
    baseline = next((acc(r) for r in refs if r.reference_name == "baseline"), None)
    best = max((a for r in refs if (a := acc(r)) is not None), default=None)
    merged = sorted(people + refs, key=lambda r: (-(acc(r) or 0.0), r.reference_name is not None, r.submission_id))
    out: list[RankedRow] = []
    rank, seen, above = 0, 0, None
    for r in merged:
        a = acc(r)
        ref = r.reference_name is not None
        if not ref:
            seen += 1
            tied = above is not None and a is not None and a == above[0]
            rank = rank if tied else seen  # equal accuracies share a rank (1, 1, 3)
        if not ref and top is not None and rank > top:
            continue
        s = std(r) if (r.n_seeds or 0) > 1 else None
        within = False
        if not ref and above is not None and a is not None and above[0] is not None:
            spread = math.hypot(s if s is not None else (noise or 0.0), above[1] if above[1] is not None
                                else (noise or 0.0))
            within = abs(above[0] - a) <= spread  # an exact tie is within any noise
        out.append(RankedRow(
            rank=None if ref else rank, row=r, accuracy=a, std=s, within_noise=within,
            delta_baseline=None if a is None or baseline is None else a - baseline,
            delta_best_reference=None if a is None or best is None else a - best,
            rank_change=(public_rank.get(r.participant, rank) - rank) if private and not ref else None,
        ))
        if not ref:
            above = (a, s)
    return Leaderboard(exercise=exercise, profile=profile, board=board, rows=out, baseline=baseline,
                       best_reference=best, noise=noise)
