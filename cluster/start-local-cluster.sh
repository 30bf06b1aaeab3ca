#!/usr/bin/env bash
# start-local-cluster.sh — bring up a real one-node Slurm cluster for grader's
# development and CI: munged + slurmctld + slurmd on 127.0.0.1, with fake GPUs
# (gres/gpu, each also split into gres/shard) so `--gres=gpu:N` and
# `--gres=shard:N` jobs schedule on a machine without a GPU, and cgroup memory
# enforcement when the host allows it (so --mem overruns end as OUT_OF_MEMORY).
# Everything lives under $GRADER_SLURM_DIR. Needs root.
#
#   eval "$(cluster/start-local-cluster.sh)"     # stdout: only `export ...` lines
#   cluster/start-local-cluster.sh --clean       # stop and wipe an old cluster first
#   cluster/stop-local-cluster.sh [--clean]
#
# Either Slurm: the distribution's (Debian 12: 22.05; slurmctld/slurmd/slurm-client/
# munge are installed with apt-get if missing), or a build from cluster/build-slurm.sh
# with GRADER_SLURM_PREFIX=/opt/slurm-25.11, which is put first on PATH; then the
# printed environment also sets PATH and LD_LIBRARY_PATH. The two get different
# default dirs, ports and job ids (cluster/common.sh), so both can run at once.
# Idempotent: when the cluster is already up it only prints the environment.
#
# Environment (optional; change with --clean):
#   GRADER_SLURM_PREFIX         a Slurm installed from source (bin/, sbin/)  [unset: Slurm on PATH]
#   GRADER_SLURM_DIR            state dir (conf, state, spool, logs, munge) [/tmp/grader-slurm;
#                               with a prefix: /tmp/grader-slurm-X.Y]
#   GRADER_SLURM_CPUS           CPUs the node advertises (may exceed nproc)  [8]
#   GRADER_SLURM_GPUS           fake GPUs (gres/gpu)                         [2]
#   GRADER_SLURM_SHARDS         gres/shard per fake GPU (jobs sharing it)    [4; 0 = no shards]
#   GRADER_SLURM_MEM_MB         RealMemory of the node                       [80% of MemTotal]
#   GRADER_SLURM_CTLD_PORT      slurmctld port on 127.0.0.1                  [6827; prefix: 6837]
#   GRADER_SLURM_SLURMD_PORT    slurmd port on 127.0.0.1                     [6828; prefix: 6838]
#   GRADER_SLURM_FIRST_JOB_ID   first job id                                 [1; prefix X.Y: XY0001]
#   GRADER_SLURM_MIN_JOB_AGE    seconds finished jobs stay queryable         [3600]
#   GRADER_SLURM_SLURMD_TIMEOUT seconds before a silent slurmd marks the node
#                               DOWN and its jobs NODE_FAIL                  [30]
#   GRADER_SLURM_CGROUP         auto|yes|no (memory enforcement by cgroups)  [auto]
#   GRADER_SLURM_INSTALL        0 = never run apt-get                        [1]
set -euo pipefail

say() { echo "[start-local-cluster] $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

CLEAN=0
for arg in "$@"; do
  case "$arg" in
    --clean) CLEAN=1 ;;
    -h|--help) sed -n '2,40p' "$0" >&2; exit 0 ;;
    *) die "unknown argument: $arg (try --help)" ;;
  esac
done
[ "$(id -u)" = 0 ] || die "must run as root (apt-get, mknod, cgroups, daemons)"

SELF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=cluster/common.sh
. "$SELF_DIR/common.sh"  # SLURM_PREFIX, PREFIX_VERSION, BASE, DEFAULT_* (and PATH with the prefix)
if [ -n "$SLURM_PREFIX" ]; then
  [ -x "$SLURM_PREFIX/sbin/slurmctld" ] && [ -n "$PREFIX_VERSION" ] \
    || die "GRADER_SLURM_PREFIX=$SLURM_PREFIX holds no Slurm build (sbin/slurmctld, include/slurm/slurm_version.h); see cluster/build-slurm.sh"
fi
NCPU="${GRADER_SLURM_CPUS:-8}"
NGPU="${GRADER_SLURM_GPUS:-2}"
NSHARD="${GRADER_SLURM_SHARDS:-4}"
MEM_TOTAL_MB=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 ))
MEM_MB="${GRADER_SLURM_MEM_MB:-$(( MEM_TOTAL_MB * 8 / 10 ))}"
CTLD_PORT="${GRADER_SLURM_CTLD_PORT:-$DEFAULT_CTLD_PORT}"
SLURMD_PORT="${GRADER_SLURM_SLURMD_PORT:-$DEFAULT_SLURMD_PORT}"
FIRST_JOB_ID="${GRADER_SLURM_FIRST_JOB_ID:-$DEFAULT_FIRST_JOB_ID}"
MIN_JOB_AGE="${GRADER_SLURM_MIN_JOB_AGE:-3600}"
SLURMD_TIMEOUT="${GRADER_SLURM_SLURMD_TIMEOUT:-30}"
CGROUP="${GRADER_SLURM_CGROUP:-auto}"
INSTALL="${GRADER_SLURM_INSTALL:-1}"
NODE=localhost
CONF="$BASE/etc/slurm.conf"
MUNGE_SOCKET="$BASE/munge/socket"

# --------------------------------------------------------------- helpers ---
# A pid file is trusted only if its process runs the expected binary and names
# our config (or socket) on its command line: never signal a stranger.
ours() {  # pidfile binary marker
  local pid
  pid="$(cat "$1" 2>/dev/null)" || return 1
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  case "$(readlink "/proc/$pid/exe" 2>/dev/null)" in *"/$2"*) ;; *) return 1 ;; esac
  grep -qaF -- "$3" "/proc/$pid/cmdline" 2>/dev/null
}
munged_up()  { ours "$BASE/munge/munged.pid" munged "$MUNGE_SOCKET"; }
ctld_up()    { ours "$BASE/run/slurmctld.pid" slurmctld "$CONF"; }
slurmd_up()  { ours "$BASE/run/slurmd.pid" slurmd "$CONF"; }

node_state() {
  SLURM_CONF="$CONF" sinfo --noheader --nodes="$NODE" --format=%T 2>/dev/null \
    | head -n1 | tr -d '*~#!%$@^+-'
}
node_usable() { case "$(node_state)" in idle|mixed|allocated|completing) return 0 ;; *) return 1 ;; esac; }

retry() {  # seconds command...
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.25
  done
}

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

emit_env() {
  {
    printf 'export SLURM_CONF=%q\nexport GRADER_SLURM_DIR=%q\n' "$CONF" "$BASE"
    if [ -n "$SLURM_PREFIX" ]; then
      # the tools, and the libraries pyslurm built against this Slurm (cluster/build-pyslurm.sh) loads
      printf 'export GRADER_SLURM_PREFIX=%q\n' "$SLURM_PREFIX"
      printf 'export PATH=%q:"$PATH"\n' "$SLURM_PREFIX/bin:$SLURM_PREFIX/sbin"
      printf 'export LD_LIBRARY_PATH=%q"${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"\n' "$SLURM_PREFIX/lib"
    fi
  } > "$BASE/env.sh"
  cat "$BASE/env.sh"   # the only thing this script prints on stdout
}

slurm_version() {  # what the daemon says (`sinfo --version` needs a configuration in 25.11)
  slurmctld -V 2>/dev/null | sed -nE 's/^slurm(-wlm)? ([0-9.]+).*/\2/p' | head -n 1
}

# --------------------------------------------------------------- install ---
ensure_packages() {
  local need=0 bin pkgs="slurmctld slurmd slurm-client munge" log="${TMPDIR:-/tmp}/grader-slurm-apt.log"
  for bin in slurmctld slurmd sbatch squeue scontrol scancel munged; do
    command -v "$bin" >/dev/null 2>&1 || need=1
  done
  [ "$need" = 0 ] && return 0
  if [ -n "$SLURM_PREFIX" ]; then  # Slurm comes from the prefix; only munge may be missing
    for bin in slurmctld slurmd sbatch squeue scontrol scancel; do
      [ -x "$SLURM_PREFIX/bin/$bin" ] || [ -x "$SLURM_PREFIX/sbin/$bin" ] || die "$SLURM_PREFIX has no $bin"
    done
    pkgs="munge"
  fi
  [ "$INSTALL" = 1 ] || die "Slurm or munge is missing and GRADER_SLURM_INSTALL=0"
  say "installing $pkgs with apt-get (log: $log)"
  local apt=(apt-get -y -q -o DPkg::Lock::Timeout=600 install --no-install-recommends)
  if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" $pkgs >"$log" 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 update >>"$log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" $pkgs >>"$log" 2>&1 \
      || { tail -n 15 "$log" >&2; die "apt-get install failed"; }
  fi
}

# ---------------------------------------------------------------- config ---
cgroups_usable() {
  if [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ]; then
    return 0
  fi
  grep -qE ' /sys/fs/cgroup/memory cgroup ' /proc/mounts &&
    grep -qE ' /sys/fs/cgroup/freezer cgroup ' /proc/mounts
}

write_config() {  # yes|no: enforce memory with cgroups
  local cg="$1" i version major
  mkdir -p "$BASE"/{etc,state,spool,log,run,munge,dev}
  version="$(slurm_version)"
  major="${version%%.*}"
  echo "$SLURM_PREFIX" > "$BASE/etc/prefix"  # for stop-local-cluster.sh

  # Fake GPUs: gres/gpu ignores lines without File=, and File= must be a
  # character device; nodes with the numbers of /dev/null do. Each GPU is also
  # split into NSHARD gres/shard so that several jobs can share one GPU
  # (--gres=shard:N). Slurm 25.11 gives a GPU either whole (gpu) or as shards;
  # 22.05 was seen to give a whole GPU while its shards were in use.
  {
    echo "AutoDetect=off"
    for (( i = 0; i < NGPU; i++ )); do
      [ -c "$BASE/dev/nvidia$i" ] || { rm -f "$BASE/dev/nvidia$i"; mknod -m 666 "$BASE/dev/nvidia$i" c 1 3; }
      echo "NodeName=$NODE Name=gpu File=$BASE/dev/nvidia$i"
    done
    if [ "$NSHARD" -gt 0 ]; then
      for (( i = 0; i < NGPU; i++ )); do
        echo "NodeName=$NODE Name=shard Count=$NSHARD File=$BASE/dev/nvidia$i"
      done
    fi
  } > "$BASE/etc/gres.conf"

  # CgroupAutomount is defunct from Slurm 24 on (an error in the daemons' logs).
  {
    [ "${major:-0}" -ge 24 ] || echo "CgroupAutomount=yes"
    cat <<EOF
ConstrainCores=no
ConstrainDevices=no
ConstrainRAMSpace=yes
ConstrainSwapSpace=yes
EOF
  } > "$BASE/etc/cgroup.conf"
  : > "$BASE/etc/plugstack.conf"

  local proctrack=proctrack/linuxproc task=task/none gather_params="JobAcctGatherParams=OverMemoryKill"
  if [ "$cg" = yes ]; then proctrack=proctrack/cgroup; task=task/cgroup; gather_params=""; fi
  local gres="" gres_types=gpu
  [ "$NGPU" -gt 0 ] && gres="Gres=gpu:$NGPU"
  if [ "$NGPU" -gt 0 ] && [ "$NSHARD" -gt 0 ]; then gres="$gres,shard:$(( NGPU * NSHARD ))"; gres_types=gpu,shard; fi

  cat > "$CONF" <<EOF
# Written by grader's cluster/start-local-cluster.sh: a one-node development
# cluster on 127.0.0.1. Not for production.
# Slurm $version${SLURM_PREFIX:+ from $SLURM_PREFIX}
ClusterName=grader-dev
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$BASE/etc/plugstack.conf
ProctrackType=$proctrack
TaskPlugin=$task
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=1
$gather_params
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$BASE/log/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
GresTypes=$gres_types
FirstJobId=$FIRST_JOB_ID
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=$MIN_JOB_AGE
SlurmdTimeout=$SLURMD_TIMEOUT
KillWait=5
InactiveLimit=0
MessageTimeout=10
MpiDefault=none
SlurmdParameters=config_overrides
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$NCPU RealMemory=$MEM_MB $gres State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

# --------------------------------------------------------------- daemons ---
# Daemons get /dev/null for stdio so `$(start-local-cluster.sh)` never hangs.
start_munged() {
  munged_up && return 0
  chmod 755 "$BASE/munge"
  [ -s "$BASE/munge/munge.key" ] || dd if=/dev/urandom of="$BASE/munge/munge.key" bs=1024 count=1 status=none
  chmod 600 "$BASE/munge/munge.key"
  rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
  munged --socket="$MUNGE_SOCKET" --key-file="$BASE/munge/munge.key" \
         --pid-file="$BASE/munge/munged.pid" --log-file="$BASE/munge/munged.log" \
         --seed-file="$BASE/munge/munged.seed" </dev/null >/dev/null 2>&1 \
    || die "munged did not start: $(tail -n 3 "$BASE/munge/munged.log" 2>/dev/null)"
  retry 10 bash -c 'munge -n -S "$1" | unmunge -S "$1"' _ "$MUNGE_SOCKET" \
    || die "munged does not answer on $MUNGE_SOCKET"
}

start_slurmctld() {
  ctld_up && return 0
  slurmctld -f "$CONF" </dev/null >/dev/null 2>>"$BASE/log/slurmctld.stderr" \
    || die "slurmctld did not start: $(tail -n 5 "$BASE/log/slurmctld.log" 2>/dev/null)"
  retry 30 env SLURM_CONF="$CONF" scontrol ping \
    || die "slurmctld does not answer: $(grep -E 'error|fatal' "$BASE/log/slurmctld.log" | tail -n 3)"
}

start_slurmd() {
  slurmd_up && return 0
  slurmd -f "$CONF" -N "$NODE" </dev/null >/dev/null 2>>"$BASE/log/slurmd.stderr" || return 1
}

# Wait for the node; a node left DOWN/DRAINED in saved state (e.g. after a
# slurmd was stopped on purpose) is resumed once.
wait_for_node() {
  local deadline=$(( $(date +%s) + 60 )) resumed=0 state
  while :; do
    node_usable && return 0
    state="$(node_state)"
    case "$state" in
      down*|drain*|inval*|fail*)
        if [ "$resumed" = 0 ] && slurmd_up; then
          sleep 1
          SLURM_CONF="$CONF" scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
          resumed=1
        fi ;;
    esac
    slurmd_up || { sleep 1; slurmd_up || return 1; }
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.25
  done
}

stop_by_pidfile() {  # pidfile binary marker
  local pid i
  ours "$1" "$2" "$3" || return 0
  pid="$(cat "$1")"
  kill "$pid" 2>/dev/null || return 0
  for (( i = 0; i < 50; i++ )); do [ -d "/proc/$pid" ] || return 0; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
}

# ------------------------------------------------------------------ main ---
ensure_packages

if [ "$CLEAN" = 1 ] && [ -d "$BASE" ]; then
  GRADER_SLURM_DIR="$BASE" bash "$SELF_DIR/stop-local-cluster.sh" --clean >&2
fi

recorded="$(cat "$BASE/etc/prefix" 2>/dev/null || true)"
if [ "$recorded" != "$SLURM_PREFIX" ] && [ -n "$(ls -A "$BASE/state" 2>/dev/null)" ]; then
  die "$BASE holds a cluster of the Slurm ${recorded:-on PATH}, not ${SLURM_PREFIX:-the one on PATH}: use --clean or another GRADER_SLURM_DIR"
fi

if [ -s "$CONF" ] && munged_up && ctld_up && slurmd_up && node_usable; then
  emit_env
  exit 0
fi

ctld_up   || ! port_taken "$CTLD_PORT"   || die "port $CTLD_PORT is taken by another process (set GRADER_SLURM_CTLD_PORT)"
slurmd_up || ! port_taken "$SLURMD_PORT" || die "port $SLURMD_PORT is taken by another process (set GRADER_SLURM_SLURMD_PORT)"

case "$CGROUP" in
  yes|no) use_cgroup="$CGROUP" ;;
  auto) if cgroups_usable; then use_cgroup=yes; else use_cgroup=no; fi ;;
  *) die "GRADER_SLURM_CGROUP must be auto, yes or no" ;;
esac

# Keep a running cluster's config; a fresh start writes it.
if ! { ctld_up && [ -s "$CONF" ]; }; then
  write_config "$use_cgroup"
fi
use_cgroup="$(grep -q '^ProctrackType=proctrack/cgroup' "$CONF" && echo yes || echo no)"

started=$(date +%s)
start_munged
start_slurmctld
if ! { start_slurmd && wait_for_node; }; then
  if [ "$use_cgroup" = yes ] && [ "$CGROUP" = auto ]; then
    say "slurmd did not come up with cgroups; retrying without memory enforcement by cgroup:"
    say "$(grep -iE 'error|fatal' "$BASE/log/slurmd.log" 2>/dev/null | tail -n 3)"
    stop_by_pidfile "$BASE/run/slurmd.pid" slurmd "$CONF"
    stop_by_pidfile "$BASE/run/slurmctld.pid" slurmctld "$CONF"
    use_cgroup=no
    write_config no
    start_slurmctld
    { start_slurmd && wait_for_node; } || die "node did not come up (state: $(node_state)); see $BASE/log/slurmd.log"
  else
    die "node did not come up (state: $(node_state)); see $BASE/log/slurmd.log"
  fi
fi
say "up in $(( $(date +%s) - started )) s: Slurm $(slurm_version), node $NODE $(node_state), cpus=$NCPU gpus=$NGPU shards=$NSHARD/gpu mem=${MEM_MB}M cgroup=$use_cgroup dir=$BASE ports=$CTLD_PORT/$SLURMD_PORT"
emit_env
