"""The web pages of `grader serve` (the HTTP side; grader.web renders them): a token sign-in, then a session
cookie; every form carries CSRF.

The pages call the same service functions as the API and the CLI, and the service decides who may
see what: a participant asking for another's feedback gets the same 404 as a wrong id. Plots are
drawn on the server; the pages work with JavaScript off, apart from the live updates.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from grader.api.auth import CSRF_COOKIE, SESSION_COOKIE, actor, check_csrf, context, optional_actor
from grader.api.errors import status_for
from grader.errors import AuthError, GraderError
from grader.service import dashboard, submissions, submit
from grader.service.access import Actor
from grader.service.accounts import authenticate
from grader.web import pages

router = APIRouter(include_in_schema=False)
MAX_UPLOAD = 20_000_001


def _csrf(request: Request) -> str:
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)


def _page(request: Request, html: str, *, status: int = 200, csrf: str | None = None) -> HTMLResponse:
    response = HTMLResponse(html, status_code=status, headers={
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                   "script-src 'self'; frame-ancestors 'none'; form-action 'self'",
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "Cache-Control": "no-store"})
    if csrf is not None and request.cookies.get(CSRF_COOKIE) != csrf:
        response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", secure=_https(request), path="/")
    return response


def _https(request: Request) -> bool:
    return request.url.scheme == "https"


def _error(request: Request, exc: GraderError) -> HTMLResponse:
    from html import escape

    status = status_for(exc)
    body = (f"<!doctype html><meta charset=utf-8><title>grader</title><link rel=stylesheet href=/static/grader.css>"
            f"<main><h1>{status}</h1><p>{escape(exc.message)}</p><p><a href=/>back</a></p></main>")
    return _page(request, body, status=status)


def _who(request: Request) -> Actor | RedirectResponse:
    try:
        return actor(request)
    except AuthError:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    who = optional_actor(request)
    return RedirectResponse("/me" if who else "/login", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/me") -> Response:
    csrf = _csrf(request)
    return _page(request, pages.login_page(None, csrf, next), csrf=csrf)


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, token: Annotated[str, Form()], csrf: Annotated[str, Form()],
          next: Annotated[str, Form()] = "/me") -> Response:
    check_csrf(request, csrf)
    try:
        authenticate(context(request), token.strip())
    except AuthError as exc:
        fresh = _csrf(request)
        return _page(request, pages.login_page(exc.message, fresh, next), status=401, csrf=fresh)
    target = next if next.startswith("/") and not next.startswith("//") else "/me"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, token.strip(), httponly=True, samesite="strict", secure=_https(request),
                        path="/", max_age=14 * 86400)
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form()]) -> Response:
    check_csrf(request, csrf)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me", response_class=HTMLResponse)
def mine(request: Request) -> Response:
    who = _who(request)
    if isinstance(who, RedirectResponse):
        return who
    ctx = context(request)
    rows = submissions.history(ctx, who, student=who.name, limit=100)
    csrf = _csrf(request)
    return _page(request, pages.my_page(rows, ctx.catalog.names(), csrf, participant=who.name), csrf=csrf)


@router.post("/submissions")
async def upload(request: Request, exercise: Annotated[str, Form()], csrf: Annotated[str, Form()],
                 file: Annotated[UploadFile, File()]) -> Response:
    who = _who(request)
    if isinstance(who, RedirectResponse):
        return who
    try:
        check_csrf(request, csrf)
        data = await file.read(MAX_UPLOAD)
        if len(data) >= MAX_UPLOAD:
            raise GraderError("the file is larger than a submission may be")
        receipt = await run_in_threadpool(submit.submit_upload, context(request), who, data,
                                          file.filename or "submission.py", exercise=exercise)
    except GraderError as exc:
        return _error(request, exc)
    return RedirectResponse(f"/submissions/{receipt.submission_id}", status_code=303)


@router.get("/submissions/{submission_id}", response_class=HTMLResponse)
def feedback(request: Request, submission_id: int) -> Response:
    who = _who(request)
    if isinstance(who, RedirectResponse):
        return who
    ctx = context(request)
    try:
        detail = submissions.show(ctx, who, submission_id)
    except GraderError as exc:
        return _error(request, exc)
    csrf = _csrf(request)
    title = ctx.catalog.get(detail.status.exercise).title if detail.status.exercise in ctx.catalog.names() else None
    return _page(request, pages.feedback_page(detail, exercise_title=title, csrf_token=csrf, instructor=who.instructor,
                                              live_url=f"/api/v1/submissions/{submission_id}/events"), csrf=csrf)


@router.post("/submissions/{submission_id}/cancel")
def cancel(request: Request, submission_id: int, csrf: Annotated[str, Form()]) -> Response:
    who = _who(request)
    if isinstance(who, RedirectResponse):
        return who
    try:
        check_csrf(request, csrf)
        submissions.cancel(context(request), who, submission_id)
    except GraderError as exc:
        return _error(request, exc)
    return RedirectResponse(f"/submissions/{submission_id}", status_code=303)


@router.get("/leaderboard/{exercise}", response_class=HTMLResponse)
def board_page(request: Request, exercise: str, private: bool = False, top: int | None = None) -> Response:
    who = _who(request)
    if isinstance(who, RedirectResponse):
        return who
    ctx = context(request)
    try:
        entry = request.app.state.boards.entry(ctx, who, exercise=exercise, profile=None, private=private, top=None)
    except GraderError as exc:
        return _error(request, exc)
    query = f"?private={str(private).lower()}" + (f"&top={top}" if top else "")
    live_url = f"/leaderboard/{exercise}/table{query}"
    # the page is the same for every reader of this board (grader.api.boards): rendered once per version
    html = entry.rendered(("page", live_url, top), lambda board: pages.leaderboard_page(board, live_url=live_url,
                                                                                           top=top))
    return _page(request, html)


@router.get("/leaderboard/{exercise}/table", response_class=HTMLResponse)
def board_table(request: Request, exercise: str, private: bool = False, top: int | None = None) -> Response:
    """The live fragment the projector page polls (just the table)."""
    who = actor(request)
    entry = request.app.state.boards.entry(context(request), who, exercise=exercise, profile=None, private=private,
                                           top=None)
    html = entry.rendered(("table", top), lambda board: pages.leaderboard_table(board, top=top))
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.get("/class/{exercise}", response_class=HTMLResponse)
def class_picture(request: Request, exercise: str) -> Response:
    who = _who(request)
    if isinstance(who, RedirectResponse):
        return who
    ctx = context(request)
    try:
        view = dashboard.class_view(ctx, who, exercise=exercise)
        queue = dashboard.queue_health(ctx, who).model_dump() if who.instructor else None
    except GraderError as exc:
        return _error(request, exc)
    return _page(request, pages.class_page(view.points, scores=view.scores, max_score=view.max_score, queue=queue,
                                           exercise=exercise))
