#!/usr/bin/env bash
# start-postgres.sh — Debian's PostgreSQL on 127.0.0.1 with the role and database the tests use.
#
#   cluster/start-postgres.sh        # then: export GRADER_TEST_POSTGRES=postgresql+psycopg://grader:grader@127.0.0.1/grader_test
#
# Needs root and the `postgresql` package. Idempotent: a running cluster, an existing role or
# database is left as it is. The tests that use it create and drop their own schemas.
set -euo pipefail
say() { echo "[start-postgres] $*" >&2; }

command -v pg_lsclusters >/dev/null || { say "FAILED: install Debian's postgresql package first"; exit 1; }
read -r version cluster _ < <(pg_lsclusters --no-header | head -1) || true
if [ -z "${version:-}" ]; then
  version="$(ls /usr/lib/postgresql | sort -V | tail -1)"
  cluster=main
  pg_createcluster "$version" "$cluster" >/dev/null
fi
pg_ctlcluster "$version" "$cluster" start >/dev/null 2>&1 || true
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 && break
  sleep 1
done
pg_isready -q -h 127.0.0.1 || { say "FAILED: PostgreSQL $version/$cluster does not answer on 127.0.0.1"; exit 1; }
psql_do() { su postgres -c "psql -v ON_ERROR_STOP=1 -qtAc \"$1\""; }
[ "$(psql_do "SELECT 1 FROM pg_roles WHERE rolname = 'grader'")" = 1 ] \
  || psql_do "CREATE ROLE grader LOGIN PASSWORD 'grader' CREATEDB"
[ "$(psql_do "SELECT 1 FROM pg_database WHERE datname = 'grader_test'")" = 1 ] \
  || psql_do "CREATE DATABASE grader_test OWNER grader"
say "PostgreSQL $version/$cluster on 127.0.0.1:5432, role grader, database grader_test"
