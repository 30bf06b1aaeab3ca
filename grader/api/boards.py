"""The leaderboard cache of the server: one computation per change of the data, however many readers.

A class refreshing the leaderboard (live.js polls every 5 s, a projector, 50 participants at once)
must not cost a query each. Boards are cached by what they show: exercise, profile, public or
private, and `top`. Nothing on a board depends on who reads it, and who may read which board is
decided before the cache is consulted: the private board is checked against the caller on every
request (`require_board`), so a cached private board is never served to someone who may not see it.

When the data changed: `board_version` (grader.db.reads), one row that the database's triggers raise
with every change to submissions, results or participants, in the same transaction, whoever writes it:
this server's loop, an instructor's `grader regrade` or `grader references compute`, a cancel, a
submission (its count is on the board). Reading it is one indexed row, however large the tables grow;
the version it replaces, `SELECT count(*), max(graded_at) FROM results`, scanned the whole results table
on every request (405 ms at 100,000 submissions) and missed changes that add no result. SQLite's
`PRAGMA data_version` was the other cheap candidate, but it exists on SQLite only, and its value is per
connection, so the pooled read connections could not compare it (grader/db/alembic/versions/0003).
The version is read before the board is computed, so a board is never stored under a version newer
than its data; at worst it is recomputed once more than needed.

After a change, the board is computed once (single flight), in a thread of its own. The request that
noticed the change waits up to `wait` (20 ms) for it, the requests that come while it is computed none,
and they are served the previous board if that one was known current less than `max_stale` (2 s) ago;
otherwise they wait until the new one is there. So a request never pays for more than 20 ms of a
recomputation while results arrive, a board is at most one recomputation behind during a class, and the
first request after a quiet spell gets the current board. The JSON answer and the pages' HTML (which do
not depend on the reader either) are kept with the board, so a cache hit serialises and renders nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from grader.db.reads import board_version
from grader.service.access import Actor
from grader.service.board import Leaderboard, leaderboard, require_board
from grader.service.context import Context

log = logging.getLogger("grader.serve")
MAX_BOARDS = 256  # boards kept (exercise × profile × public/private × top); beyond it the oldest go
MAX_RENDERS = 16  # rendered HTML variants kept per board (the page and its table, per `top`)


@dataclass
class Board:
    """A computed leaderboard, its JSON, and the HTML rendered from it so far."""

    version: int
    board: Leaderboard
    json: bytes
    current_at: float = field(default_factory=time.monotonic)  # when the data was last seen at `version`
    _renders: dict[Hashable, str] = field(default_factory=dict, repr=False)
    _render_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def rendered(self, variant: Hashable, render: Callable[[Leaderboard], str]) -> str:
        """`render(board)`, once per variant (e.g. the page with its live URL, the table with `top`)."""
        with self._render_lock:  # one render per variant: the others wait for it (a few ms)
            html = self._renders.get(variant)
            if html is None:
                html = render(self.board)
                if len(self._renders) < MAX_RENDERS:
                    self._renders[variant] = html
            return html


@dataclass
class _Flight:
    version: int
    done: threading.Event = field(default_factory=threading.Event)
    result: Board | None = None


Key = tuple[str, str, bool, int | None]


class BoardCache:
    """Boards by what they show, each computed once per version of the data, off the requests' threads.

    `wait`: how long the request that starts a computation waits for it when it may be served the previous
    board instead; `max_stale`: how long after it was last known current a previous board may still be
    served (beyond that, or with no previous board, a request waits for the new one, however long it takes).
    """

    def __init__(self, *, wait: float = 0.02, max_stale: float = 2.0) -> None:
        self.wait = wait
        self.max_stale = max_stale
        self._lock = threading.Lock()
        self._boards: dict[Key, Board] = {}
        self._flights: dict[Key, _Flight] = {}

    def version(self, ctx: Context) -> int:
        return board_version(ctx.reads)

    def entry(self, ctx: Context, actor: Actor, *, exercise: str, profile: str | None, private: bool,
              top: int | None) -> Board:
        """The board as `actor` may see it: the current one, or for a moment while it is computed the previous one."""
        profile = profile or ctx.settings.profile
        require_board(ctx, actor, exercise=exercise, profile=profile, private=private)
        key: Key = (exercise, profile, private, top)
        version = self.version(ctx)  # read before computing: a board is at least as new as the version it is kept under
        now = time.monotonic()
        with self._lock:
            cached = self._boards.get(key)
            if cached is not None and cached.version == version:
                cached.current_at = now
                return cached
            flight = self._flights.get(key)
            start = flight is None or flight.version != version
            if start:
                flight = self._flights[key] = _Flight(version)
        assert flight is not None
        if start:  # computed in a thread of its own: a request gives up waiting for it, the computation goes on
            threading.Thread(target=self._fly, args=(ctx, actor, key, flight), name="board-cache", daemon=True).start()
        previous = cached is not None and now - cached.current_at <= self.max_stale
        # the request that noticed the change waits a little for the new board (often enough for it); the others
        # meanwhile get the previous one at once
        if flight.done.wait((self.wait if start else 0) if previous else None):
            if flight.result is not None:
                return flight.result
            return self._compute(ctx, actor, key, version)  # that computation failed: this request's own error
        assert cached is not None
        return cached  # the previous version's board, known current a moment ago, while the new one is computed

    def _fly(self, ctx: Context, actor: Actor, key: Key, flight: _Flight) -> None:
        try:
            flight.result = self._compute(ctx, actor, key, flight.version)
        except Exception:  # the requests waiting compute it again and answer their own error
            log.debug("computing the board %s failed", key, exc_info=True)
        finally:
            with self._lock:
                if self._flights.get(key) is flight:
                    del self._flights[key]
                if flight.result is not None:  # the latest computed wins (versions are compared for equality only,
                    self._boards.pop(key, None)  # so a database restored from a backup is not served old boards)
                    self._boards[key] = flight.result  # and goes last: the oldest are dropped first
                    while len(self._boards) > MAX_BOARDS:
                        del self._boards[next(iter(self._boards))]
            flight.done.set()

    @staticmethod
    def _compute(ctx: Context, actor: Actor, key: Key, version: int) -> Board:
        exercise, profile, private, top = key
        board = leaderboard(ctx, actor, exercise=exercise, profile=profile, private=private, top=top)
        return Board(version=version, board=board, json=board.model_dump_json().encode())
