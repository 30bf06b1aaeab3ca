"""The web pages in a real browser (issue 11): a real `grader serve` on 127.0.0.1 and headless Chromium through
Playwright's sync API.

One server for the module (tests/test_server.py's `serve`: a course with only the MNIST baseline as a
reference, accounts ann, ben, cat and prof). Four jobs in all: the baseline (measured with the first
submission), ann's upload through the page, ben's upload through the API while the instructor's projector
page is open, and cat's deliberately slow job, which is cancelled through the page.

Screenshots go under pytest's tmp_path (see the test's output for the folder), never into the repository.
"""

from __future__ import annotations

import contextlib
import http.server
import importlib.util
import re
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_server import MODEL, Server, cli, free_port, ok, serve

pytestmark = pytest.mark.tf

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
JOB_TIMEOUT_MS = 900_000  # a training job on two busy cores, after the baseline's
VIEWPORTS = {"desktop": (1280, 720), "phone": (390, 844)}
SLOW = '''import time

import keras

TRAINING = {"epochs": 1, "batch_size": 128}


def build_model(num_classes):
    time.sleep(300)  # stays running until the test cancels it
    return keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(4, activation="relu"),
                             keras.layers.Dense(num_classes, activation="softmax")])
'''

# Reports every state of the progress box to Python (window.graderProgress is exposed by the test), on each
# page load and on each change, so the record survives the page's reload when the job finishes.
PROGRESS_PROBE = """
(() => {
  const report = (kind) => {
    const box = document.querySelector('.progress');
    const bar = box ? box.querySelector('progress') : null;
    const text = (sel) => { const el = box ? box.querySelector(sel) : null; return el ? el.textContent : null; };
    window.graderProgress({kind: kind, url: location.pathname, active: !!box, state: text('.live-state'),
                           detail: text('.live-detail'), epoch: text('.live-epoch'), status: text('.live-status'),
                           value: bar ? bar.getAttribute('value') : null, max: bar ? bar.getAttribute('max') : null,
                           rubric: !!document.getElementById('rubric')});
  };
  document.addEventListener('DOMContentLoaded', () => {
    report('load');
    const box = document.querySelector('.progress');
    if (box) {
      new MutationObserver(() => report('change')).observe(box, {subtree: true, childList: true,
                                                                 characterData: true, attributes: true});
    }
  });
})();
"""

# Watches the projector page's table for ben's row; the marker on window is lost if the page reloads.
BOARD_PROBE = """
() => {
  window.__graderMarker = 'first load';
  window.__benRow = null;
  const look = () => {
    const tr = document.querySelector('#board-table tr[data-key="p:ben"]');
    if (tr && window.__benRow === null) {
      const ann = document.querySelector('#board-table tr[data-key="p:ann"]');
      window.__benRow = {cls: tr.className, text: tr.textContent, ann: ann ? ann.className : null};
    }
  };
  new MutationObserver(look).observe(document.getElementById('board'), {childList: true, subtree: true,
                                                                        attributes: true});
  look();
}
"""


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (Debian's chromium package)"
    for module, what in (("playwright", "playwright (the dev extra)"), ("fastapi", "the server extra"),
                         ("jinja2", "the server extra"), ("matplotlib", "the server extra"),
                         ("tensorflow", "TensorFlow (the cpu extra)")):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed: install {what}"
    return None


@dataclass
class Watched:
    """What the browser saw of one page: console errors, uncaught exceptions and main-frame navigations."""

    errors: list[str] = field(default_factory=list)
    navigations: list[str] = field(default_factory=list)


def watch(page: Any) -> Watched:
    seen = Watched()
    page.on("console", lambda msg: seen.errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: seen.errors.append(f"page error: {exc}"))
    page.on("framenavigated", lambda frame: seen.navigations.append(frame.url) if frame == page.main_frame else None)
    return seen


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=120_000)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def server(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve(tmp_path_factory.mktemp("browser-served"))


def sign_in(browser: Any, server: Server, name: str, viewport: tuple[int, int] = VIEWPORTS["desktop"]) -> Any:
    """A fresh browser context signed in through the login page with `name`'s token."""
    context = browser.new_context(base_url=server.url, viewport={"width": viewport[0], "height": viewport[1]})
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.goto("/login")
    page.fill("input[name=token]", server.tokens[name])
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/me")
    assert name in page.locator("h1").inner_text()
    page.close()
    return context


def api(server: Server, name: str) -> httpx.Client:
    return httpx.Client(base_url=f"{server.url}/api/v1", headers={"Authorization": f"Bearer {server.tokens[name]}"},
                        timeout=60)


def wait_state(server: Server, sid: int, done: set[str], timeout: float = 900) -> str:
    deadline = time.monotonic() + timeout
    with api(server, "prof") as c:
        while True:
            state = c.get(f"/submissions/{sid}").json()["status"]["state"]
            if state in done or time.monotonic() > deadline:
                return str(state)
            time.sleep(1)


@dataclass
class Upload:
    id: int
    progress: list[dict[str, Any]]
    seen: Watched
    final_url: str


@pytest.fixture(scope="module")
def ann(browser: Any, server: Server) -> Iterator[Upload]:
    """ann signs in, uploads a .py through the form on /me and stays on the feedback page until it is graded."""
    context = sign_in(browser, server, "ann")
    progress: list[dict[str, Any]] = []
    context.expose_function("graderProgress", lambda snapshot: progress.append(snapshot))
    context.add_init_script(PROGRESS_PROBE)
    page = context.new_page()
    seen = watch(page)
    page.goto("/me")
    page.select_option("select[name=exercise]", "mnist")
    page.set_input_files("input[name=file]", files=[{"name": "ann_model.py", "mimeType": "text/x-python",
                                                     "buffer": MODEL.format(units=16).encode()}])
    page.click("form.upload button[type=submit]")
    page.wait_for_url(re.compile(r".*/submissions/\d+$"))
    sid = int(page.url.rsplit("/", 1)[1])
    page.locator("h2#rubric").wait_for(timeout=JOB_TIMEOUT_MS)  # after live.js reloads the finished page
    try:
        yield Upload(id=sid, progress=progress, seen=seen, final_url=page.url)
    finally:
        context.close()


def test_upload_through_the_page_shows_live_progress_then_the_feedback(ann: Upload, server: Server) -> None:
    mine = [p for p in ann.progress if p["url"] == f"/submissions/{ann.id}"]
    loads = [p for p in mine if p["kind"] == "load"]
    assert len(loads) >= 2, mine  # the page as submitted, then live.js's reload when the job finished
    assert loads[0]["active"] and not loads[0]["rubric"], loads[0]
    assert not loads[-1]["active"] and loads[-1]["rubric"], loads[-1]
    assert ann.final_url == f"{server.url}/submissions/{ann.id}"
    live = [p for p in mine if p["active"]]
    states = {p["state"] for p in live}
    assert "running" in states and states <= {"queued", "running", "done"}, states
    if "queued" in states:  # behind the baseline's measurement: the position is shown
        assert any(p["state"] == "queued" and "in the queue" in (p["detail"] or "") for p in live), live
    epochs = [p["epoch"] for p in live if p["epoch"]]
    assert any(e.startswith("Epoch 1 of 1") and "loss" in e and "accuracy" in e for e in epochs), epochs
    assert {p["value"] for p in live} >= {"1"} and any(p["value"] == p["max"] == "1" for p in live), live
    assert any((p["status"] or "").startswith("Finished (done)") for p in live), [p["status"] for p in live]
    assert ann.seen.errors == []
    assert wait_state(server, ann.id, {"done"}, timeout=5) == "done"


def test_feedback_page_has_both_plots_and_the_rubric(browser: Any, server: Server, ann: Upload) -> None:
    context = sign_in(browser, server, "ann")
    try:
        page = context.new_page()
        seen = watch(page)
        assert page.goto(f"/submissions/{ann.id}").status == 200
        assert page.locator("svg.plot-curves > title").text_content() == "Learning curves"
        assert page.locator("svg.plot-confusion > title").text_content() == "Confusion matrix"
        assert page.locator("svg.plot-curves").is_visible() and page.locator("svg.plot-confusion").is_visible()
        box = page.locator("svg.plot-confusion").bounding_box()
        assert box and box["width"] > 200 and box["height"] > 200, box
        assert page.locator("table.rubric tbody tr").count() >= 1
        for cell in page.locator("table.rubric tbody td.pts").all_inner_texts():
            assert re.fullmatch(r"[\d.]+\s*/\s*[\d.]+", cell.strip()), cell
        total = page.locator("table.rubric tfoot").inner_text()
        assert re.search(r"Total\s+[\d.]+\s*/\s*[\d.]+", total), total
        summary = page.locator(".summary").inner_text()
        assert re.search(r"Score\s*[\d.]+\s*/\s*[\d.]+", summary) and "Public accuracy" in summary, summary
        assert page.locator(".badge.state-done").count() == 1 and page.locator(".progress").count() == 0
        assert "ann_model.py" in page.locator(".sub").inner_text()
        assert seen.errors == []
    finally:
        context.close()


@pytest.fixture(scope="module")
def ben(browser: Any, server: Server, ann: Upload) -> Iterator[dict[str, Any]]:
    """The instructor's projector page is open while ben submits through the API; the row must arrive live."""
    context = sign_in(browser, server, "prof")
    try:
        page = context.new_page()
        seen = watch(page)
        assert page.goto("/leaderboard/mnist").status == 200
        page.evaluate(BOARD_PROBE)
        assert page.locator('#board-table tr[data-key="p:ann"]').count() == 1
        assert page.locator('#board-table tr[data-key="p:ben"]').count() == 0
        navigations = len(seen.navigations)
        with api(server, "ben") as c:
            r = c.post("/submissions", files={"file": ("ben_model.py", MODEL.format(units=24).encode())},
                       data={"exercise": "mnist"})
        assert r.status_code == 200, r.text
        sid = int(r.json()["submission_id"])
        page.wait_for_function("() => window.__benRow !== null", timeout=JOB_TIMEOUT_MS, polling=250)
        yield {"id": sid, "row": page.evaluate("window.__benRow"), "marker": page.evaluate("window.__graderMarker"),
               "navigations": seen.navigations[navigations:], "errors": seen.errors,
               "status": page.locator(".live-status").inner_text()}
    finally:
        context.close()


def test_leaderboard_updates_itself_when_a_job_finishes(ben: dict[str, Any], server: Server) -> None:
    assert ben["marker"] == "first load" and ben["navigations"] == []  # swapped in place, never reloaded
    row = ben["row"]
    assert "changed" in row["cls"].split(), row  # the highlight live.js gives a new or improved row
    assert "ben" in row["text"] and re.search(r"\d+\.\d\d%", row["text"]), row
    assert row["ann"] is not None and "changed" not in row["ann"].split(), row  # ann's row did not change
    assert ben["status"].startswith("Live"), ben["status"]
    assert ben["errors"] == []
    assert wait_state(server, ben["id"], {"done"}, timeout=60) == "done"


def test_a_participant_sees_no_private_board_and_no_one_elses_feedback(browser: Any, server: Server, ann: Upload,
                                                                         ben: dict[str, Any]) -> None:
    prof = sign_in(browser, server, "prof")
    try:
        page = prof.new_page()
        assert page.goto("/leaderboard/mnist?private=true").status == 200  # the control: instructors see it
        assert "Private accuracy" in page.locator("#board-table thead").inner_text()
        private_acc = page.locator('#board-table tr[data-key="p:ben"] td.acc').inner_text().strip()
        assert re.fullmatch(r"\d+\.\d\d%", private_acc), private_acc
        ben_page = page.goto(f"/submissions/{ben['id']}")
        assert ben_page.status == 200 and "ben_model.py" in page.content()
        ben_acc = page.locator(".summary .big").nth(1).inner_text().strip()
    finally:
        prof.close()

    context = sign_in(browser, server, "ann")
    try:
        page = context.new_page()
        seen = watch(page)
        r = page.goto("/leaderboard/mnist?private=true")
        assert r.status == 403, r.status
        body = page.locator("body").inner_text()
        assert "instructor" in body.lower(), body
        assert page.locator("#board-table").count() == 0 and "Private" not in body and "▲" not in body \
            and "▼" not in body and private_acc not in body, body
        fragment = context.request.get("/leaderboard/mnist/table?private=true")
        assert fragment.status == 403 and "Private" not in fragment.text() and private_acc not in fragment.text()

        r = page.goto(f"/submissions/{ben['id']}")
        assert r.status == 404, r.status
        html = page.content()
        assert f"no submission with id {ben['id']}" in html
        for secret in ("ben", "ben_model.py", ben_acc, "svg"):
            assert secret not in html.lower().replace("benchmark", ""), secret
        events = context.request.get(f"/api/v1/submissions/{ben['id']}/events")
        assert events.status == 404 and "ben" not in events.text()
        assert [e for e in seen.errors if "404" not in e and "403" not in e] == []  # the error pages' own status
    finally:
        context.close()


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
def test_pages_fit_a_projector_and_a_phone(browser: Any, server: Server, ann: Upload, ben: dict[str, Any],
                                           viewport: str, tmp_path: Path) -> None:
    width, height = VIEWPORTS[viewport]
    context = sign_in(browser, server, "ann", viewport=(width, height))
    try:
        page = context.new_page()
        seen = watch(page)
        for name, url, ready in (("leaderboard", "/leaderboard/mnist", "#board-table"),
                                 ("feedback", f"/submissions/{ann.id}", "svg.plot-confusion")):
            assert page.goto(url).status == 200
            page.locator(ready).wait_for()
            sizes = page.evaluate("() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth,"
                                  " body: document.body.scrollWidth})")
            assert sizes["inner"] == width and sizes["scroll"] <= sizes["inner"] and sizes["body"] <= width, \
                (name, viewport, sizes)
            wide = page.evaluate("""() => [...document.querySelectorAll('main *')]
                .filter(el => el.getBoundingClientRect().right > window.innerWidth + 0.5
                              && !el.closest('.scroll, pre, details:not([open])'))
                .map(el => el.tagName + '.' + el.className)""")
            assert wide == [], (name, viewport, wide)  # nothing sticks out past the right edge
            shot = tmp_path / f"{name}-{width}x{height}.png"
            page.screenshot(path=str(shot), full_page=True)
            assert png_size(shot)[0] == width and shot.stat().st_size > 5000, shot
        # the projector table drops low-value columns and wraps headings on a phone rather than scroll sideways
        assert page.goto("/leaderboard/mnist").status == 200
        fits = page.evaluate("() => { const b = document.getElementById('board'); return [b.scrollWidth, b.clientWidth]; }")
        assert fits[0] <= fits[1], (viewport, fits)
        assert seen.errors == []
        print(f"screenshots in {tmp_path}")
    finally:
        context.close()


def test_static_report_makes_no_network_requests(browser: Any, server: Server, ann: Upload, tmp_path: Path) -> None:
    env = server.client_env("ann", tmp_path / "ann-home")
    report = tmp_path / "report.html"
    board = tmp_path / "board.html"
    ok(cli(["report", str(ann.id), "--html", str(report)], env, timeout=300))
    ok(cli(["leaderboard", "-e", "mnist", "--html", str(board)], env, timeout=300))
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    try:
        for path, checks in ((report, ("svg.plot-curves > title", "svg.plot-confusion > title", "table.rubric")),
                             (board, ("#board-table",))):
            page = context.new_page()
            seen = watch(page)
            requests: list[str] = []
            page.on("request", lambda req, requests=requests: requests.append(req.url))
            assert page.goto(path.as_uri()) is not None
            page.wait_for_load_state("networkidle")
            for selector in checks:
                assert page.locator(selector).count() >= 1, (path.name, selector)
            assert requests and all(not u.startswith(("http:", "https:", "ws:", "wss:")) for u in requests), requests
            assert page.evaluate("document.scripts.length") == 0 and seen.errors == [], seen.errors
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            text = path.read_text(encoding="utf-8")
            assert "http://" not in text and "https://" not in text and "<script" not in text
            page.close()
    finally:
        context.close()


@contextlib.contextmanager
def session(server: Server, name: str) -> Iterator[httpx.Client]:
    """`name` signed in through the login form over plain HTTP (the client keeps grader_session and grader_csrf)."""
    with httpx.Client(base_url=server.url, timeout=60) as c:
        form = c.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf, form.text
        r = c.post("/login", data={"token": server.tokens[name], "csrf": csrf.group(1), "next": "/me"})
        assert r.status_code == 303 and r.headers["location"] == "/me", r.text
        yield c


def cookie_attributes(response: httpx.Response, name: str) -> set[str]:
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert len(headers) == 1, response.headers.get_list("set-cookie")
    return {part.strip().lower() for part in headers[0].split(";")[1:]}


def test_session_cookie_flags_and_csrf(browser: Any, server: Server, ann: Upload, ben: dict[str, Any]) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        form = c.get("/login")
        assert {"httponly", "samesite=strict", "path=/"} <= cookie_attributes(form, "grader_csrf")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        forged = c.post("/login", data={"token": server.tokens["cat"], "csrf": "forged", "next": "/me"})
        assert forged.status_code == 401 and "grader_session" not in forged.headers.get("set-cookie", "")
        r = c.post("/login", data={"token": server.tokens["cat"], "csrf": csrf, "next": "/me"})
        assert r.status_code == 303
        flags = cookie_attributes(r, "grader_session")
        assert {"httponly", "samesite=strict", "path=/"} <= flags, flags
        assert not any(f.startswith("domain=") for f in flags), flags  # host-only

    with api(server, "cat") as c:
        r = c.post("/submissions", files={"file": ("slow.py", SLOW.encode())}, data={"exercise": "mnist"})
    assert r.status_code == 200, r.text
    sid = int(r.json()["submission_id"])
    with session(server, "cat") as c:
        page = c.get(f"/submissions/{sid}")
        assert page.status_code == 200 and "Cancel this job" in page.text
        missing = c.post(f"/submissions/{sid}/cancel", data={})
        assert missing.status_code == 422, missing.text
        wrong = c.post(f"/submissions/{sid}/cancel", data={"csrf": "forged"})
        assert wrong.status_code == 401 and "CSRF check failed" in wrong.text, wrong.text
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        c.cookies.delete("grader_csrf")  # what a cross-site form carries at best: the field but not the cookie
        no_cookie = c.post(f"/submissions/{sid}/cancel", data={"csrf": token})
        assert no_cookie.status_code == 401 and "CSRF check failed" in no_cookie.text, no_cookie.text
    with api(server, "cat") as c:
        assert c.get(f"/submissions/{sid}").json()["status"]["state"] in ("queued", "running")  # nothing cancelled

    context = sign_in(browser, server, "cat")  # the control: the page's own form, with its token, cancels
    try:
        page = context.new_page()
        seen = watch(page)
        assert page.goto(f"/submissions/{sid}").status == 200
        page.click("text=Cancel this job")
        page.locator("#wrong-h").wait_for(timeout=300_000)
        assert "cancelled" in page.locator("#wrong-h").inner_text()
        assert page.locator(".badge.state-cancelled").count() == 1
        assert seen.errors == []
    finally:
        context.close()
    assert wait_state(server, sid, {"cancelled"}, timeout=60) == "cancelled"


@contextlib.contextmanager
def other_site_page(html: str, folder: Path) -> Iterator[str]:
    """A page on another port of the same host: another origin but the same *site*, so SameSite=Strict
    cookies still go with its requests (say a participant's notebook server or a page on the course's domain)."""
    (folder / "index.html").write_text(html, encoding="utf-8")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(folder))  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/index.html"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_api_takes_no_session_cookie_for_changes(browser: Any, server: Server, ann: Upload,
                                                      tmp_path: Path) -> None:
    """A form on another port of the same host (same site: the SameSite=Strict cookie goes along) posting to the
    JSON API as the signed-in participant is not authenticated: API changes need the bearer token."""
    html = (f'<form method="post" action="{server.url}/api/v1/submissions/{ann.id}/cancel" '
            'enctype="application/x-www-form-urlencoded"><input name="x" value="1"></form>'
            "<script>document.forms[0].submit()</script>")
    context = sign_in(browser, server, "ann")
    try:
        with other_site_page(html, tmp_path) as url:
            page = context.new_page()
            with page.expect_navigation(url=re.compile(r".*/api/v1/submissions/\d+/cancel$")) as nav:
                page.goto(url)
            response = nav.value
            sent = response.request.all_headers()
            assert response.request.method == "POST" and "grader_session=" in sent.get("cookie", ""), sent  # it went along
            assert response.status == 401 and "no token" in response.text(), (response.status, response.text())
    finally:
        context.close()
