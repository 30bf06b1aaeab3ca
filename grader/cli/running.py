"""`grader init`, `grader run` (now, no queue, no database), `grader submit` and `grader wait`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from grader.cli.common import client, settings
from grader.errors import GraderError, NotFoundError

if TYPE_CHECKING:
    from grader.client.base import Client
    from grader.settings import Settings

ExerciseOpt = Annotated[str, typer.Option("--exercise", "-e", help="Exercise name (see `grader exercises list`).")]
ProfileOpt = Annotated[str | None, typer.Option("--profile", "-p", help="smoke (bundled sample) or full; default "
                                                "from settings.")]


def init(ctx: typer.Context, exercise: ExerciseOpt,
         output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write.")] = None,
         force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False) -> None:
    """Write a starter file for an exercise."""
    from grader.cli.render import console
    from grader.specs.catalog import ExerciseCatalog

    catalog = ExerciseCatalog(settings(ctx).resolved_course_dir)
    catalog.get(exercise)
    starter = catalog.exercises_dir / exercise / "starter.py"
    if not starter.exists():
        raise NotFoundError(f"exercise {exercise!r} has no starter file ({starter})")
    target = output or Path(f"{exercise}_model.py")
    if target.exists() and not force:
        raise GraderError(f"{target} exists; use --force to overwrite it")
    shutil.copyfile(starter, target)
    console.print(f"[green]✓[/] wrote {target}; edit build_model(), then:")
    console.print(f"  grader submit {target} --exercise {exercise}", soft_wrap=True)


def run(ctx: typer.Context, file: Annotated[Path, typer.Argument(help="Your .py or .ipynb file.")], exercise: ExerciseOpt,
        profile: ProfileOpt = None,
        seed: Annotated[int | None, typer.Option(help="Seed (default: the exercise's).")] = None) -> None:
    """Train and score one file now, in the sandbox, without the queue or the database."""
    from grader.cli.feedback import TrainingProgress, render_run
    from grader.cli.render import console, tip_line, untrusted, warn
    from grader.service.context import Context
    from grader.service.foreground import run_once

    s = settings(ctx)
    if s.server:
        raise GraderError("`grader run` trains on this machine; with a server configured use `grader submit`")
    _warn_without_view(s)
    with TrainingProgress(f"{file.name} on {exercise}/{profile or s.profile}") as bar:
        got = run_once(Context(settings=s), file, exercise=exercise, profile=profile, seed=seed, on_progress=bar.event)
    for w in got.warnings:
        warn(untrusted(w, 500))
    render_run(got.result, got.metrics, got.facts, got.notes)
    for tip in got.tips:
        console.print(tip_line(tip))
    console.print(f"[dim]run directory: {got.run_dir} (seed {got.job.seed})[/]", soft_wrap=True)
    if got.result.outcome.value != "ok":
        raise typer.Exit(1)


def submit(ctx: typer.Context, file: Annotated[Path, typer.Argument(help="Your .py or .ipynb file.")],
           exercise: ExerciseOpt,
           wait: Annotated[bool, typer.Option("--wait", "-w", help="Show progress, then the feedback.")] = False,
           student: Annotated[str | None, typer.Option("--student", help="Submit for this participant "
                                                        "(instructors).")] = None,
           profile: ProfileOpt = None,
           backend: Annotated[str | None, typer.Option("--backend", help="local or slurm (default from "
                                                        "settings).")] = None,
           seeds: Annotated[int | None, typer.Option("--seeds", help="Grade under N seeds: mean ± std "
                                                      "(instructors).")] = None) -> None:
    """Queue a submission for grading; prints its id (or waits and shows the feedback)."""
    from rich.text import Text

    from grader.cli.render import console, state, untrusted, warn

    c = client(ctx)
    if c.mode == "embedded":
        _warn_without_view(settings(ctx))
    receipt = c.submit(file, exercise=exercise, profile=profile, student=student, backend=backend, seeds=seeds)
    for w in receipt.warnings:
        warn(untrusted(w, 500))
    if receipt.references_queued:
        console.print(f"[dim]queued reference runs first: {', '.join(receipt.references_queued)}[/]")
    if receipt.cached_from is not None:
        console.print(f"submission [bold]{receipt.submission_id}[/]: identical to submission {receipt.cached_from} "
                      "(same file, exercise, seed and profile): answered from its stored result, no new job")
    else:
        line = Text("submission ") + Text(str(receipt.submission_id), style="bold") + Text(" ")
        line.append_text(state(receipt.state.value))
        if receipt.seeds:
            line.append(f" (seeds {', '.join(map(str, receipt.seeds))})")
        console.print(line)
    if wait:
        _wait(c, receipt.submission_id)
    elif receipt.state.active:
        console.print("follow it with:")
        console.print(f"  grader wait {receipt.submission_id}", soft_wrap=True)


def _warn_without_view(s: Settings) -> None:
    """Every graded run without a filesystem view says what that means and how to fix it."""
    from grader.cli.render import warn
    from grader.sandbox import detect_isolation

    if not detect_isolation(s.isolation, s.landlock).filesystem_view:
        warn("jobs here run without a filesystem view: a submission can read every file of your account, the "
             "held-out labels included. Fix: apt-get install bubblewrap (or a kernel with Landlock); check: "
             "grader doctor")


def wait(ctx: typer.Context, submission_id: Annotated[int, typer.Argument(help="Submission id.")]) -> None:
    """Follow a submission live (queue position, epochs), then show its feedback."""
    _wait(client(ctx), submission_id)


def _wait(c: Client, submission_id: int) -> None:
    from grader.cli.feedback import TrainingProgress, render_detail
    from grader.cli.render import err_console

    try:
        with TrainingProgress(f"submission {submission_id}") as bar:
            for event in c.follow(submission_id):
                bar.event(event)
    except KeyboardInterrupt:
        err_console.print(f"\nstopped waiting; submission {submission_id} keeps running. Follow it again with:")
        err_console.print(f"  grader wait {submission_id}", soft_wrap=True)
        err_console.print(f"or stop it with:\n  grader cancel {submission_id}", soft_wrap=True)
        raise typer.Exit(130) from None
    detail = c.show(submission_id)
    render_detail(detail)
    if detail.status.state.value != "done":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(run)
    app.command()(submit)
    app.command()(wait)
