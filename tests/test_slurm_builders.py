"""The Slurm job description and batch script are pure functions: golden files, hostile paths, real bash."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from slurm_fixtures import make_job_spec, make_settings
from standins import pyslurm_25_11

from grader.backends.slurm.builders import (
    build_batch_script,
    build_job_description,
    sbatch_arguments,
    time_limit_minutes,
)
from grader.errors import BackendError
from grader.rundir import RunDir

# Paths never touched on disk: RunDir resolves them, so they must not pass through symlinks.
ROOT = Path("/grader-golden")
HOSTILE = 'it\'s "a" run; $(rm -rf ~) `id` 100% ünïcødé\nnewline'

CASES = {
    "plain": dict(
        run=ROOT / "home/runs/r-0001",
        inputs=ROOT / "home/inputs/mnist-smoke",
        settings=dict(
            slurm_partition="gpu",
            slurm_account="workshop",
            slurm_qos="normal",
            slurm_reservation="day1",
            slurm_modules=["cuda/12.2", "cudnn/8.9 python/3.11"],
        ),
    ),
    "hostile": dict(
        run=ROOT / "home with space/runs" / HOSTILE,
        inputs=ROOT / "home with space/inputs/it's; here",
        settings=dict(slurm_gpus=0, slurm_cpus=1, slurm_python="/opt/my venv/bin/python'3"),
    ),
    "container": dict(
        run=ROOT / "home/runs/r 0002; 'x'",
        inputs=ROOT / "home/inputs/mnist-smoke",
        settings=dict(slurm_container="/images/tensorflow 24.01 'ngc'.sif", slurm_python=None),
    ),
}


def _build(case: str, tmp_path: Path) -> tuple[dict[str, object], str]:
    spec = CASES[case]
    run = RunDir(spec["run"])  # type: ignore[arg-type]
    job = make_job_spec("r-0001", spec["inputs"], wall_seconds=900, memory_mb=6144)  # type: ignore[arg-type]
    settings = make_settings(tmp_path, **spec["settings"])  # type: ignore[arg-type]
    return build_job_description(run, job, settings), build_batch_script(run, job, settings)


@pytest.mark.parametrize("case", sorted(CASES))
def test_builders_match_goldens(case: str, tmp_path: Path, golden) -> None:
    description, script = _build(case, tmp_path)
    golden(f"slurm/{case}.description.json", json.dumps(description, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    golden(f"slurm/{case}.sbatch-args.json", json.dumps(sbatch_arguments(description), indent=2, ensure_ascii=False) + "\n")
    golden(f"slurm/{case}.sh", script)


@pytest.mark.parametrize("case", sorted(CASES))
def test_scripts_are_valid_bash(case: str, tmp_path: Path) -> None:
    _, script = _build(case, tmp_path)
    proc = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("case", sorted(CASES))
def test_description_uses_only_pyslurm_attributes(case: str, tmp_path: Path) -> None:
    """The same dict is pyslurm.JobSubmitDescription(**d) and sbatch options: both must accept every key."""
    description, _ = _build(case, tmp_path)
    assert set(description) <= pyslurm_25_11._SUBMIT_ATTRIBUTES
    sbatch_arguments(description)  # raises on a key the CLI driver cannot translate


def test_resources_come_from_the_job_spec_plus_margins(tmp_path: Path) -> None:
    description, _ = _build("plain", tmp_path)
    assert description["time_limit"] == 17  # 900 s + 120 s margin, in whole minutes
    assert description["memory_per_node"] == 6144 + 1024
    assert description["gres_per_node"] == "gpu:1"
    assert description["cpus_per_task"] == 2
    assert description["is_requeueable"] is False
    assert [time_limit_minutes(s, 120) for s in (0, 60, 61, 3600)] == [2, 3, 4, 62]
    assert [time_limit_minutes(s, -50) for s in (0, 60, 111)] == [1, 1, 2]  # never below Slurm's one minute


def test_gpu_shards_replace_whole_gpus(tmp_path: Path) -> None:
    """slurm_gpu_shards > 0 packs several jobs onto one GPU: gres shard:N instead of gpu:N."""
    run, job = RunDir(ROOT / "runs/r"), make_job_spec("r", ROOT / "inputs")
    gres = {
        (gpus, shards): build_job_description(run, job, make_settings(tmp_path, slurm_gpus=gpus, slurm_gpu_shards=shards))
        .get("gres_per_node")
        for gpus, shards in ((1, 0), (2, 0), (0, 0), (1, 1), (1, 3), (0, 2))
    }
    assert gres == {(1, 0): "gpu:1", (2, 0): "gpu:2", (0, 0): None, (1, 1): "shard:1", (1, 3): "shard:3", (0, 2): "shard:2"}
    assert "--gres=shard:3" in sbatch_arguments(
        build_job_description(run, job, make_settings(tmp_path, slurm_gpu_shards=3)))


def test_shards_are_recorded_in_the_allocation(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run").create()
    script = build_batch_script(run, make_job_spec("r-1", tmp_path), make_settings(tmp_path, slurm_python="/bin/true",
                                                                                   slurm_gpu_shards=1))
    _run_script(script, run, {"SLURM_JOB_GPUS": "0", "CUDA_VISIBLE_DEVICES": "0", "SLURM_SHARDS_ON_NODE": "1"}, [])
    allocation = json.loads(run.allocation.read_text())
    assert (allocation["gpus"], allocation["cuda_visible_devices"], allocation["shards"]) == ("0", "0", "1")


def test_margins_come_from_the_settings(tmp_path: Path) -> None:
    run, job = RunDir(ROOT / "runs/r"), make_job_spec("r", ROOT / "inputs", wall_seconds=100, memory_mb=500)
    settings = make_settings(tmp_path, slurm_time_margin_s=-40, slurm_memory_margin_mb=0)
    description = build_job_description(run, job, settings)
    assert (description["time_limit"], description["memory_per_node"]) == (1, 500)


def test_output_paths_escape_percent_and_keep_the_rest(tmp_path: Path) -> None:
    description, _ = _build("hostile", tmp_path)
    assert description["standard_output"] == str(RunDir(CASES["hostile"]["run"]).scheduler_log).replace("%", "%%")  # type: ignore[arg-type]
    assert description["working_directory"] == str(CASES["hostile"]["run"])


def test_backslash_in_run_dir_is_refused(tmp_path: Path) -> None:
    """Slurm drops backslashes from output paths (and then cannot open them): refuse early and clearly."""
    run = RunDir(ROOT / "runs" / "back\\slash")
    with pytest.raises(BackendError, match="backslash"):
        build_job_description(run, make_job_spec("r", ROOT / "inputs"), make_settings(tmp_path))


def test_container_refuses_paths_apptainer_cannot_bind(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, slurm_container="/images/tf.sif")
    with pytest.raises(BackendError, match="Apptainer cannot bind"):
        build_batch_script(RunDir(ROOT / "runs/a,b"), make_job_spec("r", ROOT / "inputs"), settings)
    with pytest.raises(BackendError, match="inputs directory"):
        build_batch_script(RunDir(ROOT / "runs/ab"), make_job_spec("r", ROOT / "in:puts"), settings)


def test_unknown_description_key_lists_the_known_ones() -> None:
    with pytest.raises(BackendError, match=r"unknown job description key 'gpus'; known keys: account, "):
        sbatch_arguments({"gpus": 1})


def _run_script(script: str, run: RunDir, env_extra: dict[str, str], path_dirs: list[Path]) -> None:
    env = {
        "PATH": os.pathsep.join([*map(str, path_dirs), os.environ["PATH"]]),
        "SLURM_JOB_ID": "4242",
        "SLURMD_NODENAME": "node-7",
        "SLURM_CPUS_ON_NODE": "2",
        "SLURM_MEM_PER_NODE": "7168",
        **env_extra,
    }
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr


def _recorder(folder: Path, name: str) -> Path:
    """An executable that writes its argv (NUL-separated) next to itself: what the script really ran."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/bash\nprintf '%s\\0' \"$@\" > {shlex.quote(str(folder / (name + '.argv')))}\n")
    path.chmod(0o755)
    return path


def test_script_runs_supervisor_on_a_hostile_path_for_real(tmp_path: Path) -> None:
    """Run the generated script with bash (no Slurm): the supervisor gets the exact path, GPUs are recorded."""
    run = RunDir(tmp_path / "home with space" / HOSTILE).create()
    inputs = tmp_path / "inputs; 'x'"
    inputs.mkdir()
    python = _recorder(tmp_path / "bin dir", "python'3")
    settings = make_settings(tmp_path, slurm_python=str(python))
    script = build_batch_script(run, make_job_spec("r-1", inputs), settings)
    _run_script(script, run, {"SLURM_JOB_GPUS": "1", "CUDA_VISIBLE_DEVICES": "1"}, [])
    argv = (python.parent / "python'3.argv").read_bytes().split(b"\0")[:-1]
    assert [a.decode() for a in argv] == ["-m", "grader.sandbox", str(run.path)]
    allocation = json.loads(run.allocation.read_text())
    assert allocation == {
        "job_id": "4242",
        "node": "node-7",
        "gpus": "1",
        "cuda_visible_devices": "1",
        "shards": "",
        "cpus": "2",
        "mem_mb": "7168",
    }


def test_container_script_binds_only_run_dir_and_inputs(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "runs" / "r 1; 'q' ü").create()
    inputs = tmp_path / "inputs dir"
    inputs.mkdir()
    bin_dir = tmp_path / "bin"
    _recorder(bin_dir, "apptainer")
    settings = make_settings(tmp_path, slurm_container=str(tmp_path / "tf 24.01.sif"), slurm_python=None)
    script = build_batch_script(run, make_job_spec("r-1", inputs), settings)
    _run_script(script, run, {"CUDA_VISIBLE_DEVICES": "0"}, [bin_dir])
    argv = [a.decode() for a in (bin_dir / "apptainer.argv").read_bytes().split(b"\0")[:-1]]
    assert argv == [
        "exec",
        "--nv",
        "--containall",
        "--bind",
        str(run.path),
        "--bind",
        f"{inputs}:{inputs}:ro",
        "--pwd",
        str(run.path),
        "--env",
        "CUDA_VISIBLE_DEVICES=0",
        str(tmp_path / "tf 24.01.sif"),
        "python3",
        "-m",
        "grader.sandbox",
        str(run.path),
    ]
