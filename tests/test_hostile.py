"""Hostile submissions (tests/hostile/*.py) through the real pipeline: prepare_run, the sandbox
supervisor as a subprocess (`python -m grader.sandbox RUN_DIR`), then the coordinator's ingest.

Each hostile file is a valid submission that also misbehaves; the test says which defence layer
(DESIGN.md, threat model) stops it. Tests that need namespace isolation skip, naming bwrap/unshare,
where this host cannot create namespaces (`grader doctor` says why). In every case the grader
itself keeps working and reports a specific outcome, and no process of the job survives it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import types
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from grader.results import ErrorKind, JobResult, Outcome, load_result
from grader.rundir import RunDir, atomic_write_text
from grader.sandbox import OUTPUT_CAP_BYTES, Policy, detect_isolation
from grader.service.runs import Ingested, ingest, prepare_run
from grader.settings import SAMPLES_DIR, Settings
from grader.specs.catalog import ExerciseCatalog

pytestmark = pytest.mark.tf

REPO = Path(__file__).resolve().parents[1]
HOSTILE = Path(__file__).resolve().parent / "hostile"
CATALOG = ExerciseCatalog(REPO)
PROBE_LINE = "PROBE: dict = {}"
REAL_DATA = str(Path(os.environ["GRADER_DATA_DIR"]).resolve()) if os.environ.get("GRADER_DATA_DIR") else None


@functools.cache
def isolation() -> str:
    return detect_isolation(os.environ.get("GRADER_ISOLATION", "auto")).namespaces


def needs(*modes: str) -> None:
    if isolation() not in modes:
        detail = detect_isolation("auto").namespaces_detail
        pytest.skip(f"needs {' or '.join(modes)} namespaces (active here: {isolation()}; {detail})")


def source(name: str, probe: dict[str, Any] | None = None) -> str:
    text = (HOSTILE / f"{name}.py").read_text(encoding="utf-8")
    if probe is not None:
        assert PROBE_LINE in text
        text = text.replace(PROBE_LINE, f"PROBE: dict = {probe!r}", 1)
    return text


def survivors(*needles: str) -> list[str]:
    """Processes whose command line mentions a needle (the run dir, a marker)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if int(proc.name) != os.getpid() and any(n.encode() in cmdline for n in needles):
            found.append(f"{proc.name}: {cmdline[:300]!r}")
    return found


@dataclass
class Supervised:
    result: JobResult  # the supervisor's verdict (result.json after supervision)
    got: Ingested  # what the coordinator makes of it
    run: RunDir
    supervisor: dict[str, Any]
    found: dict[str, Any] | None  # what the hostile submission reported about itself


def supervise(settings: Settings, name: str, probe: dict[str, Any] | None = None, wall_seconds: int | None = None,
              env: dict[str, str] | None = None, run_id: str | None = None) -> Supervised:
    spec = CATALOG.get("mnist")
    src = source(name, probe)
    run, job = prepare_run(src, hashlib.sha256(src.encode()).hexdigest(), spec, "smoke", None, settings,
                           run_id=run_id or name)
    if wall_seconds is not None:
        atomic_write_text(run.job_json, job.model_copy(update={"wall_seconds": wall_seconds}).model_dump_json())
    proc = subprocess.run(["nice", "-n", "10", sys.executable, "-m", "grader.sandbox", str(run.path)],
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600)
    assert proc.returncode == 0, f"the supervisor itself failed: {proc.stderr[-3000:]}"
    result = load_result(run.result_json)
    assert proc.stdout.strip() == result.outcome.value
    got = ingest(run, spec, "smoke", settings)
    found_path = run.path / "found.json"
    found = json.loads(found_path.read_text()) if found_path.exists() else None
    assert survivors(str(run.path)) == [], "a process of the job outlived it"
    return Supervised(result, got, run, json.loads(run.supervisor_json.read_text()), found)


# --- 1. reading the held-out labels ------------------------------------------------------------

def _load_hostile(name: str, probe: dict[str, Any]) -> Any:
    """Import a hostile file here, without writing bytecode next to it."""
    path = HOSTILE / f"{name}.py"
    module = types.ModuleType(f"hostile_{name}")
    module.__file__ = str(path)
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), module.__dict__)
    module.PROBE = probe
    return module


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Label files where a careless setup would leave them: a data dir and a user's ~/.keras cache."""
    data_dir = tmp_path / "data"
    keras_cache = tmp_path / "user-home" / ".keras" / "datasets"
    for folder in (data_dir, keras_cache):
        folder.mkdir(parents=True)
        shutil.copyfile(SAMPLES_DIR / "mnist.npz", folder / "mnist.npz")  # the smoke profile's answer key
    monkeypatch.setenv("GRADER_DATA_DIR", str(data_dir))
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    paths = [str(SAMPLES_DIR), str(data_dir), str(keras_cache)]
    if REAL_DATA:
        paths.append(REAL_DATA)  # the full datasets (CI: ../shared/datasets)
    return {"paths": paths}


def test_label_hunter_would_succeed_without_a_sandbox(settings: Settings, planted: dict[str, Any]) -> None:
    """Guard against a toothless test: run the hunt in this (unsandboxed) process."""
    run, _ = prepare_run("def build_model():\n    pass\n", "0" * 64, CATALOG.get("mnist"), "smoke", None, settings,
                         run_id="unsandboxed")
    loot = _load_hostile("reads_labels", planted).hunt(run.path)
    assert loot["recovered"] == 500
    assert str(SAMPLES_DIR / "mnist.npz") in loot["opened"]


def test_reads_labels_finds_nothing_and_scores_at_chance(settings: Settings, planted: dict[str, Any]) -> None:
    needs("bwrap")  # the filesystem view: `unshare` alone leaves the bundled samples readable
    out = supervise(settings, "reads_labels", planted, env={"GRADER_ISOLATION": "bwrap"})
    assert out.found is not None, "the hostile model did not run"
    assert out.found == {"opened": [], "recovered": 0}, "the job could read held-out labels"
    assert out.result.outcome is Outcome.OK
    assert out.got.metrics is not None
    assert out.got.metrics.accuracy == pytest.approx(0.1)  # every image called "0": chance, not 1.0
    assert out.supervisor["namespaces"] == "bwrap"


# --- 2. the network ------------------------------------------------------------------------------

@pytest.fixture
def listener() -> Iterator[tuple[int, list[bytes]]]:
    """A real TCP listener on 127.0.0.1 that records every connection it gets."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    received.append(conn.recv(100) or b"<connected>")
                except OSError:
                    received.append(b"<connected>")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], received
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def test_listener_is_reachable_from_outside_the_sandbox(listener: tuple[int, list[bytes]]) -> None:
    port, received = listener
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"hello")
    for _ in range(50):
        if received:
            break
        threading.Event().wait(0.1)
    assert received == [b"hello"]


def test_socket_to_localhost_fails(settings: Settings, listener: tuple[int, list[bytes]]) -> None:
    needs("bwrap", "unshare")  # layer 3: a network namespace has its own, empty loopback
    port, received = listener
    out = supervise(settings, "opens_socket", {"port": port})
    assert out.found is not None and out.found["connected"] is False, out.found
    assert "refused" in out.found["error"].lower() or "unreachable" in out.found["error"].lower()
    assert received == []
    assert out.result.outcome is Outcome.OK  # it still trained and was graded
    assert out.got.metrics is not None
    assert out.supervisor["namespaces"] in ("bwrap", "unshare")


# --- 3. a detached child ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["auto", "none"])
def test_detached_child_does_not_survive(settings: Settings, mode: str) -> None:
    """`auto`: the PID namespace dies with the job; `none`: the supervisor is a subreaper and kills strays."""
    if mode == "auto":
        needs("bwrap", "unshare")
    marker = f"grader-hostile-child-{uuid.uuid4().hex}"
    out = supervise(settings, "forks_child", {"marker": marker}, env={"GRADER_ISOLATION": mode}, run_id=f"fork-{mode}")
    assert out.found == {"child_started": True}, "the grandchild never started: the test proves nothing"
    assert survivors(marker) == []
    assert out.result.outcome is Outcome.OK and out.got.metrics is not None
    if mode == "none":
        assert out.supervisor["namespaces"] == "none"
        assert out.supervisor["killed_strays"] >= 1


# --- 4. filling the disk ---------------------------------------------------------------------------

def test_one_gigabyte_file_is_stopped_by_the_file_size_limit(settings: Settings) -> None:
    out = supervise(settings, "writes_1gb")
    limit = Policy.model_fields["file_size_mb"].default * 1024 * 1024
    big = out.run.path / "big.bin"
    try:
        assert out.found is not None
        assert "File too large" in (out.found["error"] or ""), out.found
        assert big.stat().st_size <= limit < 1024**3
        assert out.found["written"] <= limit
    finally:
        big.unlink(missing_ok=True)  # do not keep half a gigabyte in pytest's retained temp dirs
    assert out.result.outcome is Outcome.OK and out.got.metrics is not None  # the grader kept working


# --- 5. running forever, ignoring SIGTERM ------------------------------------------------------------

@pytest.mark.parametrize("mode", ["auto", "none"])
def test_sleeper_that_ignores_sigterm_is_killed_at_the_time_limit(settings: Settings, mode: str) -> None:
    """`none`: SIGTERM to the job's process group is ignored, so SIGKILL follows after the grace.
    `auto` (bwrap): SIGTERM ends bwrap, and the job dies with it (--die-with-parent)."""
    # 45 s: long enough for TensorFlow's import (6-16 s here) so the submission really sleeps
    # with SIGTERM ignored when the limit strikes.
    out = supervise(settings, "sleeps_forever", wall_seconds=45, env={"GRADER_ISOLATION": mode},
                    run_id=f"sleep-{mode}")
    if mode == "none":
        assert out.supervisor["signal"] == 9, "SIGTERM was ignored, so only SIGKILL can have ended it"
    assert out.result.outcome is Outcome.TIMEOUT
    assert out.result.error_kind is ErrorKind.TIMEOUT
    assert "did not finish within the 0.75-minute limit" in (out.result.message or "")
    assert out.supervisor["timed_out"] is True
    assert (out.run.path / "sleeping").exists(), "the submission never reached its sleep (TensorFlow slower than 45 s?)"
    assert out.got.metrics is None and out.got.result.outcome is Outcome.TIMEOUT


# --- 6. flooding the output ----------------------------------------------------------------------------

def test_output_flood_is_capped(settings: Settings) -> None:
    out = supervise(settings, "floods_output")
    trailer = b"\n[output truncated by grader]\n"
    for log in (out.run.stdout_log, out.run.stderr_log):
        data = log.read_bytes()
        assert len(data) <= OUTPUT_CAP_BYTES + len(trailer)
        assert data.endswith(trailer)
    assert out.supervisor["stdout_truncated"] is True and out.supervisor["stderr_truncated"] is True
    assert out.result.outcome is Outcome.OK and out.got.metrics is not None  # still trained: pipes kept draining


# --- 7. faking the result --------------------------------------------------------------------------------

def test_fake_result_and_pickled_predictions_get_no_credit(settings: Settings, tmp_path: Path) -> None:
    marker = tmp_path / "coordinator-unpickled-something"
    out = supervise(settings, "fakes_result", {"marker": str(marker)})
    # the fake is schema-valid, so the supervisor passes it on; the coordinator recomputes from predictions
    assert out.supervisor["exit_code"] == 0
    assert out.got.metrics is None, "a faked result was scored"
    assert out.got.result.outcome is Outcome.FAILED
    assert out.got.result.error_kind is ErrorKind.INVALID_RESULT
    assert "predictions cannot be scored" in (out.got.result.message or "")
    assert "not a valid .npy array" in (out.got.result.message or "")
    assert not marker.exists(), "the coordinator unpickled data from the sandbox"
    with pytest.raises(ValueError, match="allow_pickle"):
        np.load(out.run.predictions, allow_pickle=False)
