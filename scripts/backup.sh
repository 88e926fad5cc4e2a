#!/usr/bin/env bash
# Back up the cme PostgreSQL database that DATABASE_URL names into a pg_dump custom-format file,
# which scripts/restore.sh (or pg_restore) loads into an empty database under any role.
#
#   DATABASE_URL=postgresql://cme:PASSWORD@127.0.0.1:5432/cme scripts/backup.sh FILE
#
# DATABASE_URL  the service's own: postgresql://, postgres:// or postgresql+psycopg://
# PG_BIN        folder of the pg_dump/pg_restore/psql to use (default: the ones on PATH)
# The file holds every table, the change feed and the cursor-signing key: keep it like a secret.
# Exit status: 0 once FILE is written and read back, 1 on failure (FILE untouched), 2 on bad usage.
# See docs/operations/backup.md.
set -euo pipefail

usage() {
  echo "usage: $0 FILE   (DATABASE_URL names the database to back up)" >&2
  exit 2
}

script=backup
sqlite_refusal="this script backs up PostgreSQL only"
# shellcheck source=pg-common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/pg-common.sh"

major_of() {
  [[ "$1" =~ \)\ ([0-9]+) ]] || fail "cannot tell the version of: $1"
  echo "${BASH_REMATCH[1]}"
}

[[ $# -eq 1 && -n "$1" && "$1" != -* ]] || usage
file="$1"
[[ -n "${DATABASE_URL:-}" ]] || fail "set DATABASE_URL to the database to back up (postgresql://USER:PASSWORD@HOST:PORT/NAME)"
[[ ! -d "$file" ]] || fail "$file is a folder: give the path of the file to write"
folder="$(dirname -- "$file")"
[[ -d "$folder" ]] || fail "the folder $folder does not exist: create it first"

pg_dump="$(tool pg_dump)"
pg_restore="$(tool pg_restore)"
psql="$(tool psql)"
libpq_url "$DATABASE_URL"

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

scratch="$(mktemp)"
partial="$file.partial"
trap 'rm -f -- "$scratch" "$partial"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

probe="$(query "SELECT current_setting('server_version_num')::int / 10000,
  current_setting('server_version'), current_database(),
  to_regclass('public.alembic_version') IS NOT NULL")"
IFS='|' read -r server_major server_version database has_schema <<<"$probe"
[[ "$has_schema" == "t" ]] || fail "database $database holds no cme schema (no alembic_version table): is DATABASE_URL the right database?"
revision="$(query "SELECT string_agg(version_num, ',') FROM alembic_version")"

# pg_dump refuses a newer server, and an older server's dump is only certain to load into its
# own major or a later one: the client tools must be at least the server's major.
dump_version="$("$pg_dump" --version)"
dump_major="$(major_of "$dump_version")"
if ((dump_major < server_major)); then
  fail "pg_dump $dump_major is older than the PostgreSQL $server_major server: install the PostgreSQL $server_major (or newer) client tools and put them first on PATH or in PG_BIN, or run pg_dump inside the db container (docs/operations/backup.md)"
fi

# Written beside FILE (partial) and renamed once read back, so FILE is always a whole dump or
# the one it was before.
umask 077

# One snapshot (pg_dump reads in a single repeatable-read transaction): the change feed, the
# ledger and alembic_version agree with each other even while the service writes. No grants,
# and no comments: COMMENT ON EXTENSION pg_trgm needs the extension's owner, and the schema has
# no comments of its own. An archive records owners whatever --no-owner says; pg_restore
# --no-owner (restore.sh) is what lets another role restore it.
"$pg_dump" --format=custom --no-owner --no-privileges --no-comments --file="$partial" -d "$url" ||
  fail "pg_dump failed; $file was not written"
# Reads every block back (decompressing it), so a dump cut short by a full disk is caught now.
"$pg_restore" --file=/dev/null -- "$partial" || fail "the dump does not read back; $file was not written"
mv -f -- "$partial" "$file"

size="$(wc -c <"$file")"
echo "backup: wrote $file ($((size)) bytes): database $database on PostgreSQL $server_version, schema revision $revision, pg_dump ${dump_version#pg_dump (PostgreSQL) }"
