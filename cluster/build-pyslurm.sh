#!/usr/bin/env bash
# build-pyslurm.sh — build PyPI's pyslurm into a virtual environment against one Slurm installation,
# so that grader's pyslurm driver can be used (pyslurm must match Slurm's major.minor exactly).
#
#   cluster/build-pyslurm.sh VENV [SLURM_PREFIX]      # e.g. cluster/build-pyslurm.sh .venv /opt/slurm-25.11
#
# SLURM_PREFIX (default /opt/slurm-25.11) holds include/slurm/slurm_version.h and libslurmfull.so in
# lib/, lib64/ or lib/<multiarch>/, or in a slurm/ or slurm-wlm/ folder there (/usr for RPMs' slurm-devel). The pyslurm release follows from the
# Slurm version in that header: 25.11 → pyslurm 25.11.2 (override: GRADER_PYSLURM_VERSION). PyPI
# has pyslurm only for Slurm 25.11 (and ancient 17.11/18.08); for another Slurm, build pyslurm's
# matching branch from a source checkout instead (see docs/cluster.md).
#
# Idempotent: does nothing when VENV already imports that pyslurm release. The build (Cython,
# ~6 min on 2 cores) needs a C compiler and pip's access to PyPI (or a mirror). The extension
# modules carry an RPATH to the Slurm library directory; at run time pyslurm also needs a Slurm
# configuration (SLURM_CONF), and LD_LIBRARY_PATH=SLURM_PREFIX/lib does no harm.
# Prints progress on stderr; exit 0 = importable, 1 = failed (the reason is the last line).
set -euo pipefail

say() { echo "[build-pyslurm] $*" >&2; }
die() { say "FAILED: $*"; exit 1; }

case "${1:-}" in
  ""|-h|--help) sed -n '2,17p' "$0" >&2; [ -n "${1:-}" ]; exit $? ;;
esac
VENV="$1"
PREFIX="${2:-/opt/slurm-25.11}"
PY="$VENV/bin/python"
[ -x "$PY" ] || die "$PY is not an interpreter (give the virtual environment's folder)"
HEADER="$PREFIX/include/slurm/slurm_version.h"
[ -r "$HEADER" ] || die "no Slurm headers in $PREFIX/include/slurm (slurm_version.h): build Slurm first (cluster/build-slurm.sh) or give its prefix"
LIBDIR=""
for dir in "$PREFIX/lib" "$PREFIX/lib64" "$PREFIX"/lib/*-linux-gnu; do  # Debian: lib/x86_64-linux-gnu/slurm-wlm
  for sub in "" /slurm /slurm-wlm; do
    [ -e "$dir$sub/libslurmfull.so" ] && { LIBDIR="$dir"; break 2; }
  done
done
[ -n "$LIBDIR" ] || die "no libslurmfull.so under $PREFIX/lib, $PREFIX/lib64 (or a slurm/, slurm-wlm/ folder there)"

# `sinfo --version` needs a configuration in 25.11; the header does not.
hex="$(awk '/^#define SLURM_VERSION_NUMBER/ {print $3}' "$HEADER")"
[ -n "$hex" ] || die "no SLURM_VERSION_NUMBER in $HEADER"
number=$(( hex ))
SLURM_VERSION="$(( number >> 16 & 255 )).$(( number >> 8 & 255 )).$(( number & 255 ))"
major_minor="${SLURM_VERSION%.*}"
case "$major_minor" in
  25.11) default_release=25.11.2 ;;
  *) default_release="" ;;
esac
WANT="${GRADER_PYSLURM_VERSION:-$default_release}"
[ -n "$WANT" ] || die "PyPI has no pyslurm for Slurm $SLURM_VERSION; build pyslurm's $major_minor branch from source (docs/cluster.md), or set GRADER_PYSLURM_VERSION"

# Importing pyslurm runs slurm_init(), which ends the process without a configuration; a throwaway
# one is enough (nothing is contacted at import time).
importable() {
  local conf status
  conf="$(mktemp -d "${TMPDIR:-/tmp}/pyslurm-check-XXXX")"
  printf 'ClusterName=check\nSlurmctldHost=localhost\nNodeName=localhost\nPartitionName=p Nodes=ALL\n' > "$conf/slurm.conf"
  status=0
  SLURM_CONF="$conf/slurm.conf" LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$PY" - "$WANT" <<'EOF' >&2 || status=$?
import importlib.metadata, sys
have = importlib.metadata.version("pyslurm")
if have != sys.argv[1]:
    sys.exit(f"pyslurm {have} is installed, not {sys.argv[1]}")
import pyslurm
print(f"pyslurm {pyslurm.__version__} imports from {pyslurm.__file__}")
EOF
  rm -rf "$conf"
  return "$status"
}

if importable 2>/dev/null; then
  say "pyslurm $WANT already importable in $VENV (Slurm $SLURM_VERSION in $PREFIX)"
  exit 0
fi

log="$VENV/pyslurm-build.log"
say "building pyslurm $WANT for Slurm $SLURM_VERSION ($PREFIX) into $VENV, ~6 min (log: $log)"
started=$(date +%s)
if ! SLURM_INCLUDE_DIR="$PREFIX/include" SLURM_LIB_DIR="$LIBDIR" PYSLURM_BUILD_JOBS="$(nproc)" \
     "$PY" -m pip install --no-binary pyslurm "pyslurm==$WANT" >"$log" 2>&1; then
  grep -E 'Error|error:|RuntimeError' "$log" | tail -n 8 >&2 || tail -n 20 "$log" >&2
  die "pip install pyslurm==$WANT (log: $log)"
fi
importable || die "pyslurm $WANT was installed but does not import (log: $log)"
say "pyslurm $WANT built in $(( $(date +%s) - started )) s"
