"""One contract suite for both Slurm drivers, on real clusters: the CLI driver on Slurm 22.05 and 25.11, pyslurm on 25.11.

pyslurm must be built for the cluster's Slurm major.minor, and PyPI carries pyslurm 25.11.x only, so
the pyslurm driver runs against the Slurm 25.11 dev cluster (cluster/build-slurm.sh, then
cluster/build-pyslurm.sh builds PyPI's pyslurm 25.11.2 against it). The CLI driver runs the very same
tests on Debian's Slurm 22.05 and on 25.11 (their squeue JSON differs). All three must submit the
same resources and map the same scheduler states to the same JobStates. A harness whose cluster or
pyslurm build is missing skips with a reason naming the build step.

tests/standins/pyslurm_25_11.py is left for what a one-node cluster cannot produce: preemption (no
PreemptType configured, nothing of higher priority to preempt with) and a job the controller has
forgotten (MinJobAge is an hour, and no accounting keeps a record).

The job's supervisor (`python -m grader.sandbox`) is replaced by a fake interpreter that runs a
`behaviour.sh` from the run directory, so each test decides what the job does; the batch script
itself is the real one from build_batch_script. The slow waits (Slurm's 1-minute time limit, a node
failure) are shared: their jobs are submitted on every cluster at once, and each test checks its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from slurm_fixtures import (
    SLURM25_PREFIX,
    Cluster,
    make_job_spec,
    make_run_dir,
    make_settings,
    write_fake_python,
)
from slurm_fixtures import real_pyslurm as real_pyslurm  # session fixtures, shared with other Slurm tests
from slurm_fixtures import slurm25_cluster as slurm25_cluster
from slurm_fixtures import slurm_cluster as slurm_cluster
from standins import pyslurm_25_11

from grader.backends.base import JobHandle, JobState, JobStatus
from grader.backends.slurm import SlurmBackend
from grader.backends.slurm.backend import queue_positions, status_from_job
from grader.backends.slurm.builders import build_batch_script, build_job_description
from grader.backends.slurm.drivers import (
    CliDriver,
    PyslurmDriver,
    SlurmDriver,
    SlurmJob,
    _gpu_indices,
    _job_from_squeue,
    parse_scontrol_job,
)
from grader.backends.slurm.versions import decide_driver, header_version, installed_slurm_version
from grader.errors import BackendError
from grader.rundir import RunDir
from grader.settings import Settings

QUICK = "echo done > result.txt\n"
SLEEP = "sleep 600\n"
KINDS = ("cli-22.05", "cli-25.11", "pyslurm-25.11")
VANISHED = JobStatus(state=JobState.VANISHED, reason="Slurm no longer knows the job")


@dataclass
class Harness:
    """One driver plus what the tests need to make its scheduler do things."""

    kind: str
    driver: SlurmDriver
    tmp: Path
    minute: float  # seconds one Slurm minute lasts
    cluster: Cluster | None = None
    submitted: list[str] = field(default_factory=list)

    def settings(self, **overrides: Any) -> Settings:
        fields: dict[str, Any] = {
            "slurm_driver": "cli" if self.kind.startswith("cli") else "pyslurm",
            "slurm_partition": "debug",
            "slurm_gpus": 0,
            "slurm_cpus": 1,
            "slurm_python": str(self.tmp / "fake-python"),
        }
        return make_settings(self.tmp / "home", **(fields | overrides))

    def submit(
        self,
        behaviour: str,
        run_id: str,
        *,
        wall_seconds: int = 60,
        memory_mb: int = 64,
        time_limit: int | None = None,
        **settings: Any,
    ) -> tuple[SlurmBackend, JobHandle, RunDir]:
        spec = make_job_spec(run_id, self.tmp / "inputs", wall_seconds=wall_seconds, memory_mb=memory_mb)
        run = make_run_dir(self.tmp, run_id, behaviour, spec)
        backend = SlurmBackend(self.settings(**settings), driver=self.driver)
        if time_limit is None:
            handle = backend.submit(run, spec)
        else:  # the builder always adds a margin; Slurm's own limit is what this test is about
            description = build_job_description(run, spec, backend.settings) | {"time_limit": time_limit}
            job_id = self.driver.submit(description, build_batch_script(run, spec, backend.settings))
            handle = JobHandle(backend="slurm", job_id=job_id, run_dir=str(run.path))
        self.submitted.append(handle.job_id)
        return backend, handle, run

    def wait(self, backend: SlurmBackend, handle: JobHandle, done: Callable[[JobStatus], bool], timeout: float) -> JobStatus:
        deadline = time.monotonic() + timeout
        while True:
            status = backend.poll_many([handle])[handle.job_id]
            if done(status) or time.monotonic() > deadline:
                return status
            time.sleep(0.1 if self.kind == "standin" else 0.5)

    def finish(self, backend: SlurmBackend, handle: JobHandle, timeout: float = 60) -> JobStatus:
        return self.wait(backend, handle, lambda s: s.state.terminal, timeout)

    def cancel_all(self) -> None:
        for job_id in self.submitted:  # leave nothing running on the shared cluster
            with contextlib.suppress(BackendError):
                self.driver.cancel(job_id)


def make_harness(request: pytest.FixtureRequest, kind: str, tmp: Path) -> Harness:
    """A harness of `kind`; skips (naming the missing build step) when its cluster or pyslurm is unavailable."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "inputs").mkdir(exist_ok=True)
    write_fake_python(tmp)  # once: rewriting it while a job execs it fails with ETXTBSY
    if kind == "standin":
        pyslurm_25_11.CONTROLLER.reset(cpus=8, gpus=2, seconds_per_minute=1.0)
        return Harness(kind, PyslurmDriver(module=pyslurm_25_11), tmp, minute=1.0)
    cluster: Cluster = request.getfixturevalue("slurm_cluster" if kind == "cli-22.05" else "slurm25_cluster")
    if kind.startswith("pyslurm"):
        driver: SlurmDriver = PyslurmDriver(module=request.getfixturevalue("real_pyslurm"))
    else:
        driver = CliDriver(env=cluster.env)
    return Harness(kind, driver, tmp, minute=60.0, cluster=cluster)


@pytest.fixture(params=[pytest.param(kind, marks=pytest.mark.slurm) for kind in KINDS])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    h = make_harness(request, request.param, tmp_path)
    yield h
    h.cancel_all()


@pytest.fixture
def standin(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    h = make_harness(request, "standin", tmp_path)
    yield h
    h.cancel_all()
    pyslurm_25_11.CONTROLLER.reset()


@pytest.fixture(scope="module")
def all_harnesses(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Harness]]:
    """Every harness that can run here, for the slow waits that all clusters share (a missing one is left out;
    its own parametrized test skips and says why)."""
    harnesses = {}
    for kind in KINDS:
        with contextlib.suppress(pytest.skip.Exception):
            harnesses[kind] = make_harness(request, kind, tmp_path_factory.mktemp(kind))
    yield harnesses
    for h in harnesses.values():
        h.cancel_all()


# ----------------------------------------------------------------------------- the contract


def test_submitted_job_has_the_described_resources_and_completes(harness: Harness) -> None:
    backend, handle, run = harness.submit(QUICK, "r-resources")
    job = harness.driver.job(handle.job_id)
    assert job is not None
    assert (job.name, job.partition, job.time_limit, job.memory_mb, job.cpus, job.gres) == (
        "grader-mnist-r-resources",
        "debug",
        3,  # 60 s + 120 s margin → 3 whole minutes
        64 + 1024,
        1,
        None,
    )
    status = harness.finish(backend, handle)
    assert status.state is JobState.COMPLETED, status
    assert (status.reason, status.exit_code) == (None, 0)
    assert (run.path / "result.txt").read_text() == "done\n"
    assert "grader: Slurm job " + handle.job_id in run.scheduler_log.read_text()
    assert json.loads(run.allocation.read_text())["job_id"] == handle.job_id
    assert (run.path / "handle.json").exists() and run.batch_script.exists()
    assert oct(run.job_json.stat().st_mode & 0o777) == "0o444"  # written by Backend.submit, read-only


def test_gpu_job_is_scheduled_and_records_its_allocation(harness: Harness) -> None:
    backend, handle, run = harness.submit("sleep 3\n", "r-gpu", slurm_gpus=1)
    running = harness.wait(backend, handle, lambda s: s.state is not JobState.PENDING, 60)
    assert running.state is JobState.RUNNING and running.gpus, running
    job = harness.driver.job(handle.job_id)
    assert job is not None and job.gres == "gpu:1"  # not "gres/gpu:1" (pyslurm 25.11, squeue 23.02+)
    assert harness.finish(backend, handle).state is JobState.COMPLETED
    allocation = json.loads(run.allocation.read_text())
    assert allocation["gpus"] == allocation["cuda_visible_devices"] == running.gpus
    assert allocation["shards"] == ""


BARRIER = """echo "$SLURM_JOB_ID" > "{dir}/started-$SLURM_JOB_ID"
for i in $(seq 600); do  # wait (up to 60 s) until all {n} jobs run at the same time
  [ "$(ls "{dir}" | wc -l)" -ge {n} ] && {{ echo together > together.txt; break; }}
  sleep 0.1
done
"""


def test_gpu_shards_let_four_jobs_share_one_gpu(harness: Harness) -> None:
    """slurm_gpu_shards: each job asks for shard:1 of a GPU, so 4 jobs run on one fake GPU at once."""
    barrier = harness.tmp / "barrier"
    barrier.mkdir()
    behaviour = BARRIER.format(dir=barrier, n=4)
    jobs = [harness.submit(behaviour, f"r-shard-{i}", slurm_gpus=1, slurm_gpu_shards=1) for i in range(4)]
    backend = jobs[0][0]
    for _, handle, _ in jobs:
        assert harness.driver.job(handle.job_id).gres == "shard:1"  # type: ignore[union-attr]
    statuses = [harness.finish(backend, handle, timeout=120) for _, handle, _ in jobs]
    assert [s.state for s in statuses] == [JobState.COMPLETED] * 4, statuses
    assert all((run.path / "together.txt").exists() for _, _, run in jobs), "the 4 jobs never ran at the same time"
    allocations = [json.loads(run.allocation.read_text()) for _, _, run in jobs]
    assert {a["shards"] for a in allocations} == {"1"}, allocations  # SLURM_SHARDS_ON_NODE
    assert len({a["cuda_visible_devices"] for a in allocations}) == 1, allocations  # one GPU for all four
    assert allocations[0]["cuda_visible_devices"] in ("0", "1")


def test_failing_job_is_failed_with_its_exit_code(harness: Harness) -> None:
    backend, handle, _ = harness.submit("exit 3\n", "r-fail")
    status = harness.finish(backend, handle)
    assert (status.state, status.exit_code) == (JobState.FAILED, 3)
    assert status.reason is not None and status.reason.startswith("the batch job failed with exit code 3")


def test_cancelled_job_is_cancelled(harness: Harness) -> None:
    backend, handle, _ = harness.submit(SLEEP, "r-cancel")
    assert harness.wait(backend, handle, lambda s: s.state is JobState.RUNNING, 60).state is JobState.RUNNING
    backend.cancel(handle)
    status = harness.finish(backend, handle)
    assert (status.state, status.reason) == (JobState.CANCELLED, "the job was cancelled")
    backend.cancel(handle)  # a finished job: no error


def test_pending_jobs_report_reason_and_queue_position(harness: Harness) -> None:
    jobs = [harness.submit(SLEEP, f"r-queue-{i}", slurm_cpus=8) for i in range(3)]
    backend, first, _ = jobs[0]
    assert harness.wait(backend, first, lambda s: s.state is JobState.RUNNING, 60).state is JobState.RUNNING
    statuses = backend.poll_many([handle for _, handle, _ in jobs])
    waiting = [statuses[handle.job_id] for _, handle, _ in jobs[1:]]
    assert [(s.state, s.queue_position) for s in waiting] == [(JobState.PENDING, 1), (JobState.PENDING, 2)]
    assert all(s.reason and "(Slurm: " in s.reason for s in waiting), waiting


def test_job_over_its_memory_ends_as_out_of_memory(harness: Harness) -> None:
    assert harness.cluster is not None
    if not harness.cluster.cgroup:
        pytest.skip("this cluster enforces --mem without cgroups (jobs end FAILED, not OUT_OF_MEMORY)")
    hog = f"{sys.executable} -c 'import time; b = bytearray(2 * 1024**3); time.sleep(60)'\n"
    # a generous time limit: filling 2 GB page by page takes seconds on a busy machine
    backend, handle, _ = harness.submit(hog, "r-oom", wall_seconds=600, memory_mb=64)
    status = harness.finish(backend, handle)
    assert status.state is JobState.OUT_OF_MEMORY, status
    assert status.reason == f"your job used more than its {64 + 1024} MB memory allocation"


def test_job_the_scheduler_never_knew_is_vanished(harness: Harness) -> None:
    backend = SlurmBackend(harness.settings(), driver=harness.driver)
    handle = JobHandle(backend="slurm", job_id="987654", run_dir=str(harness.tmp))
    assert backend.poll_many([handle]) == {"987654": VANISHED}


POLL_IN_A_CHILD = """
import sys
from grader.backends.base import JobHandle
from grader.backends.slurm import SlurmBackend
from grader.backends.slurm.drivers import PyslurmDriver
from grader.settings import Settings

backend = SlurmBackend(Settings(home=sys.argv[1], slurm_driver="pyslurm"), driver=PyslurmDriver())
print(backend.poll_many([JobHandle(backend="slurm", job_id=sys.argv[2], run_dir=sys.argv[1])])[sys.argv[2]].model_dump_json())
"""


def test_scheduler_failure_is_unknown_never_an_exception(harness: Harness) -> None:
    """slurmctld unreachable: every job polled is UNKNOWN with the error as reason, and poll_many returns."""
    assert harness.cluster is not None
    backend, handle, _ = harness.submit(SLEEP, "r-outage")
    # the same configuration, but pointing at a port where no slurmctld listens
    etc = shutil.copytree(harness.cluster.conf.parent, harness.tmp / "etc")
    conf = etc / harness.cluster.conf.name
    conf.write_text(re.sub(r"(?m)^SlurmctldPort=.*$", "SlurmctldPort=1", conf.read_text()))
    env = harness.cluster.env | {"SLURM_CONF": str(conf)}
    if isinstance(harness.driver, CliDriver):
        status = SlurmBackend(backend.settings, driver=CliDriver(env=env)).poll_many([handle])[handle.job_id]
    else:  # libslurm reads its configuration once per process: ask from a fresh one
        proc = subprocess.run([sys.executable, "-c", POLL_IN_A_CHILD, str(harness.tmp), handle.job_id],
                              env={**os.environ, **env}, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr
        status = JobStatus.model_validate_json(proc.stdout.strip().splitlines()[-1])
    assert status.state is JobState.UNKNOWN
    assert status.reason is not None and status.reason.startswith("Slurm could not be asked: "), status


def test_unknown_partition_is_a_backend_error(harness: Harness) -> None:
    with pytest.raises(BackendError, match=r"(?i)partition"):
        harness.submit(QUICK, "r-partition", slurm_partition="no-such-partition")


def test_poll_is_one_query_for_all_jobs_and_terminal_states_are_cached(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = [harness.submit(QUICK, f"r-batch-{i}") for i in range(3)]
    backend = jobs[0][0]
    handles = [handle for _, handle, _ in jobs]
    for handle in handles:
        assert harness.finish(backend, handle).state is JobState.COMPLETED
    backend = SlurmBackend(backend.settings, driver=harness.driver)  # fresh cache
    calls: list[str] = []
    for name in ("jobs", "job"):
        original = getattr(harness.driver, name)
        monkeypatch.setattr(harness.driver, name, lambda *a, _n=name, _o=original: calls.append(_n) or _o(*a))
    first = backend.poll_many(handles)
    assert calls == ["jobs"]
    assert {s.state for s in first.values()} == {JobState.COMPLETED}
    assert backend.poll_many(handles) == first and calls == ["jobs"]  # cached: Slurm not asked again


# --------------------------------------------------- the slow waits: every cluster's jobs at once


@pytest.fixture(scope="module")
def time_limit_jobs(all_harnesses: dict[str, Harness]) -> dict[str, tuple[SlurmBackend, JobHandle]]:
    """A job with Slurm's shortest limit (1 minute, checked about every 30 s) on every cluster, submitted together."""
    return {kind: h.submit(SLEEP, "r-timeout", time_limit=1)[:2] for kind, h in all_harnesses.items()}


def test_job_over_its_time_limit_ends_as_timeout(harness: Harness, time_limit_jobs: dict) -> None:
    backend, handle = time_limit_jobs[harness.kind]
    status = harness.finish(backend, handle, timeout=harness.minute * 3)
    assert (status.state, status.reason) == (JobState.TIMEOUT, "your job hit the 1-minute time limit")


@pytest.fixture(scope="module")
def node_failures(all_harnesses: dict[str, Harness]) -> dict[str, JobStatus]:
    """slurmd stops on every dev cluster while a job runs there: Slurm marks the node down after SlurmdTimeout
    (30 s) and the job NODE_FAIL. Each job's state afterwards, by harness kind (the nodes are restarted)."""
    jobs = {kind: h.submit(SLEEP, "r-node")[:2] for kind, h in all_harnesses.items() if h.cluster and h.cluster.state_dir}
    for kind, (backend, handle) in jobs.items():
        assert all_harnesses[kind].wait(backend, handle, lambda s: s.state is JobState.RUNNING, 60).state is JobState.RUNNING
    clusters = {h.cluster.name: h.cluster for kind, h in all_harnesses.items() if kind in jobs and h.cluster}
    for cluster in clusters.values():
        cluster.stop_slurmd()
    statuses: dict[str, JobStatus] = {}
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            statuses = {kind: backend.poll_many([handle])[handle.job_id] for kind, (backend, handle) in jobs.items()}
            if all(s.state is not JobState.RUNNING for s in statuses.values()):
                break
            time.sleep(1)
    finally:
        for cluster in clusters.values():
            cluster.restart()
    return statuses


def test_node_failure_does_not_leave_a_job_running_forever(harness: Harness, node_failures: dict) -> None:
    if harness.kind not in node_failures:
        pytest.skip("stopping slurmd needs the dev cluster from cluster/ (SLURM_CONF points elsewhere)")
    status = node_failures[harness.kind]
    assert status.state is JobState.NODE_FAIL, status
    assert "infrastructure problem" in (status.reason or "")


# ------------------------------------------ what a one-node cluster cannot do: the pyslurm stand-in


def test_preempted_job_is_preempted(standin: Harness) -> None:
    """Preemption needs PreemptType and higher-priority work; the dev cluster has neither."""
    backend, handle, _ = standin.submit(SLEEP, "r-preempt")
    assert standin.wait(backend, handle, lambda s: s.state is JobState.RUNNING, 60).state is JobState.RUNNING
    pyslurm_25_11.CONTROLLER.preempt(int(handle.job_id))
    status = standin.finish(backend, handle)
    assert (status.state, status.reason) == (JobState.PREEMPTED, "the job was preempted by higher-priority work")


def test_forgotten_job_becomes_vanished(standin: Harness) -> None:
    """A finished job that left the controller (MinJobAge, an hour on the dev cluster) with no accounting record."""
    backend, handle, _ = standin.submit(QUICK, "r-forget")
    assert standin.finish(backend, handle).state is JobState.COMPLETED
    pyslurm_25_11.CONTROLLER.forget(int(handle.job_id))
    fresh = SlurmBackend(backend.settings, driver=standin.driver)
    assert fresh.poll_many([handle])[handle.job_id] == VANISHED


def test_standin_reads_back_like_the_real_pyslurm(standin: Harness) -> None:
    """The stand-in keeps the real pyslurm 25.11.2's spelling (checked against it on the 25.11 cluster)."""
    backend, handle, _ = standin.submit("sleep 2\n", "r-spelling", slurm_gpus=1)
    standin.wait(backend, handle, lambda s: s.state is JobState.RUNNING, 10)
    job = pyslurm_25_11.Job.load(int(handle.job_id))
    assert job.gres_per_node == {"gres/gpu": 1} and job.state_reason is None
    assert standin.driver.job(handle.job_id).gres == "gpu:1"  # type: ignore[union-attr]


# ----------------------------------------------------------------------------- pure parts


def test_state_mapping_and_reasons() -> None:
    def status(state: str, **kw: Any) -> JobStatus:
        return status_from_job(SlurmJob(job_id="1", state=state, **kw))

    assert status("PENDING", reason="Resources").reason == "waiting for a free GPU/CPU/memory (Slurm: Resources)"
    assert status("PENDING", reason="ReqNodeNotAvail,_UnavailableNodes:n1").reason == (
        "the nodes it needs are unavailable (maintenance or failure) (Slurm: ReqNodeNotAvail)"
    )
    assert status("COMPLETING").state is JobState.RUNNING
    assert status("TIMEOUT", time_limit=17).reason == "your job hit the 17-minute time limit"
    assert status("DEADLINE").state is JobState.TIMEOUT
    assert status("BOOT_FAIL").state is JobState.NODE_FAIL
    assert status("PREEMPTED").reason == "the job was preempted by higher-priority work"
    assert status("FAILED", exit_code=0, signal=9).reason == "the batch job failed with signal 9"
    assert status("WEIRD").state is JobState.UNKNOWN


def test_queue_positions_follow_priority_then_submission_per_partition() -> None:
    jobs = [
        SlurmJob("1", "RUNNING", partition="a", priority=9),
        SlurmJob("2", "PENDING", partition="a", priority=5, submit_time=20),
        SlurmJob("3", "PENDING", partition="a", priority=5, submit_time=10),
        SlurmJob("4", "PENDING", partition="a", priority=7, submit_time=30),
        SlurmJob("5", "PENDING", partition="b", priority=1, submit_time=40),
    ]
    assert queue_positions(jobs) == {"4": 1, "3": 2, "2": 3, "5": 1}


def test_scontrol_line_with_spaces_in_values() -> None:
    line = (
        "JobId=3 JobName=grader-mnist-r1 UserId=root(0) Priority=4294901757 JobState=TIMEOUT Reason=TimeLimit "
        "ExitCode=0:15 TimeLimit=00:17:00 SubmitTime=2026-11-22T01:48:18 Partition=debug NumCPUs=2 "
        "JOB_GRES=gpu:1 Nodes=localhost CPU_IDs=0-1 Mem=7168 GRES=gpu:1(IDX:0) MinMemoryNode=7G "
        "WorkDir=/runs/a b Comment=run x StdOut=/runs/a b/scheduler.log TresPerNode=gres:gpu:1"
    )
    job = parse_scontrol_job(line)
    assert (job.job_id, job.state, job.reason, job.exit_code, job.signal) == ("3", "TIMEOUT", "TimeLimit", 0, 15)
    assert (job.time_limit, job.cpus, job.memory_mb, job.gres, job.gpus) == (17, 2, 7168, "gpu:1", "0")
    assert parse_scontrol_job(line.replace("gres:gpu:1", "gres/shard:2").replace("gpu:1(IDX:0)", "shard:2(0/4,2/4)")).gres \
        == "shard:2"


def test_squeue_json_of_22_05_and_of_newer_releases() -> None:
    """22.05 prints plain numbers and the raw wait status; 23.02+ wraps numbers and splits the exit code."""
    old = {
        "job_id": 7, "job_state": "FAILED", "state_reason": "NonZeroExitCode", "exit_code": 3 << 8,
        "name": "n", "partition": "gpu", "priority": 10, "submit_time": 100, "time_limit": 17, "cpus": 2,
        "memory_per_node": 7168, "tres_per_node": "gres:gpu:1", "gres_detail": [],
    }  # fmt: skip
    new = {
        "job_id": 7, "job_state": ["FAILED"], "state_reason": "NonZeroExitCode",
        "exit_code": {"status": ["ERROR"], "return_code": {"set": True, "infinite": False, "number": 3},
                      "signal": {"id": {"set": False, "infinite": False, "number": 0}, "name": ""}},
        "name": "n", "partition": "gpu", "priority": {"set": True, "infinite": False, "number": 10},
        "submit_time": {"set": True, "infinite": False, "number": 100},
        "time_limit": {"set": True, "infinite": False, "number": 17},
        "cpus": {"set": True, "infinite": False, "number": 2},
        "memory_per_node": {"set": True, "infinite": False, "number": 7168},
        "tres_per_node": "gres/gpu:1", "gres_detail": [],
    }  # fmt: skip
    expected = SlurmJob(
        job_id="7", state="FAILED", reason="NonZeroExitCode", exit_code=3, signal=None, name="n", partition="gpu",
        priority=10, submit_time=100, time_limit=17, cpus=2, memory_mb=7168, gres="gpu:1", gpus=None,
    )  # fmt: skip
    assert _job_from_squeue(old) == _job_from_squeue(new) == expected
    running = _job_from_squeue({"job_id": 8, "job_state": "RUNNING", "exit_code": 9, "gres_detail": ["gpu:2(IDX:0-1)"]})
    assert (running.signal, running.gpus) == (9, "0-1")


def test_gpu_indices_of_whole_gpus_and_of_shards() -> None:
    """As seen on the dev clusters: 22.05 names the GPU of a shard by index, 25.11 counts shards used per GPU."""
    assert _gpu_indices(["gpu:1(IDX:1)"]) == "1"
    assert _gpu_indices(["shard:2(IDX:0)"]) == "0"  # 22.05
    assert _gpu_indices(["shard:2(2/4,0/4)"]) == "0"  # 25.11
    assert _gpu_indices(["shard:1(0/4,1/4)"]) == "1"
    assert _gpu_indices([]) is None


def test_slurm_version_is_read_without_a_configuration(tmp_path: Path) -> None:
    """25.11's `sinfo --version` dies without a configuration: the headers (beside sinfo or the libraries) tell."""
    prefix = tmp_path / "slurm-25.11"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "include" / "slurm").mkdir(parents=True)
    (prefix / "include" / "slurm" / "slurm_version.h").write_text("#define SLURM_VERSION_NUMBER 0x190b07\n")
    sinfo = prefix / "bin" / "sinfo"
    sinfo.write_text("#!/bin/sh\necho 'sinfo: fatal: Could not establish a configuration source' >&2\nexit 1\n")
    sinfo.chmod(0o755)
    assert header_version(prefix / "include" / "slurm" / "slurm_version.h") == "25.11.7"
    assert installed_slurm_version({"PATH": str(prefix / "bin")}) == "25.11.7"
    assert installed_slurm_version({"PATH": str(tmp_path), "LD_LIBRARY_PATH": str(prefix / "lib")}) == "25.11.7"
    sinfo.write_text("#!/bin/sh\necho 'slurm 24.05.3'\n")
    assert installed_slurm_version({"PATH": str(prefix / "bin")}) == "24.05.3"  # sinfo first, where it answers


@pytest.mark.parametrize(
    ("requested", "config", "pyslurm", "slurm", "expected"),
    [
        ("cli", Path("/c"), "25.11.2", "25.11.1", "cli"),
        ("auto", Path("/c"), "25.11.2", "25.11.1", "pyslurm"),
        ("auto", Path("/c"), "25.11.2", "22.05.8", "cli"),
        ("auto", None, "25.11.2", "25.11.1", "cli"),
        ("auto", Path("/c"), None, "25.11.1", "cli"),
        ("auto", Path("/c"), "25.11.2", None, "cli"),
        ("pyslurm", Path("/c"), "25.11.2", None, "pyslurm"),
    ],
)
def test_driver_choice(requested: str, config: Path | None, pyslurm: str | None, slurm: str | None, expected: str):
    name, why = decide_driver(requested, config=config, pyslurm_version=pyslurm, slurm_version=slurm)
    assert name == expected and why


@pytest.mark.parametrize(
    ("config", "pyslurm", "slurm", "message"),
    [
        (None, "25.11.2", "25.11.1", "no Slurm configuration"),
        (Path("/c"), None, "25.11.1", "pyslurm is not installed"),
        (Path("/c"), "25.11.2", "22.05.8", "does not match Slurm 22.05.8"),
    ],
)
def test_explicit_pyslurm_that_cannot_work_is_an_error(config, pyslurm, slurm, message) -> None:
    with pytest.raises(BackendError, match=message):
        decide_driver("pyslurm", config=config, pyslurm_version=pyslurm, slurm_version=slurm)


def test_pyslurm_is_never_imported_without_a_slurm_configuration(tmp_path: Path) -> None:
    """libslurm ends the process when it finds no configuration; a fake pyslurm does the same here."""
    (tmp_path / "pyslurm.py").write_text("import os\nos._exit(1)  # libslurm: fatal: Could not establish a config\n")
    code = (
        "from grader.backends.slurm import SlurmBackend\n"
        "from grader.backends.slurm.drivers import PyslurmDriver\n"
        "from grader.errors import BackendError\n"
        "from grader.settings import Settings\n"
        "import sys\n"
        "assert 'pyslurm' not in sys.modules\n"
        "print(SlurmBackend(Settings(slurm_driver='auto')).describe())\n"
        "try:\n    PyslurmDriver()\nexcept BackendError as exc:\n    print('refused:', exc)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "GRADER_"))}
    env.update(PYTHONPATH=os.pathsep.join([str(tmp_path), str(Path(__file__).resolve().parents[1])]))
    env.update(GRADER_HOME=str(tmp_path / "home"), GRADER_CONFIG=str(tmp_path / "none.toml"))
    if any(Path(p).is_file() for p in ("/etc/slurm/slurm.conf", "/run/slurm/conf/slurm.conf")):
        pytest.skip("this machine has a system-wide Slurm configuration, so the no-configuration case cannot occur")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "slurm via the cli driver (" in proc.stdout
    assert "refused: pyslurm needs a Slurm configuration" in proc.stdout


# ----------------------------------------------------------------------------- the real job


@pytest.mark.slurm
@pytest.mark.tf
def test_real_smoke_run_through_slurm_records_its_gpu(slurm_cluster: Cluster, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The real chain: prepared run dir → sbatch → batch script → grader.sandbox → grader.job → output/result.json."""
    from grader.service.runs import prepare_run
    from grader.specs.catalog import ExerciseCatalog
    from grader.submission import check_source

    slurm_cluster.activate(monkeypatch)
    repo = Path(__file__).resolve().parents[1]
    settings = make_settings(
        tmp_path / "grader home; it's ü", slurm_driver="cli", slurm_gpus=1, slurm_cpus=1, slurm_python=sys.executable
    )
    source = (repo / "reference_solutions" / "mnist" / "baseline.py").read_text()
    spec = ExerciseCatalog(repo).get("mnist")
    run, job = prepare_run(source, check_source(source, "baseline.py", spec), spec, "smoke", None, settings, "slurm")
    backend = SlurmBackend(settings)
    handle = backend.submit(run, job)
    deadline = time.monotonic() + 600
    while not (status := backend.poll_many([handle])[handle.job_id]).state.terminal and time.monotonic() < deadline:
        time.sleep(1)
    assert status.state is JobState.COMPLETED, (status, run.scheduler_log.read_text()[-2000:])
    supervisor = json.loads((run.path / RunDir.SUPERVISOR).read_text())
    assert supervisor["verdict"] == "completed", supervisor
    result = json.loads((run.path / "output" / "result.json").read_text())
    assert result["outcome"] == "ok", result.get("message")
    assert result["scheduler_job_id"] == handle.job_id
    allocation = json.loads(run.allocation.read_text())
    assert allocation["gpus"] and result["gpu"]["SLURM_JOB_GPUS"] == allocation["gpus"]


def test_missing_slurm_tools_are_unknown_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A login node without the Slurm CLIs: polling warns, submitting is a clear error."""
    monkeypatch.setenv("PATH", str(tmp_path))
    backend = SlurmBackend(make_settings(tmp_path, slurm_driver="cli"), driver=CliDriver())
    handle = JobHandle(backend="slurm", job_id="1", run_dir=str(tmp_path))
    assert backend.poll_many([handle])["1"] == JobStatus(
        state=JobState.UNKNOWN, reason="Slurm could not be asked: squeue is not installed (or not on PATH)"
    )
    spec = make_job_spec("r-1", tmp_path)
    run = make_run_dir(tmp_path, "r-1", QUICK, spec)
    with pytest.raises(BackendError, match="sbatch is not installed"):
        backend.submit(run, spec)


def test_describe_names_the_driver_and_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("grader.backends.slurm.drivers.installed_pyslurm_version", lambda: None)
    assert SlurmBackend(make_settings(tmp_path, slurm_driver="cli")).describe() == (
        "slurm via the cli driver (slurm_driver = cli)"
    )
    assert SlurmBackend(make_settings(tmp_path, slurm_driver="pyslurm")).describe() == (
        "slurm: unusable (slurm_driver = pyslurm, but pyslurm is not installed\n  hint: set slurm_driver = 'cli' or 'auto')"
    )


@pytest.mark.slurm
def test_doctor_names_the_pyslurm_driver_on_slurm_25_11(real_pyslurm: Any, slurm25_cluster: Cluster, tmp_path: Path) -> None:
    """`grader doctor` with the 25.11 cluster's environment (SLURM_CONF, PATH, LD_LIBRARY_PATH) picks pyslurm."""
    grader = Path(sys.executable).parent / "grader"
    env = {**os.environ, **slurm25_cluster.env, "GRADER_BACKEND": "slurm", "GRADER_HOME": str(tmp_path / "home"),
           "GRADER_CONFIG": str(tmp_path / "none.toml"), "COLUMNS": "200"}
    env.pop("GRADER_SLURM_DRIVER", None)
    proc = subprocess.run([str(grader), "doctor"], env=env, capture_output=True, text=True, timeout=120, check=False)
    slurm = header_version(SLURM25_PREFIX / "include" / "slurm" / "slurm_version.h")  # 25.11.7 in CI
    expected = f"slurm via the pyslurm driver (pyslurm {real_pyslurm.__version__} matches Slurm {slurm})"
    assert expected in " ".join(proc.stdout.split()), proc.stdout + proc.stderr
