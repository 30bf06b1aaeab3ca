"""Accounts of a served class: roles on the server, random tokens shown once and stored as hashes."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import secrets
from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import select

from grader.db.engine import session_scope
from grader.db.models import Account
from grader.db.reads import when
from grader.errors import AuthError, GraderError, NotFoundError
from grader.service.access import Actor, require_instructor
from grader.service.context import Context

TOKEN_PREFIX = "grd_"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")


class AccountView(BaseModel):
    name: str
    display_name: str | None
    email: str | None
    role: str
    created_at: datetime
    revoked: bool
    expires_at: datetime | None


class IssuedToken(BaseModel):
    """A new token: shown once, to be handed to its owner; the server keeps only its hash."""

    name: str
    role: str
    token: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _view(a: Account) -> AccountView:
    return AccountView(name=a.name, display_name=a.display_name, email=a.email, role=a.role, created_at=a.created_at,
                       revoked=a.revoked_at is not None, expires_at=a.expires_at)


def _check_name(name: str) -> str:
    if not NAME.match(name):
        raise GraderError(f"{name[:60]!r} is not a usable account name: letters, digits, '_', '.', '@', '-' "
                          "(up to 100 characters, starting with a letter or digit)")
    return name


def add_account(ctx: Context, actor: Actor | None, name: str, *, instructor: bool = False,
                display_name: str | None = None, email: str | None = None) -> IssuedToken:
    """`actor` None: the server's own operator on its machine (creating the first instructor)."""
    if actor is not None:
        require_instructor(actor, "managing accounts")
    _check_name(name)
    token = new_token()
    with session_scope(ctx.engine) as session:
        if session.scalar(select(Account).where(Account.name == name)) is not None:
            raise GraderError(f"an account named {name!r} exists already", hint="`grader accounts rotate` gives it a "
                              "new token")
        session.add(Account(name=name, display_name=display_name, email=email,
                            role="instructor" if instructor else "participant", token_hash=token_hash(token),
                            created_at=datetime.now(UTC)))
    return IssuedToken(name=name, role="instructor" if instructor else "participant", token=token)


def import_roster(ctx: Context, actor: Actor | None, text: str) -> list[IssuedToken]:
    """A roster CSV with columns id, display name, e-mail (a header row is recognised and skipped)."""
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if rows and rows[0] and rows[0][0].strip().lower() in ("id", "name", "participant", "participant_id", "login"):
        rows = rows[1:]
    issued = []
    with session_scope(ctx.reader) as session:
        existing = set(session.scalars(select(Account.name)))
    problems = [f"line {i}: {r[0].strip()[:60]!r}" for i, r in enumerate(rows, start=1)
                if not NAME.match(r[0].strip())]
    if problems:
        raise GraderError("the roster has unusable ids: " + ", ".join(problems[:10]))
    for r in rows:
        name = r[0].strip()
        if name in existing:
            continue
        issued.append(add_account(ctx, actor, name, display_name=(r[1].strip() or None) if len(r) > 1 else None,
                                  email=(r[2].strip() or None) if len(r) > 2 else None))
    return issued


def list_accounts(ctx: Context, actor: Actor) -> list[AccountView]:
    require_instructor(actor, "listing accounts")
    with session_scope(ctx.reader) as session:
        return [_view(a) for a in session.scalars(select(Account).order_by(Account.name))]


def revoke(ctx: Context, actor: Actor | None, name: str) -> AccountView:
    if actor is not None:
        require_instructor(actor, "managing accounts")
    with session_scope(ctx.engine) as session:
        account = session.scalar(select(Account).where(Account.name == name))
        if account is None:
            raise NotFoundError(f"no account named {name!r}")
        account.revoked_at, account.token_hash = datetime.now(UTC), None
        return _view(account)


def rotate(ctx: Context, actor: Actor | None, name: str) -> IssuedToken:
    """A new token for an account (the old one stops working); also un-revokes it."""
    if actor is not None:
        require_instructor(actor, "managing accounts")
    token = new_token()
    with session_scope(ctx.engine) as session:
        account = session.scalar(select(Account).where(Account.name == name))
        if account is None:
            raise NotFoundError(f"no account named {name!r}")
        account.token_hash, account.rotated_at, account.revoked_at = token_hash(token), datetime.now(UTC), None
        return IssuedToken(name=name, role=account.role, token=token)


def authenticate(ctx: Context, token: str | None) -> Actor:
    """The account behind a token, or AuthError (401) saying why not.

    Asked on every request of a served class, so through the plain-SQL read side (one indexed row from
    a pooled read-only connection), never an ORM session: a revoked or rotated token fails on its next use.
    """
    if not token:
        raise AuthError("no token: run `grader login URL` (or set GRADER_TOKEN)")
    found = ctx.reads.rows("SELECT name, role, revoked_at, expires_at FROM accounts WHERE token_hash = :h",
                           h=token_hash(token))
    if not found:
        raise AuthError("this token is not valid here (wrong, rotated or revoked): ask your instructor for a "
                        "new one")
    name, role, revoked_at, expires_at = found[0]
    if revoked_at is not None:
        raise AuthError("this account has been revoked")
    expires = when(expires_at)
    if expires is not None and expires < datetime.now(UTC):
        raise AuthError("this token has expired: ask your instructor for a new one")
    return Actor(name=name, instructor=role == "instructor")


def has_instructor(ctx: Context) -> bool:
    with session_scope(ctx.reader) as session:
        return session.scalar(select(Account.id).where(Account.role == "instructor",
                                                       Account.revoked_at.is_(None)).limit(1)) is not None
