"""`python -m grader.service.worker`: the local backend's detached worker; ingests each job at once."""

from __future__ import annotations

import sys

from grader.backends.local import run_worker
from grader.service.context import Context
from grader.service.sync import sync


def main() -> int:
    ctx = Context()

    def finished(_job_id: str) -> None:
        sync(ctx)

    run_worker(ctx.settings, on_finished=finished)
    sync(ctx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
