"""The processes grader starts, named once: module names and the argv that starts each.

    python -m grader.sandbox RUN_DIR          the supervisor (every backend runs it on its worker)
    python -m grader.job RUN_DIR              the job, started only by the supervisor, in the sandbox
    python -m grader.service.worker SETTINGS  the embedded mode's background loop (runs local jobs,
                                              reconciles every backend, ingests), handed resolved settings
    python -P -m grader.cli.command_server SOCKET
                                              a user's warm command server for read commands
                                              (-P: nothing importable from the folder it was started in)
Modules refer to one another here by name only, so no import arrow runs against the layers.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the command-line launcher imports this module before anything else: standard library only
    from pathlib import Path

SUPERVISOR = "grader.sandbox"
JOB = "grader.job"
WORKER = "grader.service.worker"
COMMAND_SERVER = "grader.cli.command_server"


def module_argv(module: str, *args: str, python: str | None = None) -> list[str]:
    return [python or sys.executable, "-m", module, *args]


def supervisor_argv(run_dir: Path | str, python: str | None = None) -> list[str]:
    return module_argv(SUPERVISOR, str(run_dir), python=python)


def job_argv(run_dir: Path | str, python: str | None = None) -> list[str]:
    return module_argv(JOB, str(run_dir), python=python)


def worker_argv(settings_file: Path | str, python: str | None = None) -> list[str]:
    return module_argv(WORKER, str(settings_file), python=python)


def command_server_argv(socket_path: str) -> list[str]:
    return [sys.executable, "-P", "-m", COMMAND_SERVER, socket_path]
