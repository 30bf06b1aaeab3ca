"""Time limits derived from measured references: a stuck submission must not hold the class.

A participant's job gets `wall_factor` × the slowest reference's job time (same exercise, profile,
spec and backend: the same data on the same kind of machine), scaled up when the submission trains
for more epochs than that reference did, never below `wall_floor_seconds` and never above the
profile's ceiling (`max_wall_seconds`, else `limits.max_wall_seconds`). Until the references are
measured, and for the references themselves, the ceiling applies. A profile's `wall_seconds` in
exercise.toml is the instructor's override, used as written.
"""

from __future__ import annotations

import math

from pydantic import BaseModel

from grader.service.context import Context
from grader.specs.exercise import ExerciseSpec


class WallLimit(BaseModel):
    seconds: int
    basis: str  # said in the feedback: where the number comes from


def wall_limit(ctx: Context, spec: ExerciseSpec, profile: str, backend: str, epochs: int | None) -> WallLimit:
    prof = spec.profile(profile)
    ceiling = prof.max_wall_seconds or spec.limits.max_wall_seconds
    if prof.wall_seconds is not None:
        return WallLimit(seconds=prof.wall_seconds, basis=f"set for the {profile} profile in exercise.toml")
    factor, floor = ctx.settings.wall_factor, ctx.settings.wall_floor_seconds
    slowest = ctx.reads.rows(
        "SELECT r.wall_seconds, r.epochs, s.reference_name FROM results r JOIN submissions s "
        "ON s.id = r.submission_id WHERE s.reference_name IS NOT NULL AND s.state = 'done' AND s.exercise = :ex "
        "AND s.profile = :profile AND s.spec_hash = :spec AND s.backend = :backend AND r.wall_seconds IS NOT NULL "
        "ORDER BY r.wall_seconds DESC LIMIT 1",
        ex=spec.name, profile=profile, spec=spec.spec_hash(), backend=backend)
    if factor <= 0 or not slowest:
        return WallLimit(seconds=ceiling, basis="the exercise's limit (references not measured here yet)"
                         if factor > 0 else "the exercise's limit")
    ref_wall, ref_epochs, name = float(slowest[0][0]), slowest[0][1], slowest[0][2]
    scale = max(1.0, (epochs or 0) / ref_epochs) if ref_epochs else 1.0
    seconds = min(ceiling, max(floor, math.ceil(factor * ref_wall * scale)))
    more = f", × {scale:.3g} for {epochs} epochs against its {ref_epochs}" if scale > 1 else ""
    return WallLimit(seconds=seconds, basis=f"{factor:g}× the slowest reference ({name}: {ref_wall:.0f} s on "
                     f"{backend}{more}), at least {floor} s, at most {ceiling} s")
