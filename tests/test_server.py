"""`grader serve` for real (issue 10): a uvicorn server on 127.0.0.1, participants as CLI clients with their own
token and HOME, access control through every endpoint, a second Unix account, PostgreSQL, 200 concurrent
uploads, and a SIGKILL mid-job.

The server's course keeps only the MNIST baseline as a reference solution, so a graded job costs one
small training run. The 200-upload test floods the API with one already-graded file from 200
participants (each upload is checked, stored and graded from the cache, which is what the database and
the HTTP layer must survive) plus four new files that really train through the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.tf

REPO = Path(__file__).resolve().parents[1]
_SCRIPT = Path(sys.executable).with_name("grader")
GRADER = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "grader"]
MODEL = '''import keras

TRAINING = {{"epochs": 1, "batch_size": 128}}


def build_model(num_classes):
    return keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense({units}, activation="relu"),
                             keras.layers.Dense(num_classes, activation="softmax")])
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def course(dest: Path) -> Path:
    root = dest / "course"
    shutil.copytree(REPO / "exercises", root / "exercises", ignore=shutil.ignore_patterns("nbgrader"))
    shutil.copytree(REPO / "rubrics", root / "rubrics")
    (root / "reference_solutions" / "mnist").mkdir(parents=True)
    shutil.copy(REPO / "reference_solutions" / "mnist" / "baseline.py", root / "reference_solutions" / "mnist")
    return root


@dataclass
class Server:
    url: str
    home: Path
    env: dict[str, str]  # the server's own account's environment (for `grader accounts` on its machine)
    proc: subprocess.Popen[bytes]
    log: Path
    tokens: dict[str, str]

    def client_env(self, name: str, home: Path) -> dict[str, str]:
        """A participant's shell: their own HOME, the server's URL and their token; nothing else of grader's."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRADER_")}
        home.mkdir(parents=True, exist_ok=True)
        env.update({"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "GRADER_SERVER": self.url,
                    "GRADER_TOKEN": self.tokens[name], "COLUMNS": "160", "LOGNAME": name, "USER": name})
        return env


def cli(args: list[str], env: dict[str, str], timeout: float = 900, cwd: Path | None = None) \
        -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GRADER, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def start(home: Path, env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([*GRADER, "serve", "--port", str(port), "--loop-seconds", "1"], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return proc
        if proc.poll() is not None:
            pytest.fail(f"grader serve exited: {log.read_text()[-3000:]}")
        time.sleep(0.3)
    pytest.fail("grader serve did not come up within 60 s")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)


def serve(tmp_path: Path, db_url: str | None = None) -> Iterator[Server]:
    home = tmp_path / "server-home"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADER_")}
    env.update({"GRADER_HOME": str(home), "GRADER_COURSE_DIR": str(course(tmp_path)), "COLUMNS": "160",
                "GRADER_CONFIG": str(tmp_path / "server.toml"), "XDG_CONFIG_HOME": str(tmp_path / "server-config")})
    if db_url:
        env["GRADER_DB_URL"] = db_url
    roster = tmp_path / "roster.csv"
    roster.write_text("id,display name,e-mail\nann,Ann A.,ann@example.org\nben,Ben B.,ben@example.org\n"
                      "cat,Cat C.,cat@example.org\n", encoding="utf-8")
    ok(cli(["accounts", "add", "prof", "--instructor"], env))  # on the server's machine, as its account
    tokens_csv = tmp_path / "tokens.csv"
    ok(cli(["accounts", "import", str(roster), "--output", str(tokens_csv)], env))
    assert oct(tokens_csv.stat().st_mode & 0o777) == "0o600"
    tokens = {row["id"]: row["token"] for row in csv.DictReader(tokens_csv.open())}
    listed = json.loads(ok(cli(["accounts", "list", "--json"], env)))
    prof = ok(cli(["accounts", "rotate", "prof"], env)).split(": ")[-1].strip()
    tokens["prof"] = prof
    assert {a["name"] for a in listed} == {"prof", "ann", "ben", "cat"}
    log = tmp_path / "serve.log"
    srv = Server(url=f"http://127.0.0.1:{port}", home=home, env=env, proc=start(home, env, port, log), log=log,
                 tokens=tokens)
    try:
        yield srv
    finally:
        stop(srv.proc)  # the one running now: a test may have restarted it


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve(tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="module")
def graded(server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    """Each participant submits through the CLI against the server with their own token and HOME."""
    base = tmp_path_factory.mktemp("participants")
    ids = {}
    for i, name in enumerate(("ann", "ben", "cat")):
        folder = base / name
        folder.mkdir()
        model = folder / "model.py"
        model.write_text(MODEL.format(units=8 + 8 * i), encoding="utf-8")
        out = ok(cli(["submit", "model.py", "-e", "mnist", "--wait"], server.client_env(name, folder), cwd=folder))
        ids[name] = int(out.split("submission ")[1].split()[0])
    return ids


def test_each_participant_is_graded_and_on_the_board(server: Server, graded: dict[str, int],
                                                     tmp_path: Path) -> None:
    board = ok(cli(["leaderboard", "-e", "mnist", "--json"], server.client_env("ann", tmp_path / "ann")))
    rows = json.loads(board)["rows"]
    assert {r["row"]["participant"] for r in rows if r["rank"]} == {"ann", "ben", "cat"}
    assert any(r["row"]["reference_name"] == "baseline" for r in rows)
    shown = ok(cli(["show", str(graded["ann"])], server.client_env("ann", tmp_path / "ann")))
    assert "Score" in shown and "→ done" in shown


def test_a_participant_sees_nothing_of_another(server: Server, graded: dict[str, int], tmp_path: Path) -> None:
    ann = {"Authorization": f"Bearer {server.tokens['ann']}"}
    bens = graded["ben"]
    api = f"{server.url}/api/v1"
    for method, path in (("GET", f"/submissions/{bens}"), ("GET", f"/submissions/{bens}/events"),
                         ("POST", f"/submissions/{bens}/cancel")):
        r = httpx.request(method, api + path, headers=ann, timeout=30)
        assert r.status_code == 404, (path, r.text)
        assert "ben" not in r.text and "no submission" in r.json()["error"]["message"]
    for method, path in (("GET", "/submissions?student=ben"), ("GET", "/history?student=ben"),
                         ("GET", "/leaderboard/mnist?private=true"), ("GET", "/export/mnist"),
                         ("GET", "/export/mnist.csv"), ("GET", "/accounts"), ("POST", "/sync"),
                         ("GET", "/flags/mnist"), ("POST", "/regrade")):
        r = httpx.request(method, api + path, headers=ann, timeout=30,
                          json={"exercise": "mnist"} if method == "POST" else None)
        assert r.status_code == 403, (path, r.status_code, r.text)
    mine = httpx.get(f"{api}/submissions", headers=ann, timeout=30).json()
    assert {r["participant"] for r in mine["rows"]} == {"ann"}
    page = httpx.get(f"{server.url}/submissions/{bens}", cookies={"grader_session": server.tokens["ann"]}, timeout=30)
    assert page.status_code == 404 and "ben" not in page.text.lower().replace("benchmark", "")


def test_no_environment_of_a_participant_grants_the_instructor_role(server: Server, graded: dict[str, int],
                                                                    tmp_path: Path) -> None:
    env = server.client_env("ann", tmp_path / "ann")
    env.update({"GRADER_INSTRUCTORS": "ann", "LOGNAME": "prof", "USER": "prof"})
    config = tmp_path / "ann" / ".config" / "grader" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('instructors = ["ann"]\n')
    for args in (["leaderboard", "-e", "mnist", "--private"], ["export", "grades", "-e", "mnist"],
                 ["history", "--student", "ben"], ["accounts", "list"], ["regrade", "-e", "mnist"]):
        proc = cli(args, env)
        assert proc.returncode == 9, (args, proc.stdout, proc.stderr)  # not allowed: instructors only
        assert "for instructors only" in proc.stderr


@pytest.mark.parametrize(("token", "message"), [(None, "no token"), ("grd_wrong", "not valid here")])
def test_bad_tokens_are_401_with_a_reason(server: Server, token: str | None, message: str) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(f"{server.url}/api/v1/submissions", headers=headers, timeout=30)
    assert r.status_code == 401 and message in r.json()["error"]["message"]


def test_revoked_token_and_uploads_that_are_refused(server: Server, tmp_path: Path) -> None:
    ok(cli(["accounts", "add", "dan"], server.env))
    dan = ok(cli(["accounts", "rotate", "dan"], server.env)).split(": ")[-1].strip()
    headers = {"Authorization": f"Bearer {dan}"}
    api = f"{server.url}/api/v1/submissions"
    cases = [
        ("big.py", b"x = 1\n" * 60_000, 422, "the limit is"),
        ("latin1.py", "def build_model():\n    return 'é'\n".encode("latin-1"), 422, "not UTF-8"),
        ("notes.txt", b"def build_model(): pass\n", 422, "expected a .py file or a .ipynb notebook"),
        ("empty.py", b"", 422, "the file is empty"),
        ("../../etc/passwd.py", b"def build_model():\n    pass\n", 200, ""),
        ("nb.ipynb", b'{"cells": [1, 2]}', 422, "not a notebook cell"),
    ]
    for name, data, status, message in cases:
        r = httpx.post(api, headers=headers, files={"file": (name, data)}, data={"exercise": "mnist"}, timeout=60)
        assert r.status_code == status, (name, r.text)
        if message:
            assert message in r.json()["error"]["message"], (name, r.text)
    shown = httpx.get(api, headers=headers, timeout=30).json()["rows"]
    assert "passwd.py" in {r["filename"] for r in shown} and not any("/" in r["filename"] for r in shown)
    r = httpx.post(api, headers=headers, files={"file": ("m.py", b"def build_model():\n    pass\n")},
                   data={"exercise": "mnsit"}, timeout=30)
    assert r.status_code == 404 and "Did you mean: mnist?" in r.json()["error"]["message"]
    ok(cli(["accounts", "revoke", "dan"], server.env))
    r = httpx.get(api, headers=headers, timeout=30)
    assert r.status_code == 401 and "not valid" in r.json()["error"]["message"]


def test_quota_is_enforced_over_http(tmp_path: Path) -> None:
    gen = serve(tmp_path)
    srv = next(gen)
    try:
        stop(srv.proc)
        (Path(srv.env["GRADER_CONFIG"])).write_text("quota_per_window = 1\n")
        srv.proc = start(srv.home, srv.env, int(srv.url.rsplit(":", 1)[1]), srv.log)
        headers = {"Authorization": f"Bearer {srv.tokens['ann']}"}
        api = f"{srv.url}/api/v1/submissions"
        first = httpx.post(api, headers=headers, files={"file": ("a.py", MODEL.format(units=3).encode())},
                           data={"exercise": "mnist"}, timeout=60)
        assert first.status_code == 200, first.text
        second = httpx.post(api, headers=headers, files={"file": ("b.py", MODEL.format(units=4).encode())},
                            data={"exercise": "mnist"}, timeout=60)
        assert second.status_code == 429 and "used all 1 submissions" in second.json()["error"]["message"]
    finally:
        with contextlib.suppress(StopIteration):
            next(gen)


def test_an_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADER_")}
    env.update({"HOME": str(tmp_path), "GRADER_SERVER": f"http://127.0.0.1:{free_port()}", "GRADER_TOKEN": "x"})
    start_time = time.monotonic()
    proc = cli(["status"], env, timeout=60)
    assert time.monotonic() - start_time < 20
    assert proc.returncode == 10 and "cannot reach the grader server at http://127.0.0.1:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_state_is_private_to_the_server_account(server: Server, graded: dict[str, int]) -> None:
    """A second Unix account on the same machine reads nothing of the server's state."""
    if os.getuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("needs root and useradd to create a second Unix account")
    user = "grader-participant"
    if subprocess.run(["id", user], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", user], check=True)
    assert oct(server.home.stat().st_mode & 0o777) == "0o700"
    assert oct((server.home / "grader.db").stat().st_mode & 0o777) == "0o600"
    targets = [server.home / "grader.db", server.home / "submissions", server.home / "runs", server.home / "datasets",
               server.home / "inputs"]
    for target in targets:
        proc = subprocess.run(["su", user, "-s", "/bin/sh", "-c", f"ls '{target}' && cat '{target}' | head -c 10"],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode != 0 and "Permission denied" in proc.stderr, (target, proc.stdout, proc.stderr)


def test_200_concurrent_uploads_are_accepted_stored_and_graded(server: Server, graded: dict[str, int],
                                                               tmp_path: Path) -> None:
    n = 200
    issued = json.loads(httpx.post(f"{server.url}/api/v1/accounts/import",
                                   headers={"Authorization": f"Bearer {server.tokens['prof']}"},
                                   json={"csv": "\n".join(f"p{i:03d}" for i in range(n))}, timeout=120).text)
    tokens = {t["name"]: t["token"] for t in issued}
    graded_file = MODEL.format(units=8).encode()  # ann's file: graded already, so answered from the cache
    fresh = {f"p{i:03d}": MODEL.format(units=100 + i).encode() for i in range(4)}  # four that really train

    async def flood() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=n)
        async with httpx.AsyncClient(base_url=f"{server.url}/api/v1", timeout=600, limits=limits) as client:
            return await asyncio.gather(*[
                client.post("/submissions", headers={"Authorization": f"Bearer {tok}"},
                            files={"file": ("model.py", fresh.get(name, graded_file))}, data={"exercise": "mnist"})
                for name, tok in tokens.items()])

    responses = asyncio.run(flood())
    assert [r.status_code for r in responses if r.status_code != 200] == [], [r.text for r in responses
                                                                              if r.status_code != 200][:3]
    ids = [r.json()["submission_id"] for r in responses]
    assert len(set(ids)) == n
    instructor = {"Authorization": f"Bearer {server.tokens['prof']}"}
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        rows = httpx.get(f"{server.url}/api/v1/submissions", params={"all": True, "limit": 1000}, headers=instructor,
                         timeout=60).json()["rows"]
        ours = [r for r in rows if r["id"] in ids]
        if len(ours) == n and all(r["state"] == "done" for r in ours):
            break
        time.sleep(3)
    else:
        pytest.fail(f"not all graded: {sorted({r['state'] for r in ours})}")
    assert all(r["score"] is not None for r in ours)
    assert "500 Internal Server Error" not in server.log.read_text()


def test_sigkill_mid_job_loses_nothing(tmp_path: Path) -> None:
    gen = serve(tmp_path)
    srv = next(gen)
    try:
        headers = {"Authorization": f"Bearer {srv.tokens['ann']}"}
        slow = MODEL.format(units=64).replace('"epochs": 1', '"epochs": 2')
        r = httpx.post(f"{srv.url}/api/v1/submissions", headers=headers, files={"file": ("slow.py", slow.encode())},
                       data={"exercise": "mnist"}, timeout=60)
        sid = r.json()["submission_id"]
        deadline = time.monotonic() + 600
        while httpx.get(f"{srv.url}/api/v1/submissions/{sid}", headers=headers, timeout=30).json()["status"]["state"] \
                != "running":
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.5)
        stop(srv.proc, signal.SIGKILL)
        srv.proc = start(srv.home, srv.env, int(srv.url.rsplit(":", 1)[1]), srv.log)
        while (state := httpx.get(f"{srv.url}/api/v1/submissions/{sid}", headers=headers,
                                  timeout=30).json()["status"]["state"]) in ("queued", "running"):
            assert time.monotonic() < deadline, "the job was never reconciled after the restart"
            time.sleep(1)
        assert state == "done"
        import sqlite3

        con = sqlite3.connect(srv.home / "grader.db")
        try:
            assert con.execute("SELECT count(*) FROM results WHERE submission_id = ?", (sid,)).fetchone()[0] == 1
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            con.close()
    finally:
        with contextlib.suppress(StopIteration):
            next(gen)


def test_everything_works_on_postgresql(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = os.environ.get("GRADER_TEST_POSTGRES")
    if not url:
        pytest.skip("PostgreSQL not configured: set GRADER_TEST_POSTGRES (.ci/run does)")
    from conftest import _fresh_postgres

    gen = serve(tmp_path, db_url=_fresh_postgres("t_served"))
    srv = next(gen)
    try:
        for i, name in enumerate(("ann", "ben", "cat")):
            folder = tmp_path / name
            folder.mkdir()
            (folder / "model.py").write_text(MODEL.format(units=5 + i), encoding="utf-8")
            ok(cli(["submit", "model.py", "-e", "mnist", "--wait"], srv.client_env(name, folder), cwd=folder))
        rows = json.loads(ok(cli(["leaderboard", "-e", "mnist", "--json"], srv.client_env("ann", tmp_path / "ann"))))
        assert {r["row"]["participant"] for r in rows["rows"] if r["rank"]} == {"ann", "ben", "cat"}
        denied = httpx.get(f"{srv.url}/api/v1/submissions/1", headers={"Authorization": f"Bearer {srv.tokens['ben']}"},
                           timeout=30)
        assert denied.status_code == 404
    finally:
        with contextlib.suppress(StopIteration):
            next(gen)
