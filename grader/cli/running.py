"""`grader init`, `grader run` (no database) and `grader submit`."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from grader.cli.common import context
from grader.cli.render import TrainingProgress, console, render_grade, render_result_summary, state
from grader.errors import GraderError, NotFoundError

if TYPE_CHECKING:
    from grader.service.context import Context

ExerciseOpt = Annotated[str, typer.Option("--exercise", "-e", help="Exercise name (see `grader exercises list`).")]
ProfileOpt = Annotated[str | None, typer.Option("--profile", "-p", help="smoke (bundled sample) or full; default from settings.")]


def init(ctx: typer.Context, exercise: ExerciseOpt,
         output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write.")] = None,
         force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False) -> None:
    """Write a starter file for an exercise."""
    c = context(ctx)
    c.catalog.get(exercise)
    starter = c.catalog.exercises_dir / exercise / "starter.py"
    if not starter.exists():
        raise NotFoundError(f"exercise {exercise!r} has no starter file ({starter})")
    target = output or Path(f"{exercise}_model.py")
    if target.exists() and not force:
        raise GraderError(f"{target} exists; use --force to overwrite it")
    shutil.copyfile(starter, target)
    console.print(f"[green]✓[/] wrote {target}; edit build_model(), then: grader submit {target} --exercise {exercise}")


def run(ctx: typer.Context, file: Annotated[Path, typer.Argument(help="Your .py or .ipynb file.")], exercise: ExerciseOpt,
        profile: ProfileOpt = None,
        seed: Annotated[int | None, typer.Option(help="Seed (default: the exercise's).")] = None) -> None:
    """Train and score one file now, in the sandbox, without the queue or the database."""
    from grader.service.runs import ingest, prepare_run, run_foreground
    from grader.submission import read_submission

    c = context(ctx)
    spec = c.catalog.get(exercise)
    profile = profile or c.settings.profile
    spec.profile(profile)
    source, info = read_submission(file, spec)
    for w in info.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    run_dir, job = prepare_run(source, info.sha256, spec, profile, seed, c.settings)
    with TrainingProgress(f"{file.name} on {exercise}/{profile}") as bar:
        run_foreground(run_dir, bar.event)
    got = ingest(run_dir, spec, profile, c.settings)
    render_result_summary(got.result, got.metrics)
    if got.metrics is not None:
        from grader.grading import References, diagnose

        for tip in diagnose(got.result, got.metrics, spec, References()):
            console.print(f"  • {tip}", highlight=False)
    console.print(f"[dim]run directory: {run_dir.path} (seed {job.seed})[/]")
    if got.result.outcome != "ok":
        raise typer.Exit(1)


def submit(ctx: typer.Context, file: Annotated[Path, typer.Argument(help="Your .py or .ipynb file.")], exercise: ExerciseOpt,
           wait: Annotated[bool, typer.Option("--wait", "-w", help="Show progress, then the feedback.")] = False,
           student: Annotated[str | None, typer.Option(help="Submit for this participant (instructors).")] = None,
           profile: ProfileOpt = None,
           backend: Annotated[str | None, typer.Option(help="local or slurm (default from settings).")] = None) -> None:
    """Queue a submission for grading; prints its id (or waits and shows the feedback)."""
    from grader.service.submit import submit as do_submit

    c = context(ctx)
    receipt = do_submit(c, file, exercise=exercise, profile=profile, student=student, backend=backend)
    for w in receipt.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    if receipt.references_queued:
        console.print(f"[dim]queued reference runs first: {', '.join(receipt.references_queued)}[/]")
    if receipt.cached_from is not None:
        console.print(f"submission [bold]{receipt.submission_id}[/]: identical to submission {receipt.cached_from} "
                      "(same file, exercise, seed and profile): answered from its stored result, no new job")
    else:
        console.print(f"submission [bold]{receipt.submission_id}[/] {state('queued')}")
    if wait:
        _wait(c, receipt.submission_id, Path(receipt.run_dir) if receipt.run_dir else None)
    elif receipt.cached_from is None:
        console.print(f"follow it with: grader status {receipt.submission_id}")


def _wait(c: Context, submission_id: int, run_dir: Path | None) -> None:
    from grader.rundir import RunDir
    from grader.service.board import show, status
    from grader.service.runs import follow_progress

    bar: TrainingProgress | None = None

    def finished() -> bool:
        row = status(c, submission_id=submission_id, limit=1).rows[0]  # status() syncs first
        if bar is not None and row.state == "queued":
            bar.status(f"queued, #{row.queue_position} in line" if row.queue_position else "queued")
        return row.state in ("done", "failed")

    if run_dir is not None and not finished():
        last_check, done = [0.0], [False]

        def done_now() -> bool:
            if time.monotonic() - last_check[0] > 1.5:
                last_check[0] = time.monotonic()
                done[0] = finished()
            return done[0]

        with TrainingProgress(f"submission {submission_id}") as bar:
            bar.status("queued")
            for event in follow_progress(RunDir(run_dir), done_now, poll=0.3):
                bar.event(event)
    detail = show(c, submission_id)
    st = detail.status
    console.print(f"submission {st.id}: {state(st.state)}" + (f" ({st.reason})" if st.reason else ""))
    if st.state == "failed" and st.message:
        console.print(f"[red]{st.message}[/]", highlight=False)
    render_grade(detail.grade)
    if st.state == "failed":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(run)
    app.command()(submit)
