"""The queue end to end: real `grader` processes, real SQLite files, the real local worker.

Issue 3, "Checks that will be run": the quick start, 20 concurrent submitters, kill -9 of the
worker, regrade without training, the result cache, cancel, quotas, the grade export, read
commands that never import TensorFlow, and the instructor-only private board.

Tests marked `tf` train small models on the smoke profile (about 10-20 s a job on 2 cores).
Tests that must not train keep the queue from draining by holding the worker lock themselves:
`grader submit` then sees a live worker and starts none, so jobs stay queued.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
_SCRIPT = Path(sys.executable).with_name("grader")
GRADER = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "grader"]
JOB_DEADLINE = 1800.0  # seconds: a deadline so that a stuck queue fails the test instead of hanging it

DENSE = '''"""Queue test submission {tag}: one small dense layer, one epoch."""

import keras
from keras import layers

TRAINING = {{"epochs": 1, "batch_size": 128}}


def build_model(num_classes=10):
    model = keras.Sequential([
        keras.Input(shape=(784,)),
        layers.Dense({units}, activation="relu"),
        layers.Dense(num_classes, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
'''

# Slow but nearly idle: each training image waits 10 ms in the augment hook (a tf.data map), so an
# epoch lasts seconds on any machine and the test can kill the worker mid-training without burning CPU.
SLOW = '''"""Kill test submission: a tiny dense net whose augment step sleeps per image."""

import time

import keras
import tensorflow as tf
from keras import layers

TRAINING = {"epochs": 2, "batch_size": 32}


def _pause(image):
    time.sleep(0.01)
    return image


def augment(image, label):
    slow = tf.py_function(_pause, [image], Tout=image.dtype)
    slow.set_shape(image.shape)
    return slow, label


def build_model(num_classes=10):
    model = keras.Sequential([
        keras.Input(shape=(784,)),
        layers.Dense(16, activation="relu"),
        layers.Dense(num_classes, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
'''


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def dense(path: Path, units: int, tag: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DENSE.format(units=units, tag=tag or path.stem), encoding="utf-8")
    return path


def course_copy(dest: Path, keep: dict[str, list[str]] | None = None) -> Path:
    """The repository's course (exercises, rubrics) with only the listed reference solutions.

    Fewer references means fewer jobs: each one is a real training run on first use of a profile.
    """
    course = dest / "course"
    shutil.copytree(REPO / "exercises", course / "exercises", ignore=shutil.ignore_patterns("nbgrader"))
    shutil.copytree(REPO / "rubrics", course / "rubrics")
    for exercise, names in (keep or {}).items():
        folder = course / "reference_solutions" / exercise
        folder.mkdir(parents=True)
        for name in names:
            shutil.copy(REPO / "reference_solutions" / exercise / f"{name}.py", folder / f"{name}.py")
    (course / "reference_solutions").mkdir(exist_ok=True)
    return course


def grader_env(home: Path, course: Path, user: str = "ada", **extra: str) -> dict[str, str]:
    """Environment for a `grader` process: isolated state, a fixed identity, a fixed width."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADER_")}
    env.update({"GRADER_HOME": str(home), "GRADER_COURSE_DIR": str(course), "GRADER_CONFIG": str(home.parent / "none.toml"),
                "COLUMNS": "200", "LOGNAME": user, "USER": user, "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def as_user(env: dict[str, str], user: str) -> dict[str, str]:
    return {**env, "LOGNAME": user, "USER": user}


def cli(args: list[str], env: dict[str, str], timeout: float = 300,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GRADER, *args], env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=cwd or Path(env["GRADER_HOME"]).parent)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def submitted_id(stdout: str) -> int:
    found = re.search(r"submission (\d+)", stdout)
    assert found, stdout
    return int(found.group(1))


def query(home: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(home / "grader.db", timeout=60)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def table_rows(stdout: str) -> list[dict[str, str]]:
    """Rows of every rich table in the output, keyed by the header of the table they belong to."""
    header: list[str] = []
    rows = []
    expect_header = False
    for line in stdout.splitlines():
        if line.startswith("╭"):
            expect_header = True
        elif line.startswith("│") and expect_header:
            header = [c.strip() for c in line.strip("│").split("│")]
            expect_header = False
        elif line.startswith("│") and header:
            cells = [c.strip() for c in line.strip("│").split("│")]
            rows.append(dict(zip(header, cells, strict=True)))
    return rows


def queue_dir(home: Path) -> Path:
    """This database's local queue (one per database, see grader.service.context.Context.queue_key)."""
    url = f"sqlite:///{(home.resolve() / 'grader.db')}"
    return home / "local-queue" / hashlib.sha256(url.encode()).hexdigest()[:12]


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = JOB_DEADLINE, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def wait_all_finished(home: Path, env: dict[str, str]) -> None:
    """Until no submission is queued or running; the worker ingests each job as it ends, and a
    `grader sync` now and then covers a worker that has just exited."""
    polls = [0]

    def finished() -> bool:
        polls[0] += 1
        if polls[0] % 15 == 0:
            ok(cli(["sync"], env))
        return query(home, "SELECT count(*) FROM submissions WHERE state IN ('queued', 'running')")[0][0] == 0

    wait_for("every submission to finish", finished, interval=2.0)


def worker_pids(home: Path) -> list[int]:
    """Processes running `grader.service.worker` that hold this home's worker.lock open."""
    lock = str((queue_dir(home) / "worker.lock").resolve())
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if b"grader.service.worker" not in (proc / "cmdline").read_bytes().split(b"\0"):
                continue
            if any(os.readlink(fd) == lock for fd in (proc / "fd").iterdir()):
                pids.append(int(proc.name))
    return pids


def gone(pid: int) -> bool:
    """Exited (a zombie has released its locks too)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def stop_workers(home: Path) -> None:
    """Teardown: a failed test must not leave its worker training in the background."""
    for pid in worker_pids(home):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)  # the worker leads its own session; its supervisors share the group


@contextlib.contextmanager
def worker_lock_held(home: Path) -> Iterator[None]:
    """Look like a live worker, so that `grader submit` starts none and every job stays queued."""
    root = queue_dir(home)
    root.mkdir(parents=True, exist_ok=True)
    with (root / "worker.lock").open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def clone_home(src: Path, dst: Path) -> Path:
    """A private copy of a graded database (SQLite's online backup: consistent even in WAL mode)."""
    dst.mkdir(parents=True)
    source = sqlite3.connect(src / "grader.db")
    target = sqlite3.connect(dst / "grader.db")
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return dst


def integrity(home: Path) -> str:
    return query(home, "PRAGMA integrity_check")[0][0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def use_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """In-process CLI calls see exactly the environment a subprocess would."""
    for key in [k for k in os.environ if k.startswith("GRADER_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("GRADER_") or key in ("LOGNAME", "USER", "COLUMNS"):
            monkeypatch.setenv(key, value)


# --------------------------------------------------------------------------------------------
# (1) the README quick start
# --------------------------------------------------------------------------------------------

@pytest.mark.tf
def test_quick_start_submit_wait_then_leaderboard(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = grader_env(home, REPO, user="ada")
    del env["GRADER_COURSE_DIR"]  # run from the checkout, as the README does: the course is found from the cwd
    try:
        # README.md's quick start, word for word: grader submit ... --exercise fashion_mnist --wait
        out = ok(cli(["submit", "reference_solutions/fashion_mnist/baseline.py", "--exercise", "fashion_mnist",
                      "--wait"], env, timeout=JOB_DEADLINE, cwd=REPO))
    finally:
        stop_workers(home)
    others = sorted(p.stem for p in (REPO / "reference_solutions" / "fashion_mnist").glob("*.py")
                    if p.stem != "baseline" and not p.name.startswith("_"))
    assert f"queued reference runs first: {', '.join(['baseline', *others])}" in out
    sid = submitted_id(out)
    assert f"submission {sid} by ada: baseline.py on fashion_mnist/smoke → done" in out
    assert re.search(r"Score \d+(\.\d+)? / 10", out), out  # the rubric's feedback table follows

    board = ok(cli(["leaderboard", "--exercise", "fashion_mnist"], env, cwd=REPO))
    assert "Leaderboard: fashion_mnist (smoke, public half)" in board
    rows = {r["participant"]: r for r in table_rows(board)}
    references = [f"{name} (reference)" for name in ["baseline", *others]]
    assert set(rows) == {"ada", *references}
    ada = rows["ada"]
    assert ada["rank"] == "1" and ada["subs"] == "1" and ada["epochs"] == "1"
    assert re.fullmatch(r"\d+\.\d%", ada["public acc"]) and re.fullmatch(r"[+-]\d+\.\d%", ada["Δ base"])
    for name in references:
        ref = rows[name]
        assert ref["rank"] == "" and ref["subs"] == ""  # shown in place, not ranked
        assert re.fullmatch(r"\d+\.\d%", ref["public acc"]), ref
    assert rows["baseline (reference)"]["Δ base"] == "+0.0%"
    assert integrity(home) == "ok"


# --------------------------------------------------------------------------------------------
# (2) 20 submitters at once against one SQLite file
# --------------------------------------------------------------------------------------------

@pytest.mark.tf
def test_twenty_concurrent_submissions_are_all_accounted_for(tmp_path: Path) -> None:
    course = course_copy(tmp_path, keep={"mnist": ["baseline"]})
    home = tmp_path / "home"
    # Two at a time, packed onto one GPU index (this machine has no GPU: the index is handed out and
    # recorded as on a GPU node, and TensorFlow then sees none, so the jobs train on the CPU).
    env = grader_env(home, course, GRADER_LOCAL_GPUS="0", GRADER_LOCAL_JOBS_PER_GPU="2")
    files = [dense(tmp_path / "subs" / f"model_{i:02d}.py", units=8 + i) for i in range(20)]
    owners = [f"p{i % 7}" for i in range(20)]  # 7 participants: rows for new participants race too
    try:
        procs = [subprocess.Popen([*GRADER, "submit", str(f), "-e", "mnist", "--student", who], env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
                 for f, who in zip(files, owners, strict=True)]
        outputs = []
        for p in procs:
            out, err = p.communicate(timeout=600)
            outputs.append((p.returncode, out, err))
        for code, out, err in outputs:
            assert code == 0, f"a concurrent `grader submit` failed ({code}):\n{out}\n{err}"
        printed = [submitted_id(out) for _, out, _ in outputs]
        assert len(set(printed)) == 20, printed
        wait_all_finished(home, env)
        wait_for("the worker to exit", lambda: not worker_pids(home), timeout=120)
    finally:
        stop_workers(home)

    rows = query(home, "SELECT s.id, p.name, s.file_sha256, s.state, s.reason, s.message, s.cached_from "
                       "FROM submissions s JOIN participants p ON p.id = s.participant_id "
                       "WHERE s.reference_name IS NULL ORDER BY s.id")
    assert len(rows) == 20, rows  # none lost, none duplicated
    assert sorted(r[0] for r in rows) == sorted(printed)  # the ids printed are the rows stored
    assert sorted(r[2] for r in rows) == sorted(sha256(f) for f in files)  # each file exactly once
    assert sorted(r[1] for r in rows) == sorted(owners)
    for sid, who, _sha, state, reason, message, cached_from in rows:
        assert cached_from is None
        assert state in ("done", "failed"), (sid, who, state)
        if state == "failed":
            assert reason and message, (sid, reason, message)
    done = [r for r in rows if r[3] == "done"]
    assert done, "every submission failed"
    # each finished job was ingested exactly once (one results row each, scored when done)
    results = dict(query(home, "SELECT submission_id, public_accuracy FROM results"))
    assert all(sid in results for sid, *_ in rows)
    assert all(results[r[0]] is not None for r in done)
    # the baseline was queued once although 20 processes found it missing at the same moment
    assert query(home, "SELECT count(*) FROM submissions WHERE reference_name = 'baseline'")[0][0] == 1
    assert query(home, "SELECT count(*) FROM participants WHERE name LIKE 'p%'")[0][0] == 7
    spool = queue_dir(home)
    assert not list((spool / "queue").iterdir()) and not list((spool / "running").iterdir())
    allocations = [json.loads(p.read_text()) for p in (home / "runs").glob("*/allocation.json")]
    assert len(allocations) == 21  # 20 and the baseline
    assert {a["cuda_visible_devices"] for a in allocations} == {"0"}
    assert max(a["jobs_on_gpu"] for a in allocations) == 2 and all(a["jobs_on_gpu"] <= 2 for a in allocations)
    assert len(list((spool / "done").glob("*.json"))) == 21
    assert integrity(home) == "ok"


# --------------------------------------------------------------------------------------------
# (3) kill -9 of the worker during training
# --------------------------------------------------------------------------------------------

@pytest.mark.tf
def test_worker_killed_during_training_is_requeued_then_finishes(tmp_path: Path) -> None:
    course = course_copy(tmp_path)  # no reference solutions: the only job is the one we kill
    home = tmp_path / "home"
    env = grader_env(home, course)
    model = tmp_path / "slow.py"
    model.write_text(SLOW, encoding="utf-8")
    try:
        sid = submitted_id(ok(cli(["submit", str(model), "-e", "mnist"], env)))
        (run_dir,) = query(home, "SELECT run_dir FROM submissions WHERE id = ?", (sid,))[0]
        progress = Path(run_dir) / "progress.jsonl"
        wait_for("an epoch to start", lambda: progress.exists() and '"epoch_start"' in progress.read_text(),
                 timeout=600, interval=0.1)
        out = ok(cli(["status", str(sid)], env))
        assert {r["id"]: r for r in table_rows(out)}[str(sid)]["state"] == "running", out
        (pid,) = worker_pids(home)
        assert not (Path(run_dir) / "output" / "result.json").exists(), "the job finished before it could be killed"
        os.kill(pid, signal.SIGKILL)
        wait_for("the killed worker to be gone", lambda: gone(pid), timeout=60, interval=0.1)

        # reads only read: nothing is reconciled by `status` itself, it only makes sure a worker runs
        out = ok(cli(["sync"], env))  # the explicit reconciliation: the orphaned job is requeued
        assert "requeued 0" in out  # the local spool requeues a dead worker's job itself (poll → orphan)
        (state, reason) = query(home, "SELECT state, scheduler_reason FROM submissions WHERE id = ?", (sid,))[0]
        assert state in ("queued", "running") and "requeued" in (reason or ""), (state, reason)
        assert integrity(home) == "ok"

        wait_all_finished(home, env)
        out = ok(cli(["status", str(sid)], env))
        row = {r["id"]: r for r in table_rows(out)}[str(sid)]
    finally:
        stop_workers(home)
    (state, reason, message, job_id) = query(home, "SELECT state, reason, message, job_id FROM submissions "
                                                   "WHERE id = ?", (sid,))[0]
    assert row["state"] == state
    (entry,) = (queue_dir(home) / "done").glob(f"*-{job_id}.json")
    assert json.loads(entry.read_text())["attempts"] == 1  # run twice: killed once, requeued once
    assert state == "done" or (state == "failed" and reason and message), (state, reason, message)
    assert query(home, "SELECT count(*) FROM results WHERE submission_id = ?", (sid,))[0][0] == 1
    if state == "done":  # graded although this course has no reference results yet (was a TypeError in grading)
        assert "reference results are missing" in ok(cli(["show", str(sid)], env))
    assert integrity(home) == "ok"


# --------------------------------------------------------------------------------------------
# a small graded course shared by the read-side tests (each works on its own copy of the database)
# --------------------------------------------------------------------------------------------

@dataclass
class Graded:
    course: Path
    home: Path
    env: dict[str, str]  # as alice, the configured instructor
    files: dict[str, Path]
    ids: dict[str, int]


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Graded]:
    """Alice (instructor) submits for bob (twice) and carol; the mnist baseline is measured first."""
    root = tmp_path_factory.mktemp("graded")
    course = course_copy(root, keep={"mnist": ["baseline"]})
    home = root / "home"
    env = grader_env(home, course, user="alice", GRADER_INSTRUCTORS='["alice"]')
    files = {"bob_1": dense(root / "bob_1.py", 16), "bob_2": dense(root / "bob_2.py", 48),
             "carol": dense(root / "carol.py", 8)}
    ids = {}
    try:
        for key, path in files.items():
            ids[key] = submitted_id(ok(cli(["submit", str(path), "-e", "mnist", "--student", key.split("_")[0]],
                                              env)))
        wait_all_finished(home, env)
        wait_for("the worker to exit", lambda: not worker_pids(home), timeout=120)
        yield Graded(course=course, home=home, env=env, files=files, ids=ids)
    finally:
        stop_workers(home)


def _private(graded: Graded, tmp_path: Path, course: Path | None = None) -> tuple[Path, dict[str, str]]:
    home = clone_home(graded.home, tmp_path / "home")
    return home, {**graded.env, "GRADER_HOME": str(home), "GRADER_COURSE_DIR": str(course or graded.course)}


def _grades(home: Path) -> dict[int, tuple[float, dict[str, float]]]:
    out = {}
    for sid, score, grade in query(home, "SELECT r.submission_id, r.score, r.grade FROM results r "
                                         "JOIN submissions s ON s.id = r.submission_id WHERE s.reference_name IS NULL"):
        out[sid] = (score, {c["id"]: c["points"] for c in json.loads(grade)["criteria"]})
    return out


# --------------------------------------------------------------------------------------------
# (4) regrade after a rubric change, with every way of starting a job forbidden
# --------------------------------------------------------------------------------------------

@pytest.mark.tf
def test_regrade_applies_a_changed_threshold_without_training(graded: Graded, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import grader.sandbox.supervisor as sandbox
    import grader.service.runs as runs
    from grader.backends.local import LocalBackend
    from grader.cli.app import app

    course = tmp_path / "course"
    shutil.copytree(graded.course, course)
    rubric = course / "rubrics" / "mnist.toml"
    text = rubric.read_text(encoding="utf-8")
    assert "max_params = 1_300_000" in text
    rubric.write_text(text.replace("max_params = 1_300_000", "max_params = 1_000"), encoding="utf-8")
    home, env = _private(graded, tmp_path, course)
    before = _grades(home)
    assert all(points["budget"] == 1 for _, points in before.values()), before

    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("regrade tried to start a job")

    for target, name in ((LocalBackend, "_start"), (LocalBackend, "ensure_worker"), (sandbox, "supervise"),
                         (runs, "run_foreground"), (runs, "prepare_run"), (subprocess, "Popen")):
        monkeypatch.setattr(target, name, forbidden)
    use_env(monkeypatch, env)
    result = CliRunner().invoke(app, ["regrade", "-e", "mnist"], catch_exceptions=False)
    monkeypatch.undo()  # subprocesses are allowed again (for `grader show` below)
    assert result.exit_code == 0, result.output
    n_results = query(home, "SELECT count(*) FROM results")[0][0]
    assert f"regraded {n_results} result(s) of mnist" in result.output

    after = _grades(home)
    assert set(after) == set(before) == set(graded.ids.values())
    for sid, (score, points) in after.items():
        assert points["budget"] == 0, points  # every model has more than 1,000 parameters
        assert score == pytest.approx(before[sid][0] - 1)
        assert {k: v for k, v in points.items() if k != "budget"} == \
               {k: v for k, v in before[sid][1].items() if k != "budget"}
    assert "over the budget of 1,000" in ok(cli(["show", str(graded.ids["bob_1"])], env))
    assert not (home / "runs").exists() and not (home / "local-queue").exists()  # nothing was run


# --------------------------------------------------------------------------------------------
# (5) the result cache
# --------------------------------------------------------------------------------------------

@pytest.mark.tf
def test_identical_resubmission_is_answered_from_the_cache(graded: Graded, tmp_path: Path) -> None:
    home, env = _private(graded, tmp_path)
    first = graded.ids["bob_1"]
    out = ok(cli(["submit", str(graded.files["bob_1"]), "-e", "mnist", "--student", "bob"], env))
    new = submitted_id(out)
    assert new != first
    assert f"identical to submission {first}" in out and "answered from its stored result, no new job" in out
    (state, cached_from, job_id) = query(home, "SELECT state, cached_from, job_id FROM submissions WHERE id = ?",
                                         (new,))[0]
    assert (state, cached_from, job_id) == ("done", first, None)
    scores = dict(query(home, "SELECT submission_id, score FROM results WHERE submission_id IN (?, ?)", (first, new)))
    assert scores[new] == scores[first]
    assert not (home / "runs").exists(), "a cached answer must not create a run directory"
    assert not (home / "local-queue").exists(), "a cached answer must not touch the queue"
    shown = ok(cli(["show", str(new)], env))
    assert f"answered from the stored result of submission {first}" in shown


# --------------------------------------------------------------------------------------------
# (6) cancel, (7) quotas: no training (the test holds the worker lock, so jobs stay queued)
# --------------------------------------------------------------------------------------------

def _quota_line(stdout: str, exercise: str = "mnist") -> str:
    found = re.search(rf"^{exercise}: .*$", stdout, re.M)
    assert found, stdout
    return found.group(0)


def test_cancel_a_queued_job_refunds_the_quota(tmp_path: Path) -> None:
    course = course_copy(tmp_path)
    home = tmp_path / "home"
    env = grader_env(home, course, user="bob", GRADER_INSTRUCTORS='["alice"]', GRADER_QUOTA_PER_WINDOW="2")
    with worker_lock_held(home):
        sid = submitted_id(ok(cli(["submit", str(dense(tmp_path / "m.py", 16)), "-e", "mnist"], env)))
        out = ok(cli(["status"], env))
        assert {r["id"]: r for r in table_rows(out)}[str(sid)]["state"] == "queued"
        assert _quota_line(out) == "mnist: 1 of 2 submissions left"

        refused = cli(["cancel", str(sid)], as_user(env, "carol"))  # someone else's: as if it did not exist
        assert refused.returncode == 7 and f"no submission with id {sid}" in refused.stderr

        assert f"cancellation requested for submission {sid}" in ok(cli(["cancel", str(sid)], env))
        ok(cli(["sync"], as_user(env, "alice")))  # reads never reconcile: the worker (here: sync) records it
        out = ok(cli(["status", str(sid)], env))
    row = {r["id"]: r for r in table_rows(out)}[str(sid)]
    assert (row["state"], row["detail"]) == ("cancelled", "cancelled"), out
    assert _quota_line(out) == "mnist: 2 of 2 submissions left"
    assert query(home, "SELECT state, reason, counts_for_quota FROM submissions WHERE id = ?", (sid,)) == \
        [("cancelled", "cancelled", 0)]
    assert query(home, "SELECT outcome FROM results WHERE submission_id = ?", (sid,)) == [("cancelled",)]
    assert len(list((queue_dir(home) / "cancelled").glob("*.json"))) == 1
    run_dir = Path(query(home, "SELECT run_dir FROM submissions WHERE id = ?", (sid,))[0][0])
    assert not (run_dir / "output" / "result.json").exists()
    assert "already cancelled" in ok(cli(["cancel", str(sid)], env))


def test_quotas_refusal_refunds_exemption_and_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from grader.backends.local import LocalBackend
    from grader.cli.app import main

    course = course_copy(tmp_path)
    home = tmp_path / "home"
    env = grader_env(home, course, user="bob", GRADER_INSTRUCTORS='["alice"]', GRADER_QUOTA_PER_WINDOW="2")
    files = iter(dense(tmp_path / "subs" / f"m{i}.py", 8 + i) for i in range(20))

    def submit(user: str) -> subprocess.CompletedProcess[str]:
        return cli(["submit", str(next(files)), "-e", "mnist"], as_user(env, user))

    with worker_lock_held(home):
        # two submissions in the window, then a refusal that says when the next slot opens
        first = submitted_id(ok(submit("bob")))
        second = submitted_id(ok(submit("bob")))
        refused = submit("bob")
        assert refused.returncode == 8, refused.stderr  # QuotaError
        (created,) = query(home, "SELECT created_at FROM submissions WHERE id = ?", (first,))[0]
        opens = (datetime.fromisoformat(created).replace(tzinfo=UTC) + timedelta(hours=24)).strftime("%Y-%m-%d %H:%M")
        assert f"bob has used all 2 submissions for mnist in the last 24 h; the next slot opens at {opens} UTC" in \
            " ".join(refused.stderr.split())
        assert query(home, "SELECT count(*) FROM submissions s JOIN participants p ON p.id = s.participant_id "
                           "WHERE p.name = 'bob'")[0][0] == 2  # nothing was queued for the refused one
        out = ok(cli(["status"], env))
        assert _quota_line(out) == f"mnist: 0 of 2 submissions left; next slot {opens} UTC"

        # an infrastructure failure is refunded: the job vanished from the queue before it ran
        (job_id,) = query(home, "SELECT job_id FROM submissions WHERE id = ?", (second,))[0]
        (entry,) = (queue_dir(home) / "queue").glob(f"*-{job_id}.json")
        entry.unlink()
        ok(cli(["sync"], as_user(env, "alice")))  # the reconciliation notices the job vanished
        out = ok(cli(["status"], env))
        row = {r["id"]: r for r in table_rows(out)}[str(second)]
        assert (row["state"], row["detail"]) == ("failed", "infrastructure"), out
        assert _quota_line(out) == "mnist: 1 of 2 submissions left"
        ok(submit("bob"))
        assert submit("bob").returncode == 8

        # ... and so is a job that could not even be started (in-process, with a broken backend)
        def broken(_self: object, _run: object, _job: object) -> str:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(LocalBackend, "_start", broken)
        use_env(monkeypatch, as_user(env, "carol"))
        monkeypatch.setattr(sys, "argv", ["grader", "submit", str(next(files)), "-e", "mnist"])
        capsys.readouterr()
        with pytest.raises(SystemExit) as stopped:
            main()
        monkeypatch.undo()
        err = " ".join(capsys.readouterr().err.split())
        assert stopped.value.code == 5, err  # BackendError: one red line, not a traceback
        assert "could not be started" in err and "No space left on device" in err
        assert "it does not count against your quota" in err
        assert query(home, "SELECT s.state, s.reason, s.counts_for_quota FROM submissions s JOIN participants p "
                           "ON p.id = s.participant_id WHERE p.name = 'carol'") == [("failed", "infrastructure", 0)]
        assert _quota_line(ok(cli(["status"], as_user(env, "carol")))) == "mnist: 2 of 2 submissions left"

        # instructors are exempt
        for _ in range(3):
            ok(submit("alice"))
        assert "submissions left" not in ok(cli(["status"], as_user(env, "alice")))

        # a per-participant override, which only an instructor may set
        denied = cli(["quota", "set", "bob", "-e", "mnist", "--limit", "3"], env)
        assert denied.returncode == 9 and "changing quotas is for instructors only" in denied.stderr
        assert "bob: 3 submissions per window on mnist" in \
            ok(cli(["quota", "set", "bob", "-e", "mnist", "--limit", "3"], as_user(env, "alice")))
        ok(submit("bob"))
        refused = submit("bob")
        assert refused.returncode == 8 and "bob has used all 3 submissions" in refused.stderr
    assert integrity(home) == "ok"


# --------------------------------------------------------------------------------------------
# (8) grade export, (9) no TensorFlow on the read side, (10) the private board
# --------------------------------------------------------------------------------------------

@pytest.mark.tf
def test_export_grades_one_row_per_participant_and_a_column_per_criterion(graded: Graded, tmp_path: Path) -> None:
    home, env = _private(graded, tmp_path)
    out = ok(cli(["export", "grades", "--exercise", "mnist", "--format", "csv"], env))
    rows = list(csv.DictReader(io.StringIO(out)))
    criteria = [c["id"] for c in tomllib.loads((graded.course / "rubrics" / "mnist.toml").read_text())["criteria"]]
    header = next(csv.reader(io.StringIO(out)))
    assert header[:7] == ["participant_id", "display_name", "email", "assignment", "submission_id", "score",
                          "max_score"]
    assert header[7:7 + len(criteria)] == criteria
    assert sorted(r["participant_id"] for r in rows) == ["bob", "carol"]  # one row each; references excluded
    assert {r["assignment"] for r in rows} == {"mnist"} and all(r["submitted_at"] for r in rows)
    by_name = {r["participant_id"]: r for r in rows}
    assert by_name["bob"]["submissions"] == "2" and by_name["carol"]["submissions"] == "1"
    best_bob = max((graded.ids["bob_1"], graded.ids["bob_2"]),
                   key=lambda sid: (query(home, "SELECT score FROM results WHERE submission_id = ?", (sid,))[0][0], -sid))
    assert by_name["bob"]["submission_id"] == str(best_bob)
    for r in rows:
        assert float(r["score"]) == pytest.approx(sum(float(r[c]) for c in criteria))
        assert float(r["max_score"]) == 10
    denied = cli(["export", "grades", "--exercise", "mnist"], as_user(env, "bob"))
    assert denied.returncode == 9 and "for instructors only" in denied.stderr
    as_json = json.loads(ok(cli(["export", "grades", "--exercise", "mnist", "--format", "json"], env)))
    assert sorted(r["participant_id"] for r in as_json["rows"]) == ["bob", "carol"]


PROBE = """
import sys
from grader.cli.app import app
try:
    code = app(sys.argv[1:], prog_name="grader", standalone_mode=False)
except SystemExit as exc:
    code = exc.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "keras"})
print(f"PROBE code={code} heavy={','.join(heavy) or 'none'}")
"""


@pytest.mark.tf
@pytest.mark.parametrize("args", [["--help"], ["status", "--all"], ["leaderboard", "-e", "mnist"], ["show", "bob_1"],
                                  ["export", "grades", "--exercise", "mnist", "--format", "csv"]],
                         ids=["help", "status", "leaderboard", "show", "export"])
def test_read_commands_never_import_tensorflow(graded: Graded, tmp_path: Path, args: list[str]) -> None:
    _, env = _private(graded, tmp_path)
    args = [str(graded.ids[a]) if a in graded.ids else a for a in args]
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    probe = proc.stdout.strip().splitlines()[-1]
    assert probe in ("PROBE code=0 heavy=none", "PROBE code=None heavy=none"), proc.stdout + proc.stderr
    assert len(proc.stdout) > 200  # the command did its work (a table, a CSV, the help)


@pytest.mark.tf
def test_private_board_and_rank_change_are_for_instructors(graded: Graded, tmp_path: Path) -> None:
    _, env = _private(graded, tmp_path)
    out = ok(cli(["leaderboard", "-e", "mnist", "--private"], env))
    assert "Leaderboard: mnist (smoke, private half)" in out
    rows = table_rows(out)
    people = [r for r in rows if r["rank"]]
    assert sorted(r["participant"] for r in people) == ["bob", "carol"]
    assert all(re.fullmatch(r"[+-]\d+", r["±"]) for r in people), rows  # rank change vs the public board
    assert all(r["±"] == "" for r in rows if not r["rank"])  # references are not ranked
    assert sum(int(r["±"]) for r in people) == 0
    assert "private acc" in out

    denied = cli(["leaderboard", "-e", "mnist", "--private"], as_user(env, "bob"))
    assert denied.returncode != 0 and "the private leaderboard is for instructors only" in denied.stderr
    public = ok(cli(["leaderboard", "-e", "mnist"], as_user(env, "bob")))
    assert "public half" in public and "±" not in public


def test_gpu_slots_pack_jobs_onto_the_least_busy_gpu() -> None:
    from grader.backends.local import GpuSlots

    slots = GpuSlots("0,1", per_gpu=2)
    assert slots.capacity == 4
    taken = [slots.take() for _ in range(5)]
    assert taken == ["0", "1", "0", "1", None]
    slots.give("1")
    assert slots.take() == "1"
    assert GpuSlots("", per_gpu=4).capacity is None and GpuSlots("", per_gpu=4).take() is None


def test_a_new_worker_requeues_what_a_killed_worker_was_running(tmp_path: Path) -> None:
    """`grader serve` killed with SIGKILL: its worker thread held the lock, so the next one recovers."""
    from grader.backends.base import JobState
    from grader.backends.local import Entry, Spool

    spool = Spool(tmp_path / "spool")
    for job_id in ("a", "b"):
        spool.enqueue(Entry(job_id=job_id, run_dir=str(tmp_path / job_id), job="{}"))
    claimed = spool.claim()
    assert claimed is not None and spool.names("running") == [claimed[0]]
    with spool.worker_lock() as mine:
        assert mine
        assert spool.recover() == [claimed[0]]
    assert spool.names("running") == [] and len(spool.names("queue")) == 2
    entry = spool.read("queue", claimed[0])
    assert entry is not None and entry.attempts == 1 and entry.worker_died
    spool.move(claimed[0], "queue", "running")
    assert spool.orphan(claimed[0]).state is JobState.NODE_FAIL  # the second death gives up


# --------------------------------------------------------------------------------------------
# (9) the command line's database and the config file's isolation reach the worker and the job
# --------------------------------------------------------------------------------------------

@pytest.mark.tf
def test_db_url_and_config_isolation_reach_the_worker_and_the_job(tmp_path: Path) -> None:
    """`grader --db-url sqlite:///X submit … --wait` ingests into X (the worker is handed the resolved
    settings, not just GRADER_HOME), and `isolation = "none"` in config.toml is what the supervisor uses
    and what `grader doctor` reports."""
    course = course_copy(tmp_path)  # no reference solutions: one job
    home = tmp_path / "home"
    other = tmp_path / "elsewhere" / "class.db"
    other.parent.mkdir()
    config = tmp_path / "config.toml"
    config.write_text('isolation = "none"\nlandlock = false\n', encoding="utf-8")
    env = {**grader_env(home, course), "GRADER_CONFIG": str(config)}
    try:
        out = ok(cli(["--db-url", f"sqlite:///{other}", "submit", str(dense(tmp_path / "m.py", 16)), "-e", "mnist",
                      "--wait"], env))
    finally:
        stop_workers(home)
    assert "Score" in out
    con = sqlite3.connect(other)
    try:
        (state, run_dir), = con.execute("SELECT state, run_dir FROM submissions").fetchall()
    finally:
        con.close()
    assert state == "done"
    assert not (home / "grader.db").exists(), "something opened the default database instead of --db-url"
    report = json.loads((Path(run_dir) / "supervisor.json").read_text())
    assert (report["namespaces"], report["filesystem_view"], report["landlock_abi"]) == ("none", False, 0)
    doctor = json.loads(cli(["doctor", "--json"], env).stdout)
    assert doctor["filesystem_view"] is False
    assert any(layer["layer"] == "namespaces" and not layer["active"] for layer in doctor["layers"])
