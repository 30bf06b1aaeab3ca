"""The HTTP API, /api/v1: one route per use case, each a thin adapter over the service layer.

Request bodies and responses are the service's pydantic models; who may see what is decided by the
service (grader.service.access), never here. Reads only read: the server's background loop does all
reconciling and ingesting.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel

from grader.api.auth import actor, app_context
from grader.api.boards import BoardCache
from grader.errors import GraderError, SubmissionError
from grader.service import (
    accounts,
    board,
    detail,
    exercises,
    export,
    flags,
    grade,
    quota,
    references,
    submissions,
    submit,
)
from grader.service.access import Actor, require_instructor
from grader.service.context import Context
from grader.service.reconcile import SyncReport
from grader.submission import MAX_NOTEBOOK_BYTES

router = APIRouter(prefix="/api/v1")
Who = Annotated[Actor, Depends(actor)]
Ctx = Annotated[Context, Depends(app_context)]
UPLOAD_CAP = MAX_NOTEBOOK_BYTES


class Health(BaseModel):
    ok: bool
    version: str


@router.get("/health")
def health() -> Health:
    from grader import __version__

    return Health(ok=True, version=__version__)


@router.get("/whoami")
def whoami(who: Who) -> Actor:
    return who


@router.get("/exercises")
def list_exercises(ctx: Ctx, who: Who) -> list[exercises.ExerciseSummary]:
    return exercises.list_exercises(ctx)


@router.get("/exercises/{name}")
def exercise(name: str, ctx: Ctx, who: Who) -> exercises.ExerciseDetail:
    return exercises.exercise_detail(ctx, name)


async def read_upload(file: UploadFile) -> bytes:
    data = await file.read(UPLOAD_CAP + 1)
    if len(data) > UPLOAD_CAP:
        raise SubmissionError(f"{file.filename}: the upload is over the {UPLOAD_CAP:,}-byte limit")
    return data


@router.post("/submissions")
async def post_submission(ctx: Ctx, who: Who, file: Annotated[UploadFile, File()],
                          exercise: Annotated[str, Form()], profile: Annotated[str | None, Form()] = None,
                          student: Annotated[str | None, Form()] = None,
                          seeds: Annotated[int | None, Form()] = None) -> submit.Receipt:
    data = await read_upload(file)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(submit.submit_upload, ctx, who, data, file.filename or "submission.py",
                                   exercise=exercise, profile=profile, student=student, seeds=seeds)


@router.get("/submissions")
def list_submissions(ctx: Ctx, who: Who, student: str | None = None, everyone: Annotated[bool, Query(alias="all")] = False,
                     exercise: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 20) \
        -> submissions.StatusView:
    return submissions.status(ctx, who, student=student, everyone=everyone, exercise=exercise, limit=limit)


@router.get("/submissions/{submission_id}")
def get_submission(submission_id: int, ctx: Ctx, who: Who) -> detail.SubmissionDetail:
    return submissions.show(ctx, who, submission_id)


@router.post("/submissions/{submission_id}/cancel")
def cancel_submission(submission_id: int, ctx: Ctx, who: Who) -> submissions.CancelResult:
    return submissions.cancel(ctx, who, submission_id)


def sse(events: Iterator[dict[str, Any]]) -> Iterator[str]:
    yield ": grader progress stream\n\n"
    for event in events:
        yield f"data: {json.dumps(event, separators=(',', ':'), default=str)}\n\n"


@router.get("/submissions/{submission_id}/events")
def submission_events(submission_id: int, request: Request, ctx: Ctx, who: Who) -> StreamingResponse:
    """Server-sent events: state changes and the job's progress lines, until the submission ends."""
    stream = submissions.follow(ctx, who, submission_id)  # checks visibility before the stream starts
    first = next(stream)
    return StreamingResponse(sse(_chain(first, stream)), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _chain(first: dict[str, Any], rest: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield first
    yield from rest


@router.get("/history")
def get_history(ctx: Ctx, who: Who, student: str | None = None, exercise: str | None = None) \
        -> list[submissions.StatusRow]:
    return submissions.history(ctx, who, student=student, exercise=exercise)


@router.get("/leaderboard/{exercise}", response_model=board.Leaderboard)
async def get_leaderboard(exercise: str, request: Request, ctx: Ctx, profile: str | None = None,
                          private: bool = False, top: Annotated[int | None, Query(ge=1)] = None) -> Response:
    """The board's JSON as cached with it (grader.api.boards): a class polling it costs no serialising.

    What a whole class polls: the caller's token and the board in one trip to a worker thread, not one
    for the token and another for the route.
    """
    from starlette.concurrency import run_in_threadpool

    def answer() -> Response:
        cache: BoardCache = request.app.state.boards
        entry = cache.entry(ctx, actor(request), exercise=exercise, profile=profile, private=private, top=top)
        return Response(entry.json, media_type="application/json")

    return await run_in_threadpool(answer)


class RegradeRequest(BaseModel):
    exercise: str
    profile: str | None = None
    seeds: int | None = None


@router.post("/regrade")
def post_regrade(body: RegradeRequest, ctx: Ctx, who: Who) -> grade.RegradeReport:
    if body.seeds is not None:
        return submit.regrade_with_seeds(ctx, who, exercise=body.exercise, profile=body.profile, seeds=body.seeds)
    return grade.regrade(ctx, who, body.exercise, body.profile)


@router.get("/export/{exercise}")
def get_export(exercise: str, ctx: Ctx, who: Who, profile: str | None = None) -> export.GradeExport:
    return export.export_grades(ctx, who, exercise=exercise, profile=profile)


@router.get("/export/{exercise}.csv", response_class=PlainTextResponse)
def get_export_csv(exercise: str, ctx: Ctx, who: Who, profile: str | None = None) -> str:
    return export.render(export.export_grades(ctx, who, exercise=exercise, profile=profile), "csv")


class QuotaRequest(BaseModel):
    student: str
    exercise: str
    limit: int


@router.post("/quota")
def post_quota(body: QuotaRequest, ctx: Ctx, who: Who) -> quota.QuotaStatus:
    return quota.set_override(ctx, who, body.student, body.exercise, body.limit)


class ComputeRequest(BaseModel):
    profile: str | None = None
    force: bool = False


@router.post("/references/{exercise}/compute")
def post_references(exercise: str, body: ComputeRequest, ctx: Ctx, who: Who) -> list[str]:
    return references.compute_references(ctx, who, exercise=exercise, profile=body.profile, force=body.force)


@router.get("/references/{exercise}")
def get_references(exercise: str, ctx: Ctx, who: Who, profile: str | None = None) -> list[references.ReferenceRow]:
    ctx.catalog.get(exercise)
    return references.reference_status(ctx, exercise, profile or ctx.settings.profile)


@router.post("/sync")
def post_sync(ctx: Ctx, who: Who) -> SyncReport:
    require_instructor(who, "reconciling the queue")
    from grader.service.reconcile import reconcile

    return reconcile(ctx)


@router.post("/nbgrader/import")
async def post_gradebook(ctx: Ctx, who: Who, file: Annotated[UploadFile, File()]) -> int:
    import tempfile
    from pathlib import Path

    from starlette.concurrency import run_in_threadpool

    from grader.service.notebooks import import_notebook_scores

    require_instructor(who, "importing notebook scores")
    data = await file.read(200_000_001)
    if len(data) > 200_000_000:
        raise GraderError("the gradebook is over 200 MB")
    with tempfile.TemporaryDirectory(dir=ctx.settings.home.expanduser()) as tmp:
        path = Path(tmp) / "gradebook.db"
        path.write_bytes(data)
        return await run_in_threadpool(import_notebook_scores, ctx, who, path)


@router.get("/flags/{exercise}")
def get_flags(exercise: str, ctx: Ctx, who: Who, profile: str | None = None) -> flags.FlagReport:
    return flags.flags(ctx, who, exercise=exercise, profile=profile)


class AccountRequest(BaseModel):
    name: str
    instructor: bool = False
    display_name: str | None = None
    email: str | None = None


@router.get("/accounts")
def get_accounts(ctx: Ctx, who: Who) -> list[accounts.AccountView]:
    return accounts.list_accounts(ctx, who)


@router.post("/accounts")
def post_account(body: AccountRequest, ctx: Ctx, who: Who) -> accounts.IssuedToken:
    return accounts.add_account(ctx, who, body.name, instructor=body.instructor, display_name=body.display_name,
                                email=body.email)


class RosterRequest(BaseModel):
    csv: str


@router.post("/accounts/import")
def post_roster(body: RosterRequest, ctx: Ctx, who: Who) -> list[accounts.IssuedToken]:
    return accounts.import_roster(ctx, who, body.csv)


@router.post("/accounts/{name}/revoke")
def post_revoke(name: str, ctx: Ctx, who: Who) -> accounts.AccountView:
    return accounts.revoke(ctx, who, name)


@router.post("/accounts/{name}/rotate")
def post_rotate(name: str, ctx: Ctx, who: Who) -> accounts.IssuedToken:
    return accounts.rotate(ctx, who, name)
