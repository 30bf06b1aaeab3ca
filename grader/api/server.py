"""`grader serve`: refuse to run unsafely, make the state private, then serve the API, pages and loop."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from grader.errors import GraderError
from grader.settings import Settings

log = logging.getLogger("grader.serve")


def private_state(settings: Settings) -> list[str]:
    """The state folder 0700 and the SQLite database 0600: participants on the machine read nothing."""
    home = settings.home.expanduser()
    home.mkdir(parents=True, exist_ok=True)
    fixed = []
    for path, mode in ((home, 0o700), (home / "grader.db", 0o600)):
        if path.exists() and stat.S_IMODE(path.stat().st_mode) != mode:
            os.chmod(path, mode)
            fixed.append(f"{path}: mode set to {mode:o}")
    return fixed


def check_isolation(settings: Settings) -> str:
    """A server runs strangers' code: without a filesystem view it refuses, unless explicitly allowed."""
    from grader.sandbox import detect_isolation

    iso = detect_isolation(settings.isolation, settings.landlock)
    if iso.filesystem_view:
        return f"sandbox: {iso.namespaces} namespaces, Landlock ABI {iso.landlock_abi}"
    if settings.allow_unisolated_jobs:
        log.warning("jobs will run WITHOUT a filesystem view: any submission can read every file of this account")
        return "sandbox: NO filesystem view (allow_unisolated_jobs = true)"
    raise GraderError("refusing to serve: jobs would run without a filesystem view, so any submission could read "
                      f"the database and the held-out labels ({iso.namespaces_detail}; {iso.landlock_detail})",
                      hint="install bubblewrap (apt-get install bubblewrap) or use a kernel with Landlock; or set "
                      "allow_unisolated_jobs = true in the server's config for a class you trust")


def run_server(settings: Settings, *, host: str, port: int, loop_seconds: float = 2.0) -> None:
    import uvicorn

    from grader.api.app import create_app
    from grader.service.accounts import has_instructor
    from grader.service.context import Context

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.server:
        raise GraderError("GRADER_SERVER is set: this shell is a client of another server, not the server itself",
                          hint="unset GRADER_SERVER (and `grader logout`) in the server's own environment")
    sandbox = check_isolation(settings)
    for line in private_state(settings):
        log.info(line)
    os.umask(0o077)  # everything the server writes (runs, store, queue) is private to its account
    ctx = Context(settings=settings, spawn_workers=False)
    ctx.engine  # noqa: B018  (create and migrate the database before the first request)
    private_state(settings)
    if not has_instructor(ctx):
        log.warning("no instructor account yet: on this machine, as this account, run "
                    "`grader accounts add NAME --instructor` and keep the token it prints")
    log.info("%s; database %s; course %s", sandbox, settings.resolved_db_url, settings.resolved_course_dir)
    log.info("serving on http://%s:%d (put TLS in front of it with a reverse proxy)", host, port)
    uvicorn.run(create_app(ctx, loop_seconds=loop_seconds), host=host, port=port, log_level="info",
                proxy_headers=True, forwarded_allow_ips="127.0.0.1", timeout_graceful_shutdown=5)


def database_path(settings: Settings) -> Path | None:
    url = settings.resolved_db_url
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None
