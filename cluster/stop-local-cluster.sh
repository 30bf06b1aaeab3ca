#!/usr/bin/env bash
# stop-local-cluster.sh — stop the development cluster that
# start-local-cluster.sh brought up under $GRADER_SLURM_DIR (or, with
# GRADER_SLURM_PREFIX, under that Slurm's default dir): cancel its jobs,
# then stop slurmd, slurmctld and munged. Only processes named in this
# cluster's pid files (and checked to be ours) and the slurmstepd's holding
# files in its spool are signalled; nothing is matched by name. Idempotent.
#
#   cluster/stop-local-cluster.sh            # stop the daemons, keep the state dir
#   cluster/stop-local-cluster.sh --clean    # ... and delete $GRADER_SLURM_DIR
#   cluster/stop-local-cluster.sh --slurmd   # stop only slurmd (simulates a node failure)
set -uo pipefail

say() { echo "[stop-local-cluster] $*" >&2; }

CLEAN=0
ONLY_SLURMD=0
for arg in "$@"; do
  case "$arg" in
    --clean) CLEAN=1 ;;
    --slurmd) ONLY_SLURMD=1 ;;
    -h|--help) sed -n '2,11p' "$0" >&2; exit 0 ;;
    *) say "unknown argument: $arg (try --help)"; exit 2 ;;
  esac
done

SELF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=cluster/common.sh
. "$SELF_DIR/common.sh"  # BASE, and the Slurm tools of the prefix the cluster was started with first on PATH
CONF="$BASE/etc/slurm.conf"
MUNGE_SOCKET="$BASE/munge/socket"

ours() {  # pidfile binary marker -> prints the pid when it is one of ours
  local pid
  pid="$(cat "$1" 2>/dev/null)" || return 1
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  case "$(readlink "/proc/$pid/exe" 2>/dev/null)" in *"/$2"*) ;; *) return 1 ;; esac
  grep -qaF -- "$3" "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

stop_pid() {  # pid name
  local pid="$1" i
  kill "$pid" 2>/dev/null || return 0
  for (( i = 0; i < 75; i++ )); do
    if [ ! -d "/proc/$pid" ] || grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; then
      say "stopped $2 ($pid)"
      return 0
    fi
    sleep 0.2
  done
  kill -9 "$pid" 2>/dev/null && say "killed $2 ($pid)"
}

if [ ! -d "$BASE" ]; then
  say "nothing to stop: $BASE does not exist"
  exit 0
fi

if [ "$ONLY_SLURMD" = 1 ]; then
  if pid=$(ours "$BASE/run/slurmd.pid" slurmd "$CONF"); then stop_pid "$pid" slurmd; fi
  exit 0
fi

# Cancel every job first so no job process outlives the cluster (waiting for them to end only
# while slurmd is there to end them; otherwise their leftovers are killed below).
if ours "$BASE/run/slurmctld.pid" slurmctld "$CONF" >/dev/null \
   && SLURM_CONF="$CONF" timeout 10 scontrol ping >/dev/null 2>&1; then
  SLURM_CONF="$CONF" timeout 10 scancel --partition=debug >/dev/null 2>&1 || true
  ours "$BASE/run/slurmd.pid" slurmd "$CONF" >/dev/null && waits=40 || waits=0
  for (( i = 0; i < waits; i++ )); do
    [ -z "$(SLURM_CONF="$CONF" timeout 10 squeue --noheader --states=PD,R,CG,S,CF --format=%i 2>/dev/null)" ] && break
    sleep 0.5
  done
fi

if pid=$(ours "$BASE/run/slurmd.pid" slurmd "$CONF"); then stop_pid "$pid" slurmd; fi

# slurmstepd's left from jobs (e.g. after slurmd was stopped mid-job) hold
# files in our spool dir; end them and their children.
leftover=""
for proc in /proc/[0-9]*; do
  case "$(readlink "$proc/exe" 2>/dev/null)" in */slurmstepd*) ;; *) continue ;; esac
  for fd in "$proc"/fd/*; do
    case "$(readlink "$fd" 2>/dev/null)" in "$BASE/"*) leftover="$leftover ${proc#/proc/}"; break ;; esac
  done
done
if [ -n "$leftover" ]; then
  children=$(ps -eo pid=,ppid= | awk -v roots="$leftover" '
    BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) { q[++t] = r[i] } }
    { kids[$2] = kids[$2] " " $1 }
    END { for (h = 1; h <= t; h++) { m = split(kids[q[h]], k, " ")
            for (j = 1; j <= m; j++) if (!(k[j] in seen)) { seen[k[j]] = 1; print k[j]; q[++t] = k[j] } } }')
  say "ending leftover job processes:$leftover $(echo $children)"
  # shellcheck disable=SC2086
  kill -9 $children $leftover 2>/dev/null || true
fi

if pid=$(ours "$BASE/run/slurmctld.pid" slurmctld "$CONF"); then stop_pid "$pid" slurmctld; fi
if pid=$(ours "$BASE/munge/munged.pid" munged "$MUNGE_SOCKET"); then stop_pid "$pid" munged; fi

if [ "$CLEAN" = 1 ]; then
  rm -rf -- "$BASE" && say "removed $BASE"
fi
exit 0
