#!/bin/bash
# grader job r-0001: exercise mnist, profile smoke, grader 0.1.0
# Resources are requested by the submitter (sbatch options or pyslurm), not by #SBATCH lines.
set -euo pipefail
RUN_DIR='/grader-golden/home with space/runs/it'"'"'s "a" run; $(rm -rf ~) `id` 100% ünïcødé
newline'
INPUTS_DIR='/grader-golden/home with space/inputs/it'"'"'s; here'
cd -- "$RUN_DIR"
echo "grader: Slurm job ${SLURM_JOB_ID:-?} on $(hostname) at $(date -Is)" >&2
# Record what Slurm allocated, for the result and for instructors (temp file, then rename).
json_string() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "${s//[[:cntrl:]]/}"; }
printf '{"job_id": %s, "node": %s, "gpus": %s, "cuda_visible_devices": %s, "shards": %s, "cpus": %s, "mem_mb": %s}\n' \
  "$(json_string "${SLURM_JOB_ID:-}")" "$(json_string "${SLURMD_NODENAME:-$(hostname)}")" \
  "$(json_string "${SLURM_JOB_GPUS:-}")" "$(json_string "${CUDA_VISIBLE_DEVICES:-}")" \
  "$(json_string "${SLURM_SHARDS_ON_NODE:-}")" \
  "$(json_string "${SLURM_CPUS_ON_NODE:-}")" "$(json_string "${SLURM_MEM_PER_NODE:-}")" \
  > "$RUN_DIR/.allocation.json.tmp"
mv -f -- "$RUN_DIR/.allocation.json.tmp" "$RUN_DIR/allocation.json"
exec '/opt/my venv/bin/python'"'"'3' -m grader.sandbox "$RUN_DIR"
