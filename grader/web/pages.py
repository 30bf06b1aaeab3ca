"""HTML pages rendered on the server from the service layer's models, and their static exports.

Every page is a function: pydantic models in, a complete HTML string out. Templates are Jinja2 with
autoescape on for everything; the only values marked safe are the SVG plots from grader.reports.plots
(matplotlib escapes the text in them) and the package's own stylesheet. Untrusted text (participant and
file names, messages, layer names, model summaries) also goes through grader.text first, so control
characters and ANSI escapes show as visible escapes.

Live pages link /static/grader.css and /static/live.js (`Links.static`; the server mounts STATIC_DIR
there). live.js needs no inline script, so a strict `script-src 'self'` policy works. Static pages
(`static=True`) inline the stylesheet and the plots, carry no script and no http(s) URL at all: they
are for mailing or putting on a course site.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import BaseModel, Field

from grader import __version__, text
from grader.errors import GraderError
from grader.outcomes import FailureReason, Outcome
from grader.reports import plots
from grader.reports.plots import ClassPoint
from grader.service.board import Leaderboard, RankedRow
from grader.service.detail import SubmissionDetail
from grader.service.states import State
from grader.service.submissions import StatusRow
from grader.web import STATIC_DIR, TEMPLATES_DIR

if TYPE_CHECKING:
    from jinja2 import Environment
    from markupsafe import Markup

POLL_SECONDS = 5


class Links(BaseModel):
    """Where the server routes things; `{id}` and `{exercise}` are filled in. Pages never name a host."""

    static: str = Field(default="/static", description="Where STATIC_DIR is mounted (grader.css, live.js).")
    home: str = Field(default="/", description="Start page.")
    mine: str = Field(default="/me", description="The signed-in participant's submissions (my_page).")
    submission: str = Field(default="/submissions/{id}", description="One submission's feedback page.")
    cancel: str = Field(default="/submissions/{id}/cancel", description="POST (csrf) cancels a queued or running job.")
    upload: str = Field(default="/submissions", description="POST multipart (exercise, file, csrf) submits.")
    login: str = Field(default="/login", description="POST (token, csrf, next) signs in.")

    def to(self, pattern: str, **values: object) -> str:
        return pattern.format(**{k: quote(str(v), safe="") for k, v in values.items()})


class QueueHealth(BaseModel):
    """What an instructor sees about the queue on the class page."""

    queued: int = Field(default=0, description="Submissions waiting for a worker or the scheduler.")
    running: int = Field(default=0, description="Submissions training now.")
    failed_by_reason: dict[str, int] = Field(default_factory=dict, description="Failed submissions per FailureReason.")
    median_wait_seconds: float | None = Field(default=None, description="Median time from submit to start, recently.")
    oldest_queued_seconds: float | None = Field(default=None, description="Age of the oldest queued submission.")


_REASONS = {
    FailureReason.INVALID_SUBMISSION: "the submission could not be used as written",
    FailureReason.PARTICIPANT_ERROR: "your code stopped with an error",
    FailureReason.TIMEOUT: "training took longer than the time limit",
    FailureReason.OUT_OF_MEMORY: "the model needed more memory than allowed",
    FailureReason.INVALID_RESULT: "the run did not produce a usable result",
    FailureReason.INFRASTRUCTURE: "a problem on the grader's side",
    FailureReason.CANCELLED: "the job was cancelled",
}
_REFUNDED = (FailureReason.INFRASTRUCTURE, FailureReason.CANCELLED)


# ------------------------------------------------------------------------------------------------
# formatting filters (all return plain text; autoescape does the rest)
# ------------------------------------------------------------------------------------------------


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x:.{digits}%}"


def _pp(x: float | None) -> str:
    """An accuracy difference in percentage points, signed; − is a real minus sign."""
    if x is None:
        return "–"
    return f"{x * 100:+.2f} pp".replace("-", "\u2212")


def _params(n: int | None) -> str:
    if n is None:
        return "–"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return str(n)


def _commas(n: int | None) -> str:
    return "–" if n is None else f"{n:,}"


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:g}" if float(x).is_integer() else f"{x:.2f}".rstrip("0").rstrip(".")


def _when(dt: datetime | None) -> str:
    if dt is None:
        return "–"
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%d %H:%M UTC")


def _secs(x: float | None) -> str:
    if x is None:
        return "–"
    s = round(x)
    if s < 90:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


@functools.cache
def _env() -> Environment:
    try:
        import jinja2
    except ImportError:
        raise GraderError("web pages need Jinja2", hint="pip install 'keras-grader[server]'") from None
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pct=_pct, pp=_pp, params=_params, commas=_commas, num=_num, when=_when, secs=_secs,
                       name=text.name, inert=text.inert)
    return env


@functools.cache
def _css() -> Markup:
    from markupsafe import Markup

    css = (STATIC_DIR / "grader.css").read_text(encoding="utf-8")
    if "</" in css:  # would end the <style> element early
        raise GraderError("grader.css must not contain '</'")
    return Markup(css)


def _plot(draw: Any, *args: Any, **kwargs: Any) -> Markup:
    """A plot from grader.reports.plots as markup: the one thing pages mark safe (matplotlib escapes its text)."""
    from markupsafe import Markup

    return Markup(draw(*args, **kwargs))


def _render(template: str, *, title: str, static: bool, links: Links | None, script: bool = False,
            body_class: str = "", **context: Any) -> str:
    return _env().get_template(template).render(
        title=title, static=static, links=links or Links(), script=script and not static, body_class=body_class,
        css=_css() if static else "", version=__version__, **context)


# ------------------------------------------------------------------------------------------------
# the leaderboard
# ------------------------------------------------------------------------------------------------


def _board_context(board: Leaderboard, highlight: set[int] | None, top: int | None) -> dict[str, Any]:
    rows: list[RankedRow] = [r for r in board.rows if top is None or r.rank is None or r.rank <= top]
    private = board.board == "private"
    caption = f"{board.exercise} · {board.board} board · profile {board.profile}"
    return {"board": board, "rows": rows, "private": private, "highlight": set(highlight or ()),
            "board_caption": text.name(caption, 200),
            "participants": sum(1 for r in board.rows if r.rank is not None)}


def leaderboard_table(board: Leaderboard, highlight: set[int] | None = None, *, top: int | None = None) -> str:
    """Just the <table id="board-table">: what the server answers live.js's polls with (text/html).

    Args:
        highlight: submission ids whose rows are marked (class "hl"), e.g. new since the viewer's last visit.
        top: keep participants ranked 1..top; reference rows stay wherever they rank.
    """
    return _env().get_template("_board_table.html").render(**_board_context(board, highlight, top))


def leaderboard_page(board: Leaderboard, *, live_url: str | None = None, highlight: set[int] | None = None,
                     static: bool = False, top: int | None = None, links: Links | None = None,
                     interval: int = POLL_SECONDS) -> str:
    """The projector page: large type, references in place, rank change only on the private board.

    Args:
        live_url: where live.js polls for `leaderboard_table` every `interval` seconds; None: a still page.
        static: a self-contained file (inline CSS, no script, no links).
    """
    live = None if static else live_url
    return _render("leaderboard.html", title=f"{board.exercise} leaderboard", static=static, links=links,
                   script=live is not None, body_class="board", live_url=live, interval=max(2, int(interval)),
                   **_board_context(board, highlight, top))


def leaderboard_html(board: Leaderboard, *, top: int | None = None) -> str:
    """The leaderboard as one self-contained HTML file (`grader leaderboard --html FILE`)."""
    return leaderboard_page(board, static=True, top=top)


# ------------------------------------------------------------------------------------------------
# one submission's feedback
# ------------------------------------------------------------------------------------------------


def _what_went_wrong(detail: SubmissionDetail) -> dict[str, Any] | None:
    s, result = detail.status, detail.result
    failed = s.state in (State.FAILED, State.CANCELLED) or (result is not None and result.outcome is not Outcome.OK)
    if not failed:
        return None
    reason = s.reason or (result.reason if result else None)
    message = s.message or (result.message if result else None)
    return {"reason": _REASONS.get(reason) if reason else None, "message": message,
            "refunded": reason in _REFUNDED}


def _training(detail: SubmissionDetail) -> list[tuple[str, str]]:
    r = detail.result
    if r is None:
        return []
    rows: list[tuple[str, object]] = [
        ("Epochs", r.epochs), ("Batch size", r.batch_size), ("Optimizer", r.optimizer),
        ("Learning rate", None if r.learning_rate is None else f"{r.learning_rate:g}"), ("Loss", r.loss),
        ("Compiled by", r.compiled_by), ("Augmentation", "yes" if r.augment else None),
        ("Input layout", r.input_layout), ("Trainable parameters", _commas(r.trainable_params) if r.trainable_params
                                           is not None else None),
        ("Seed", r.seed if not detail.status.seeds else ", ".join(map(str, detail.status.seeds))),
        ("Versions", ", ".join(f"{k} {v}" for k, v in sorted(r.versions.items())) or None),
    ]
    return [(label, str(value)) for label, value in rows if value is not None]


def _facts(detail: SubmissionDetail) -> list[tuple[str, str]]:
    f = detail.facts
    limit = [("Time limit", detail.time_limit)]
    if f is None:
        return [(label, value) for label, value in limit if value is not None]
    rows: list[tuple[str, str | None]] = [
        ("Parameters (measured)", None if f.params is None else _commas(f.params)),
        ("Training time (measured)", None if f.fit_seconds is None else _secs(f.fit_seconds)),
        ("Total time", None if f.wall_seconds is None else _secs(f.wall_seconds)),
        ("Peak memory", None if f.peak_memory_mb is None else f"{f.peak_memory_mb:,.0f} MB"),
        *limit,
    ]
    return [(label, value) for label, value in rows if value is not None]


def feedback_page(detail: SubmissionDetail, *, exercise_title: str | None = None, live_url: str | None = None,
                  csrf_token: str | None = None, static: bool = False, instructor: bool = False,
                  links: Links | None = None) -> str:
    """One submission: points and feedback per criterion, advice, plots, model summary, or what went wrong.

    Args:
        live_url: Server-Sent Events of this submission (grader.service.submissions.follow's events as JSON);
            used only while it is queued or running. On {"event": "finished"} the page reloads.
        csrf_token: enables the cancel button (while active) and the "submit again" form.
        instructor: also show the run directory and the job's traceback (the page never decides access itself).
    """
    links = links or Links()
    s = detail.status
    active = s.state.active
    result, metrics = detail.result, detail.metrics
    live = live_url if active and not static else None
    forms = csrf_token is not None and not static
    history = result.history if result else []
    return _render(
        "feedback.html", title=f"Submission {s.id}", static=static, links=links, script=live is not None,
        detail=detail, grade=detail.grade, result=result, exercise_title=exercise_title or s.exercise,
        accuracy=metrics.public_accuracy if metrics else s.public_accuracy,
        params=(detail.facts.params if detail.facts and detail.facts.params is not None
                else result.params if result else None),
        active=active, live_url=live, wrong=_what_went_wrong(detail),
        curves=_plot(plots.learning_curves, history) if plots.has_curves(history) else None,
        has_val=any(h.val_loss is not None or h.val_accuracy is not None for h in history),
        confusion=_plot(plots.confusion_matrix, metrics) if metrics and metrics.confusion else None,
        per_class=_plot(plots.per_class_accuracy, metrics) if metrics and metrics.per_class else None,
        training=_training(detail), facts=_facts(detail), instructor=instructor,
        csrf_token=csrf_token or "",
        cancel_url=links.to(links.cancel, id=s.id) if forms and active else None,
        upload_url=links.upload if forms and not active else None,
    )


def report_html(detail: SubmissionDetail, *, exercise_title: str | None = None) -> str:
    """One submission's feedback as a self-contained HTML file (`grader report ID --html FILE`)."""
    return feedback_page(detail, exercise_title=exercise_title, static=True)


# ------------------------------------------------------------------------------------------------
# the class, sign-in, my submissions
# ------------------------------------------------------------------------------------------------


def class_page(points: Iterable[ClassPoint | tuple[str, int | None, float | None, bool]], *,
               scores: Sequence[float] | None = None, max_score: float | None = None,
               queue: QueueHealth | dict[str, Any] | None = None, exercise: str | None = None,
               highlight: str | None = None, static: bool = False, links: Links | None = None) -> str:
    """Accuracy against parameters for everyone; with `scores` and `queue` the instructor's view as well.

    Args:
        points: (label, params, accuracy, is_reference) per participant's best submission and per reference.
        scores: one score per participant (instructors only); `max_score` defaults to the highest score.
        highlight: the viewer's own label, marked on the picture.
    """
    pts = [ClassPoint(*p) for p in points]
    health = QueueHealth.model_validate(queue) if isinstance(queue, dict) else queue
    histogram = None
    if scores is not None:
        top = max_score if max_score is not None else max([*scores, 1.0])
        histogram = _plot(plots.score_histogram, list(scores), top)
    return _render(
        "class.html", title=f"{exercise} class picture" if exercise else "Class picture", static=static, links=links,
        picture=_plot(plots.class_picture, pts, highlight=highlight), histogram=histogram, queue=health,
        exercise=exercise, references=[p for p in pts if p.is_reference],
        n_participants=sum(1 for p in pts if not p.is_reference),
    )


def _local(next_url: str) -> str:
    """Only a path on this server: no scheme, no host, no '//' (an open redirect otherwise)."""
    ok = next_url.startswith("/") and not next_url.startswith(("//", "/\\")) and all(c >= " " for c in next_url)
    return next_url if ok else "/"


def login_page(error: str | None, csrf_token: str, next_url: str, *, links: Links | None = None) -> str:
    """A POST form: token (password field), csrf and next (hidden); `next_url` is kept only if it is local."""
    return _render("login.html", title="Sign in", static=False, links=links, error=error, csrf_token=csrf_token,
                   next_url=_local(next_url))


class _MyRow(BaseModel):
    row: StatusRow
    url: str


def my_page(rows: list[StatusRow], exercises: list[str], csrf_token: str, *, participant: str | None = None,
            links: Links | None = None) -> str:
    """A participant's submissions, each linked to its feedback page, and the upload form (exercise, file, csrf)."""
    links = links or Links()
    who = participant or (rows[0].participant if rows else None)
    return _render("my.html", title="My submissions", static=False, links=links, participant=who,
                   exercises=exercises, csrf_token=csrf_token,
                   rows=[_MyRow(row=r, url=links.to(links.submission, id=r.id)) for r in rows])

