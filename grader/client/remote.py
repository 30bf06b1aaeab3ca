"""Served mode: the Client interface over HTTP to `grader serve`, with the same models and errors.

A server that is down or unreachable is a clear ServerError naming the URL, after a short connect
timeout; the live progress of `--wait` is a server-sent event stream, not polling.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import TypeAdapter

from grader.client.base import Client
from grader.errors import GraderError, ServerError, SubmissionError, by_name

if TYPE_CHECKING:
    from grader.service.access import Actor
    from grader.service.accounts import AccountView, IssuedToken
    from grader.service.board import Leaderboard
    from grader.service.detail import SubmissionDetail
    from grader.service.exercises import ExerciseDetail, ExerciseSummary
    from grader.service.export import GradeExport
    from grader.service.flags import FlagReport
    from grader.service.grade import RegradeReport
    from grader.service.quota import QuotaStatus
    from grader.service.reconcile import SyncReport
    from grader.service.references import ReferenceRow
    from grader.service.submissions import CancelResult, StatusRow, StatusView
    from grader.service.submit import Receipt

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0


class RemoteClient(Client):
    mode = "served"

    def __init__(self, server: str, token: str | None) -> None:
        self.server = server.rstrip("/")
        self.where = self.server
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=f"{self.server}/api/v1", headers=headers,
                                 timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT))

    def _call(self, method: str, path: str, model: Any, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ServerError(f"the grader server at {self.server} did not answer in time",
                              hint="check the URL, or ask your instructor whether the server is up") from None
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot reach the grader server at {self.server}: {exc}",
                              hint="check the URL (`grader login URL`), your network, or whether the server is up") \
                from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            raise from_body(response.status_code, body)
        if body is None:
            raise ServerError(f"{self.server} answered without JSON: is it a grader server?")
        return TypeAdapter(model).validate_python(body)

    def whoami(self) -> Actor:
        from grader.service.access import Actor

        return self._call("GET", "/whoami", Actor)

    def exercises(self) -> list[ExerciseSummary]:
        from grader.service.exercises import ExerciseSummary

        return self._call("GET", "/exercises", list[ExerciseSummary])

    def exercise(self, name: str) -> ExerciseDetail:
        from grader.service.exercises import ExerciseDetail

        return self._call("GET", f"/exercises/{name}", ExerciseDetail)

    def submit(self, path: Path, *, exercise: str, profile: str | None = None, student: str | None = None,
               backend: str | None = None, seeds: int | None = None) -> Receipt:
        from grader.service.submit import Receipt
        from grader.submission import MAX_NOTEBOOK_BYTES

        path = path.expanduser()
        if not path.is_file():
            raise SubmissionError(f"{path}: no such file")
        if path.stat().st_size > MAX_NOTEBOOK_BYTES:
            raise SubmissionError(f"{path.name}: file is {path.stat().st_size} bytes; the limit is "
                                  f"{MAX_NOTEBOOK_BYTES}")
        if backend is not None:
            raise SubmissionError("--backend is the server's choice; leave it out when submitting to a server")
        form = {k: str(v) for k, v in {"exercise": exercise, "profile": profile, "student": student,
                                       "seeds": seeds}.items() if v is not None}
        return self._call("POST", "/submissions", Receipt,
                          data=form, files={"file": (path.name, path.read_bytes())})

    def status(self, *, submission_id: int | None = None, student: str | None = None, everyone: bool = False,
               exercise: str | None = None, limit: int = 20) -> StatusView:
        from grader.service.submissions import StatusView

        if submission_id is not None:
            detail = self.show(submission_id)
            return StatusView(rows=[detail.status], quotas={})
        params = {k: v for k, v in {"student": student, "all": everyone or None, "exercise": exercise,
                                    "limit": limit}.items() if v is not None}
        return self._call("GET", "/submissions", StatusView, params=params)

    def show(self, submission_id: int) -> SubmissionDetail:
        from grader.service.detail import SubmissionDetail

        return self._call("GET", f"/submissions/{submission_id}", SubmissionDetail)

    def history(self, *, student: str | None = None, exercise: str | None = None) -> list[StatusRow]:
        from grader.service.submissions import StatusRow

        params = {k: v for k, v in {"student": student, "exercise": exercise}.items() if v is not None}
        return self._call("GET", "/history", list[StatusRow], params=params)

    def cancel(self, submission_id: int) -> CancelResult:
        from grader.service.submissions import CancelResult

        return self._call("POST", f"/submissions/{submission_id}/cancel", CancelResult)

    def follow(self, submission_id: int) -> Iterator[dict[str, Any]]:
        """Server-sent events until the submission ends (no read timeout: the stream is live)."""
        url = f"/submissions/{submission_id}/events"
        try:
            with self.http.stream("GET", url, timeout=httpx.Timeout(None, connect=CONNECT_TIMEOUT)) as response:
                if response.status_code >= 400:
                    response.read()
                    raise from_body(response.status_code, _json(response.text))
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        event = _json(line[6:])
                        if isinstance(event, dict):
                            yield event
        except httpx.HTTPError as exc:
            raise ServerError(f"lost the progress stream from {self.server}: {exc}",
                              hint=f"`grader wait {submission_id}` reconnects") from None

    def leaderboard(self, *, exercise: str, profile: str | None = None, private: bool = False,
                    top: int | None = None) -> Leaderboard:
        from grader.service.board import Leaderboard

        params = {k: v for k, v in {"profile": profile, "private": private or None, "top": top}.items()
                  if v is not None}
        return self._call("GET", f"/leaderboard/{exercise}", Leaderboard, params=params)

    def regrade(self, *, exercise: str, profile: str | None = None, seeds: int | None = None,
                on_progress: Callable[[int, int], None] | None = None) -> RegradeReport:
        from grader.service.grade import RegradeReport

        return self._call("POST", "/regrade", RegradeReport,
                          json={"exercise": exercise, "profile": profile, "seeds": seeds})

    def export_grades(self, *, exercise: str, profile: str | None = None) -> GradeExport:
        from grader.service.export import GradeExport

        params = {"profile": profile} if profile else {}
        return self._call("GET", f"/export/{exercise}", GradeExport, params=params)

    def set_quota(self, student: str, *, exercise: str, limit: int) -> QuotaStatus:
        from grader.service.quota import QuotaStatus

        return self._call("POST", "/quota", QuotaStatus,
                          json={"student": student, "exercise": exercise, "limit": limit})

    def compute_references(self, *, exercise: str, profile: str | None = None, force: bool = False) -> list[str]:
        return self._call("POST", f"/references/{exercise}/compute", list[str],
                          json={"profile": profile, "force": force})

    def references(self, *, exercise: str, profile: str | None = None) -> list[ReferenceRow]:
        from grader.service.references import ReferenceRow

        params = {"profile": profile} if profile else {}
        return self._call("GET", f"/references/{exercise}", list[ReferenceRow],
                          params=params)

    def sync(self) -> SyncReport:
        from grader.service.reconcile import SyncReport

        return self._call("POST", "/sync", SyncReport)

    def import_notebooks(self, gradebook: Path) -> int:
        if not gradebook.is_file():
            raise SubmissionError(f"{gradebook}: no such gradebook (run this in the nbgrader course folder)")
        return self._call("POST", "/nbgrader/import", int,
                          files={"file": (gradebook.name, gradebook.read_bytes())})

    def flags(self, *, exercise: str, profile: str | None = None) -> FlagReport:
        from grader.service.flags import FlagReport

        params = {"profile": profile} if profile else {}
        return self._call("GET", f"/flags/{exercise}", FlagReport, params=params)

    def add_account(self, name: str, *, instructor: bool = False, display_name: str | None = None,
                    email: str | None = None) -> IssuedToken:
        from grader.service.accounts import IssuedToken

        return self._call("POST", "/accounts", IssuedToken,
                          json={"name": name, "instructor": instructor, "display_name": display_name,
                                "email": email})

    def import_roster(self, text: str) -> list[IssuedToken]:
        from grader.service.accounts import IssuedToken

        return self._call("POST", "/accounts/import", list[IssuedToken], json={"csv": text})

    def accounts(self) -> list[AccountView]:
        from grader.service.accounts import AccountView

        return self._call("GET", "/accounts", list[AccountView])

    def revoke(self, name: str) -> AccountView:
        from grader.service.accounts import AccountView

        return self._call("POST", f"/accounts/{name}/revoke", AccountView)

    def rotate(self, name: str) -> IssuedToken:
        from grader.service.accounts import IssuedToken

        return self._call("POST", f"/accounts/{name}/rotate", IssuedToken)


def from_body(status: int, body: object) -> GraderError:
    """The same exception class the server raised, with its message (grader.api.errors writes the body)."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        cls = by_name(str(err.get("kind")))
        return cls(str(err.get("message") or f"the server answered {status}"),
                   hint=str(err["hint"]) if err.get("hint") else None)
    if status == 422 and isinstance(body, dict) and "detail" in body:  # FastAPI's own request validation
        return GraderError(f"the server refused the request: {str(body['detail'])[:300]}")
    return ServerError(f"the server answered {status} without grader's error format")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
