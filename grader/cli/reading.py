"""`grader status|show|history|cancel|leaderboard`: read (never write, never train), with --json."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from grader.cli.common import client
from grader.errors import NotFoundError

if TYPE_CHECKING:  # rich, the rendering helpers and the service's models are imported by the commands that use them
    from rich.text import Text

    from grader.service.submissions import StatusRow

ProfileOpt = Annotated[str | None, typer.Option("--profile", "-p", help="Profile (default from settings).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON (schema: docs/json.md).")]


def _detail(r: StatusRow) -> Text:
    from rich.text import Text

    from grader.cli.render import untrusted

    if r.cached_from:
        return Text(f"cached from {r.cached_from}")
    if r.queue_position:
        return Text(f"#{r.queue_position} in queue")
    if r.reason:
        return Text(r.reason.value)
    if r.scheduler_reason and r.state.active:
        return untrusted(r.scheduler_reason, 80)
    return Text("")


def _score(r: StatusRow) -> str:
    return "-" if r.score is None or r.max_score is None else f"{r.score:g}/{r.max_score:g}"


def _rows_table(title: str, rows: list[StatusRow]) -> None:
    from grader.cli.render import Col, cell, console, fit, pct, state

    data = [[r.id, cell(r.participant), r.exercise, r.profile, cell(r.filename), state(r.state.value), _detail(r),
             _score(r), pct(r.public_accuracy, std=r.public_std), r.created_at.strftime("%m-%d %H:%M")] for r in rows]
    console.print(fit(title, [Col("id", keep=True, justify="right"), Col("participant", priority=3, wrap=True),
                              Col("exercise", priority=6), Col("profile", priority=2), Col("file", priority=4,
                                                                                          wrap=True),
                              Col("state", keep=True), Col("detail", priority=5, wrap=True),
                              Col("score", keep=True, justify="right"), Col("public acc", priority=7,
                                                                            justify="right"),
                              Col("submitted", priority=1)], data))


def status(ctx: typer.Context, submission_id: Annotated[int | None, typer.Argument(help="One submission.")] = None,
           everyone: Annotated[bool, typer.Option("--all", help="Everyone's submissions (instructors).")] = False,
           student: Annotated[str | None, typer.Option("--student", help="A participant's submissions "
                                                        "(instructors).")] = None,
           as_json: JsonOpt = False) -> None:
    """Your submissions with their state, queue position and score, and your remaining quota."""
    from grader.cli.render import console, emit_json, untrusted

    view = client(ctx).status(submission_id=submission_id, everyone=everyone, student=student)
    if as_json:
        emit_json(view)
        return
    _rows_table("Submissions", view.rows)
    if not view.rows:
        console.print("[dim]no submissions yet: grader submit FILE -e EXERCISE[/]")
    for ex, q in view.quotas.items():
        if q.limit is not None:
            when = f"; next slot {q.next_slot_at:%Y-%m-%d %H:%M} UTC" if q.next_slot_at else ""
            console.print(f"{ex}: {q.remaining} of {q.limit} submissions left{when}")
    if submission_id is not None and view.rows and view.rows[0].message:
        from rich.text import Text

        console.print(Text("✗ ", style="red") + untrusted(view.rows[0].message, 2000))


def show(ctx: typer.Context, submission_id: Annotated[int, typer.Argument(help="Submission id.")],
         as_json: JsonOpt = False) -> None:
    """One submission's full feedback: score per criterion, diagnostics, per-class accuracy."""
    from grader.cli.feedback import render_detail
    from grader.cli.render import emit_json

    detail = client(ctx).show(submission_id)
    if as_json:
        emit_json(detail)
        return
    render_detail(detail)


def history(ctx: typer.Context,
            student: Annotated[str | None, typer.Option("--student", help="Participant (instructors).")] = None,
            exercise: Annotated[str | None, typer.Option("--exercise", "-e", help="One exercise.")] = None,
            as_json: JsonOpt = False) -> None:
    """Every submission of a participant (default: you; instructors: everyone), newest first."""
    from grader.cli.render import emit_json

    rows = client(ctx).history(student=student, exercise=exercise)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        raise NotFoundError("no submissions" + (f" for {exercise}" if exercise else "")
                            + (f" by {student}" if student else ""))
    _rows_table("History", rows)


def cancel(ctx: typer.Context, submission_id: Annotated[int, typer.Argument(help="Submission id.")]) -> None:
    """Cancel a queued or running submission (it does not count against your quota)."""
    from grader.cli.render import console

    result = client(ctx).cancel(submission_id)
    console.print(result.message)


def leaderboard(ctx: typer.Context,
                exercise: Annotated[str | None, typer.Option("--exercise", "-e", help="One exercise.")] = None,
                all_: Annotated[bool, typer.Option("--all", help="Every exercise.")] = False,
                private: Annotated[bool, typer.Option("--private", help="Private half (instructors).")] = False,
                profile: ProfileOpt = None,
                top: Annotated[int | None, typer.Option("--top", min=1, help="Only the first N participants "
                                                        "(reference rows are always shown).")] = None,
                html: Annotated[str | None, typer.Option("--html", help="Write a self-contained HTML page to this "
                                                         "file instead.")] = None,
                as_json: JsonOpt = False) -> None:
    """Best submission per participant, ranked, with baseline and reference rows in place."""
    from rich.text import Text

    from grader.cli.render import Col, cell, console, emit_json, fit, num, pct

    c = client(ctx)
    names = [e.name for e in c.exercises()] if all_ or exercise is None else [exercise]
    boards = [c.leaderboard(exercise=name, profile=profile, private=private, top=top) for name in names]
    if html is not None:
        from grader.web.pages import leaderboard_html

        for lb in boards:
            path = html if len(boards) == 1 else html.replace(".html", f"-{lb.exercise}.html")
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(leaderboard_html(lb, top=top))
            console.print(f"[green]✓[/] wrote {path}")
        return
    if as_json:
        emit_json(boards[0] if exercise and not all_ else boards)
        return
    for lb in boards:
        cols = [Col("rank", keep=True, justify="right"), Col("±", keep=True, justify="right"),
                Col("participant", keep=True, wrap=True), Col(f"{lb.board} acc", keep=True, justify="right"),
                Col("Δ base", priority=6, justify="right"), Col("Δ best", priority=3, justify="right"),
                Col("score", priority=7, justify="right"), Col("params", priority=5, justify="right"),
                Col("epochs", priority=2, justify="right"), Col("time s", priority=1, justify="right"),
                Col("subs", priority=4, justify="right"), Col("last", priority=0)]
        rows = []
        for r in lb.rows:
            ref = r.row.reference_name is not None
            name = Text(r.row.participant[:80], style="italic cyan") if ref else cell(r.row.participant)
            rank = "" if r.rank is None else (f"≈{r.rank}" if r.within_noise else str(r.rank))
            rows.append([rank, "" if r.rank_change is None else f"{r.rank_change:+d}", name,
                         pct(r.accuracy, std=r.std), pct(r.delta_baseline, True), pct(r.delta_best_reference, True),
                         "-" if r.row.score is None or r.row.max_score is None else f"{r.row.score:g}/"
                         f"{r.row.max_score:g}", num(r.row.params), num(r.row.epochs),
                         num(r.row.wall_seconds or r.row.fit_seconds, "{:.1f}"), "" if ref else r.row.n_submissions,
                         "" if ref or r.row.last_submitted is None else r.row.last_submitted.strftime("%m-%d %H:%M")])
        if not private:
            cols.pop(1)
            for row in rows:
                row.pop(1)
        console.print(fit(f"Leaderboard: {lb.exercise} ({lb.profile}, {lb.board} half)", cols, rows))
        if not lb.rows:
            console.print("[dim]no graded submissions yet[/]")
        elif any(r.within_noise for r in lb.rows):
            console.print(f"[dim]≈: within seed noise of the rank above{f' (±{lb.noise:.1%})' if lb.noise else ''}"
                          "[/]")


def register(app: typer.Typer) -> None:
    for fn in (status, show, history, cancel):
        app.command()(fn)
    app.command("leaderboard")(leaderboard)
