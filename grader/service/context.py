"""Context: settings, catalogue, database and backends, built once per process (CLI call or server)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from grader.backends import get_backend
from grader.entrypoints import worker_argv
from grader.rundir import atomic_write_text
from grader.settings import Settings

if TYPE_CHECKING:  # SQLAlchemy, NumPy and the spec models are imported only by the paths that need them
    from sqlalchemy import Engine

    from grader.backends.base import Backend
    from grader.datasets import HeldOutLabels
    from grader.db.reads import Reader
    from grader.specs.catalog import ExerciseCatalog
    from grader.specs.exercise import ExerciseSpec


@dataclass
class Context:
    """What every use case needs; identity is not here (see grader.service.access.Actor)."""

    settings: Settings = field(default_factory=Settings)
    spawn_workers: bool = True  # embedded mode; a server runs the loop in-process instead
    _backends: dict[str, Backend] = field(default_factory=dict, repr=False)
    _labels: dict[tuple[str, str, str], HeldOutLabels] = field(default_factory=dict, repr=False)

    @cached_property
    def catalog(self) -> ExerciseCatalog:
        from grader.specs.catalog import ExerciseCatalog

        return ExerciseCatalog(self.settings.resolved_course_dir)

    @cached_property
    def engine(self) -> Engine:
        """Writes: one short IMMEDIATE transaction each (SQLite), so concurrent writers queue instead of failing."""
        from grader.db.engine import make_engine

        return make_engine(self.settings.resolved_db_url)

    @cached_property
    def reader(self) -> Engine:
        """ORM reads: deferred transactions, never the write lock, so readers run beside ingestion (WAL)."""
        from grader.db.engine import reader

        return reader(self.engine)

    @cached_property
    def reads(self) -> Reader:
        """The plain-SQL read side (grader.db.reads): no SQLAlchemy import on SQLite, a read-only connection."""
        from grader.db.reads import Reader

        url = self.settings.resolved_db_url
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
            self.engine  # noqa: B018  (a fresh home: create the database once)
        reads = Reader(url)
        if not reads.current():
            reads.close()
            self.engine  # noqa: B018  (opening it for writing brings the schema up to date, once)
            reads = Reader(url)
        return reads

    def close(self) -> None:
        """Close the read side's connections (a server shutting down); used again, it opens new ones."""
        reads = self.__dict__.get("reads")
        if reads is not None:
            reads.close()

    @property
    def queue_key(self) -> str:
        """One local queue (and worker) per database, so a worker never ingests into another database."""
        return hashlib.sha256(self.settings.resolved_db_url.encode()).hexdigest()[:12]

    def backend(self, name: str | None = None) -> Backend:
        name = name or self.settings.backend
        if name not in self._backends:
            self._backends[name] = get_backend(name, self.settings, queue=self.queue_key,
                                               start_worker=self.start_worker if self.spawn_workers else None)
        return self._backends[name]

    def ensure_worker(self) -> bool:
        """Embedded mode: make sure the background loop runs while anything is in flight (a process, not a write)."""
        from grader.backends.local import LocalBackend

        local = self.backend("local")
        return isinstance(local, LocalBackend) and local.ensure_worker()

    def worker_settings_file(self) -> Path:
        return self.settings.home.expanduser().resolve() / "local-queue" / self.queue_key / "worker-settings.json"

    def start_worker(self) -> list[str]:
        """argv of the background worker, handed these resolved settings (not just GRADER_HOME)."""
        path = self.worker_settings_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, self.settings.model_dump_json())
        os.chmod(path, 0o600)
        return worker_argv(path)

    def labels(self, spec: ExerciseSpec, profile: str) -> HeldOutLabels:
        """The answer key for a spec and profile, built once per process (not on every ingest)."""
        from grader.datasets import heldout_labels

        key = (spec.name, spec.spec_hash(), profile)
        if key not in self._labels:
            self._labels[key] = heldout_labels(spec, profile, self.settings)
        return self._labels[key]
