"""GraderError → HTTP status and a JSON body a participant can act on; the CLI client maps it back."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from grader import errors

STATUS: dict[type[errors.GraderError], int] = {
    errors.AuthError: 401,
    errors.AccessError: 403,
    errors.NotFoundError: 404,
    errors.QuotaError: 429,
    errors.SubmissionError: 422,
    errors.SpecError: 400,
    errors.DataError: 409,
    errors.ResultError: 409,
    errors.BackendError: 503,
}


def status_for(exc: errors.GraderError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def error_body(exc: errors.GraderError) -> dict[str, object]:
    kind = next((cls.__name__ for cls in type(exc).__mro__ if errors.by_name(cls.__name__) is cls), "GraderError")
    return {"error": {"kind": kind, "message": exc.message, "hint": exc.hint}}


async def grader_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.GraderError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, errors.AuthError) else None
    return JSONResponse(error_body(exc), status_code=status_for(exc), headers=headers)
