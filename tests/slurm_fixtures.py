"""Shared Slurm test helpers: the real one-node clusters from cluster/ (the distribution's Slurm 22.05 and a
Slurm 25.11 built from source), the real pyslurm built for 25.11, job specs, settings, run dirs.

Two clusters, side by side: cluster/common.sh gives a Slurm built under a prefix its own state dir, ports
and job-id range, so the 22.05 and 25.11 clusters never share ports, state or cgroup names. Each test
points Slurm's tools at one of them with `cluster.activate(monkeypatch)` (SLURM_CONF, PATH, and
LD_LIBRARY_PATH for 25.11); nothing is exported for the whole session.

A test that needs something a build step makes (Slurm 25.11: cluster/build-slurm.sh; pyslurm:
cluster/build-pyslurm.sh) skips with a reason naming that step, never silently.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from grader.results import JobSpec
from grader.rundir import RunDir
from grader.settings import Settings
from grader.specs.exercise import ExerciseSpec, Profile

REPO = Path(__file__).resolve().parent.parent
START = REPO / "cluster" / "start-local-cluster.sh"
STOP = REPO / "cluster" / "stop-local-cluster.sh"
HOSTILE_DIR_NAME = 'run dir; it\'s "quoted" ü$(x)'  # spaces, quotes, ; and non-ASCII, run for real
SLURM25_PREFIX = Path(os.environ.get("GRADER_TEST_SLURM25_PREFIX", "/opt/slurm-25.11"))
PYSLURM_RELEASE = "25.11.2"
BUILD_SLURM = "cluster/build-slurm.sh slurm-25.11.X.tar.gz"
BUILD_PYSLURM = f"cluster/build-pyslurm.sh {Path(sys.prefix)} {SLURM25_PREFIX}"
# Knobs of start-local-cluster.sh that belong to one cluster only: never passed on to the other one.
_PER_CLUSTER = ("GRADER_SLURM_DIR", "GRADER_SLURM_PREFIX", "GRADER_SLURM_CTLD_PORT", "GRADER_SLURM_SLURMD_PORT",
                "GRADER_SLURM_FIRST_JOB_ID")


@dataclass(frozen=True)
class Cluster:
    """A reachable Slurm cluster for the `slurm`-marked tests."""

    name: str  # "22.05" or "25.11" (dev clusters from cluster/), or "external"
    conf: Path
    state_dir: Path | None  # set when it is a dev cluster from cluster/ (so slurmd can be stopped)
    cgroup: bool  # memory enforced by cgroups (over-memory jobs end OUT_OF_MEMORY)
    prefix: Path | None = None  # a Slurm built from source: its tools come first on PATH

    @property
    def env(self) -> dict[str, str]:
        """SLURM_CONF, PATH (and LD_LIBRARY_PATH) that point Slurm's tools, grader and pyslurm at this cluster."""
        path = os.pathsep.join(p for p in os.environ.get("PATH", os.defpath).split(os.pathsep)
                               if not p.startswith(str(SLURM25_PREFIX)))
        env = {"SLURM_CONF": str(self.conf), "PATH": path}
        if self.prefix is not None:
            env["PATH"] = f"{self.prefix}/bin{os.pathsep}{self.prefix}/sbin{os.pathsep}{path}"
            env["LD_LIBRARY_PATH"] = str(self.prefix / "lib")
        return env

    def activate(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for key, value in self.env.items():
            monkeypatch.setenv(key, value)
        if self.prefix is None:
            monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)

    def _script_env(self) -> dict[str, str]:
        assert self.state_dir is not None
        env = {k: v for k, v in os.environ.items() if k not in _PER_CLUSTER}
        return env | {"GRADER_SLURM_DIR": str(self.state_dir)}  # the dir remembers which Slurm it runs

    def stop_slurmd(self) -> None:
        subprocess.run([str(STOP), "--slurmd"], env=self._script_env(), check=True, capture_output=True, timeout=60)

    def restart(self) -> None:
        subprocess.run([str(START)], env=self._script_env(), check=True, capture_output=True, timeout=300)


# Each test module that imports a fixture gets its own session-scoped instance of it; this cache makes
# them share one cluster (and start it once).
_CLUSTERS: dict[str, Cluster] = {}


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _start_dev_cluster(name: str, prefix: Path | None) -> Iterator[Cluster]:
    if name in _CLUSTERS:
        yield _CLUSTERS[name]
        return
    env = {k: v for k, v in os.environ.items() if k not in _PER_CLUSTER or (prefix is None and k != "GRADER_SLURM_PREFIX")}
    env["PATH"] = Cluster(name, Path(), None, False).env["PATH"]  # never the other cluster's tools
    if prefix is not None:
        env["GRADER_SLURM_PREFIX"] = str(prefix)
    proc = subprocess.run([str(START)], env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"cluster/start-local-cluster.sh (Slurm {name}) failed:\n{proc.stderr[-2000:]}")
    started_here = "up in" in proc.stderr
    exports = dict(line.removeprefix("export ").split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    conf, state_dir = Path(exports["SLURM_CONF"]), Path(exports["GRADER_SLURM_DIR"])
    cluster = Cluster(name, conf, state_dir, "proctrack/cgroup" in _read(conf), prefix)
    _CLUSTERS[name] = cluster
    try:
        yield cluster
    finally:
        _CLUSTERS.pop(name, None)
        if started_here and not os.environ.get("GRADER_SLURM_KEEP"):
            subprocess.run([str(STOP)], env=cluster._script_env(), capture_output=True, timeout=300, check=False)


def _external() -> Cluster | None:
    """An exported SLURM_CONF that is not one of ours: a real cluster, used as it is."""
    if os.environ.get("SLURM_CONF") and shutil.which("sbatch") and not os.environ.get("GRADER_SLURM_DIR"):
        conf = Path(os.environ["SLURM_CONF"])
        return Cluster("external", conf, None, "proctrack/cgroup" in _read(conf))
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Cluster]:
    """The dev cluster on the distribution's Slurm (Debian 12: 22.05), started here if needed.

    An already exported SLURM_CONF with working CLIs is used as is (a real cluster). Skips, naming
    what is missing, only where no cluster can exist: no Slurm CLIs and no root to install them.
    """
    if external := _external():
        yield external
        return
    if os.geteuid() != 0 and not shutil.which("sbatch"):
        pytest.skip("Slurm tests need sbatch and SLURM_CONF, or root to run cluster/start-local-cluster.sh")
    if os.geteuid() != 0:
        pytest.skip("cluster/start-local-cluster.sh needs root (daemons, cgroups); or export SLURM_CONF")
    yield from _start_dev_cluster("22.05", None)


@pytest.fixture(scope="session")
def slurm25_cluster() -> Iterator[Cluster]:
    """The dev cluster on Slurm 25.11 built from source (cluster/build-slurm.sh into /opt/slurm-25.11)."""
    if not (SLURM25_PREFIX / "sbin" / "slurmctld").exists():
        pytest.skip(f"Slurm 25.11 is not built in {SLURM25_PREFIX}: the build step `{BUILD_SLURM}` failed or did "
                    "not run (GRADER_TEST_SLURM25_PREFIX names another prefix)")
    if os.geteuid() != 0:
        pytest.skip("cluster/start-local-cluster.sh needs root (daemons, cgroups)")
    yield from _start_dev_cluster("25.11", SLURM25_PREFIX)


_PYSLURM: list[ModuleType] = []


@pytest.fixture(scope="session")
def real_pyslurm(slurm25_cluster: Cluster) -> ModuleType:
    """PyPI's pyslurm 25.11, built against the 25.11 cluster's Slurm, imported with that cluster's configuration.

    libslurm reads its configuration once, at import: in this process pyslurm talks to the 25.11
    cluster only. Importing it is tried in a child process first, because a libslurm that cannot
    load ends the process (a C-level fatal) instead of raising.
    """
    if _PYSLURM:
        return _PYSLURM[0]
    try:
        have = importlib.metadata.version("pyslurm")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"pyslurm is not installed for {sys.executable}: the build step `{BUILD_PYSLURM}` failed or "
                    "did not run")
    if have != PYSLURM_RELEASE:
        pytest.skip(f"pyslurm {have} is installed, these tests need {PYSLURM_RELEASE}: run `{BUILD_PYSLURM}`")
    env = {**os.environ, **slurm25_cluster.env}
    probe = subprocess.run([sys.executable, "-c", "import pyslurm; print(pyslurm.__version__)"], env=env,
                           capture_output=True, text=True, timeout=120, check=False)
    if probe.returncode != 0:
        pytest.skip(f"pyslurm {have} does not import against {slurm25_cluster.prefix} (rebuild with "
                    f"`{BUILD_PYSLURM}`): {(probe.stderr or probe.stdout).strip()[-400:]}")
    saved = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(slurm25_cluster.conf)
    try:
        import pyslurm
    finally:
        if saved is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = saved
    _PYSLURM.append(pyslurm)
    return pyslurm


def make_exercise() -> ExerciseSpec:
    """A small, fixed exercise so goldens do not move when the course's exercise files do."""
    return ExerciseSpec.model_validate(
        {
            "name": "mnist",
            "title": "MNIST handwritten digits",
            "dataset": "mnist",
            "labels": {"num_outputs": 10, "class_names": [str(i) for i in range(10)]},
            "limits": {"max_epochs": 40, "max_params": 2_000_000, "max_wall_seconds": 7200, "memory_mb": 6144},
            "training": {"epochs": 10, "batch_size": 128},
            "profiles": {
                "full": {"source": "full"},
                "smoke": {"source": "sample", "max_epochs": 2, "max_wall_seconds": 900},
            },
        }
    )


def make_job_spec(
    run_id: str, inputs_dir: Path | str, *, wall_seconds: int = 900, memory_mb: int = 6144, profile: str = "smoke"
) -> JobSpec:
    exercise = make_exercise()
    return JobSpec(
        run_id=run_id,
        exercise=exercise,
        spec_hash="0" * 64,
        profile_name=profile,
        profile=Profile.model_validate(exercise.profiles[profile].model_dump()),
        seed=42,
        submission_sha256="1" * 64,
        inputs_dir=str(inputs_dir),
        wall_seconds=wall_seconds,
        memory_mb=memory_mb,
        grader_version="0.1.0",
        backend="slurm",
    )


def make_settings(home: Path, **slurm: object) -> Settings:
    """Settings with every Slurm field given, so GRADER_* variables or a user TOML cannot leak in."""
    fields: dict[str, object] = {
        "slurm_driver": "cli",
        "slurm_partition": None,
        "slurm_account": None,
        "slurm_qos": None,
        "slurm_reservation": None,
        "slurm_gpus": 1,
        "slurm_gpu_shards": 0,
        "slurm_cpus": 2,
        "slurm_modules": [],
        "slurm_container": None,
        "slurm_python": "/opt/grader/venv/bin/python",
        "slurm_time_margin_s": 120,
        "slurm_memory_margin_mb": 1024,
    }
    fields.update(slurm)
    return Settings(home=home, **fields)  # type: ignore[arg-type]


FAKE_PYTHON = """#!/bin/bash
# Stands in for `python -m grader.sandbox RUN_DIR` in driver tests: runs RUN_DIR/behaviour.sh.
if [ "$#" -ne 3 ] || [ "$1" != -m ] || [ "$2" != grader.sandbox ]; then
  echo "fake python: unexpected arguments: $*" >&2; exit 99
fi
cd -- "$3" && exec bash ./behaviour.sh
"""


def write_fake_python(folder: Path) -> Path:
    path = folder / "fake-python"
    path.write_text(FAKE_PYTHON)
    path.chmod(0o755)
    return path


def make_run_dir(parent: Path, run_id: str, behaviour: str, spec: JobSpec) -> RunDir:
    """A prepared run dir (submission.py; job.json comes with Backend.submit) whose 'supervisor' runs `behaviour`."""
    run = RunDir(parent / HOSTILE_DIR_NAME / run_id).create()
    run.submission.write_text("def build_model():\n    raise NotImplementedError\n")
    (run.path / "behaviour.sh").write_text(behaviour)
    return run
