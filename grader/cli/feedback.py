"""How a run and a grade look in the terminal: the live progress bar, the score table, the detail view."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text

from grader.cli.render import Col, console, fit, framed, num, pct, score_style, state, tip_line, untrusted

if TYPE_CHECKING:
    from grader.grading import Score
    from grader.results import Facts, JobResult
    from grader.scoring import Metrics
    from grader.service.detail import SubmissionDetail


class TrainingProgress:
    """A live progress bar fed with the job's progress events (one per epoch) and state changes."""

    def __init__(self, label: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("epochs"),
            TimeRemainingColumn(), TextColumn("{task.fields[stats]}", markup=False), console=console,
            transient=False,
        )
        self.task = self.progress.add_task(label, total=None, stats="starting")

    def __enter__(self) -> TrainingProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def status(self, text: str) -> None:
        self.progress.update(self.task, stats=text)

    def event(self, ev: dict[str, Any]) -> None:
        kind = ev.get("event")
        if kind == "state":
            if ev.get("state") == "queued":
                pos = ev.get("queue_position")
                self.status(f"queued, #{pos} in line" if isinstance(pos, int) else "queued")
            elif ev.get("state") == "running":
                self.status("running")
        elif kind == "phase":
            self.status(str(ev.get("phase"))[:40])
            if isinstance(ev.get("epochs"), int):
                self.progress.update(self.task, total=int(ev["epochs"]))
        elif kind == "epoch_start":
            epochs = ev.get("epochs")
            self.progress.update(self.task, total=epochs if isinstance(epochs, int) and epochs > 0 else None,
                                 stats=f"epoch {ev.get('epoch')} running"[:40])
        elif kind == "epoch_end":
            loss, acc, secs = ev.get("loss"), ev.get("accuracy"), ev.get("seconds")
            stats = f"loss {loss:.4f}" if isinstance(loss, float) else "loss nan"
            if isinstance(acc, float):
                stats += f"  acc {acc:.3f}"
            if isinstance(secs, float):
                stats += f"  {secs:.1f}s/epoch"
            epoch = ev.get("epoch")
            self.progress.update(self.task, completed=epoch if isinstance(epoch, int) else 0, stats=stats)
        elif kind == "end":
            self.status(str(ev.get("outcome"))[:20])


def render_grade(grade: Score | None) -> None:
    if grade is None:
        return
    frac = grade.fraction
    colour = score_style(frac) if grade.graded else "magenta"
    title = Text("Score ", style="bold") + Text(f"{grade.total:g} / {grade.max_total:g}", style=colour)
    if not grade.graded:
        title.append(" (could not grade: not your fault)")
    console.print(title)
    rows = [[untrusted(c.title, 80), Text(f"{c.points:g}/{c.max_points:g}",
                                          style=score_style(c.points / c.max_points if c.max_points else 0)),
             untrusted(c.feedback, 600)] for c in grade.criteria]
    console.print(fit(None, [Col("criterion", keep=True, wrap=True), Col("points", keep=True, justify="right"),
                             Col("feedback", keep=True, wrap=True)], rows))
    for tip in grade.diagnostics:
        console.print(tip_line(tip))


def render_failure(result: JobResult) -> None:
    console.print(Text(f"✗ {result.outcome.value}", style="red") + Text(f" ({result.error_kind or 'error'}): ")
                  + untrusted(result.message or "the job failed", 4000))


def render_run(result: JobResult, metrics: Metrics | None, facts: Facts | None, notes: list[str]) -> None:
    """Outcome line, then the metrics a participant may see (public half, train, gap, classes)."""
    for note in notes:
        console.print(Text("note: ", style="yellow") + untrusted(note, 600))
    if result.outcome.value != "ok" or metrics is None:
        render_failure(result)
        return
    params = facts.params if facts and facts.params is not None else result.params
    fit_s = facts.fit_seconds if facts and facts.fit_seconds is not None else result.timings.get("fit", 0.0)
    console.print(Text("✓ trained", style="green") + Text(
        f" {num(params)} parameters, {result.epochs} epochs × batch {result.batch_size}, fit {fit_s:.1f}s, optimizer ")
        + untrusted(result.optimizer or "?", 80) + Text(", loss ") + untrusted(result.loss or "?", 80))
    console.print(Text("held-out accuracy (public half): ") + Text(pct(metrics.public_accuracy), style="bold")
                  + Text(f"   training subset: {pct(metrics.train_accuracy)}   gap: "
                         f"{pct(metrics.generalization_gap, True)}"))
    for warning in result.warnings:
        console.print(Text("note from the job: ", style="yellow") + untrusted(warning, 600))
    render_classes(metrics)


def render_classes(metrics: Metrics) -> None:
    rows = [[untrusted(c.name, 40), pct(c.accuracy), c.support] for c in metrics.per_class]
    console.print(fit("Per class (held-out, public half)", [Col("class", keep=True, wrap=True),
                                                           Col("accuracy", keep=True, justify="right"),
                                                           Col("images", priority=1, justify="right")], rows))


def render_detail(d: SubmissionDetail) -> None:
    st = d.status
    head = Text(f"submission {st.id}", style="bold") + Text(" by ") + untrusted(st.participant, 80) + Text(": ") \
        + untrusted(st.filename, 120) + Text(f" on {st.exercise}/{st.profile} → ") + state(st.state.value)
    if st.reason:
        head.append(f" ({st.reason.value})")
    console.print(head)
    if st.cached_from:
        console.print(f"[dim]answered from the stored result of submission {st.cached_from}[/]")
    if d.spec_changed:
        console.print("[yellow]the exercise file has changed since this was graded; it was graded with the "
                      "exercise as it was then (grader regrade re-applies the rubric only)[/]")
    if st.message:
        framed("what went wrong", st.message, 4000)
    if d.seed_runs:
        console.print("seeds: " + ", ".join(f"{s.seed}: {pct(s.public_accuracy)} ({s.state.value})"
                                            for s in d.seed_runs))
    r, f = d.result, d.facts
    if r is not None and (r.params or (f and f.params)):
        params = f.params if f and f.params is not None else r.params
        lr = "" if r.learning_rate is None else f" (lr {r.learning_rate:g})"
        line = Text(f"{num(params)} parameters, {r.epochs} epochs × batch {r.batch_size}, optimizer ") \
            + untrusted(r.optimizer or "?", 60) + Text(lr + ", loss ") + untrusted(r.loss or "?", 80)
        console.print(line)
        if r.compiled_by == "exercise defaults":
            console.print("[dim]compiled by grader with the exercise's defaults (your build_model did not "
                          "compile the model)[/]")
    if f is not None and f.wall_seconds is not None:
        mem = f" · peak memory {f.peak_memory_mb:.0f} MB" if f.peak_memory_mb else ""
        limit = f" · limit {d.time_limit}" if d.time_limit else ""
        console.print(Text(f"measured by grader: job {f.wall_seconds:.1f} s, training {f.fit_seconds or 0:.1f} s"
                           f"{mem}{limit}", style="dim"))
    elif d.time_limit:
        console.print(Text(f"time limit {d.time_limit}", style="dim"))
    if r is not None:
        gpu = {k: v for k, v in r.gpu.items() if v and k != "tf_gpus"}
        if gpu or r.scheduler_job_id:
            where = ", ".join(f"{k}={v}" for k, v in sorted(gpu.items()))
            console.print(untrusted(f"ran on {r.host} ({r.backend}" +
                                    (f", Slurm job {r.scheduler_job_id}" if r.scheduler_job_id else "") +
                                    (f"; allocation {where}" if where else "") +
                                    f"; TensorFlow saw {r.gpu.get('tf_gpus', '0')} GPU)", 400))
    if d.metrics:
        m = d.metrics
        std = f" ± {st.public_std:.1%} over {len(st.seeds or [])} seeds" if st.public_std is not None else ""
        console.print(f"public accuracy {pct(m.public_accuracy)}{std}, training subset {pct(m.train_accuracy)}, "
                      f"gap {pct(m.generalization_gap, True)}")
    for note in d.notes:
        console.print(Text("note: ", style="yellow") + untrusted(note, 600))
    if r is not None:
        for warning in r.warnings:
            console.print(Text("note from the job: ", style="yellow") + untrusted(warning, 600))
    render_grade(d.grade)
    if d.metrics:
        render_classes(d.metrics)
