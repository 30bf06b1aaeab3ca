"""Embedded mode: the Client interface served by the service layer in this process.

The local user is the actor (an instructor unless `instructors` says otherwise). Reads only read;
when something is in flight, the background worker is (re)started so it moves forward.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grader.client.base import Client
from grader.settings import Settings

if TYPE_CHECKING:
    from grader.service.access import Actor
    from grader.service.accounts import AccountView, IssuedToken
    from grader.service.board import Leaderboard
    from grader.service.context import Context
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


class LocalClient(Client):
    mode = "embedded"

    def __init__(self, settings: Settings, actor: Actor | None = None) -> None:
        self.settings = settings
        self._actor = actor
        self.where = settings.resolved_db_url

    @cached_property
    def ctx(self) -> Context:
        from grader.service.context import Context

        return Context(settings=self.settings)

    @property
    def actor(self) -> Actor:
        if self._actor is None:
            from grader.service.access import local_actor

            self._actor = local_actor(self.settings)
        return self._actor

    def _keep_moving(self, rows: list[Any]) -> None:
        if any(getattr(r, "state", None) in ("queued", "running") for r in rows):
            self.ctx.ensure_worker()

    def whoami(self) -> Actor:
        return self.actor

    def exercises(self) -> list[ExerciseSummary]:
        from grader.service.exercises import list_exercises

        return list_exercises(self.ctx)

    def exercise(self, name: str) -> ExerciseDetail:
        from grader.service.exercises import exercise_detail

        return exercise_detail(self.ctx, name)

    def submit(self, path: Path, *, exercise: str, profile: str | None = None, student: str | None = None,
               backend: str | None = None, seeds: int | None = None) -> Receipt:
        from grader.service.submit import submit

        receipt = submit(self.ctx, self.actor, path, exercise=exercise, profile=profile, student=student,
                         backend=backend, seeds=seeds)
        if receipt.state.active or receipt.references_queued:
            self.ctx.ensure_worker()
        return receipt

    def status(self, *, submission_id: int | None = None, student: str | None = None, everyone: bool = False,
               exercise: str | None = None, limit: int = 20) -> StatusView:
        from grader.service.submissions import status

        view = status(self.ctx, self.actor, submission_id=submission_id, student=student, everyone=everyone,
                      exercise=exercise, limit=limit)
        self._keep_moving(view.rows)
        return view

    def show(self, submission_id: int) -> SubmissionDetail:
        from grader.service.submissions import show

        detail = show(self.ctx, self.actor, submission_id)
        self._keep_moving([detail.status])
        return detail

    def history(self, *, student: str | None = None, exercise: str | None = None) -> list[StatusRow]:
        from grader.service.submissions import history

        rows = history(self.ctx, self.actor, student=student, exercise=exercise)
        self._keep_moving(rows)
        return rows

    def cancel(self, submission_id: int) -> CancelResult:
        from grader.service.submissions import cancel

        result = cancel(self.ctx, self.actor, submission_id)
        self.ctx.ensure_worker()
        return result

    def follow(self, submission_id: int) -> Iterator[dict[str, Any]]:
        from grader.service.submissions import follow

        self.ctx.ensure_worker()
        return follow(self.ctx, self.actor, submission_id)

    def leaderboard(self, *, exercise: str, profile: str | None = None, private: bool = False,
                    top: int | None = None) -> Leaderboard:
        from grader.service.board import leaderboard

        return leaderboard(self.ctx, self.actor, exercise=exercise, profile=profile, private=private, top=top)

    def regrade(self, *, exercise: str, profile: str | None = None, seeds: int | None = None,
                on_progress: Callable[[int, int], None] | None = None) -> RegradeReport:
        if seeds is not None:
            from grader.service.submit import regrade_with_seeds

            report = regrade_with_seeds(self.ctx, self.actor, exercise=exercise, profile=profile, seeds=seeds)
            self.ctx.ensure_worker()
            return report
        from grader.service.grade import regrade

        return regrade(self.ctx, self.actor, exercise, profile, on_progress=on_progress)

    def export_grades(self, *, exercise: str, profile: str | None = None) -> GradeExport:
        from grader.service.export import export_grades

        return export_grades(self.ctx, self.actor, exercise=exercise, profile=profile)

    def set_quota(self, student: str, *, exercise: str, limit: int) -> QuotaStatus:
        from grader.service.quota import set_override

        return set_override(self.ctx, self.actor, student, exercise, limit)

    def compute_references(self, *, exercise: str, profile: str | None = None, force: bool = False) -> list[str]:
        from grader.service.references import compute_references

        return compute_references(self.ctx, self.actor, exercise=exercise, profile=profile, force=force)

    def references(self, *, exercise: str, profile: str | None = None) -> list[ReferenceRow]:
        from grader.service.references import reference_status

        self.ctx.catalog.get(exercise)
        rows = reference_status(self.ctx, exercise, profile or self.settings.profile)
        self._keep_moving(rows)
        return rows

    def sync(self) -> SyncReport:
        from grader.service.access import require_instructor
        from grader.service.reconcile import reconcile

        require_instructor(self.actor, "reconciling the queue")
        return reconcile(self.ctx)

    def import_notebooks(self, gradebook: Path) -> int:
        from grader.service.notebooks import import_notebook_scores

        return import_notebook_scores(self.ctx, self.actor, gradebook)

    def flags(self, *, exercise: str, profile: str | None = None) -> FlagReport:
        from grader.service.flags import flags

        return flags(self.ctx, self.actor, exercise=exercise, profile=profile)

    def add_account(self, name: str, *, instructor: bool = False, display_name: str | None = None,
                    email: str | None = None) -> IssuedToken:
        from grader.service.accounts import add_account

        return add_account(self.ctx, self.actor, name, instructor=instructor, display_name=display_name, email=email)

    def import_roster(self, text: str) -> list[IssuedToken]:
        from grader.service.accounts import import_roster

        return import_roster(self.ctx, self.actor, text)

    def accounts(self) -> list[AccountView]:
        from grader.service.accounts import list_accounts

        return list_accounts(self.ctx, self.actor)

    def revoke(self, name: str) -> AccountView:
        from grader.service.accounts import revoke

        return revoke(self.ctx, self.actor, name)

    def rotate(self, name: str) -> IssuedToken:
        from grader.service.accounts import rotate

        return rotate(self.ctx, self.actor, name)
