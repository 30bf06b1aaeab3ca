#!/bin/bash
# grader job r-0001: exercise mnist, profile smoke, grader 0.1.0
# Resources are requested by the submitter (sbatch options or pyslurm), not by #SBATCH lines.
set -euo pipefail
RUN_DIR=/grader-golden/home/runs/r-0001
INPUTS_DIR=/grader-golden/home/inputs/mnist-smoke
cd -- "$RUN_DIR"
echo "grader: Slurm job ${SLURM_JOB_ID:-?} on $(hostname) at $(date -Is)" >&2
# `module` is a shell function set up by login scripts; batch shells may lack it.
if ! type module >/dev/null 2>&1; then
  set +u
  for init in /etc/profile.d/lmod.sh /etc/profile.d/modules.sh /usr/share/lmod/lmod/init/bash; do
    if [ -r "$init" ]; then . "$init"; break; fi
  done
  set -u
fi
module load cuda/12.2 cudnn/8.9 python/3.11
# Record what Slurm allocated, for the result and for instructors (temp file, then rename).
json_string() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "${s//[[:cntrl:]]/}"; }
printf '{"job_id": %s, "node": %s, "gpus": %s, "cuda_visible_devices": %s, "shards": %s, "cpus": %s, "mem_mb": %s}\n' \
  "$(json_string "${SLURM_JOB_ID:-}")" "$(json_string "${SLURMD_NODENAME:-$(hostname)}")" \
  "$(json_string "${SLURM_JOB_GPUS:-}")" "$(json_string "${CUDA_VISIBLE_DEVICES:-}")" \
  "$(json_string "${SLURM_SHARDS_ON_NODE:-}")" \
  "$(json_string "${SLURM_CPUS_ON_NODE:-}")" "$(json_string "${SLURM_MEM_PER_NODE:-}")" \
  > "$RUN_DIR/.allocation.json.tmp"
mv -f -- "$RUN_DIR/.allocation.json.tmp" "$RUN_DIR/allocation.json"
exec /opt/grader/venv/bin/python -m grader.sandbox "$RUN_DIR"
