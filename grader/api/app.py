"""The FastAPI application: routes, error mapping and the background loop."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from grader.api.boards import BoardCache
from grader.api.errors import grader_error
from grader.errors import GraderError
from grader.service.context import Context

log = logging.getLogger("grader.serve")


def create_app(ctx: Context, *, background: bool = True, loop_seconds: float = 2.0) -> FastAPI:
    """The coordinator's app; `background` runs the reconcile/ingest loop in a thread beside it."""
    from grader import __version__
    from grader.api.routes import router

    stop = threading.Event()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = 200  # SSE streams hold a thread each
        ctx.reads  # noqa: B018  (the read side once, before request threads race to create it)
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
            ctx.close()  # the read connections

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
