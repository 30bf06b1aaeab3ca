# shellcheck shell=bash disable=SC2034  # sourced: the variables are used by the scripts that source it
# common.sh — sourced by start-local-cluster.sh and stop-local-cluster.sh: which Slurm, where, which ports.
#
# GRADER_SLURM_PREFIX unset: the distribution's Slurm on PATH (Debian 12: 22.05, installed with
# apt-get), state in /tmp/grader-slurm, ports 6827/6828, job ids from 1.
# GRADER_SLURM_PREFIX=/opt/slurm-25.11 (a build from cluster/build-slurm.sh): that Slurm first on
# PATH, state in /tmp/grader-slurm-25.11, ports 6837/6838, job ids from 25110001 — so both clusters
# can run side by side without sharing ports, state or cgroup names (cgroups are named by job id).
# The state dir records its prefix, so the stop script finds the right tools from GRADER_SLURM_DIR alone.

slurm_header_version() {  # PREFIX -> X.Y.Z from include/slurm/slurm_version.h, or nothing
  local hex number
  hex="$(awk '/^#define SLURM_VERSION_NUMBER/ {print $3}' "$1/include/slurm/slurm_version.h" 2>/dev/null)"
  [ -n "$hex" ] || return 0
  number=$(( hex ))
  echo "$(( number >> 16 & 255 )).$(( number >> 8 & 255 )).$(( number & 255 ))"
}

SLURM_PREFIX="${GRADER_SLURM_PREFIX:-}"
if [ -z "$SLURM_PREFIX" ] && [ -s "${GRADER_SLURM_DIR:-/tmp/grader-slurm}/etc/prefix" ]; then
  SLURM_PREFIX="$(cat "${GRADER_SLURM_DIR:-/tmp/grader-slurm}/etc/prefix")"  # the dir remembers its Slurm
fi
SLURM_PREFIX="${SLURM_PREFIX%/}"
PREFIX_VERSION=""
if [ -n "$SLURM_PREFIX" ]; then
  PREFIX_VERSION="$(slurm_header_version "$SLURM_PREFIX")"
  PREFIX_MM="${PREFIX_VERSION%.*}"
  export PATH="$SLURM_PREFIX/bin:$SLURM_PREFIX/sbin:$PATH"
  DEFAULT_BASE="/tmp/grader-slurm-${PREFIX_MM:-$(basename "$SLURM_PREFIX")}"
  DEFAULT_CTLD_PORT=6837
  DEFAULT_SLURMD_PORT=6838
  if [ -n "$PREFIX_VERSION" ]; then DEFAULT_FIRST_JOB_ID=$(( 10#${PREFIX_MM//./} * 10000 + 1 )); else DEFAULT_FIRST_JOB_ID=1000001; fi
else
  DEFAULT_BASE=/tmp/grader-slurm
  DEFAULT_CTLD_PORT=6827
  DEFAULT_SLURMD_PORT=6828
  DEFAULT_FIRST_JOB_ID=1
fi
BASE="${GRADER_SLURM_DIR:-$DEFAULT_BASE}"
case "$BASE" in /*) ;; *) BASE="$PWD/$BASE" ;; esac
