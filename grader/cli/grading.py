"""`grader status|cancel|sync|leaderboard|show|history|regrade`: read and reconcile; never trains."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from grader.cli.common import context
from grader.cli.render import console, num, pct, render_grade, state, table

ProfileOpt = Annotated[str | None, typer.Option("--profile", "-p", help="Profile (default from settings).")]


def status(ctx: typer.Context, submission_id: Annotated[int | None, typer.Argument(help="One submission.")] = None,
           everyone: Annotated[bool, typer.Option("--all", help="Everyone's submissions (instructors).")] = False,
           student: Annotated[str | None, typer.Option(help="A participant's submissions (instructors).")] = None) -> None:
    """Show submissions with their state, queue position and score, and your remaining quota."""
    from grader.service.board import status as get_status

    view = get_status(context(ctx), submission_id=submission_id, everyone=everyone, student=student)
    for w in view.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    rows = []
    for r in view.rows:
        where = f"#{r.queue_position} in queue" if r.queue_position else (r.scheduler_reason or "")
        detail = r.reason or where
        if r.cached_from:
            detail = f"cached from {r.cached_from}"
        rows.append([r.id, r.participant, r.exercise, r.profile, r.filename, state(r.state), detail,
                     "-" if r.score is None else f"{r.score:g}/{r.max_score:g}", pct(r.public_accuracy),
                     r.created_at.strftime("%m-%d %H:%M")])
    console.print(table("Submissions", ["id", "participant", "exercise", "profile", "file", "state", "detail", "score",
                                        "public acc", "submitted"], rows))
    for ex, q in view.quotas.items():
        if q.limit is not None:
            when = f"; next slot {q.next_slot_at:%Y-%m-%d %H:%M} UTC" if q.next_slot_at else ""
            console.print(f"{ex}: {q.remaining} of {q.limit} submissions left{when}")
    failed = [r for r in view.rows if r.state == "failed" and r.message]
    if submission_id is not None and failed:
        console.print(f"[red]{failed[0].message}[/]", highlight=False)


def cancel(ctx: typer.Context, submission_id: Annotated[int, typer.Argument(help="Submission id.")]) -> None:
    """Cancel a queued or running submission."""
    from grader.service.board import cancel as do_cancel

    console.print(do_cancel(context(ctx), submission_id))


def sync(ctx: typer.Context) -> None:
    """Reconcile active jobs with their backend and ingest finished runs."""
    from grader.service.sync import sync as do_sync

    report = do_sync(context(ctx))
    for w in report.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    console.print(f"polled {report.polled}, ingested {len(report.ingested)}, requeued {len(report.requeued)}")


def leaderboard(ctx: typer.Context,
                exercise: Annotated[str | None, typer.Option("--exercise", "-e", help="One exercise.")] = None,
                all_: Annotated[bool, typer.Option("--all", help="Every exercise.")] = False,
                private: Annotated[bool, typer.Option("--private", help="Private half (instructors).")] = False,
                profile: ProfileOpt = None,
                top: Annotated[int | None, typer.Option("--top", min=1, help="Only the first N participants "
                                                        "(reference rows are always shown).")] = None) -> None:
    """Best submission per participant, ranked, with baseline and reference rows in place."""
    from grader.service.board import leaderboard as board

    c = context(ctx)
    names = c.catalog.names() if all_ or exercise is None else [exercise]
    for i, name in enumerate(names):
        lb = board(c, exercise=name, profile=profile, private=private, do_sync=i == 0)
        cols = ["rank", "participant", f"{lb.board} acc", "Δ baseline", "Δ best ref", "score", "params", "epochs",
                "fit s", "subs", "last"]
        if private:
            cols.insert(1, "±")
        rows = []
        for r in lb.rows:
            ref = r.row.reference_name is not None
            if top is not None and not ref and (r.rank or 0) > top:
                continue
            name_cell = f"[italic cyan]{escape(r.row.participant)}[/]" if ref else escape(r.row.participant)
            row = [r.rank or "", name_cell, pct(r.accuracy), pct(r.delta_baseline, True), pct(r.delta_best_reference, True),
                   "-" if r.row.score is None else f"{r.row.score:g}/{r.row.max_score:g}", num(r.row.params),
                   num(r.row.epochs), num(r.row.fit_seconds, "{:.1f}"), "" if ref else r.row.n_submissions,
                   "" if ref or r.row.last_submitted is None else r.row.last_submitted.strftime("%m-%d %H:%M")]
            if private:
                row.insert(1, "" if r.rank_change is None else f"{r.rank_change:+d}")
            rows.append(row)
        console.print(table(f"Leaderboard: {name} ({lb.profile} profile, {lb.board} half)", cols, rows))
        if not lb.rows:
            console.print("[dim]no graded submissions yet[/]")


def show(ctx: typer.Context, submission_id: Annotated[int, typer.Argument(help="Submission id.")]) -> None:
    """One submission's full feedback: score per criterion, diagnostics, per-class accuracy."""
    from grader.service.board import show as get

    d = get(context(ctx), submission_id)
    st = d.status
    console.print(f"[bold]submission {st.id}[/] by {st.participant}: {st.filename} on {st.exercise}/{st.profile} "
                  f"→ {state(st.state)}" + (f" ({st.reason})" if st.reason else ""))
    if st.cached_from:
        console.print(f"[dim]answered from the stored result of submission {st.cached_from}[/]")
    if st.message:
        console.print(f"[red]{st.message}[/]", highlight=False)
    jr = d.job_result or {}
    if jr.get("params"):
        console.print(f"{jr['params']:,} parameters, {jr.get('epochs')} epochs × batch {jr.get('batch_size')}, "
                      f"optimizer {jr.get('optimizer')} (lr {jr.get('learning_rate')}), loss {jr.get('loss')}")
    gpu = {k: v for k, v in (jr.get("gpu") or {}).items() if v and k != "tf_gpus"}
    if gpu or jr.get("scheduler_job_id"):
        where = ", ".join(f"{k}={v}" for k, v in sorted(gpu.items()))
        console.print(f"ran on {jr.get('host')} ({jr.get('backend')}" +
                      (f", Slurm job {jr['scheduler_job_id']}" if jr.get("scheduler_job_id") else "") +
                      (f"; allocation {where}" if where else "") +
                      f"; TensorFlow saw {jr.get('gpu', {}).get('tf_gpus', '0')} GPU)")
    if d.metrics:
        m = d.metrics
        console.print(f"public accuracy {pct(m['public_accuracy'])}, training subset {pct(m['train_accuracy'])}, "
                      f"gap {pct(m['generalization_gap'], True)}")
    render_grade(d.grade)
    if d.metrics:
        console.print(table("Per class", ["class", "accuracy", "images"],
                            [[c["name"], pct(c["accuracy"]), c["support"]] for c in d.metrics["per_class"]]))


def history(ctx: typer.Context, student: Annotated[str | None, typer.Option(help="Participant (instructors).")] = None,
            exercise: Annotated[str | None, typer.Option("--exercise", "-e", help="One exercise.")] = None) -> None:
    """Every submission of a participant (default: you), newest first."""
    from grader.service.board import history as get

    rows = get(context(ctx), student=student, exercise=exercise)
    console.print(table("History", ["id", "participant", "exercise", "profile", "file", "state", "score", "public acc",
                                    "submitted"],
                        [[r.id, r.participant, r.exercise, r.profile, r.filename, state(r.state),
                          "-" if r.score is None else f"{r.score:g}/{r.max_score:g}", pct(r.public_accuracy),
                          r.created_at.strftime("%Y-%m-%d %H:%M")] for r in rows]))


def regrade(ctx: typer.Context, exercise: Annotated[str, typer.Option("--exercise", "-e", help="Exercise.")],
            profile: ProfileOpt = None) -> None:
    """Re-apply the current rubric to stored results (no training)."""
    from grader.service.grade import regrade as do

    n = do(context(ctx), exercise, profile)
    console.print(f"[green]✓[/] regraded {n} result(s) of {exercise}")


def register(app: typer.Typer) -> None:
    for fn in (status, cancel, sync, show, history, regrade):
        app.command()(fn)
    app.command("leaderboard")(leaderboard)
