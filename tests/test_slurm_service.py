"""Issue 4's checks end to end: the real `grader` CLI, as subprocesses, on the real Slurm clusters from cluster/.

Each test has its own GRADER_HOME (the `grader_home` fixture) and, where it needs other limits, its
own copy of the course (GRADER_COURSE_DIR). Only `grader` commands act; sqlite3 (read-only) and
scontrol are used to look behind them. The jobs run `grader.job` with real TensorFlow through
`nice`, because the machine is small and shared.

`grader status` only reads: the background worker that `grader submit` starts reconciles with Slurm
(every 5 s while Slurm jobs are active) and ingests finished runs; a test may also run `grader sync`.
Most checks run on Debian's Slurm 22.05 with the CLI driver (pyslurm has no 22.05 release); the smoke
submission also runs through the pyslurm driver on the Slurm 25.11 cluster.
"""

from __future__ import annotations

import getpass
import importlib.util
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slurm_fixtures import Cluster
from slurm_fixtures import real_pyslurm as real_pyslurm  # session fixtures, shared with other Slurm tests
from slurm_fixtures import slurm25_cluster as slurm25_cluster
from slurm_fixtures import slurm_cluster as slurm_cluster

pytestmark = [pytest.mark.slurm, pytest.mark.tf]

REPO = Path(__file__).resolve().parents[1]
GRADER = Path(sys.executable).parent / "grader"
TERMINAL = ("done", "failed", "cancelled")

SLEEPY = '''"""Sleeps in build_model: finishes within no limit."""
import time


def build_model():
    time.sleep(3600)
'''

HOG = '''"""Touches 16 MB after 16 MB in build_model, far past the exercise's 512 MB."""
import numpy as np


def build_model():
    blocks = []
    for _ in range(200):
        blocks.append(np.ones(16 * 1024 * 1024 // 8))
    return blocks
'''


class Grader:
    """`grader` commands for one GRADER_HOME, plus read-only looks at its database."""

    def __init__(self, home: Path, tmp: Path, cluster: Cluster, env: dict[str, str]) -> None:
        self.home, self.tmp, self.cluster = home, tmp, cluster
        nice_python = tmp / "nice-python"  # the jobs' interpreter: the same venv, at a lower priority
        nice_python.write_text(f'#!/bin/sh\nexec nice -n 10 {sys.executable} "$@"\n')
        nice_python.chmod(0o755)
        self.env = {**os.environ, **cluster.env, "GRADER_BACKEND": "slurm", "GRADER_SLURM_PYTHON": str(nice_python),
                    **env}

    def __call__(self, *args: str, check: bool = True, timeout: float = 180) -> str:
        proc = subprocess.run(["nice", "-n", "10", str(GRADER), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"grader {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout + proc.stderr

    def submit(self, path: Path) -> int:
        out = self("submit", "--backend", "slurm", "-e", "mnist", str(path))
        m = re.search(r"^submission (\d+) queued", out, re.M)
        assert m, out
        return int(m.group(1))

    def status(self, sub_id: int) -> tuple[str, str, str]:
        """`grader status ID` (it only reads): the row's state and detail, and the whole output."""
        out = self("status", str(sub_id))
        row = next((line for line in out.splitlines() if re.match(rf"│ {sub_id} +│", line)), None)
        assert row is not None, out
        cells = [cell.strip() for cell in row.split("│")[1:-1]]
        return cells[5], cells[6], " ".join(out.split())

    def wait(self, sub_id: int, states: tuple[str, ...] = TERMINAL, timeout: float = 300) -> tuple[str, str, str]:
        deadline = time.monotonic() + timeout
        while True:
            state, detail, out = self.status(sub_id)
            if state in states:
                return state, detail, out
            if time.monotonic() > deadline:
                raise AssertionError(f"submission {sub_id} still {state} after {timeout:.0f} s:\n{out}")
            time.sleep(3)

    def row(self, sub_id: int) -> dict[str, Any]:
        with sqlite3.connect(f"file:{self.home / 'grader.db'}?mode=ro", uri=True) as db:
            db.row_factory = sqlite3.Row
            sub = dict(db.execute("SELECT * FROM submissions WHERE id = ?", (sub_id,)).fetchone())
            res = db.execute("SELECT job_result FROM results WHERE submission_id = ?", (sub_id,)).fetchone()
        sub["job_result"] = json.loads(res["job_result"]) if res else None
        return sub

    def job_ids(self) -> list[str]:
        if not (self.home / "grader.db").exists():
            return []
        with sqlite3.connect(f"file:{self.home / 'grader.db'}?mode=ro", uri=True) as db:
            return [r[0] for r in db.execute("SELECT job_id FROM submissions WHERE job_id IS NOT NULL")]

    def scontrol(self, job_id: str) -> dict[str, str]:
        out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=30,
                             check=True, env=self.env).stdout
        return dict(re.findall(r"(?:^|\s)(JobState|RunTime|TimeLimit|Reason|MinMemoryNode)=(\S*)", out))

    def cancel_jobs(self) -> None:
        """Nothing of ours keeps a GPU of the shared cluster busy."""
        for job_id in self.job_ids():
            subprocess.run(["scancel", job_id], capture_output=True, timeout=30, check=False, env=self.env)


def seconds(duration: str) -> int:
    days, _, rest = duration.rpartition("-")
    h, m, s = (int(x) for x in rest.split(":"))
    return int(days or 0) * 86400 + h * 3600 + m * 60 + s


def megabytes(size: str) -> int:
    """scontrol's sizes: 1536M, 1.50G."""
    number, unit = float(size[:-1]), size[-1]
    return round(number * {"M": 1, "G": 1024, "T": 1024 * 1024}[unit])


def set_toml(path: Path, section: str, key: str, value: object) -> None:
    """Change `key` inside `[section]` of a course file (a plain text edit keeps the rest as written)."""
    text = path.read_text()
    start = text.index(f"[{section}]\n")
    end = text.find("\n[", start + 1)
    end = len(text) if end < 0 else end
    body, n = re.subn(rf"(?m)^{re.escape(key)} = .*$", f"{key} = {value}", text[start:end])
    assert n == 1, f"{key} not found in [{section}] of {path}"
    path.write_text(text[:start] + body + text[end:])


def copy_course(tmp: Path, references: tuple[str, ...] = ()) -> Path:
    """The MNIST exercise and rubric, with only the given reference solutions (each is a job to wait for)."""
    course = tmp / "course"
    shutil.copytree(REPO / "exercises" / "mnist", course / "exercises" / "mnist")
    (course / "rubrics").mkdir()
    shutil.copy(REPO / "rubrics" / "mnist.toml", course / "rubrics" / "mnist.toml")
    refs = course / "reference_solutions" / "mnist"
    refs.mkdir(parents=True)
    for name in references:
        shutil.copy(REPO / "reference_solutions" / "mnist" / f"{name}.py", refs)
    return course


def _grader(cluster: Cluster, home: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch, driver: str) -> Iterator[Grader]:
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip(f"TensorFlow is not installed for {sys.executable}, which runs the Slurm jobs (pip install -e '.[cpu]')")
    if not GRADER.exists():
        pytest.skip(f"the grader console script is not installed next to {sys.executable} (pip install -e .)")
    monkeypatch.setenv("GRADER_COURSE_DIR", str(copy_course(tmp)))  # no references: tests that need them say so
    g = Grader(home, tmp, cluster, {"GRADER_SLURM_DRIVER": driver})
    yield g
    g.cancel_jobs()


@pytest.fixture
def grader(slurm_cluster: Cluster, grader_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Grader]:
    """`grader` on the Slurm 22.05 cluster, through the CLI driver."""
    yield from _grader(slurm_cluster, grader_home, tmp_path, monkeypatch, "cli")


@pytest.fixture
def grader25(slurm25_cluster: Cluster, real_pyslurm: object, grader_home: Path, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Grader]:
    """`grader` on the Slurm 25.11 cluster, through the real pyslurm driver."""
    yield from _grader(slurm25_cluster, grader_home, tmp_path, monkeypatch, "pyslurm")


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- the checks


def test_smoke_submission_goes_through_slurm_to_done_and_onto_the_leaderboard(grader: Grader, tmp_path: Path) -> None:
    grader.env["GRADER_COURSE_DIR"] = str(copy_course(tmp_path / "refs", ("baseline", "fc512")))
    out = grader("submit", "--backend", "slurm", "-e", "mnist", str(REPO / "reference_solutions/mnist/cnn1.py"))
    assert "queued reference runs first: baseline, fc512" in out
    sub_id = int(re.search(r"^submission (\d+) queued", out, re.M).group(1))  # type: ignore[union-attr]
    assert sub_id == 3

    for ref_id in (1, 2):  # queued first, so they normally finish first; the grade compares with them
        assert grader.wait(ref_id)[:2] == ("done", ""), grader.row(ref_id)
    state, detail, status = grader.wait(sub_id)
    assert (state, detail) == ("done", ""), status
    assert grader.row(sub_id)["backend"] == "slurm" and grader.scontrol(grader.row(sub_id)["job_id"])["JobState"] == "COMPLETED"
    assert_on_the_leaderboard(grader, ("baseline", "fc512"))
    allocation = assert_gpu_recorded(grader, sub_id)
    assert allocation["shards"] == ""  # a whole GPU (slurm_gpus = 1, the default)


def assert_on_the_leaderboard(grader: Grader, references: tuple[str, ...]) -> None:
    board = [" ".join(line.split()) for line in grader("leaderboard", "-e", "mnist").splitlines()]
    user = getpass.getuser()
    assert any(re.match(rf"│ 1 │ {re.escape(user)} │ \d+\.\d% │", line) for line in board), "\n".join(board)
    for name in references:
        assert any(f"│ {name} (reference) │" in line for line in board), "\n".join(board)


def assert_gpu_recorded(grader: Grader, sub_id: int) -> dict[str, str]:
    """allocation.json (the batch script) and the job's own view of its GPU agree; returns the allocation."""
    row = grader.row(sub_id)
    allocation = json.loads((Path(row["run_dir"]) / "allocation.json").read_text())
    assert allocation["job_id"] == row["job_id"] and allocation["gpus"], allocation
    gpu = row["job_result"]["gpu"]  # what the job itself saw, stored with its result
    assert gpu["SLURM_JOB_GPUS"] == gpu["CUDA_VISIBLE_DEVICES"] == allocation["gpus"], (gpu, allocation)
    assert gpu["SLURM_JOB_ID"] == row["job_id"]
    assert "done" in grader("show", str(sub_id))
    return allocation


def test_smoke_submission_through_pyslurm_on_slurm_25_11_on_a_gpu_shard(grader25: Grader) -> None:
    """The real pyslurm driver (PyPI's 25.11.2) on Slurm 25.11: submitted, reconciled by the worker, graded."""
    grader25.env["GRADER_SLURM_GPU_SHARDS"] = "1"  # shares a GPU with other jobs (gres shard:1)
    sub_id = grader25.submit(REPO / "reference_solutions/mnist/baseline.py")
    state, detail, status = grader25.wait(sub_id)
    assert (state, detail) == ("done", ""), status
    row = grader25.row(sub_id)
    assert row["backend"] == "slurm" and grader25.scontrol(row["job_id"])["JobState"] == "COMPLETED"
    assert row["job_id"].startswith("2511")  # the 25.11 cluster's job ids, not the 22.05 one's
    assert_on_the_leaderboard(grader25, ())
    allocation = assert_gpu_recorded(grader25, sub_id)
    assert allocation["shards"] == "1", allocation


def test_supervisors_own_limit_ends_as_timeout(grader: Grader) -> None:
    """The supervisor's limit (here its build-phase limit, never above the 30 s wall clock) ends the job, not Slurm's."""
    set_toml(Path(grader.env["GRADER_COURSE_DIR"]) / "exercises/mnist/exercise.toml", "profiles.smoke",
             "max_wall_seconds", 30)
    sub_id = grader.submit(write(grader.tmp, "sleepy.py", SLEEPY))
    state, detail, status = grader.wait(sub_id)
    assert (state, detail) == ("failed", "timeout"), status
    assert "did not finish within 30 s (is there an endless loop, or training inside build_model?)" in status
    assert grader.scontrol(grader.row(sub_id)["job_id"])["JobState"] == "COMPLETED"  # the supervisor ended it
    assert grader.row(sub_id)["counts_for_quota"] == 1  # the participant's own doing


def test_slurms_time_limit_ends_as_timeout(grader: Grader) -> None:
    """Slurm's limit is whole minutes, checked about every 30 s: a negative margin makes it hit before the supervisor's."""
    set_toml(Path(grader.env["GRADER_COURSE_DIR"]) / "exercises/mnist/exercise.toml", "profiles.smoke",
             "max_wall_seconds", 300)
    grader.env["GRADER_SLURM_TIME_MARGIN_S"] = "-240"  # 300 s - 240 s → Slurm's --time=1
    sub_id = grader.submit(write(grader.tmp, "sleepy.py", SLEEPY))
    job_id = grader.row(sub_id)["job_id"]
    assert grader.scontrol(job_id)["TimeLimit"] == "00:01:00"
    state, detail, status = grader.wait(sub_id, timeout=240)
    assert (state, detail) == ("failed", "timeout"), status
    # (the message names the exercise's 5-minute limit, not Slurm's 1 minute: reconcile words it from the job spec)
    assert "did not finish within the" in status and "-minute limit: use fewer epochs" in status
    job = grader.scontrol(job_id)
    assert job["JobState"] == "TIMEOUT", job
    assert 60 <= seconds(job["RunTime"]) <= 130, job  # 60-95 s expected; a loaded machine adds a little


def test_cancelled_job_ends_cancelled(grader: Grader) -> None:
    sub_id = grader.submit(write(grader.tmp, "sleepy.py", SLEEPY))
    grader.wait(sub_id, ("running",), timeout=120)
    assert f"cancellation requested for submission {sub_id}" in grader("cancel", str(sub_id))
    state, detail, status = grader.wait(sub_id, timeout=60)
    assert (state, detail) == ("cancelled", "cancelled"), status
    assert "the job was cancelled" in status
    assert grader.row(sub_id)["counts_for_quota"] == 0
    assert grader.scontrol(grader.row(sub_id)["job_id"])["JobState"] == "CANCELLED"
    assert "is already cancelled" in grader("cancel", str(sub_id))


def test_job_over_its_memory_limit_ends_out_of_memory(grader: Grader) -> None:
    set_toml(Path(grader.env["GRADER_COURSE_DIR"]) / "exercises/mnist/exercise.toml", "limits", "memory_mb", 512)
    sub_id = grader.submit(write(grader.tmp, "hog.py", HOG))
    assert megabytes(grader.scontrol(grader.row(sub_id)["job_id"])["MinMemoryNode"]) == 512 + 1024  # --mem: limit + margin
    state, detail, status = grader.wait(sub_id, timeout=240)
    assert (state, detail) == ("failed", "out_of_memory"), status
    assert "512 MB memory limit" in status


def test_node_failure_ends_requeued_or_failed_never_running(grader: Grader, slurm_cluster: Cluster) -> None:
    """slurmd stops mid-job: Slurm marks the node down (~30 s) and the job NODE_FAIL; reconciling requeues it once."""
    if slurm_cluster.state_dir is None:
        pytest.skip("stopping slurmd needs the dev cluster from cluster/ (SLURM_CONF points elsewhere)")
    set_toml(Path(grader.env["GRADER_COURSE_DIR"]) / "exercises/mnist/exercise.toml", "profiles.smoke",
             "max_wall_seconds", 300)
    sub_id = grader.submit(write(grader.tmp, "sleepy.py", SLEEPY))
    first_job = grader.row(sub_id)["job_id"]
    grader.wait(sub_id, ("running",), timeout=120)
    slurm_cluster.stop_slurmd()
    try:
        deadline, syncs = time.monotonic() + 150, []
        while (row := grader.row(sub_id))["state"] == "running" and time.monotonic() < deadline:
            time.sleep(5)
            syncs.append(grader("sync").strip())  # the worker reconciles too: whichever comes first requeues
        state, detail, status = grader.status(sub_id)
        row = grader.row(sub_id)
    finally:
        slurm_cluster.restart()
    assert grader.scontrol(first_job)["JobState"] == "NODE_FAIL"
    if state == "queued":  # requeued once, as a new Slurm job in the same run directory
        assert row["attempts"] == 1 and row["job_id"] != first_job, (row, syncs)
        # after the restart the new job can run; cancel it so nothing keeps a GPU busy
        grader("cancel", str(sub_id))
        assert grader.wait(sub_id, timeout=60)[:2] == ("cancelled", "cancelled")
    else:
        assert (state, detail) == ("failed", "infrastructure"), status
        assert row["counts_for_quota"] == 0
