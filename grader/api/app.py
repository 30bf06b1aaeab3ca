"""The FastAPI application: routes, error mapping, the leaderboard cache and the background loop."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import func, select

from grader.api.errors import grader_error
from grader.db.engine import session_scope
from grader.db.models import Result
from grader.errors import GraderError
from grader.service.access import Actor
from grader.service.board import Leaderboard, leaderboard, private_visible
from grader.service.context import Context

log = logging.getLogger("grader.serve")


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
        with session_scope(ctx.reader) as session:
            count, latest = session.execute(select(func.count(), func.max(Result.graded_at))).one()
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


def create_app(ctx: Context, *, background: bool = True, loop_seconds: float = 2.0) -> FastAPI:
    """The coordinator's app; `background` runs the reconcile/ingest loop in a thread beside it."""
    from grader import __version__
    from grader.api.routes import router

    stop = threading.Event()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = 200  # SSE streams hold a thread each
        thread = None
        if background:
            thread = threading.Thread(target=_loop, args=(ctx, stop, loop_seconds), name="grader-loop", daemon=True)
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread is not None:
                thread.join(timeout=10)

    app = FastAPI(title="grader", version=__version__, lifespan=lifespan,
                  description="The coordinator of a class: submissions, feedback, leaderboards.")
    app.state.ctx = ctx
    app.state.boards = BoardCache()
    app.add_exception_handler(GraderError, grader_error)
    app.include_router(router)
    try:
        from grader.api.pages import router as pages
    except ImportError:  # the pages' extra (jinja2, matplotlib) is not installed: the API alone
        log.warning("web pages unavailable: install keras-grader[server]")
    else:
        from fastapi.staticfiles import StaticFiles

        from grader.web import STATIC_DIR

        app.include_router(pages)
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _loop(ctx: Context, stop: threading.Event, poll: float) -> None:
    """The server's only writer besides submissions: run local jobs, reconcile every backend, ingest."""
    from grader.service.worker import run_worker

    while not stop.is_set():
        try:
            run_worker(ctx, idle_seconds=None, stop=stop)
        except Exception:  # the loop must outlive any one bad pass
            log.exception("background loop failed; restarting in %.0f s", poll)
        stop.wait(poll)
