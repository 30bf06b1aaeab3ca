"""Who is calling: a bearer token (CLI), or a session cookie set by the web login (pages); CSRF for forms."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request

from grader.errors import AuthError
from grader.service.access import Actor
from grader.service.accounts import authenticate
from grader.service.context import Context

SESSION_COOKIE = "grader_session"
CSRF_COOKIE = "grader_csrf"


def context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


async def app_context(request: Request) -> Context:
    """`context` as a route dependency: async, so FastAPI answers it on the event loop, not in a worker thread."""
    return context(request)


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def actor(request: Request) -> Actor:
    """The account behind the request (401 with a reason when there is none).

    The session cookie counts for reading (pages, and the progress stream an EventSource opens, which
    cannot send headers) and for the pages' own forms, which check CSRF; a JSON API call that changes
    something needs the bearer token, so no page can make a signed-in browser act through the API.
    """
    token = bearer(request)
    if token is None and (request.method in ("GET", "HEAD") or not request.url.path.startswith("/api/")):
        token = request.cookies.get(SESSION_COOKIE)
    return authenticate(context(request), token)


def optional_actor(request: Request) -> Actor | None:
    try:
        return actor(request)
    except AuthError:
        return None


def csrf_token(request: Request) -> str:
    """The page's CSRF token: a random value in a cookie, echoed by every form (double submit)."""
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)


def check_csrf(request: Request, submitted: str | None) -> None:
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not submitted or not hmac.compare_digest(cookie, submitted):
        raise AuthError("the form expired or came from another site (CSRF check failed): reload the page and try "
                        "again")


def session_id(token: str) -> str:
    """Not used as a secret: only to tell sessions apart in logs."""
    return hashlib.sha256(token.encode()).hexdigest()[:8]
