"""`grader doctor`: which sandbox layers, data, database and backend are active here, and why not."""

from __future__ import annotations

import sys

import typer

from grader.cli.common import context
from grader.cli.render import console, table


def doctor(ctx: typer.Context) -> None:
    """Report the sandbox layers, datasets, database and backend in use."""
    from grader.datasets import dataset_status
    from grader.sandbox import detect_isolation

    c = context(ctx)
    s = c.settings
    iso = detect_isolation(s.isolation)
    ok, no = "[green]active[/]", "[yellow]inactive[/]"
    rows = [
        ["separate process + own session", ok, "wall-clock timeout with SIGKILL, output capped"],
        ["rlimits", ok, "CPU time, address space, file size, open files"],
        ["scrubbed environment", ok, "HOME inside the run dir; no GRADER_* paths"],
        ["subreaper (no surviving children)", ok if iso.subreaper else no, "prctl(PR_SET_CHILD_SUBREAPER)"],
        ["namespaces", ok if iso.namespaces != "none" else no, iso.namespaces_detail],
        ["cgroups", ok if iso.cgroup else no, iso.cgroup_detail],
        ["held-out labels outside the job", ok, "jobs get training arrays and held-out images only"],
    ]
    console.print(table("Sandbox layers", ["layer", "state", "detail"], rows))
    data = dataset_status(s)
    console.print(table(f"Data ({s.resolved_data_dir})", ["dataset", "state"],
                        [[d.name, "[green]present[/]" if d.present else "[yellow]missing[/] (smoke profile still works)"]
                         for d in data]))
    try:
        backend = c.backend().describe()
    except Exception as exc:  # doctor reports problems, it does not stop at them
        backend = f"[red]unavailable[/]: {exc}"
    console.print(f"course: {s.resolved_course_dir}")
    console.print(f"database: {s.resolved_db_url}")
    console.print(f"backend: {backend}")
    console.print(f"python: {sys.executable}")


def register(app: typer.Typer) -> None:
    app.command()(doctor)
