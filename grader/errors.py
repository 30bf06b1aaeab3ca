"""Exception hierarchy: every error a user can cause carries a message meant for them."""

from __future__ import annotations


class GraderError(Exception):
    """Base class; `str(err)` is the one-line message the CLI prints in red."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class SpecError(GraderError):
    """An exercise or rubric file is missing, malformed or inconsistent."""

    exit_code = 2


class DataError(GraderError):
    """A dataset is missing, corrupt (checksum) or in an unknown format."""

    exit_code = 3


class SubmissionError(GraderError):
    """A submission cannot be graded as written (caught before any job starts)."""

    exit_code = 4


class BackendError(GraderError):
    """The execution backend (local worker, Slurm) could not run or track a job."""

    exit_code = 5


class ResultError(GraderError):
    """A run directory holds no trustworthy result (missing, oversized or invalid)."""

    exit_code = 6


class NotFoundError(GraderError):
    """A named thing (exercise, submission, participant) does not exist."""

    exit_code = 7


class QuotaError(GraderError):
    """A participant has used up their submissions for the current window."""

    exit_code = 8


class AccessError(GraderError):
    """The caller's role does not allow this (a participant calling an instructor command)."""

    exit_code = 9


class ServerError(GraderError):
    """The grader server is unreachable, or answered with something other than grader's API."""

    exit_code = 10


class AuthError(GraderError):
    """No token, or one the server does not accept (wrong, revoked, expired)."""

    exit_code = 11


def by_name(kind: str) -> type[GraderError]:
    """The error class of a name (an HTTP client turns the server's JSON error back into the same exception)."""
    found = {cls.__name__: cls for cls in _subclasses(GraderError)}
    return found.get(kind, GraderError)


def _subclasses(cls: type[GraderError]) -> list[type[GraderError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_subclasses(sub))
    return out
