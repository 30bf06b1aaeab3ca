"""The Client interface: every use case the CLI offers, in the service layer's own models."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


class Client(ABC):
    """Embedded (in-process) or served (HTTP): the same calls, the same answers, the same errors."""

    mode: str = "embedded"
    where: str = ""

    @abstractmethod
    def whoami(self) -> Actor: ...

    @abstractmethod
    def exercises(self) -> list[ExerciseSummary]: ...

    @abstractmethod
    def exercise(self, name: str) -> ExerciseDetail: ...

    @abstractmethod
    def submit(self, path: Path, *, exercise: str, profile: str | None = None, student: str | None = None,
               backend: str | None = None, seeds: int | None = None) -> Receipt: ...

    @abstractmethod
    def status(self, *, submission_id: int | None = None, student: str | None = None, everyone: bool = False,
               exercise: str | None = None, limit: int = 20) -> StatusView: ...

    @abstractmethod
    def show(self, submission_id: int) -> SubmissionDetail: ...

    @abstractmethod
    def history(self, *, student: str | None = None, exercise: str | None = None) -> list[StatusRow]: ...

    @abstractmethod
    def cancel(self, submission_id: int) -> CancelResult: ...

    @abstractmethod
    def follow(self, submission_id: int) -> Iterator[dict[str, Any]]: ...

    @abstractmethod
    def leaderboard(self, *, exercise: str, profile: str | None = None, private: bool = False,
                    top: int | None = None) -> Leaderboard: ...

    @abstractmethod
    def regrade(self, *, exercise: str, profile: str | None = None, seeds: int | None = None,
                on_progress: Callable[[int, int], None] | None = None) -> RegradeReport: ...

    @abstractmethod
    def export_grades(self, *, exercise: str, profile: str | None = None) -> GradeExport: ...

    @abstractmethod
    def set_quota(self, student: str, *, exercise: str, limit: int) -> QuotaStatus: ...

    @abstractmethod
    def compute_references(self, *, exercise: str, profile: str | None = None, force: bool = False) -> list[str]: ...

    @abstractmethod
    def references(self, *, exercise: str, profile: str | None = None) -> list[ReferenceRow]: ...

    @abstractmethod
    def sync(self) -> SyncReport: ...

    @abstractmethod
    def import_notebooks(self, gradebook: Path) -> int: ...

    @abstractmethod
    def flags(self, *, exercise: str, profile: str | None = None) -> FlagReport: ...

    @abstractmethod
    def add_account(self, name: str, *, instructor: bool = False, display_name: str | None = None,
                    email: str | None = None) -> IssuedToken: ...

    @abstractmethod
    def import_roster(self, text: str) -> list[IssuedToken]: ...

    @abstractmethod
    def accounts(self) -> list[AccountView]: ...

    @abstractmethod
    def revoke(self, name: str) -> AccountView: ...

    @abstractmethod
    def rotate(self, name: str) -> IssuedToken: ...
