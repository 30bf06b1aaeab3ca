"""Shared pytest options and fixtures."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# ---------------------------------------------------------------------------------------------
# Golden files (added with the Slurm builders; usable by any golden test, e.g. sandbox commands).
# `pytest --update-goldens` rewrites tests/goldens/ from the current output instead of comparing.
# ---------------------------------------------------------------------------------------------
GOLDENS = Path(__file__).resolve().parent / "goldens"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite the golden files under tests/goldens/ from the current output instead of comparing",
    )


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """`golden("slurm/x.sh", text)`: compare text with tests/goldens/slurm/x.sh (or rewrite it)."""
    update = bool(request.config.getoption("--update-goldens"))

    def check(name: str, actual: str) -> None:
        path = GOLDENS / name
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual, encoding="utf-8")
            return
        if not path.exists():
            pytest.fail(f"golden file {path} is missing; create it with: pytest {request.node.nodeid} --update-goldens")
        expected = path.read_text(encoding="utf-8")
        assert actual == expected, (
            f"output differs from golden file {path}; if the change is intended, run "
            f"`pytest {request.node.nodeid} --update-goldens` and commit the new file"
        )

    return check


# ---------------------------------------------------------------------------------------------
# The CLI's command servers (grader/cli/command_server.py): the read commands the tests run start one; it
# lives in this run's own runtime folder and stops with the run instead of idling on for 15 minutes.
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session", autouse=True)
def command_server_runtime() -> Iterator[Path]:
    import shutil
    import tempfile

    from grader.cli.command_client import stop_servers

    folder = Path(tempfile.mkdtemp(prefix="grader-run-"))  # short: a socket's path must fit in 108 bytes
    previous = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(folder)
    yield folder
    stop_servers(str(folder))
    shutil.rmtree(folder, ignore_errors=True)
    if previous is None:
        os.environ.pop("XDG_RUNTIME_DIR", None)
    else:
        os.environ["XDG_RUNTIME_DIR"] = previous


# ---------------------------------------------------------------------------------------------
# grader state: every test gets its own GRADER_HOME (database, runs, queue) under tmp_path.
# ---------------------------------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def grader_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Isolated state folder; the course (exercises/, rubrics/) is the repository's own."""
    home = tmp_path / "grader-home"
    monkeypatch.setenv("GRADER_HOME", str(home))
    monkeypatch.setenv("GRADER_COURSE_DIR", str(REPO))
    monkeypatch.setenv("GRADER_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("COLUMNS", "200")
    return home


@pytest.fixture
def settings(grader_home: Path):  # -> grader.settings.Settings (imported lazily)
    from grader.settings import Settings

    return Settings()


# ---------------------------------------------------------------------------------------------
# Databases: the service, API and migration suites run on SQLite and on PostgreSQL.
# PostgreSQL needs GRADER_TEST_POSTGRES, an SQLAlchemy URL of a role that may create databases
# (.ci/run starts Debian's postgresql on 127.0.0.1 and sets it); each test gets its own database.
# ---------------------------------------------------------------------------------------------
POSTGRES_ENV = "GRADER_TEST_POSTGRES"


def _fresh_postgres(name: str) -> str:
    import sqlalchemy

    base = os.environ[POSTGRES_ENV]
    admin = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return str(sqlalchemy.engine.make_url(base).set(database=name).render_as_string(hide_password=False))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'grader.db'}"
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"PostgreSQL not configured: set {POSTGRES_ENV} to a URL like "
                    "postgresql+psycopg://grader:grader@127.0.0.1/grader_test (.ci/run does)")
    import re

    return _fresh_postgres("t_" + re.sub(r"[^a-z0-9]", "_", request.node.name.lower())[:50])
