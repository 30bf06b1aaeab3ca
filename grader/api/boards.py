"""The leaderboard cache of the server: one query per change of the results, however many readers."""

from __future__ import annotations

import threading
from typing import Any

from grader.service.access import Actor
from grader.service.board import Leaderboard, leaderboard, private_visible
from grader.service.context import Context


class BoardCache:
    """Leaderboards computed once per change of the results: a class refreshing a projector costs one query.

    The key includes a cheap version of the results table (row count and the latest grading time), so
    an ingest or a regrade — by this server's loop or by an instructor's command on the same database —
    is seen on the next request.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._boards: dict[tuple[Any, ...], Leaderboard] = {}

    def version(self, ctx: Context) -> tuple[Any, ...]:
        (count, latest), = ctx.reads.rows("SELECT count(*), max(graded_at) FROM results")
        return (count, str(latest))

    def get(self, ctx: Context, actor: Actor, *, exercise: str, profile: str | None, private: bool,
            top: int | None) -> Leaderboard:
        if private and not private_visible(ctx, actor, exercise):
            return leaderboard(ctx, actor, exercise=exercise, profile=profile, private=private, top=top)  # raises
        key = (exercise, profile or ctx.settings.profile, private, top, self.version(ctx))
        board = self._boards.get(key)
        if board is None:
            board = leaderboard(ctx, actor, exercise=exercise, profile=profile, private=private, top=top)
            with self._lock:
                if len(self._boards) > 256:
                    self._boards.clear()
                self._boards[key] = board
        return board
