"""Hostile submissions (tests/hostile/*.py) through the real pipeline: prepare_run, the sandbox
supervisor as a subprocess (`python -m grader.sandbox RUN_DIR`), then the coordinator's ingest.

Each hostile file is a valid submission that also misbehaves; the test says which defence layer
(DESIGN.md, threat model) stops it. What a hostile file found it prints as a "GRADER-FOUND {json}"
line, which the supervisor keeps in stdout.log (the job itself can write nothing outside its scratch
folder). Tests that need namespace isolation skip, naming bwrap/unshare, where this host cannot
create namespaces (`grader doctor` says why). In every case the grader itself keeps working and
reports a specific outcome, and no process of the job survives it.
"""

from __future__ import annotations

import functools
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

from grader.backends.base import write_job_json
from grader.datasets import heldout_labels
from grader.landlock import abi_version
from grader.outcomes import ErrorKind, Outcome
from grader.results import SupervisorReport, Verdict
from grader.rundir import RunDir
from grader.sandbox import Policy, detect_isolation
from grader.sandbox.supervisor import OUTPUT_CAP_BYTES
from grader.service.ingest import Ingested, ingest
from grader.service.runs import prepare_run
from grader.settings import SAMPLES_DIR, Settings
from grader.specs.catalog import ExerciseCatalog
from grader.submission import check_source

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
    report: SupervisorReport  # what the supervisor measured and decided
    got: Ingested  # what the coordinator makes of it
    run: RunDir
    found: dict[str, Any] | None  # what the hostile submission reported about itself


def supervise(settings: Settings, name: str, probe: dict[str, Any] | None = None, *,
              limits: dict[str, Any] | None = None, isolation_mode: str | None = None, landlock: bool = True,
              run_id: str | None = None) -> Supervised:
    spec = CATALOG.get("mnist")
    src = source(name, probe)
    info = check_source(src, f"{name}.py", spec)
    run, job = prepare_run(src, info, spec, "smoke", None, settings, run_id=run_id or name)
    iso = job.isolation.model_copy(update={"landlock": landlock, **({"namespaces": isolation_mode}
                                                                     if isolation_mode else {})})
    job = job.model_copy(update={"isolation": iso, **(limits or {})})
    write_job_json(run, job)
    proc = subprocess.run(["nice", "-n", "10", sys.executable, "-m", "grader.sandbox", str(run.path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"the supervisor itself failed: {proc.stderr[-3000:]}"
    report = SupervisorReport.model_validate_json(run.supervisor_json.read_text())
    assert proc.stdout.strip() == report.verdict.value
    got = ingest(run, job, heldout_labels(spec, "smoke", settings))
    found = None
    for line in run.stdout_log.read_text(errors="replace").splitlines():
        if line.startswith("GRADER-FOUND "):
            found = json.loads(line.removeprefix("GRADER-FOUND "))
    assert survivors(str(run.path)) == [], "a process of the job outlived it"
    return Supervised(report, got, run, found)


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
    src = "def build_model():\n    pass\n"
    run, job = prepare_run(src, check_source(src, "x.py"), CATALOG.get("mnist"), "smoke", None, settings,
                           run_id="unsandboxed")
    write_job_json(run, job)
    loot = _load_hostile("reads_labels", planted).hunt(run.path)
    assert loot["recovered"] == 500
    assert str(SAMPLES_DIR / "mnist.npz") in loot["opened"]


@pytest.mark.parametrize(("mode", "landlock"), [("bwrap", False), ("none", True), ("bwrap", True)],
                         ids=["bwrap-view", "landlock-view-without-namespaces", "both"])
def test_reads_labels_finds_nothing_and_scores_at_chance(settings: Settings, planted: dict[str, Any], mode: str,
                                                         landlock: bool) -> None:
    """Either filesystem view alone hides every label file: bwrap's mounts, or Landlock without any namespace
    (the README quick start before bubblewrap is installed)."""
    if mode == "bwrap":
        needs("bwrap")
    if landlock and not abi_version():
        pytest.skip("this kernel has no Landlock")
    out = supervise(settings, "reads_labels", planted, isolation_mode=mode, landlock=landlock,
                    run_id=f"hunt-{mode}-{landlock}")
    assert out.found is not None, "the hostile model did not run"
    assert out.found == {"opened": [], "recovered": 0}, "the job could read held-out labels"
    assert out.got.result.outcome is Outcome.OK, out.got.result.message
    assert out.got.metrics is not None
    assert out.got.metrics.accuracy == pytest.approx(0.1)  # every image called "0": chance, not 1.0
    assert out.report.namespaces == mode and out.report.filesystem_view
    assert (out.report.landlock_abi > 0) is landlock


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
    # refused by the empty network namespace, or earlier by Landlock's TCP rule (inside bwrap too)
    assert any(w in out.found["error"].lower() for w in ("refused", "unreachable", "permission denied"))
    assert received == []
    assert out.got.result.outcome is Outcome.OK  # it still trained and was graded
    assert out.got.metrics is not None
    assert out.report.namespaces in ("bwrap", "unshare")


def test_landlock_alone_blocks_tcp(settings: Settings, listener: tuple[int, list[bytes]]) -> None:
    if abi_version() < 4:
        pytest.skip("Landlock ABI 4 (Linux 6.7) is needed to block TCP without namespaces")
    port, received = listener
    out = supervise(settings, "opens_socket", {"port": port}, isolation_mode="none", run_id="socket-landlock")
    assert out.found is not None and out.found["connected"] is False, out.found
    assert "permission" in out.found["error"].lower()
    assert received == []
    assert out.got.result.outcome is Outcome.OK


# --- 3. a detached child ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["auto", "none"])
def test_detached_child_does_not_survive(settings: Settings, mode: str) -> None:
    """`auto`: the PID namespace dies with the job; `none`: the supervisor is a subreaper and kills strays."""
    if mode == "auto":
        needs("bwrap", "unshare")
    marker = f"grader-hostile-child-{uuid.uuid4().hex}"
    out = supervise(settings, "forks_child", {"marker": marker}, isolation_mode=mode, run_id=f"fork-{mode}")
    assert out.found == {"child_started": True}, "the grandchild never started: the test proves nothing"
    assert survivors(marker) == []
    assert out.got.result.outcome is Outcome.OK and out.got.metrics is not None
    if mode == "none":
        assert out.report.namespaces == "none"
        assert out.report.killed_strays >= 1


# --- 4. filling the disk ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["bwrap", "none"])
def test_five_500_megabyte_files_hit_the_disk_quota(settings: Settings, mode: str) -> None:
    """bwrap: the scratch folder is a tmpfs of 512 MB, so writing stops there (ENOSPC / file size);
    without bwrap: the supervisor measures the scratch folder and stops the job past its quota."""
    if mode == "bwrap":
        needs("bwrap")
    out = supervise(settings, "writes_1gb", isolation_mode=mode, run_id=f"disk-{mode}")
    quota = Policy.model_fields["scratch_mb"].default * 1024 * 1024
    if mode == "bwrap":
        assert out.found is not None
        assert out.found["written"] <= quota < 5 * 500 * 1024**2
        assert "No space left" in (out.found["error"] or "") or "File too large" in (out.found["error"] or "")
        assert out.got.result.outcome is Outcome.OK and out.got.metrics is not None  # the grader kept working
    else:
        assert out.report.verdict is Verdict.DISK_QUOTA
        assert out.got.result.error_kind is ErrorKind.DISK_QUOTA
        assert "512 MB disk quota" in (out.got.result.message or "") or "disk quota" in (out.got.result.message or "")
    assert not out.run.scratch.exists(), "the scratch folder (and the files in it) is removed at the end"


# --- 5. running forever, ignoring SIGTERM ------------------------------------------------------------

@pytest.mark.parametrize("mode", ["auto", "none"])
def test_sleeper_that_ignores_sigterm_is_stopped_at_the_start_up_limit(settings: Settings, mode: str) -> None:
    """An endless loop at import never reaches training: the start-up limit ends it, and says where.
    `none`: SIGTERM to the job's process group is ignored, so SIGKILL follows after the grace.
    `auto` (bwrap): SIGTERM ends bwrap, and the job dies with it (--die-with-parent)."""
    # 40 s: long enough for TensorFlow's import (3-16 s here) so the submission really sleeps
    # with SIGTERM ignored when the limit strikes.
    out = supervise(settings, "sleeps_forever", limits={"wall_seconds": 120, "build_seconds": 40},
                    isolation_mode=mode, run_id=f"sleep-{mode}")
    if mode == "none":
        assert out.report.signal == 9, "SIGTERM was ignored, so only SIGKILL can have ended it"
    assert out.found == {"sleeping": True}, "the submission never reached its sleep (TensorFlow slower than 40 s?)"
    assert out.report.verdict is Verdict.BUILD_TIMEOUT and out.report.last_phase == "importing submission"
    assert out.got.result.outcome is Outcome.TIMEOUT and out.got.result.error_kind is ErrorKind.BUILD_TIMEOUT
    assert "importing your file did not finish within 40 s" in (out.got.result.message or "")
    assert out.report.wall_seconds < 60, "it waited for the wall-clock limit instead of the start-up limit"
    assert out.got.metrics is None


# --- 6. flooding the output ----------------------------------------------------------------------------

def test_output_flood_is_capped(settings: Settings) -> None:
    out = supervise(settings, "floods_output")
    trailer = b"\n[output truncated by grader]\n"
    for log in (out.run.stdout_log, out.run.stderr_log):
        data = log.read_bytes()
        assert len(data) <= OUTPUT_CAP_BYTES + len(trailer)
        assert data.endswith(trailer)
    assert out.report.stdout_truncated and out.report.stderr_truncated
    assert out.got.result.outcome is Outcome.OK and out.got.metrics is not None  # still trained: pipes kept draining


# --- 7. faking the result --------------------------------------------------------------------------------

def test_fake_result_and_pickled_predictions_get_no_credit(settings: Settings, tmp_path: Path) -> None:
    marker = tmp_path / "coordinator-unpickled-something"
    out = supervise(settings, "fakes_result", {"marker": str(marker)})
    # the fake frames are well formed, so the supervisor stores them; the coordinator checks every claim
    assert out.report.verdict is Verdict.COMPLETED and out.report.exit_code == 0
    assert out.got.metrics is None, "a faked result was scored"
    assert out.got.result.outcome is Outcome.INVALID
    assert out.got.result.error_kind is ErrorKind.INVALID_RESULT
    assert "weights cannot be checked" in (out.got.result.message or "")  # no weights: the claims stand alone
    assert not marker.exists(), "the coordinator unpickled data from the sandbox"
    with pytest.raises(ValueError, match="allow_pickle"):
        np.load(out.run.predictions, allow_pickle=False)
