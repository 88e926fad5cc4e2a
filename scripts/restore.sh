#!/usr/bin/env bash
# Restore a dump written by scripts/backup.sh (or any pg_dump custom-format dump of a cme
# database) into the empty PostgreSQL database that DATABASE_URL names, in one transaction: it
# all loads, or nothing does.
#
#   createdb -h HOST -U postgres -O cme cme_restored      # an empty database, owned by the role
#   DATABASE_URL=postgresql://cme:PASSWORD@HOST:5432/cme_restored scripts/restore.sh FILE
#
# --clean       replace the objects of the dump that the database already holds (drop, then load,
#               still in one transaction) instead of refusing a database that holds the catalogue
# DATABASE_URL  the service's own: postgresql://, postgres:// or postgresql+psycopg://
# PG_BIN        folder of the pg_restore/psql to use (default: the ones on PATH)
# Objects are created as the role DATABASE_URL logs in as, whoever owned them before.
# Exit status: 0 once restored, 1 on failure or refusal (the database unchanged), 2 on bad usage.
# See docs/operations/backup.md.
set -euo pipefail

usage() {
  echo "usage: $0 [--clean] FILE   (DATABASE_URL names the database to restore into)" >&2
  exit 2
}

script=restore
sqlite_refusal="this script restores into PostgreSQL only"
# shellcheck source=pg-common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/pg-common.sh"

pg_version() {
  local text
  text="$("$1" --version)"
  echo "${text#* (PostgreSQL) }"
}

# Prints one row, fields separated by "|"; psql's error, on one line, ends the script.
query() {
  local answer
  if ! answer="$("$psql" -X -A -t -q -v ON_ERROR_STOP=1 -F '|' -d "$url" -c "$1" 2>&1 >"$scratch")"; then
    answer="${answer#psql: error: }"
    answer="${answer//$'\n'/ }"
    fail "cannot query the database: ${answer//$'\t'/}"
  fi
  cat -- "$scratch"
}

clean=()
case "${1:-}" in
  --clean)
    clean=(--clean --if-exists)
    shift
    ;;
esac
[[ $# -eq 1 && -n "$1" && "$1" != -* ]] || usage
file="$1"
[[ -n "${DATABASE_URL:-}" ]] || fail "set DATABASE_URL to the database to restore into (postgresql://USER:PASSWORD@HOST:PORT/NAME)"
[[ -f "$file" && -r "$file" ]] || fail "$file is not a readable file"

pg_restore="$(tool pg_restore)"
psql="$(tool psql)"
libpq_url "$DATABASE_URL"
scratch="$(mktemp)"
trap 'rm -f -- "$scratch"' EXIT

# The table of contents first: a file that is no dump, or one from a newer pg_dump than this
# pg_restore reads, is refused before the database is touched.
if ! contents="$("$pg_restore" --list -- "$file" 2>&1)"; then
  fail "$file is not a dump pg_restore $(pg_version "$pg_restore") can read: ${contents//$'\n'/ }"
fi
[[ "$contents" =~ Dumped\ from\ database\ version:\ ([0-9]+) ]] ||
  fail "$file does not say which PostgreSQL it was dumped from"
dumped_major="${BASH_REMATCH[1]}"
[[ "$contents" == *"TABLE DATA public alembic_version "* ]] ||
  fail "$file holds no alembic_version table: it is not a dump of a cme database"

probe="$(query "SELECT current_setting('server_version_num')::int / 10000, current_database(),
  to_regclass('public.products') IS NOT NULL")"
IFS='|' read -r server_major database has_products <<<"$probe"

# A dump is only certain to load into the PostgreSQL major it came from or a later one.
if ((server_major < dumped_major)); then
  fail "$file comes from PostgreSQL $dumped_major and database $database runs PostgreSQL $server_major: restore into PostgreSQL $dumped_major or newer"
fi
if [[ "$has_products" == "t" && ${#clean[@]} -eq 0 ]]; then
  fail "database $database already holds a products table: restore into an empty database, or pass --clean to replace what it holds"
fi

# No owner and no grants: everything belongs to the role that restores, as it would had
# `cme migrate` made it. One transaction with --exit-on-error: the first failure (a truncated
# file, an object already there) rolls all of it back, leaving the database as it was.
"$pg_restore" --no-owner --no-privileges --no-comments --no-tablespaces --exit-on-error \
  --single-transaction ${clean[@]+"${clean[@]}"} -d "$url" -- "$file" ||
  fail "pg_restore failed (above); nothing was restored into database $database"

# pg_restore brings no planner statistics: without them the first queries plan blind. As the
# database's owner, not a superuser, ANALYZE warns of every shared catalogue it may not touch.
"$psql" -X -q -v ON_ERROR_STOP=1 -d "$url" -c "SET client_min_messages TO error" -c "ANALYZE" ||
  echo "restore: restored, but ANALYZE failed: run it once the database answers" >&2
revision="$(query "SELECT string_agg(version_num, ',') FROM alembic_version")"
echo "restore: restored $file into database $database (PostgreSQL $server_major), schema revision $revision"
