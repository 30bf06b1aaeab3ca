"""`grader doctor`: which sandbox layers, data, database and backend are active here, and why not.

Every claim here is checked on this machine: the Landlock row runs a confined probe that tries to
read the bundled held-out labels; the state folder's permissions are read from disk.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path
from typing import Annotated

import typer

from grader.cli.common import settings

ACTIVE, INACTIVE = "active", "inactive"


def _perm_problems(home: Path, db_url: str) -> list[str]:
    problems = []
    targets = [home]
    if db_url.startswith("sqlite:///"):
        targets.append(Path(db_url.removeprefix("sqlite:///")))
    for path in targets:
        try:
            mode = path.stat().st_mode
        except OSError:
            continue
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            problems.append(f"{path} is readable by others (mode {stat.S_IMODE(mode):o}): chmod go-rwx {path}")
    return problems


def _command_server() -> str:
    from grader.cli import command_client
    from grader.cli.launch import server_wanted

    if not server_wanted():
        return "off (GRADER_COMMAND_SERVER)" if sys.platform.startswith("linux") else "not used (Linux only)"
    return command_client.describe()


def doctor(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Report the sandbox layers, datasets, database and backend in use (exit 1 if jobs would run unisolated)."""
    from rich.text import Text

    from grader.cli.doctor_report import DoctorReport, Layer
    from grader.cli.render import Col, console, emit_json, fit
    from grader.datasets import dataset_status
    from grader.sandbox import detect_isolation
    from grader.sandbox.isolation import probe_landlock
    from grader.settings import SAMPLES_DIR

    s = settings(ctx)
    iso = detect_isolation(s.isolation, s.landlock)
    hidden, probe_detail = probe_landlock(SAMPLES_DIR / "mnist.npz") if s.landlock else (False, "disabled")
    landlock_ok = iso.landlock_abi > 0 and hidden
    view = iso.namespaces == "bwrap" or landlock_ok
    layers = [Layer(**row) for row in [
        {"layer": "separate process + own session", "active": True, "detail": "wall-clock and start-up limits with "
         "SIGKILL, output capped"},
        {"layer": "rlimits", "active": True, "detail": "CPU time, address space, file size, open files"},
        {"layer": "scrubbed environment", "active": True, "detail": "HOME in the job's scratch folder; no GRADER_* "
         "paths"},
        {"layer": "supervisor writes the run directory", "active": True, "detail": "the job sends frames; links, "
         "FIFOs and overwrites are impossible; output quota enforced"},
        {"layer": "subreaper (no surviving children)", "active": iso.subreaper, "detail": "prctl(PR_SET_CHILD_SUBREAPER)"},
        {"layer": "namespaces", "active": iso.namespaces != "none", "detail": iso.namespaces_detail},
        {"layer": "Landlock", "active": landlock_ok, "detail": f"{iso.landlock_detail}; {probe_detail}"},
        {"layer": "network blocked", "active": bool(iso.network_blocked), "detail": iso.network_blocked or
         "no network isolation: a job could reach the network"},
        {"layer": "cgroups", "active": iso.cgroup, "detail": iso.cgroup_detail},
        {"layer": "held-out labels outside the job", "active": view,
         "detail": ("jobs see training arrays and held-out images only; labels, database and other runs are outside "
                    "their view") if view else
         "NO filesystem view: a job can read the bundled labels, the database and other runs (install bubblewrap: "
         "apt-get install bubblewrap; or use a kernel with Landlock)"},
    ]]
    perms = _perm_problems(s.home.expanduser(), s.resolved_db_url)
    data = {d.name: d.present for d in dataset_status(s)}
    try:
        from grader.service.context import Context

        backend = Context(settings=s).backend().describe()
    except Exception as exc:  # doctor reports problems, it does not stop at them
        backend = f"unavailable: {exc}"
    report = DoctorReport(layers=layers, filesystem_view=view, permissions=perms, datasets=data,
                          course=str(s.resolved_course_dir), database=s.resolved_db_url, backend=backend,
                          server=s.server, python=sys.executable, command_server=_command_server())
    if as_json:
        emit_json(report)
    else:
        console.print(fit("Sandbox layers", [Col("layer", keep=True, wrap=True), Col("state", keep=True),
                                             Col("detail", keep=True, wrap=True)],
                          [[r.layer, Text(ACTIVE, style="green") if r.active else Text(INACTIVE, style="yellow"),
                            r.detail] for r in layers]))
        console.print(fit(f"Data ({s.resolved_data_dir})", [Col("dataset", keep=True), Col("state", keep=True)],
                          [[name, "present" if present else "missing (the smoke profile still works)"]
                           for name, present in data.items()]))
        for problem in perms:
            console.print(Text("warning: ", style="yellow") + Text(problem))
        for label, value in (("course", report.course), ("database", report.database), ("backend", backend),
                             ("python", sys.executable), ("command server", report.command_server)):
            console.print(f"{label}: {value}", soft_wrap=True)
    if not view:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(doctor)
