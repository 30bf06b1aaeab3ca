#!/usr/bin/env bash
# build-slurm.sh — build and install Slurm from a source tarball, for the development cluster on a
# Slurm newer than the distribution's (and for building pyslurm against it, cluster/build-pyslurm.sh).
#
#   cluster/build-slurm.sh TARBALL [PREFIX]     # e.g. cluster/build-slurm.sh slurm-25.11.7.tar.gz
#
# TARBALL is SchedMD's release tarball slurm-X.Y.Z.tar.gz (or .tar.bz2); PREFIX defaults to
# /opt/slurm-X.Y. Idempotent and cheap when done: if PREFIX already holds Slurm X.Y.Z (read from
# include/slurm/slurm_version.h, because in 25.11 even `sinfo --version` needs a configuration)
# nothing happens and the tarball need not exist. A PREFIX holding another Slurm is left alone
# (an error). Then start the development cluster on it:
#   GRADER_SLURM_PREFIX=PREFIX cluster/start-local-cluster.sh
#
# Needs root (apt-get for the build dependencies on Debian/Ubuntu; GRADER_SLURM_INSTALL=0 skips
# apt-get), a C toolchain, and 5-9 min on 2 cores. Progress on stderr; exit 0 = installed, 1 = not
# (the reason is the last line; the build logs are kept under PREFIX.build-logs/).
set -euo pipefail

say() { echo "[build-slurm] $*" >&2; }
die() { say "FAILED: $*"; exit 1; }

case "${1:-}" in
  ""|-h|--help) sed -n '2,17p' "$0" >&2; [ -n "${1:-}" ]; exit $? ;;
esac
TARBALL="$1"
name="$(basename "$TARBALL")"
VERSION="$(sed -nE 's/^slurm-([0-9]+\.[0-9]+\.[0-9]+)\.tar\.(gz|bz2)$/\1/p' <<<"$name")"
[ -n "$VERSION" ] || die "$name is not named like a Slurm release tarball (slurm-X.Y.Z.tar.gz)"
PREFIX="${2:-/opt/slurm-${VERSION%.*}}"
case "$PREFIX" in /*) ;; *) PREFIX="$PWD/$PREFIX" ;; esac
INSTALL="${GRADER_SLURM_INSTALL:-1}"

installed_version() {  # X.Y.Z of the Slurm in PREFIX, or nothing
  local header="$PREFIX/include/slurm/slurm_version.h" hex number
  [ -x "$PREFIX/sbin/slurmctld" ] && [ -x "$PREFIX/sbin/slurmd" ] && [ -x "$PREFIX/bin/sbatch" ] || return 0
  hex="$(awk '/^#define SLURM_VERSION_NUMBER/ {print $3}' "$header" 2>/dev/null)"
  [ -n "$hex" ] || return 0
  number=$(( hex ))
  echo "$(( number >> 16 & 255 )).$(( number >> 8 & 255 )).$(( number & 255 ))"
}

have="$(installed_version)"
if [ "$have" = "$VERSION" ]; then
  say "Slurm $VERSION is already installed in $PREFIX"
  exit 0
fi
[ -z "$have" ] || die "$PREFIX already holds Slurm $have, not $VERSION; give another PREFIX or remove it"
[ -r "$TARBALL" ] || die "no tarball at $TARBALL (and no Slurm $VERSION in $PREFIX)"
[ "$(id -u)" = 0 ] || [ -w "$(dirname "$PREFIX")" ] || die "cannot install into $PREFIX as $(id -un) (run as root)"

if [ "$INSTALL" = 1 ] && command -v apt-get >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "apt-get needs root (or set GRADER_SLURM_INSTALL=0 with the dependencies installed)"
  say "build dependencies (apt-get)"
  # munge: authentication between daemons and clients; the -dev packages turn on the matching plugins.
  pkgs=(build-essential pkg-config python3 munge libmunge-dev libjson-c-dev libyaml-dev libhttp-parser-dev libjwt-dev
        libdbus-1-dev)
  apt_log="${TMPDIR:-/tmp}/grader-build-slurm-apt.log"
  apt=(apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600)
  if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" "${pkgs[@]}" >"$apt_log" 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q -o DPkg::Lock::Timeout=600 >>"$apt_log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" "${pkgs[@]}" >>"$apt_log" 2>&1 \
      || { tail -n 15 "$apt_log" >&2; die "apt-get install of the build dependencies (log: $apt_log)"; }
  fi
fi

logs="$PREFIX.build-logs"
mkdir -p "$logs"
work="$(mktemp -d "${TMPDIR:-/tmp}/grader-slurm-build-XXXX")"
trap 'rm -rf "$work"' EXIT
started=$(date +%s)
say "unpacking $name"
tar xf "$TARBALL" -C "$work" || die "cannot unpack $TARBALL"
src="$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -n 1)"
[ -x "$src/configure" ] || die "$TARBALL holds no configure script"
cd "$src"
say "configure --prefix=$PREFIX (log: $logs/configure.log)"
./configure --prefix="$PREFIX" --sysconfdir="$PREFIX/etc" --disable-debug >"$logs/configure.log" 2>&1 \
  || { tail -n 20 "$logs/configure.log" >&2; die "configure (log: $logs/configure.log)"; }
say "make -j$(nproc) (log: $logs/make.log; 5-9 min on 2 cores)"
make -j"$(nproc)" >"$logs/make.log" 2>&1 || { grep -E 'error|Error' "$logs/make.log" | tail -n 10 >&2; die "make (log: $logs/make.log)"; }
make install >"$logs/install.log" 2>&1 || { tail -n 20 "$logs/install.log" >&2; die "make install (log: $logs/install.log)"; }
have="$(installed_version)"
[ "$have" = "$VERSION" ] || die "make install finished, but $PREFIX does not hold Slurm $VERSION"
say "installed Slurm $VERSION in $PREFIX in $(( $(date +%s) - started )) s"
