#!/bin/bash
# grader job r-0001: exercise mnist, profile smoke, grader 0.1.0
# Resources are requested by the submitter (sbatch options or pyslurm), not by #SBATCH lines.
set -euo pipefail
RUN_DIR='/grader-golden/home/runs/r 0002; '"'"'x'"'"''
INPUTS_DIR=/grader-golden/home/inputs/mnist-smoke
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
if command -v apptainer >/dev/null 2>&1; then runtime=apptainer
elif command -v singularity >/dev/null 2>&1; then runtime=singularity
else echo "grader: neither apptainer nor singularity is installed on $(hostname)" >&2; exit 127; fi
# Contained: no host home, environment or /tmp; only the run dir (read-write) and the inputs (read-only).
container_args=(exec --nv --containall --bind "$RUN_DIR" --bind "$INPUTS_DIR:$INPUTS_DIR:ro" --pwd "$RUN_DIR")
if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
  container_args+=(--env "CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES")
fi
exec "$runtime" "${container_args[@]}" '/images/tensorflow 24.01 '"'"'ngc'"'"'.sif' python3 -m grader.sandbox "$RUN_DIR"
