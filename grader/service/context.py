"""Context: settings, catalogue, database and backends, built once per CLI call."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import Engine

from grader.backends import get_backend
from grader.backends.base import Backend
from grader.db.engine import make_engine
from grader.settings import Settings
from grader.specs.catalog import ExerciseCatalog


def current_user() -> str:
    return getpass.getuser()


@dataclass
class Context:
    settings: Settings = field(default_factory=Settings)
    user: str = field(default_factory=current_user)
    _backends: dict[str, Backend] = field(default_factory=dict, repr=False)

    @cached_property
    def catalog(self) -> ExerciseCatalog:
        return ExerciseCatalog(self.settings.resolved_course_dir)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.resolved_db_url)

    def backend(self, name: str | None = None) -> Backend:
        name = name or self.settings.backend
        if name not in self._backends:
            self._backends[name] = get_backend(name, self.settings)
        return self._backends[name]

    @property
    def is_instructor(self) -> bool:
        """With no instructors configured (a laptop), the single user is the instructor."""
        return not self.settings.instructors or self.user in self.settings.instructors
