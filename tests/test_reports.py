"""Plots (grader.reports.plots) and pages (grader.web.pages): content, determinism, escaping, static exports.

Fast and without TensorFlow: every model is built by hand. One test drives live.js in a real Chromium
when Playwright and a browser are there, and skips naming what is missing otherwise.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest

pytest.importorskip("matplotlib", reason="the plots need matplotlib (the server extra)")
pytest.importorskip("jinja2", reason="the pages need Jinja2 (the server extra)")

from grader.db.reads import BoardRow
from grader.grading import CriterionScore, Score
from grader.outcomes import ErrorKind, FailureReason, Outcome
from grader.reports import plots
from grader.results import EpochRecord, Facts, JobResult
from grader.scoring import Breakdown, ClassScore, Metrics
from grader.service.board import Leaderboard, RankedRow
from grader.service.detail import SeedRun, SubmissionDetail
from grader.service.states import State
from grader.service.submissions import StatusRow
from grader.web import pages

HOSTILE = "<script>alert(1)</script>"
TEMPLATE_INJECTION = "{{7*7}} {% raw %}"
MARKUP = '<img src=x onerror="alert(2)"><b>bold</b>'
ANSI = "\x1b[31mred\x1b[0m\x1b]8;;http://evil.example\x07link"
ASL = [c for c in "ABCDEFGHIKLMNOPQRSTUVWXY"]  # no J, no Z
ASL_LABELS = [i for i in range(25) if i != 9]
T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


# ------------------------------------------------------------------------------------------------
# fixtures: models built by hand
# ------------------------------------------------------------------------------------------------


def asl_metrics() -> Metrics:
    n = len(ASL)
    conf = [[(50 + 3 * i if i == j else (i * 7 + j * 3) % 5 if (i + j) % 4 == 0 else 0) for j in range(n)]
            for i in range(n)]
    per_class = [ClassScore(label=lab, name=name, accuracy=conf[i][i] / sum(conf[i]), support=sum(conf[i]))
                 for i, (lab, name) in enumerate(zip(ASL_LABELS, ASL, strict=True))]
    total = sum(map(sum, conf))
    correct = sum(conf[i][i] for i in range(n))
    public = Breakdown(per_class=per_class, confusion=conf, labels=ASL_LABELS, most_confused=[], n=total)
    return Metrics(accuracy=correct / total, public_accuracy=correct / total, private_accuracy=0.81,
                   train_accuracy=0.97, generalization_gap=0.97 - correct / total, per_class=per_class,
                   confusion=conf, labels=ASL_LABELS, most_confused=[], n_heldout=total, public=public)


def history(epochs: int = 6, val: bool = True) -> list[EpochRecord]:
    return [EpochRecord(epoch=e, loss=1.5 / e, accuracy=min(1.0, 0.6 + 0.06 * e),
                        val_loss=1.7 / e if val else None, val_accuracy=min(1.0, 0.55 + 0.06 * e) if val else None)
            for e in range(1, epochs + 1)]


def status(state: State = State.DONE, **kw: object) -> StatusRow:
    fields: dict[str, object] = dict(id=42, participant="ada", exercise="asl", profile="smoke", filename="my_model.py",
                                     state=state, reason=None, message=None, queue_position=None,
                                     scheduler_reason=None, score=7.5, max_score=10.0, public_accuracy=0.87,
                                     cached_from=None, created_at=T0)
    fields.update(kw)
    return StatusRow.model_validate(fields)


def done_detail(participant: str = "ada", summary: str = "Model: sequential\n Conv2D (None, 26, 26, 32) 320") -> SubmissionDetail:
    grade = Score(total=7.5, max_total=10.0, graded=True, criteria=[
        CriterionScore(id="runs", title="It runs", points=2.0, max_points=2.0, feedback="Your model trained."),
        CriterionScore(id="baseline", title="Beats the baseline", points=3.5, max_points=5.0,
                       feedback="87.0% vs baseline 84.0%: close."),
        CriterionScore(id="gap", title="Generalizes", points=2.0, max_points=3.0, feedback="gap 10%"),
    ], diagnostics=["Overfitting: training accuracy 97.0% vs held-out 87.0% (gap 10.0%). Try dropout."])
    result = JobResult(outcome=Outcome.OK, history=history(), params=123_456, trainable_params=123_000,
                       layer_types=["Conv2D", "Dense"], model_summary=summary, epochs=6, batch_size=64,
                       optimizer="adam", learning_rate=0.001, loss="sparse_categorical_crossentropy", seed=1)
    return SubmissionDetail(status=status(participant=participant), grade=grade, metrics=asl_metrics().for_participant(),
                            result=result, facts=Facts(params=123_456, fit_seconds=41.5, wall_seconds=63.0),
                            notes=["Cached data reused."], seed_runs=[SeedRun(id=43, seed=2, state=State.DONE,
                                                                               public_accuracy=0.86)])


def failed_detail(message: str) -> SubmissionDetail:
    result = JobResult.failed(ErrorKind.KERAS2_API, message)
    grade = Score(total=0.0, max_total=10.0, graded=True, criteria=[
        CriterionScore(id="runs", title="It runs", points=0.0, max_points=2.0, feedback=message)],
        diagnostics=["Keras 3 renamed lr= to learning_rate=."])
    return SubmissionDetail(status=status(State.FAILED, reason=FailureReason.PARTICIPANT_ERROR, message=message,
                                          score=0.0, public_accuracy=None), grade=grade, result=result)


def board_row(name: str, sid: int, acc: float, ref: str | None = None, **kw: object) -> BoardRow:
    return BoardRow(participant=name, submission_id=sid, reference_name=ref, public_accuracy=acc,
                    private_accuracy=kw.pop("private", 0.4321), score=None, max_score=None,
                    params=kw.pop("params", 101_770), epochs=5, fit_seconds=12.0, n_submissions=3, last_submitted=T0, **kw)


def leaderboard(board: str = "public", name: str = "grace") -> Leaderboard:
    rows = [
        RankedRow(rank=1, row=board_row(name, 7, 0.912), accuracy=0.912, delta_baseline=0.072, delta_best_reference=0.0,
                  rank_change=2 if board == "private" else None, std=0.004),
        RankedRow(rank=None, row=board_row("(reference)", 3, 0.905, ref="cnn1"), accuracy=0.905, delta_baseline=0.065,
                  delta_best_reference=0.0),
        RankedRow(rank=2, row=board_row("linus", 9, 0.88), accuracy=0.88, delta_baseline=0.04,
                  delta_best_reference=-0.025, within_noise=True, rank_change=-1 if board == "private" else None),
        RankedRow(rank=None, row=board_row("(reference)", 2, 0.84, ref="baseline"), accuracy=0.84, delta_baseline=0.0,
                  delta_best_reference=-0.065),
        RankedRow(rank=3, row=board_row("tim", 11, 0.80), accuracy=0.80, delta_baseline=-0.04,
                  delta_best_reference=-0.1),
    ]
    return Leaderboard(exercise="fashion_mnist", profile="smoke", board=board, rows=rows, baseline=0.84,
                       best_reference=0.905, noise=0.003)


class _Tags(HTMLParser):
    """Every start tag and attribute a browser would build: live markup is found here, text is not."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(page)
    return parser.tags


# ------------------------------------------------------------------------------------------------
# plots
# ------------------------------------------------------------------------------------------------


def test_confusion_matrix_writes_every_count_and_class_name() -> None:
    m = asl_metrics()
    svg = plots.confusion_matrix(m)
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    cells = [t for t in texts if t.isdigit()]
    counts = [str(v) for row in m.confusion for v in row]
    for value in set(counts):  # every count appears at least as often as it occurs in the matrix
        assert cells.count(value) >= counts.count(value), value
    for name in ASL:
        assert f">{name}</text>" in svg
    assert "J" not in [t.strip() for t in texts]
    assert "<title" in svg and "Confusion matrix" in svg and "role=\"img\"" in svg


def test_learning_curves_have_one_marker_per_epoch() -> None:
    svg = plots.learning_curves(history(7))
    for field in ("loss", "val_loss", "accuracy", "val_accuracy"):
        group = re.search(rf'<g id="curves-[0-9a-f]+-{field}">(.*?)</g>\n</g>', svg, re.S)
        assert group, field
        assert group.group(1).count("<use ") == 7, field
        path = re.search(r'<path d="([^"]+)"', group.group(1))
        assert path and len(re.findall(r"[ML] ", path.group(1))) == 7


def test_learning_curves_without_validation_and_with_gaps() -> None:
    hist = [EpochRecord(epoch=1, loss=0.9), EpochRecord(epoch=2, loss=None, accuracy=0.8), EpochRecord(epoch=3, loss=0.5)]
    svg = plots.learning_curves(hist)
    assert "-val_loss" not in svg and "-val_accuracy" not in svg
    assert re.search(r'-loss">(.*?)</g>\n</g>', svg, re.S).group(1).count("<use ") == 2  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        plots.learning_curves([EpochRecord(epoch=1)])


def test_svg_is_deterministic_cached_and_inline_ready() -> None:
    m = asl_metrics()
    first = [plots.confusion_matrix(m), plots.learning_curves(history()), plots.per_class_accuracy(m),
             plots.class_picture([("a", 1000, 0.8, False), ("baseline", 5000, 0.85, True)]),
             plots.score_histogram([1, 2, 2.5, 9], 10)]
    assert plots.confusion_matrix(m) is first[0]  # cached: the same object
    plots.cache_clear()
    again = [plots.confusion_matrix(m), plots.learning_curves(history()), plots.per_class_accuracy(m),
             plots.class_picture([("baseline", 5000, 0.85, True), ("a", 1000, 0.8, False)]),
             plots.score_histogram([9, 1, 2.5, 2], 10)]
    assert first == again  # byte-identical after a fresh draw (and point order does not matter)
    for svg in first:
        assert svg.startswith("<svg ") and svg.rstrip().endswith("</svg>")
        assert "<?xml" not in svg and "DOCTYPE" not in svg and "<metadata" not in svg
        assert "http://" not in svg and "https://" not in svg
        assert "Date" not in svg and len(svg) < 120_000
        ids = re.findall(r' id="([^"]+)"', svg)
        assert len(ids) == len(set(ids))
        plot_id = ids[0]
        assert all(i == plot_id or i.startswith(plot_id + "-") or re.fullmatch(r"[mph][0-9a-f]{10}", i) for i in ids)
    assert len({re.search(r' id="([^"]+)"', s).group(1) for s in first}) == len(first)  # type: ignore[union-attr]


def test_per_class_bars_and_class_picture_content() -> None:
    m = asl_metrics()
    bars = plots.per_class_accuracy(m)
    weakest = sorted(m.per_class, key=lambda c: c.accuracy)[:3]
    assert all(f">{c.name}</text>" in bars for c in m.per_class)
    assert "Weakest: " + ", ".join(f"{c.name} {c.accuracy:.0%}" for c in weakest) in bars
    long_names = plots.per_class_accuracy([ClassScore(label=0, name="T-shirt/top", accuracy=0.9, support=10),
                                           ClassScore(label=1, name="Ankle boot", accuracy=0.5, support=0)])
    assert ">T-shirt/top</text>" in long_names and ">no images</text>" in long_names

    pic = plots.class_picture([("ada", 20_000, 0.9, False), ("bob", 300_000, 0.95, False), ("x", None, 0.5, False),
                               ("baseline", 101_770, 0.84, True), ("cnn1", 220_000, 0.91, True)], highlight="ada")
    assert ">baseline</text>" in pic and ">cnn1</text>" in pic
    assert ">ada</text>" not in pic and ">bob</text>" not in pic  # participants are not named on a projected picture
    assert ">you</text>" in pic and ">100k</text>" in pic
    assert "no graded submissions yet" in plots.class_picture([])
    assert "$" not in plots.class_picture([("$x^2$", 10, 0.5, True)]).replace("$x^2$", "")


def test_score_histogram_counts() -> None:
    svg = plots.score_histogram([0, 1, 1, 7.5, 10, 10, 10], 10)
    assert ">3</text>" in svg and ">2</text>" in svg  # the 10s and the 1s
    assert "median 7.5" in svg and "7 scores out of 10" in svg
    assert "no scores yet" in plots.score_histogram([], 10)


# ------------------------------------------------------------------------------------------------
# pages
# ------------------------------------------------------------------------------------------------


def assert_no_live_markup(page: str) -> None:
    for tag, attrs in tags(page):
        assert tag not in ("img", "b", "iframe", "object"), tag
        assert not any(k.startswith("on") for k in attrs), attrs
        if tag == "script":
            assert attrs.get("src", "").endswith("/live.js")  # type: ignore[union-attr]
    assert "<script>alert" not in page and "\x1b" not in page and "\x07" not in page


def test_pages_escape_hostile_text() -> None:
    message = f"{MARKUP}\n{TEMPLATE_INJECTION}\n{ANSI}"
    detail = done_detail(participant=HOSTILE, summary=f"{HOSTILE}\n{ANSI}\nlayer {MARKUP}")
    detail.notes = [message]
    detail.status.filename = f"{HOSTILE}.py"
    detail.grade.criteria[0].feedback = message  # type: ignore[union-attr]
    detail.result.layer_types = [HOSTILE]  # type: ignore[union-attr]
    for page in (pages.feedback_page(detail, csrf_token=HOSTILE), pages.report_html(detail),
                 pages.feedback_page(failed_detail(message), exercise_title=HOSTILE)):
        assert_no_live_markup(page)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "{{7*7}}" in page
        assert "\\x1b[31mred" in page  # ANSI shown as a visible escape
    failed = pages.feedback_page(failed_detail(message))
    assert "What went wrong" in failed and "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in failed

    board = leaderboard(name=HOSTILE)
    for page in (pages.leaderboard_page(board, live_url="/lb/fragment?x=1&y=<2>"), pages.leaderboard_html(board),
                 pages.leaderboard_table(board)):
        assert_no_live_markup(page)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    rows = [status(participant=HOSTILE, filename=MARKUP, message=message, state=State.FAILED)]
    my = pages.my_page(rows, ["asl", HOSTILE], csrf_token='"><script>alert(3)</script>')
    assert_no_live_markup(my)
    login = pages.login_page(MARKUP + ANSI, '"><b>', "/me?x=<b>")
    assert_no_live_markup(login)
    cls = pages.class_page([(HOSTILE, 1000, 0.5, True)], queue={"failed_by_reason": {HOSTILE: 2}}, exercise=HOSTILE)
    assert_no_live_markup(cls)


def test_static_pages_are_self_contained() -> None:
    for page in (pages.report_html(done_detail()), pages.leaderboard_html(leaderboard("private")),
                 pages.report_html(failed_detail("boom")),
                 pages.class_page([("a", 1000, 0.8, False), ("baseline", 5000, 0.85, True)], scores=[1, 5], max_score=10,
                                  static=True)):
        assert "http://" not in page and "https://" not in page
        assert "<script" not in page and "<link" not in page and "<form" not in page
        assert "<style>" in page and ".board-table" in page  # the stylesheet is inlined
        assert not re.search(r'(?:src|href)="(?!#|data:image/png;base64,)', page)  # nothing outside the file
        assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    report = pages.report_html(done_detail())
    assert report.count("<svg ") == 3 and "Learning curves" in report and "Model summary" in report


def test_public_board_shows_no_private_figures() -> None:
    page = pages.leaderboard_page(leaderboard("public"), live_url="/leaderboard/fashion_mnist/table")
    assert "43.21%" not in page and "0.4321" not in page  # the rows' private accuracy
    heads = re.findall(r"<th [^>]*>(.*?)</th>", page)
    assert heads and not any("rank" in h for h in heads)  # no rank-change column
    assert "▲" not in page and "▼" not in page and "Private" not in page
    assert 'data-board-url="/leaderboard/fashion_mnist/table"' in page and "/static/live.js" in page
    private = pages.leaderboard_page(leaderboard("private"))
    assert "Private accuracy" in private and "▲2" in private and "▼1" in private and "<script" not in private


def test_leaderboard_rows_references_and_highlight() -> None:
    table = pages.leaderboard_table(leaderboard(), {9})
    rows = [attrs for tag, attrs in tags(table) if tag == "tr" and "data-key" in attrs]
    assert [r["data-key"] for r in rows] == ["p:grace", "ref:cnn1", "p:linus", "ref:baseline", "p:tim"]
    assert rows[1]["class"] == "ref" and rows[3]["class"] == "ref baseline" and rows[2]["class"] == " hl"
    assert "91.20%" in table and "±&#8239;0.4" in table and "+7.20 pp" in table and "\u22124.00 pp" in table
    assert "102k" in table and "101,770" in table and "≈" in table
    assert table.startswith('<table id="board-table"')
    top = pages.leaderboard_table(leaderboard(), top=1)
    assert "linus" not in top and "cnn1" in top and "baseline" in top


def test_feedback_page_sections() -> None:
    page = pages.feedback_page(done_detail(), exercise_title="ASL letters", csrf_token="tok")
    for part in ("ASL letters: submission 42", "It runs", "3.5&#8239;/&#8239;5", "7.5&#8239;/&#8239;10", "Overfitting",
                 "Grader's notes", "Cached data reused.", "Learning curves", "Which classes get mixed up",
                 "Accuracy per class", "Model summary", "Conv2D (None, 26, 26, 32)", "87.68%", "123k", "42 s",
                 'name="csrf" value="tok"', 'enctype="multipart/form-data"'):
        assert part in page, part
    assert "What went wrong" not in page and "<progress" not in page and "<script" not in page

    running = done_detail()
    running.status.state = State.QUEUED
    running.status.queue_position = 3
    running.grade = running.metrics = running.result = None
    live = pages.feedback_page(running, live_url="/submissions/42/events", csrf_token="tok")
    assert 'data-events-url="/submissions/42/events"' in live and "<progress" in live and "/static/live.js" in live
    assert "position 3 in the queue" in live and 'action="/submissions/42/cancel"' in live
    assert "<script" not in pages.report_html(running)

    bare = done_detail()
    bare.result.history = [EpochRecord(epoch=1)]  # type: ignore[union-attr]
    bare.metrics = asl_metrics().model_copy(update={"public": None}).for_participant()  # no public breakdown stored
    page = pages.feedback_page(bare)
    assert "Learning curves" not in page and "mixed up" not in page and page.count("<svg ") == 0

    infra = failed_detail("worker lost")
    infra.status.reason = FailureReason.INFRASTRUCTURE
    assert "does not count against your submissions" in pages.feedback_page(infra)
    traceback = failed_detail("x")
    traceback.result.detail = "Traceback: secret path"  # type: ignore[union-attr]
    assert "secret path" not in pages.feedback_page(traceback)
    assert "secret path" in pages.feedback_page(traceback, instructor=True)


def test_class_login_and_my_pages() -> None:
    queue = pages.QueueHealth(queued=4, running=2, failed_by_reason={"timeout": 3, "participant_error": 5},
                              median_wait_seconds=95, oldest_queued_seconds=4000)
    page = pages.class_page([("a", 1000, 0.8, False), ("baseline", 5000, 0.85, True)], scores=[2, 7, 7.5], max_score=10,
                            queue=queue, exercise="mnist")
    assert page.count("<svg ") == 2 and "Queue health" in page and "1 min 35 s" in page and "1 h 06 min" in page
    assert page.index("participant_error") < page.index("timeout")
    everyone = pages.class_page([("a", 1000, 0.8, False)])
    assert everyone.count("<svg ") == 1 and "Queue health" not in everyone

    login = pages.login_page("Unknown token", "csrf123", "//evil.example/x")
    form = [a for t, a in tags(login) if t == "input"]
    assert {"type": "hidden", "name": "csrf", "value": "csrf123"} in form
    assert {"type": "hidden", "name": "next", "value": "/"} in form  # not an open redirect
    assert any(a.get("name") == "token" and a.get("type") == "password" for a in form)
    assert 'method="post"' in login and "Unknown token" in login
    assert 'value="/me/42"' in pages.login_page(None, "c", "/me/42")

    rows = [status(id=5, state=State.RUNNING, queue_position=None, score=None), status(id=4, exercise="mnist")]
    my = pages.my_page(rows, ["asl", "mnist"], "c")
    assert 'href="/submissions/5"' in my and 'href="/submissions/4"' in my
    fields = {a.get("name") for t, a in tags(my) if t in ("input", "select")}
    assert fields == {"exercise", "file", "csrf"}
    links = pages.Links(submission="/s/{id}", static="/assets", upload="/up")
    assert 'href="/s/5"' in pages.my_page(rows, ["asl"], "c", links=links)
    assert 'src="/assets/live.js"' in pages.leaderboard_page(leaderboard(), live_url="/x", links=links)


def test_package_data_is_shipped() -> None:
    from grader.web import STATIC_DIR

    assert STATIC_DIR == pages.STATIC_DIR
    assert (pages.STATIC_DIR / "live.js").is_file() and (pages.STATIC_DIR / "grader.css").is_file()
    assert {p.name for p in pages.TEMPLATES_DIR.glob("*.html")} >= {"base.html", "leaderboard.html", "feedback.html",
                                                                    "_board_table.html", "class.html", "login.html",
                                                                    "my.html"}


def test_importing_pages_loads_neither_tensorflow_nor_matplotlib() -> None:
    code = ("import sys, grader.web.pages; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; "
            "assert 'matplotlib' not in sys.modules and 'jinja2' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------------------
# a real browser: layout at projector and phone size, and live.js
# ------------------------------------------------------------------------------------------------


def _browser() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("needs playwright (the dev extra)")
    path = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if path is None:
        pytest.skip("needs a Chromium executable on PATH (chromium, chromium-browser or google-chrome)")
    return path


def test_pages_fit_projector_and_phone_and_live_js_updates() -> None:
    from playwright.sync_api import sync_playwright

    executable = _browser()
    board = leaderboard()
    page_html = pages.leaderboard_page(board, live_url="/fragment", interval=2)
    better = leaderboard()
    better.rows[2].accuracy = 0.95
    better.rows[2].row.submission_id = 99
    served = {"/board": page_html, "/fragment": pages.leaderboard_table(better),
              "/feedback": pages.feedback_page(done_detail()),
              "/static/live.js": (pages.STATIC_DIR / "live.js").read_text(),
              "/static/grader.css": (pages.STATIC_DIR / "grader.css").read_text()}
    running = done_detail()
    running.status.state = State.RUNNING
    served["/running"] = pages.feedback_page(running, live_url="/events")
    events = ('data: {"event":"state","state":"running"}\n\n'
              'data: {"event":"epoch_end","epoch":2,"epochs":5,"loss":0.3,"accuracy":0.9}\n\n')

    def handle(route):  # type: ignore[no-untyped-def]
        path = "/" + route.request.url.split("/", 3)[3]
        if path == "/events":
            route.fulfill(status=200, content_type="text/event-stream", body=events)
        elif path in served:
            kind = "text/css" if path.endswith(".css") else "text/javascript" if path.endswith(".js") else "text/html"
            route.fulfill(status=200, content_type=kind, body=served[path])
        else:
            route.fulfill(status=404, body="")

    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        except Exception as exc:  # pragma: no cover - depends on the machine
            pytest.skip(f"Chromium did not start: {str(exc)[:200]}")
        try:
            for width, height in ((1280, 720), (390, 844)):
                page = browser.new_page(viewport={"width": width, "height": height})
                page.route("http://grader.test/**", handle)
                for path in ("/board", "/feedback"):
                    page.goto(f"http://grader.test{path}")
                    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                    assert overflow <= 0, (path, width, overflow)
                if width == 390:
                    page.goto("http://grader.test/board")
                    assert not page.is_visible("th.col-low") and page.is_visible("th.num >> nth=0")
                page.close()
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.route("http://grader.test/**", handle)
            page.goto("http://grader.test/board")
            page.wait_for_selector("tr.changed", timeout=15_000)
            changed = page.eval_on_selector_all("tr.changed", "rows => rows.map(r => r.dataset.key)")
            assert changed == ["p:linus"]
            assert "95.00%" in page.inner_text("#board-table")
            page.goto("http://grader.test/running")
            page.wait_for_function("document.querySelector('.live-epoch').textContent.includes('Epoch 2 of 5')",
                                   timeout=10_000)
            assert page.eval_on_selector("progress", "p => [p.value, p.max]") == [2, 5]
        finally:
            browser.close()
