"""Who is asking, and what they may see: the only place that decides it (API, CLI and pages ask here).

Embedded mode: the local user, an instructor unless `instructors` names others (a convenience on a
shared laptop, not a security boundary: that user owns the database anyway). Served mode: the
account behind the request's token (grader.service.accounts); nothing in a participant's own
environment or configuration can change their role.
"""

from __future__ import annotations

import getpass

from pydantic import BaseModel

from grader.errors import AccessError, NotFoundError
from grader.settings import Settings


class Actor(BaseModel):
    name: str
    instructor: bool


def local_actor(settings: Settings, name: str | None = None) -> Actor:
    user = name or getpass.getuser()
    return Actor(name=user, instructor=not settings.instructors or user in settings.instructors)


def require_instructor(actor: Actor, what: str) -> None:
    if not actor.instructor:
        raise AccessError(f"{what} is for instructors only")


def require_visible(actor: Actor, owner: str, what: str) -> None:
    """Another participant's things do not exist for you: the same answer as a wrong id (no leak)."""
    if owner != actor.name and not actor.instructor:
        raise NotFoundError(f"no {what}")
