"""Pure Slurm job builders: the job description (pyslurm attributes), sbatch options and the batch script."""

from __future__ import annotations

import math
import re
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from grader.entrypoints import supervisor_argv
from grader.errors import BackendError
from grader.results import JobSpec
from grader.rundir import RunDir
from grader.settings import Settings

# Slurm's limits sit above the supervisor's own (settings.slurm_time_margin_s, slurm_memory_margin_mb)
# so that the supervisor, not Slurm, normally ends an overrunning job and writes supervisor.json;
# Slurm's limit is the backstop for a stuck supervisor.


def _filename_pattern(path: Path) -> str:
    """Slurm expands %j etc. in output paths ('%%' is a literal '%') and gives up on backslashes."""
    text = str(path)
    if "\\" in text:
        raise BackendError(f"Slurm cannot write job output under a path with a backslash: {text!r}")
    return text.replace("%", "%%")


def time_limit_minutes(wall_seconds: int, margin_seconds: int) -> int:
    """Slurm counts whole minutes: the supervisor's limit plus a margin, rounded up (at least one)."""
    return max(1, math.ceil((wall_seconds + margin_seconds) / 60))


def gres_request(settings: Settings) -> str | None:
    """GPU shards when configured (several jobs share a GPU), else whole GPUs, else nothing (CPU-only)."""
    if settings.slurm_gpu_shards:
        return f"shard:{settings.slurm_gpu_shards}"
    return f"gpu:{settings.slurm_gpus}" if settings.slurm_gpus else None


def build_job_description(run_dir: RunDir, job_spec: JobSpec, settings: Settings) -> dict[str, Any]:
    """Resources, names and paths of one grading job, keyed by pyslurm's JobSubmitDescription attributes.

    Both drivers submit exactly this: pyslurm takes it as keyword arguments, the CLI driver
    translates it with `sbatch_arguments`. Keys with no value are left out, so what is
    submitted is what a golden file shows.
    """
    log = _filename_pattern(run_dir.scheduler_log)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"grader-{job_spec.exercise.name}-{job_spec.run_id}")[:100]
    description: dict[str, Any] = {
        "name": name,
        "partitions": settings.slurm_partition,
        "account": settings.slurm_account,
        "qos": settings.slurm_qos,
        "reservations": settings.slurm_reservation,
        "nodes": 1,
        "ntasks": 1,
        "cpus_per_task": settings.slurm_cpus,
        "memory_per_node": job_spec.memory_mb + settings.slurm_memory_margin_mb,
        "time_limit": time_limit_minutes(job_spec.wall_seconds, settings.slurm_time_margin_s),
        "gres_per_node": gres_request(settings),
        "working_directory": str(run_dir.path),
        "standard_output": log,
        "standard_error": log,
        # A node failure or preemption ends the job; the coordinator decides about a retry, so
        # a run directory is never written by two attempts at once.
        "is_requeueable": False,
    }
    return {key: value for key, value in description.items() if value is not None}


# Static parts of the batch script (no interpolation: nothing here can be injected).
_MODULE_INIT = r"""# `module` is a shell function set up by login scripts; batch shells may lack it.
if ! type module >/dev/null 2>&1; then
  set +u
  for init in /etc/profile.d/lmod.sh /etc/profile.d/modules.sh /usr/share/lmod/lmod/init/bash; do
    if [ -r "$init" ]; then . "$init"; break; fi
  done
  set -u
fi"""

_RECORD_ALLOCATION = r"""# Record what Slurm allocated, for the result and for instructors (temp file, then rename).
json_string() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "${s//[[:cntrl:]]/}"; }
printf '{"job_id": %s, "node": %s, "gpus": %s, "cuda_visible_devices": %s, "shards": %s, "cpus": %s, "mem_mb": %s}\n' \
  "$(json_string "${SLURM_JOB_ID:-}")" "$(json_string "${SLURMD_NODENAME:-$(hostname)}")" \
  "$(json_string "${SLURM_JOB_GPUS:-}")" "$(json_string "${CUDA_VISIBLE_DEVICES:-}")" \
  "$(json_string "${SLURM_SHARDS_ON_NODE:-}")" \
  "$(json_string "${SLURM_CPUS_ON_NODE:-}")" "$(json_string "${SLURM_MEM_PER_NODE:-}")" \
  > "$RUN_DIR/.@ALLOCATION@.tmp"
mv -f -- "$RUN_DIR/.@ALLOCATION@.tmp" "$RUN_DIR/@ALLOCATION@"
""".rstrip("\n")  # @ALLOCATION@: RunDir.allocation's name, a fixed name safe inside double quotes

_CONTAINER_SETUP = r"""if command -v apptainer >/dev/null 2>&1; then runtime=apptainer
elif command -v singularity >/dev/null 2>&1; then runtime=singularity
else echo "grader: neither apptainer nor singularity is installed on $(hostname)" >&2; exit 127; fi
# Contained: no host home, environment or /tmp; only the run dir (read-write) and the inputs (read-only).
container_args=(exec --nv --containall --bind "$RUN_DIR" --bind "$INPUTS_DIR:$INPUTS_DIR:ro" --pwd "$RUN_DIR")
if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
  container_args+=(--env "CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES")
fi"""


def build_batch_script(run_dir: RunDir, job_spec: JobSpec, settings: Settings) -> str:
    """The bash script Slurm runs: modules, allocation record, then the supervisor (maybe in a container).

    Every path is a shell-quoted literal; nothing from the run directory is interpreted by the shell.
    """
    q = shlex.quote
    container = settings.slurm_container
    python = settings.slurm_python or ("python3" if container else sys.executable)
    header = " ".join(
        f"grader job {job_spec.run_id}: exercise {job_spec.exercise.name}, "
        f"profile {job_spec.profile_name}, grader {job_spec.grader_version}".split()
    )
    lines = [
        "#!/bin/bash",
        f"# {header}",
        "# Resources are requested by the submitter (sbatch options or pyslurm), not by #SBATCH lines.",
        "set -euo pipefail",
        f"RUN_DIR={q(str(run_dir.path))}",
        f"INPUTS_DIR={q(job_spec.inputs_dir)}",
        'cd -- "$RUN_DIR"',
        'echo "grader: Slurm job ${SLURM_JOB_ID:-?} on $(hostname) at $(date -Is)" >&2',
    ]
    modules = [name for entry in settings.slurm_modules for name in entry.split()]
    if modules:
        lines += [_MODULE_INIT, "module load " + " ".join(q(name) for name in modules)]
    lines.append(_RECORD_ALLOCATION.replace("@ALLOCATION@", run_dir.allocation.name))
    supervisor = " ".join(q(arg) for arg in supervisor_argv("RUN_DIR", python=python)[:-1]) + ' "$RUN_DIR"'
    if not container:
        lines.append(f"exec {supervisor}")
    else:
        for label, path in (("run directory", str(run_dir.path)), ("inputs directory", job_spec.inputs_dir)):
            if any(c in path for c in ":,"):
                raise BackendError(f"Apptainer cannot bind a {label} whose path holds ':' or ',': {path!r}")
        lines += [_CONTAINER_SETUP, f'exec "$runtime" "${{container_args[@]}}" {q(container)} {supervisor}']
    return "\n".join(lines) + "\n"


_SBATCH_OPTIONS = {
    "name": "--job-name",
    "partitions": "--partition",
    "account": "--account",
    "qos": "--qos",
    "reservations": "--reservation",
    "nodes": "--nodes",
    "ntasks": "--ntasks",
    "cpus_per_task": "--cpus-per-task",
    "memory_per_node": "--mem",
    "time_limit": "--time",
    "gres_per_node": "--gres",
    "working_directory": "--chdir",
    "standard_output": "--output",
    "standard_error": "--error",
    "comment": "--comment",
}


def sbatch_arguments(description: Mapping[str, Any]) -> list[str]:
    """Translate a job description into sbatch options (memory in MB and time in minutes, sbatch's units)."""
    args: list[str] = []
    for key, value in description.items():
        if key == "is_requeueable":
            args.append("--requeue" if value else "--no-requeue")
        elif key in _SBATCH_OPTIONS:
            args.append(f"{_SBATCH_OPTIONS[key]}={value}")
        else:
            known = ", ".join(sorted([*_SBATCH_OPTIONS, "is_requeueable"]))
            raise BackendError(f"unknown job description key {key!r}; known keys: {known}")
    return args

