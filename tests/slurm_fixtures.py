"""Shared Slurm test helpers: the real one-node cluster from cluster/, job specs, settings, run dirs."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from grader.results import JobSpec
from grader.rundir import RunDir
from grader.settings import Settings
from grader.specs.exercise import ExerciseSpec, Profile

REPO = Path(__file__).resolve().parent.parent
START = REPO / "cluster" / "start-local-cluster.sh"
STOP = REPO / "cluster" / "stop-local-cluster.sh"
HOSTILE_DIR_NAME = 'run dir; it\'s "quoted" ü$(x)'  # spaces, quotes, ; and non-ASCII, run for real


@dataclass(frozen=True)
class Cluster:
    """A reachable Slurm cluster for the `slurm`-marked tests."""

    conf: Path
    state_dir: Path | None  # set when it is the dev cluster from cluster/ (so slurmd can be stopped)
    cgroup: bool  # memory enforced by cgroups (over-memory jobs end OUT_OF_MEMORY)

    def stop_slurmd(self) -> None:
        assert self.state_dir is not None
        env = {**os.environ, "GRADER_SLURM_DIR": str(self.state_dir)}
        subprocess.run([str(STOP), "--slurmd"], env=env, check=True, capture_output=True, timeout=60)

    def restart(self) -> None:
        assert self.state_dir is not None
        env = {**os.environ, "GRADER_SLURM_DIR": str(self.state_dir)}
        subprocess.run([str(START)], env=env, check=True, capture_output=True, timeout=300)


# Each test module that imports the fixture gets its own session-scoped instance; without this, a
# second instance would see the SLURM_CONF the first exported and take the dev cluster for a foreign one.
_SESSION_CLUSTER: list[Cluster] = []


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Cluster]:
    """The dev cluster from cluster/start-local-cluster.sh (started here if needed), SLURM_CONF exported.

    An already exported SLURM_CONF with working CLIs is used as is (a real cluster). Skips, naming
    what is missing, only where no cluster can exist: no Slurm CLIs and no root to install them.
    """
    if _SESSION_CLUSTER:
        yield _SESSION_CLUSTER[0]
        return
    if os.environ.get("SLURM_CONF") and shutil.which("sbatch") and not os.environ.get("GRADER_SLURM_DIR"):
        conf = Path(os.environ["SLURM_CONF"])
        _SESSION_CLUSTER.append(Cluster(conf=conf, state_dir=None, cgroup="proctrack/cgroup" in _read(conf)))
        try:
            yield _SESSION_CLUSTER[0]
        finally:
            _SESSION_CLUSTER.clear()
        return
    if os.geteuid() != 0 and not shutil.which("sbatch"):
        pytest.skip("Slurm tests need sbatch and SLURM_CONF, or root to run cluster/start-local-cluster.sh")
    if os.geteuid() != 0:
        pytest.skip("cluster/start-local-cluster.sh needs root (daemons, cgroups); or export SLURM_CONF")
    state_dir = Path(os.environ.get("GRADER_SLURM_DIR", "/tmp/grader-slurm"))
    env = {**os.environ, "GRADER_SLURM_DIR": str(state_dir)}
    proc = subprocess.run([str(START)], env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"cluster/start-local-cluster.sh failed:\n{proc.stderr[-2000:]}")
    started_here = "up in" in proc.stderr
    exports = dict(line.removeprefix("export ").split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    saved = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = exports["SLURM_CONF"]
    conf = Path(exports["SLURM_CONF"])
    _SESSION_CLUSTER.append(Cluster(conf=conf, state_dir=state_dir, cgroup="proctrack/cgroup" in _read(conf)))
    try:
        yield _SESSION_CLUSTER[0]
    finally:
        _SESSION_CLUSTER.clear()
        if saved is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = saved
        if started_here and not os.environ.get("GRADER_SLURM_KEEP"):
            subprocess.run([str(STOP)], env=env, capture_output=True, timeout=300, check=False)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


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
    """A prepared run dir (job.json, submission.py) whose 'supervisor' runs `behaviour` (bash)."""
    run = RunDir(parent / HOSTILE_DIR_NAME / run_id).create()
    run.job_json.write_text(spec.model_dump_json(indent=2))
    run.submission.write_text("def build_model():\n    raise NotImplementedError\n")
    (run.path / "behaviour.sh").write_text(behaviour)
    return run
